// The README's performance table, printed by `scripts/bench-fuse.sh --readme` (`mdevsim-bench fuse
// --markdown`): every figure of the table comes from this run, with its date and machine.
import Foundation

extension FUSEFigures {
    /// MemTotal, for the big-device row.
    static var machineMemory: UInt64 { ProcessFigures.kibLine("MemTotal", of: "/proc/meminfo") ?? 0 }

    /// The markdown table of this run's figures, and the per-chunk split of a mapped save+resume.
    func markdown(date: Date) -> String {
        let day = ISO8601DateFormatter.string(from: date, timeZone: TimeZone(identifier: "UTC") ?? .current,
                                              formatOptions: [.withFullDate, .withTime, .withColonSeparatorInTime, .withDashSeparatorInDate, .withSpaceBetweenDateAndTime])
        var lines = [
            "Measured \(day) UTC by `scripts/bench-fuse.sh --readme` on \(machine.cpus) CPUs (\(machine.cpuModel)), kernel \(machine.kernel), "
                + "load average \(machine.loadAverage); \(repeats) interleaved repeats, the same C client (`Benchmarks/fuse/client.c`) "
                + "against the bare C libfuse daemon (`Benchmarks/fuse/bare_region.c`) and mdevsim (\(mdevsimDaemon)); medians with min..max; "
                + "ratios are the median of the per-repeat ratios.",
            "",
            "| figure | bare C | mdevsim | mdevsim / bare | goal |",
            "| --- | --- | --- | --- | --- |",
        ]
        func cell(_ s: Spread, _ fmt: String, _ unit: String) -> String {
            String(format: "\(fmt) \(unit) (\(fmt)..\(fmt))", s.median, s.min, s.max)
        }
        func verdict(_ p: Pair, lowerIsBetter: Bool, goal: Double) -> String {
            if p.met { return "\(p.goal): met" }
            let short = lowerIsBetter ? (p.ratio.median / goal - 1) : (1 - p.ratio.median / goal)
            return "\(p.goal): **not met** (\(String(format: "%.0f%%", short * 100)) short)"
        }
        func row(_ name: String, _ p: Pair?, _ fmt: String, _ unit: String, lowerIsBetter: Bool, goal: Double) {
            guard let p else { return }
            lines.append("| \(name) | \(cell(p.bare, fmt, unit)) | \(cell(p.mdevsim, fmt, unit)) | "
                         + String(format: "**%.2fx** (%.2f..%.2f)", p.ratio.median, p.ratio.min, p.ratio.max)
                         + " | \(verdict(p, lowerIsBetter: lowerIsBetter, goal: goal)) |")
        }
        row("header: 8-byte pread at offset 8", headerLatencyMicroseconds, "%.2f", "us", lowerIsBetter: true, goal: 1.05)
        if let s = swiftClientBareHeaderMicroseconds {
            lines.append("| same, bare, timed by a Swift client instead (the check of the baseline) | \(cell(s, "%.2f", "us")) | | | |")
        }
        if let s = strictHeaderLatencyMicroseconds, let r = strictToNonStrictRatio {
            lines.append("| same, mdevsim with `strict` on | | \(cell(s, "%.2f", "us")) | " + String(format: "strict / non-strict %.2fx", r.median) + " | |")
        }
        if let e = engineHeaderNanoseconds, let share = engineHeaderShareOfFUSELatency {
            lines.append("| the engine's header read alone, checker included (in process) | | " + String(format: "%.0f ns", e.median)
                         + " | " + String(format: "%.2f%% of the FUSE header latency", share.median * 100) + " | checker < 5%: "
                         + (share.median < 0.05 ? "met" : "**not met**") + " |")
        }
        row("1 MiB pread of a staged chunk at 4096", preadGbPerSecond, "%.2f", "GB/s", lowerIsBetter: false, goal: 0.95)
        row("pre-copy pass saved by 1 MiB preads", preadSaveGbPerSecond, "%.2f", "GB/s", lowerIsBetter: false, goal: 1.0)
        row("pre-copy pass resumed by 1 MiB pwrites", pwriteResumeGbPerSecond, "%.2f", "GB/s", lowerIsBetter: false, goal: 1.0)
        row("save+resume of 1 MiB chunks through the mappings", saveResumeGbPerSecond, "%.2f", "GB/s", lowerIsBetter: false, goal: 0.95)
        if let m = memcpyGbPerSecond, let b = bareToMemcpy, let d = mdevsimToMemcpy {
            lines.append("| same, ratio to memcpy of the same 1 MiB pieces (" + String(format: "%.1f GB/s", m.median) + ") | "
                         + String(format: "%.4fx | %.4fx | | |", b.median, d.median))
        }
        if let g = stageAheadGain {
            let ratio = { (s: Spread) in String(format: "**%.2fx** (%.2f..%.2f)", s.median, s.min, s.max) }
            for (name, off, r) in [("mapped save+resume", g.mappedSaveResumeOff, g.mappedSaveResumeRatio),
                                   ("pre-copy save by pread", g.preadSaveOff, g.preadSaveRatio),
                                   ("pre-copy resume by pwrite", g.pwriteResumeOff, g.pwriteResumeRatio)] {
                lines.append("| \(name): mdevsim with staging ahead / without (`--no-stage-ahead`, same repeats) | | \(cell(off, "%.2f", "GB/s")) without | \(ratio(r)) | |")
            }
            lines.append("| save chunks built ahead while the client copied the one before, and taken | | \(g.figures.taken) (\(g.figures.finishedAtStaging) finished by the `data_offset` read), \(g.figures.dropped) dropped | | |")
        }
        for (name, copies) in [("through the mappings", mappedCopies), ("by pread/pwrite", preadCopies)] {
            guard let copies else { continue }
            lines.append("| copies of each migrated byte \(name), as mdevsim's devices counted them (the engine's, and the kernel's for the daemon) | | \(copies.description) | | |")
        }
        if let e = engineAloneGbPerSecond, let s = engineSaveMicrosecondsPerChunk, let a = engineSaveApplyMicrosecondsPerChunk {
            lines.append("| mdevsim's engine alone, the same pass in process, no FUSE | | " + String(format: "%.2f GB/s", e.median)
                         + String(format: " (save %.0f us, save+copy+apply %.0f us a chunk)", s.median, a.median) + " | | |")
        }
        for c in [concurrency, concurrencyRaisedBDI].compactMap({ $0 }) {
            guard let base = c.figures.first, let top = c.figures.last, c.figures.count > 1 else { continue }
            let limit = c.bdiMaxRatio.map { ", backing devices at max_ratio \($0)%" } ?? ""
            for mapped in [true, false] {
                let all = c.figures.map { x in
                    String(format: "%d: %.2f (CPUs %.0f%% idle)", x.pairs, (mapped ? x.mappedGbPerSecond : x.preadGbPerSecond).median,
                           (mapped ? x.mappedIdlePercent : x.preadIdlePercent).median)
                }
                guard let r = mapped ? top.mappedRatioToSmallest : top.preadRatioToSmallest else { continue }
                let verdict = r.median >= 0.9 ? "met" : String(format: "**not met** (%.0f%% short)", (1 - r.median / 0.9) * 100)
                // The bare daemon's own fall with N, in its column: what the machine does with N pairs.
                var bare = ""
                if let b = mapped ? top.bareMappedRatioToSmallest : top.barePreadRatioToSmallest {
                    let each = c.figures.compactMap { x in
                        (mapped ? x.bareMappedGbPerSecond : x.barePreadGbPerSecond).map { String(format: "%d: %.2f", x.pairs, $0.median) }
                    }
                    bare = each.joined(separator: ", ") + String(format: " GB/s; %d / %d pairs %.2fx (%.2f..%.2f)", top.pairs, base.pairs, b.median, b.min, b.max)
                }
                lines.append("| \(top.pairs) concurrent pairs through one mount\(limit), \(mapped ? "mapped" : "pread/pwrite"), aggregate "
                             + "(\(ByteSize.format(top.bytesPerPair)) a pair; GB/s by pairs) | \(bare) | \(all.joined(separator: ", ")) GB/s | "
                             + String(format: "%d / %d pairs **%.2fx** (%.2f..%.2f)", top.pairs, base.pairs, r.median, r.min, r.max)
                             + " | >= 0.9x the \(base.pairs)-pair aggregate: \(verdict) |")
            }
        }
        if let m = inProcessMigration {
            let size = m.deviceBytes == m.requestedBytes ? ByteSize.format(m.deviceBytes)
                : "\(ByteSize.format(m.deviceBytes)) (\(ByteSize.format(m.requestedBytes)) did not fit the free memory)"
            let verdict = m.met ? "met" : String(format: "**not met** (%.0f%% short)", (1 - m.ratioToMemcpy / m.goalRatio) * 100)
            lines.append("| in-process migration of \(size), no FUSE, against memcpy of the same bytes in 1 MiB pieces | "
                         + String(format: "memcpy %.2f GB/s | %.2f GB/s | migration / memcpy **%.2fx** | >= %.1fx memcpy: ",
                                  m.memcpyGbPerSecond, m.migrationGbPerSecond, m.ratioToMemcpy, m.goalRatio) + verdict + " |")
        }
        if let b = bigDevice {
            lines.append("| a \(ByteSize.format(b.deviceBytes)) device (random, dirtying a hot set) migrated end to end through one mount by "
                         + "1 MiB pread/pwrite, on this \(ByteSize.format(Self.machineMemory)) machine | | "
                         + String(format: "%.2f GB/s (%@ in %.0f s; digests %@, read in %.0f s)", b.gbPerSecond, ByteSize.format(b.bytesMoved), b.seconds,
                                  b.digestsMatch ? "equal" : "DIFFER", b.digestSeconds)
                         + " | daemon peak RSS \(ByteSize.format(b.daemonPeakRSSBytes)) for both sides | peak RSS < \(ByteSize.format(b.goalBytesPerSide)) per side: "
                         + (b.met ? "met" : "**not met**") + " |")
        }
        if let x = largeSparse {
            let short = x.fuseSeconds / x.goalSeconds
            let verdict = x.met ? "met" : "**not met**" + String(format: " (%.1fx the goal through FUSE", short)
                + (x.skippedByDefault ? "; the default `--max-memory 4GiB` skips it)" : ")")
            lines.append("| `large-sparse` (16 GiB of zero pages, 2 MiB pages, 8 MiB chunks) as `mdevsim run` runs it, release build: through a FUSE mount / in process | | "
                         + String(format: "%.1f s / %.1f s", x.fuseSeconds, x.inProcessSeconds) + (x.passed ? "" : " (FAILED)")
                         + String(format: " | | in the default run, < %.0f s: ", x.goalSeconds) + verdict + " |")
        }
        lines.append("")
        lines.append("A save+resume chunk through the mappings, step by step (us, over all repeats' chunks):")
        lines.append("")
        lines.append("| step | bare C | mdevsim |")
        lines.append("| --- | --- | --- |")
        if let b = bareSteps, let m = mdevsimSteps {
            for (name, key) in TransferTiming.steps {
                lines.append("| \(name) | " + String(format: "%.0f | %.0f |", b.microsecondsPerChunk(key(b)), m.microsecondsPerChunk(key(m))))
            }
        }
        lines.append("")
        lines.append("mdevsim runs with equal source/destination digests: \(digestsMatched)/\(2 * repeats); checker violations on the "
                     + "header and read devices: \(violations.isEmpty ? "none" : "\(violations.count)").")
        if let c = concurrency ?? concurrencyRaisedBDI {
            lines.append("")
            lines.append("Concurrent pairs: one C client process per pair, all pairs' pre-copy passes started together; aggregate = all "
                         + "pairs' bytes over the wall time from the first start to the last end; \(c.repeats) repeats, the order of N "
                         + "alternating; pairs with equal digests \(c.digestsMatched)/\(c.pairsRun). The bare C column: the same clients "
                         + "running the same loops (as many 1 MiB chunks a pair) on N pairs of the bare daemon's regions, right after each "
                         + "mdevsim measurement. Rows without a max_ratio: the kernel's FUSE default for a mount's backing device "
                         + "(max_ratio 1%, strictlimit); rows with one: both pair mounts' `/sys/class/bdi/MAJ:MIN/max_ratio` set by "
                         + "`--bdi-max-ratio` (default 100) right after mounting.")
            for run in [concurrency, concurrencyRaisedBDI].compactMap({ $0 }) {
                let copies = run.figures.compactMap { x in x.mappedCopies.map { "\(x.pairs) pairs \($0.description)" } }
                guard !copies.isEmpty else { continue }
                lines.append("")
                lines.append("Copies of each migrated byte through the mappings"
                             + (run.bdiMaxRatio.map { " (max_ratio \($0)%)" } ?? " (FUSE's default dirty limit)")
                             + ", all pairs' devices over their whole migrations, by N: " + copies.joined(separator: "; ") + ".")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

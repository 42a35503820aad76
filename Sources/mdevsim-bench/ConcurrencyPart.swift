// `mdevsim-bench fuse`'s concurrency figure: N source/destination pairs migrating at the same time
// through one mdevsim mount, each pair driven by its own C client process (as N VMMs would be),
// through the mappings and by pread/pwrite; aggregate GB/s for each N, and the ratio of the
// largest N's aggregate to the smallest's (issue 15's goal: 64 pairs >= 0.9x the 4-pair figure).
// The same clients run the same loops, interleaved, against N pairs of the bare C daemon's
// regions (one mount, four regions a pair): what the machine and the kernel do with N pairs, so
// that a fall with N can be told apart from one that is mdevsim's.
import Dispatch
import Foundation
import Glibc

/// Aggregate figures of one N (over the repeats).
struct ConcurrencyFigure: Codable, Sendable {
    var pairs: Int
    /// Device bytes each pair moves in its timed pre-copy pass.
    var bytesPerPair: UInt64
    var mappedGbPerSecond: Spread
    var preadGbPerSecond: Spread
    /// Aggregate of this N over the aggregate of the smallest N, per repeat (median).
    var mappedRatioToSmallest: Spread?
    var preadRatioToSmallest: Spread?
    /// The machine's idle CPU share during the timed passes (from /proc/stat): near 0 means the
    /// pairs are bound by the CPUs, a large share with a falling aggregate means they wait on
    /// each other (a lock, a serial daemon path).
    var mappedIdlePercent: Spread
    var preadIdlePercent: Spread
    /// CPU seconds the mdevsim daemon spent per GB moved (user + system, from /proc/PID/stat),
    /// when it runs in its own process: whether more pairs cost the daemon more per byte.
    var mappedDaemonCPUSecondsPerGB: Spread?
    var preadDaemonCPUSecondsPerGB: Spread?
    /// The same N of pairs on the bare C daemon (as many 1 MiB chunks a pair), when it ran.
    var bareMappedGbPerSecond: Spread?
    var barePreadGbPerSecond: Spread?
    var bareMappedRatioToSmallest: Spread?
    var barePreadRatioToSmallest: Spread?
    /// The copies all pairs' devices counted over their whole migrations (pre-copy and
    /// stop-and-copy), per migrated byte: whether more pairs cost more copies (writebacks).
    var mappedCopies: CopyFigure?
    var preadCopies: CopyFigure?
}

struct ConcurrencyFigures: Codable, Sendable {
    var repeats: Int
    var figures: [ConcurrencyFigure]
    /// Pairs whose source and destination digests were equal, out of `pairsRun`.
    var digestsMatched: Int
    var pairsRun: Int
    var goal: String
    /// The pair mounts' backing-device max_ratio when the bench set it (`--bdi-max-ratio`);
    /// nil: the kernel's FUSE default (1%, strictlimit).
    var bdiMaxRatio: Int?
}

/// One pair: its own C client (slots 0 source, 1 destination) and, while a migration runs, its
/// two devices. `@unchecked Sendable`: a worker is used by one thread at a time — set up and
/// finished on the bench's thread, its pass on a thread of its own that is joined before the
/// bench's thread touches it again.
final class PairWorker: @unchecked Sendable {
    let client: CRegionClient
    var devices: (MdevsimDevice, MdevsimDevice)?
    var bytes: UInt64 = 0
    var failure: String?
    /// The copies the pair's two devices counted, read by `finish`.
    var copies: CopyFigure?

    init(clientPath: String) throws { client = try CRegionClient(executable: clientPath) }

    /// Fresh devices, the destination resuming and the source in pre-copy (untimed).
    func setUp(mount: String, type: String, mapped: Bool) throws {
        let source = try MdevsimDevice.create(mount: mount, type: type)
        let destination = try MdevsimDevice.create(mount: mount, type: type)
        devices = (source, destination)
        try client.open(0, source.regionPath, map: mapped)
        try client.open(1, destination.regionPath, map: mapped)
        try client.setDeviceState(1, UInt32(StateBits.resuming))
        try client.setDeviceState(0, UInt32(StateBits.preCopy))
        if mapped { try client.touch(0); try client.touch(1) }
        bytes = 0
        failure = nil
    }

    /// Slots of the bare daemon's regions: mapped source and destination, pread/pwrite ones.
    static let bareSlots = (mappedSource: 2, mappedDestination: 3, readSource: 4, writeDestination: 5)

    /// Opens this pair's four regions of the bare daemon (4i..4i+3), kept open for the whole run.
    func openBare(mount: String, pair: Int) throws {
        let s = Self.bareSlots
        try client.open(s.mappedSource, "\(mount)/region\(4 * pair)", map: true)
        try client.open(s.mappedDestination, "\(mount)/region\(4 * pair + 1)", map: true)
        try client.open(s.readSource, "\(mount)/region\(4 * pair + 2)", map: false)
        try client.open(s.writeDestination, "\(mount)/region\(4 * pair + 3)", map: false)
        // The bare daemon keeps its page cache coherent once it saw the mapping used, as mdevsim.
        try client.touch(s.mappedSource)
        try client.touch(s.mappedDestination)
    }

    /// The bare daemon's pass: as many 1 MiB chunks as mdevsim's pass moves.
    func barePass(mapped: Bool, chunks: Int) {
        let s = Self.bareSlots
        do {
            bytes = mapped ? try client.mappedLoop(source: s.mappedSource, destination: s.mappedDestination, maxChunks: chunks).bytes
                           : try client.readWriteLoop(source: s.readSource, destination: s.writeDestination, maxChunks: chunks).bytes
            failure = nil
        } catch {
            failure = "\(error)"
        }
    }

    /// The timed part: the whole pre-copy pass.
    func pass(mapped: Bool) {
        do {
            bytes = mapped ? try client.mappedLoop(source: 0, destination: 1, maxChunks: 0).bytes
                           : try client.readWriteLoop(source: 0, destination: 1, maxChunks: 0).bytes
        } catch {
            failure = "\(error)"
        }
    }

    /// Stop-and-copy, the state changes and the digest comparison (untimed); removes the devices.
    func finish(mapped: Bool) -> Bool {
        guard let (source, destination) = devices else { return false }
        defer { try? client.close(0); try? client.close(1); source.remove(); destination.remove(); devices = nil }
        guard failure == nil else { return false }
        do {
            try client.setDeviceState(0, UInt32(StateBits.stopAndCopy))
            if mapped { _ = try client.mappedLoop(source: 0, destination: 1, maxChunks: 0) }
            else { _ = try client.readWriteLoop(source: 0, destination: 1, maxChunks: 0) }
            try client.setDeviceState(0, UInt32(StateBits.stop))
            try client.setDeviceState(1, UInt32(StateBits.running))
        } catch {
            failure = "\(error)"
            return false
        }
        copies = CopyFigure(source: source.text("state"), destination: destination.text("state"))
        let a = source.text("digest"), b = destination.text("digest")
        return !a.isEmpty && a == b
    }
}

struct ConcurrencyPart {
    let mount: String
    let type: String
    let clientPath: String
    let pairCounts: [Int]
    let bytesPerPair: UInt64
    let repeats: Int
    let out: Printer
    /// The mdevsim daemon's process, when it has its own.
    let daemon: Int32?
    /// A bare C daemon's mount with four regions per pair of the largest N, for the baseline.
    var bareMount: String? = nil
    /// What `--bdi-max-ratio` set, for the figures.
    var bdiMaxRatio: Int? = nil
    /// Chunks of the bare pass (its regions' data sections are 1 MiB).
    var bareChunks: Int { max(1, Int(bytesPerPair / (1 << 20))) }

    func run() throws -> ConcurrencyFigures {
        let most = pairCounts.max() ?? 0
        out.progress("concurrency: starting \(most) C clients (one per pair)")
        var workers: [PairWorker] = []
        defer { for w in workers { w.client.stop() } }
        for _ in 0..<most { workers.append(try PairWorker(clientPath: clientPath)) }
        if let bareMount { for (i, w) in workers.enumerated() { try w.openBare(mount: bareMount, pair: i) } }

        var mapped: [Int: [Double]] = [:], pread: [Int: [Double]] = [:]
        var mappedIdle: [Int: [Double]] = [:], preadIdle: [Int: [Double]] = [:]
        var mappedDaemon: [Int: [Double]] = [:], preadDaemon: [Int: [Double]] = [:]
        var bareMapped: [Int: [Double]] = [:], barePread: [Int: [Double]] = [:]
        var mappedCopies: [Int: CopyFigure] = [:], preadCopies: [Int: CopyFigure] = [:]
        var matched = 0, run = 0
        for r in 0..<repeats {
            // Alternate the order of N between repeats, so a drift of the machine's load does not
            // favour one N.
            let order = r % 2 == 0 ? pairCounts : pairCounts.reversed()
            for n in order {
                for isMapped in [true, false] {
                    let (gbps, ok, idle, daemonCPU) = try aggregate(Array(workers.prefix(n)), mapped: isMapped)
                    for w in workers.prefix(n) {
                        guard let c = w.copies else { continue }
                        if isMapped { mappedCopies[n] = mappedCopies[n] + c } else { preadCopies[n] = preadCopies[n] + c }
                    }
                    if isMapped { mapped[n, default: []].append(gbps); mappedIdle[n, default: []].append(idle) }
                    else { pread[n, default: []].append(gbps); preadIdle[n, default: []].append(idle) }
                    if let daemonCPU {
                        if isMapped { mappedDaemon[n, default: []].append(daemonCPU) } else { preadDaemon[n, default: []].append(daemonCPU) }
                    }
                    matched += ok
                    run += n
                    out.progress(String(format: "concurrency repeat %d/%d: %d pairs %@: %.2f GB/s aggregate, CPUs %.0f%% idle, daemon %.2f CPU s/GB, digests %d/%d",
                                        r + 1, repeats, n, isMapped ? "mapped" : "pread/pwrite", gbps, idle, daemonCPU ?? -1, ok, n))
                    if bareMount != nil {
                        let bare = try bareAggregate(Array(workers.prefix(n)), mapped: isMapped)
                        if isMapped { bareMapped[n, default: []].append(bare) } else { barePread[n, default: []].append(bare) }
                        out.progress(String(format: "concurrency repeat %d/%d: %d pairs %@ on the bare daemon: %.2f GB/s aggregate",
                                            r + 1, repeats, n, isMapped ? "mapped" : "pread/pwrite", bare))
                    }
                }
            }
        }
        let smallest = pairCounts.min() ?? 0
        let figures = pairCounts.sorted().map { n -> ConcurrencyFigure in
            func ratio(_ m: [Int: [Double]]) -> Spread? {
                guard n != smallest, let base = m[smallest], let these = m[n] else { return nil }
                return Spread(zip(these, base).map { $1 > 0 ? $0 / $1 : 0 })
            }
            return ConcurrencyFigure(pairs: n, bytesPerPair: bytesPerPair, mappedGbPerSecond: Spread(mapped[n] ?? []),
                                     preadGbPerSecond: Spread(pread[n] ?? []), mappedRatioToSmallest: ratio(mapped),
                                     preadRatioToSmallest: ratio(pread), mappedIdlePercent: Spread(mappedIdle[n] ?? []),
                                     preadIdlePercent: Spread(preadIdle[n] ?? []),
                                     mappedDaemonCPUSecondsPerGB: mappedDaemon[n].map(Spread.init),
                                     preadDaemonCPUSecondsPerGB: preadDaemon[n].map(Spread.init),
                                     bareMappedGbPerSecond: bareMapped[n].map(Spread.init), barePreadGbPerSecond: barePread[n].map(Spread.init),
                                     bareMappedRatioToSmallest: ratio(bareMapped), barePreadRatioToSmallest: ratio(barePread),
                                     mappedCopies: mappedCopies[n], preadCopies: preadCopies[n])
        }
        return ConcurrencyFigures(repeats: repeats, figures: figures, digestsMatched: matched, pairsRun: run,
                                  goal: ">= 0.9x the \(smallest)-pair aggregate", bdiMaxRatio: bdiMaxRatio)
    }

    /// Sets up `workers.count` pairs, runs their pre-copy passes at once (one thread each), and
    /// returns the aggregate GB/s (all pairs' bytes over the wall time from the first start to the
    /// last end), how many pairs ended with equal digests, and the CPUs' idle percent meanwhile.
    private func aggregate(_ workers: [PairWorker], mapped: Bool) throws -> (Double, Int, Double, Double?) {
        for w in workers { w.copies = nil; try w.setUp(mount: mount, type: type, mapped: mapped) }
        let cpu0 = Self.cpuTicks(), daemon0 = daemon.flatMap(Self.processTicks)
        let ns = Self.together(workers) { $0.pass(mapped: mapped) }
        let cpu1 = Self.cpuTicks(), daemon1 = daemon.flatMap(Self.processTicks)
        let busy = Double(cpu1.busy - cpu0.busy), idle = Double(cpu1.idle - cpu0.idle)
        let total = workers.reduce(UInt64(0)) { $0 + $1.bytes }
        var ok = 0
        for w in workers {
            if let f = w.failure { out.progress("concurrency: a pair failed: \(f)") }
            if w.finish(mapped: mapped) { ok += 1 }
        }
        if total < UInt64(workers.count) * bytesPerPair {
            throw BenchError("concurrency: \(workers.count) pairs moved \(total) bytes, less than \(bytesPerPair) each")
        }
        var daemonCPU: Double?
        if let daemon0, let daemon1, total > 0 {
            daemonCPU = Double(daemon1 - daemon0) / Double(max(1, sysconf(Int32(_SC_CLK_TCK)))) / (Double(total) / 1e9)
        }
        return (ns > 0 ? Double(total) / ns : 0, ok, busy + idle > 0 ? 100 * idle / (busy + idle) : 0, daemonCPU)
    }

    /// The bare daemon's aggregate GB/s for `workers.count` pairs, their passes started together.
    private func bareAggregate(_ workers: [PairWorker], mapped: Bool) throws -> Double {
        let chunks = bareChunks
        let ns = Self.together(workers) { $0.barePass(mapped: mapped, chunks: chunks) }
        if let f = workers.compactMap(\.failure).first { throw BenchError("concurrency: a bare pair failed: \(f)") }
        let total = workers.reduce(UInt64(0)) { $0 + $1.bytes }
        return ns > 0 ? Double(total) / ns : 0
    }

    /// Runs `pass` on every worker at once, a thread each; the nanoseconds from the first start
    /// to the last end. A thread per pair, not a dispatch queue: concurrentPerform would run only
    /// as many pairs at once as there are CPUs, and these threads mostly wait in syscalls.
    static func together(_ workers: [PairWorker], _ pass: @escaping @Sendable (PairWorker) -> Void) -> Double {
        let group = DispatchGroup()
        let start = monotonicNanoseconds()
        for w in workers {
            group.enter()
            Thread.detachNewThread {
                pass(w)
                group.leave()
            }
        }
        group.wait()
        return Double(monotonicNanoseconds() - start)
    }

    /// User + system ticks of process `pid` so far (fields 14 and 15 of /proc/PID/stat).
    static func processTicks(_ pid: Int32) -> UInt64? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After the command's ")": field 3 (state) is fields[0], so field N is fields[N - 3].
        guard fields.count > 12, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return nil }
        return user + system
    }

    /// The machine's busy and idle (idle + iowait) ticks so far, from /proc/stat's `cpu` line.
    static func cpuTicks() -> (busy: UInt64, idle: UInt64) {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) else { return (0, 0) }
        let v = line.split(separator: " ").dropFirst().compactMap { UInt64($0) }
        guard v.count >= 8 else { return (0, 0) }
        let idle = v[3] + v[4]
        return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7], idle)
    }
}

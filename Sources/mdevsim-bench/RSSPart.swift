// Part 2: peak RSS while the first pre-copy pass of an untouched large device is read.
import DeviceSimulator
import Foundation
import MdevFS

struct RSSFigures: Codable, Sendable {
    var deviceBytes: UInt64
    var chunkBytes: UInt64
    /// VmRSS before the device existed (the runtime's own), after creating it, at the end.
    var rssBeforeBytes: UInt64?
    var rssAfterCreateBytes: UInt64?
    var rssAfterPassBytes: UInt64?
    /// Peak RSS of the process: VmHWM and `getrusage` `ru_maxrss`.
    var peakVmHwmBytes: UInt64?
    var peakMaxRssBytes: UInt64
    /// Peak minus the RSS before the device was created.
    var peakAboveBaselineBytes: UInt64?
    var passSeconds: Double
    /// Device memory read (pages x page size) per second, and stream bytes per second.
    var memoryGbPerSecond: Double
    var streamGbPerSecond: Double
    var streamBytes: UInt64
    var chunks: Int
    var firstPending: UInt64
    var lastPending: UInt64
    var goalBytes: UInt64
    var meetsGoal: Bool
}

struct RSSPart {
    let size: UInt64
    let chunk: UInt64
    let threshold: UInt64
    let out: Printer

    func run() throws -> RSSFigures {
        out.line()
        out.line("== 2. Peak RSS: untouched \(ByteSize.format(size)) device, one pre-copy pass read in \(ByteSize.format(chunk)) chunks, no destination")
        let before = ProcessFigures.status("VmRSS")
        let config = benchConfiguration(memory: size, chunk: chunk)
        try config.validate()
        let region = MigrationRegion(configuration: config, identity: "bench-rss", extents: benchExtents)
        let afterCreate = ProcessFigures.status("VmRSS")
        // The client's side of each chunk: copied out of the mapped data section, as a VMM copies
        // it into its migration stream buffer.
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(chunk), alignment: 4096)
        defer { scratch.deallocate() }
        try region.setState(StateBits.preCopy)
        let out = self.out, size = self.size
        let start = ContinuousClock.now
        var pass = MigrationRegion.Pass()
        let secondsTaken = try timed {
            pass = try region.readPass(threshold: threshold, progress: { p in
                guard p.chunks % 8192 == 0 else { return }
                out.progress("rss: read \(ByteSize.format(p.bytes)) of \(ByteSize.format(size))"
                             + String(format: " (%.2f GB/s so far)", gbps(p.bytes, seconds(ContinuousClock.now - start)))
                             + ", VmRSS \(ByteSize.format(ProcessFigures.status("VmRSS") ?? 0))")
            }) { bytes in
                if let base = bytes.baseAddress, let dst = scratch.baseAddress { dst.copyMemory(from: base, byteCount: bytes.count) }
            }
        }
        let afterPass = ProcessFigures.status("VmRSS")
        let hwm = ProcessFigures.status("VmHWM")
        let maxRSS = ProcessFigures.maxRSS
        let peak = hwm ?? maxRSS
        let memoryBytes = pagesRead(pass, config)
        let goal: UInt64 = 256 << 20
        let figures = RSSFigures(
            deviceBytes: size, chunkBytes: chunk,
            rssBeforeBytes: before, rssAfterCreateBytes: afterCreate, rssAfterPassBytes: afterPass,
            peakVmHwmBytes: hwm, peakMaxRssBytes: maxRSS, peakAboveBaselineBytes: before.map { peak > $0 ? peak - $0 : 0 },
            passSeconds: secondsTaken, memoryGbPerSecond: gbps(memoryBytes, secondsTaken), streamGbPerSecond: gbps(pass.bytes, secondsTaken),
            streamBytes: pass.bytes, chunks: pass.chunks, firstPending: pass.firstPending, lastPending: pass.lastPending,
            goalBytes: goal, meetsGoal: peak < goal)
        func mib(_ b: UInt64?) -> String { b.map { String(format: "%.1f MiB", Double($0) / 1048576) } ?? "n/a" }
        out.line("  VmRSS: before the device \(mib(before)), after creating it \(mib(afterCreate)), after the pass \(mib(afterPass))")
        out.line("  peak RSS: VmHWM \(mib(hwm)), ru_maxrss \(mib(maxRSS)); above the pre-device baseline \(mib(figures.peakAboveBaselineBytes))"
                 + "  goal < 256 MiB: \(figures.meetsGoal ? "MET" : "NOT MET")")
        out.line(String(format: "  pass: %d chunks, %.2f s, %.2f GB/s of device memory (%.2f GB/s of stream)", pass.chunks, secondsTaken,
                        figures.memoryGbPerSecond, figures.streamGbPerSecond)
                 + "; pending \(pass.firstPending) at the start, \(pass.lastPending) at the end")
        return figures
    }

    /// Device memory bytes a pre-copy pass of `pass.bytes` stream bytes carried: the stream is one
    /// 48-byte CHNK record per chunk, the HEAD record once, and (page size + 32)-byte page records.
    private func pagesRead(_ pass: MigrationRegion.Pass, _ c: DeviceConfiguration) -> UInt64 {
        pageBytes(streamBytes: pass.bytes, chunks: pass.chunks, c)
    }
}

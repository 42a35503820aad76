// The figures of one run, printed as a summary and encoded as JSON with --json.
import Foundation

struct Figures: Codable, Sendable {
    var machine: Machine
    var throughput: ThroughputFigures?
    var precopyRss: RSSFigures?
    var breakdown: BreakdownFigures?

    init(machine: Machine) { self.machine = machine }
}

extension Printer {
    func summary(_ f: Figures) {
        line()
        line("== Summary")
        if let t = f.throughput {
            line(String(format: "  migration %.2f GB/s (median of %d, spread %.0f%%) = %.3fx memcpy (pre-faulted, 1 MiB pieces, %.2f GB/s); %.3fx first-touch memcpy; goal >= 0.5x: ",
                        t.migrationGbPerSecond.median, t.repeats, t.migrationGbPerSecond.spreadPercent, t.ratioToMemcpy.median,
                        t.memcpyPrefaultedPiecesGbPerSecond.median, t.ratioToFirstTouchMemcpy.median)
                 + (t.meetsGoal ? "MET" : "NOT MET") + "  [\(ByteSize.format(t.deviceBytes)) device, digests excluded]")
        }
        if let r = f.precopyRss {
            let peak = r.peakVmHwmBytes ?? r.peakMaxRssBytes
            line("  pre-copy pass of an untouched \(ByteSize.format(r.deviceBytes)) device: "
                 + String(format: "peak RSS %.1f MiB, read at %.2f GB/s; goal < 256 MiB: ", Double(peak) / 1048576, r.memoryGbPerSecond)
                 + (r.meetsGoal ? "MET" : "NOT MET"))
        }
        if let b = f.breakdown {
            line(String(format: "  breakdown model: %.3f s/GiB (%.2f GB/s); large-device extra per chunk %+.1f us",
                        b.predictedSecondsPerGiB, b.predictedSecondsPerGiB > 0 ? Double(1 << 30) / b.predictedSecondsPerGiB / 1e9 : 0,
                        b.largeDeviceExtraMicrosecondsPerChunk))
        }
    }
}

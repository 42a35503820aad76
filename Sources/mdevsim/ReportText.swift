import Conformance
import Foundation

/// The human-readable form of a migration report.
enum ReportText {
    static func render(_ r: MigrationReport, scenario: String) -> String {
        var lines: [String] = []
        let verdict = r.succeeded ? "PASS" : (r.outcome == "cancelled" ? "CANCELLED" : "FAIL")
        lines.append("\(verdict) \(scenario): \(r.outcome)")
        lines.append("  pre-copy iterations  \(r.precopyIterations) (\(r.converged ? "converged" : "did not converge"))")
        lines.append("  bytes                pre-copy \(bytes(r.bytes.precopy)), stop-and-copy \(bytes(r.bytes.stopAndCopy)), total \(bytes(r.bytes.total))")
        lines.append("  chunks               pre-copy \(r.chunks.precopy), stop-and-copy \(r.chunks.stopAndCopy), resume transactions \(r.chunks.resumeTransactions)")
        lines.append("  downtime estimate    \(String(format: "%.3f", r.downtimeEstimateMs)) ms (\(bytes(r.bytesWhileStopped)) while stopped)")
        let shown = r.pendingSequence.prefix(12).map { bytes($0) }.joined(separator: ", ")
        lines.append("  pending_bytes        \(shown)\(r.pendingSequence.count > 12 ? ", ... (\(r.pendingSequence.count) reads)" : "")")
        lines.append("  source digest        \(r.sourceDigest ?? "-")")
        lines.append("  destination digest   \(r.destinationDigest ?? "-")\(r.digestsMatch ? " (equal)" : "")")
        lines.append("  final states         source \(r.sourceState), destination \(r.destinationState)")
        if let f = r.failure {
            lines.append("  failure              \(f.step)\(f.errno.map { ": \($0)" } ?? ""): \(f.message)")
        }
        if let recovered = r.recoveredByReset { lines.append("  recovered by reset   \(recovered)") }
        for v in r.violations { lines.append("  violation            \(v)") }
        for d in r.resumeDeviations { lines.append("  resume deviation     \(d)") }
        return lines.joined(separator: "\n")
    }

    static func bytes(_ n: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(n), i = 0
        while value >= 1024, i < units.count - 1 { value /= 1024; i += 1 }
        return i == 0 ? "\(n) B" : String(format: "%.1f %@", value, units[i])
    }
}

@testable import Conformance
import DeviceSimulator
import Foundation

/// The `scenarios/` directory of the repository, found from this file.
let libraryDirectory: String = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("scenarios").path

/// A report as the reference client writes it, with what a test changes.
func report(
    outcome: String = "completed", digestsMatch: Bool = true, iterations: Int = 1, converged: Bool = true,
    failure: (step: String, errno: String?)? = nil, sourceState: String? = nil, recovered: Bool? = nil,
    violations: [String] = []
) -> MigrationReport {
    MigrationReport(
        outcome: outcome,
        sourceDigest: outcome == "completed" ? "aa" : nil,
        destinationDigest: outcome == "completed" ? (digestsMatch ? "aa" : "bb") : nil,
        digestsMatch: outcome == "completed" && digestsMatch,
        precopyIterations: iterations, converged: converged,
        bytes: .init(precopy: 1 << 20, stopAndCopy: 4096, total: (1 << 20) + 4096),
        chunks: .init(precopy: 1, stopAndCopy: 1, resumeTransactions: 2),
        pendingSequence: [1 << 20, 0], bytesWhileStopped: 4096, downtimeEstimateMs: 0.004, sourceTimeMs: 1,
        failure: failure.map { MigrationReport.Failure(step: $0.step, errno: $0.errno, message: "synthetic") },
        sourceState: sourceState ?? (outcome == "completed" ? "stop" : "running"),
        destinationState: outcome == "completed" ? "running" : "stop",
        recoveredByReset: recovered, violations: violations, resumeDeviations: [])
}

/// Migrates `source` to `destination` in process with the reference client.
func migrate(_ source: MigrationRegion, _ destination: MigrationRegion, options: ClientOptions = ClientOptions()) -> MigrationReport {
    ReferenceClient(options: options).migrate(
        from: InProcessTransport(region: source, name: "source"),
        to: InProcessTransport(region: destination, name: "destination"))
}

// Part 1: in-process migration throughput against memcpy of the same bytes.
import Conformance
import DeviceSimulator
import Foundation
import MdevFS

struct MigrationRun: Codable, Sendable {
    /// From `migrate` being called until the client asked for the source digest: the whole save,
    /// stream transfer and resume, without either digest.
    var migrationSeconds: Double
    /// The two SHA-256 digests the report compares (source, destination), timed separately.
    var sourceDigestSeconds: Double
    var destinationDigestSeconds: Double
    /// `migrate` from call to return, digests included.
    var reportSeconds: Double
    var gbPerSecond: Double
    var streamBytes: UInt64
    var resumeTransactions: Int
    var precopyIterations: Int
    /// Minor page faults taken during the timed part (the destination materializing its memory).
    var minorFaults: UInt64
    var outcome: String
    var digestsMatch: Bool
}

struct ThroughputFigures: Codable, Sendable {
    var deviceBytes: UInt64
    var chunkBytes: UInt64
    var repeats: Int
    var runs: [MigrationRun]
    var baselines: [MemcpyBaselines]
    var migrationGbPerSecond: Spread
    var memcpyPrefaultedOneCallGbPerSecond: Spread
    var memcpyPrefaultedPiecesGbPerSecond: Spread
    var memcpyFirstTouchPiecesGbPerSecond: Spread
    /// Migration GB/s over memcpy GB/s, per repeat (each repeat pairs a migration with its own
    /// baselines), then the median. The headline baseline is pre-faulted memcpy in 1 MiB pieces.
    var ratioToMemcpy: Spread
    var ratioToMemcpyOneCall: Spread
    var ratioToFirstTouchMemcpy: Spread
    var digestSecondsMedian: Double
    var goalRatio: Double
    var meetsGoal: Bool
}

struct ThroughputPart {
    let size: UInt64
    let chunk: UInt64
    let repeats: Int
    let out: Printer

    func run() throws -> ThroughputFigures {
        out.line()
        out.line("== 1. Migration throughput: \(ByteSize.format(size)) untouched device, no dirtying, \(ByteSize.format(chunk)) chunks, mapped data access, \(repeats) repeats")
        var runs: [MigrationRun] = []
        var baselines: [MemcpyBaselines] = []
        for i in 1...repeats {
            out.progress("repeat \(i)/\(repeats): memcpy baselines of \(ByteSize.format(size))")
            let b = try MemcpyBaselines.measure(bytes: size, piece: Int(chunk), out: out)
            baselines.append(b)
            out.line(String(format: "  repeat %d memcpy: pre-faulted one call %.2f GB/s, pre-faulted 1 MiB pieces %.2f GB/s, first-touch destination %.2f GB/s",
                            i, gbps(size, b.prefaultedOneCallSeconds), gbps(size, b.prefaultedPiecesSeconds), gbps(size, b.firstTouchPiecesSeconds)))
            out.progress("repeat \(i)/\(repeats): migrating \(ByteSize.format(size))")
            let r = try migrateOnce()
            runs.append(r)
            out.line(String(format: "  repeat %d migration: %.2f s -> %.2f GB/s", i, r.migrationSeconds, r.gbPerSecond)
                     + " (\(r.outcome), digests match: \(r.digestsMatch ? "yes" : "NO"), \(r.minorFaults) minor faults); excluded digests: "
                     + String(format: "source %.2f s, destination %.2f s; with digests %.2f s", r.sourceDigestSeconds, r.destinationDigestSeconds, r.reportSeconds))
            guard r.outcome == "completed", r.digestsMatch else {
                throw BenchError("migration repeat \(i) did not succeed: outcome \(r.outcome), digests match \(r.digestsMatch)")
            }
        }
        let migration = Spread(runs.map(\.gbPerSecond))
        let oneCall = Spread(baselines.map { gbps(size, $0.prefaultedOneCallSeconds) })
        let pieces = Spread(baselines.map { gbps(size, $0.prefaultedPiecesSeconds) })
        let firstTouch = Spread(baselines.map { gbps(size, $0.firstTouchPiecesSeconds) })
        let ratio = Spread(zip(runs, baselines).map { $0.gbPerSecond / gbps(size, $1.prefaultedPiecesSeconds) })
        let ratioOne = Spread(zip(runs, baselines).map { $0.gbPerSecond / gbps(size, $1.prefaultedOneCallSeconds) })
        let ratioFirst = Spread(zip(runs, baselines).map { $0.gbPerSecond / gbps(size, $1.firstTouchPiecesSeconds) })
        let digest = Spread(runs.map { $0.sourceDigestSeconds + $0.destinationDigestSeconds }).median
        let goal = 0.5
        let figures = ThroughputFigures(
            deviceBytes: size, chunkBytes: chunk, repeats: repeats, runs: runs, baselines: baselines,
            migrationGbPerSecond: migration, memcpyPrefaultedOneCallGbPerSecond: oneCall, memcpyPrefaultedPiecesGbPerSecond: pieces,
            memcpyFirstTouchPiecesGbPerSecond: firstTouch, ratioToMemcpy: ratio, ratioToMemcpyOneCall: ratioOne,
            ratioToFirstTouchMemcpy: ratioFirst, digestSecondsMedian: digest, goalRatio: goal, meetsGoal: ratio.median >= goal)
        out.line("  migration GB/s (digests excluded):          " + migration.text())
        out.line("  memcpy GB/s, pre-faulted, one call:         " + oneCall.text())
        out.line("  memcpy GB/s, pre-faulted, 1 MiB pieces:     " + pieces.text())
        out.line("  memcpy GB/s, first-touch dst, 1 MiB pieces: " + firstTouch.text())
        out.line("  ratio to memcpy (pre-faulted, 1 MiB pieces; the headline): " + ratio.text("%.3f")
                 + "  goal >= \(goal): \(figures.meetsGoal ? "MET" : "NOT MET")")
        out.line("  ratio to memcpy (pre-faulted, one call):                   " + ratioOne.text("%.3f"))
        out.line("  ratio to memcpy (first-touch destination, 1 MiB pieces):   " + ratioFirst.text("%.3f"))
        return figures
    }

    private func migrateOnce() throws -> MigrationRun {
        let config = benchConfiguration(memory: size, chunk: chunk)
        try config.validate()
        let source = MigrationRegion(configuration: config, identity: "bench-source", extents: benchExtents)
        let destination = MigrationRegion(configuration: config, identity: "bench-destination", extents: benchExtents)
        let out = self.out
        let size = self.size, chunk = self.chunk
        let start = ContinuousClock.now
        let every = max(1, Int((512 << 20) / chunk))
        let src = TimedTransport(InProcessTransport(region: source, name: "source", useMapping: true))
        let dst = TimedTransport(InProcessTransport(region: destination, name: "destination", useMapping: true)) { n in
            guard n % every == 0 else { return }
            let moved = UInt64(n) * chunk
            out.progress("migrated \(ByteSize.format(moved)) of \(ByteSize.format(size))"
                         + String(format: " (%.2f GB/s so far)", gbps(moved, seconds(ContinuousClock.now - start))))
        }
        let client = ReferenceClient(options: ClientOptions(dataAccess: .mapped))
        let faults0 = ProcessFigures.minorFaults
        let t0 = ContinuousClock.now
        let report = client.migrate(from: src, to: dst)
        let t1 = ContinuousClock.now
        let marks = [src.digestStarted, dst.digestStarted].compactMap { $0 }
        guard let end = marks.min() else {
            throw BenchError("the migration ended without a digest (outcome \(report.outcome): \(report.failure?.message ?? "no message"))")
        }
        let faultsAtEnd = [src.faultsAtDigest, dst.faultsAtDigest].compactMap { $0 }.min() ?? ProcessFigures.minorFaults
        let migration = seconds(end - t0)
        out.progress("verifying: source and destination digests took \(String(format: "%.2f s and %.2f s", src.digestSeconds, dst.digestSeconds))")
        return MigrationRun(
            migrationSeconds: migration, sourceDigestSeconds: src.digestSeconds, destinationDigestSeconds: dst.digestSeconds,
            reportSeconds: seconds(t1 - t0), gbPerSecond: gbps(size, migration), streamBytes: report.bytes.total,
            resumeTransactions: report.chunks.resumeTransactions, precopyIterations: report.precopyIterations,
            minorFaults: faultsAtEnd - faults0, outcome: report.outcome, digestsMatch: report.digestsMatch)
    }
}

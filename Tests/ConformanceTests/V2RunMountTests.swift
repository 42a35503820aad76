@testable import Conformance
import Foundation
import FUSEKit
import Glibc
import Scenarios
import Testing
import TestSupport

/// `mdevsim run` under v2 through a real FUSE mount, its traces and their replay; and the
/// command's `--protocol`. Never skipped (fails clearly without /dev/fuse).
@Suite(.serialized) struct V2RunMountTests {
    @Test func aV2TraceRecordedThroughAMountReplaysAndATamperedOneDivergesAtItsLine() throws {
        try MountHelpers.checkFUSEDevice()
        let mountpoint = try RunMountpoint()
        defer { mountpoint.remove() }
        let dir = try makeTemporaryDirectory("mdevsim-v2-run-trace")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let scenario = try RunProtocolTests.both()
        var runner = ScenarioRunner(mode: .fuse, mountpoint: mountpoint.path)
        runner.traceDirectory = dir
        let result = runner.run(ScenarioEntry(file: "both-small.yaml", scenario: .success(scenario), migrationProtocol: .v2))
        #expect(result.passed, "\(result.verdict.mismatches)")
        #expect(result.entryName == "both-small [v2]")
        #expect(RunnerMountTests.mountsUnder(mountpoint.path).isEmpty)

        let path = ScenarioRunner.tracePath(directory: dir, scenario: scenario.name, protocol: .v2)
        let trace = try TraceFile.load(path: path)
        #expect(trace.header.recorder == "run" && trace.header.formatVersion == 2)
        // The mount's v2 files saw every kind of v2 call the client makes.
        let ops = Set(trace.entries.map(\.record.op))
        #expect(ops.isSuperset(of: [.v2Set, .v2Get, .v2Read, .v2Write, .v2PrecopyInfo, .v2DataSize]), "\(ops)")
        let outcome = try TraceReplay(trace: trace, scenario: scenario).run()
        #expect(outcome.divergence == nil, "\(outcome.divergence?.description ?? "")")
        #expect(outcome.matched > 0)

        // Tamper with the second successful data_fd read's digest: the replay stops at that line.
        var lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let reads = trace.entries.filter { $0.record.op == .v2Read && $0.record.digest != nil }
        let target = try #require(reads.dropFirst().first)
        let digest = try #require(target.record.digest)
        lines[target.line - 1] = lines[target.line - 1].replacingOccurrences(of: digest, with: String(repeating: "0", count: digest.count))
        let tampered = dir + "/tampered.trace.jsonl"
        try lines.joined(separator: "\n").write(toFile: tampered, atomically: true, encoding: .utf8)
        let diverged = try TraceReplay(trace: try TraceFile.load(path: tampered), scenario: scenario).run()
        let divergence = try #require(diverged.divergence)
        #expect(divergence.line == target.line)
        #expect(divergence.got?.digest == digest)
        #expect(TraceReplay.describe(divergence.access).hasPrefix("data_fd read of"))

        // A SET whose recorded answer is changed (another state reached) diverges at its line too.
        let set = try #require(trace.entries.first { $0.record.op == .v2Set && $0.record.to == "PRE_COPY" })
        lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines[set.line - 1] = lines[set.line - 1].replacingOccurrences(of: "\"state\":\"PRE_COPY\"", with: "\"state\":\"ERROR\"")
        try lines.joined(separator: "\n").write(toFile: tampered, atomically: true, encoding: .utf8)
        let setDivergence = try #require(try TraceReplay(trace: try TraceFile.load(path: tampered), scenario: scenario).run().divergence)
        #expect(setDivergence.line == set.line)
        #expect(setDivergence.got?.state == "PRE_COPY" && setDivergence.expected?.state == "ERROR")
    }

    @Test func runPlaysBothProtocolsAndProtocolRestricts() throws {
        try MountHelpers.checkFUSEDevice()
        let dir = try makeTemporaryDirectory("mdevsim-v2-run")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try RunProtocolTests.bothText.write(toFile: dir + "/both-small.yaml", atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: libraryDirectory + "/small-converges.yaml", toPath: dir + "/small-converges.yaml")

        // Through the mount (the default): three entries, two of one scenario.
        let all = try CommandContractTests.mdevsim(["run", "--quiet", "--junit", dir + "/all.xml", "--json", dir + "/all.json", "--trace", dir + "/traces", dir])
        #expect(all.status == 0, "\(all.stdout)\(all.stderr)")
        let verdicts = all.stdout.split(separator: "\n").filter { $0.hasPrefix("PASS") || $0.hasPrefix("FAIL") }
            .map { $0.components(separatedBy: "  ").first ?? "" }
        #expect(verdicts == ["PASS both-small", "PASS both-small [v2]", "PASS small-converges"], "\(all.stdout)")
        #expect(all.stdout.contains("3 passed, 0 failed"), "\(all.stdout)")
        #expect(ReportSchemas.junitProblem(dir + "/all.xml") == nil)
        #expect(ReportSchemas.jsonProblem(dir + "/all.json") == nil)
        let traces = try FileManager.default.contentsOfDirectory(atPath: dir + "/traces").sorted()
        #expect(traces == ["both-small.trace.jsonl", "both-small.v2.trace.jsonl", "small-converges.trace.jsonl"])
        let replay = try CommandContractTests.mdevsim(["replay", dir + "/traces/both-small.v2.trace.jsonl"])
        #expect(replay.status == 0, "\(replay.stdout)\(replay.stderr)")

        // --protocol v2 keeps the one v2 entry.
        let v2 = try CommandContractTests.mdevsim(["run", "--quiet", "--in-process", "--protocol", "v2", "--json", dir + "/v2.json", dir])
        #expect(v2.status == 0, "\(v2.stdout)\(v2.stderr)")
        #expect(v2.stdout.contains("PASS both-small [v2]") && !v2.stdout.contains("small-converges"), "\(v2.stdout)")
        #expect(v2.stdout.contains("1 passed, 0 failed"), "\(v2.stdout)")
        let object = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/v2.json"))) as? [String: Any])
        #expect((object["scenarios"] as? [[String: Any]])?.map { $0["protocol"] as? String } == ["v2"])

        // No selected scenario speaks v2: an empty selection (status 5).
        let none = try CommandContractTests.mdevsim(["run", "--quiet", "--in-process", "--protocol", "v2", dir + "/small-converges.yaml"])
        #expect(none.status == 5, "\(none.stdout)\(none.stderr)")
        #expect(none.stderr.contains("has types that speak v2"), "\(none.stderr)")
    }
}

@testable import Conformance
import DeviceSimulator
import Foundation
import FoundationXML
import MigrationProtocol
import Scenarios
import SystemPackage
import Testing
import TestSupport

/// `mdevsim run` under every protocol a scenario's types offer, in process: the entries, their
/// names in the reports, `--protocol`, and the v2 verdict of a v1-only expectation.
@Suite struct RunProtocolTests {
    /// A small device speaking both protocols (a quick v2 run, a short trace).
    static let bothText = """
        # Exercises: a small device speaking v1 and v2, for the run and trace tests.
        name: both-small
        seed: 7
        types:
          - type: mdevsim-both-small
            memory: 2MiB
            dirty: {rate: 1MiB/s}
            protocols: [v1, v2]
            v2: {p2p: true, pre_copy: true}
        migration:
          source: mdevsim-both-small
        expect:
          outcome: success
        """

    static func both() throws -> Scenario { try ScenarioLoader.parse(bothText, file: "both-small.yaml") }

    static func v1Only() throws -> Scenario {
        try ScenarioLoader.load(contentsOf: FilePath("\(libraryDirectory)/small-converges.yaml"))
    }

    @Test func aScenarioOfBothProtocolsIsTwoEntriesAndAV1OneIsOne() throws {
        let entries = [ScenarioEntry(file: "both-small.yaml", scenario: .success(try Self.both())),
                       ScenarioEntry(file: "small-converges.yaml", scenario: .success(try Self.v1Only()))]
        let all = ScenarioCatalog.perProtocol(entries)
        #expect(all.map(\.entryName) == ["both-small", "both-small [v2]", "small-converges"])
        #expect(all.map(\.migrationProtocol) == [.v1, .v2, .v1])
        #expect(ScenarioCatalog.perProtocol(entries, only: .v2).map(\.entryName) == ["both-small [v2]"])
        #expect(ScenarioCatalog.perProtocol(entries, only: .v1).map(\.entryName) == ["both-small", "small-converges"])
    }

    @Test func bothEntriesPassWithDistinctNamesInJUnitAndJSON() throws {
        let runner = ScenarioRunner(mode: .inProcess)
        let entries = ScenarioCatalog.perProtocol([ScenarioEntry(file: "both-small.yaml", scenario: .success(try Self.both()))])
        let results = entries.map { runner.run($0) }
        #expect(results.map(\.status) == [.passed, .passed], "\(results.map(\.verdict.mismatches))")
        #expect(results.map(\.migrationProtocol) == [.v1, .v2])
        #expect(results[1].report?.destinationState == "RUNNING")
        let summary = RunSummary(mode: .inProcess, results: results, durationSeconds: 0)
        #expect(summary.passed == 2)

        let junit = RunReports.junit(summary)
        #expect(ReportSchemas.junitProblem(text: junit) == nil)
        let document = try XMLDocument(xmlString: junit)
        let cases = try document.nodes(forXPath: "//testcase").compactMap { $0 as? XMLElement }
        #expect(cases.compactMap { $0.attribute(forName: "name")?.stringValue } == ["both-small", "both-small [v2]"])
        let protocols = try document.nodes(forXPath: "//testcase/properties/property[@name='protocol']/@value").map { $0.stringValue ?? "" }
        #expect(protocols == ["vfio-migration-v1", "vfio-migration-v2"])

        let json = try RunReports.json(summary)
        #expect(ReportSchemas.jsonProblem(data: json) == nil)
        let object = try #require(JSONSerialization.jsonObject(with: json) as? [String: Any])
        let scenarios = try #require(object["scenarios"] as? [[String: Any]])
        #expect(scenarios.map { $0["protocol"] as? String } == ["v1", "v2"])
        #expect(scenarios.map { $0["name"] as? String } == ["both-small", "both-small"])
        // Read back, each entry keeps its protocol (mdevsim report REPORT.json).
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let back = try decoder.decode(RunSummary.self, from: json)
        #expect(back.results.map(\.entryName) == ["both-small", "both-small [v2]"])
    }

    @Test func aV1StepUnderV2IsNotedNotSilentlyPassed() {
        let failed = report(outcome: "failed", failure: ("source data_fd read in stop-copy", "EIO"), sourceState: "RUNNING")
        let v1Field = Expectation(outcome: .failure(errno: .ioError, step: .access(field: .dataOffset, operation: .read, state: DeviceState.stopAndCopy.bits)))
        let verdict = Judge.judge(failed, against: v1Field, protocol: .v2)
        #expect(verdict.passed, "\(verdict.mismatches)")
        #expect(verdict.notes.count == 1)
        #expect(verdict.notes.first?.contains("step 'data_offset read in stop-and-copy' names the v1 region") == true)
        // A data step has a v2 counterpart: it is checked, phase included.
        let data = Expectation(outcome: .failure(errno: .ioError, step: .data(operation: .read, state: DeviceState.stopAndCopy.bits)))
        #expect(Judge.judge(failed, against: data, protocol: .v2) == Verdict())
        let precopy = Expectation(outcome: .failure(errno: .ioError, step: .data(operation: .read, state: DeviceState.preCopy.bits)))
        #expect(!Judge.judge(failed, against: precopy, protocol: .v2).passed)
        // Under v2 the source must be back in RUNNING, by its v2 name.
        let stopped = report(outcome: "failed", failure: ("source data_fd read in stop-copy", "EIO"), sourceState: "STOP")
        #expect(!Judge.judge(stopped, against: data, protocol: .v2).passed)
    }

    @Test func anInProcessV2TraceReplaysWithNoDivergence() throws {
        let dir = try makeTemporaryDirectory("mdevsim-v2-trace")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var runner = ScenarioRunner(mode: .inProcess)
        runner.traceDirectory = dir
        runner.reproducible = true
        let entries = ScenarioCatalog.perProtocol([ScenarioEntry(file: "both-small.yaml", scenario: .success(try Self.both()))])
        for entry in entries { #expect(runner.run(entry).passed) }
        // One file per protocol: the v1 trace is not overwritten by the v2 one.
        let v1 = try TraceFile.load(path: ScenarioRunner.tracePath(directory: dir, scenario: "both-small"))
        let v2Path = ScenarioRunner.tracePath(directory: dir, scenario: "both-small", protocol: .v2)
        #expect(v2Path.hasSuffix("/both-small.v2.trace.jsonl"))
        let v2 = try TraceFile.load(path: v2Path)
        #expect(!v1.entries.contains { $0.record.op.isV2 })
        #expect(v2.header.formatVersion == 2)
        let ops = Set(v2.entries.map(\.record.op))
        #expect(ops.isSuperset(of: [.create, .v2Set, .v2Get, .v2Read, .v2Write, .v2PrecopyInfo, .v2DataSize, .remove]), "\(ops)")
        let outcome = try TraceReplay(trace: v2, scenario: try Self.both()).run()
        #expect(outcome.divergence == nil, "\(outcome.divergence?.description ?? "")")
        #expect(outcome.matched == v2.entries.filter { $0.record.op.isV2 }.count)
    }

    /// Through the command: a v1 fault scenario whose type also speaks v2 fails the same way under
    /// v2, and the v2 entry's result line says that its v1 `step:` was not checked.
    @Test func theResultLineSaysWhatWasNotCheckedUnderV2() throws {
        let dir = try makeTemporaryDirectory("mdevsim-v2-note")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let text = try String(contentsOfFile: libraryDirectory + "/fault-fail-data-offset.yaml", encoding: .utf8)
            .replacingOccurrences(of: "    memory: 8MiB\n", with: "    memory: 2MiB\n    protocols: [v1, v2]\n")
        try text.write(toFile: dir + "/fault.yaml", atomically: true, encoding: .utf8)
        let r = try CommandContractTests.mdevsim(["run", "--in-process", "--quiet", "--json", dir + "/r.json", dir + "/fault.yaml"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("PASS fault-fail-data-offset  ") }, "\(r.stdout)")
        let v2 = try #require(lines.firstIndex { $0.hasPrefix("PASS fault-fail-data-offset [v2]") }, "\(r.stdout)")
        #expect(lines[v2].contains("failed at 'source data_fd read in stop-copy' (EIO)"), "\(r.stdout)")
        #expect(lines[v2 + 1].hasPrefix("    ~ not checked under v2: step 'data_offset read in stop-and-copy' names the v1 region"), "\(r.stdout)")
        #expect(ReportSchemas.jsonProblem(dir + "/r.json") == nil)
        let object = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/r.json"))) as? [String: Any])
        let verdicts = (object["scenarios"] as? [[String: Any]])?.map { $0["verdict"] as? [String: Any] }
        #expect(verdicts?.first??["notes"] == nil)
        #expect((verdicts?.last??["notes"] as? [String])?.count == 1)
    }

    /// A v2 record needs a version 2 header and the uAPI's state names; version 1 traces still read.
    @Test func v2RecordsAreCheckedWhenATraceIsRead() throws {
        func header(_ version: Int) -> String {
            "{\"format\":\"mdevsim-trace\",\"format_version\":\(version),\"scenario\":\"both-small\",\"seed\":7,\"strict\":false,\"recorder\":\"in-process\",\"devices\":{}}"
        }
        let create = "{\"time_ns\":0,\"device\":\"d\",\"op\":\"create\",\"type\":\"mdevsim-both-small\",\"result\":\"ok\"}"
        let set = "{\"time_ns\":0,\"device\":\"d\",\"op\":\"v2_set\",\"from\":\"RUNNING\",\"to\":\"PRE_COPY\",\"state\":\"PRE_COPY\",\"session\":1,\"result\":\"ok\"}"
        #expect(try TraceFile.parse(Data([header(1), create].joined(separator: "\n").utf8)).entries.count == 1)
        #expect(try TraceFile.parse(Data([header(2), create, set].joined(separator: "\n").utf8)).entries.count == 2)
        #expect(throws: TraceFile.Malformed.self) { try TraceFile.parse(Data([header(1), create, set].joined(separator: "\n").utf8)) }
        let bad = set.replacingOccurrences(of: "\"to\":\"PRE_COPY\"", with: "\"to\":\"pre-copy-ish\"")
        do {
            _ = try TraceFile.parse(Data([header(2), create, bad].joined(separator: "\n").utf8))
            Issue.record("a bad state name was accepted")
        } catch {
            #expect(error.line == 3 && error.reason.contains("'to' is 'pre-copy-ish', not a v2 state"), "\(error)")
        }
        #expect(throws: TraceFile.Malformed.self) { try TraceFile.parse(Data([header(3), create].joined(separator: "\n").utf8)) }
        // A v2 record of a device whose type speaks only v1 is a misfit, not a divergence.
        let trace = try TraceFile.parse(Data([header(2), create, set].joined(separator: "\n").utf8))
        var v1Only = try Self.both()
        v1Only.types[0].configuration.protocols = .v1
        #expect(throws: TraceReplay.Mismatch.self) { try TraceReplay(trace: trace, scenario: v1Only) }
        let replay = try TraceReplay(trace: trace, scenario: try Self.both()).run()
        #expect(replay.divergence == nil, "\(replay.divergence?.description ?? "")")
    }
}

import Conformance
import DeviceSimulator
import Foundation
import MigrationProtocol
import Scenarios
import SystemPackage
import Testing

/// A small scenario file: 2 MiB devices with 256 KiB chunks, dirtying while pre-copy runs.
func traceScenarioText(seed: UInt64 = 7, access: String = "mmap", extra: String = "") -> String {
    """
    name: trace-test
    seed: \(seed)
    types:
      - type: trace-dev
        memory: 2MiB
        page_size: 4KiB
        content_seed: 5
        config_size: 4KiB
        data_section: 256KiB
        mmap: true
        chunk_size: 256KiB
        dirty: {rate: 64MiB/s, pattern: uniform}
        link_bandwidth: 1GiB/s
    \(extra)
    migration:
      source: trace-dev
      client: {access: \(access), stop_threshold: 64KiB, max_precopy_iterations: 8}
    """
}

/// A temporary directory removed at the end of the test.
final class TraceDirectory {
    let path: String
    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("mdevsim-trace-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }
}

/// Migrates `scenario` in process with a trace to `path`; returns the report.
@discardableResult
func recordInProcess(_ scenario: Scenario, to path: String, strict: Bool = false) throws -> MigrationReport {
    let writer = try TraceWriter(path: path, header: TraceHeader(scenario: scenario, scenarioPath: nil, strict: strict, recorder: "in-process"))
    var migration = InProcessMigration(scenario: scenario)
    migration.observer = TraceRecorder(sink: writer)
    let report = try migration.run().0
    #expect(writer.close() == nil)
    return report
}

@Suite struct TraceTests {
    @Test(arguments: ["mmap", "pread"])
    func inProcessMigrationReplaysClean(access: String) throws {
        let dir = try TraceDirectory()
        let scenario = try ScenarioLoader.parse(traceScenarioText(access: access))
        let report = try recordInProcess(scenario, to: dir.file("t.jsonl"))
        #expect(report.succeeded)
        let trace = try TraceFile.load(path: dir.file("t.jsonl"))
        let ops = trace.entries.map(\.record.op)
        #expect(ops.filter { $0 == .create }.count == 2)
        if access == "mmap" {
            // The mapping moves the data: staged chunks and applied bytes carry it.
            #expect(ops.contains(.stage) && ops.contains(.apply))
            #expect(!trace.entries.contains { $0.record.op == .write && !$0.record.isHeaderAccess })
        } else {
            // pwrites cover every resume transaction: no apply repeats their bytes.
            #expect(!ops.contains(.apply))
            #expect(trace.entries.contains { $0.record.op == .read && !$0.record.isHeaderAccess && $0.record.digest != nil })
        }
        // Times are monotonic down the file.
        let times = trace.entries.map(\.record.timeNs)
        #expect(times == times.sorted())

        let outcome = try TraceReplay(trace: trace, scenario: scenario).run()
        #expect(outcome.divergence == nil, "\(outcome.divergence?.description ?? "")")
        #expect(outcome.recordsMatched == trace.entries.count)
        #expect(outcome.devices == 2)
    }

    @Test func aMutatedValueIsReportedAtItsLine() throws {
        let dir = try TraceDirectory()
        let scenario = try ScenarioLoader.parse(traceScenarioText())
        try recordInProcess(scenario, to: dir.file("t.jsonl"))
        var lines = try String(contentsOfFile: dir.file("t.jsonl"), encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        // The third pending_bytes read: well inside pre-copy, after chunks moved.
        let pendingReads = lines.indices.filter { lines[$0].contains("\"op\":\"read\",\"offset\":8,") }
        #expect(pendingReads.count > 3)
        let index = pendingReads[2]
        let record = try JSONDecoder.snake.decode(TraceRecord.self, from: Data(lines[index].utf8))
        var changed = record
        changed.value = (record.value ?? 0) + 4096
        lines[index] = changed.jsonLine
        try lines.joined(separator: "\n").write(toFile: dir.file("t.jsonl"), atomically: true, encoding: .utf8)

        let trace = try TraceFile.load(path: dir.file("t.jsonl"))
        let outcome = try TraceReplay(trace: trace, scenario: scenario).run()
        let divergence = try #require(outcome.divergence)
        #expect(divergence.line == index + 1)
        #expect(divergence.expected?.value == changed.value)
        #expect(divergence.got?.value == record.value)
        #expect(divergence.description.contains("read pending_bytes (offset 8, width 8)"))
    }

    @Test(arguments: ["mmap", "pread"])
    func anotherSeedDivergesAtTheFirstData(access: String) throws {
        let dir = try TraceDirectory()
        let scenario = try ScenarioLoader.parse(traceScenarioText(access: access))
        try recordInProcess(scenario, to: dir.file("t.jsonl"))
        let trace = try TraceFile.load(path: dir.file("t.jsonl"))
        let other = try ScenarioLoader.parse(traceScenarioText(seed: 8, access: access))
        let outcome = try TraceReplay(trace: trace, scenario: other).run()
        let divergence = try #require(outcome.divergence)
        // Header answers do not depend on the memory's contents; the first chunk's bytes do.
        let firstData = try #require(trace.entries.first { $0.record.op == .stage || ($0.record.op == .read && !$0.record.isHeaderAccess) })
        #expect(divergence.line == firstData.line)
        #expect(divergence.expected?.digest != nil && divergence.got?.digest != nil)
        #expect(divergence.expected?.digest != divergence.got?.digest)
    }

    /// Faults fire on the same accesses in a replay: a failing migration replays clean too.
    @Test(arguments: ["fault-corrupt-on-resume", "fault-short-read", "fault-pending-grows", "reserved-bits", "cancel-in-precopy"])
    func libraryScenarioReplaysClean(name: String) throws {
        let dir = try TraceDirectory()
        let scenario = try ScenarioLoader.load(contentsOf: .init("\(libraryDirectory)/\(name).yaml"))
        try recordInProcess(scenario, to: dir.file("t.jsonl"))
        let trace = try TraceFile.load(path: dir.file("t.jsonl"))
        let outcome = try TraceReplay(trace: trace, scenario: scenario).run()
        #expect(outcome.divergence == nil, "\(outcome.divergence?.description ?? "")")
        #expect(outcome.recordsMatched == trace.entries.count)
    }

    /// `run --trace DIR`: one file per scenario, named after it, with the file's path in the header.
    @Test func theRunnerWritesOneReplayableTracePerScenario() throws {
        let dir = try TraceDirectory()
        let file = dir.file("s.yaml")
        try traceScenarioText(access: "pread").write(toFile: file, atomically: true, encoding: .utf8)
        var runner = ScenarioRunner(mode: .inProcess)
        runner.traceDirectory = dir.path
        let entries = try ScenarioCatalog.collect([file])
        #expect(runner.run(entries[0]).passed)
        let trace = try TraceFile.load(path: ScenarioRunner.tracePath(directory: dir.path, scenario: "trace-test"))
        #expect(trace.header.scenarioPath == file && trace.header.recorder == "in-process" && trace.header.seed == 7)
        let scenario = try ScenarioLoader.load(contentsOf: FilePath(file))
        let outcome = try TraceReplay(trace: trace, scenario: scenario).run()
        #expect(outcome.divergence == nil && outcome.recordsMatched == trace.entries.count)
    }

    @Test func aScenarioWithoutTheTracesTypeIsRefused() throws {
        let dir = try TraceDirectory()
        let scenario = try ScenarioLoader.parse(traceScenarioText())
        try recordInProcess(scenario, to: dir.file("t.jsonl"))
        let trace = try TraceFile.load(path: dir.file("t.jsonl"))
        let other = try ScenarioLoader.parse(traceScenarioText().replacingOccurrences(of: "trace-dev", with: "other-dev"))
        #expect {
            try TraceReplay(trace: trace, scenario: other)
        } throws: { error in
            "\(error)".contains("type 'trace-dev', which scenario 'trace-test' does not define (it has other-dev)")
        }
    }

    @Test func aWallClockScenarioIsRefused() throws {
        let scenario = try ScenarioLoader.parse(traceScenarioText())
        let wall = try ScenarioLoader.parse(traceScenarioText().replacingOccurrences(of: "link_bandwidth: 1GiB/s", with: "link_bandwidth: 1GiB/s\n    clock: wall"))
        let text = header(scenario) + "\n" + #"{"time_ns":1,"device":"a","op":"create","type":"trace-dev","result":"ok"}"#
        let trace = try TraceFile.parse(Data(text.utf8))
        #expect(throws: TraceReplay.Mismatch.self) { try TraceReplay(trace: trace, scenario: wall) }
    }

    func header(_ scenario: Scenario) -> String {
        TraceRecordJSON.header(scenario)
    }

    static let malformed: [(String, Int, String)] = [
        ("{\"format\":\"something\"}", 1, "not a trace header"),
        ("HEADER\n{\"time_ns\":1,\"device\":\"a\",\"op\":\"create\",\"type\":\"trace-dev\",\"result\":\"ok\"}\nnot json", 3, "not a JSON object"),
        ("HEADER\n{\"time_ns\":1,\"device\":\"a\",\"op\":\"poke\",\"result\":\"ok\"}", 2, "'op' must be one of"),
        ("HEADER\n\n{\"time_ns\":1,\"op\":\"reset\",\"result\":\"ok\"}", 3, "missing 'device'"),
        ("HEADER\n{\"time_ns\":1,\"device\":\"a\",\"op\":\"read\",\"offset\":8,\"result\":\"ok\"}", 2, "needs 'width'"),
        ("HEADER\n{\"time_ns\":1,\"device\":\"a\",\"op\":\"write\",\"offset\":4096,\"count\":4,\"data\":\"AAAAAAAA\",\"result\":\"ok\"}", 2, "holds 6 bytes, count says 4"),
        ("HEADER\n{\"time_ns\":1,\"device\":\"a\",\"op\":\"read\",\"offset\":8,\"width\":8,\"result\":\"EWHAT\"}", 2, "neither ok nor an errno name"),
        ("HEADER\n{\"time_ns\":\"soon\",\"device\":\"a\",\"op\":\"reset\",\"result\":\"ok\"}", 2, "'time_ns' has the wrong type"),
        ("HEADER\n{\"time_ns\":1,\"device\":\"a\",\"op\":\"apply\",\"offset\":4096,\"count\":3,\"data\":\"AAAA\"}\n{\"time_ns\":1,\"device\":\"a\",\"op\":\"reset\",\"result\":\"ok\"}", 2, "must be followed by the data_size write"),
        ("", 1, "empty file"),
    ]

    @Test(arguments: 0..<malformed.count)
    func malformedLinesAreReportedWithTheirLineNumber(index: Int) throws {
        let (text, line, reason) = Self.malformed[index]
        let scenario = try ScenarioLoader.parse(traceScenarioText())
        let full = text.replacingOccurrences(of: "HEADER", with: header(scenario))
        #expect {
            try TraceFile.parse(Data(full.utf8), path: "x.jsonl")
        } throws: { error in
            guard let m = error as? TraceFile.Malformed else { return false }
            return m.line == line && m.reason.contains(reason) && m.description.hasPrefix("x.jsonl:\(line): ")
        }
    }

    @Test func anAccessToADeviceNeverCreatedIsRefused() throws {
        let scenario = try ScenarioLoader.parse(traceScenarioText())
        let text = header(scenario) + "\n" + #"{"time_ns":1,"device":"ghost","op":"read","offset":0,"width":4,"value":1,"result":"ok"}"#
        let trace = try TraceFile.parse(Data(text.utf8), path: "g.jsonl")
        #expect {
            try TraceReplay(trace: trace, scenario: scenario)
        } throws: { error in
            "\(error)" == "g.jsonl:2: device ghost is not created before this read"
        }
    }

    /// Records written from many threads at once: every line whole, times never going back.
    @Test func concurrentAppendsKeepLinesWholeAndOrdered() async throws {
        let dir = try TraceDirectory()
        let scenario = try ScenarioLoader.parse(traceScenarioText())
        let writer = try TraceWriter(path: dir.file("c.jsonl"), header: TraceHeader(scenario: scenario, scenarioPath: nil, strict: false, recorder: "test"))
        await withTaskGroup(of: Void.self) { group in
            for t in 0..<4 {
                group.addTask {
                    for i in 0..<2000 {
                        writer.append([TraceRecord(device: "d\(t)", op: .read, offset: 8, width: 8, value: UInt64(i), result: "ok"),
                                       TraceRecord(device: "d\(t)", op: .stage, offset: 4096, count: 1, digest: "ab")])
                    }
                }
            }
        }
        #expect(writer.close() == nil)
        let trace = try TraceFile.load(path: dir.file("c.jsonl"))
        #expect(trace.entries.count == 16000)
        let times = trace.entries.map(\.record.timeNs)
        #expect(times == times.sorted())
        // The two records of one append stay together.
        for pair in stride(from: 0, to: trace.entries.count, by: 2) {
            #expect(trace.entries[pair].record.device == trace.entries[pair + 1].record.device)
            #expect(trace.entries[pair + 1].record.op == .stage)
        }
    }

    /// The hand-written JSON is what JSONDecoder reads back, strings escaped.
    @Test func jsonLinesRoundTrip() throws {
        let record = TraceRecord(timeNs: 12, device: "we\"ird\\dev\n\u{1}", op: .write, offset: 4096, count: 2, data: "AAE=", result: "ok")
        let decoded = try JSONDecoder.snake.decode(TraceRecord.self, from: Data(record.jsonLine.utf8))
        #expect(decoded == record)
    }
}

extension JSONDecoder {
    static var snake: JSONDecoder {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return d
    }
}

enum TraceRecordJSON {
    static func header(_ scenario: Scenario) -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        let data = (try? encoder.encode(TraceHeader(scenario: scenario, scenarioPath: nil, strict: false, recorder: "test"))) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}

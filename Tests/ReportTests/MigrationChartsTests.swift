@testable import Conformance
import DeviceSimulator
import Foundation
import MigrationProtocol
@testable import Report
import Scenarios
import SystemPackage
import Testing

/// A header access record.
func header(_ t: UInt64, _ device: String, _ op: TraceRecord.Operation, _ field: HeaderField, _ value: UInt64?, result: String = "ok") -> TraceRecord {
    TraceRecord(timeNs: t, device: device, op: op, offset: field.offset, width: field == .deviceState ? 4 : 8, value: value, result: result)
}

/// A failed migration, by hand: the source fails its first stop-and-copy data_offset read
/// (EIO) and is rolled back to running; the destination is stopped.
let knownTrace: [TraceRecord] = [
    TraceRecord(timeNs: 0, device: "s", op: .create, type: "t", result: "ok"),
    TraceRecord(timeNs: 10, device: "d", op: .create, type: "t", result: "ok"),
    header(20, "d", .write, .deviceState, 4),
    header(25, "s", .read, .deviceState, 1),
    header(30, "s", .write, .deviceState, 3),
    header(40, "s", .read, .pendingBytes, 300),
    header(50, "s", .read, .dataOffset, 4096),
    TraceRecord(timeNs: 50, device: "s", op: .stage, offset: 4096, count: 100),
    header(55, "s", .read, .dataSize, 100),
    header(60, "d", .read, .dataOffset, 4096),
    header(65, "d", .write, .dataSize, 100),
    header(70, "s", .read, .pendingBytes, 200),
    header(80, "s", .write, .deviceState, 2),
    header(85, "s", .read, .pendingBytes, 200),
    header(90, "s", .read, .dataOffset, nil, result: "EIO"),
    header(100, "s", .write, .deviceState, 1),
    header(110, "d", .write, .deviceState, 0),
]

@Suite struct MigrationChartsTests {
    @Test func stateSegmentsAndPhasesOfAKnownTrace() {
        let c = MigrationCharts(records: knownTrace)
        #expect(c.devices == [.source: "s", .destination: "d"])
        let source = c.segments(of: .source)
        #expect(source.map(\.bits) == [1, 3, 2, 1])
        #expect(source.map(\.start) == [0, 30, 80, 100] && source.map(\.end) == [30, 80, 100, 110])
        #expect(source.map(\.cause) == ["power-on", "written", "written", "written"])
        let destination = c.segments(of: .destination)
        #expect(destination.map(\.bits) == [1, 4, 0])
        #expect(destination.map(\.start) == [10, 20, 110])
        #expect(Set(c.phases) == [.init(name: "resume", start: 20, end: 110), .init(name: "pre-copy", start: 30, end: 80),
                                  .init(name: "stop-and-copy", start: 80, end: 100)])
    }

    @Test func convergenceChunksAndMarksOfAKnownTrace() {
        let c = MigrationCharts(records: knownTrace)
        // Only pre-copy reads: the stop-and-copy read at 85 is not a convergence point.
        #expect(c.pending.map(\.value) == [300, 200] && c.pending.map(\.index) == [1, 2] && c.pending.map(\.time) == [40, 70])
        #expect(c.chunks(in: "pre-copy").map(\.bytes) == [100])
        #expect(c.chunks(in: "stop-and-copy").isEmpty)
        #expect(c.chunks(in: "resume").map(\.bytes) == [100])
        #expect(c.marks.count == 1)
        #expect(c.marks.first?.kind == .errno && c.marks.first?.role == .source && c.marks.first?.time == 90)
        #expect(c.marks.first?.title.contains("data_offset read answered EIO in stop-and-copy (010b)") == true)
        #expect(c.failureRecordIndex == 14)
    }

    @Test func aViolationIsPlacedOnTheAccessThatBrokeTheRule() {
        var trace = knownTrace
        // The source reads pending_bytes with 4 bytes in pre-copy: an access-width violation.
        trace.insert(TraceRecord(timeNs: 45, device: "s", op: .read, offset: 8, width: 4, value: 300, result: "ok"), at: 6)
        var report = MigrationReport(outcome: "failed", sourceDigest: nil, destinationDigest: nil, digestsMatch: false, precopyIterations: 1, converged: false,
                                     bytes: .init(precopy: 100, stopAndCopy: 0, total: 100), chunks: .init(precopy: 1, stopAndCopy: 0, resumeTransactions: 1),
                                     pendingSequence: [300, 200, 200], bytesWhileStopped: 0, downtimeEstimateMs: 0, sourceTimeMs: 0, failure: nil,
                                     sourceState: "running", destinationState: "stop", recoveredByReset: nil, violations: ["source: [access-width] x"], resumeDeviations: [])
        report.violationDetails = [
            ViolationDetail(role: "source", rule: "access-width", citation: "uapi", explanation: "4-byte read of pending_bytes", state: 3,
                            access: RegionAccessRecord(operation: .read, offset: 8, count: 4, value: 300)),
            ViolationDetail(role: "destination", rule: "access-width", citation: "uapi", explanation: "never happened", state: 4,
                            access: RegionAccessRecord(operation: .read, offset: 8, count: 4)),
        ]
        let c = MigrationCharts(records: trace, report: report)
        let violations = c.marks.filter { $0.kind == .violation }
        #expect(violations.count == 1 && violations.first?.time == 45 && violations.first?.role == .source)
        #expect(violations.first?.title.contains("[access-width]") == true)
        #expect(c.unplacedViolations == ["destination: [access-width] never happened"])
        // A 4-byte read is no 8-byte pending_bytes point.
        #expect(c.pending.count == 2)
    }

    @Test func rolesComeFromWhatEachDeviceIsWrittenNotFromOrder() {
        // The destination appears first here; the saving write still names the source.
        let records = [header(0, "b", .write, .deviceState, 4), header(1, "a", .write, .deviceState, 3), header(2, "c", .read, .pendingBytes, 1)]
        #expect(MigrationCharts.roles(records) == [.source: "a", .destination: "b"])
        #expect(MigrationCharts.roles([header(0, "x", .read, .pendingBytes, 1), header(1, "y", .read, .pendingBytes, 1)]) == [.source: "x", .destination: "y"])
        #expect(MigrationCharts(records: []).segments.isEmpty)
    }

    /// The charts of a real migration agree with the reference client's own counters.
    @Test(arguments: ["small-converges", "never-converges", "fault-fail-data-offset", "paused-guest"])
    func chartsOfARealMigrationMatchTheClientsReport(name: String) throws {
        let scenario = try ScenarioLoader.load(contentsOf: FilePath(libraryDirectory + "/\(name).yaml"))
        let log = AccessLogRecorder(stopThreshold: scenario.migration.client.stopThreshold)
        var migration = InProcessMigration(scenario: scenario)
        migration.observer = log
        let report = try migration.run().0
        let c = MigrationCharts(records: log.log.records, report: report)
        // pendingSequence holds every read: stop-and-copy reads one more than it moves chunks.
        let stopReads = report.chunks.stopAndCopy + 1
        #expect(c.pending.map(\.value) == Array(report.pendingSequence.prefix(report.pendingSequence.count - stopReads)))
        #expect(c.chunks(in: "pre-copy").count == report.chunks.precopy)
        #expect(c.chunks(in: "stop-and-copy").count == report.chunks.stopAndCopy)
        #expect(c.chunks(in: "resume").count == report.chunks.resumeTransactions)
        #expect(c.chunks(in: "pre-copy").reduce(0) { $0 + $1.bytes } == report.bytes.precopy)
        #expect(c.chunks(in: "stop-and-copy").reduce(0) { $0 + $1.bytes } == report.bytes.stopAndCopy)
        let source = c.segments(of: .source).map { DeviceState.name(ofBits: $0.bits) }
        let destination = c.segments(of: .destination).map { DeviceState.name(ofBits: $0.bits) }
        switch name {
        case "paused-guest":
            #expect(source == ["running", "stop", "stop-and-copy", "stop"])
            #expect(c.pending.isEmpty)
        case "fault-fail-data-offset":
            #expect(source == ["running", "pre-copy", "stop-and-copy", "running"])
            #expect(c.marks.filter { $0.kind == .errno }.count == 1)
            #expect(report.firedFaults == ["source: eio-first-final-chunk"])
            #expect(c.marks.first?.title.hasSuffix("answered EIO in stop-and-copy (010b); faults that fired on the source: eio-first-final-chunk") == true)
        default:
            #expect(source == ["running", "pre-copy", "stop-and-copy", "stop"])
            #expect(destination == ["running", "resuming", "running"])
            #expect(c.marks.isEmpty)
        }
        #expect(source.last == report.sourceState && destination.last == report.destinationState)
    }
}

@Suite struct HandMadeTraceTests {
    /// `mdevsim report` reads any well-formed trace: times that go backwards and values no
    /// device reports draw a page, never trap.
    @Test func oddButWellFormedRecordsStillDrawAPage() {
        let records = [
            header(50, "s", .write, .deviceState, 3),
            header(10, "s", .read, .pendingBytes, .max),
            header(5, "d", .write, .deviceState, 4),
            header(4, "d", .write, .dataSize, .max),
            header(3, "d", .write, .dataSize, .max),
            header(2, "s", .read, .deviceState, 7),
            TraceRecord(timeNs: 1, device: "s", op: .stage, offset: 4096, count: .max),
        ]
        let c = MigrationCharts(records: records)
        #expect(c.pending.map(\.value) == [.max])
        #expect(c.chunks(in: "resume").count == 2 && MigrationCharts.total(c.chunks(in: "resume")) == .max &- 1)
        let page = ReportPage(title: "t", subtitle: "s", entries: [ReportEntry(name: "odd", records: records, stopThreshold: .max, recordsOrigin: "test")],
                              generator: "test")
        let html = page.html()
        #expect(html.contains("data-scenario=\"odd\"") && occurrences(of: "class=\"segment state-", in: html) >= 3)
        #expect(html.contains("invalid"), "state 111b is drawn, by name")
    }
}

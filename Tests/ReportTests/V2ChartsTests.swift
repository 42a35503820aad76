@testable import Conformance
import DeviceSimulator
import Foundation
import MigrationProtocol
@testable import Report
import Scenarios
import SystemPackage
import Testing

/// A v2 SET record.
func v2Set(_ t: UInt64, _ device: String, from: V2DeviceState, to: V2DeviceState, reached: V2DeviceState? = nil, result: String = "ok") -> TraceRecord {
    TraceRecord(timeNs: t, device: device, op: .v2Set, result: result, from: from.description, to: to.description, state: (reached ?? to).description)
}

/// A v2 migration by hand, with P2P and PRE_COPY: the destination resumes, the source pre-copies
/// (one PRECOPY_INFO, one read, one ENOMSG read), quiesces P2P, stops and copies, fails its
/// second stop-copy read (EIO) and is rolled back to RUNNING; the destination is left RESUMING.
let knownV2Trace: [TraceRecord] = [
    TraceRecord(timeNs: 0, device: "s", op: .create, type: "t", result: "ok"),
    TraceRecord(timeNs: 10, device: "d", op: .create, type: "t", result: "ok"),
    TraceRecord(timeNs: 15, device: "s", op: .v2DataSize, value: 4096, result: "ok"),
    v2Set(20, "d", from: .running, to: .resuming),
    v2Set(30, "s", from: .running, to: .preCopy),
    TraceRecord(timeNs: 40, device: "s", op: .v2PrecopyInfo, result: "ok", session: 1, initialBytes: 300, dirtyBytes: 20),
    TraceRecord(timeNs: 45, device: "s", op: .v2Read, count: 1 << 20, returned: 300, result: "ok", session: 1),
    TraceRecord(timeNs: 47, device: "d", op: .v2Write, count: 300, result: "ok", session: 2),
    TraceRecord(timeNs: 50, device: "s", op: .v2PrecopyInfo, result: "ok", session: 1, initialBytes: 0, dirtyBytes: 20),
    TraceRecord(timeNs: 55, device: "s", op: .v2Read, count: 1 << 20, result: "ENOMSG", session: 1),
    v2Set(60, "s", from: .preCopy, to: .preCopyP2P),
    v2Set(70, "s", from: .preCopyP2P, to: .stopCopy),
    TraceRecord(timeNs: 75, device: "s", op: .v2Read, count: 1 << 20, returned: 100, result: "ok", session: 1),
    TraceRecord(timeNs: 77, device: "d", op: .v2Write, count: 100, result: "ok", session: 2),
    TraceRecord(timeNs: 80, device: "s", op: .v2Read, count: 1 << 20, result: "EIO", session: 1),
    v2Set(90, "s", from: .stopCopy, to: .running),
    TraceRecord(timeNs: 100, device: "d", op: .remove, result: "ok"),
    TraceRecord(timeNs: 110, device: "s", op: .remove, result: "ok"),
]

@Suite struct V2ChartsTests {
    @Test func v2StatesArcsAndPhasesOfAKnownTrace() {
        let c = MigrationCharts(records: knownV2Trace)
        #expect(c.migrationProtocol == .v2)
        #expect(c.devices == [.source: "s", .destination: "d"])
        let source = c.segments(of: .source)
        #expect(source.map(\.state) == [.v2(.running), .v2(.preCopy), .v2(.preCopyP2P), .v2(.stopCopy), .v2(.running)])
        #expect(source.map(\.start) == [0, 30, 60, 70, 90] && source.map(\.end) == [30, 60, 70, 90, 110])
        // Each SET's arc, in the uAPI's words; STOP_COPY -> RUNNING is a walk (via STOP, RUNNING_P2P).
        #expect(source[0].cause == "power-on")
        #expect(source[1].cause == "SET PRE_COPY: RUNNING -> PRE_COPY, a save session begins while running: a new data_fd streams the initial state")
        #expect(source[3].cause.hasPrefix("SET STOP_COPY: PRE_COPY_P2P -> STOP_COPY, the same save session goes on"))
        #expect(source[4].cause == "SET RUNNING: STOP_COPY -> RUNNING, a walk of several arcs on the kernel's path")
        let destination = c.segments(of: .destination)
        #expect(destination.map(\.state) == [.v2(.running), .v2(.resuming)] && destination.map(\.end) == [20, 100])
        #expect(Set(c.phases) == [.init(name: "resume", start: 20, end: 100), .init(name: "pre-copy", start: 30, end: 60),
                                  .init(name: "pre-copy", start: 60, end: 70), .init(name: "stop-and-copy", start: 70, end: 90)])
    }

    @Test func v2ConvergenceChunksAndMarksOfAKnownTrace() {
        let c = MigrationCharts(records: knownV2Trace)
        // PRECOPY_INFO's initial + dirty, the value the v2 client compares to its threshold.
        #expect(c.pending.map(\.value) == [320, 20] && c.pending.map(\.time) == [40, 50])
        #expect(c.chunks(in: "pre-copy").map(\.bytes) == [300])
        #expect(c.chunks(in: "stop-and-copy").map(\.bytes) == [100])
        #expect(c.chunks(in: "resume").map(\.bytes) == [300, 100])
        // ENOMSG is "no more data for now", not a failure: only the EIO is marked.
        #expect(c.marks.count == 1)
        #expect(c.marks.first?.kind == .errno && c.marks.first?.role == .source && c.marks.first?.time == 80)
        #expect(c.marks.first?.title == "source data_fd read of 1048576 bytes answered EIO in STOP_COPY")
        #expect(c.failureRecordIndex == 14)
    }

    @Test func aFailedSetShowsTheStateTheDeviceWasLeftIn() {
        let records = [v2Set(0, "d", from: .running, to: .resuming), v2Set(5, "s", from: .running, to: .stopCopy),
                       v2Set(10, "s", from: .stopCopy, to: .stop, reached: .error, result: "EIO")]
        let c = MigrationCharts(records: records)
        #expect(c.segments(of: .source).map(\.state) == [.v2(.running), .v2(.stopCopy), .v2(.error)])
        #expect(c.segments(of: .source).last?.cause == "SET STOP (failed: EIO): STOP_COPY -> ERROR, a walk of several arcs on the kernel's path")
        #expect(c.marks.map(\.title) == ["source SET STOP answered EIO in STOP_COPY"])
    }

    /// A v2 violation names no access: it is placed on the failed call of its kind, on its
    /// device, in its state. Violations of real v2 devices, through their calls.
    @Test func v2ViolationsArePlacedOnTheCallsThatBrokeTheRules() throws {
        let scenario = try ScenarioLoader.load(contentsOf: FilePath(libraryDirectory + "/qemu10.yaml"))
        let log = AccessLogRecorder()
        func device(_ identity: String) -> V2Device {
            let type = scenario.types[0]
            let d = V2Device(device: SimulatedDevice(configuration: type.configuration, identity: identity), features: type.configuration.v2Features)
            d.observer = log
            return d
        }
        let source = device("s"), destination = device("d")
        #expect(throws: Never.self) { try destination.set(.resuming).get() }
        let session = try source.set(.preCopy).get().newSession
        _ = source.set(.error)                          // v2-set-error, in PRE_COPY
        #expect(throws: Never.self) { try source.set(.stopCopy).get() }
        _ = source.precopyInfo()                        // v2-precopy-info-state, in STOP_COPY
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
        defer { buffer.deallocate() }
        _ = destination.read(session: 1_000, into: buffer) // v2-stale-data-fd, in RESUMING
        #expect(session != nil)
        var report = MigrationReport(outcome: "failed", sourceDigest: nil, destinationDigest: nil, digestsMatch: false, precopyIterations: 0, converged: false,
                                     bytes: .init(precopy: 0, stopAndCopy: 0, total: 0), chunks: .init(precopy: 0, stopAndCopy: 0, resumeTransactions: 0),
                                     pendingSequence: [], bytesWhileStopped: 0, downtimeEstimateMs: 0, sourceTimeMs: 0, failure: nil,
                                     sourceState: "STOP_COPY", destinationState: "RESUMING", recoveredByReset: nil, violations: [], resumeDeviations: [])
        report.attach(v2Source: source, destination: destination)
        #expect(report.violationDetails?.map(\.rule) == ["v2-set-error", "v2-precopy-info-state", "v2-stale-data-fd"])
        let c = MigrationCharts(records: log.log.records, report: report)
        let marks = c.marks.filter { $0.kind == .violation }
        #expect(marks.map(\.role) == [.source, .source, .destination])
        #expect(marks.first?.title.hasPrefix("source SET ERROR broke [v2-set-error] in PRE_COPY: ") == true)
        #expect(marks.dropFirst().first?.title.hasPrefix("source PRECOPY_INFO broke [v2-precopy-info-state] in STOP_COPY: ") == true)
        #expect(marks.last?.title.hasPrefix("destination data_fd read of 64 bytes broke [v2-stale-data-fd] in RESUMING: ") == true)
        #expect(c.unplacedViolations.isEmpty)
        // Each failed call also has its errno triangle.
        #expect(c.marks.filter { $0.kind == .errno }.count == 3)
    }

    /// The charts of a real v2 migration agree with the v2 reference client's own counters.
    @Test func chartsOfARealV2MigrationMatchTheClientsReport() throws {
        let scenario = try ScenarioLoader.load(contentsOf: FilePath(libraryDirectory + "/qemu10.yaml"))
        let log = AccessLogRecorder(stopThreshold: scenario.migration.client.stopThreshold)
        var migration = InProcessMigration(scenario: scenario)
        migration.observer = log
        let report = try V2Migration.inProcess(migration)
        #expect(report.succeeded)
        let c = MigrationCharts(records: log.log.records, report: report)
        #expect(c.migrationProtocol == .v2)
        let source = c.segments(of: .source).map { ChartViews.style($0.state).name }
        let destination = c.segments(of: .destination).map { ChartViews.style($0.state).name }
        #expect(source == ["RUNNING", "PRE_COPY", "PRE_COPY_P2P", "STOP_COPY", "STOP"])
        #expect(destination == ["RUNNING", "RESUMING", "RUNNING_P2P", "RUNNING"])
        #expect(source.last == report.sourceState && destination.last == report.destinationState)
        #expect(c.pending.map(\.value) == report.pendingSequence)
        #expect(c.chunks(in: "pre-copy").count == report.chunks.precopy)
        #expect(c.chunks(in: "stop-and-copy").count == report.chunks.stopAndCopy)
        #expect(c.chunks(in: "resume").count == report.chunks.resumeTransactions)
        #expect(MigrationCharts.total(c.chunks(in: "pre-copy")) == report.bytes.precopy)
        #expect(MigrationCharts.total(c.chunks(in: "stop-and-copy")) == report.bytes.stopAndCopy)
        #expect(c.marks.isEmpty)
        // The page draws it with the v2 states' classes and a v2 title.
        let html = ReportPage(title: "t", subtitle: "s", entries: [ReportEntry(name: "qemu10 [v2]", report: report, records: log.log.records,
                                                                               stopThreshold: log.log.stopThreshold, recordsOrigin: "test")],
                              generator: "test").html()
        #expect(occurrences(of: "class=\"segment state-PRE_COPY_P2P\"", in: html) == 1)
        #expect(occurrences(of: "class=\"segment state-", in: html) == source.count + destination.count)
        #expect(html.contains("Migration state timeline (v2: MIG_DEVICE_STATE)"))
        #expect(occurrences(of: "class=\"point\"", in: html) == report.pendingSequence.count)
    }

    /// `mdevsim run` keeps a v2 entry's calls in its access log: the page of a run draws the v2
    /// entry's states, not only its devices' creation and removal.
    @Test func aV2RunEntryHasItsTimeline() throws {
        var runner = ScenarioRunner(mode: .inProcess)
        runner.keepsAccessLog = true
        let file = libraryDirectory + "/qemu10.yaml"
        let scenario = try ScenarioLoader.load(contentsOf: FilePath(file))
        let result = runner.run(ScenarioEntry(file: file, scenario: .success(scenario), migrationProtocol: .v2))
        #expect(result.entryName == "qemu10 [v2]" && result.passed)
        let records = result.accessLog?.records ?? []
        #expect(records.contains { $0.op == .v2Set } && !records.contains { $0.op == .v2Write && $0.data != nil })
        let c = MigrationCharts(records: records, report: result.report)
        #expect(c.segments(of: .source).map(\.state).contains(.v2(.stopCopy)))
        #expect(c.segments(of: .destination).map(\.state).contains(.v2(.resuming)))
    }
}

import Conformance
import DeviceSimulator
import Foundation
import Scenarios

/// One scenario of a page: what a run, a JSON report, a migration or a trace says about it.
public struct ReportEntry: Sendable {
    /// What the page says of the entry, a word that is also its badge.
    public enum Status: String, Sendable, Hashable {
        /// Met its expectation (a run), or completed with equal digests (a migration).
        case pass = "PASS"
        /// Did not.
        case fail = "FAIL"
        /// Could not run: an invalid file, a mount that failed.
        case error = "ERROR"
        /// Not run (the run's memory limit).
        case skip = "SKIP"
        /// A trace: accesses without a verdict.
        case trace = "TRACE"
    }

    public var name: String
    public var file: String?
    /// The runner's verdict; nil for a migration or a trace (nothing was judged).
    public var verdict: Verdict?
    public var skipped: String?
    public var report: MigrationReport?
    public var diagnostics: [String]
    public var durationSeconds: Double?
    public var seed: UInt64?
    public var expectation: Expectation?
    /// The migration's records (trace or access log): what the charts are drawn from.
    public var records: [TraceRecord]
    public var omittedDataRecords: Int
    public var stopThreshold: UInt64?
    /// Where the records come from, for the page's notes.
    public var recordsOrigin: String
    /// The protocol the migration used (a run's entry names it; v1 for everything else so far).
    public var migrationProtocol: MigrationProtocolVersion = .v1

    public init(name: String, file: String? = nil, verdict: Verdict? = nil, skipped: String? = nil, report: MigrationReport? = nil,
                diagnostics: [String] = [], durationSeconds: Double? = nil, seed: UInt64? = nil, expectation: Expectation? = nil,
                records: [TraceRecord] = [], omittedDataRecords: Int = 0, stopThreshold: UInt64? = nil, recordsOrigin: String = "") {
        self.name = name
        self.file = file
        self.verdict = verdict
        self.skipped = skipped
        self.report = report
        self.diagnostics = diagnostics
        self.durationSeconds = durationSeconds
        self.seed = seed
        self.expectation = expectation
        self.records = records
        self.omittedDataRecords = omittedDataRecords
        self.stopThreshold = stopThreshold
        self.recordsOrigin = recordsOrigin
    }

    /// A result of `mdevsim run` (live or read back from its JSON report), with its scenario
    /// when the file could be loaded (expectation, seed, threshold).
    public init(result r: ScenarioResult, scenario: Scenario?) {
        self.init(name: r.entryName, file: r.file, verdict: r.verdict, skipped: r.skipped, report: r.report, diagnostics: r.diagnostics,
                  durationSeconds: r.durationSeconds, seed: scenario?.seed, expectation: scenario?.expectation,
                  records: r.accessLog?.records ?? [], omittedDataRecords: r.accessLog?.omittedDataRecords ?? 0,
                  stopThreshold: r.accessLog?.stopThreshold ?? scenario?.migration.client.stopThreshold,
                  recordsOrigin: r.accessLog == nil ? "" : "the run's access log")
        migrationProtocol = r.migrationProtocol
    }

    public var status: Status {
        if skipped != nil { return .skip }
        if let verdict {
            if report == nil { return .error }
            return verdict.passed ? .pass : .fail
        }
        if let report { return report.succeeded ? .pass : .fail }
        return .trace
    }

    /// The migration failed, or the verdict did: the page compares expected and observed.
    public var showsFailure: Bool {
        status == .fail || status == .error || report?.outcome == "failed"
    }
}

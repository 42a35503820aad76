import Conformance
import Foundation
import Scenarios
import SystemPackage

extension ReportPage {
    /// The page of one migration (`mdevsim migrate --html`): `verdict` is the one the command's
    /// exit status gives (the report judged against the scenario's `expect:`); the expectation
    /// is shown beside a failed migration.
    public init(migration report: MigrationReport, verdict: Verdict? = nil, log: AccessLog, scenario: Scenario, scenarioFile: String?,
                mode: String, durationSeconds: Double, generator: String) {
        let entry = ReportEntry(name: scenario.name, file: scenarioFile, verdict: verdict, report: report, durationSeconds: durationSeconds, seed: scenario.seed,
                                expectation: scenario.expectation, records: log.records, omittedDataRecords: log.omittedDataRecords,
                                stopThreshold: log.stopThreshold ?? scenario.migration.client.stopThreshold, recordsOrigin: "the migration's access log")
        self.init(title: "mdevsim migrate", subtitle: "One migration of \(scenario.name) \(mode)", durationSeconds: durationSeconds,
                  entries: [entry], generator: generator)
    }

    /// The page of a trace: its records, with the scenario's threshold and seed when its file loads.
    public init(trace: TraceFile, scenario: Scenario?, generator: String) {
        let entry = ReportEntry(name: trace.header.scenario, file: trace.header.scenarioPath, seed: trace.header.seed,
                                expectation: scenario?.expectation, records: trace.entries.map(\.record),
                                stopThreshold: scenario?.migration.client.stopThreshold, recordsOrigin: "the trace \(trace.path)")
        self.init(title: "mdevsim trace", subtitle: "Trace \((trace.path as NSString).lastPathComponent) of \(trace.header.scenario), recorded by \(trace.header.recorder)",
                  entries: [entry], generator: generator)
    }
}

/// Reads what `mdevsim report` draws: a trace (JSON lines, first line the trace header) or the
/// JSON report of `mdevsim run --json`.
public enum ReportInput {
    public struct Unreadable: Error, CustomStringConvertible {
        public var description: String
    }

    /// The page of the file at `path`. Scenario files the input names are loaded when they
    /// exist (for expectations, thresholds and seeds); one that does not load is left out.
    public static func page(path: String, generator: String) throws(Unreadable) -> ReportPage {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw Unreadable(description: "\(path): cannot read: \((error as NSError).localizedDescription)")
        }
        let firstLine = data.prefix { $0 != UInt8(ascii: "\n") }
        if (try? JSONSerialization.jsonObject(with: Data(firstLine)) as? [String: Any])?["format"] as? String == TraceHeader.formatName {
            let trace: TraceFile
            do { trace = try TraceFile.parse(data, path: path) } catch { throw Unreadable(description: "\(error)") }
            return ReportPage(trace: trace, scenario: trace.header.scenarioPath.flatMap(load), generator: generator)
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let summary: RunSummary
        do { summary = try decoder.decode(RunSummary.self, from: data) } catch {
            throw Unreadable(description: "\(path): neither a trace (its first line is no mdevsim trace header) nor the JSON report of mdevsim run (\(error))")
        }
        var scenarios: [String: Scenario] = [:]
        for r in summary.results { if let s = load(r.file) { scenarios[r.file] = s } }
        return ReportPage(run: summary, scenarios: scenarios, generator: generator)
    }

    static func load(_ file: String) -> Scenario? {
        guard FileManager.default.fileExists(atPath: file) else { return nil }
        return try? ScenarioLoader.load(contentsOf: FilePath(file))
    }
}

import Conformance
import Foundation
@testable import Report
import Scenarios
import SystemPackage
import Testing

@Suite struct ReportPageTests {
    /// A run of two real in-process scenarios, the second judged against a wrong expectation.
    func run() throws -> (RunSummary, [String: Scenario]) {
        var runner = ScenarioRunner(mode: .inProcess)
        runner.keepsAccessLog = true
        let good = libraryDirectory + "/small-converges.yaml", fault = libraryDirectory + "/fault-fail-data-offset.yaml"
        var scenarios = [good: try ScenarioLoader.load(contentsOf: FilePath(good)), fault: try ScenarioLoader.load(contentsOf: FilePath(fault))]
        // Expect success of the scenario that fails: its verdict fails.
        scenarios[fault]?.expectation = Expectation(outcome: .success)
        let results = [good, fault].map { runner.run(ScenarioEntry(file: $0, scenario: .success(scenarios[$0]!))) }
        return (RunSummary(mode: .inProcess, results: results, durationSeconds: 1.5), scenarios)
    }

    @Test func thePageListsFailuresFirstWithVerdictsChartsAndTheFailureDetail() throws {
        let (summary, scenarios) = try run()
        #expect(summary.results.map(\.passed) == [true, false])
        #expect(summary.results.allSatisfy { $0.accessLog?.records.isEmpty == false })
        let page = ReportPage(run: summary, scenarios: scenarios, generator: "mdevsim test")
        #expect(page.count(.pass) == 1 && page.count(.fail) == 1)
        let html = page.html()
        let fail = try #require(html.range(of: "data-scenario=\"fault-fail-data-offset\""))
        let pass = try #require(html.range(of: "data-scenario=\"small-converges\""))
        #expect(fail.lowerBound < pass.lowerBound, "failures first")
        #expect(html.contains("data-verdict=\"FAIL\"") && html.contains("data-verdict=\"PASS\""))
        #expect(occurrences(of: "<details", in: html) == 2)
        // Each scenario: a timeline, a convergence plot and chunk bars.
        #expect(occurrences(of: "class=\"chart timeline\"", in: html) == 2)
        #expect(occurrences(of: "class=\"chart line-chart\"", in: html) == 2)
        #expect(occurrences(of: "class=\"chart bar-chart\"", in: html) == 2)
        // The failure: expected and observed side by side, and the accesses up to the EIO.
        #expect(occurrences(of: "<table class=\"compare\"", in: html) == 1)
        #expect(html.contains("<td>completed, equal digests</td>") && html.contains("<td>source data_offset read in stop-and-copy</td>"))
        #expect(occurrences(of: "<tr class=\"failing\"", in: html) == 1)
        #expect(html.contains("eio-first-final-chunk"))
        // The summary: counts, seed, protocol, duration.
        #expect(html.contains("data-count=\"1\"") && html.contains("VFIO migration v1") && html.contains("1.50 s"))
        // Self-contained: no script, no external reference of any kind.
        for banned in ["<script", "src=", "href=", "@import", "url(http", "<link"] { #expect(!html.contains(banned), "\(banned)") }
    }

    @Test func theJSONReportOfARunDrawsTheSamePage() throws {
        let (summary, scenarios) = try run()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mdevsim-report-json-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/run.json"
        try RunReports.json(summary).write(to: URL(fileURLWithPath: path))
        let page = try ReportInput.page(path: path, generator: "mdevsim test")
        #expect(page.entries.map(\.name) == summary.results.map(\.name))
        #expect(page.entries.map(\.records.count) == summary.results.map { $0.accessLog?.records.count ?? -1 })
        #expect(page.entries[1].report?.firedFaults == ["source: eio-first-final-chunk"])
        // The file's scenario is loaded again (the expectation on disk, not the one the test changed).
        #expect(page.entries[0].expectation == scenarios[summary.results[0].file]?.expectation)
        let fromFile = page.html(), live = ReportPage(run: summary, scenarios: scenarios, generator: "mdevsim test").html()
        #expect(occurrences(of: "class=\"segment state-", in: fromFile) == occurrences(of: "class=\"segment state-", in: live))
        #expect(occurrences(of: "class=\"point\"", in: fromFile) == occurrences(of: "class=\"point\"", in: live))
        // Anything else is refused with a reason.
        try Data("{}".utf8).write(to: URL(fileURLWithPath: dir + "/other.json"))
        #expect(throws: ReportInput.Unreadable.self) { try ReportInput.page(path: dir + "/other.json", generator: "") }
    }

    @Test func aTracePageDrawsTheTraceAndShowsTheAccessesUpToItsFirstErrno() throws {
        let scenario = try ScenarioLoader.load(contentsOf: FilePath(libraryDirectory + "/fault-fail-data-offset.yaml"))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mdevsim-report-trace-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var runner = ScenarioRunner(mode: .inProcess)
        runner.traceDirectory = dir
        _ = runner.run(ScenarioEntry(file: libraryDirectory + "/fault-fail-data-offset.yaml", scenario: .success(scenario)))
        let page = try ReportInput.page(path: ScenarioRunner.tracePath(directory: dir, scenario: scenario.name), generator: "t")
        #expect(page.entries.count == 1 && page.entries[0].status == .trace && page.entries[0].stopThreshold == scenario.migration.client.stopThreshold)
        let html = page.html()
        #expect(html.contains("<details class=\"scenario verdict-TRACE\"") && html.contains(" open"))
        #expect(occurrences(of: "<tr class=\"failing\"", in: html) == 1)
        #expect(occurrences(of: "class=\"marker marker-errno\"", in: html) == 1)
    }
}

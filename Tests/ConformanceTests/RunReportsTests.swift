@testable import Conformance
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing

@Suite struct RunReportsTests {
    static let nasty = "a<b>&\"c\"'d'\n\tline\u{1}\u{1B}[K é"

    static func summary() -> RunSummary {
        RunSummary(mode: .fuse, shard: "2/3", results: [
            ScenarioResult(name: "good", file: "scenarios/good.yaml", verdict: .pass, report: report(), durationSeconds: 0.5),
            ScenarioResult(name: "bad <&>", file: "scenarios/bad.yaml",
                           verdict: Verdict(mismatches: ["expected \(nasty)", "second mismatch"]),
                           report: report(violations: ["source: [reserved-bits] <x> & \"y\""]), durationSeconds: 1.25),
            ScenarioResult(name: "broken", file: "scenarios/broken.yaml", verdict: Verdict(mismatches: ["invalid scenario file: x"]),
                           report: nil, diagnostics: ["broken.yaml:1:1: error: <bad>", "broken.yaml:2:1: error: more"], durationSeconds: 0),
            ScenarioResult(name: "huge", file: "scenarios/huge.yaml", verdict: .pass, report: nil, durationSeconds: 0, skipped: "too big"),
        ], durationSeconds: 3)
    }

    @Test func escapesEverythingXMLCannotCarry() {
        #expect(XML.escape("a<b>&\"c\"'d'") == "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;")
        #expect(XML.escape("x\ny\tz\r") == "x&#10;y&#9;z&#13;")
        #expect(XML.escape("\u{0}\u{1}\u{1B}\u{FFFE}") == "\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}")
        #expect(XML.escape("é ✓ 🚀") == "é ✓ 🚀")
    }

    @Test func junitIsWellFormedWithTheExpectedStructure() throws {
        let text = RunReports.junit(Self.summary())
        let document = try XMLDocument(data: Data(text.utf8))
        let root = try #require(document.rootElement())
        #expect(root.name == "testsuites")
        #expect(root.attribute(forName: "tests")?.stringValue == "4")
        #expect(root.attribute(forName: "failures")?.stringValue == "2")
        let suites = root.elements(forName: "testsuite")
        #expect(suites.count == 1)
        let suite = try #require(suites.first)
        #expect(suite.attribute(forName: "name")?.stringValue == "mdevsim (shard 2/3)")
        #expect(suite.attribute(forName: "tests")?.stringValue == "4")
        #expect(suite.attribute(forName: "failures")?.stringValue == "2")
        #expect(suite.attribute(forName: "skipped")?.stringValue == "1")
        #expect(suite.attribute(forName: "time")?.stringValue == "3.000")
        let cases = suite.elements(forName: "testcase")
        #expect(cases.map { $0.attribute(forName: "name")?.stringValue ?? "" } == ["good", "bad <&>", "broken", "huge"])
        #expect(cases.allSatisfy { $0.attribute(forName: "classname")?.stringValue == "mdevsim.scenarios" })
        #expect(cases[1].attribute(forName: "time")?.stringValue == "1.250")
        #expect(cases[0].elements(forName: "failure").isEmpty)
        let failure = try #require(cases[1].elements(forName: "failure").first)
        // Attribute values keep their newlines and tabs (written as character references).
        #expect(failure.attribute(forName: "message")?.stringValue == "expected a<b>&\"c\"'d'\n\tline\u{FFFD}\u{FFFD}[K é")
        let body = failure.stringValue ?? ""
        #expect(body.contains("second mismatch"))
        #expect(body.contains("source: [reserved-bits] <x> & \"y\""))
        let broken = try #require(cases[2].elements(forName: "failure").first)
        #expect(broken.stringValue?.contains("broken.yaml:1:1: error: <bad>") == true)
        #expect(cases[3].elements(forName: "skipped").first?.attribute(forName: "message")?.stringValue == "too big")
        #expect(cases[3].elements(forName: "failure").isEmpty)
        #expect(cases[0].elements(forName: "system-out").first?.stringValue?.contains("completed, 1 pre-copy iteration") == true)
    }

    @Test func jsonHoldsCountsVerdictsAndReports() throws {
        let data = try RunReports.json(Self.summary())
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["mode"] as? String == "fuse")
        #expect(object["shard"] as? String == "2/3")
        #expect(object["passed"] as? Int == 1)
        #expect(object["failed"] as? Int == 2)
        #expect(object["skipped"] as? Int == 1)
        #expect((object["violations"] as? [String]) == ["bad <&>: source: [reserved-bits] <x> & \"y\""])
        let scenarios = try #require(object["scenarios"] as? [[String: Any]])
        #expect(scenarios.count == 4)
        let verdict = try #require(scenarios[1]["verdict"] as? [String: Any])
        #expect(verdict["passed"] as? Bool == false)
        #expect((verdict["mismatches"] as? [String])?.count == 2)
        #expect((scenarios[0]["report"] as? [String: Any])?["precopy_iterations"] as? Int == 1)
        #expect(scenarios[2]["report"] == nil)
        #expect((scenarios[2]["diagnostics"] as? [String])?.count == 2)
        #expect(scenarios[3]["skipped"] as? String == "too big")
        // It decodes back.
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let back = try decoder.decode(RunSummary.self, from: data)
        #expect(back.results.map(\.name) == ["good", "bad <&>", "broken", "huge"])
        #expect(back.summaryLine == "1 passed, 2 failed")
    }
}

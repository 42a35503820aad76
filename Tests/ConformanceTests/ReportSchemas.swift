@testable import Conformance
import Foundation
import Testing
import TestSupport

/// Checks report files against the schemas in docs/ with maintained validators: xmllint
/// (libxml2-utils) for JUnit, python3's jsonschema for JSON (`scripts/ensure-deps.sh
/// --with-test-tools` installs both). A missing validator fails the check: it is never skipped.
enum ReportSchemas {
    static let docs = URL(fileURLWithPath: libraryDirectory).deletingLastPathComponent().appendingPathComponent("docs").path

    /// Nil when `path` validates against docs/junit.xsd, else xmllint's complaint.
    static func junitProblem(_ path: String) -> String? {
        run("/usr/bin/env", ["xmllint", "--noout", "--schema", docs + "/junit.xsd", path])
    }

    /// Nil when the JSON file at `path` validates against docs/run-report.schema.json (or one of
    /// its `$defs`, e.g. `migration_report` for `migrate --json`), else the validator's complaint.
    static func jsonProblem(_ path: String, definition: String? = nil) -> String? {
        let script = """
            import json, sys, jsonschema
            schema = json.load(open(sys.argv[1]))
            if len(sys.argv) > 3:
                schema = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": "#/$defs/" + sys.argv[3]}
            jsonschema.Draft202012Validator.check_schema(schema)
            jsonschema.validate(json.load(open(sys.argv[2])), schema, cls=jsonschema.Draft202012Validator)
            """
        return run("/usr/bin/env", ["python3", "-c", script, docs + "/run-report.schema.json", path] + (definition.map { [$0] } ?? []))
    }

    /// Writes `data` to a temporary file and checks it.
    static func jsonProblem(data: Data, definition: String? = nil) -> String? {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("mdevsim-schema-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        guard FileManager.default.createFile(atPath: path, contents: data) else { return "cannot write \(path)" }
        return jsonProblem(path, definition: definition)
    }

    static func junitProblem(text: String) -> String? {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("mdevsim-schema-\(UUID().uuidString).xml").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) else { return "cannot write \(path)" }
        return junitProblem(path)
    }

    private static func run(_ executable: String, _ arguments: [String]) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        do { try process.run() } catch { return "cannot run \(arguments[0]): \(error) (scripts/ensure-deps.sh --with-test-tools installs it)" }
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if process.terminationStatus == 127 { return "\(arguments[0]) is missing: run scripts/ensure-deps.sh --with-test-tools" }
        return process.terminationStatus == 0 ? nil : text
    }
}

@Suite struct ReportSchemaTests {
    /// Every kind of entry: passed, failed, error, skipped, with text XML must escape.
    static func summary() -> RunSummary {
        var s = RunReportsTests.summary()
        s.results.append(ScenarioResult(name: "stopped", file: "scenarios/stopped.yaml", verdict: Verdict(mismatches: ["interrupted (SIGTERM) while running, at: x"]),
                                        report: nil, durationSeconds: 1, error: "interrupted (SIGTERM) while running, at: x", lastStep: "x"))
        s.results[2].error = "invalid scenario file scenarios/broken.yaml (2 diagnostics)"
        s.ended = .terminated
        for i in s.results.indices { s.results[i].report = s.results[i].report.map(Self.realDigests) }
        return s
    }

    /// The synthetic reports' digests ("aa") as long as real SHA-256 digests.
    static func realDigests(_ r: MigrationReport) -> MigrationReport {
        var r = r
        r.sourceDigest = r.sourceDigest.map { String(repeating: String($0.prefix(1)), count: 64) }
        r.destinationDigest = r.destinationDigest.map { String(repeating: String($0.prefix(1)), count: 64) }
        return r
    }

    @Test func junitValidatesAgainstTheXSD() {
        #expect(ReportSchemas.junitProblem(text: RunReports.junit(Self.summary())) == nil)
        // The check can fail: a report without the attributes CI reads does not validate.
        #expect(ReportSchemas.junitProblem(text: "<testsuites><testsuite name=\"x\" tests=\"0\"/></testsuites>") != nil)
    }

    @Test func jsonValidatesAgainstTheSchema() throws {
        #expect(ReportSchemas.jsonProblem(data: try RunReports.json(Self.summary())) == nil)
        // A skipped entry with a passing verdict, as format 1 wrote it, is refused.
        var object = try #require(try JSONSerialization.jsonObject(with: RunReports.json(Self.summary())) as? [String: Any])
        var scenarios = try #require(object["scenarios"] as? [[String: Any]])
        scenarios[3]["verdict"] = ["passed": true, "mismatches": [String]()]
        object["scenarios"] = scenarios
        #expect(ReportSchemas.jsonProblem(data: try JSONSerialization.data(withJSONObject: object)) != nil)
        let migration = try JSONEncoder.snakeCase.encode(Self.realDigests(report()))
        #expect(ReportSchemas.jsonProblem(data: migration, definition: "migration_report") == nil)
    }
}

extension JSONEncoder {
    /// As `mdevsim migrate --json` encodes.
    static var snakeCase: JSONEncoder {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.sortedKeys]
        return e
    }
}

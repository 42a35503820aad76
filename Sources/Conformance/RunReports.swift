import Foundation

/// Everything one `mdevsim run` did: what the JSON report holds and the JUnit report renders.
public struct RunSummary: Sendable, Codable {
    /// How the run ended.
    public enum Ending: String, Sendable, Codable {
        /// Every selected scenario ran (or was skipped for its size).
        case completed
        /// SIGINT or SIGTERM stopped it: the running scenario is an error, the rest skipped.
        case interrupted, terminated
        /// A scenario exceeded `--timeout`: it is an error, the rest skipped.
        case timeout
    }

    /// The JSON report's `format_version` (docs/run-report.schema.json): 2 added the version
    /// itself, `status`, `error`, `errors`, `ended`, `timestamp`, `hostname`, and dropped the
    /// verdict of skipped scenarios. Each entry's `protocol` (a scenario whose types speak v1 and
    /// v2 is two entries) and the verdict's `notes` were added within version 2, compatibly: a
    /// reader of 2 that ignores unknown keys reads them, and their absence means v1, no notes.
    public static let formatVersion = 2

    public var mode: ScenarioRunner.Mode
    /// `I/N` when the run was one shard.
    public var shard: String?
    public var results: [ScenarioResult]
    public var durationSeconds: Double
    public var ended: Ending
    /// When the run started (ISO 8601, UTC) and on which host: what JUnit readers show.
    public var timestamp: String
    public var hostname: String

    public init(mode: ScenarioRunner.Mode, shard: String? = nil, results: [ScenarioResult], durationSeconds: Double,
                ended: Ending = .completed, timestamp: String = RunSummary.timestamp(Date()), hostname: String = RunSummary.hostname()) {
        self.mode = mode
        self.shard = shard
        self.results = results
        self.durationSeconds = durationSeconds
        self.ended = ended
        self.timestamp = timestamp
        self.hostname = hostname
    }

    public var passed: Int { results.filter(\.passed).count }
    public var failed: Int { results.filter(\.failed).count }
    public var errors: Int { results.filter(\.errored).count }
    public var skipped: Int { results.filter { $0.skipped != nil }.count }

    /// Every violation the devices recorded, as `scenario: source: [rule] explanation`.
    public var violations: [String] {
        results.flatMap { r in (r.report?.violations ?? []).map { "\(r.entryName): \($0)" } }
    }

    /// The closing line, `N passed, N failed`, in the form CI log readers know; its "failed"
    /// counts the errors too (a run with errors must not read as clean). The JUnit and JSON
    /// reports keep failures and errors apart.
    public var summaryLine: String { "\(passed) passed, \(failed + errors) failed" }

    /// `2026-12-01T10:22:20Z`: JUnit's `timestamp` (xs:dateTime), second precision, UTC.
    public static func timestamp(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: date)
    }

    /// This machine's name, as gethostname(2) gives it.
    public static func hostname() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    enum CodingKeys: String, CodingKey {
        case formatVersion, mode, shard, passed, failed, errors, skipped, durationSeconds, ended, timestamp, hostname, violations, scenarios
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        mode = try c.decode(ScenarioRunner.Mode.self, forKey: .mode)
        shard = try c.decodeIfPresent(String.self, forKey: .shard)
        results = try c.decode([ScenarioResult].self, forKey: .scenarios)
        durationSeconds = try c.decode(Double.self, forKey: .durationSeconds)
        ended = try c.decodeIfPresent(Ending.self, forKey: .ended) ?? .completed
        timestamp = try c.decodeIfPresent(String.self, forKey: .timestamp) ?? ""
        hostname = try c.decodeIfPresent(String.self, forKey: .hostname) ?? ""
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Self.formatVersion, forKey: .formatVersion)
        try c.encode(mode, forKey: .mode)
        try c.encodeIfPresent(shard, forKey: .shard)
        try c.encode(passed, forKey: .passed)
        // `failed`: every judged-or-not scenario that did not pass; `errors`: those of them that could not be judged.
        try c.encode(failed + errors, forKey: .failed)
        try c.encode(errors, forKey: .errors)
        try c.encode(skipped, forKey: .skipped)
        try c.encode(durationSeconds, forKey: .durationSeconds)
        try c.encode(ended, forKey: .ended)
        try c.encode(timestamp, forKey: .timestamp)
        try c.encode(hostname, forKey: .hostname)
        try c.encode(violations, forKey: .violations)
        try c.encode(results, forKey: .scenarios)
    }
}

/// The report files of a run.
public enum RunReports {
    /// One JSON object: mode, shard, counts, duration, violations, and per scenario its verdict,
    /// diagnostics and the client's full report. Keys are snake_case and sorted.
    public static func json(_ summary: RunSummary) throws -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        var data = try encoder.encode(summary)
        data.append(0x0A)
        return data
    }

    /// JUnit XML as CI systems (GitLab, Jenkins, GitHub test reporters) read it: one
    /// `testsuite` named `mdevsim` with true `tests`/`failures`/`errors`/`skipped` counts, its
    /// `timestamp`, `hostname` and `time`, and one `testcase` per entry, a scenario under one protocol
    /// (named `ScenarioResult.entryName`: `NAME` under v1, `NAME [v2]` under v2; classname
    /// `mdevsim.scenarios`, its own `time`) holding its `<properties>` (seed, protocol, type,
    /// mode), then `<failure>` (ran, did not meet its expectation), `<error>` (could not be judged:
    /// invalid file, set-up failure, interrupted, timed out) or `<skipped>`, and the step log in
    /// `<system-out>`.
    public static func junit(_ summary: RunSummary) -> String {
        let time = seconds(summary.durationSeconds)
        var suiteName = "mdevsim"
        if let shard = summary.shard { suiteName += " (shard \(shard))" }
        var suiteProperties = [JUnitReport.Property(name: "mode", value: summary.mode.rawValue)]
        if let shard = summary.shard { suiteProperties.append(.init(name: "shard", value: shard)) }
        suiteProperties.append(.init(name: "ended", value: summary.ended.rawValue))
        let cases = summary.results.map { r -> JUnitReport.Case in
            var body = r.verdict.mismatches
            if !r.verdict.notes.isEmpty { body += ["not checked under \(r.migrationProtocol.rawValue):"] + r.verdict.notes }
            if !r.diagnostics.isEmpty { body += ["diagnostics:"] + r.diagnostics }
            if let v = r.report?.violations, !v.isEmpty { body += ["violations:"] + v }
            if let f = r.report?.failure { body += ["client failure: \(f.step)\(f.errno.map { " (\($0))" } ?? ""): \(f.message)"] }
            var c = JUnitReport.Case(
                classname: "mdevsim.scenarios", name: XML.text(r.entryName), file: XML.text(r.file), time: seconds(r.durationSeconds),
                properties: .init(property: properties(r, mode: summary.mode).map { .init(name: $0.0, value: XML.text($0.1)) }),
                systemOut: stepLog(r).map(XML.text))
            switch r.status {
            case .skipped:
                c.skipped = .init(message: XML.text(r.skipped ?? ""))
            case .error:
                let message = r.error ?? "error"
                if let step = r.lastStep { body.append("last step: \(step)") }
                c.error = .init(message: XML.text(message), type: errorType(r), text: XML.text(([message] + body).joined(separator: "\n")))
            case .failed:
                c.failure = .init(message: XML.text(r.verdict.mismatches.first ?? "failed"), type: "verdict", text: XML.text(body.joined(separator: "\n")))
            case .passed:
                break
            }
            return c
        }
        let suite = JUnitReport.Suite(
            name: suiteName, tests: summary.results.count, failures: summary.failed, errors: summary.errors, skipped: summary.skipped,
            time: time, timestamp: summary.timestamp, hostname: XML.text(summary.hostname),
            properties: .init(property: suiteProperties.map { .init(name: $0.name, value: XML.text($0.value)) }), testcase: cases)
        let document = JUnitReport(name: "mdevsim", tests: suite.tests, failures: suite.failures, errors: suite.errors,
                                   skipped: suite.skipped, time: time, testsuite: [suite])
        // Encoding plain strings and numbers cannot fail; should it ever, say so in the report's place.
        let data = (try? document.encoded()) ?? Data("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"mdevsim\"/>\n".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// A testcase's `<properties>`: what a CI reader needs to reproduce it.
    static func properties(_ r: ScenarioResult, mode: ScenarioRunner.Mode) -> [(String, String)] {
        var p: [(String, String)] = []
        if let seed = r.seed { p.append(("seed", String(seed))) }
        p.append(("protocol", "vfio-migration-\(r.migrationProtocol.rawValue)"))
        if let type = r.sourceType { p.append(("type", type)) }
        p.append(("mode", mode == .fuse ? "mount" : "in-process"))
        return p
    }

    /// `invalid-scenario`, `interrupted`, `timeout` or `setup`: what kind of error it is.
    static func errorType(_ r: ScenarioResult) -> String {
        let e = r.error ?? ""
        if e.hasPrefix("invalid scenario file") { return "invalid-scenario" }
        if e.hasPrefix("interrupted") { return "interrupted" }
        if e.hasPrefix("timed out") { return "timeout" }
        return "setup"
    }

    /// The step log of a testcase: the key figures, the pending sequence, where it failed.
    static func stepLog(_ r: ScenarioResult) -> String? {
        guard let report = r.report else { return r.lastStep.map { "last step: \($0)" } }
        var lines = [figures(report)]
        for n in r.verdict.notes { lines.append("not checked under \(r.migrationProtocol.rawValue): \(n)") }
        lines.append("pending_bytes: \(report.pendingSequence.map(String.init).joined(separator: " "))")
        lines.append("chunks: \(report.chunks.precopy) pre-copy, \(report.chunks.stopAndCopy) stop-and-copy, \(report.chunks.resumeTransactions) resume transactions")
        if let f = report.failure { lines.append("failed at: \(f.step)\(f.errno.map { " (\($0))" } ?? ""): \(f.message)") }
        lines.append("source \(report.sourceState), destination \(report.destinationState)")
        if let d = report.sourceDigest { lines.append("source digest: \(d)") }
        if let d = report.destinationDigest { lines.append("destination digest: \(d)") }
        return lines.joined(separator: "\n")
    }

    /// The key figures of a report, one line: outcome, iterations, bytes, downtime.
    public static func figures(_ r: MigrationReport) -> String {
        var parts = [r.outcome == "failed" ? "failed at '\(r.failure?.step ?? "?")'\(r.failure?.errno.map { " (\($0))" } ?? "")" : r.outcome]
        parts.append("\(r.precopyIterations) pre-copy iteration\(r.precopyIterations == 1 ? "" : "s")\(r.converged ? " (converged)" : "")")
        parts.append("\(byteCount(r.bytes.total)) moved (\(byteCount(r.bytes.stopAndCopy)) in stop-and-copy)")
        parts.append(String(format: "downtime ~%.3f ms", r.downtimeEstimateMs))
        return parts.joined(separator: ", ")
    }

    /// `16.1 MiB`, `4224 B`.
    public static func byteCount(_ n: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(n), i = 0
        while value >= 1024, i < units.count - 1 { value /= 1024; i += 1 }
        return i == 0 ? "\(n) B" : String(format: "%.1f %@", value, units[i])
    }

    static func seconds(_ s: Double) -> String { String(format: "%.3f", s.isFinite ? max(0, s) : 0) }
}

/// XML 1.0 text and attribute escaping.
public enum XML {
    /// `text` with the characters XML 1.0 cannot carry at all (C0 controls but tab, newline and
    /// carriage return; U+FFFE, U+FFFF) replaced with U+FFFD; the encoder escapes the rest.
    public static func text(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            let v = scalar.value
            let allowed = v >= 0x20 ? v != 0xFFFE && v != 0xFFFF : (v == 0x09 || v == 0x0A || v == 0x0D)
            out.append(allowed ? scalar : "\u{FFFD}")
        }
        return String(out)
    }

    /// Escapes `&`, `<`, `>`, `"`, `'`; writes tab, newline and carriage return as character
    /// references (so attribute values keep them); replaces characters XML 1.0 cannot carry at
    /// all (other C0 controls, U+FFFE, U+FFFF, lone surrogates cannot occur in a String) with
    /// U+FFFD.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in Self.text(text).unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\t": out += "&#9;"
            case "\n": out += "&#10;"
            case "\r": out += "&#13;"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

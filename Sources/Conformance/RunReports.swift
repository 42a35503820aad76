import Foundation

/// Everything one `mdevsim run` did: what the JSON report holds and the JUnit report renders.
public struct RunSummary: Sendable, Codable {
    public var mode: ScenarioRunner.Mode
    /// `I/N` when the run was one shard.
    public var shard: String?
    public var results: [ScenarioResult]
    public var durationSeconds: Double

    public init(mode: ScenarioRunner.Mode, shard: String? = nil, results: [ScenarioResult], durationSeconds: Double) {
        self.mode = mode
        self.shard = shard
        self.results = results
        self.durationSeconds = durationSeconds
    }

    public var passed: Int { results.filter(\.passed).count }
    public var failed: Int { results.filter(\.failed).count }
    public var skipped: Int { results.filter { $0.skipped != nil }.count }

    /// Every violation the devices recorded, as `scenario: source: [rule] explanation`.
    public var violations: [String] {
        results.flatMap { r in (r.report?.violations ?? []).map { "\(r.name): \($0)" } }
    }

    /// The closing line: `N passed, N failed`.
    public var summaryLine: String { "\(passed) passed, \(failed) failed" }

    enum CodingKeys: String, CodingKey { case mode, shard, passed, failed, skipped, durationSeconds, violations, scenarios }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        mode = try c.decode(ScenarioRunner.Mode.self, forKey: .mode)
        shard = try c.decodeIfPresent(String.self, forKey: .shard)
        results = try c.decode([ScenarioResult].self, forKey: .scenarios)
        durationSeconds = try c.decode(Double.self, forKey: .durationSeconds)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(mode, forKey: .mode)
        try c.encodeIfPresent(shard, forKey: .shard)
        try c.encode(passed, forKey: .passed)
        try c.encode(failed, forKey: .failed)
        try c.encode(skipped, forKey: .skipped)
        try c.encode(durationSeconds, forKey: .durationSeconds)
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

    /// JUnit XML as CI systems (GitLab, Jenkins, GitHub test reporters) render it: one
    /// `testsuite` named `mdevsim`, one `testcase` per scenario (classname `mdevsim.scenarios`),
    /// a `failure` with the verdict's first mismatch as its message and every mismatch, the
    /// diagnostics and the violations in its body.
    public static func junit(_ summary: RunSummary) -> String {
        let time = seconds(summary.durationSeconds)
        var x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        x += "<testsuites name=\"mdevsim\" tests=\"\(summary.results.count)\" failures=\"\(summary.failed)\" errors=\"0\" time=\"\(time)\">\n"
        var suiteName = "mdevsim"
        if let shard = summary.shard { suiteName += " (shard \(shard))" }
        x += "  <testsuite name=\"\(XML.escape(suiteName))\" tests=\"\(summary.results.count)\" failures=\"\(summary.failed)\" errors=\"0\" skipped=\"\(summary.skipped)\" time=\"\(time)\">\n"
        x += "    <properties>\n"
        x += "      <property name=\"mode\" value=\"\(summary.mode.rawValue)\"/>\n"
        if let shard = summary.shard { x += "      <property name=\"shard\" value=\"\(XML.escape(shard))\"/>\n" }
        x += "    </properties>\n"
        for r in summary.results {
            x += "    <testcase classname=\"mdevsim.scenarios\" name=\"\(XML.escape(r.name))\" file=\"\(XML.escape(r.file))\" time=\"\(seconds(r.durationSeconds))\""
            let out = r.report.map(figures)
            if let reason = r.skipped {
                x += ">\n      <skipped message=\"\(XML.escape(reason))\"/>\n    </testcase>\n"
                continue
            }
            if r.passed, out == nil {
                x += "/>\n"
                continue
            }
            x += ">\n"
            if !r.passed {
                var body = r.verdict.mismatches
                if !r.diagnostics.isEmpty { body += ["diagnostics:"] + r.diagnostics }
                if let v = r.report?.violations, !v.isEmpty { body += ["violations:"] + v }
                if let f = r.report?.failure { body += ["client failure: \(f.step)\(f.errno.map { " (\($0))" } ?? ""): \(f.message)"] }
                x += "      <failure message=\"\(XML.escape(r.verdict.mismatches.first ?? "failed"))\" type=\"verdict\">\(XML.escape(body.joined(separator: "\n")))</failure>\n"
            }
            if let out { x += "      <system-out>\(XML.escape(out))</system-out>\n" }
            x += "    </testcase>\n"
        }
        x += "  </testsuite>\n</testsuites>\n"
        return x
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
    /// Escapes `&`, `<`, `>`, `"`, `'`; writes tab, newline and carriage return as character
    /// references (so attribute values keep them); replaces characters XML 1.0 cannot carry at
    /// all (other C0 controls, U+FFFE, U+FFFF, lone surrogates cannot occur in a String) with
    /// U+FFFD.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\t": out += "&#9;"
            case "\n": out += "&#10;"
            case "\r": out += "&#13;"
            default:
                let v = scalar.value
                if v < 0x20 || v == 0xFFFE || v == 0xFFFF {
                    out.unicodeScalars.append("\u{FFFD}")
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }
}

import Conformance
import Foundation
import MigrationProtocol
import Plot
import Scenarios
import SVGCharts

/// One scenario on the page: a summary row (verdict, name, figures) that opens (`<details>`)
/// to its figures, charts and, for a failure, the expected and observed step and the last
/// accesses before it.
struct ScenarioSection {
    typealias Body = Node<HTML.BodyContext>
    let entry: ReportEntry
    let index: Int
    let open: Bool

    /// How many records the failure table shows, the failing one included.
    static let accessesBeforeFailure = 12

    var node: Body {
        let status = entry.status
        let icon = switch status {
        case .pass: "✓"
        case .fail, .error: "✗"
        case .skip: "–"
        case .trace: "•"
        }
        let figures = entry.skipped ?? entry.report.map(RunReports.figures) ?? entry.diagnostics.first ?? (entry.records.isEmpty ? "no report" : "\(entry.records.count) trace records")
        let summary: Node<HTML.DetailsContext> = .summary(
            .class("row"),
            .span(.span(.class("badge \(status.rawValue)"), .text("\(icon) \(status.rawValue)"))),
            .span(.strong(.text(entry.name))),
            .span(.class("figures"), .text(figures)),
            .span(.class("num"), .text(entry.durationSeconds.map { String(format: "%.2f s", $0) } ?? ""))
        )
        return .details(
            .class("scenario verdict-\(status.rawValue)"),
            .id("scenario-\(index)"),
            .data(named: "scenario", value: entry.name),
            .data(named: "verdict", value: status.rawValue),
            .open(open),
            summary,
            .element(named: "div", nodes: [Body.class("detail")] + detail)
        )
    }

    private var detail: [Body] {
        var out: [Body] = [facts]
        if let verdict = entry.verdict, !verdict.passed {
            out.append(.h3(.text("Mismatches")))
            out.append(.ul(.class("mismatches"), .forEach(verdict.mismatches) { .li(.text($0)) }))
        }
        if entry.report == nil, entry.diagnostics.count > 1 {
            out.append(.ul(.forEach(entry.diagnostics) { .li(.code(.text($0))) }))
        }
        if entry.showsFailure { out.append(comparison) }
        guard entry.skipped == nil else { return out }
        guard !entry.records.isEmpty else {
            out.append(.p(.class("note"), .text("No access records: the charts need `mdevsim run --html` (or `--json` together with `--html`), or a trace.")))
            return out
        }
        let charts = MigrationCharts(records: entry.records, report: entry.report)
        out.append(contentsOf: timeline(charts))
        out.append(contentsOf: convergence(charts))
        out.append(contentsOf: chunks(charts))
        // A trace has no report: an access answered with an errno is what shows its failure.
        if entry.showsFailure || (entry.report == nil && charts.failureRecordIndex != nil) { out.append(contentsOf: lastAccesses(charts)) }
        if let violations = entry.report?.violations, !violations.isEmpty {
            out.append(.h3(.text("Protocol violations")))
            out.append(.ul(.forEach(violations) { .li(.text($0)) }))
            if !charts.unplacedViolations.isEmpty {
                out.append(.p(.class("note"), .text("\(charts.unplacedViolations.count) of them matched no access in the records and are not marked on the timeline.")))
            }
        }
        return out
    }

    private var facts: Body {
        var rows: [(String, String)] = []
        if let file = entry.file { rows.append(("file", file)) }
        if let seed = entry.seed { rows.append(("seed", "\(seed)")) }
        if let r = entry.report {
            rows.append(("outcome", r.outcome + (r.failure.map { " at '\($0.step)'\($0.errno.map { " (\($0))" } ?? "")" } ?? "")))
            rows.append(("pre-copy iterations", "\(r.precopyIterations) (\(r.converged ? "converged" : "did not converge"))"))
            rows.append(("bytes moved", "pre-copy \(RunReports.byteCount(r.bytes.precopy)), stop-and-copy \(RunReports.byteCount(r.bytes.stopAndCopy)), total \(RunReports.byteCount(r.bytes.total))"))
            rows.append(("chunks", "pre-copy \(r.chunks.precopy), stop-and-copy \(r.chunks.stopAndCopy), resume transactions \(r.chunks.resumeTransactions)"))
            rows.append(("downtime estimate", String(format: "%.3f ms", r.downtimeEstimateMs) + " (\(RunReports.byteCount(r.bytesWhileStopped)) moved while the source was stopped, at the link bandwidth)"))
            rows.append(("digests", "source \(r.sourceDigest ?? "none"), destination \(r.destinationDigest ?? "none")\(r.digestsMatch ? " (equal)" : "")"))
            rows.append(("final states", "source \(r.sourceState), destination \(r.destinationState)"))
            if let faults = r.firedFaults, !faults.isEmpty { rows.append(("faults that fired", faults.joined(separator: ", "))) }
            if let recovered = r.recoveredByReset { rows.append(("recovered by reset", recovered ? "yes" : "no")) }
            if !r.resumeDeviations.isEmpty { rows.append(("resume deviations", r.resumeDeviations.joined(separator: "; "))) }
        }
        if let threshold = entry.stopThreshold { rows.append(("client stop threshold", RunReports.byteCount(threshold))) }
        if !entry.records.isEmpty {
            rows.append(("records", "\(entry.records.count) from \(entry.recordsOrigin)\(entry.omittedDataRecords > 0 ? " (\(entry.omittedDataRecords) earlier data-section accesses not kept)" : "")"))
        }
        return .dl(.class("facts"), .forEach(rows) { k, v in .group(.dt(.text(k)), .dd(.text(v))) })
    }

    /// Expected (the scenario's `expect:`) and observed (the client's report), side by side.
    private var comparison: Body {
        let e = entry.expectation
        var expected: [(String, String)] = []
        switch e?.outcome {
        case .success?: expected = [("outcome", e?.cancelled == true ? "cancelled in pre-copy" : "completed, equal digests"), ("step", "none"), ("errno", "none")]
        case .failure(let errno, let step)?: expected = [("outcome", "failed"), ("step", step.description), ("errno", errno.map { ErrnoName.name(of: $0) } ?? "any")]
        case .errorState(let recovers)?: expected = [("outcome", "a device in the error state"), ("step", "any"), ("errno", recovers ? "any (a reset recovers it)" : "any (a reset does not recover it)")]
        case nil: expected = [("outcome", entry.verdict == nil ? "completed, equal digests (no expectation judged)" : "not known (scenario file not loaded)"), ("step", "-"), ("errno", "-")]
        }
        if let converges = e?.converges { expected.append(("pre-copy converges", converges ? "yes" : "no")) }
        if let min = e?.minPrecopyIterations { expected.append(("pre-copy iterations", "at least \(min)")) }
        let r = entry.report
        var observed: [String] = [
            r.map { $0.outcome + ($0.outcome == "completed" && !$0.digestsMatch ? ", digests differ" : "") } ?? "did not run",
            r?.failure?.step ?? "none",
            r?.failure?.errno ?? "none",
        ]
        if e?.converges != nil { observed.append(r.map { $0.converged ? "yes" : "no" } ?? "-") }
        if e?.minPrecopyIterations != nil { observed.append(r.map { "\($0.precopyIterations)" } ?? "-") }
        let rows = expected.enumerated().map { i, pair in (pair.0, pair.1, i < observed.count ? observed[i] : "") }
        return .group(
            .h3(.text("Expected and observed")),
            .table(.class("compare"), .attribute(named: "aria-label", value: "expected and observed step of \(entry.name)"),
                   .thead(.tr(.th(.text("")), .th(.text("expected")), .th(.text("observed")))),
                   .tbody(.forEach(rows) { name, exp, obs in .tr(.th(.text(name)), .td(.text(exp)), .td(.text(obs))) })),
            .unwrap(r?.failure) { f in .p(.text("Client: \(f.message)")) }
        )
    }

    private func timeline(_ c: MigrationCharts) -> [Body] {
        let doc = ChartViews.timeline(c, id: "s\(index)-timeline", scenario: entry.name)
        return [
            .h3(.text(c.migrationProtocol == .v2 ? "Migration state timeline (v2: MIG_DEVICE_STATE)" : "device_state timeline")),
            .p(.class("key"), .span(.text("Shaded: pre-copy, stop-and-copy, resume.")), .span(.text("▼ access answered with an errno (where a fail fault fires)")),
               .span(.text("◆ protocol violation")), .span(.text("Hover a segment or mark for its detail."))),
            doc.node(),
        ]
    }

    private func convergence(_ c: MigrationCharts) -> [Body] {
        let (valueName, readName) = ChartViews.pendingName(c)
        guard !c.pending.isEmpty else {
            let why = c.migrationProtocol == .v2
                ? "the source never entered PRE_COPY (a device without VFIO_MIGRATION_PRE_COPY goes straight to STOP_COPY, or the migration failed before)"
                : "the source never entered pre-copy (a paused guest goes straight to stop-and-copy, or the migration failed before)"
            return [.h3(.text("Convergence")), .p(.class("note"), .text("No \(readName) in pre-copy: \(why).")), ]
        }
        return [.h3(.text("Convergence: \(valueName) in pre-copy")), ChartViews.convergence(c, threshold: entry.stopThreshold, id: "s\(index)-convergence", scenario: entry.name).node()]
    }

    private func chunks(_ c: MigrationCharts) -> [Body] {
        let phases = MigrationCharts.phaseNames.map { name -> (String, [MigrationCharts.Chunk]) in (name, c.chunks(in: name)) }
        var out: [Body] = [.h3(.text("Chunks"))]
        if c.migrationProtocol == .v2 {
            out.append(.p(.class("note"), .text("The data_fd reads and writes as the devices answered them: through a mount the kernel may split one read() of the client in two, so the counts can exceed the client's.")))
        }
        out.append(.table(.attribute(named: "aria-label", value: "chunks per phase of \(entry.name)"),
            .thead(.tr(.th(.text("phase")), .th(.text("chunks")), .th(.text("bytes")), .th(.text("smallest")), .th(.text("largest")), .th(.text("mean")))),
            .tbody(.forEach(phases) { name, cs in
                let total = MigrationCharts.total(cs)
                return .tr(.th(.text(name)), .td(.class("num"), .text("\(cs.count)")), .td(.class("num"), .text(RunReports.byteCount(total))),
                           .td(.class("num"), .text(cs.map(\.bytes).min().map(RunReports.byteCount) ?? "-")),
                           .td(.class("num"), .text(cs.map(\.bytes).max().map(RunReports.byteCount) ?? "-")),
                           .td(.class("num"), .text(cs.isEmpty ? "-" : RunReports.byteCount(total / UInt64(cs.count)))))
            })))
        if !c.chunks.isEmpty {
            let (doc, drawn) = ChartViews.chunks(c, id: "s\(index)-chunks", scenario: entry.name)
            out.append(doc.node())
            if drawn < c.chunks.count { out.append(.p(.class("note"), .text("The first \(drawn) of \(c.chunks.count) chunks are drawn."))) }
        }
        return out
    }

    private func lastAccesses(_ c: MigrationCharts) -> [Body] {
        let records = entry.records
        let end = c.failureRecordIndex ?? (records.count - 1)
        let start = max(0, end - Self.accessesBeforeFailure + 1)
        guard end >= start, end < records.count else { return [] }
        let roleOf = Dictionary(c.devices.map { ($0.value, $0.key.rawValue) }, uniquingKeysWith: { a, _ in a })
        let shown = Array(records[start...end].enumerated())
        let note = c.failureRecordIndex == nil
            ? "No access was answered with an errno: the client found the problem itself. The last accesses of the migration:"
            : "The accesses up to the first one answered with an errno (highlighted):"
        return [
            .h3(.text("Last accesses before the failure")),
            .p(.class("note"), .text(note)),
            .table(.class("accesses"), .attribute(named: "aria-label", value: "last accesses before the failure of \(entry.name)"),
                   .thead(.tr(.th(.text("time")), .th(.text("device")), .th(.text("op")), .th(.text("field")), .th(.text("offset")),
                              .th(.text("width / count")), .th(.text("value")), .th(.text("result")))),
                   .tbody(.forEach(shown) { i, r in
                       .tr(.class(start + i == c.failureRecordIndex ? "failing" : ""),
                           .td(.class("num"), .text(StateText.ms(r.timeNs))), .td(.text(roleOf[r.device] ?? r.device)), .td(.text(r.op.rawValue)),
                           .td(.text(AccessText.field(r))), .td(.class("num"), .text(r.offset.map { "\($0)" } ?? "")),
                           .td(.class("num"), .text((r.width ?? r.count).map { "\($0)" } ?? "")), .td(.class("num"), .text(r.value.map { "\($0)" } ?? "")),
                           .td(.text(r.result ?? "")))
                   })),
        ]
    }
}

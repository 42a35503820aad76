import Conformance
import DeviceSimulator
import Foundation
import MigrationProtocol
import SVGCharts

/// `MigrationCharts` drawn: the state timeline, the convergence plot, the chunk bars.
enum ChartViews {
    /// Each state's colour (Okabe-Ito, safe for colour-blind eyes) and pattern (the second cue).
    static func style(_ state: MigrationCharts.State) -> SeriesStyle {
        switch state {
        case .v1(let bits): style(bits)
        case .v2(let v2): style(v2)
        }
    }

    /// A v1 state: its name (`pre-copy`) is also its class key.
    static func style(_ bits: UInt32) -> SeriesStyle {
        let name = DeviceState.name(ofBits: bits)
        let (color, pattern): (String, FillPattern) = switch bits & DeviceState.mask {
        case DeviceState.running.bits: ("#009E73", .solid)
        case DeviceState.preCopy.bits: ("#56B4E9", .stripes)
        case DeviceState.stopAndCopy.bits: ("#E69F00", .crosshatch)
        case DeviceState.stop.bits: ("#C8C8C8", .solid)
        case DeviceState.resuming.bits: ("#CC79A7", .dots)
        case DeviceState.error.bits: ("#D55E00", .zigzag)
        default: ("#555555", .zigzag)
        }
        return SeriesStyle(name: name, color: color, pattern: pattern, key: name)
    }

    /// A v2 state: its kernel name (`PRE_COPY_P2P`, what the client's report says) is also its
    /// class key. Each takes the colour of its v1 counterpart; a P2P state differs from its
    /// non-P2P twin by its pattern, so the two stay apart without colour.
    static func style(_ state: V2DeviceState) -> SeriesStyle {
        let (color, pattern): (String, FillPattern) = switch state {
        case .running: ("#009E73", .solid)
        case .runningP2P: ("#009E73", .dots)
        case .preCopy: ("#56B4E9", .stripes)
        case .preCopyP2P: ("#56B4E9", .dots)
        case .stopCopy: ("#E69F00", .crosshatch)
        case .stop: ("#C8C8C8", .solid)
        case .resuming: ("#CC79A7", .dots)
        case .error: ("#D55E00", .zigzag)
        }
        return SeriesStyle(name: state.description, color: color, pattern: pattern, key: state.description)
    }

    static let phaseColors = ["pre-copy": "#E3F1FA", "stop-and-copy": "#FCEFD6", "resume": "#F5E4EE"]
    /// The chunk bars' groups; `resume` names what a destination chunk is under the protocol.
    static func chunkStyles(_ migrationProtocol: MigrationProtocolVersion) -> [SeriesStyle] {
        [
            SeriesStyle(name: "pre-copy", color: "#56B4E9", pattern: .stripes, key: "pre-copy"),
            SeriesStyle(name: "stop-and-copy", color: "#E69F00", pattern: .crosshatch, key: "stop-and-copy"),
            SeriesStyle(name: migrationProtocol == .v2 ? "resume (data_fd writes)" : "resume (data_size writes)", color: "#CC79A7", pattern: .dots, key: "resume"),
        ]
    }

    /// What the chunk bars are, in order. Under v2 they are the data_fd reads and writes as the
    /// devices answered them: through a mount the kernel splits a client's read() whose buffer
    /// is not page aligned into two (a 1 MiB read into 1 MiB - 16 B and 16 B, as QEMU's would be).
    static func chunksLabel(_ migrationProtocol: MigrationProtocolVersion) -> String {
        migrationProtocol == .v2
            ? "chunks in order (the source's data_fd reads and the destination's data_fd writes as the devices answered them, interleaved as they happened)"
            : "chunks in order (source's staged chunks, then the destination's data_size writes interleaved as they happened)"
    }

    static func ms(_ ns: UInt64) -> Double { Double(ns) / 1e6 }

    /// A tick of a byte axis; values beyond UInt64 (never from a device, maybe from a hand-made
    /// trace) are clamped, never trapped on.
    static func tickBytes(_ value: Double) -> String {
        RunReports.byteCount(value >= 18_446_744_073_709_549_568 ? .max : UInt64(max(0, value)))
    }

    static func timeline(_ c: MigrationCharts, id: String, scenario: String) -> SVGDocument {
        let lanes = MigrationCharts.Role.allCases.filter { c.devices[$0] != nil }
        let chartLanes = lanes.map { role in
            TimelineChart.Lane(name: role.rawValue, segments: c.segments(of: role).map { s in
                TimelineChart.Segment(start: ms(s.start), end: ms(s.end), style: style(s.state),
                                      title: "\(role.rawValue): \(StateText.name(s.state)) from \(StateText.ms(s.start)) to \(StateText.ms(s.end)) (\(s.cause))")
            })
        }
        let bands = c.phases.map { p in
            TimelineChart.Band(start: ms(p.start), end: ms(p.end), label: p.name, color: phaseColors[p.name] ?? "#eee", key: p.name,
                               lane: lanes.firstIndex(of: p.name == "resume" ? .destination : .source))
        }
        let markers = c.marks.compactMap { m -> TimelineChart.Marker? in
            guard let lane = lanes.firstIndex(of: m.role) else { return nil }
            return switch m.kind {
            case .errno: TimelineChart.Marker(time: ms(m.time), lane: lane, shape: .triangle, color: "#D55E00", key: "errno", title: m.title)
            case .violation: TimelineChart.Marker(time: ms(m.time), lane: lane, shape: .diamond, color: "#F0E442", key: "violation", title: m.title)
            }
        }
        let states = Set(c.segments.map(\.state)).sorted { order($0) < order($1) }.map { style($0) }
        let counts = lanes.map { "\($0.rawValue) \(c.segments(of: $0).map { style($0.state).name }.joined(separator: ", "))" }
        let field = c.migrationProtocol == .v2 ? "the v2 migration state (MIG_DEVICE_STATE)" : "device_state"
        let description = "\(field) of \(lanes.map(\.rawValue).joined(separator: " and ")) over \(StateText.ms(c.end)): \(counts.joined(separator: "; "))."
            + (c.phases.isEmpty ? "" : " Phases: \(c.phases.map { "\($0.name) \(StateText.ms($0.start))-\(StateText.ms($0.end))" }.joined(separator: ", ")).")
            + (c.marks.isEmpty ? "" : " \(c.marks.filter { $0.kind == .errno }.count) errno answer(s) marked by triangles, \(c.marks.filter { $0.kind == .violation }.count) violation(s) by diamonds.")
        return TimelineChart(id: id, title: "\(scenario): \(c.migrationProtocol == .v2 ? "v2 migration state" : "device_state") over time", description: description, lanes: chartLanes, bands: bands,
                             markers: markers, domain: 0...max(ms(c.end), 0.001), axisLabel: "ms since the migration began", legend: states).document
    }

    /// The order states appear in a migration, for the legend.
    private static func order(_ state: MigrationCharts.State) -> Int {
        switch state {
        case .v1(let bits):
            [DeviceState.running.bits, DeviceState.preCopy.bits, DeviceState.stopAndCopy.bits, DeviceState.stop.bits,
             DeviceState.resuming.bits, DeviceState.error.bits].firstIndex(of: bits & DeviceState.mask) ?? 9
        case .v2(let v2):
            [V2DeviceState.running, .runningP2P, .preCopy, .preCopyP2P, .stopCopy, .stop, .resuming, .error].firstIndex(of: v2) ?? 9
        }
    }

    /// What a convergence point is: v1's `pending_bytes` read, v2's PRECOPY_INFO (initial plus
    /// dirty bytes, what the v2 client compares to its threshold).
    static func pendingName(_ c: MigrationCharts) -> (value: String, read: String) {
        c.migrationProtocol == .v2 ? ("PRECOPY_INFO initial_bytes + dirty_bytes", "PRECOPY_INFO") : ("pending_bytes", "pending_bytes read")
    }

    static func convergence(_ c: MigrationCharts, threshold: UInt64?, id: String, scenario: String) -> SVGDocument {
        let (valueName, readName) = pendingName(c)
        let points = c.pending.map { p in
            LineChart.Point(x: Double(p.index), y: Double(p.value),
                            title: "pre-copy \(readName) \(p.index): \(RunReports.byteCount(p.value)) (\(p.value) bytes) at \(StateText.ms(p.time))")
        }
        let reference = threshold.map { LineChart.Reference(value: Double($0), label: "stop threshold \(RunReports.byteCount($0))") }
        let values = c.pending.map(\.value)
        var description = "\(c.pending.count) \(readName)(s) of the source in pre-copy"
        if let first = values.first, let last = values.last {
            description += ", from \(RunReports.byteCount(first)) to \(RunReports.byteCount(last))"
        }
        if let threshold { description += "; the client stops pre-copy at or below \(RunReports.byteCount(threshold))" }
        var chart = LineChart(id: id, title: "\(scenario): \(valueName) in pre-copy", description: description + ".", points: points,
                              reference: reference, xLabel: "\(readName) in pre-copy (n-th)", yLabel: valueName,
                              yFormat: tickBytes)
        chart.binaryTicks = true
        return chart.document
    }

    static func chunks(_ c: MigrationCharts, id: String, scenario: String) -> (SVGDocument, drawn: Int) {
        let groups = ["pre-copy", "stop-and-copy", "resume"]
        let bars = c.chunks.map { chunk in
            BarChart.Bar(value: Double(chunk.bytes), group: groups.firstIndex(of: chunk.phase) ?? 0,
                         title: "\(chunk.phase) chunk of \(RunReports.byteCount(chunk.bytes)) (\(chunk.bytes) bytes) at \(StateText.ms(chunk.time))")
        }
        let summary = groups.map { g in
            let cs = c.chunks(in: g)
            return "\(g): \(cs.count) chunk(s), \(RunReports.byteCount(MigrationCharts.total(cs)))"
        }
        var chart = BarChart(id: id, title: "\(scenario): bytes per chunk", description: summary.joined(separator: "; ") + ".", bars: bars,
                             groups: chunkStyles(c.migrationProtocol), xLabel: chunksLabel(c.migrationProtocol),
                             yLabel: "bytes", yFormat: tickBytes)
        chart.binaryTicks = true
        return (chart.document, chart.drawnCount)
    }
}

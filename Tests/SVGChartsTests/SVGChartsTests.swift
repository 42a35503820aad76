import Foundation
@testable import SVGCharts
import Testing

/// Occurrences of `needle` in `text`.
func occurrences(of needle: String, in text: String) -> Int {
    text.components(separatedBy: needle).count - 1
}

@Suite struct SVGChartsTests {
    let running = SeriesStyle(name: "running", color: "#009E73", pattern: .solid, key: "running")
    let saving = SeriesStyle(name: "pre-copy", color: "#56B4E9", pattern: .stripes, key: "pre-copy")

    @Test func scalesMapBothWaysAndTickAtRoundValues() {
        let x = LinearScale(domain: 0...10, from: 100, to: 200)
        #expect(x(0) == 100 && x(5) == 150 && x(10) == 200)
        let y = LinearScale(domain: 0...10, from: 200, to: 100)
        #expect(y(10) == 100 && y(0) == 200)
        #expect(x.ticks(5) == [0, 2, 4, 6, 8, 10])
        // 250 is no 1-2-5 step: the next one up is.
        #expect(LinearScale(domain: 0...1_000, from: 0, to: 1).ticks(4) == [0, 500, 1000])
        #expect(LinearScale(domain: 0...7, from: 0, to: 1).ticks(5) == [0, 2, 4, 6])
        // Byte axes: powers of two.
        #expect(LinearScale(domain: 0...1_100_000, from: 0, to: 1).ticks(4, binary: true) == [0, 524_288, 1_048_576])
        // An empty domain is widened, never divided by zero.
        let flat = LinearScale(domain: 3...3, from: 0, to: 10)
        #expect(flat(3) == 0 && flat(4) == 10)
    }

    @Test func attributeValuesAndNumbersAreWrittenSafely() {
        #expect(SVG.escapeAttribute("a \"b\" <c> & d") == "a &quot;b&quot; &lt;c&gt; &amp; d")
        #expect(SVG.number(12) == "12" && SVG.number(12.5) == "12.5" && SVG.number(0.256) == "0.26" && SVG.number(.nan) == "0")
        let doc = SVGDocument(id: "c", width: 10, height: 10, title: "t \"q\"", description: "d <x>", cssClass: "k", children: [])
        let svg = doc.render()
        #expect(svg.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"c\""))
        #expect(svg.contains("role=\"img\"") && svg.contains("aria-labelledby=\"c-title c-desc\""))
        #expect(svg.contains("<title id=\"c-title\">t \"q\"</title>") && svg.contains("<desc id=\"c-desc\">d &lt;x&gt;</desc>"))
    }

    @Test func aTimelineDrawsEverySegmentOfEachLaneWithItsPatternAndTitle() {
        let chart = TimelineChart(
            id: "tl", title: "states", description: "two lanes",
            lanes: [
                .init(name: "source", segments: [
                    .init(start: 0, end: 1, style: running, title: "running 0-1"),
                    .init(start: 1, end: 9, style: saving, title: "pre-copy 1-9"),
                ]),
                .init(name: "destination", segments: [.init(start: 0, end: 10, style: running, title: "running 0-10")]),
            ],
            bands: [.init(start: 1, end: 9, label: "pre-copy", color: "#eef", key: "pre-copy", lane: 0)],
            markers: [.init(time: 5, lane: 0, shape: .triangle, color: "#f00", key: "errno", title: "EIO <here>"),
                      .init(time: 6, lane: 1, shape: .diamond, color: "#ff0", key: "violation", title: "rule")],
            domain: 0...10, axisLabel: "ms")
        let svg = chart.document.render()
        #expect(occurrences(of: "class=\"segment state-", in: svg) == 3)
        #expect(occurrences(of: "class=\"segment state-pre-copy\"", in: svg) == 1)
        #expect(occurrences(of: "class=\"lane\"", in: svg) == 2)
        // The second cue: the striped pattern is defined once and used by the segment and the legend.
        #expect(occurrences(of: "<pattern id=\"tl-stripes\"", in: svg) == 1)
        #expect(occurrences(of: "url(#tl-stripes)", in: svg) == 2)
        #expect(svg.contains("<title>pre-copy 1-9</title>") && svg.contains("<title>EIO &lt;here&gt;</title>"))
        #expect(occurrences(of: "class=\"marker marker-errno\"", in: svg) == 1 && occurrences(of: "class=\"marker marker-violation\"", in: svg) == 1)
        #expect(occurrences(of: "class=\"phase phase-pre-copy\"", in: svg) == 1)
        // The wide segment is labelled on the chart itself, the 1-unit one (~106 px) too.
        #expect(occurrences(of: "class=\"segment-label\"", in: svg) == 3)
        // 0...10 spans the plot: x(0) is the left margin, x(10) the right edge.
        #expect(svg.contains("x=\"120\" y=\"50\""))
    }

    @Test func aLineChartHasAPointPerValueAndTheThresholdLine() {
        let points = [100.0, 60, 30, 10].enumerated().map { LineChart.Point(x: Double($0.offset + 1), y: $0.element, title: "p\($0.offset + 1)") }
        let svg = LineChart(id: "cv", title: "pending", description: "falls", points: points, reference: .init(value: 20, label: "stop threshold"),
                            xLabel: "read", yLabel: "bytes").document.render()
        #expect(occurrences(of: "class=\"point\"", in: svg) == 4)
        #expect(occurrences(of: "<polyline", in: svg) == 1)
        #expect(occurrences(of: "class=\"reference\"", in: svg) == 1 && svg.contains("stop threshold"))
        // y grows upwards: the first (largest) point is above the last.
        let cys = svg.components(separatedBy: "cy=\"").dropFirst().compactMap { Double($0.prefix { $0 != "\"" }) }
        #expect(cys.count == 4 && cys[0] < cys[3])
    }

    @Test func aBarChartDrawsABarPerValueUpToItsLimit() {
        let groups = [saving, running]
        var chart = BarChart(id: "b", title: "chunks", description: "", bars: (0..<10).map { .init(value: Double($0 + 1), group: $0 % 2, title: "c\($0)") },
                             groups: groups, xLabel: "chunk", yLabel: "bytes")
        #expect(occurrences(of: "class=\"bar bar-", in: chart.document.render()) == 10)
        #expect(occurrences(of: "class=\"bar bar-pre-copy\"", in: chart.document.render()) == 5)
        chart.maximumBars = 4
        #expect(chart.drawnCount == 4 && occurrences(of: "class=\"bar bar-", in: chart.document.render()) == 4)
        // A bar outside the groups still draws (grey), never traps.
        chart.bars = [.init(value: 1, group: 7, title: "odd")]
        #expect(occurrences(of: "class=\"bar bar-other\"", in: chart.document.render()) == 1)
    }
}

/// One bar per value, in order, each bar styled by its group (colour, pattern and a legend
/// entry), on a y axis from zero.
public struct BarChart {
    public struct Bar: Sendable, Hashable {
        public var value: Double
        /// Index into `groups`.
        public var group: Int
        public var title: String

        public init(value: Double, group: Int, title: String) {
            self.value = value
            self.group = group
            self.title = title
        }
    }

    public var id: String
    public var title: String
    public var description: String
    public var bars: [Bar]
    public var groups: [SeriesStyle]
    public var xLabel: String
    public var yLabel: String
    public var yFormat: (Double) -> String
    /// Ticks of the y axis at powers of two (a byte axis).
    public var binaryTicks = false
    public var width: Double = 1180
    public var height: Double = 240
    /// At most this many bars are drawn (the first ones); `drawnCount` says how many were.
    public var maximumBars = 600

    public init(id: String, title: String, description: String, bars: [Bar], groups: [SeriesStyle], xLabel: String, yLabel: String,
                yFormat: @escaping (Double) -> String = { SVG.number($0) }) {
        self.id = id
        self.title = title
        self.description = description
        self.bars = bars
        self.groups = groups
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.yFormat = yFormat
    }

    /// How many bars the chart draws.
    public var drawnCount: Int { min(bars.count, maximumBars) }

    static let left = 90.0, right = 16.0, top = 30.0, bottom = 44.0

    public var document: SVGDocument {
        let shown = bars.prefix(maximumBars)
        let y = LinearScale(domain: 0...((shown.map(\.value).max() ?? 1) * 1.08), from: height - Self.bottom, to: Self.top)
        let slot = (width - Self.left - Self.right) / Double(max(1, shown.count))
        var children: [SVG.Element] = [Legend.patterns(groups, prefix: id), Legend.row(groups, x: Self.left, y: 16, patternPrefix: id)]
        var axis: [SVG.Element] = []
        for tick in y.ticks(4, binary: binaryTicks) {
            axis.append(SVG.element("line", ["x1": SVG.number(Self.left), "x2": SVG.number(width - Self.right), "y1": SVG.number(y(tick)),
                                             "y2": SVG.number(y(tick)), "stroke": "#ddd"]))
            axis.append(SVG.text(yFormat(tick), x: Self.left - 6, y: y(tick) + 4, anchor: "end", cssClass: "tick"))
        }
        axis.append(SVG.text(xLabel, x: (Self.left + width) / 2, y: height - 8, anchor: "middle", cssClass: "axis-label"))
        axis.append(SVG.text(yLabel, x: 8, y: Self.top - 2, cssClass: "axis-label"))
        children.append(SVG.element("g", ["class": "axis"], axis))
        var drawn: [SVG.Element] = []
        for (i, bar) in shown.enumerated() {
            let style = groups.indices.contains(bar.group) ? groups[bar.group] : SeriesStyle(name: "", color: "#999", pattern: .solid, key: "other")
            let x0 = Self.left + Double(i) * slot + min(1, slot * 0.1), w = max(0.5, slot - 2 * min(1, slot * 0.1))
            let top = y(bar.value), h = max(1, (height - Self.bottom) - top)
            var parts = [SVG.element("rect", ["x": SVG.number(x0), "y": SVG.number(top), "width": SVG.number(w), "height": SVG.number(h), "fill": style.color])]
            if style.pattern != .solid {
                parts.append(SVG.element("rect", ["x": SVG.number(x0), "y": SVG.number(top), "width": SVG.number(w), "height": SVG.number(h),
                                                  "fill": style.pattern.fill(prefix: id)]))
            }
            parts.append(SVG.title(bar.title))
            drawn.append(SVG.element("g", ["class": "bar bar-\(style.key)"], parts))
        }
        children.append(SVG.element("g", ["class": "bars"], drawn))
        children.append(SVG.element("line", ["x1": SVG.number(Self.left), "x2": SVG.number(width - Self.right), "y1": SVG.number(height - Self.bottom),
                                             "y2": SVG.number(height - Self.bottom), "stroke": "#333"]))
        return SVGDocument(id: id, width: width, height: height, title: title, description: description, cssClass: "bar-chart", children: children)
    }
}

/// A series of points joined by a line, on a y axis from zero, with an optional horizontal
/// reference line (a threshold).
public struct LineChart {
    public struct Point: Sendable, Hashable {
        public var x: Double
        public var y: Double
        public var title: String

        public init(x: Double, y: Double, title: String) {
            self.x = x
            self.y = y
            self.title = title
        }
    }

    public struct Reference: Sendable, Hashable {
        public var value: Double
        public var label: String

        public init(value: Double, label: String) {
            self.value = value
            self.label = label
        }
    }

    public var id: String
    public var title: String
    public var description: String
    public var points: [Point]
    public var reference: Reference?
    public var xLabel: String
    public var yLabel: String
    /// Formats y tick values (bytes, say).
    public var yFormat: (Double) -> String
    /// Ticks of the y axis at powers of two (a byte axis).
    public var binaryTicks = false
    public var color = "#0072B2"
    public var width: Double = 1180
    public var height: Double = 260

    public init(id: String, title: String, description: String, points: [Point], reference: Reference? = nil,
                xLabel: String, yLabel: String, yFormat: @escaping (Double) -> String = { SVG.number($0) }) {
        self.id = id
        self.title = title
        self.description = description
        self.points = points
        self.reference = reference
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.yFormat = yFormat
    }

    static let left = 90.0, right = 16.0, top = 16.0, bottom = 44.0

    public var document: SVGDocument {
        let xs = points.map(\.x), ys = points.map(\.y) + [reference?.value ?? 0]
        let x = LinearScale(domain: (xs.min() ?? 0)...(xs.max() ?? 1), from: Self.left, to: width - Self.right)
        let y = LinearScale(domain: 0...((ys.max() ?? 1) * 1.08), from: height - Self.bottom, to: Self.top)
        var children: [SVG.Element] = []
        var grid: [SVG.Element] = []
        for tick in y.ticks(5, binary: binaryTicks) {
            grid.append(SVG.element("line", ["x1": SVG.number(Self.left), "x2": SVG.number(width - Self.right), "y1": SVG.number(y(tick)),
                                             "y2": SVG.number(y(tick)), "stroke": "#ddd"]))
            grid.append(SVG.text(yFormat(tick), x: Self.left - 6, y: y(tick) + 4, anchor: "end", cssClass: "tick"))
        }
        for tick in x.ticks(min(10, max(1, points.count - 1))) where tick == tick.rounded() {
            grid.append(SVG.text(SVG.number(tick), x: x(tick), y: height - Self.bottom + 16, anchor: "middle", cssClass: "tick"))
        }
        grid.append(SVG.element("line", ["x1": SVG.number(Self.left), "x2": SVG.number(width - Self.right), "y1": SVG.number(height - Self.bottom),
                                         "y2": SVG.number(height - Self.bottom), "stroke": "#333"]))
        grid.append(SVG.text(xLabel, x: (Self.left + width) / 2, y: height - 8, anchor: "middle", cssClass: "axis-label"))
        grid.append(SVG.text(yLabel, x: 8, y: Self.top + 4, cssClass: "axis-label"))
        children.append(SVG.element("g", ["class": "axis"], grid))
        if let reference {
            let ry = y(reference.value)
            children.append(SVG.element("g", ["class": "reference"], [
                SVG.element("line", ["x1": SVG.number(Self.left), "x2": SVG.number(width - Self.right), "y1": SVG.number(ry), "y2": SVG.number(ry),
                                     "stroke": "#D55E00", "stroke-width": "2", "stroke-dasharray": "8 4"]),
                SVG.text(reference.label, x: width - Self.right - 4, y: ry - 5, anchor: "end", cssClass: "reference-label"),
                SVG.title(reference.label),
            ]))
        }
        if points.count > 1 {
            let path = points.map { "\(SVG.number(x($0.x))),\(SVG.number(y($0.y)))" }.joined(separator: " ")
            children.append(SVG.element("polyline", ["class": "series", "points": path, "fill": "none", "stroke": color, "stroke-width": "2"]))
        }
        let dots = points.map { p in
            SVG.element("g", ["class": "point"], [
                SVG.element("circle", ["cx": SVG.number(x(p.x)), "cy": SVG.number(y(p.y)), "r": "4", "fill": "#fff", "stroke": color, "stroke-width": "2"]),
                SVG.title(p.title),
            ])
        }
        children.append(SVG.element("g", ["class": "points"], dots))
        return SVGDocument(id: id, width: width, height: height, title: title, description: description, cssClass: "line-chart", children: children)
    }
}

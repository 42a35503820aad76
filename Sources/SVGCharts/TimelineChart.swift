/// Lanes of state segments on one time axis, with shaded phases behind them and markers on
/// them: what a device went through and when.
public struct TimelineChart {
    public struct Segment: Sendable, Hashable {
        public var start: Double
        public var end: Double
        public var style: SeriesStyle
        /// The `<title>` (hover text, read by screen readers).
        public var title: String

        public init(start: Double, end: Double, style: SeriesStyle, title: String) {
            self.start = start
            self.end = end
            self.style = style
            self.title = title
        }
    }

    public struct Lane: Sendable, Hashable {
        public var name: String
        public var segments: [Segment]

        public init(name: String, segments: [Segment]) {
            self.name = name
            self.segments = segments
        }
    }

    /// A span of time shaded behind one lane (or all lanes), labelled above it.
    public struct Band: Sendable, Hashable {
        public var start: Double
        public var end: Double
        public var label: String
        public var color: String
        public var key: String
        /// The lane it shades; nil for all of them.
        public var lane: Int?

        public init(start: Double, end: Double, label: String, color: String, key: String, lane: Int? = nil) {
            self.start = start
            self.end = end
            self.label = label
            self.color = color
            self.key = key
            self.lane = lane
        }
    }

    /// A point event on a lane: a shape (never colour alone) with a title.
    public struct Marker: Sendable, Hashable {
        public enum Shape: String, Sendable, Hashable {
            /// A downward triangle above the lane.
            case triangle
            /// A diamond on the lane's top edge.
            case diamond
        }

        public var time: Double
        public var lane: Int
        public var shape: Shape
        public var color: String
        /// Class suffix (`marker-fault`).
        public var key: String
        public var title: String

        public init(time: Double, lane: Int, shape: Shape, color: String, key: String, title: String) {
            self.time = time
            self.lane = lane
            self.shape = shape
            self.color = color
            self.key = key
            self.title = title
        }
    }

    public var id: String
    public var title: String
    public var description: String
    public var lanes: [Lane]
    public var bands: [Band]
    public var markers: [Marker]
    /// The time axis; `nil` spans every segment.
    public var domain: ClosedRange<Double>?
    public var axisLabel: String
    /// The styles the legend lists (in order); the segments' own styles when empty.
    public var legend: [SeriesStyle]
    public var width: Double = 1180

    public init(id: String, title: String, description: String, lanes: [Lane], bands: [Band] = [], markers: [Marker] = [],
                domain: ClosedRange<Double>? = nil, axisLabel: String, legend: [SeriesStyle] = []) {
        self.id = id
        self.title = title
        self.description = description
        self.lanes = lanes
        self.bands = bands
        self.markers = markers
        self.domain = domain
        self.axisLabel = axisLabel
        self.legend = legend
    }

    static let laneHeight = 30.0, laneGap = 14.0, top = 50.0, left = 120.0, right = 16.0

    public var document: SVGDocument {
        let styles = legend.isEmpty ? uniqueStyles : legend
        let plotBottom = Self.top + Double(lanes.count) * (Self.laneHeight + Self.laneGap)
        let height = plotBottom + 40
        let times = lanes.flatMap { $0.segments.flatMap { [$0.start, $0.end] } } + bands.flatMap { [$0.start, $0.end] } + markers.map(\.time)
        let span = domain ?? ((times.min() ?? 0)...(times.max() ?? 1))
        let x = LinearScale(domain: span, from: Self.left, to: width - Self.right)
        var children: [SVG.Element] = [Legend.patterns(styles, prefix: id), Legend.row(styles, x: Self.left, y: 16, patternPrefix: id)]

        for band in bands {
            let x0 = x(band.start), w = max(1, x(band.end) - x0)
            let laneTop = band.lane.map { Self.top + Double($0) * (Self.laneHeight + Self.laneGap) } ?? Self.top
            let laneBottom = band.lane == nil ? plotBottom - Self.laneGap : laneTop + Self.laneHeight
            children.append(SVG.element("g", ["class": "phase phase-\(band.key)"], [
                SVG.element("rect", ["x": SVG.number(x0), "y": SVG.number(laneTop - 13), "width": SVG.number(w),
                                     "height": SVG.number(laneBottom - laneTop + 16), "fill": band.color]),
                SVG.title("\(band.label): \(SVG.number(band.start)) to \(SVG.number(band.end)) \(axisLabel)"),
            ] + (w >= Double(band.label.count) * 6 ? [SVG.text(band.label, x: x0 + w / 2, y: laneTop - 3, anchor: "middle", cssClass: "phase-label")] : [])))
        }
        for (i, lane) in lanes.enumerated() {
            let y = Self.top + Double(i) * (Self.laneHeight + Self.laneGap)
            var items: [SVG.Element] = [SVG.text(lane.name, x: Self.left - 8, y: y + Self.laneHeight / 2 + 4, anchor: "end", cssClass: "lane-name")]
            for segment in lane.segments {
                let x0 = x(segment.start), w = max(1, x(segment.end) - x0)
                var parts: [SVG.Element] = [
                    SVG.element("rect", ["x": SVG.number(x0), "y": SVG.number(y), "width": SVG.number(w), "height": SVG.number(Self.laneHeight),
                                         "fill": segment.style.color, "stroke": "#222", "stroke-width": "0.5"]),
                ]
                if segment.style.pattern != .solid {
                    parts.append(SVG.element("rect", ["x": SVG.number(x0), "y": SVG.number(y), "width": SVG.number(w),
                                                      "height": SVG.number(Self.laneHeight), "fill": segment.style.pattern.fill(prefix: id)]))
                }
                if w >= Double(segment.style.name.count) * 6.6 + 6 {
                    parts.append(SVG.text(segment.style.name, x: x0 + w / 2, y: y + Self.laneHeight / 2 + 4, anchor: "middle", cssClass: "segment-label"))
                }
                parts.append(SVG.title(segment.title))
                items.append(SVG.element("g", ["class": "segment state-\(segment.style.key)"], parts))
            }
            children.append(SVG.element("g", ["class": "lane", "data-lane": lane.name], items))
        }
        for marker in markers where lanes.indices.contains(marker.lane) {
            let cx = x(marker.time), y = Self.top + Double(marker.lane) * (Self.laneHeight + Self.laneGap)
            let d: String = switch marker.shape {
            case .triangle: "M\(SVG.number(cx - 6)),\(SVG.number(y - 10)) L\(SVG.number(cx + 6)),\(SVG.number(y - 10)) L\(SVG.number(cx)),\(SVG.number(y + 2)) Z"
            case .diamond: "M\(SVG.number(cx)),\(SVG.number(y - 7)) L\(SVG.number(cx + 7)),\(SVG.number(y)) L\(SVG.number(cx)),\(SVG.number(y + 7)) L\(SVG.number(cx - 7)),\(SVG.number(y)) Z"
            }
            children.append(SVG.element("g", ["class": "marker marker-\(marker.key)"], [
                SVG.element("path", ["d": d, "fill": marker.color, "stroke": "#000", "stroke-width": "1"]),
                SVG.element("line", ["x1": SVG.number(cx), "x2": SVG.number(cx), "y1": SVG.number(y), "y2": SVG.number(y + Self.laneHeight),
                                     "stroke": marker.color, "stroke-width": "1.5", "stroke-dasharray": "2 2"]),
                SVG.title(marker.title),
            ]))
        }
        var axis: [SVG.Element] = [SVG.element("line", ["x1": SVG.number(Self.left), "x2": SVG.number(width - Self.right),
                                                        "y1": SVG.number(plotBottom), "y2": SVG.number(plotBottom), "stroke": "#333"])]
        for tick in x.ticks(8) {
            axis.append(SVG.element("line", ["x1": SVG.number(x(tick)), "x2": SVG.number(x(tick)), "y1": SVG.number(plotBottom),
                                             "y2": SVG.number(plotBottom + 5), "stroke": "#333"]))
            axis.append(SVG.text(SVG.number(tick), x: x(tick), y: plotBottom + 17, anchor: "middle", cssClass: "tick"))
        }
        axis.append(SVG.text(axisLabel, x: (Self.left + width - Self.right) / 2, y: plotBottom + 34, anchor: "middle", cssClass: "axis-label"))
        children.append(SVG.element("g", ["class": "axis"], axis))
        return SVGDocument(id: id, width: width, height: height, title: title, description: description, cssClass: "timeline", children: children)
    }

    private var uniqueStyles: [SeriesStyle] {
        var seen: [SeriesStyle] = []
        for s in lanes.flatMap({ $0.segments.map(\.style) }) where !seen.contains(s) { seen.append(s) }
        return seen
    }
}

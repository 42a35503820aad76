import Foundation

/// A linear scale from a data domain to a pixel range, with round tick values.
public struct LinearScale: Sendable, Hashable {
    public var domain: ClosedRange<Double>
    /// Pixels of the domain's lower and upper bound (`to` is smaller for a y axis drawn upwards).
    public var from: Double
    public var to: Double

    /// An empty domain (all values equal) is widened to one unit so nothing divides by zero.
    public init(domain: ClosedRange<Double>, from: Double, to: Double) {
        self.domain = domain.upperBound > domain.lowerBound ? domain : domain.lowerBound...(domain.lowerBound + 1)
        self.from = from
        self.to = to
    }

    public func callAsFunction(_ value: Double) -> Double {
        let t = (value - domain.lowerBound) / (domain.upperBound - domain.lowerBound)
        return from + t * (to - from)
    }

    /// About `count` ticks inside the domain: at 1, 2 or 5 times a power of ten, or with
    /// `binary` at powers of two (byte axes: 256 KiB, 512 KiB, 1 MiB rather than 976.6 KiB).
    public func ticks(_ count: Int = 5, binary: Bool = false) -> [Double] {
        let span = domain.upperBound - domain.lowerBound
        guard span > 0, span.isFinite, count > 0 else { return [domain.lowerBound] }
        let raw = span / Double(count)
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        let step = binary ? pow(2, log2(raw).rounded(.up)) : [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        var ticks: [Double] = []
        var v = (domain.lowerBound / step).rounded(.up) * step
        while v <= domain.upperBound + step * 1e-9, ticks.count < 50 {
            ticks.append(v)
            v += step
        }
        return ticks
    }
}

/// A second cue beside colour: a fill pattern drawn over a shape (it survives greyscale print
/// and colour-blind eyes).
public enum FillPattern: String, Sendable, Hashable, CaseIterable {
    case solid, stripes, crosshatch, dots, zigzag

    /// The `<pattern>` definition with id `prefix-NAME`, or nil for `solid`.
    func definition(prefix: String) -> SVG.Element? {
        let id = "\(prefix)-\(rawValue)"
        let ink = "rgba(0,0,0,0.45)"
        let shapes: [SVG.Element]
        switch self {
        case .solid: return nil
        case .stripes:
            shapes = [SVG.element("path", ["d": "M0,8 L8,0", "stroke": ink, "stroke-width": "1.5"])]
        case .crosshatch:
            shapes = [SVG.element("path", ["d": "M0,8 L8,0 M0,0 L8,8", "stroke": ink, "stroke-width": "1"])]
        case .dots:
            shapes = [SVG.element("circle", ["cx": "4", "cy": "4", "r": "1.4", "fill": ink])]
        case .zigzag:
            shapes = [SVG.element("path", ["d": "M0,6 L2,2 L4,6 L6,2 L8,6", "stroke": ink, "stroke-width": "1", "fill": "none"])]
        }
        return SVG.element("pattern", ["id": id, "width": "8", "height": "8", "patternUnits": "userSpaceOnUse"], shapes)
    }

    /// The fill that references the pattern of a chart whose patterns are prefixed `prefix`.
    func fill(prefix: String) -> String { "url(#\(prefix)-\(rawValue))" }
}

/// How a series or a state is drawn: a colour, a pattern and the name a legend shows.
public struct SeriesStyle: Sendable, Hashable {
    public var name: String
    public var color: String
    public var pattern: FillPattern
    /// A short class suffix for the page's stylesheet and for tests (`state-running`).
    public var key: String

    public init(name: String, color: String, pattern: FillPattern, key: String) {
        self.name = name
        self.color = color
        self.pattern = pattern
        self.key = key
    }
}

enum Legend {
    /// A row of swatches (colour and pattern) with their names, from `x` at baseline `y`.
    static func row(_ styles: [SeriesStyle], x: Double, y: Double, patternPrefix: String) -> SVG.Element {
        var items: [SVG.Element] = []
        var cursor = x
        for style in styles {
            var swatch: [SVG.Element] = [SVG.element("rect", ["x": SVG.number(cursor), "y": SVG.number(y - 10), "width": "14", "height": "12",
                                                              "fill": style.color, "stroke": "#333", "stroke-width": "0.5"])]
            if style.pattern != .solid {
                swatch.append(SVG.element("rect", ["x": SVG.number(cursor), "y": SVG.number(y - 10), "width": "14", "height": "12",
                                                   "fill": style.pattern.fill(prefix: patternPrefix)]))
            }
            items.append(SVG.element("g", ["class": "legend-item legend-\(style.key)"], swatch + [SVG.text(style.name, x: cursor + 18, y: y)]))
            cursor += 18 + Double(style.name.count) * 6.6 + 16
        }
        return SVG.element("g", ["class": "legend"], items)
    }

    /// The `<defs>` of every pattern `styles` use.
    static func patterns(_ styles: [SeriesStyle], prefix: String) -> SVG.Element {
        let used = FillPattern.allCases.filter { p in styles.contains { $0.pattern == p } }
        return SVG.element("defs", [:], used.compactMap { $0.definition(prefix: prefix) })
    }
}

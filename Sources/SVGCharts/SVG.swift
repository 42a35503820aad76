import Foundation
import Plot

/// SVG elements as Plot nodes: the one place the charts make markup. Attribute values are
/// escaped here (Plot escapes text, not attribute values).
public enum SVG {
    /// The context of nodes inside an `<svg>` element.
    public enum Context {}
    /// An SVG element, attribute or text.
    public typealias Element = Node<Context>

    /// An element with attributes (given in order) and children.
    public static func element(_ name: String, _ attributes: KeyValuePairs<String, String> = [:], _ children: [Element] = []) -> Element {
        .element(named: name, nodes: attributes.map { attribute($0.key, $0.value) } + children)
    }

    /// One attribute, its value escaped for a double-quoted attribute.
    public static func attribute(_ name: String, _ value: String) -> Element {
        .attribute(named: name, value: escapeAttribute(value), ignoreIfValueIsEmpty: false)
    }

    /// `<title>`: what a browser shows on hover and a screen reader reads for its parent.
    public static func title(_ text: String) -> Element { .element(named: "title", nodes: [.text(text)]) }

    /// `<text>` at a point, with an optional anchor (`start`, `middle`, `end`) and class.
    public static func text(_ content: String, x: Double, y: Double, anchor: String = "start", cssClass: String = "label") -> Element {
        element("text", ["x": number(x), "y": number(y), "text-anchor": anchor, "class": cssClass], [.text(content)])
    }

    /// `&`, `<`, `>` and `"` as references, so any text can stand in an attribute value.
    public static func escapeAttribute(_ value: String) -> String {
        guard value.contains(where: { "&<>\"".contains($0) }) else { return value }
        var out = ""
        for c in value {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }

    /// A coordinate with at most two decimals and no trailing zeros: `12`, `12.5`, `0.25`.
    public static func number(_ value: Double) -> String {
        guard value.isFinite else { return "0" }
        let rounded = (value * 100).rounded() / 100
        if rounded == rounded.rounded() { return String(Int64(rounded)) }
        var s = String(format: "%.2f", rounded)
        while s.hasSuffix("0") { s.removeLast() }
        return s
    }
}

/// A complete `<svg>` chart: a labelled image (`role="img"`, `<title>` and `<desc>` referenced by
/// `aria-labelledby`) of a fixed viewBox that scales to its container's width.
public struct SVGDocument {
    /// Unique within the page: prefixes the ids of the title, the description and the patterns.
    public var id: String
    public var width: Double
    public var height: Double
    public var title: String
    public var description: String
    public var cssClass: String
    public var children: [SVG.Element]

    public init(id: String, width: Double, height: Double, title: String, description: String, cssClass: String, children: [SVG.Element]) {
        self.id = id
        self.width = width
        self.height = height
        self.title = title
        self.description = description
        self.cssClass = cssClass
        self.children = children
    }

    /// The `<svg>` element as a node of any Plot context (an HTML body, or SVG).
    public func node<C>() -> Node<C> {
        let head: [SVG.Element] = [
            SVG.attribute("xmlns", "http://www.w3.org/2000/svg"),
            SVG.attribute("id", id),
            SVG.attribute("class", "chart " + cssClass),
            SVG.attribute("viewBox", "0 0 \(SVG.number(width)) \(SVG.number(height))"),
            SVG.attribute("width", SVG.number(width)),
            SVG.attribute("role", "img"),
            SVG.attribute("aria-labelledby", "\(id)-title \(id)-desc"),
            SVG.element("title", ["id": "\(id)-title"], [.text(title)]),
            SVG.element("desc", ["id": "\(id)-desc"], [.text(description)]),
        ]
        return .element(named: "svg", nodes: head + children)
    }

    /// The chart as markup.
    public func render() -> String {
        let root: Node<SVG.Context> = node()
        return root.render()
    }
}

import Foundation
import XMLCoder

/// The JUnit XML document of a run, as values XMLCoder encodes: `<testsuites>` with one
/// `<testsuite>` and a `<testcase>` per scenario (docs/junit.xsd). The element and attribute
/// names are JUnit's; which keys are attributes is `nodeEncoding(for:)`.
struct JUnitReport: Encodable, DynamicNodeEncoding {
    var name: String
    var tests: Int
    var failures: Int
    var errors: Int
    var skipped: Int
    var time: String
    var testsuite: [Suite]

    struct Suite: Encodable, DynamicNodeEncoding {
        var name: String
        var tests: Int
        var failures: Int
        var errors: Int
        var skipped: Int
        var time: String
        var timestamp: String
        var hostname: String
        var properties: Properties
        var testcase: [Case]

        static func nodeEncoding(for key: any CodingKey) -> XMLEncoder.NodeEncoding {
            key.stringValue == CodingKeys.properties.stringValue || key.stringValue == CodingKeys.testcase.stringValue ? .element : .attribute
        }
    }

    struct Properties: Encodable {
        var property: [Property]
    }

    struct Property: Encodable, DynamicNodeEncoding {
        var name: String
        var value: String
        static func nodeEncoding(for key: any CodingKey) -> XMLEncoder.NodeEncoding { .attribute }
    }

    struct Case: Encodable, DynamicNodeEncoding {
        var classname: String
        var name: String
        var file: String
        var time: String
        var properties: Properties
        var skipped: Problem?
        var error: Problem?
        var failure: Problem?
        var systemOut: String?

        enum CodingKeys: String, CodingKey {
            case classname, name, file, time, properties, skipped, error, failure
            case systemOut = "system-out"
        }

        static func nodeEncoding(for key: any CodingKey) -> XMLEncoder.NodeEncoding {
            ["classname", "name", "file", "time"].contains(key.stringValue) ? .attribute : .element
        }
    }

    /// `<skipped>`, `<error>`, `<failure>`: a message and type as attributes, the details as text.
    struct Problem: Encodable, DynamicNodeEncoding {
        var message: String
        var type: String?
        var text: String?

        enum CodingKeys: String, CodingKey {
            case message, type
            case text = ""  // XMLCoder's key for an element's own text
        }

        static func nodeEncoding(for key: any CodingKey) -> XMLEncoder.NodeEncoding {
            key.stringValue.isEmpty ? .element : .attribute
        }
    }

    static func nodeEncoding(for key: any CodingKey) -> XMLEncoder.NodeEncoding {
        key.stringValue == CodingKeys.testsuite.stringValue ? .element : .attribute
    }

    /// The document's bytes, two-space indented, with the XML declaration. Tabs and line breaks
    /// in attributes are character references, so the values keep them (a parser turns raw ones
    /// into spaces); characters XML 1.0 cannot carry were replaced already (`XML.text`).
    func encoded() throws -> Data {
        let encoder = XMLEncoder()
        encoder.outputFormatting = [.prettyPrinted]
        encoder.prettyPrintIndentation = .spaces(2)
        let breaks = [("\t", "&#9;"), ("\n", "&#10;"), ("\r", "&#13;")]
        encoder.charactersEscapedInAttributes += breaks
        var data = try encoder.encode(self, withRootKey: "testsuites", header: XMLHeader(version: 1.0, encoding: "UTF-8"))
        data.append(0x0A)
        return data
    }
}

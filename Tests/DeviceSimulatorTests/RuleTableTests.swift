import DeviceSimulator
import Foundation
import Testing

/// The checker's rule table is defined once, in code; `docs/vmm-guide.md` lists it.
@Suite struct RuleTableTests {
    static let guide = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docs/vmm-guide.md")

    /// The guide's rows that name a rule or a class: rule -> (class, refused).
    static func guideRows() throws -> [String: (kind: String, refused: String)] {
        let known = Set(ProtocolViolation.Rule.allCases.map(\.rawValue))
        var rows: [String: (String, String)] = [:]
        for line in try String(contentsOf: guide, encoding: .utf8).split(separator: "\n") where line.hasPrefix("| `") {
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 5 else { continue }
            let name = cells[1].trimmingCharacters(in: CharacterSet(charactersIn: "`"))
            if known.contains(name) || ["violation", "deviation"].contains(cells[2]) {
                #expect(rows[name] == nil, "the guide lists \(name) twice")
                rows[name] = (cells[2], cells[3])
            }
        }
        return rows
    }

    @Test func theGuideListsEveryRuleWithItsClassAndRefusal() throws {
        let rows = try Self.guideRows()
        for entry in ProtocolViolation.table {
            let row = rows[entry.rule.rawValue]
            #expect(row?.kind == entry.kind.rawValue, "\(entry.rule.rawValue): guide says \(row?.kind ?? "nothing"), code \(entry.kind.rawValue)")
            #expect(row?.refused == entry.refusal.rawValue, "\(entry.rule.rawValue): guide says \(row?.refused ?? "nothing"), code \(entry.refusal.rawValue)")
        }
        #expect(Set(rows.keys) == Set(ProtocolViolation.Rule.allCases.map(\.rawValue)), "rules the code does not know: \(Set(rows.keys).subtracting(ProtocolViolation.Rule.allCases.map(\.rawValue)))")
    }

    /// Deviations are never refused, on any mount; the classes are what `--strict` consults.
    @Test func deviationsAreNeverRefusedAndViolationsAreUnderStrict() {
        for entry in ProtocolViolation.table {
            switch entry.kind {
            case .deviation:
                #expect(entry.refusal == .never && !entry.rule.refuses(strict: true), "\(entry.rule)")
            case .violation:
                #expect(entry.refusal != .never && entry.rule.refuses(strict: true), "\(entry.rule)")
            }
            #expect(entry.citation.isEmpty == false)
        }
    }
}

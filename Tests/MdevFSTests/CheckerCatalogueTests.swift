import DeviceSimulator
import Foundation
import Testing
import TestSupport

/// The checker's catalogue: `Tests/Fixtures/catalogue/deviant.c`, a correct v1 client with one
/// deliberate deviation per rule of the checker's table (and correct clients as controls),
/// compiled with `-Werror` and run through a real mount, normal and `--strict`. Each case states
/// the exact rules each device records and whether the migration completes.
@Suite(.serialized) struct CheckerCatalogueTests {
    static let source = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/catalogue/deviant.c").path

    /// What one run shows: the rules of each device's records, and how the client ended.
    struct Outcome: Equatable, CustomStringConvertible {
        var source: [String] = []
        var destination: [String] = []
        var completed = true
        var description: String { "source \(source), destination \(destination), \(completed ? "completed" : "failed")" }
    }

    struct Case: Sendable, CustomTestStringConvertible {
        /// The client's `--deviation`: a rule's name, or a control.
        var name: String
        var mmap = false
        /// Distinct rules each device records (in order of first record), normal and strict.
        var normal: (source: [String], destination: [String], completed: Bool)
        var strict: (source: [String], destination: [String], completed: Bool)
        var testDescription: String { name + (mmap ? " --mmap" : "") }
    }

    static let ok: ([String], [String], Bool) = ([], [], true)
    static func src(_ rule: String, completed: Bool = true) -> ([String], [String], Bool) { ([rule], [], completed) }
    static func dst(_ rule: String, completed: Bool = true) -> ([String], [String], Bool) { ([], [rule], completed) }

    static let cases: [Case] = [
        // Controls: correct clients, no record on either mount.
        Case(name: "none", normal: ok, strict: ok),
        Case(name: "none", mmap: true, normal: ok, strict: ok),
        Case(name: "map-then-pwrite", normal: ok, strict: ok),
        // One case per rule of the v1 table.
        Case(name: "access-width", normal: src("access-width"), strict: src("access-width")),
        Case(name: "read-only-write", normal: src("read-only-write"), strict: src("read-only-write")),
        Case(name: "invalid-state", normal: dst("invalid-state"), strict: dst("invalid-state")),
        Case(name: "reserved-bits", normal: src("reserved-bits"), strict: src("reserved-bits")),
        Case(name: "data-before-data-offset", normal: dst("data-before-data-offset"), strict: dst("data-before-data-offset")),
        Case(name: "data-outside-window", normal: dst("data-outside-window"), strict: dst("data-outside-window")),
        Case(name: "data-size-without-data-offset", normal: src("data-size-without-data-offset"), strict: src("data-size-without-data-offset")),
        Case(name: "stop-with-pending-bytes", normal: src("stop-with-pending-bytes", completed: false), strict: src("stop-with-pending-bytes")),
        Case(name: "resume-transactions", normal: dst("resume-transactions"), strict: dst("resume-transactions")),
        Case(name: "concurrent-open", normal: src("concurrent-open"), strict: src("concurrent-open")),
        Case(name: "mixed-data-access", normal: dst("mixed-data-access"), strict: dst("mixed-data-access", completed: false)),
        Case(name: "incomplete-resume", normal: dst("incomplete-resume"), strict: dst("incomplete-resume")),
        Case(name: "data-size-outside-resume", normal: src("data-size-outside-resume"), strict: src("data-size-outside-resume")),
        Case(name: "data-size-too-large", normal: dst("data-size-too-large"), strict: dst("data-size-too-large")),
        Case(name: "resume-stream", normal: dst("resume-stream", completed: false), strict: dst("resume-stream", completed: false)),
        Case(name: "resume-order", normal: dst("resume-order", completed: false), strict: dst("resume-order", completed: false)),
        Case(name: "empty-resume-transaction", normal: dst("empty-resume-transaction"), strict: dst("empty-resume-transaction")),
        // The source's cause is recorded where it happens; without strict the destination then
        // refuses the stream the VMM built from it.
        Case(name: "chunk-not-read", normal: (["chunk-not-read"], ["resume-stream"], false), strict: src("chunk-not-read")),
        Case(name: "pending-bytes-not-reread", normal: (["pending-bytes-not-reread"], ["resume-stream"], false),
             strict: src("pending-bytes-not-reread")),
        Case(name: "read-after-pending-zero", normal: src("read-after-pending-zero"), strict: src("read-after-pending-zero")),
    ]

    /// Every v1 rule of the code's table has its case (the v2 rules have theirs in V2MountTests).
    @Test func everyRuleHasACase() {
        let v1 = ProtocolViolation.table.filter { !$0.isV2 }.map(\.rule.rawValue)
        #expect(Set(v1) == Set(Self.cases.map(\.name)).subtracting(["none", "map-then-pwrite"]))
    }

    @Test(arguments: cases) func catalogueCase(_ c: Case) throws {
        let binary = try VMMExampleTests.build(Self.source)
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: binary).deletingLastPathComponent().path) }
        for strict in [false, true] {
            let expected = strict ? c.strict : c.normal
            let got = try Self.run(binary, c, strict: strict)
            let want = Outcome(source: expected.source, destination: expected.destination, completed: expected.completed)
            #expect(got.outcome == want, "\(c.testDescription)\(strict ? " (strict)" : ""):\n\(got.output)")
            // Every record names a rule of the table and explains itself.
            for record in got.records {
                #expect(ProtocolViolation.Rule(rawValue: record.rule) != nil && !record.explanation.isEmpty, "\(record)")
            }
        }
    }

    struct Record { var rule: String; var explanation: String }

    static func run(_ binary: String, _ c: Case, strict: Bool) throws -> (outcome: Outcome, records: [Record], output: String) {
        let fixture = try MountFixture(strict: strict)
        defer { fixture.close() }
        let (status, output) = try runTool(binary, [fixture.path, fixture.typeName, "--deviation", c.name] + (c.mmap ? ["--mmap"] : []))
        #expect(status == 0, "\(output)")
        var outcome = Outcome()
        var records: [Record] = []
        for line in output.split(separator: "\n") {
            if line.hasPrefix("result: ") { outcome.completed = line == "result: ok" }
            for role in ["source", "destination"] where line.hasPrefix("\(role): {") {
                let json = Data(line.dropFirst(role.count + 2).utf8)
                guard let object = try JSONSerialization.jsonObject(with: json) as? [String: Any], let rule = object["rule"] as? String else {
                    Issue.record("not a violation record: \(line)")
                    continue
                }
                records.append(Record(rule: rule, explanation: object["explanation"] as? String ?? ""))
                if role == "source" {
                    if !outcome.source.contains(rule) { outcome.source.append(rule) }
                } else if !outcome.destination.contains(rule) {
                    outcome.destination.append(rule)
                }
            }
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: "\(fixture.path)/devices")
        #expect(left.isEmpty, "devices left behind: \(left)")
        return (outcome, records, output)
    }
}

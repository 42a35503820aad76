import Foundation
@testable import Scenarios
import Testing

/// Random bytes and random mutations of the library's files must give diagnostics, never a crash,
/// and every diagnostic must point into the input.
@Suite struct FuzzTests {
    /// A small deterministic generator (xorshift64*), so a failure reproduces from its seed.
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
        mutating func next() -> UInt64 {
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            return state &* 0x2545_F491_4F6C_DD1D
        }
    }

    static let tokens: [[UInt8]] = [":", "- ", "\n", "  ", "{", "}", "[", "]", "&a ", "*a", "#", "'", "\"", "0", "-1",
                                    "4KiB", "1MiB/s", "faults:", "when:", "chunk: 9999", "\u{0}", "\t", "%", "!!str ", "---\n", "? "]
        .map { Array($0.utf8) }

    func check(_ bytes: [UInt8], context: String) {
        do {
            _ = try ScenarioLoader.parse(bytes: bytes, file: "f.yaml")
        } catch {
            #expect(!error.diagnostics.isEmpty, "\(context)")
            let lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).count
            for d in error.diagnostics {
                #expect(d.file == "f.yaml" && d.line >= 1 && d.column >= 1 && d.line <= lines + 1, "\(context): \(d)")
                #expect(!d.message.isEmpty)
            }
        }
    }

    @Test func randomBytes() {
        var rng = Generator(seed: 0xC0FFEE)
        let start = ContinuousClock.now
        for i in 0..<300 where ContinuousClock.now - start < .seconds(10) {
            let count = Int.random(in: 0...512, using: &rng)
            // Half pure noise, half printable noise (which reaches the YAML parser).
            let bytes = (0..<count).map { _ in
                if i % 2 == 0 { return UInt8.random(in: 0...255, using: &rng) }
                return UInt8.random(in: 0..<8, using: &rng) == 0 ? 0x0A : UInt8.random(in: 0x20...0x7E, using: &rng)
            }
            check(bytes, context: "random \(i)")
        }
    }

    @Test func mutatedLibraryFiles() throws {
        var rng = Generator(seed: 42)
        let files = try libraryFiles().map { try Array(Data(contentsOf: URL(fileURLWithPath: scenariosDirectory + "/" + $0))) }
        let start = ContinuousClock.now
        for i in 0..<400 where ContinuousClock.now - start < .seconds(20) {
            var bytes = files[Int.random(in: 0..<files.count, using: &rng)]
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                let at = Int.random(in: 0...bytes.count, using: &rng)
                switch Int.random(in: 0..<5, using: &rng) {
                case 0 where !bytes.isEmpty: bytes.remove(at: min(at, bytes.count - 1))
                case 1: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: at)
                case 2: bytes.insert(contentsOf: Self.tokens[Int.random(in: 0..<Self.tokens.count, using: &rng)], at: at)
                case 3 where !bytes.isEmpty:
                    // Swap a run of digits or letters for another: wrong units, huge numbers.
                    let end = min(bytes.count, at + Int.random(in: 1...8, using: &rng))
                    bytes.replaceSubrange(min(at, end)..<end, with: Array(String(UInt64.random(in: 0...UInt64.max, using: &rng)).utf8))
                default: bytes = Array(bytes.prefix(at))
                }
            }
            check(bytes, context: "mutation \(i)")
        }
    }

    @Test func deepNestingAndAliases() {
        check(Array(String(repeating: "[", count: 5000).utf8), context: "deep flow nesting")
        check(Array(String(repeating: "- ", count: 3000).utf8), context: "deep block nesting")
        let laughs = "a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nname: *c\ntypes: *c\n"
        check(Array(laughs.utf8), context: "aliases")
    }
}

/// Parsing and printing of the unit-carrying values in scenario files: sizes, rates and durations.
///
/// Binary size units only (`B`, `KiB`, `MiB`, `GiB`, `TiB`): device memory and pages are powers
/// of two, and a decimal `MB` next to a binary page size invites off-by-a-bit mistakes. A bare
/// number is refused, except `0`, which needs no unit.
public enum Units {
    /// Size units and their multipliers, in the order they are suggested.
    public static let sizeUnits: [(name: String, bytes: UInt64)] = [
        ("B", 1), ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40),
    ]
    /// Duration units and their length in nanoseconds.
    public static let durationUnits: [(name: String, nanoseconds: UInt64)] = [
        ("ns", 1), ("us", 1_000), ("ms", 1_000_000), ("s", 1_000_000_000),
    ]

    /// Why a value does not parse, phrased as what is expected.
    public struct ParseError: Error, Sendable, Hashable {
        /// Completes "expected ...", e.g. `a size with a unit (B, KiB, MiB, GiB, TiB)`.
        public var expected: String
    }

    static let sizeExpectation = "a size with a unit (B, KiB, MiB, GiB, TiB)"
    static let rateExpectation = "a rate with a unit per second (B/s, KiB/s, MiB/s, GiB/s, TiB/s)"
    static let durationExpectation = "a duration with a unit (ns, us, ms, s)"

    /// Parses `4KiB`, `256 MiB`, `0`. Fails on a missing or unknown unit and on overflow.
    public static func parseSize(_ text: String) -> Result<UInt64, ParseError> {
        parse(text, units: sizeUnits.map { ($0.name, $0.bytes) }, expected: sizeExpectation)
    }

    /// Parses `32MiB/s`, `1 GiB/s`, `0`: bytes per second.
    public static func parseRate(_ text: String) -> Result<UInt64, ParseError> {
        let trimmed = text.trimmingSpaces
        if trimmed == "0" { return .success(0) }
        guard trimmed.hasSuffix("/s") else { return .failure(ParseError(expected: rateExpectation)) }
        let size = String(trimmed.dropLast(2))
        return parse(size, units: sizeUnits.map { ($0.name, $0.bytes) }, expected: rateExpectation, allowBare: false)
    }

    /// Parses `250us`, `5ms`, `1s`, `0`: nanoseconds.
    public static func parseDuration(_ text: String) -> Result<UInt64, ParseError> {
        parse(text, units: durationUnits.map { ($0.name, $0.nanoseconds) }, expected: durationExpectation)
    }

    private static func parse(
        _ text: String, units: [(String, UInt64)], expected: String, allowBare: Bool = true
    ) -> Result<UInt64, ParseError> {
        let trimmed = text.trimmingSpaces
        if allowBare, trimmed == "0" { return .success(0) }
        let digits = trimmed.prefix { $0.isASCII && $0.isNumber }
        let unit = trimmed.dropFirst(digits.count).trimmingSpaces
        guard !digits.isEmpty, let number = UInt64(digits),
              let multiplier = units.first(where: { $0.0 == unit })?.1
        else { return .failure(ParseError(expected: expected)) }
        let (product, overflow) = number.multipliedReportingOverflow(by: multiplier)
        if overflow { return .failure(ParseError(expected: "\(expected) below 2^64 bytes")) }
        return .success(product)
    }

    /// The shortest exact spelling of a size: `1MiB`, `4KiB`, `1000B`.
    public static func formatSize(_ bytes: UInt64) -> String {
        if bytes == 0 { return "0B" }
        for (name, multiplier) in sizeUnits.reversed() where bytes % multiplier == 0 {
            return "\(bytes / multiplier)\(name)"
        }
        return "\(bytes)B"
    }

    /// A rate as `8MiB/s`.
    public static func formatRate(_ bytesPerSecond: UInt64) -> String { formatSize(bytesPerSecond) + "/s" }

    /// The shortest exact spelling of a duration: `5ms`, `250us`.
    public static func formatDuration(_ nanoseconds: UInt64) -> String {
        if nanoseconds == 0 { return "0s" }
        for (name, multiplier) in durationUnits.reversed() where nanoseconds % multiplier == 0 {
            return "\(nanoseconds / multiplier)\(name)"
        }
        return "\(nanoseconds)ns"
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs (YAML already strips plain scalars; quoted ones not).
    var trimmingSpaces: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(self[first...last])
    }
}

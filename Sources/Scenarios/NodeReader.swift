import Yams

/// One `key: value` pair of a mapping, with both nodes kept for their positions.
struct Entry {
    let key: Node
    let value: Node
    /// The key as written.
    let name: String
    /// How messages name the key, e.g. `chunk_size` or `dirty.rate`.
    let label: String
}

/// The known keys of one mapping that a file gave, by name.
struct Fields {
    /// The mapping itself, for "missing key" positions.
    let node: Node
    private(set) var entries: [String: Entry] = [:]

    init(node: Node, entries: [String: Entry]) {
        self.node = node
        self.entries = entries
    }

    subscript(name: String) -> Entry? { entries[name] }
}

/// Walks composed YAML nodes and collects diagnostics instead of stopping at the first problem.
/// Every accessor returns `nil` after recording a diagnostic when the value does not fit.
final class NodeReader {
    let file: String
    private(set) var diagnostics: [Diagnostic] = []

    init(file: String) { self.file = file }

    var hasErrors: Bool { !diagnostics.isEmpty }

    /// Diagnostics about values, not counting unknown keys. The builders skip the checks that
    /// combine values (cross checks, the engine's validation) after a bad value, but an unknown
    /// key says nothing about the values beside it: gating on it made the semantic errors appear
    /// only after the key was fixed (diagnostics "in rounds").
    var valueErrorCount: Int { diagnostics.count - unknownKeyCount }
    private var unknownKeyCount = 0

    func error(line: Int, column: Int, _ message: String) {
        diagnostics.append(Diagnostic(file: file, line: line, column: column, message: message))
    }

    func error(at node: Node, _ message: String) {
        let mark = node.mark
        error(line: mark?.line ?? 1, column: mark?.column ?? 1, message)
    }

    /// `expected ..., got ...` at the value of `entry`.
    func expected(_ entry: Entry, _ what: String) {
        error(at: entry.value, "\(entry.label): expected \(what), got \(Self.show(entry.value))")
    }

    /// How a value is shown in messages: scalars as written, collections by kind.
    /// YAML 1.2 core schema's null: a plain `~`, `null`, `Null` or `NULL`.
    static func isNull(_ scalar: Node.Scalar) -> Bool {
        scalar.style == .plain && ["~", "null", "Null", "NULL"].contains(scalar.string)
    }

    static func show(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar) where isNull(scalar): "null (\(scalar.string))"
        case .scalar(let scalar): scalar.string.isEmpty ? "nothing" : scalar.string
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .alias: "an alias"
        }
    }

    /// The entries of a mapping whose keys must be among `keys`. Unknown keys get a diagnostic
    /// with the closest known key; `what` names the mapping in messages ("a device type").
    func mapping(_ node: Node, what: String, keys: [String], labelPrefix: String = "") -> Fields? {
        guard case .mapping(let mapping) = node else {
            error(at: node, "expected \(what) (a mapping), got \(Self.show(node))")
            return nil
        }
        var entries: [String: Entry] = [:]
        for (key, value) in mapping {
            guard case .scalar(let scalar) = key, !scalar.string.isEmpty else {
                error(at: key, "expected a key name in \(what), got \(Self.show(key))")
                continue
            }
            let name = scalar.string
            guard keys.contains(name) else {
                var message = "unknown key '\(name)' in \(what)"
                if let near = Self.closest(to: name, among: keys) { message += "; did you mean '\(near)'?" }
                else { message += "; expected one of \(keys.joined(separator: ", "))" }
                error(at: key, message)
                unknownKeyCount += 1
                continue
            }
            entries[name] = Entry(key: key, value: value, name: name, label: labelPrefix + name)
        }
        return Fields(node: node, entries: entries)
    }

    /// `fields[name]`, or a diagnostic at the mapping when it is missing.
    func required(_ fields: Fields, _ name: String, what: String) -> Entry? {
        if let entry = fields[name] { return entry }
        error(at: fields.node, "missing key '\(name)' in \(what)")
        return nil
    }

    /// The text of a non-empty scalar that is not YAML's null (`~`, `null` unquoted: a value
    /// left out, not the text "~").
    func scalar(_ entry: Entry, _ what: String) -> String? {
        guard case .scalar(let scalar) = entry.value, !scalar.string.isEmpty, !Self.isNull(scalar) else {
            expected(entry, what)
            return nil
        }
        return scalar.string
    }

    func string(_ entry: Entry) -> String? { scalar(entry, "a string") }

    func bool(_ entry: Entry) -> Bool? {
        switch scalarText(entry.value) {
        case "true": return true
        case "false": return false
        default:
            expected(entry, "true or false")
            return nil
        }
    }

    /// A decimal or `0x` hexadecimal integer within `range`.
    func integer(_ entry: Entry, in range: ClosedRange<UInt64>, what: String? = nil) -> UInt64? {
        let describe = what ?? (range.upperBound == .max ? "an integer of at least \(range.lowerBound)" : "an integer in \(range.lowerBound)...\(range.upperBound)")
        guard let text = scalarText(entry.value), let value = Self.parseInteger(text), range.contains(value) else {
            expected(entry, describe)
            return nil
        }
        return value
    }

    /// An `Int` count within `range`.
    func count(_ entry: Entry, in range: ClosedRange<Int>, what: String? = nil) -> Int? {
        let describe = what ?? (range.upperBound == .max ? "an integer of at least \(range.lowerBound)" : "an integer in \(range.lowerBound)...\(range.upperBound)")
        guard let text = scalarText(entry.value), let value = Self.parseInteger(text), value <= UInt64(Int.max),
              range.contains(Int(value))
        else {
            expected(entry, describe)
            return nil
        }
        return Int(value)
    }

    func fraction(_ entry: Entry, what: String, accept: (Double) -> Bool) -> Double? {
        guard let text = scalarText(entry.value), let value = Double(text), value.isFinite, accept(value) else {
            expected(entry, what)
            return nil
        }
        return value
    }

    /// A size with a unit, at least `minimum`.
    func size(_ entry: Entry, minimum: UInt64 = 0) -> UInt64? {
        guard let text = scalarText(entry.value) else {
            expected(entry, Units.sizeExpectation)
            return nil
        }
        switch Units.parseSize(text) {
        case .failure(let failure):
            expected(entry, failure.expected)
            return nil
        case .success(let value):
            if value < minimum {
                expected(entry, minimum == 1 ? "a size above 0" : "at least \(Units.formatSize(minimum))")
                return nil
            }
            return value
        }
    }

    func rate(_ entry: Entry, minimum: UInt64 = 0) -> UInt64? {
        guard let text = scalarText(entry.value) else {
            expected(entry, Units.rateExpectation)
            return nil
        }
        switch Units.parseRate(text) {
        case .failure(let failure):
            expected(entry, failure.expected)
            return nil
        case .success(let value):
            if value < minimum {
                expected(entry, "a rate above 0")
                return nil
            }
            return value
        }
    }

    func duration(_ entry: Entry, in range: ClosedRange<UInt64>) -> UInt64? {
        guard let text = scalarText(entry.value) else {
            expected(entry, Units.durationExpectation)
            return nil
        }
        switch Units.parseDuration(text) {
        case .failure(let failure):
            expected(entry, failure.expected)
            return nil
        case .success(let value):
            guard range.contains(value) else {
                expected(entry, "a duration from \(Units.formatDuration(range.lowerBound)) to \(Units.formatDuration(range.upperBound))")
                return nil
            }
            return value
        }
    }

    /// One of `choices`, by name.
    func choice<T>(_ entry: Entry, _ choices: [(String, T)]) -> T? {
        if let text = scalarText(entry.value), let found = choices.first(where: { $0.0 == text }) { return found.1 }
        expected(entry, "one of " + choices.map(\.0).joined(separator: ", "))
        return nil
    }

    func scalarText(_ node: Node) -> String? {
        guard case .scalar(let scalar) = node, !scalar.string.isEmpty else { return nil }
        return scalar.string
    }

    static func parseInteger(_ text: String) -> UInt64? {
        if text.hasPrefix("0x") || text.hasPrefix("0X") { return UInt64(text.dropFirst(2), radix: 16) }
        return UInt64(text)
    }

    /// The known key nearest to `word` by edit distance, if it is near enough to be a typo.
    static func closest(to word: String, among candidates: [String]) -> String? {
        let scored = candidates.map { ($0, editDistance(word.lowercased(), $0)) }
        guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
        return best.1 <= max(2, best.0.count / 3) ? best.0 : nil
    }

    /// Levenshtein distance over characters.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}

import DeviceSimulator
import MigrationProtocol
import SystemPackage
import Yams

/// Reads scenario files: YAML text -> a validated `Scenario`, or every problem found, each with
/// file, line and column. Never traps on any input, text or binary.
public enum ScenarioLoader {
    /// Files larger than this are refused before parsing (scenarios are a few KiB).
    public static let maximumFileSize = 1 << 20

    /// Reads and validates the file at `path`. Diagnostics name the file as `path` is spelled.
    public static func load(contentsOf path: FilePath) throws(ScenarioError) -> Scenario {
        let bytes: [UInt8]
        do {
            bytes = try readFile(path)
        } catch {
            throw ScenarioError(diagnostics: [Diagnostic(file: path.string, line: 1, column: 1, message: error.message)])
        }
        return try parse(bytes: bytes, file: path.string)
    }

    /// Validates raw bytes (what a file holds). Bytes that are not UTF-8 text are diagnosed at
    /// the first bad byte.
    public static func parse(bytes: [UInt8], file: String = "<string>") throws(ScenarioError) -> Scenario {
        if bytes.count > maximumFileSize {
            throw ScenarioError(diagnostics: [Diagnostic(file: file, line: 1, column: 1, message: "file too large: expected at most \(Units.formatSize(UInt64(maximumFileSize))), got \(bytes.count) bytes")])
        }
        switch TextPosition.decodeUTF8(bytes) {
        case .success(let text): return try parse(text, file: file)
        case .failure(let position):
            throw ScenarioError(diagnostics: [Diagnostic(file: file, line: position.line, column: position.column, message: "not UTF-8 text: expected a YAML scenario, found an invalid byte")])
        }
    }

    /// Validates scenario text. `file` is used in diagnostics only.
    public static func parse(_ text: String, file: String = "<string>") throws(ScenarioError) -> Scenario {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw ScenarioError(diagnostics: [Diagnostic(file: file, line: 1, column: 1, message: "empty file: expected a scenario (a mapping with name, types, ...)")])
            }
            root = node
        } catch let error as ScenarioError {
            throw error
        } catch {
            throw ScenarioError(diagnostics: [yamlDiagnostic(error, text: text, file: file)])
        }
        let reader = NodeReader(file: file)
        let scenario = ScenarioBuilder(reader: reader).scenario(root)
        if let scenario, !reader.hasErrors { return scenario }
        // All of them in one pass, by position, each once (two checks can reach the same finding).
        var seen: Set<Diagnostic> = []
        let sorted = reader.diagnostics.enumerated().sorted {
            ($0.element.line, $0.element.column, $0.offset) < ($1.element.line, $1.element.column, $1.offset)
        }.map(\.element).filter { seen.insert($0).inserted }
        throw ScenarioError(diagnostics: sorted.isEmpty ? [Diagnostic(file: file, line: 1, column: 1, message: "invalid scenario")] : sorted)
    }

    /// Diagnostics for a file, empty when it is valid: the form `mdevsim check` prints.
    public static func check(contentsOf path: FilePath) -> [Diagnostic] {
        check(contentsOf: path, memoryBudget: nil)
    }

    /// `check`, and with a budget (bytes, and the words naming it) the memory model: a scenario
    /// whose migration needs more memory than the budget is refused (`MemoryModel`).
    public static func check(contentsOf path: FilePath, memoryBudget: (bytes: UInt64, what: String)?) -> [Diagnostic] {
        do {
            let scenario = try load(contentsOf: path)
            guard let budget = memoryBudget, let bytes = try? readFile(path) else { return [] }
            let text = String(decoding: bytes, as: UTF8.self)
            return MemoryModel.check(scenario, text: text, file: path.string, budget: budget.bytes, what: budget.what).map { [$0] } ?? []
        } catch {
            return error.diagnostics
        }
    }

    struct ReadError: Error {
        var message: String
    }

    static func readFile(_ path: FilePath) throws(ReadError) -> [UInt8] {
        do {
            let fd = try FileDescriptor.open(path, .readOnly)
            return try fd.closeAfter {
                var bytes: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 64 << 10)
                while true {
                    let n = try buffer.withUnsafeMutableBytes { try fd.read(into: $0) }
                    if n == 0 { return bytes }
                    bytes.append(contentsOf: buffer[..<n])
                    // Read one byte past the limit so the size check can report it.
                    if bytes.count > maximumFileSize { return bytes }
                }
            }
        } catch let errno as Errno {
            throw ReadError(message: "cannot read the file: \(errno)")
        } catch {
            throw ReadError(message: "cannot read the file: \(error)")
        }
    }

    /// A parse error from Yams/libyaml as a diagnostic at its position.
    static func yamlDiagnostic(_ error: any Error, text: String, file: String) -> Diagnostic {
        func at(_ mark: Mark?, _ message: String) -> Diagnostic {
            Diagnostic(file: file, line: max(1, mark?.line ?? 1), column: max(1, mark?.column ?? 1), message: message)
        }
        guard let yaml = error as? YamlError else { return at(nil, "malformed YAML: \(error)") }
        switch yaml {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            let where_ = context.map { " (\($0.text) at line \($0.mark.line), column \($0.mark.column))" } ?? ""
            return at(mark, "malformed YAML: \(problem)\(where_)")
        case .reader(let problem, let offset, _, let yaml):
            let position = TextPosition.of(characterOffset: offset ?? 0, in: yaml)
            return Diagnostic(file: file, line: position.line, column: position.column, message: "not valid YAML text: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return at(context.mark, "duplicate key '\(duplicates.joined(separator: "', '"))' in a mapping")
        default:
            return at(nil, "malformed YAML: \(yaml)")
        }
    }
}

/// Line and column (from 1, in Unicode scalars, as libyaml counts) of a place in text.
struct TextPosition: Error, Hashable {
    var line = 1
    var column = 1

    mutating func advance(over scalar: Unicode.Scalar) {
        if scalar == "\n" {
            line += 1
            column = 1
        } else {
            column += 1
        }
    }

    static func of(characterOffset offset: Int, in text: String) -> TextPosition {
        var position = TextPosition()
        for character in text.prefix(max(0, offset)) {
            for scalar in character.unicodeScalars { position.advance(over: scalar) }
        }
        return position
    }

    /// The text, or the position of the first byte that is not UTF-8.
    static func decodeUTF8(_ bytes: [UInt8]) -> Result<String, TextPosition> {
        var position = TextPosition()
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var scalars = String.UnicodeScalarView()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar):
                scalars.append(scalar)
                position.advance(over: scalar)
            case .emptyInput:
                return .success(String(scalars))
            case .error:
                return .failure(position)
            }
        }
    }
}

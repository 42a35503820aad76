/// One problem in a scenario file, with the position of the offending key or value.
public struct Diagnostic: Sendable, Hashable, CustomStringConvertible {
    /// The file as the caller named it (`<string>` for text given in memory).
    public var file: String
    /// Line, from 1.
    public var line: Int
    /// Column, from 1, counted in Unicode scalars (as libyaml counts).
    public var column: Int
    /// What is wrong and what is expected, without the position.
    public var message: String

    public init(file: String, line: Int, column: Int, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    /// `file:line:column: error: message`, the form compilers and editors understand.
    public var description: String { "\(file):\(line):\(column): error: \(message)" }
}

/// The diagnostics of a file that does not validate. Never empty.
public struct ScenarioError: Error, Sendable, Hashable, CustomStringConvertible {
    /// In file order.
    public var diagnostics: [Diagnostic]

    public init(diagnostics: [Diagnostic]) { self.diagnostics = diagnostics }

    /// One diagnostic per line.
    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}

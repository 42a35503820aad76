import ArgumentParser
import Foundation
import Scenarios

/// How `check` and `run` print a scenario diagnostic: for people and editors, or as a GitHub
/// Actions workflow command, which GitHub shows as an annotation on the file's line.
enum DiagnosticFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case text, github

    /// `github` inside GitHub Actions (it sets GITHUB_ACTIONS=true), else `text`.
    static var automatic: DiagnosticFormat {
        ProcessInfo.processInfo.environment["GITHUB_ACTIONS"] == "true" ? .github : .text
    }

    func render(_ d: Diagnostic) -> String {
        switch self {
        case .text: return d.description
        case .github: return Self.annotation(file: d.file, line: d.line, column: d.column, message: d.message)
        }
    }

    /// `::error file=F,line=L,col=C::message`, with the escapes GitHub's workflow commands
    /// define (% CR LF in the message; also : and , in properties).
    static func annotation(file: String, line: Int? = nil, column: Int? = nil, title: String? = nil, message: String) -> String {
        func escapeData(_ s: String) -> String {
            s.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(of: "\r", with: "%0D").replacingOccurrences(of: "\n", with: "%0A")
        }
        func escapeProperty(_ s: String) -> String {
            escapeData(s).replacingOccurrences(of: ":", with: "%3A").replacingOccurrences(of: ",", with: "%2C")
        }
        var properties = ["file=\(escapeProperty(file))"]
        if let line { properties.append("line=\(line)") }
        if let column { properties.append("col=\(column)") }
        if let title { properties.append("title=\(escapeProperty(title))") }
        return "::error \(properties.joined(separator: ","))::\(escapeData(message))"
    }
}

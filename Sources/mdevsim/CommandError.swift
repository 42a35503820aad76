import ArgumentParser
import Foundation

/// The one error every command reports: printed as
/// `mdevsim <command>: error: <what>: <cause>`, and `; fix: <fix>` when there is one, then the
/// command exits with `status`. Thrown by the commands' `run()`; `Mdevsim.main` prints it.
struct CommandError: Error, Sendable {
    var what: String
    var cause: String?
    var fix: String?
    var status: ExitStatus

    init(_ what: String, cause: String? = nil, fix: String? = nil, status: ExitStatus) {
        self.what = what
        self.cause = cause
        self.fix = fix
        self.status = status
    }

    /// The line, for `command` (`run`, `migrate`, ...; empty for the root command).
    func line(command: String) -> String {
        var text = command.isEmpty ? "mdevsim: error: \(what)" : "mdevsim \(command): error: \(what)"
        if let cause, !cause.isEmpty { text += ": \(cause)" }
        if let fix { text += "; fix: \(fix)" }
        return text
    }

    /// Prints one diagnostic line on stderr in the same format (for errors that do not end the
    /// command, e.g. each invalid file of `check`).
    static func printLine(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}

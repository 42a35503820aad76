import ArgumentParser

/// The one exit-status table of every `mdevsim` command (README, "Exit status"; each command's
/// --help lists the rows it uses).
enum ExitStatus: Int32, CaseIterable, Sendable {
    /// Everything asked for was done and met its expectation.
    case success = 0
    /// What was tested failed: a scenario failed or could not run, a migration failed, a scenario
    /// file is invalid (`check`), a replay diverged.
    case failed = 1
    /// An input cannot be used: a file or directory that is missing or unreadable, a malformed
    /// trace, a report path that cannot be written, duplicate scenario names.
    case badInput = 2
    /// The environment failed: no /dev/fuse, a mount or unmount that failed, a write that failed
    /// after the work was done.
    case environment = 3
    /// The selection is empty: no scenario to run (an empty directory, an empty `--shard`). As
    /// pytest's 5 ("no tests collected"): a CI job that ran nothing must not pass.
    case emptySelection = 5
    /// The command line is wrong: an unknown option, a bad option value (sysexits' EX_USAGE).
    case usage = 64
    /// A scenario ran longer than `--timeout` (as `timeout(1)`).
    case timeout = 124
    /// Interrupted by SIGINT (128 + 2).
    case interrupted = 130
    /// Terminated by SIGTERM (128 + 15).
    case terminated = 143

    var meaning: String {
        switch self {
        case .success: "success"
        case .failed: "what was tested failed (a scenario, the migration, a file's validation, a replay)"
        case .badInput: "an input cannot be used (missing or unreadable file, malformed trace, unwritable report path, duplicate scenario names)"
        case .environment: "the environment failed (no /dev/fuse, mounting or unmounting failed, a write failed)"
        case .emptySelection: "no scenario selected (empty directory or --shard slice)"
        case .usage: "usage error (unknown option, bad option value)"
        case .timeout: "a scenario exceeded --timeout"
        case .interrupted: "interrupted (SIGINT)"
        case .terminated: "terminated (SIGTERM)"
        }
    }

    /// The `EXIT STATUS` block of a command's --help: the rows it can end with.
    static func help(_ rows: [ExitStatus]) -> String {
        "Exit status:\n" + rows.map { "  \(String($0.rawValue).padding(toLength: 4, withPad: " ", startingAt: 0))\($0.meaning)" }.joined(separator: "\n")
    }

    var code: ExitCode { ExitCode(rawValue) }
}

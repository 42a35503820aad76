import ArgumentParser
import Foundation
import Glibc

/// The root command: configuration only; each subcommand is its own type in its own file.
@main
struct Mdevsim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mdevsim",
        abstract: "A simulated vendor driver for VFIO migration v1: migratable mdev devices over FUSE.",
        discussion: """
            mdevsim plays the vendor driver of a migratable mdev device so that VMM migration code \
            can be exercised without hardware. Devices are described by scenario files (see \
            scenarios/README.md); with none, a built-in default scenario is used.

            Every command reports an error as 'mdevsim <command>: error: <what>: <cause>' \
            (and '; fix: <fix>' when there is one) and ends with a status of one table:

            \(ExitStatus.help(ExitStatus.allCases))
            """,
        version: "0.1.0",
        subcommands: [Mount.self, Unmount.self, Migrate.self, Check.self, Run.self, ScenariosCommand.self, Replay.self,
                      ReportCommand.self, QemuArgs.self]
    )

    /// Parses (also mount.fuse3's calling form, `MountHelperForm`), runs, and turns every way a
    /// command can end into one line and one status of the table (ArgumentParser's own
    /// "Error: ..." and its status for usage errors are replaced).
    ///
    /// On the main actor, so synchronous commands run on the main thread while the process has
    /// no other: `mount` detaches with fork (fuse_daemonize), which keeps only the calling
    /// thread, and names the daemon after that thread (`comm`, which `unmount` checks).
    @MainActor static func main() async {
        let given = Array(CommandLine.arguments.dropFirst())
        let names = configuration.subcommands.map { $0._commandName } + ["help"]
        let arguments = MountHelperForm.mountArguments(given, subcommands: names) ?? given
        let command = subcommandName(arguments)
        do {
            var parsed = try parseAsRoot(arguments)
            if var asyncCommand = parsed as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try parsed.run()
            }
        } catch let error as CommandError {
            CommandError.printLine(error.line(command: command))
            Glibc.exit(error.status.rawValue)
        } catch let code as ExitCode {
            Glibc.exit(code.rawValue)
        } catch {
            let status = exitCode(for: error)
            if status == .success {
                // --help, --version: ArgumentParser's text on stdout, as before.
                print(fullMessage(for: error))
                Glibc.exit(0)
            }
            if status != .validationFailure {
                // Not the command line's fault, and not a CommandError: a bug of ours, reported all the same.
                CommandError.printLine(CommandError("\(error)", status: .environment).line(command: command))
                Glibc.exit(ExitStatus.environment.rawValue)
            }
            // A usage error: our line, then ArgumentParser's help of the option and usage of the right subcommand.
            let full = fullMessage(for: error)
            let text = message(for: error)
            var rest = Substring(full)
            if rest.hasPrefix("Error: ") { rest = rest.dropFirst(7) }
            if rest.hasPrefix(text) { rest = rest.dropFirst(text.count) }
            let what = text.hasPrefix("Error: ") ? String(text.dropFirst(7)) : text
            CommandError.printLine(CommandError(what, status: .usage).line(command: command))
            let usage = rest.trimmingCharacters(in: .whitespacesAndNewlines)
            if !usage.isEmpty { CommandError.printLine(usage) }
            Glibc.exit(ExitStatus.usage.rawValue)
        }
    }

    /// The subcommand the arguments name (`run`, ...), or "" for none.
    static func subcommandName(_ arguments: [String]) -> String {
        let names = configuration.subcommands.map { $0._commandName }
        return arguments.first { names.contains($0) } ?? ""
    }
}

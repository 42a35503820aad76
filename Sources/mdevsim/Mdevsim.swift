import ArgumentParser

/// The root command: configuration only; each subcommand is its own type in its own file.
@main
struct Mdevsim: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mdevsim",
        abstract: "A simulated vendor driver for VFIO migration v1: migratable mdev devices over FUSE.",
        discussion: """
            mdevsim plays the vendor driver of a migratable mdev device so that VMM migration code \
            can be exercised without hardware. Devices are described by scenario files (see \
            scenarios/README.md); with none, a built-in default scenario is used.
            """,
        version: "0.1.0",
        subcommands: [Mount.self, Unmount.self, Migrate.self, Check.self, Run.self, Replay.self, ReportCommand.self, QemuArgs.self]
    )

    /// Also accepts mount.fuse3's calling form (`MountHelperForm`) before the usual parsing.
    /// On the main actor, so synchronous commands run on the main thread while the process has
    /// no other: `mount` detaches with fork (fuse_daemonize), which keeps only the calling
    /// thread, and names the daemon after that thread (`comm`, which `unmount` checks).
    @MainActor static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        let names = configuration.subcommands.map { $0._commandName } + ["help"]
        do {
            var command = try parseAsRoot(MountHelperForm.mountArguments(arguments, subcommands: names) ?? arguments)
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

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
}

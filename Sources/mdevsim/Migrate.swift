import ArgumentParser
import Conformance
import DeviceSimulator
import Foundation
import Scenarios
import SystemPackage

/// `mdevsim migrate`: one migration between two simulated devices, with its report.
struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one migration between two simulated devices and print its report.",
        discussion: """
            Creates a source and a destination device from the scenario's migration section \
            (the built-in default scenario when --scenario is not given), drives a full live \
            migration with the reference VMM client (pre-copy, stop-and-copy, resume) and \
            compares the devices' digests. By default the devices live in a private FUSE mount \
            (mounted in a temporary directory and always unmounted) and are reached through their \
            region files, as a VMM reaches them; --in-process skips the mount. Exits 0 when the \
            migration completed with equal digests, 1 otherwise.

            Examples:
              mdevsim migrate
              mdevsim migrate --in-process --scenario scenarios/hot-set.yaml --json
            """
    )

    @Flag(name: .customLong("in-process"), help: "Call the devices directly instead of through a private FUSE mount.")
    var inProcess = false

    @Option(name: .long, help: ArgumentHelp("Scenario file to run (default: the built-in default scenario).", valueName: "file"))
    var scenario: String?

    @Option(name: .long, help: ArgumentHelp("Data access: mmap, pread or pread8 (overrides the scenario).", valueName: "mode"))
    var access: String?

    @Flag(name: .long, help: "Print the report as one JSON object.")
    var json = false

    @Option(name: .long, help: ArgumentHelp("UUID of the source, given a second time: of the destination (default: derived from the scenario's seed and name, so runs repeat).", valueName: "uuid"))
    var uuid: [String] = []

    func validate() throws {
        if let access, DataAccessMode(rawValue: access) == nil {
            throw ValidationError("--access must be mmap, pread or pread8, got '\(access)'")
        }
        do { _ = try DeviceIdentities.parse(uuid) } catch { throw ValidationError("--uuid: \(error)") }
    }

    func run() throws {
        var loaded: Scenario
        if let scenario {
            do {
                loaded = try ScenarioLoader.load(contentsOf: FilePath(scenario))
            } catch {
                FileHandle.standardError.write(Data("\(error)\n".utf8))
                throw ExitCode(2)
            }
        } else {
            loaded = Scenario.builtInDefault
        }
        if let access, let mode = DataAccessMode(rawValue: access) {
            loaded.migration.client.access = mode
        }
        var migration = InProcessMigration(scenario: loaded)
        if let given = (try? DeviceIdentities.parse(uuid)) ?? nil {
            migration.identities = DeviceIdentities(source: given[0], destination: given[1])
        }
        var progress: (@Sendable (String) -> Void)?
        if isatty(STDERR_FILENO) == 1, !json {
            progress = { line in FileHandle.standardError.write(Data("\r\u{1B}[K\(line)".utf8)) }
        }
        let report: MigrationReport
        if inProcess {
            report = try migration.run(progress: progress).0
        } else {
            let scenario = loaded
            let mountpoint: RunMountpoint
            do {
                mountpoint = try RunMountpoint(prefix: "/tmp/mdevsim-migrate.")
            } catch {
                FileHandle.standardError.write(Data("mdevsim migrate: \(error)\n".utf8))
                throw ExitCode(2)
            }
            let interrupts = Run.handleInterrupts(mountpoint: mountpoint)
            defer {
                interrupts.forEach { $0.cancel() }
                mountpoint.remove()
            }
            do {
                report = try FUSEMigration(scenario: scenario, mountpoint: mountpoint.path, identities: migration.identities).run(progress: progress)
            } catch {
                FileHandle.standardError.write(Data("mdevsim migrate: \(error)\n".utf8))
                throw ExitCode(2)
            }
        }
        if progress != nil { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        if json {
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(ReportText.render(report, scenario: loaded.name))
        }
        if !report.succeeded { throw ExitCode(1) }
    }
}

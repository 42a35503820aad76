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
            compares the devices' digests. Exits 0 when the migration completed with equal \
            digests, 1 otherwise.

            Examples:
              mdevsim migrate --in-process
              mdevsim migrate --in-process --scenario scenarios/hot-set.yaml --json
            """
    )

    @Flag(name: .customLong("in-process"), help: "Run both devices inside this process (no FUSE mount).")
    var inProcess = false

    @Option(name: .long, help: ArgumentHelp("Scenario file to run (default: the built-in default scenario).", valueName: "file"))
    var scenario: String?

    @Option(name: .long, help: ArgumentHelp("Data access: mmap, pread or pread8 (overrides the scenario).", valueName: "mode"))
    var access: String?

    @Flag(name: .long, help: "Print the report as one JSON object.")
    var json = false

    func validate() throws {
        guard inProcess else {
            throw ValidationError("migrating through a FUSE mount is not available in this command yet: pass --in-process")
        }
        if let access, DataAccessMode(rawValue: access) == nil {
            throw ValidationError("--access must be mmap, pread or pread8, got '\(access)'")
        }
    }

    func run() throws {
        let loaded: Scenario
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
        var migration = InProcessMigration(scenario: loaded)
        if let access, let mode = DataAccessMode(rawValue: access) {
            var plan = loaded.migration.client
            plan.access = mode
            migration.options = ClientOptions(plan: plan)
        }
        var progress: (@Sendable (String) -> Void)?
        if isatty(STDERR_FILENO) == 1, !json {
            progress = { line in FileHandle.standardError.write(Data("\r\u{1B}[K\(line)".utf8)) }
        }
        let (report, _, _) = try migration.run(progress: progress)
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

import ArgumentParser
import Conformance
import DeviceSimulator
import Foundation
import Glibc
import Report
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
            region files, as a VMM reaches them; --in-process skips the mount. The devices' UUIDs \
            derive from the scenario's seed and name (--uuid twice gives them), so the same \
            scenario gives the same report every time. The report is judged against the \
            scenario's `expect:` exactly as `mdevsim run` judges it.

            \(ExitStatus.help([.success, .failed, .badInput, .environment, .usage, .interrupted, .terminated]))

            Examples:
              mdevsim migrate
              mdevsim migrate --in-process --scenario scenarios/hot-set.yaml --json
              mdevsim migrate --scenario scenarios/never-converges.yaml --html migration.html
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

    @Option(name: .long, help: ArgumentHelp("Also write one self-contained HTML page of the migration (charts) to this file and print its path (to stderr with --json).", valueName: "file"))
    var html: String?

    @Option(name: .customLong("protocol"), help: ArgumentHelp("The migration protocol: v1 (the region, QEMU 5.2-7.2's) or v2 (the device's v2 files, QEMU 8+'s; the scenario's types must speak it).", valueName: "v1|v2"))
    var migrationProtocol: MigrationProtocolVersion = .v1

    @Flag(name: .shortAndLong, help: "No progress on stderr.")
    var quiet = false

    @Option(name: .long, help: ArgumentHelp("UUID of the source, given a second time: of the destination (default: derived from the scenario's seed and name, so runs repeat).", valueName: "uuid"))
    var uuid: [String] = []

    func validate() throws {
        if let access, DataAccessMode(rawValue: access) == nil {
            throw ValidationError("--access must be mmap, pread or pread8, got '\(access)'")
        }
        do { _ = try DeviceIdentities.parse(uuid) } catch { throw ValidationError("--uuid: \(error)") }
    }

    @OptionGroup var logging: LoggingOptions

    func run() throws {
        logging.bootstrap()
        var loaded: Scenario
        if let scenario {
            do {
                loaded = try ScenarioLoader.load(contentsOf: FilePath(scenario))
            } catch {
                throw Self.loadError(scenario, error)
            }
        } else {
            loaded = Scenario.builtInDefault
        }
        if let access, let mode = DataAccessMode(rawValue: access) {
            loaded.migration.client.access = mode
        }
        if migrationProtocol == .v2 {
            for name in [loaded.migration.source, loaded.migration.destination] {
                if let t = loaded.types.first(where: { $0.name == name }), !t.configuration.protocols.contains(.v2) {
                    throw CommandError("cannot migrate with v2", cause: "the type \(name) does not speak migration v2",
                                       fix: "add protocols: [v1, v2] to it in the scenario", status: .badInput)
                }
            }
        }
        let started = ContinuousClock.now
        let log = html.map { _ in AccessLogRecorder(stopThreshold: loaded.migration.client.stopThreshold) }
        var migration = InProcessMigration(scenario: loaded)
        migration.observer = log
        if let given = (try? DeviceIdentities.parse(uuid)) ?? nil {
            migration.identities = DeviceIdentities(source: given[0], destination: given[1])
        }
        let statusLine = StatusLine(command: "migrate", quiet: quiet)
        let name = loaded.name
        let progress: @Sendable (String) -> Void = { line in statusLine.update(name, line) }
        let report: MigrationReport
        if inProcess {
            do {
                report = migrationProtocol == .v2 ? try V2Migration.inProcess(migration, progress: progress) : try migration.run(progress: progress).0
            } catch {
                throw CommandError("cannot migrate", cause: "\(error)", status: .badInput)
            }
        } else {
            let scenario = loaded
            let mountpoint: RunMountpoint
            do {
                mountpoint = try RunMountpoint(prefix: "/tmp/mdevsim-migrate.")
            } catch {
                throw CommandError("cannot mount", cause: "\(error)", fix: "run where /dev/fuse exists (modprobe fuse), or use --in-process", status: .environment)
            }
            let signals = SignalStop.install { sig in
                CommandError.printLine(CommandError("interrupted (\(SignalStop.name(sig)))", cause: "unmounting", status: SignalStop.status(for: sig)).line(command: "migrate"))
                ActiveMounts.shared.unmountAll()
                TraceWriter.flushAll()
                mountpoint.remove()
                Glibc.exit(SignalStop.status(for: sig).rawValue)
            }
            defer {
                signals.forEach { $0.cancel() }
                mountpoint.remove()
            }
            do {
                var fuse = FUSEMigration(scenario: scenario, mountpoint: mountpoint.path, observer: log, identities: migration.identities)
                fuse.logLevel = logging.level(default: .warning)
                fuse.migrationProtocol = migrationProtocol
                report = try fuse.run(progress: progress)
            } catch {
                throw CommandError("the migration through the mount could not run", cause: "\(error)", status: .environment)
            }
        }
        statusLine.clear()
        // Judged as `run` judges it: against the scenario's `expect:` (one Judge for both).
        let verdict = Judge.judge(report, against: loaded.expectation)
        if json {
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(ReportText.render(report, scenario: loaded.name))
            print(verdict.passed ? "PASS: meets the scenario's expectation" : "FAIL: does not meet the scenario's expectation")
            for m in verdict.mismatches { print("    - \(m)") }
        }
        if let html, let log {
            let elapsed = ContinuousClock.now - started
            let page = ReportPage(migration: report, verdict: verdict, log: log.log, scenario: loaded, scenarioFile: scenario,
                                  mode: inProcess ? "in process" : "through a FUSE mount",
                                  durationSeconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18,
                                  generator: HTMLOutput.generator)
            guard HTMLOutput.write(page, to: html, command: "migrate", toStderr: json) else { throw ExitStatus.badInput.code }
        }
        if !verdict.passed { throw ExitStatus.failed.code }
    }

    /// A scenario file that cannot be used: missing or unreadable (2), or invalid (1, as `check`).
    static func loadError(_ path: String, _ error: ScenarioError) -> CommandError {
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            return CommandError("cannot read the scenario \(path)", cause: "no such file", status: .badInput)
        }
        if isDirectory.boolValue {
            return CommandError("cannot read the scenario \(path)", cause: "it is a directory", fix: "give one scenario file", status: .badInput)
        }
        let diagnostics = error.diagnostics.map(\.description)
        return CommandError("invalid scenario \(path)", cause: diagnostics.joined(separator: "\n"), status: .failed)
    }
}

extension MigrationProtocolVersion: ExpressibleByArgument {}

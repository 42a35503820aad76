import ArgumentParser
import Conformance
import Foundation
import Scenarios
import SystemPackage

/// `mdevsim replay`: play a trace's client side against fresh devices and compare.
struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replay a trace against fresh devices and report the first answer that differs.",
        discussion: """
            Reads a trace written by `mdevsim mount --trace` or `mdevsim run --trace`, creates \
            fresh devices of the trace's types and ids from the scenario (same seed: same \
            power-on memory), plays every client access in order inside this process, and \
            compares each answer with the trace: header values and errnos, the length and digest \
            of each data read, the digest of each chunk the device staged; for migration v2 calls \
            (trace format_version 2), the state each SET reached and its errno, each GET, the \
            length and digest of each data_fd read, each write's result, PRECOPY_INFO and \
            MIG_DATA_SIZE. Stops at the first \
            difference and prints its trace line, the access, and expected against got.

            The scenario is --scenario, else the scenario file the trace header names, else the \
            bundled scenario of the trace's name (`mdevsim run --builtin` traces name no file). Scenarios with `clock: wall` cannot \
            be replayed (their dirtying depends on timing).

            Exits 0 when every record matched, 1 at a divergence, 2 on a malformed trace (with \
            FILE:LINE: reason) or a scenario that does not fit the trace.

            \(ExitStatus.help([.success, .failed, .badInput, .usage]))

            Example:
              mdevsim mount /tmp/mdev --trace /tmp/vmm.trace.jsonl --scenario scenarios/mmap-on.yaml
              ... run the VMM, then: mdevsim unmount /tmp/mdev
              mdevsim replay /tmp/vmm.trace.jsonl --scenario scenarios/mmap-on.yaml
            """
    )

    @Argument(help: ArgumentHelp("The trace file (JSON lines).", valueName: "trace"))
    var trace: String

    @Option(name: .long, help: ArgumentHelp("Scenario file whose types the trace's devices have (default: the one the trace header names).", valueName: "file"))
    var scenario: String?

    @OptionGroup var logging: LoggingOptions

    func run() throws {
        logging.bootstrap()
        let file: TraceFile
        do {
            file = try TraceFile.load(path: trace)
        } catch {
            throw CommandError("cannot replay the trace \(trace)", cause: error.line > 0 ? "line \(error.line): \(error.reason)" : error.reason, status: .badInput)
        }
        let loaded = try loadScenario(file.header)
        if loaded.seed != file.header.seed || loaded.name != file.header.scenario {
            CommandError.printLine("mdevsim replay: note: the trace was recorded with scenario '\(file.header.scenario)' seed \(file.header.seed); replaying with '\(loaded.name)' seed \(loaded.seed)")
        }
        let replay: TraceReplay
        do {
            replay = try TraceReplay(trace: file, scenario: loaded)
        } catch {
            throw CommandError("the scenario does not fit the trace", cause: "\(error)", status: .badInput)
        }
        let outcome = replay.run()
        if let divergence = outcome.divergence {
            print("replay: diverged at \(trace):\(divergence.line) after \(outcome.matched) accesses matched")
            for line in divergence.details { print(line) }
            throw ExitStatus.failed.code
        }
        print("replay: \(outcome.matched) accesses matched (\(outcome.recordsMatched) records, \(outcome.devices) device\(outcome.devices == 1 ? "" : "s"))")
    }

    private func loadScenario(_ header: TraceHeader) throws -> Scenario {
        if let path = scenario ?? header.scenarioPath.flatMap({ FileManager.default.fileExists(atPath: $0) ? $0 : nil }) {
            do {
                return try ScenarioLoader.load(contentsOf: FilePath(path))
            } catch {
                throw CommandError("cannot use the scenario \(path)", cause: error.diagnostics.map(\.description).joined(separator: "\n"), status: .badInput)
            }
        }
        if header.scenarioPath == nil {
            if header.scenario == Scenario.builtInDefault.name { return Scenario.builtInDefault }
            if let bundled = ScenarioCatalog.bundledScenario(named: header.scenario) { return bundled }
        }
        throw CommandError("no scenario for the trace", cause: "the trace names scenario '\(header.scenario)'\(header.scenarioPath.map { " at \($0), which does not exist" } ?? "")",
                           fix: "give the scenario the trace was recorded with: --scenario FILE", status: .badInput)
    }
}

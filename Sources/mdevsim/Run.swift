import ArgumentParser
import Conformance
import Dispatch
import Foundation
import Synchronization
import Glibc
import Scenarios

/// `mdevsim run`: the conformance run of scenario files.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run scenarios with the reference client and judge each against its expectations.",
        discussion: """
            For each scenario, creates a fresh source and destination device of the scenario's \
            types, migrates with the reference VMM client (pre-copy, stop-and-copy, resume, \
            digests compared) and judges the report against the scenario's `expect:` section. \
            By default the devices live in a real FUSE mount that this command mounts on a \
            private temporary directory and always unmounts (also on failure, SIGINT or \
            SIGTERM); --in-process runs them inside this process instead.

            With no argument, runs the bundled library (scenarios/ in the current directory, \
            beside the executable, or $MDEVSIM_SCENARIOS). A directory stands for its *.yaml \
            files. Scenarios run in path order.

            Prints one line per scenario (PASS/FAIL/SKIP, key figures, and one line per \
            mismatch), the protocol violations the devices recorded, and the closing line \
            'N passed, N failed'. Exits 1 if any scenario failed, 2 on a usage problem, 130 when \
            interrupted. Scenarios whose device memory is above --max-memory are listed as \
            skipped, never silently.

            Examples:
              mdevsim run
              mdevsim run --in-process scenarios/fault-stall.yaml
              mdevsim run --shard 2/4 --junit junit.xml --json run.json
              mdevsim run --trace traces/ scenarios/mmap-on.yaml   # then: mdevsim replay traces/mmap-on.trace.jsonl --scenario scenarios/mmap-on.yaml
            """
    )

    @Argument(help: ArgumentHelp("Scenario files, or directories of *.yaml files (default: the bundled scenarios/).", valueName: "scenario|dir"))
    var paths: [String] = []

    @Flag(name: .customLong("in-process"), help: "Run the devices inside this process (no FUSE mount).")
    var inProcess = false

    @Option(name: .long, help: ArgumentHelp("Write a JUnit XML report to this file.", valueName: "file"))
    var junit: String?

    @Option(name: .long, help: ArgumentHelp("Write a JSON report (every scenario's report and verdict) to this file.", valueName: "file"))
    var json: String?

    @Option(name: .long, help: ArgumentHelp("Run only slice I of N of the sorted scenario list (1-based I), for CI matrices.", valueName: "I/N"))
    var shard: String?

    @Option(name: .customLong("max-memory"), help: ArgumentHelp("Skip (and list) scenarios whose device memory is above this size, or 'none'.", valueName: "size"))
    var maxMemory: String = "4GiB"

    @Option(name: .long, help: ArgumentHelp("Trace every device access to DIR/<scenario>.trace.jsonl, one file per scenario (replay one with `mdevsim replay`). DIR is created if missing.", valueName: "dir"))
    var trace: String?

    @Flag(help: "Write what wall time decides as 0 (durations in the reports, time_ns in traces), so the same scenarios give byte-identical files run after run.")
    var reproducible = false

    func validate() throws {
        if let shard {
            do { _ = try Shard(parsing: shard) } catch { throw ValidationError("--shard: \(error)") }
        }
        if maxMemory != "none", case .failure(let e) = Units.parseSize(maxMemory) {
            throw ValidationError("--max-memory: expected a size such as 4GiB, or none (\(e.expected)), got '\(maxMemory)'")
        }
    }

    func run() throws {
        let started = ContinuousClock.now
        var sources = paths
        if sources.isEmpty {
            guard let bundled = ScenarioCatalog.bundledDirectory() else {
                Self.printError("mdevsim run: cannot find the bundled scenarios/ directory: run from the repository, or pass scenario files or set MDEVSIM_SCENARIOS")
                throw ExitCode(2)
            }
            sources = [bundled]
        }
        var entries: [ScenarioEntry]
        do {
            entries = try ScenarioCatalog.collect(sources)
        } catch {
            Self.printError("mdevsim run: \(error)")
            throw ExitCode(2)
        }
        let shardValue = try shard.map { text throws in try Shard(parsing: text) }
        if let shardValue { entries = shardValue.slice(entries) }
        let limit: UInt64? = maxMemory == "none" ? nil : (try? Units.parseSize(maxMemory).get())

        var runner = ScenarioRunner(mode: inProcess ? .inProcess : .fuse, maxMemory: limit)
        runner.reproducible = reproducible
        if let trace {
            do {
                try FileManager.default.createDirectory(atPath: trace, withIntermediateDirectories: true)
            } catch {
                Self.printError("mdevsim run: cannot create the trace directory \(trace): \(error.localizedDescription)")
                throw ExitCode(2)
            }
            runner.traceDirectory = trace
            runner.mdevsimVersion = Mdevsim.configuration.version
        }
        var mountpoint: RunMountpoint?
        if !inProcess {
            do {
                mountpoint = try RunMountpoint()
            } catch {
                Self.printError("mdevsim run: \(error)")
                throw ExitCode(2)
            }
            runner.mountpoint = mountpoint?.path
        }
        let interrupts = Self.handleInterrupts(mountpoint: mountpoint)
        defer {
            interrupts.forEach { $0.cancel() }
            mountpoint?.remove()
        }

        let terminal = isatty(STDERR_FILENO) == 1
        let width = entries.map(\.name.count).max() ?? 0
        var results: [ScenarioResult] = []
        for (i, entry) in entries.enumerated() {
            let prefix = "[\(i + 1)/\(entries.count)] \(entry.name)"
            var progress: (@Sendable (String) -> Void)?
            if terminal {
                Self.status("\(prefix): starting")
                progress = { line in Self.status("\(prefix): \(line)") }
            }
            let result = runner.run(entry, progress: progress)
            // An interrupt unmounted under this scenario: its failure is the interrupt's doing,
            // and the handler is about to exit 130 (it must not lose that race to exit 1).
            if Self.interrupted.load(ordering: .acquiring) { Self.waitForTheInterruptHandler() }
            if terminal { Self.status("") }
            print(Self.line(result, width: width))
            fflush(nil)
            results.append(result)
        }

        let elapsed = ContinuousClock.now - started
        let summary = RunSummary(
            mode: runner.mode, shard: shardValue?.description, results: results,
            durationSeconds: reproducible ? 0 : Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        let violations = summary.violations
        if !violations.isEmpty {
            print("protocol violations recorded by the devices (\(violations.count)):")
            for v in violations { print("  \(v)") }
        }
        for r in results where r.skipped != nil {
            print("skipped \(r.name): \(r.skipped ?? "")")
        }
        var reportFailed = false
        if let junit {
            reportFailed = !Self.write(Data(RunReports.junit(summary).utf8), to: junit) || reportFailed
        }
        if let json {
            do {
                reportFailed = !Self.write(try RunReports.json(summary), to: json) || reportFailed
            } catch {
                Self.printError("mdevsim run: cannot encode the JSON report: \(error)")
                reportFailed = true
            }
        }
        print(summary.summaryLine)
        if summary.failed > 0 { throw ExitCode(1) }
        if reportFailed { throw ExitCode(2) }
    }

    /// `PASS name  figures  [1.23 s]`, then one indented line per mismatch (and per diagnostic).
    static func line(_ r: ScenarioResult, width: Int) -> String {
        let name = r.name.padding(toLength: max(width, r.name.count), withPad: " ", startingAt: 0)
        if let reason = r.skipped { return "SKIP \(name)  \(reason)" }
        let figures = r.report.map(RunReports.figures) ?? (r.diagnostics.isEmpty ? "not run" : "not run")
        var lines = ["\(r.passed ? "PASS" : "FAIL") \(name)  \(figures)  [\(String(format: "%.2f", r.durationSeconds)) s]"]
        for m in r.verdict.mismatches { lines.append("    - \(m)") }
        if r.report == nil, r.diagnostics.count > 1 {
            for d in r.diagnostics { lines.append("      \(d)") }
        }
        return lines.joined(separator: "\n")
    }

    /// Set first thing by the interrupt handler.
    static let interrupted = Atomic<Bool>(false)

    /// The handler ends the process with status 130 once it has cleaned up.
    static func waitForTheInterruptHandler() -> Never {
        while true { pause() }
    }

    /// SIGINT/SIGTERM: unmount whatever is mounted, remove the mountpoint, exit 130.
    static func handleInterrupts(mountpoint: RunMountpoint?) -> [DispatchSourceSignal] {
        [SIGINT, SIGTERM].map { sig in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                interrupted.store(true, ordering: .releasing)
                if isatty(STDERR_FILENO) == 1 { status("") }
                printError("mdevsim run: interrupted (\(sig == SIGINT ? "SIGINT" : "SIGTERM")): unmounting")
                ActiveMounts.shared.unmountAll()
                TraceWriter.flushAll()
                mountpoint?.remove()
                Glibc.exit(130)
            }
            source.resume()
            return source
        }
    }

    /// Replaces the progress line on stderr (terminal only).
    static func status(_ text: String) {
        var columns = 120
        var size = winsize()
        if ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { columns = Int(size.ws_col) }
        let shown = text.count >= columns ? String(text.prefix(columns - 1)) : text
        FileHandle.standardError.write(Data("\r\u{1B}[K\(shown)".utf8))
    }

    static func write(_ data: Data, to path: String) -> Bool {
        do {
            try data.write(to: URL(fileURLWithPath: path))
            return true
        } catch {
            printError("mdevsim run: cannot write \(path): \(error.localizedDescription)")
            return false
        }
    }

    static func printError(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}

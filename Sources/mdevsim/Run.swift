import ArgumentParser
import Conformance
import DeviceSimulator
import Dispatch
import Foundation
import Glibc
import Report
import Scenarios
import Synchronization

/// `mdevsim run`: the conformance run of scenario files.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run scenarios with the reference client and judge each against its expectations.",
        discussion: """
            For each scenario, creates a fresh source and destination device of the scenario's \
            types, migrates with the reference VMM client (pre-copy, stop-and-copy, resume, \
            digests compared) and judges the report against the scenario's `expect:` section. \
            By default the devices live in a real FUSE mount that this command mounts on a \
            private temporary directory and always unmounts (also on failure, SIGINT, SIGTERM \
            or --timeout); --in-process runs them inside this process instead. The devices' \
            UUIDs derive from each scenario's seed and name, so a run repeats byte for byte.

            With no argument (or --builtin), runs the bundled library, which is built into the \
            executable and works from any directory (`mdevsim scenarios` lists it; \
            $MDEVSIM_SCENARIOS, when set, names a directory to run instead). A directory stands \
            for its *.yaml and *.yml files. Scenarios run in path order; two with the same name are refused.

            A scenario whose source and destination types both speak v1 and v2 (`protocols: \
            [v1, v2]`) is played twice, v1 then v2, and is two entries: `NAME` and `NAME [v2]` in \
            the result lines, JUnit testcases and the HTML page, `protocol` in the JSON report, \
            `NAME.trace.jsonl` and `NAME.v2.trace.jsonl` with --trace; --protocol restricts the \
            run to one protocol (a scenario that does not speak it is left out). Expectations \
            apply to both; a `step:` naming the v1 region cannot apply to v2, and the v2 entry's \
            result says so ('not checked under v2'). --shard slices the scenarios, not the \
            entries: both protocols of a scenario run in the same shard.

            Prints one line per entry (PASS, FAIL, ERROR when it could not be judged, SKIP), \
            the protocol violations the devices recorded, and the closing line \
            'N passed, N failed' (errors count as failed; with --html, the page's path just before \
            it). The report paths are checked before the first scenario starts. On SIGINT, SIGTERM \
            or --timeout the reports are still written: what ran, the running scenario as an error \
            with its last step, the rest skipped ('interrupted'). Scenarios whose device memory is \
            above --max-memory are listed as skipped, never silently.

            \(ExitStatus.help([.success, .failed, .badInput, .environment, .emptySelection, .usage, .timeout, .interrupted, .terminated]))

            Examples:
              mdevsim run
              mdevsim run --in-process scenarios/fault-stall.yaml
              mdevsim run --shard 2/4 --junit junit.xml --json run.json --timeout 120
              mdevsim run --html run.html scenarios/small-converges.yaml scenarios/never-converges.yaml
              mdevsim run --trace traces/ scenarios/mmap-on.yaml   # then: mdevsim replay traces/mmap-on.trace.jsonl --scenario scenarios/mmap-on.yaml
              mdevsim run --protocol v2 --junit junit.xml scenarios/qemu10.yaml
            """
    )

    @Argument(help: ArgumentHelp("Scenario files, or directories of *.yaml/*.yml files (default: the bundled scenarios/).", valueName: "scenario|dir"))
    var paths: [String] = []

    @Flag(help: "Run the bundled library built into the executable (also the default with no scenario argument).")
    var builtin = false

    @Flag(name: .customLong("in-process"), help: "Run the devices inside this process (no FUSE mount).")
    var inProcess = false

    @Option(name: .long, help: ArgumentHelp("Write a JUnit XML report to this file.", valueName: "file"))
    var junit: String?

    @Option(name: .long, help: ArgumentHelp("Write a JSON report (docs/run-report.schema.json) to this file.", valueName: "file"))
    var json: String?

    @Option(name: .long, help: ArgumentHelp("Run only slice I of N of the sorted scenario list (1-based I), for CI matrices; a scenario's v1 and v2 entries stay in one shard.", valueName: "I/N"))
    var shard: String?

    @Option(name: .customLong("protocol"), help: ArgumentHelp("Play each scenario under v1, v2, or all the protocols its types offer.", valueName: "v1|v2|all"))
    var migrationProtocol: ProtocolSelection = .all

    @Option(name: .customLong("max-memory"), help: ArgumentHelp("Skip (and list) scenarios whose device memory is above this size, or 'none'.", valueName: "size"))
    var maxMemory: String = "4GiB"

    @Option(name: .long, help: ArgumentHelp("Write one self-contained HTML page of the run (summary, scenarios, charts) to this file.", valueName: "file"))
    var html: String?

    @Option(name: .long, help: ArgumentHelp("Trace every device access to DIR/<scenario>.trace.jsonl (v2 entries: DIR/<scenario>.v2.trace.jsonl), one file per entry (replay one with `mdevsim replay`). DIR is created if missing.", valueName: "dir"))
    var trace: String?

    @Flag(help: "Write what wall time decides as 0 (durations in the reports, time_ns in traces) and the JUnit timestamp as 1970-01-01T00:00:00Z, so the same scenarios give byte-identical files run after run.")
    var reproducible = false

    @Option(name: .long, help: ArgumentHelp("Also print each failure and error as 'text' (nothing more) or 'github' (an '::error file=,line=,col=::' workflow command per problem). Default: github when GITHUB_ACTIONS=true, else text.", valueName: "format"))
    var format: DiagnosticFormat?

    @Flag(name: .shortAndLong, help: "No progress on stderr (the result lines and reports are unchanged).")
    var quiet = false

    @Option(name: .long, help: ArgumentHelp("Stop the run when one scenario has run this many seconds: it is an error, the rest are skipped, the reports are written, the status is 124.", valueName: "seconds"))
    var timeout: Double?

    func validate() throws {
        if let shard {
            do { _ = try Shard(parsing: shard) } catch { throw ValidationError("--shard: \(error)") }
        }
        if maxMemory != "none", case .failure(let e) = Units.parseSize(maxMemory) {
            throw ValidationError("--max-memory: expected a size such as 4GiB, or none (\(e.expected)), got '\(maxMemory)'")
        }
        if let timeout, !(timeout > 0) || !timeout.isFinite {
            throw ValidationError("--timeout: expected a number of seconds above 0, got \(timeout)")
        }
    }

    @OptionGroup var logging: LoggingOptions

    func run() throws {
        logging.bootstrap()
        let started = ContinuousClock.now
        let timestamp = reproducible ? RunSummary.timestamp(Date(timeIntervalSince1970: 0)) : RunSummary.timestamp(Date())
        let entries = try select()
        for (path, what) in [(junit, "the JUnit report"), (json, "the JSON report"), (html, "the HTML report")] {
            if let path, let cause = Self.cannotWrite(path) {
                throw CommandError("cannot write \(what) \(path)", cause: cause, status: .badInput)
            }
        }
        let limit: UInt64? = maxMemory == "none" ? nil : (try? Units.parseSize(maxMemory).get())
        var runner = ScenarioRunner(mode: inProcess ? .inProcess : .fuse, maxMemory: limit)
        runner.keepsAccessLog = html != nil
        runner.reproducible = reproducible
        runner.logLevel = logging.level(default: .warning)
        if let trace {
            do {
                try FileManager.default.createDirectory(atPath: trace, withIntermediateDirectories: true)
            } catch {
                throw CommandError("cannot create the trace directory \(trace)", cause: error.localizedDescription, status: .badInput)
            }
            runner.traceDirectory = trace
            runner.mdevsimVersion = Mdevsim.configuration.version
        }
        var mountpoint: RunMountpoint?
        if !inProcess {
            do {
                mountpoint = try RunMountpoint()
            } catch {
                throw CommandError("cannot mount", cause: "\(error)", fix: "run where /dev/fuse exists (modprobe fuse), or use --in-process", status: .environment)
            }
            runner.mountpoint = mountpoint?.path
        }

        let mounted = mountpoint
        let journal = RunJournal(entries: entries)
        let width = entries.map(\.entryName.count).max() ?? 0
        let statusLine = StatusLine(command: "run", quiet: quiet)
        let style = format ?? .automatic
        let mode = runner.mode
        let shardText = shard.flatMap { try? Shard(parsing: $0).description }
        let scenarios = Dictionary(entries.compactMap { e in (try? e.scenario.get()).map { (e.file, $0) } }, uniquingKeysWith: { a, _ in a })
        let reports = Reports(junit: junit, json: json, html: html, scenarios: scenarios)
        let reproducible = reproducible
        @Sendable func summary(_ results: [ScenarioResult], ended: RunSummary.Ending) -> RunSummary {
            let elapsed = ContinuousClock.now - started
            return RunSummary(
                mode: mode, shard: shardText, results: results,
                durationSeconds: reproducible ? 0 : Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18,
                ended: ended, timestamp: timestamp)
        }
        // Whoever stops the run first (a signal, the timeout) writes the reports and exits.
        let stop: @Sendable (RunSummary.Ending, ExitStatus, String, String) -> Void = { ending, status, error, skipped in
            guard let results = journal.close(error: error, skipped: skipped, reproducible: reproducible) else { return }
            statusLine.clear()
            CommandError.printLine(CommandError(error, cause: "unmounting and writing the reports", status: status).line(command: "run"))
            ActiveMounts.shared.unmountAll()
            TraceWriter.flushAll()
            let done = journal.results.count
            for r in results.dropFirst(done).prefix(1) { print(Self.line(r, width: width)) }
            let s = summary(results, ended: ending)
            _ = reports.write(s)
            print(s.summaryLine)
            fflush(nil)
            mounted?.remove()
            Glibc.exit(status.rawValue)
        }
        let signals = SignalStop.install { sig in
            stop(sig == SIGINT ? .interrupted : .terminated, SignalStop.status(for: sig), "interrupted (\(SignalStop.name(sig)))", "interrupted")
        }
        var watchdog: DispatchSourceTimer?
        if let timeout {
            let timer = DispatchSource.makeTimerSource(queue: .global())
            timer.schedule(deadline: .now() + 0.1, repeating: 0.1)
            timer.setEventHandler {
                if let seconds = journal.runningSeconds(), seconds > timeout {
                    stop(.timeout, .timeout, "timed out after \(Self.seconds(timeout)) s (--timeout)", "interrupted: the run stopped at a timeout")
                }
            }
            timer.resume()
            watchdog = timer
        }
        defer {
            watchdog?.cancel()
            signals.forEach { $0.cancel() }
            mountpoint?.remove()
        }

        for (i, entry) in entries.enumerated() {
            let prefix = "[\(i + 1)/\(entries.count)] \(entry.entryName)"
            journal.begin(i)
            statusLine.begin()
            statusLine.update(prefix, "setting up the devices")
            let progress: @Sendable (String) -> Void = { line in
                journal.step(line)
                statusLine.update(prefix, line)
            }
            let result = runner.run(entry, progress: progress)
            // Closed meanwhile: a signal or the timeout stopped the run (and unmounted under this
            // scenario); its handler reports and exits with its status, which must not lose the race.
            guard journal.finish(result) else { SignalStop.waitForTheHandler() }
            statusLine.clear()
            print(Self.line(result, width: width))
            if style == .github { for line in Self.annotations(result, entry: entry) { print(line) } }
            fflush(nil)
        }

        let s = summary(journal.results, ended: .completed)
        let violations = s.violations
        if !violations.isEmpty {
            print("protocol violations recorded by the devices (\(violations.count)):")
            for v in violations { print("  \(v)") }
        }
        for r in s.results where r.skipped != nil {
            print("skipped \(r.entryName): \(r.skipped ?? "")")
        }
        let written = reports.write(s)
        print(s.summaryLine)
        if s.failed + s.errors > 0 { throw ExitStatus.failed.code }
        if !written { throw ExitStatus.environment.code }
    }

    /// The entries to run: the paths (or the bundled library), checked for duplicate names, sliced by --shard.
    private func select() throws -> [ScenarioEntry] {
        var sources = paths
        let environment = ProcessInfo.processInfo.environment["MDEVSIM_SCENARIOS"].flatMap { $0.isEmpty ? nil : $0 }
        if sources.isEmpty, !builtin, let environment { sources = [environment] }
        let embedded = builtin || sources.isEmpty
        var entries: [ScenarioEntry]
        do {
            entries = try (sources.isEmpty ? [] : ScenarioCatalog.collect(sources)) + (embedded ? ScenarioCatalog.bundled() : [])
        } catch {
            if error.isEmptyDirectory { throw CommandError("no scenario selected", cause: "\(error)", status: .emptySelection) }
            throw CommandError("cannot read \(error.path)", cause: error.reason, status: .badInput)
        }
        let duplicates = ScenarioCatalog.duplicateNames(entries)
        if !duplicates.isEmpty {
            throw CommandError("duplicate scenario names", cause: duplicates.map(\.description).joined(separator: "; "),
                               fix: "give each scenario its own name (its trace and JUnit testcase are named after it)", status: .badInput)
        }
        // Sliced by scenario before the protocols multiply them: a scenario's shard does not change
        // when its types gain v2, and its v1 and v2 entries run (and fail) together.
        if let shard, let value = try? Shard(parsing: shard) {
            let all = entries.count
            entries = value.slice(entries)
            if entries.isEmpty {
                throw CommandError("no scenario selected", cause: "shard \(value) of \(all) scenario\(all == 1 ? "" : "s") is empty",
                                   fix: "use at most \(all) shards", status: .emptySelection)
            }
        }
        let selected = ScenarioCatalog.perProtocol(entries, only: migrationProtocol.only)
        if selected.isEmpty {
            throw CommandError("no scenario selected", cause: "none of the \(entries.count) selected scenario\(entries.count == 1 ? "" : "s") has types that speak \(migrationProtocol.rawValue)",
                               fix: "add protocols: [v1, v2] to the types, or use --protocol all", status: .emptySelection)
        }
        return selected
    }

    /// Why `path` cannot be written, or nil: checked before anything runs, so a typo does not
    /// cost a whole run's results.
    static func cannotWrite(_ path: String) -> String? {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            if isDirectory.boolValue { return "it is a directory" }
            return access(path, W_OK) == 0 ? nil : "it is not writable"
        }
        let parent = (path as NSString).deletingLastPathComponent
        let directory = parent.isEmpty ? "." : parent
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            return "no such directory \(directory)"
        }
        return access(directory, W_OK) == 0 ? nil : "the directory \(directory) is not writable"
    }

    /// The report files of a run.
    struct Reports: Sendable {
        var junit: String?
        var json: String?
        var html: String?
        /// The scenarios by file, for the HTML page's expectations.
        var scenarios: [String: Scenario] = [:]

        /// Writes both; false (after saying why) when one could not be written.
        func write(_ summary: RunSummary) -> Bool {
            var ok = true
            if let junit { ok = Run.write(Data(RunReports.junit(summary).utf8), to: junit) && ok }
            if let json {
                do {
                    ok = Run.write(try RunReports.json(summary), to: json) && ok
                } catch {
                    CommandError.printLine(CommandError("cannot encode the JSON report", cause: "\(error)", status: .environment).line(command: "run"))
                    ok = false
                }
            }
            if let html {
                ok = HTMLOutput.write(ReportPage(run: summary, scenarios: scenarios, generator: HTMLOutput.generator), to: html, command: "run") && ok
            }
            return ok
        }
    }

    /// `PASS name  figures  [1.23 s]`, then one indented line per mismatch; `ERROR name  reason`
    /// then each diagnostic once.
    static func line(_ r: ScenarioResult, width: Int) -> String {
        let name = r.entryName.padding(toLength: max(width, r.entryName.count), withPad: " ", startingAt: 0)
        switch r.status {
        case .skipped:
            return "SKIP \(name)  \(r.skipped ?? "")"
        case .error:
            var lines = ["ERROR \(name)  \(r.error ?? "error")  [\(String(format: "%.2f", r.durationSeconds)) s]"]
            for d in r.diagnostics { lines.append("      \(d)") }
            return lines.joined(separator: "\n")
        case .passed, .failed:
            let figures = r.report.map(RunReports.figures) ?? "not run"
            var lines = ["\(r.passed ? "PASS" : "FAIL") \(name)  \(figures)  [\(String(format: "%.2f", r.durationSeconds)) s]"]
            for m in r.verdict.mismatches { lines.append("    - \(m)") }
            for n in r.verdict.notes { lines.append("    ~ not checked under \(r.migrationProtocol.rawValue): \(n)") }
            return lines.joined(separator: "\n")
        }
    }

    /// GitHub annotations of a scenario that did not pass: each diagnostic of an invalid file
    /// at its position; a failure or an error at the top of its file.
    static func annotations(_ r: ScenarioResult, entry: ScenarioEntry) -> [String] {
        if case .failure(let error) = entry.scenario { return error.diagnostics.map(DiagnosticFormat.github.render) }
        switch r.status {
        case .failed:
            return r.verdict.mismatches.map { DiagnosticFormat.annotation(file: r.file, line: 1, column: 1, title: "mdevsim run: \(r.entryName) failed", message: $0) }
        case .error:
            return [DiagnosticFormat.annotation(file: r.file, line: 1, column: 1, title: "mdevsim run: \(r.entryName) could not run", message: r.error ?? "error")]
        case .passed, .skipped:
            return []
        }
    }

    /// `--protocol`: one protocol, or every one a scenario's types offer.
    enum ProtocolSelection: String, ExpressibleByArgument, CaseIterable {
        case v1, v2, all

        /// The one protocol to keep, nil for all.
        var only: MigrationProtocolVersion? { MigrationProtocolVersion(rawValue: rawValue) }
    }

    static func seconds(_ s: Double) -> String { s == s.rounded() ? String(Int(s)) : String(s) }

    static func write(_ data: Data, to path: String) -> Bool {
        do {
            try data.write(to: URL(fileURLWithPath: path))
            return true
        } catch {
            CommandError.printLine(CommandError("cannot write \(path)", cause: error.localizedDescription, status: .environment).line(command: "run"))
            return false
        }
    }
}

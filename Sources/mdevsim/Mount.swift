import ArgumentParser
import Conformance
import Foundation
import FUSEKit
import Glibc
import Logging
import MdevFS
import Scenarios
import SystemPackage

/// `mdevsim mount`: serve a scenario's devices at a mountpoint.
struct Mount: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mount simulated mdev devices with real migration region files.",
        usage: """
            mdevsim mount MOUNTPOINT [-f] [-d] [-s] [-o OPTION[,OPTION...]]... [--scenario FILE] [--strict] [--trace FILE] [--log FILE] [--verbose]
            mdevsim SCENARIO MOUNTPOINT -o OPTIONS      (the form mount -t fuse.mdevsim runs; SCENARIO may be `default`)
            """,
        discussion: MountHelp.discussion + "\n\n" + ExitStatus.help([.success, .failed, .badInput, .environment, .usage])
    )

    @Argument(help: ArgumentHelp("Directory to mount on (must exist and have nothing mounted on it).", valueName: "mountpoint"))
    var mountpoint: String

    @Option(name: .long, help: ArgumentHelp("Scenario file (default: the built-in default scenario). Also -o scenario=FILE.", valueName: "file"))
    var scenario: String?

    @Flag(name: [.customShort("f"), .customLong("foreground")], help: "Stay attached: serve in this process until unmounted or interrupted (libfuse's -f).")
    var foreground = false

    @Flag(name: .customShort("d"), help: "libfuse's debug output: every request on stderr (implies -f).")
    var debug = false

    @Flag(name: .customShort("s"), help: "Serve with libfuse's single-threaded loop.")
    var singleThreaded = false

    @Option(name: .customShort("o"), help: ArgumentHelp("""
        Mount options, comma-separated, repeatable. mdevsim's own: scenario=FILE, strict, trace=FILE, log=FILE, \
        verbose, bdi_max_ratio=PERCENT (as --bdi-max-ratio), no_stage_ahead. Every other goes to libfuse and the kernel as given: ro, allow_other (other users, e.g. QEMU \
        under another uid, may then read the 0444 attributes and list the tree, but create, reset, remove and \
        the regions stay the mounting user's: the modes are always enforced, default_permissions is always on; \
        README, Security model; non-root needs user_allow_other in /etc/fuse.conf), fsname=, subtype=, \
        auto_unmount, max_idle_threads=, max_threads=, clone_fd, ...; libfuse refuses what it does not know.
        """, valueName: "options"))
    var options: [String] = []

    @Flag(name: .long, help: "Turn each protocol violation into EINVAL for the offending access (deviations stay accepted; docs/vmm-guide.md lists which is which). Also -o strict.")
    var strict = false

    @Option(name: .long, help: ArgumentHelp("Log file of the daemon (default: none once detached; stderr with -f). Also -o log=FILE.", valueName: "file"))
    var log: String?

    @Flag(name: .long, help: "Log every device event (debug level; the same as --log-level debug). Also -o verbose.")
    var verbose = false

    @OptionGroup var logging: LoggingOptions

    @Option(name: .long, help: ArgumentHelp("Write every access to every device, and their creation, removal, reset, open and release, to this file as JSON lines (replay it with `mdevsim replay`). Truncated at mount; complete once unmounted. Also -o trace=FILE.", valueName: "file"))
    var trace: String?

    @Option(name: .customLong("bdi-max-ratio"), help: ArgumentHelp("""
        Root only: the mount's share of the dirty-page budget, in percent (its /sys/class/bdi/MAJ:MIN/max_ratio; \
        the kernel gives a FUSE mount 1%). Many mapped data sections dirtied at once pass 1% (64 of 1 MiB do) and the \
        kernel writes them back to the daemon while chunks move (README, Known limits). Also -o bdi_max_ratio=PERCENT.
        """, valueName: "percent"))
    var bdiMaxRatio: Int?

    @Flag(name: .customLong("no-stage-ahead"), help: """
        Stage each save chunk at its data_offset read only, instead of building it while the client copies the one         before (the same bytes and answers either way; README, How the region file works). Also -o no_stage_ahead.
        """)
    var noStageAhead = false

    /// mdevsim's own `-o` options, as fuse_opt templates.
    static let ownTemplates = ["scenario=", "strict", "trace=", "log=", "verbose", "bdi_max_ratio=", "no_stage_ahead"]

    /// What to run with once the long flags and mdevsim's `-o` options are merged (`-o` wins).
    struct Settings {
        var scenario: String?
        var strict: Bool
        var trace: String?
        var log: String?
        var verbose: Bool
        var bdiMaxRatio: Int?
        var stagesAhead: Bool
        var line: FUSECommandLine
    }

    private func badRatio(_ shown: String) -> CommandError {
        CommandError("cannot mount \(mountpoint)", cause: "bdi_max_ratio: expected a percent from 0 to 100, got \(shown)", status: .usage)
    }

    /// The libfuse command line these arguments stand for, parsed by libfuse.
    func settings() throws -> Settings {
        var args = [mountpoint]
        if foreground { args.append("-f") }
        if debug { args.append("-d") }
        if singleThreaded { args.append("-s") }
        for o in options { args += ["-o", o] }
        let line: FUSECommandLine
        do {
            line = try FUSECommandLine.parse(args, ownTemplates: Self.ownTemplates)
        } catch {
            throw CommandError("cannot mount \(mountpoint)", cause: error.message, status: .usage)
        }
        var s = Settings(scenario: scenario, strict: strict, trace: trace, log: log, verbose: verbose, bdiMaxRatio: bdiMaxRatio,
                         stagesAhead: !noStageAhead, line: line)
        for o in line.ownOptions {
            switch o.template {
            case "scenario=": s.scenario = o.value
            case "strict": s.strict = true
            case "trace=": s.trace = o.value
            case "log=": s.log = o.value
            case "bdi_max_ratio=":
                guard let percent = Int(o.value ?? "") else { throw badRatio("'\(o.value ?? "")'") }
                s.bdiMaxRatio = percent
            case "no_stage_ahead": s.stagesAhead = false
            default: s.verbose = true
            }
        }
        if let percent = s.bdiMaxRatio, !(0...100).contains(percent) { throw badRatio("\(percent)") }
        // The daemon's working directory is `/` (fuse_daemonize): absolute paths only.
        s.trace = s.trace.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        s.log = s.log.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        return s
    }

    func run() throws {
        let inherited = FUSEDaemon.inheritedDescriptors()
        logging.bootstrap(default: verbose ? .debug : .info)
        // Before libfuse sees the mountpoint (it resolves it, which hangs on some stale mounts).
        try preflight()
        let settings = try settings()
        let scenario = try Self.loadScenario(settings.scenario)
        try serve(scenario, settings, closing: inherited)
    }

    static func loadScenario(_ path: String?) throws -> Scenario {
        guard let path else { return Scenario.builtInDefault }
        do {
            return try ScenarioLoader.load(contentsOf: FilePath(path))
        } catch {
            throw Migrate.loadError(path, error)
        }
    }

    /// The checks that give a clear message and the fix before anything is started.
    private func preflight() throws {
        do {
            try MountHelpers.checkFUSEDevice()
        } catch {
            throw CommandError("cannot mount", cause: error.message, fix: "load the module (modprobe fuse) or run where /dev/fuse exists", status: .environment)
        }
        switch MountHelpers.status(of: mountpoint) {
        case .notMounted:
            break
        case .missing:
            throw CommandError("cannot mount \(mountpoint)", cause: "it does not exist", fix: "mkdir -p \(mountpoint)", status: .badInput)
        case .notADirectory:
            throw CommandError("cannot mount \(mountpoint)", cause: "it is not a directory", status: .badInput)
        case .mounted(let type):
            throw CommandError("cannot mount \(mountpoint)", cause: "it is busy: already a mount (\(type))", fix: "unmount it first: mdevsim unmount \(mountpoint)", status: .environment)
        case .stale:
            throw CommandError("cannot mount \(mountpoint)", cause: "it is a stale mount left by a killed daemon (Transport endpoint is not connected)",
                               fix: "clear it: mdevsim unmount \(mountpoint)", status: .environment)
        }
        // libfuse 3 mounts over a non-empty directory (it dropped fuse 2's `nonempty` check), as
        // the kernel allows: do the same, but say what disappears until the unmount.
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: mountpoint), !entries.isEmpty {
            let shown = entries.sorted().prefix(5).joined(separator: ", ")
            CommandError.printLine("mdevsim mount: warning: \(mountpoint) is not empty: the mount hides its \(entries.count) entr\(entries.count == 1 ? "y" : "ies") (\(shown)\(entries.count > 5 ? ", ..." : "")) until it is unmounted")
        }
    }

    /// Mounts, detaches unless -f (libfuse's fuse_daemonize, once the mount exists, so a mount
    /// error still reaches this terminal), and serves.
    private func serve(_ scenario: Scenario, _ settings: Settings, closing inherited: [Int32]) throws {
        let detach = !settings.line.foreground
        let logger = makeLogger(settings, detached: detach)
        // Before the mount exists: resolving the path of a mount not yet served would hang.
        if let budget = MachineMemory.budget(), let why = MemoryModel.refusal(scenario, budget: budget.bytes, what: budget.what) {
            logger.warning("\(why). Served anyway: an access that finds no memory fails with ENOMEM")
        }
        let pidFile = MountRegistry.pidFile(for: mountpoint)
        let writer: TraceWriter?
        do {
            writer = try settings.trace.map { path throws(Errno) in
                try TraceWriter(path: path, header: TraceHeader(
                    scenario: scenario, scenarioPath: settings.scenario, strict: settings.strict, recorder: "mount",
                    mdevsimVersion: Mdevsim.configuration.version))
            }
        } catch {
            throw CommandError("cannot write the trace \(settings.trace ?? "")", cause: "\(error)", status: .badInput)
        }
        // Runs after the loop has ended (unmount, or a signal's clean exit): nothing is lost.
        defer {
            if let writer, let e = writer.close() { logger.error("the trace \(writer.path) is incomplete: writing it failed: \(e)") }
        }
        // Resolved while it is still a plain directory: resolving a mount not yet served blocks.
        let resolvedMountpoint = MountHelpers.resolvedPath(mountpoint)
        let mount: MdevMount
        do {
            mount = try MdevMount(scenario: scenario, mountpoint: mountpoint, strict: settings.strict, stagesAhead: settings.stagesAhead,
                                  handleSignals: true,
                                  observer: writer.map { TraceRecorder(sink: $0) }, commandLine: settings.line, logger: logger)
        } catch {
            throw CommandError("cannot mount \(mountpoint)", cause: error.message, status: error.kind == .invalidOption ? .usage : .environment)
        }
        defer { MountRegistry.forget(pidFile: pidFile) }
        if let percent = settings.bdiMaxRatio {
            do {
                let bdi = try MountHelpers.setDirtyShare(percent: percent, ofMountAt: resolvedMountpoint)
                logger.info("\(bdi)/max_ratio set to \(percent)")
            } catch {
                // A tuning knob: the mount serves either way, with the kernel's share, and says so.
                CommandError.printLine("mdevsim mount: warning: bdi_max_ratio=\(percent) not applied: \(error.message); the mount keeps the kernel's 1%")
                logger.warning("bdi_max_ratio=\(percent) not applied: \(error.message)")
            }
        }
        if detach {
            let threads = FUSEDaemon.threadCount
            if threads > 1 { logger.warning("detaching with \(threads) threads: only this one survives the fork") }
            let mountpoint = self.mountpoint
            do {
                // In the child, before the parent returns: the pid file and the line naming the daemon.
                try FUSEDaemon.daemonize(closing: inherited) { pid in
                    MountRegistry.record(pid: pid, pidFile: pidFile)
                    let line = "mdevsim: mounted at \(mountpoint) (daemon pid \(pid)); stop it with: mdevsim unmount \(mountpoint)\n"
                    _ = Array(line.utf8).withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
                }
            } catch {
                throw CommandError("cannot detach", cause: error.message, status: .environment)
            }
        } else {
            MountRegistry.record(pid: getpid(), pidFile: pidFile)
            print("mdevsim: serving \(scenario.name) at \(mountpoint) (pid \(getpid())); Ctrl-C or `mdevsim unmount \(mountpoint)` to stop")
            for t in scenario.types {
                print("  type \(t.name): up to \(t.instances) devices; create one: cat /proc/sys/kernel/random/uuid > \(mountpoint)/mdev_supported_types/\(t.name)/create")
            }
            fflush(nil)
        }
        // A fatal signal's reason goes to the log file; a detached daemon's stderr (/dev/null
        // after fuse_daemonize) too, so that its last words are not lost.
        if let log = settings.log { FatalSignalLog.install(path: log, redirectStderr: detach) }
        do {
            let outcome = try mount.run()
            logger.info("mount at \(mountpoint) ended: \(outcome)")
        } catch {
            throw CommandError("the mount at \(mountpoint) failed", cause: error.message, status: .environment)
        }
    }

    private func makeLogger(_ settings: Settings, detached: Bool) -> Logger {
        let level: Logger.Level = settings.verbose ? .debug : logging.level(default: .info)
        let file = settings.log
        var logger = Logger(label: "mdevsim") { label in
            if let file, let handle = Self.appending(file) {
                return FileLogHandler(label: label, handle: handle)
            }
            return detached ? SwiftLogNoOpLogHandler() : FileLogHandler(label: label, handle: .standardError)
        }
        logger.logLevel = level
        return logger
    }

    /// The log opened O_APPEND: the fatal-signal line and the runtime's backtrace are appended
    /// by other descriptors of the same file, and a log line written at a private offset (a
    /// thread still logging while the process dies) would overwrite them.
    private static func appending(_ path: String) -> FileHandle? {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        return fd >= 0 ? FileHandle(fileDescriptor: fd, closeOnDealloc: true) : nil
    }

    /// `mdevsim <command>: error: message` on stderr, for errors printed before the command ends.
    static func fail(_ message: String, command: String = "mount") {
        CommandError.printLine("mdevsim \(command): error: \(message)")
    }
}

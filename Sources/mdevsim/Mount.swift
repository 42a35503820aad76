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
        discussion: """
            Returns once the mount is ready and leaves a daemon serving it (like sshfs), or stays \
            attached with --foreground. Stop it with `mdevsim unmount MOUNTPOINT` (or SIGINT/SIGTERM \
            to the daemon). The tree:

              MOUNT/mdev_supported_types/<type>/{name,description,device_api,available_instances,create}
              MOUNT/devices/<uuid>/{mdev_type,migration,migration.info,reset,remove,digest,state,violations}

            Create a device with `uuidgen > MOUNT/mdev_supported_types/<type>/create`; its region is \
            MOUNT/devices/<uuid>/migration. See docs/vmm-guide.md.
            """
    )

    @Argument(help: ArgumentHelp("Directory to mount on (must exist and be empty of mounts).", valueName: "mountpoint"))
    var mountpoint: String

    @Option(name: .long, help: ArgumentHelp("Scenario file (default: the built-in default scenario).", valueName: "file"))
    var scenario: String?

    @Flag(name: .long, help: "Stay attached: serve in this process until unmounted or interrupted.")
    var foreground = false

    @Option(name: .customShort("o"), help: ArgumentHelp("Mount option; only allow_other is supported: other users may then read the 0444 attributes and list the tree, but create, reset, remove and the regions stay the mounting user's (the modes are always enforced; README, Security model). Needs root or user_allow_other in /etc/fuse.conf.", valueName: "option"))
    var options: [String] = []

    @Flag(name: .long, help: "Turn each protocol violation into EINVAL for the offending access.")
    var strict = false

    @Option(name: .long, help: ArgumentHelp("Log file of the daemon (default: none once detached; stderr with --foreground).", valueName: "file"))
    var log: String?

    @Flag(name: .long, help: "Log every device event (debug level).")
    var verbose = false

    @Option(name: .long, help: ArgumentHelp("Write every access to every device, and their creation, removal, reset, open and release, to this file as JSON lines (replay it with `mdevsim replay`). Truncated at mount; complete once unmounted.", valueName: "file"))
    var trace: String?

    @Option(name: .customLong("ready-fd"), help: .hidden)
    var readyFD: Int32?

    func validate() throws {
        for o in options.flatMap({ $0.split(separator: ",") }) where o != "allow_other" {
            throw ValidationError("unsupported mount option '\(o)': only -o allow_other is supported")
        }
    }

    var allowOther: Bool { options.contains { $0.split(separator: ",").contains("allow_other") } }

    func run() throws {
        let scenario = try Self.loadScenario(self.scenario)
        try preflight()
        if foreground || readyFD != nil {
            try serve(scenario)
        } else {
            try DaemonLauncher.launch(arguments: daemonArguments(), mountpoint: mountpoint)
        }
    }

    static func loadScenario(_ path: String?) throws -> Scenario {
        guard let path else { return Scenario.builtInDefault }
        do {
            return try ScenarioLoader.load(contentsOf: FilePath(path))
        } catch {
            fail("\(error)")
            throw ExitCode(2)
        }
    }

    /// The checks that give a clear message and the fix before anything is started.
    private func preflight() throws {
        do {
            try MountHelpers.checkFUSEDevice()
        } catch {
            Self.fail("cannot mount: \(error.message)")
            throw ExitCode(1)
        }
        switch MountHelpers.status(of: mountpoint) {
        case .notMounted:
            break
        case .missing:
            Self.fail("cannot mount: \(mountpoint) does not exist. Create it: mkdir -p \(mountpoint)")
            throw ExitCode(1)
        case .notADirectory:
            Self.fail("cannot mount: \(mountpoint) is not a directory")
            throw ExitCode(1)
        case .mounted(let type):
            Self.fail("cannot mount: \(mountpoint) is busy: already a mount (\(type)). Unmount it first: mdevsim unmount \(mountpoint)")
            throw ExitCode(1)
        case .stale:
            Self.fail("cannot mount: \(mountpoint) is a stale mount left by a killed daemon (Transport endpoint is not connected). Clear it: mdevsim unmount \(mountpoint)")
            throw ExitCode(1)
        }
    }

    private func daemonArguments() -> [String] {
        var args = ["mount", mountpoint, "--ready-fd", "READY_FD"]
        if let scenario { args += ["--scenario", URL(fileURLWithPath: scenario).standardizedFileURL.path] }
        for o in options { args += ["-o", o] }
        if strict { args.append("--strict") }
        if verbose { args.append("--verbose") }
        if let log { args += ["--log", URL(fileURLWithPath: log).standardizedFileURL.path] }
        // The daemon's working directory is not ours to rely on: absolute paths only.
        if let trace { args += ["--trace", URL(fileURLWithPath: trace).standardizedFileURL.path] }
        return args
    }

    /// Mounts and serves in this process; tells a waiting parent (`--ready-fd`) how it went.
    private func serve(_ scenario: Scenario) throws {
        // A detached daemon's stderr is /dev/null: its last words go to the log instead.
        if let log { FatalSignalLog.install(path: log, redirectStderr: readyFD != nil) }
        let logger = makeLogger()
        if let budget = MachineMemory.budget(), let why = MemoryModel.refusal(scenario, budget: budget.bytes, what: budget.what) {
            logger.warning("\(why). Served anyway: an access that finds no memory fails with ENOMEM")
        }
        let pidFile = MountRegistry.pidFile(for: mountpoint)
        let writer: TraceWriter?
        do {
            writer = try trace.map { path throws(Errno) in
                try TraceWriter(path: path, header: TraceHeader(
                    scenario: scenario, scenarioPath: self.scenario, strict: strict, recorder: "mount",
                    mdevsimVersion: Mdevsim.configuration.version))
            }
        } catch {
            let message = "cannot write the trace \(trace ?? ""): \(error)"
            if let fd = readyFD { DaemonLauncher.report(fd: fd, "error \(message)") } else { Self.fail(message) }
            throw ExitCode(1)
        }
        // Runs after the loop has ended (unmount, or a signal's clean exit): nothing is lost.
        defer {
            if let writer, let e = writer.close() { logger.error("the trace \(writer.path) is incomplete: writing it failed: \(e)") }
        }
        let mount: MdevMount
        do {
            mount = try MdevMount(scenario: scenario, mountpoint: mountpoint, strict: strict, allowOther: allowOther,
                                  handleSignals: true, observer: writer.map { TraceRecorder(sink: $0) }, logger: logger)
        } catch {
            let message = "cannot mount \(mountpoint): \(error.message)"
            if let fd = readyFD { DaemonLauncher.report(fd: fd, "error \(message)") } else { Self.fail(message) }
            throw ExitCode(1)
        }
        MountRegistry.record(pid: getpid(), pidFile: pidFile)
        defer { MountRegistry.forget(pidFile: pidFile) }
        if let fd = readyFD {
            DaemonLauncher.report(fd: fd, "ok \(getpid())")
        } else {
            print("mdevsim: serving \(scenario.name) at \(mountpoint) (pid \(getpid())); Ctrl-C or `mdevsim unmount \(mountpoint)` to stop")
            for t in scenario.types {
                print("  type \(t.name): up to \(t.instances) devices; create one: uuidgen > \(mountpoint)/mdev_supported_types/\(t.name)/create")
            }
        }
        do {
            let outcome = try mount.run()
            logger.info("mount at \(mountpoint) ended: \(outcome)")
        } catch {
            Self.fail("mdevsim: the mount at \(mountpoint) failed: \(error.message)")
            throw ExitCode(1)
        }
    }

    private func makeLogger() -> Logger {
        let level: Logger.Level = verbose ? .debug : .info
        let file = log
        let detached = readyFD != nil
        var logger = Logger(label: "mdevsim") { label in
            if let file, let handle = FileHandle(forWritingAtPath: file) ?? Self.create(file) {
                handle.seekToEndOfFile()
                return FileLogHandler(label: label, handle: handle)
            }
            return detached ? SwiftLogNoOpLogHandler() : StreamLogHandler.standardError(label: label)
        }
        logger.logLevel = level
        return logger
    }

    private static func create(_ path: String) -> FileHandle? {
        guard FileManager.default.createFile(atPath: path, contents: nil) else { return nil }
        return FileHandle(forWritingAtPath: path)
    }

    static func fail(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }
}

/// A log handler appending lines to a file.
struct FileLogHandler: LogHandler, @unchecked Sendable {
    let label: String
    let handle: FileHandle
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let stamp = ISO8601DateFormatter().string(from: Date())
        handle.write(Data("\(stamp) \(event.level) \(label): \(event.message)\n".utf8))
    }
}

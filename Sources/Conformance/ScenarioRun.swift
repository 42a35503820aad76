import DeviceSimulator
import Foundation
import FUSEKit
import Glibc
import Logging
import MdevFS
import Scenarios
import Synchronization
import SystemPackage

/// One scenario file to run: its path and what the loader made of it.
public struct ScenarioEntry: Sendable {
    public var file: String
    public var scenario: Result<Scenario, ScenarioError>

    public init(file: String, scenario: Result<Scenario, ScenarioError>) {
        self.file = file
        self.scenario = scenario
    }

    /// The scenario's name, or the file's base name without `.yaml` when it does not load.
    public var name: String {
        if case .success(let s) = scenario { return s.name }
        var base = (file as NSString).lastPathComponent
        if base.hasSuffix(".yaml") { base.removeLast(5) }
        return base
    }
}

/// Finds and loads scenario files.
public enum ScenarioCatalog {
    /// A path that is neither a file nor a directory with `*.yaml` files.
    public struct NotFound: Error, CustomStringConvertible {
        public var path: String
        public var reason: String
        public var description: String { "\(path): \(reason)" }
    }

    /// Files named by `paths` (a directory stands for its `*.yaml` files, not recursively),
    /// sorted by path and without duplicates, each loaded. A file that does not load is an entry
    /// with its diagnostics; a path that does not exist, or a directory without scenarios, throws.
    public static func collect(_ paths: [String]) throws(NotFound) -> [ScenarioEntry] {
        var files: Set<String> = []
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw NotFound(path: path, reason: "no such file or directory")
            }
            if isDirectory.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
                let yaml = names.filter { $0.hasSuffix(".yaml") }
                if yaml.isEmpty { throw NotFound(path: path, reason: "no *.yaml scenario files in the directory") }
                for name in yaml { files.insert(path.hasSuffix("/") ? path + name : path + "/" + name) }
            } else {
                files.insert(path)
            }
        }
        return files.sorted().map { file in
            ScenarioEntry(file: file, scenario: Result { () throws(ScenarioError) in try ScenarioLoader.load(contentsOf: FilePath(file)) })
        }
    }

    /// The bundled library: `$MDEVSIM_SCENARIOS`, else `./scenarios`, else a `scenarios`
    /// directory holding `default.yaml` beside the executable or in one of its parents (a build
    /// directory inside the repository).
    public static func bundledDirectory(executable: String = CommandLine.arguments.first ?? "") -> String? {
        func holdsLibrary(_ dir: String) -> Bool {
            FileManager.default.fileExists(atPath: (dir as NSString).appendingPathComponent("default.yaml"))
        }
        if let env = ProcessInfo.processInfo.environment["MDEVSIM_SCENARIOS"], !env.isEmpty { return env }
        if holdsLibrary("scenarios") { return "scenarios" }
        var dir = (URL(fileURLWithPath: executable).resolvingSymlinksInPath().path as NSString).deletingLastPathComponent
        while !dir.isEmpty, dir != "/" {
            let candidate = (dir as NSString).appendingPathComponent("scenarios")
            if holdsLibrary(candidate) { return candidate }
            dir = (dir as NSString).deletingLastPathComponent
        }
        return nil
    }
}

/// The result of running one scenario.
public struct ScenarioResult: Sendable, Codable {
    public var name: String
    public var file: String
    public var verdict: Verdict
    /// The client's report; absent when the scenario could not run (invalid file, mount failure).
    public var report: MigrationReport?
    /// The loader's diagnostics of an invalid file, or why the scenario could not run.
    public var diagnostics: [String]
    /// Wall-clock seconds the scenario took, mount and device set-up included.
    public var durationSeconds: Double
    /// Why the scenario was not run (it exceeds the run's memory limit); counted neither as
    /// passed nor as failed, and always listed.
    public var skipped: String?

    public init(name: String, file: String, verdict: Verdict, report: MigrationReport?, diagnostics: [String] = [],
                durationSeconds: Double, skipped: String? = nil) {
        self.name = name
        self.file = file
        self.verdict = verdict
        self.report = report
        self.diagnostics = diagnostics
        self.durationSeconds = durationSeconds
        self.skipped = skipped
    }

    /// Ran and met its expectation.
    public var passed: Bool { skipped == nil && verdict.passed }
    /// Ran (or could not) and did not meet its expectation.
    public var failed: Bool { skipped == nil && !verdict.passed }
}

/// Runs scenarios: two fresh devices per scenario, the reference client with the scenario's
/// plan, the report judged against the scenario's expectation.
public struct ScenarioRunner: Sendable {
    public enum Mode: String, Sendable, Codable {
        /// Devices inside this process, reached by direct calls.
        case inProcess = "in-process"
        /// Devices of a real FUSE mount (served by this process), reached through region files.
        case fuse
    }

    public var mode: Mode
    /// Where the FUSE mode mounts: an empty directory the runner owns (see `RunMountpoint`).
    public var mountpoint: String?
    /// Scenarios whose source device has more memory than this are not run but reported as
    /// skipped (with the reason); `nil` runs everything.
    public var maxMemory: UInt64?
    /// When set, each scenario's accesses are traced to `<directory>/<scenario name>.trace.jsonl`
    /// (one file per scenario, so each replays against its own scenario file).
    public var traceDirectory: String?
    /// Goes into trace headers.
    public var mdevsimVersion: String?
    /// In-process devices take their memory extents from one pool for the whole run, as a
    /// mount's devices do.
    private let extents = ExtentPool.standard()

    /// The default memory limit: 4GiB keeps `large-sparse` (16GiB) out of a default run. Its
    /// destination materializes every page it receives and both digests hash all of memory, so
    /// a full run costs about 80 s and 17GB of RSS in a release build, in process.
    public static let defaultMaxMemory: UInt64 = 4 << 30

    public init(mode: Mode, mountpoint: String? = nil, maxMemory: UInt64? = ScenarioRunner.defaultMaxMemory) {
        self.mode = mode
        self.mountpoint = mountpoint
        self.maxMemory = maxMemory
    }

    /// Runs one entry. Never throws: every problem is a failed verdict with its reason.
    public func run(_ entry: ScenarioEntry, progress: (@Sendable (String) -> Void)? = nil) -> ScenarioResult {
        let start = ContinuousClock.now
        func seconds() -> Double {
            let d = ContinuousClock.now - start
            return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        }
        let scenario: Scenario
        switch entry.scenario {
        case .failure(let error):
            let diagnostics = error.diagnostics.map(\.description)
            return ScenarioResult(
                name: entry.name, file: entry.file,
                verdict: Verdict(mismatches: ["invalid scenario file: \(error.diagnostics.first.map(\.description) ?? "invalid")\(diagnostics.count > 1 ? " (and \(diagnostics.count - 1) more)" : "")"]),
                report: nil, diagnostics: diagnostics, durationSeconds: seconds())
        case .success(let s):
            scenario = s
        }
        if let maxMemory, let memory = scenario.sourceType?.configuration.memorySize, memory > maxMemory {
            let reason = "device memory \(Units.formatSize(memory)) is above the run's limit of \(Units.formatSize(maxMemory)) (--max-memory)"
            return ScenarioResult(name: scenario.name, file: entry.file, verdict: .pass, report: nil, durationSeconds: 0, skipped: reason)
        }
        do {
            var trace: TraceWriter?
            if let traceDirectory {
                let path = Self.tracePath(directory: traceDirectory, scenario: scenario.name)
                let header = TraceHeader(scenario: scenario, scenarioPath: entry.file, strict: false,
                                         recorder: mode == .fuse ? "run" : "in-process", mdevsimVersion: mdevsimVersion)
                do {
                    trace = try TraceWriter(path: path, header: header)
                } catch {
                    throw RunError("cannot write the trace \(path): \(error)")
                }
            }
            let report: MigrationReport
            do {
                defer { trace?.close() }
                report = try migrate(scenario, progress: progress, observer: trace.map { TraceRecorder(sink: $0) })
            }
            if let trace, let e = trace.close() { throw RunError("writing the trace \(trace.path) failed: \(e)") }
            return ScenarioResult(name: scenario.name, file: entry.file, verdict: Judge.judge(report, against: scenario.expectation),
                                  report: report, durationSeconds: seconds())
        } catch {
            let reason = "could not run: \(error)"
            return ScenarioResult(name: scenario.name, file: entry.file, verdict: Verdict(mismatches: [reason]), report: nil,
                                  diagnostics: [reason], durationSeconds: seconds())
        }
    }

    /// The migration of one valid scenario, with the devices' violations attached.
    public func migrate(_ scenario: Scenario, progress: (@Sendable (String) -> Void)? = nil,
                        observer: (any AccessObserver)? = nil) throws -> MigrationReport {
        switch mode {
        case .inProcess:
            var migration = InProcessMigration(scenario: scenario)
            migration.observer = observer
            migration.extents = extents
            return try migration.run(progress: progress).0
        case .fuse:
            guard let mountpoint else { throw RunError("no mountpoint for the FUSE mode") }
            return try FUSEMigration(scenario: scenario, mountpoint: mountpoint, observer: observer).run(progress: progress)
        }
    }

    /// Where `run --trace DIRECTORY` puts a scenario's trace.
    public static func tracePath(directory: String, scenario: String) -> String {
        (directory as NSString).appendingPathComponent("\(scenario.replacingOccurrences(of: "/", with: "_")).trace.jsonl")
    }
}

/// A reason a scenario could not run.
public struct RunError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// One scenario's migration through a FUSE mount of its types: mount at `mountpoint`, create a
/// source and a destination by UUID, migrate through the region files (mapped when the plan
/// says `mmap`), collect the devices' violations, remove both devices, unmount. The mount is
/// registered with `ActiveMounts` while it exists, so a signal handler can take it down.
public struct FUSEMigration {
    public let scenario: Scenario
    public let mountpoint: String
    /// Told every access and event of the mount's devices (a trace), if set.
    public let observer: (any AccessObserver)?

    public init(scenario: Scenario, mountpoint: String, observer: (any AccessObserver)? = nil) {
        self.scenario = scenario
        self.mountpoint = mountpoint
        self.observer = observer
    }

    public func run(progress: (@Sendable (String) -> Void)? = nil) throws -> MigrationReport {
        guard let sourceType = scenario.sourceType else { throw InProcessMigration.UnknownType(name: scenario.migration.source) }
        guard let destinationType = scenario.destinationType else { throw InProcessMigration.UnknownType(name: scenario.migration.destination) }
        // The mount's own log (device created/removed) is noise in a run: warnings and up only.
        var logger = Logger(label: "mdevsim.run")
        logger.logLevel = .warning
        let mount = try MdevMount(scenario: scenario, mountpoint: mountpoint, observer: observer, logger: logger)
        let token = ActiveMounts.shared.register(mount)
        defer {
            mount.stop()
            ActiveMounts.shared.unregister(token)
        }
        try mount.start()
        let sourceUUID = UUID().uuidString.lowercased(), destinationUUID = UUID().uuidString.lowercased()
        try create(sourceUUID, type: sourceType.name)
        defer { remove(destinationUUID) }
        defer { remove(sourceUUID) }
        try create(destinationUUID, type: destinationType.name)
        var report: MigrationReport
        do {
            let map = scenario.migration.client.access == .mmap
            let source = try transport(sourceUUID, name: "source", map: map)
            let destination = try transport(destinationUUID, name: "destination", map: map)
            var client = ReferenceClient(options: ClientOptions(plan: scenario.migration.client), linkBandwidth: sourceType.configuration.linkBandwidth)
            client.progress = progress
            report = client.migrate(from: source, to: destination)
            // The transports close their descriptors (and unmap) here, before the devices go.
        }
        guard let s = mount.filesystem.device(sourceUUID), let d = mount.filesystem.device(destinationUUID) else {
            throw RunError("the devices disappeared from the mount during the migration")
        }
        report.attach(source: s, destination: d)
        return report
    }

    private var root: String { mountpoint }

    private func create(_ uuid: String, type: String) throws {
        do {
            try FileTransport.writeText(uuid + "\n", to: "\(root)/mdev_supported_types/\(type)/create")
        } catch {
            throw RunError("creating a \(type) device (\(uuid)) failed: \(error)")
        }
    }

    private func transport(_ uuid: String, name: String, map: Bool) throws -> FileTransport {
        do {
            return try FileTransport(directory: "\(root)/devices/\(uuid)", name: name, map: map)
        } catch {
            throw RunError("opening the \(name) region \(root)/devices/\(uuid)/migration failed: \(error)")
        }
    }

    /// Removes a device; the region's RELEASE may reach the daemon just after `close` returned,
    /// so EBUSY is retried briefly. Errors are ignored: the unmount discards the device anyway.
    private func remove(_ uuid: String) {
        let path = "\(root)/devices/\(uuid)/remove"
        for _ in 0..<50 {
            do {
                try FileTransport.writeText("1\n", to: path)
                return
            } catch .resourceBusy {
                usleep(10_000)
            } catch {
                return
            }
        }
    }
}

/// The mounts this process holds, so a signal handler can unmount them before exiting.
public final class ActiveMounts: Sendable {
    public static let shared = ActiveMounts()
    private let mounts = Mutex<[Int: MdevMount]>([:])
    private let next = Atomic<Int>(0)

    public func register(_ mount: MdevMount) -> Int {
        let token = next.add(1, ordering: .relaxed).newValue
        mounts.withLock { $0[token] = mount }
        return token
    }

    public func unregister(_ token: Int) {
        _ = mounts.withLock { $0.removeValue(forKey: token) }
    }

    /// Unmounts every registered mount (lazily, so a blocked access cannot hold it up).
    public func unmountAll() {
        let all = mounts.withLock { m -> [MdevMount] in
            defer { m.removeAll() }
            return Array(m.values)
        }
        for mount in all {
            mount.session.exit()
            mount.session.unmount()
            if MountHelpers.isMountPoint(mount.mountpoint) { try? MountHelpers.unmount(mount.mountpoint) }
        }
    }
}

/// The private mountpoint of one run: an empty directory made with `mkdtemp` in `$TMPDIR` (or
/// `/tmp`), removed by `remove()`.
public struct RunMountpoint: Sendable {
    public let path: String

    public init(prefix: String? = nil) throws {
        try MountHelpers.checkFUSEDevice()
        let directory = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        let prefix = prefix ?? (directory.hasSuffix("/") ? directory : directory + "/") + "mdevsim-run."
        var template = Array((prefix + "XXXXXX").utf8CString)
        guard mkdtemp(&template) != nil else { throw RunError("cannot create a temporary mountpoint: \(Errno(rawValue: errno))") }
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Unmounts whatever is still there (never expected) and removes the directory.
    public func remove() {
        if MountHelpers.isMountPoint(path) || MountHelpers.isStaleMount(path) { try? MountHelpers.unmount(path) }
        rmdir(path)
    }
}

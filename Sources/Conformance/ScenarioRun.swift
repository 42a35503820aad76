import DeviceSimulator
import Foundation
import FUSEKit
import Glibc
import Logging
import MdevFS
import Scenarios
import Synchronization
import SystemPackage

/// One scenario file to run under one protocol: its path, what the loader made of it, and the
/// migration protocol the reference client speaks (`run` plays a scenario once per protocol its
/// types offer: `ScenarioCatalog.perProtocol`).
public struct ScenarioEntry: Sendable {
    public var file: String
    public var scenario: Result<Scenario, ScenarioError>
    /// The protocol this entry migrates with.
    public var migrationProtocol: MigrationProtocolVersion

    public init(file: String, scenario: Result<Scenario, ScenarioError>, migrationProtocol: MigrationProtocolVersion = .v1) {
        self.file = file
        self.scenario = scenario
        self.migrationProtocol = migrationProtocol
    }

    /// The entry's identity in verdict lines, JUnit testcases, violations and the HTML page:
    /// the scenario's name under v1 (unchanged from before v2, so CI history stays), the name
    /// and the protocol under any other (`small-converges [v2]`).
    public var entryName: String { ScenarioResult.entryName(name, migrationProtocol) }

    /// The protocols `scenario` can be migrated with: those both its source and destination type
    /// speak, v1 first. A scenario that does not load, or names a type it lacks, has v1 only
    /// (it becomes one error entry, as before v2).
    public static func protocols(of scenario: Scenario) -> [MigrationProtocolVersion] {
        guard let source = scenario.sourceType, let destination = scenario.destinationType else { return [.v1] }
        let both = source.configuration.protocols.intersection(destination.configuration.protocols)
        let offered = MigrationProtocolVersion.allCases.filter { both.contains($0.set) }
        return offered.isEmpty ? [.v1] : offered
    }

    /// The scenario's name, or the file's base name without `.yaml` when it does not load.
    public var name: String {
        if case .success(let s) = scenario { return s.name }
        var base = (file as NSString).lastPathComponent
        for suffix in ScenarioCatalog.suffixes where base.hasSuffix(suffix) { base.removeLast(suffix.count) }
        return base
    }
}

/// Finds and loads scenario files.
public enum ScenarioCatalog {
    /// What a scenario file's name ends with (a directory stands for these files).
    public static let suffixes = [".yaml", ".yml"]

    /// A path that cannot be used: missing, or a directory without scenario files.
    public struct NotFound: Error, CustomStringConvertible {
        public var path: String
        public var reason: String
        /// A directory without scenario files: an empty selection rather than a missing input.
        public var isEmptyDirectory = false
        public var description: String { "\(path): \(reason)" }
    }

    /// Two files whose scenarios have the same `name:` (their traces and JUnit testcases would collide).
    public struct DuplicateName: Error, CustomStringConvertible {
        public var name: String
        public var files: [String]
        public var description: String { "scenario name '\(name)' is used by \(files.joined(separator: " and "))" }
    }

    /// The files `paths` name, sorted, without duplicates: a file as it is, a directory as its
    /// `*.yaml` and `*.yml` files (not recursively). `check` and `run` both select with this.
    public static func files(_ paths: [String]) throws(NotFound) -> [String] {
        var files: Set<String> = []
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw NotFound(path: path, reason: "no such file or directory")
            }
            if isDirectory.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
                let scenarios = names.filter { name in suffixes.contains { name.hasSuffix($0) } }
                if scenarios.isEmpty {
                    throw NotFound(path: path, reason: "no *.yaml or *.yml scenario files in the directory", isEmptyDirectory: true)
                }
                for name in scenarios { files.insert(path.hasSuffix("/") ? path + name : path + "/" + name) }
            } else {
                files.insert(path)
            }
        }
        return files.sorted()
    }

    /// Files named by `paths` (see `files`), each loaded. A file that does not load is an entry
    /// with its diagnostics; a path that does not exist, or a directory without scenarios, throws.
    public static func collect(_ paths: [String]) throws(NotFound) -> [ScenarioEntry] {
        try files(paths).map { file in
            ScenarioEntry(file: file, scenario: Result { () throws(ScenarioError) in try ScenarioLoader.load(contentsOf: FilePath(file)) })
        }
    }

    /// Every name two or more loaded entries share, with all their files, in file order.
    public static func duplicateNames(_ entries: [ScenarioEntry]) -> [DuplicateName] {
        var byName: [String: [String]] = [:]
        var order: [String] = []
        for entry in entries {
            guard case .success(let scenario) = entry.scenario else { continue }
            if byName[scenario.name] == nil { order.append(scenario.name) }
            byName[scenario.name, default: []].append(entry.file)
        }
        return order.compactMap { name in
            guard let files = byName[name], files.count > 1 else { return nil }
            return DuplicateName(name: name, files: files)
        }
    }

    /// How a bundled scenario's file is named in results, diagnostics and traces.
    public static let builtinPrefix = "builtin:"

    /// The bundled library, embedded in the binary at build time (`Scenario.bundledLibrary`,
    /// from the repository's scenarios/): works from any directory. Files are `builtin:NAME.yaml`.
    public static func bundled() -> [ScenarioEntry] {
        Scenario.bundledLibrary.map { file, text in
            let name = builtinPrefix + file
            return ScenarioEntry(file: name, scenario: Result { () throws(ScenarioError) in try ScenarioLoader.parse(text, file: name) })
        }
    }

    /// Each entry once per protocol its scenario offers (`ScenarioEntry.protocols(of:)`), in
    /// order, v1 before v2; restricted to `only` when given. An entry whose file does not load
    /// stays (once, under `only` or v1), so that an invalid file is never dropped silently.
    public static func perProtocol(_ entries: [ScenarioEntry], only: MigrationProtocolVersion? = nil) -> [ScenarioEntry] {
        entries.flatMap { entry -> [ScenarioEntry] in
            guard case .success(let scenario) = entry.scenario else {
                var e = entry
                e.migrationProtocol = only ?? .v1
                return [e]
            }
            return ScenarioEntry.protocols(of: scenario).filter { only == nil || $0 == only }.map {
                ScenarioEntry(file: entry.file, scenario: entry.scenario, migrationProtocol: $0)
            }
        }
    }

    /// The bundled scenario named `name` (its `name:`), if there is one.
    public static func bundledScenario(named name: String) -> Scenario? {
        for entry in bundled() { if case .success(let s) = entry.scenario, s.name == name { return s } }
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
    /// Why the scenario was not run (it exceeds the run's memory limit, the run was
    /// interrupted first); counted neither as passed nor as failed, and always listed.
    public var skipped: String?
    /// The migration's header accesses with their times, when the runner kept them (HTML reports).
    public var accessLog: AccessLog?
    /// Why the scenario could not be judged: its file is invalid, its devices could not be set
    /// up, the run was interrupted or timed out while it ran. An error, not a failure (JUnit
    /// `<error>`): nothing was learnt about the client.
    public var error: String?
    /// The last thing the scenario's migration reported doing (its progress), for an error.
    public var lastStep: String?
    /// The scenario's seed and source device type, when its file loaded.
    public var seed: UInt64?
    public var sourceType: String?
    /// The migration protocol of this entry (JSON `protocol`; v1 in reports written before v2).
    public var migrationProtocol: MigrationProtocolVersion = .v1

    /// The entry's identity (see `ScenarioEntry.entryName`): unique per scenario and protocol.
    public var entryName: String { Self.entryName(name, migrationProtocol) }

    /// `name` under v1, `name [v2]` under v2: the one rule of an entry's name.
    public static func entryName(_ name: String, _ migrationProtocol: MigrationProtocolVersion) -> String {
        migrationProtocol == .v1 ? name : "\(name) [\(migrationProtocol.rawValue)]"
    }

    /// How a scenario ended, as CI tools count it.
    public enum Status: String, Sendable, Codable {
        case passed, failed, error, skipped
    }

    public init(name: String, file: String, verdict: Verdict, report: MigrationReport?, diagnostics: [String] = [],
                durationSeconds: Double, skipped: String? = nil, error: String? = nil, lastStep: String? = nil) {
        self.name = name
        self.file = file
        self.verdict = verdict
        self.report = report
        self.diagnostics = diagnostics
        self.durationSeconds = durationSeconds
        self.skipped = skipped
        self.error = error
        self.lastStep = lastStep
    }

    public var status: Status {
        if skipped != nil { return .skipped }
        if error != nil { return .error }
        return verdict.passed ? .passed : .failed
    }

    /// Ran and met its expectation.
    public var passed: Bool { status == .passed }
    /// Ran and did not meet its expectation.
    public var failed: Bool { status == .failed }
    /// Could not be judged (see `error`).
    public var errored: Bool { status == .error }

    enum CodingKeys: String, CodingKey {
        case name, file, status, seed, sourceType, migrationProtocol = "protocol", verdict, report, diagnostics, durationSeconds, skipped, error, lastStep, accessLog
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        file = try c.decode(String.self, forKey: .file)
        verdict = try c.decodeIfPresent(Verdict.self, forKey: .verdict) ?? .pass
        report = try c.decodeIfPresent(MigrationReport.self, forKey: .report)
        diagnostics = try c.decode([String].self, forKey: .diagnostics)
        durationSeconds = try c.decode(Double.self, forKey: .durationSeconds)
        skipped = try c.decodeIfPresent(String.self, forKey: .skipped)
        error = try c.decodeIfPresent(String.self, forKey: .error)
        lastStep = try c.decodeIfPresent(String.self, forKey: .lastStep)
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed)
        sourceType = try c.decodeIfPresent(String.self, forKey: .sourceType)
        migrationProtocol = try c.decodeIfPresent(MigrationProtocolVersion.self, forKey: .migrationProtocol) ?? .v1
        accessLog = try c.decodeIfPresent(AccessLog.self, forKey: .accessLog)
    }

    /// A skipped scenario has no verdict: it was not judged, so it must not read as passing.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(file, forKey: .file)
        try c.encode(status, forKey: .status)
        try c.encodeIfPresent(seed, forKey: .seed)
        try c.encodeIfPresent(sourceType, forKey: .sourceType)
        try c.encode(migrationProtocol, forKey: .migrationProtocol)
        if status != .skipped { try c.encode(verdict, forKey: .verdict) }
        try c.encodeIfPresent(report, forKey: .report)
        try c.encode(diagnostics, forKey: .diagnostics)
        try c.encode(durationSeconds, forKey: .durationSeconds)
        try c.encodeIfPresent(skipped, forKey: .skipped)
        try c.encodeIfPresent(error, forKey: .error)
        try c.encodeIfPresent(lastStep, forKey: .lastStep)
        // Only with `run --html`: what the page draws, so that `mdevsim report` can draw it again.
        try c.encodeIfPresent(accessLog, forKey: .accessLog)
    }
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
    /// Keep each scenario's `AccessLog` in its result (what `run --html` draws).
    public var keepsAccessLog = false
    /// Writes what wall time decides as 0 (durations, trace `time_ns`), so that the same scenario
    /// gives byte-identical reports and traces run after run (`--reproducible`).
    public var reproducible = false
    /// The level of the mount's own log (device created/removed...): warnings and up by default.
    public var logLevel: Logger.Level = .warning
    /// In-process devices take their memory extents from one pool for the whole run, as a
    /// mount's devices do.
    private let extents = ExtentPool.standard()

    /// The default memory limit: 4GiB keeps `large-sparse` (16GiB) out of a default run. Its
    /// destination keeps every page as a reference (84 MB of RSS), but 16GiB cross the data
    /// section: 23-26 s through FUSE, 2.3-5.2 s in process (release build; README, Known limits).
    public static let defaultMaxMemory: UInt64 = 4 << 30

    public init(mode: Mode, mountpoint: String? = nil, maxMemory: UInt64? = ScenarioRunner.defaultMaxMemory) {
        self.mode = mode
        self.mountpoint = mountpoint
        self.maxMemory = maxMemory
    }

    /// Runs one entry. Never throws: every problem is a failed verdict or an error with its reason.
    public func run(_ entry: ScenarioEntry, progress: (@Sendable (String) -> Void)? = nil) -> ScenarioResult {
        var result = judge(entry, progress: progress)
        result.migrationProtocol = entry.migrationProtocol
        if case .success(let scenario) = entry.scenario {
            result.seed = scenario.seed
            result.sourceType = scenario.sourceType?.name ?? scenario.migration.source
        }
        return result
    }

    private func judge(_ entry: ScenarioEntry, progress: (@Sendable (String) -> Void)?) -> ScenarioResult {
        let start = ContinuousClock.now
        func seconds() -> Double {
            if reproducible { return 0 }
            let d = ContinuousClock.now - start
            return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        }
        let scenario: Scenario
        switch entry.scenario {
        case .failure(let error):
            let diagnostics = error.diagnostics.map(\.description)
            let first = "invalid scenario file: \(diagnostics.first ?? "invalid")\(diagnostics.count > 1 ? " (and \(diagnostics.count - 1) more)" : "")"
            // `error` only counts the diagnostics, which follow it once each.
            let reason = "invalid scenario file \(entry.file) (\(diagnostics.count) diagnostic\(diagnostics.count == 1 ? "" : "s"))"
            return ScenarioResult(name: entry.name, file: entry.file, verdict: Verdict(mismatches: [first]),
                                  report: nil, diagnostics: diagnostics, durationSeconds: seconds(), error: reason)
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
                let path = Self.tracePath(directory: traceDirectory, scenario: scenario.name, protocol: entry.migrationProtocol)
                // A bundled scenario has no file: a replay finds it by name (`ScenarioCatalog.bundledScenario`).
                let file = entry.file.hasPrefix(ScenarioCatalog.builtinPrefix) ? nil : entry.file
                let header = TraceHeader(scenario: scenario, scenarioPath: file, strict: false,
                                         recorder: mode == .fuse ? "run" : "in-process", mdevsimVersion: mdevsimVersion)
                do {
                    trace = try TraceWriter(path: path, header: header, reproducible: reproducible)
                } catch {
                    throw RunError("cannot write the trace \(path): \(error)")
                }
            }
            let report: MigrationReport
            let log = keepsAccessLog ? AccessLogRecorder(stopThreshold: scenario.migration.client.stopThreshold) : nil
            do {
                defer { trace?.close() }
                report = try migrate(scenario, protocol: entry.migrationProtocol, progress: progress, observer: AccessObserverFanOut.combine(trace.map { TraceRecorder(sink: $0) }, log))
            }
            if let trace, let e = trace.close() { throw RunError("writing the trace \(trace.path) failed: \(e)") }
            var result = ScenarioResult(name: scenario.name, file: entry.file, verdict: Judge.judge(report, against: scenario.expectation, protocol: entry.migrationProtocol),
                                        report: report, durationSeconds: seconds())
            result.accessLog = log?.log
            return result
        } catch {
            let reason = "could not run: \(error)"
            return ScenarioResult(name: scenario.name, file: entry.file, verdict: Verdict(mismatches: [reason]), report: nil,
                                  diagnostics: [], durationSeconds: seconds(), error: reason)
        }
    }

    /// The migration of one valid scenario, with the devices' violations attached.
    public func migrate(_ scenario: Scenario, protocol migrationProtocol: MigrationProtocolVersion = .v1,
                        progress: (@Sendable (String) -> Void)? = nil,
                        observer: (any AccessObserver)? = nil) throws -> MigrationReport {
        switch mode {
        case .inProcess:
            var migration = InProcessMigration(scenario: scenario)
            migration.observer = observer
            migration.extents = extents
            if migrationProtocol == .v2 { return try V2Migration.inProcess(migration, progress: progress) }
            return try migration.run(progress: progress).0
        case .fuse:
            guard let mountpoint else { throw RunError("no mountpoint for the FUSE mode") }
            var migration = FUSEMigration(scenario: scenario, mountpoint: mountpoint, observer: observer)
            migration.logLevel = logLevel
            migration.migrationProtocol = migrationProtocol
            return try migration.run(progress: progress)
        }
    }

    /// Where `run --trace DIRECTORY` puts a scenario's trace: `<name>.trace.jsonl` under v1 (as
    /// before v2), `<name>.v2.trace.jsonl` under v2, so the two entries of a scenario never
    /// overwrite each other.
    public static func tracePath(directory: String, scenario: String, protocol migrationProtocol: MigrationProtocolVersion = .v1) -> String {
        let base = scenario.replacingOccurrences(of: "/", with: "_")
        let name = migrationProtocol == .v1 ? base : "\(base).\(migrationProtocol.rawValue)"
        return (directory as NSString).appendingPathComponent("\(name).trace.jsonl")
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
    /// The UUIDs of the devices it creates (derived from the scenario unless given).
    public let identities: DeviceIdentities
    /// The level of the mount's own log.
    public var logLevel: Logger.Level = .warning
    /// The protocol the client migrates with: v1 (the region) or v2 (the device's v2 files).
    public var migrationProtocol: MigrationProtocolVersion = .v1

    public init(scenario: Scenario, mountpoint: String, observer: (any AccessObserver)? = nil, identities: DeviceIdentities? = nil) {
        self.scenario = scenario
        self.mountpoint = mountpoint
        self.observer = observer
        self.identities = identities ?? DeviceIdentities(scenario: scenario)
    }

    public func run(progress: (@Sendable (String) -> Void)? = nil) throws -> MigrationReport {
        guard let sourceType = scenario.sourceType else { throw InProcessMigration.UnknownType(name: scenario.migration.source) }
        guard let destinationType = scenario.destinationType else { throw InProcessMigration.UnknownType(name: scenario.migration.destination) }
        // The mount's own log (device created/removed) is noise in a run: warnings and up unless asked.
        var logger = Logger(label: "mdevsim.run")
        logger.logLevel = logLevel
        let watch = observer.map { ReleaseWatch(forwardingTo: $0) }
        let mount = try MdevMount(scenario: scenario, mountpoint: mountpoint, observer: watch, logger: logger)
        let token = ActiveMounts.shared.register(mount)
        defer {
            mount.stop()
            ActiveMounts.shared.unregister(token)
        }
        try mount.start()
        let sourceUUID = identities.source, destinationUUID = identities.destination
        try create(sourceUUID, type: sourceType.name)
        var removed = false
        defer {
            if !removed {
                remove(destinationUUID)
                remove(sourceUUID)
            }
        }
        try create(destinationUUID, type: destinationType.name)
        guard let s = mount.filesystem.device(sourceUUID), let d = mount.filesystem.device(destinationUUID) else {
            throw RunError("the devices disappeared from the mount before the migration")
        }
        if migrationProtocol == .v2 {
            _ = try V2Migration.types(scenario)
            guard let s2 = mount.filesystem.v2Device(sourceUUID), let d2 = mount.filesystem.v2Device(destinationUUID) else {
                throw RunError("the devices have no v2 files")
            }
            var report: MigrationReport
            do {
                let source = try FileV2Transport(directory: "\(root)/devices/\(sourceUUID)", name: "source")
                let destination = try FileV2Transport(directory: "\(root)/devices/\(destinationUUID)", name: "destination")
                var client = V2ReferenceClient(options: ClientOptions(plan: scenario.migration.client), linkBandwidth: sourceType.configuration.linkBandwidth)
                client.progress = progress
                report = client.migrate(from: source, to: destination)
            }
            // The transports (their state and data files) are closed here; no region was opened.
            remove(destinationUUID)
            remove(sourceUUID)
            removed = true
            report.attach(v2Source: s2, destination: d2)
            return report
        }
        let map = scenario.migration.client.access == .mmap
        let source = try transport(sourceUUID, name: "source", map: map)
        let destination = try transport(destinationUUID, name: "destination", map: map)
        var client = ReferenceClient(options: ClientOptions(plan: scenario.migration.client), linkBandwidth: sourceType.configuration.linkBandwidth)
        client.progress = progress
        var report = client.migrate(from: source, to: destination)
        // One device at a time: close, wait for its RELEASE, remove. The daemon serves requests
        // on several threads, so two RELEASEs in flight could reach a trace in either order; this
        // order is InProcessMigration's.
        destination.close()
        _ = watch?.waitForRelease(of: destinationUUID)
        remove(destinationUUID)
        source.close()
        _ = watch?.waitForRelease(of: sourceUUID)
        remove(sourceUUID)
        removed = true
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

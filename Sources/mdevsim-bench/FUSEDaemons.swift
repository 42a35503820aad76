// The two FUSE daemons `mdevsim-bench fuse` compares: the bare C daemon
// (Benchmarks/fuse/bare_region.c) and mdevsim's MdevFS, each mounted in a directory of a work
// directory, and always unmounted again.
import Conformance
import DeviceSimulator
import Foundation
import FUSEKit
import Glibc
import MdevFS
import Scenarios

/// The scenario the mdevsim daemon serves: one type, `benchConfiguration` (untouched memory, 4 KiB
/// pages, no dirtying, a 1 MiB data section offered for mmap, 1 MiB chunks).
func fuseBenchScenario(memory: UInt64, chunk: UInt64, instances: Int) -> Scenario {
    let config = benchConfiguration(memory: memory, chunk: chunk)
    return Scenario(name: "fuse-bench", description: "mdevsim-bench fuse",
                    types: [DeviceTypeSpec(configuration: config, instances: instances)],
                    migration: MigrationPlan(source: config.typeName))
}

/// One mounted daemon under test.
protocol BenchDaemon: AnyObject {
    var label: String { get }
    var mountpoint: String { get }
    /// The daemon's process, when it has its own.
    var processID: Int32? { get }
    /// Unmounts and ends the daemon; idempotent, never throws.
    func stop()
}

/// Whether `path` is a mountpoint right now (per /proc/self/mounts).
func isMounted(_ path: String) -> Bool {
    guard let text = try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8) else { return false }
    return text.split(separator: "\n").contains { line in
        let fields = line.split(separator: " ")
        return fields.count > 1 && fields[1] == Substring(path)
    }
}

/// Minor page faults of process `pid` so far (field 10 of /proc/PID/stat).
func minorFaults(pid: Int32) -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = text.lastIndex(of: ")") else { return nil }
    let fields = text[text.index(after: close)...].split(separator: " ")
    return fields.count > 7 ? Int(fields[7]) : nil
}

/// Waits until `path` (a file inside a fresh mount) can be stat'ed, i.e. the daemon answered INIT
/// and LOOKUP. Fails early if `alive` says the daemon is gone.
func waitForFile(_ path: String, timeout: Double = 15, alive: () -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    var st = stat()
    while Date() < deadline {
        if stat(path, &st) == 0 { return }
        guard alive() else { throw BenchError("the daemon serving \(path) exited before it was ready") }
        usleep(10_000)
    }
    throw BenchError("\(path) did not appear within \(Int(timeout)) s")
}

/// A daemon in a child process, stopped with SIGTERM (both daemons install libfuse's signal
/// handlers, which end the loop and unmount), then a lazy unmount and SIGKILL as a last resort.
final class ChildDaemon: BenchDaemon {
    let label: String
    let mountpoint: String
    let logPath: String
    private let process: Process
    private var stopped = false

    init(label: String, executable: String, arguments: [String], mountpoint: String, logPath: String) throws {
        self.label = label
        self.mountpoint = mountpoint
        self.logPath = logPath
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = FileHandle(forWritingAtPath: logPath)
        process.standardError = FileHandle(forWritingAtPath: logPath)
        try process.run()
        // For scripts/bench-fuse.sh's trap, should this process die without stopping the daemon.
        try? "\(process.processIdentifier)\n".write(toFile: pidPath, atomically: true, encoding: .utf8)
    }

    private var pidPath: String { logPath.hasSuffix(".log") ? String(logPath.dropLast(4)) + ".pid" : logPath + ".pid" }

    var processID: Int32? { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    func stop() {
        guard !stopped else { return }
        stopped = true
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            let deadline = Date().addingTimeInterval(10)
            while process.isRunning && Date() < deadline { usleep(10_000) }
        }
        if isMounted(mountpoint) { umount2(mountpoint, Int32(MNT_DETACH)) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        unlink(pidPath)
    }

    /// The daemon's own output (for error messages).
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    deinit { stop() }
}

/// mdevsim's MdevFS mounted in this process (the loop on a background thread).
final class InProcessMdevDaemon: BenchDaemon {
    let label: String
    let mountpoint: String
    private let mount: MdevMount
    private var stopped = false
    var processID: Int32? { nil }

    init(label: String, scenario: Scenario, mountpoint: String, strict: Bool, stagesAhead: Bool = true) throws {
        self.label = label
        self.mountpoint = mountpoint
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        mount = try MdevMount(scenario: scenario, mountpoint: mountpoint, strict: strict, stagesAhead: stagesAhead)
        do {
            try mount.start()
        } catch {
            mount.stop()
            throw error
        }
        guard mount.filesystem.mmapAvailable else {
            mount.stop()
            throw BenchError("FUSE_DIRECT_IO_ALLOW_MMAP was not negotiated on \(mountpoint): region files cannot be mapped")
        }
    }

    func stop() {
        guard !stopped else { return }
        stopped = true
        mount.stop()
        if isMounted(mountpoint) { umount2(mountpoint, Int32(MNT_DETACH)) }
    }

    deinit { stop() }
}

/// A device of an mdevsim mount, created through its type's `create` file.
struct MdevsimDevice {
    let mount: String
    let uuid: String
    var directory: String { "\(mount)/devices/\(uuid)" }
    var regionPath: String { "\(directory)/migration" }

    static func create(mount: String, type: String) throws -> MdevsimDevice {
        let uuid = UUID().uuidString.lowercased()
        do {
            try FileTransport.writeText(uuid + "\n", to: "\(mount)/mdev_supported_types/\(type)/create")
        } catch {
            throw BenchError("creating a \(type) device on \(mount) failed: \(error)")
        }
        return MdevsimDevice(mount: mount, uuid: uuid)
    }

    func text(_ file: String) -> String {
        ((try? String(contentsOfFile: "\(directory)/\(file)", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Removes the device; RELEASE of its region reaches the daemon after close() returned, so
    /// EBUSY is retried for a while.
    func remove() {
        for _ in 0..<200 {
            do {
                try FileTransport.writeText("1\n", to: "\(directory)/remove")
                return
            } catch {
                usleep(5_000)
            }
        }
    }
}

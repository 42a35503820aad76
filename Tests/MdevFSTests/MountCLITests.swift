import Conformance
import Foundation
import FUSEKit
import Glibc
import MigrationProtocol
import SystemPackage
import Testing
import TestSupport

/// `mdevsim mount`'s libfuse command line (`-f -d -s -o ...`), its own `-o` options, a
/// non-empty mountpoint, and `mdevsim unmount` of a busy mount, through the built executable.
@Suite(.serialized) struct MountCLITests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The mountinfo line of `path`: (source, fstype, mount options, super options).
    static func mountinfo(_ path: String) -> (source: String, type: String, options: [String], superOptions: [String])? {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ").map(String.init)
            guard f.count > 9, f[4] == path, let dash = f.firstIndex(of: "-"), dash + 3 < f.count else { continue }
            return (f[dash + 2], f[dash + 1], f[5].split(separator: ",").map(String.init), f[dash + 3].split(separator: ",").map(String.init))
        }
        return nil
    }

    func mountpoint() throws -> RunMountpoint { try RunMountpoint(prefix: "/tmp/mdevsim-cli.") }

    @Test func libfuseOptionsReachLibfuseAndTheKernel() throws {
        let mp = try mountpoint()
        defer { mp.remove() }
        let (status, output) = try MountCommandTests.mdevsim([
            "mount", mp.path, "-o", "ro,fsname=mdevsim-cli,subtype=mdevx", "-o", "default_permissions,max_idle_threads=2"])
        #expect(status == 0, "\(output)")
        defer { _ = try? MountCommandTests.mdevsim(["unmount", mp.path]) }
        let entry = try #require(Self.mountinfo(mp.path))
        #expect(entry.type == "fuse.mdevx")
        #expect(entry.source == "mdevsim-cli")
        #expect(entry.options.contains("ro"))
        #expect(entry.superOptions.contains("default_permissions"))
        // The kernel enforces ro: nothing can be created.
        #expect(throws: Errno.readOnlyFileSystem) {
            try FileTransport.writeText(UUID().uuidString.lowercased(), to: "\(mp.path)/mdev_supported_types/mdevsim-default/create")
        }
        let (down, text) = try MountCommandTests.mdevsim(["unmount", mp.path])
        #expect(down == 0, "\(text)")
    }

    /// `-o bdi_max_ratio=` sets the mount's share of the dirty-page budget (FUSE's is 1%), found
    /// from mountinfo without a lookup of the mount; a value out of 0...100 is a usage error.
    @Test func bdiMaxRatioSetsTheMountsDirtyShare() throws {
        let mp = try mountpoint()
        defer { mp.remove() }
        let (status, output) = try MountCommandTests.mdevsim(["mount", mp.path, "-o", "bdi_max_ratio=100"])
        #expect(status == 0, "\(output)")
        defer { _ = try? MountCommandTests.mdevsim(["unmount", mp.path]) }
        let line = try #require(try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8).split(separator: "\n")
            .first { $0.split(separator: " ").dropFirst(4).first.map(String.init) == mp.path })
        let device = String(line.split(separator: " ")[2])
        let ratio = try String(contentsOfFile: "/sys/class/bdi/\(device)/max_ratio", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        if geteuid() == 0 {
            #expect(ratio == "100", "\(output)")
        } else {
            #expect(ratio == "1" && output.contains("bdi_max_ratio=100 not applied"), "\(output)")
        }
        let (down, text) = try MountCommandTests.mdevsim(["unmount", mp.path])
        #expect(down == 0, "\(text)")
        for bad in ["bdi_max_ratio=101", "bdi_max_ratio=many"] {
            let (refused, why) = try MountCommandTests.mdevsim(["mount", mp.path, "-o", bad])
            #expect(refused == 64 && why.contains("expected a percent from 0 to 100"), "\(why)")
            #expect(MountHelpers.status(of: mp.path) == .notMounted)
        }
    }

    /// By default a saving device builds each next chunk while the client copies the staged one,
    /// and the next `data_offset` read takes it (`staged_ahead` in its `state`); with
    /// `-o no_stage_ahead` it stages at `data_offset` only. Either way the same chunks.
    @Test func noStageAheadStagesAtDataOffsetOnly() throws {
        var chunks: [Bool: [[UInt8]]] = [:]
        for option in [false, true] {
            let mp = try mountpoint()
            defer { mp.remove() }
            let (status, output) = try MountCommandTests.mdevsim(["mount", mp.path] + (option ? ["-o", "no_stage_ahead"] : []))
            #expect(status == 0, "\(output)")
            defer { _ = try? MountCommandTests.mdevsim(["unmount", mp.path]) }
            let uuid = "6b1f0c3e-9a55-4d2e-8f00-00000000000\(option ? 1 : 2)"
            try FileTransport.writeText(uuid + "\n", to: "\(mp.path)/mdev_supported_types/mdevsim-default/create")
            let fd = open("\(mp.path)/devices/\(uuid)/migration", O_RDWR)
            #expect(fd >= 0)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            func field(_ offset: off_t) -> UInt64 {
                var v: UInt64 = 0
                _ = pread(fd, &v, 8, offset)
                return UInt64(littleEndian: v)
            }
            var stop = UInt32(DeviceState.stopAndCopy.rawValue).littleEndian
            #expect(pwrite(fd, &stop, 4, 0) == 4)
            for _ in 0..<4 {
                _ = field(8)
                let offset = field(16), size = field(24)
                var chunk = [UInt8](repeating: 0, count: Int(size))
                #expect(pread(fd, &chunk, Int(size), off_t(offset)) == Int(size))
                chunks[option, default: []].append(chunk)
                // Time for the daemon to build the next chunk before it is asked for.
                usleep(100_000)
            }
            let ahead = try stateCounts("\(mp.path)/devices/\(uuid)", "staged_ahead")
            if option {
                #expect(ahead["taken"] == 0 && ahead["dropped"] == 0, "\(ahead)")
            } else {
                #expect(ahead["taken"] == 3 && ahead["dropped"] == 0, "\(ahead)")
            }
        }
        // Both devices have the same seed and type but not the same UUID: their page bytes
        // differ, their chunks' sizes and record layout do not.
        #expect(chunks[false]?.map(\.count) == chunks[true]?.map(\.count) && chunks[false]?.count == 4)
    }

    @Test func unknownOptionIsRefusedByLibfuse() throws {
        let mp = try mountpoint()
        defer { mp.remove() }
        let (status, output) = try MountCommandTests.mdevsim(["mount", mp.path, "-o", "no_such_option"])
        #expect(status != 0)
        #expect(output.contains("unknown option") && output.contains("no_such_option"), "\(output)")
        #expect(MountHelpers.status(of: mp.path) == .notMounted)
    }

    @Test func mdevsimsOwnOptionsAsDashO() throws {
        let mp = try mountpoint()
        defer { mp.remove() }
        let trace = mp.path + ".trace.jsonl"
        defer { unlink(trace) }
        let scenario = Self.repository.appendingPathComponent("scenarios/small-converges.yaml").path
        let (status, output) = try MountCommandTests.mdevsim(["mount", mp.path, "-o", "scenario=\(scenario),strict,trace=\(trace)"])
        #expect(status == 0, "\(output)")
        let types = try FileManager.default.contentsOfDirectory(atPath: "\(mp.path)/mdev_supported_types")
        #expect(types.count >= 1 && !types.contains("mdevsim-default"), "the scenario's types: \(types)")
        let (down, text) = try MountCommandTests.mdevsim(["unmount", mp.path])
        #expect(down == 0, "\(text)")
        let header = try String(contentsOfFile: trace, encoding: .utf8).split(separator: "\n").first.map(String.init) ?? ""
        #expect(header.contains("\"strict\":true") && header.contains("small-converges"), "\(header)")
    }

    @Test func debugAndSingleThreadedInTheForeground() throws {
        let mp = try mountpoint()
        defer { mp.remove() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: MountCommandTests.executable)
        process.arguments = ["mount", "-d", "-s", mp.path]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        var ready = false
        for _ in 0..<1500 where !ready {
            ready = FileManager.default.fileExists(atPath: "\(mp.path)/mdev_supported_types/mdevsim-default/name")
            if !ready { usleep(10_000) }
        }
        #expect(ready)
        #expect(process.isRunning, "-d implies -f: the command stays attached")
        // Single-threaded: libfuse serves on the main thread and starts no worker (FUSEKit's
        // waker is the only other thread), even under parallel requests.
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            _ = try? String(contentsOfFile: "\(mp.path)/mdev_supported_types/mdevsim-default/description", encoding: .utf8)
        }
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(process.processIdentifier)/task")
        #expect(tasks.count <= 2, "threads: \(tasks.count)")
        let (down, text) = try MountCommandTests.mdevsim(["unmount", mp.path])
        #expect(down == 0, "\(text)")
        process.waitUntilExit()
        let debug = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(debug.contains("opcode: INIT"), "libfuse's debug output: \(debug.prefix(300))")
        #expect(debug.contains("opcode: LOOKUP"))
    }

    @Test func autoUnmountClearsTheMountOfAKilledDaemon() throws {
        // fusermount3 3.14's watchdog decides to unmount by reading /proc/mounts line by line
        // in a cloned namespace (libfuse later replaced that with listmount, commit bf3dd153,
        // because such reads are not atomic): under the churn of parallel mount suites it was
        // once seen to leave the mount. A second, fresh attempt tells that apart from a
        // watchdog that never works here; each failed attempt says what the watchdog was doing.
        var failures: [String] = []
        for _ in 0..<2 {
            guard let failure = try Self.killDaemonAndWaitForTheWatchdog() else { break }
            failures.append(failure)
        }
        #expect(failures.count < 2, "auto_unmount left the mount twice: \(failures.joined(separator: " | "))")
    }

    /// One mount with auto_unmount whose daemon is SIGKILLed; nil once libfuse's fusermount3
    /// watchdog has unmounted it, otherwise what was seen (the stale mount is then cleared).
    static func killDaemonAndWaitForTheWatchdog() throws -> String? {
        let mp = try RunMountpoint(prefix: "/tmp/mdevsim-cli.")
        defer { mp.remove() }
        let (status, output) = try MountCommandTests.mdevsim(["mount", mp.path, "-o", "auto_unmount"])
        guard status == 0, let pid = MountCommandTests.daemonPID(fromMountOutput: output) else {
            return "mount failed (\(status)): \(output)"
        }
        let watchdog = watchdogPID(of: mp.path)
        kill(pid, SIGKILL)
        var state = MountHelpers.status(of: mp.path)
        for _ in 0..<3000 where state != .notMounted {
            usleep(10_000)
            state = MountHelpers.status(of: mp.path)
        }
        if state == .notMounted { return nil }
        let seen = watchdog.map { w in
            kill(w, 0) == 0
                ? "watchdog \(w) alive: fds \((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(w)/fd"))?.sorted() ?? []) stat \(procText("/proc/\(w)/stat")) wchan \(procText("/proc/\(w)/wchan"))"
                : "watchdog \(w) gone"
        } ?? "no fusermount3 watchdog found before the kill"
        return "after 30 s the mount is \(state); \(seen)"
    }

    /// The fusermount3 process watching `mountpoint` (its command line ends with it). Only
    /// fusermount3 processes have their cmdline read: another test's stuck process could block it.
    static func watchdogPID(of mountpoint: String) -> pid_t? {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(name), procText("/proc/\(name)/comm") == "fusermount3" else { continue }
            let arguments = procText("/proc/\(name)/cmdline").split(separator: "\0")
            if arguments.last.map(String.init) == mountpoint { return pid }
        }
        return nil
    }

    static func procText(_ path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
    }

    @Test func aMappingAloneKeepsTheMountBusy() throws {
        let mp = try mountpoint()
        defer { mp.remove() }
        let (status, output) = try MountCommandTests.mdevsim(["mount", mp.path])
        #expect(status == 0, "\(output)")
        let uuid = UUID().uuidString.lowercased()
        try FileTransport.writeText(uuid, to: "\(mp.path)/mdev_supported_types/mdevsim-default/create")
        let fd = open("\(mp.path)/devices/\(uuid)/migration", O_RDWR)
        #expect(fd >= 0)
        let map = mmap(nil, 4096, PROT_READ, MAP_SHARED, fd, 4096)
        close(fd)
        #expect(map != MAP_FAILED)
        let (refused, message) = try MountCommandTests.mdevsim(["unmount", "--timeout", "30", mp.path])
        #expect(refused != 0)
        #expect(message.contains("pid \(getpid()) (") && message.contains("mapped file") && !message.contains("open file"), "\(message)")
        if let map, map != MAP_FAILED { munmap(map, 4096) }
        let (down, text) = try MountCommandTests.mdevsim(["unmount", mp.path])
        #expect(down == 0, "\(text)")
    }

    @Test func nonEmptyMountpointIsMountedOverWithAWarning() throws {
        let mp = try mountpoint()
        defer { unlink("\(mp.path)/keep.txt"); mp.remove() }
        try "x".write(toFile: "\(mp.path)/keep.txt", atomically: false, encoding: .utf8)
        let (status, output) = try MountCommandTests.mdevsim(["mount", mp.path])
        #expect(status == 0, "\(output)")
        #expect(output.contains("warning: \(mp.path) is not empty: the mount hides its 1 entry (keep.txt) until it is unmounted"), "\(output)")
        #expect(!FileManager.default.fileExists(atPath: "\(mp.path)/keep.txt"))
        // When the command has returned, the daemon has named itself and left its pid file
        // (both done in the child before fuse_daemonize lets the parent exit).
        let pid = try #require(MountCommandTests.daemonPID(fromMountOutput: output))
        let pidFile = "/tmp/mdevsim-\(getuid())/\(mp.path.replacingOccurrences(of: "/", with: "%")).pid"
        #expect((try? String(contentsOfFile: pidFile, encoding: .utf8)) == "\(pid)\n")
        let (down, text) = try MountCommandTests.mdevsim(["unmount", mp.path])
        #expect(down == 0, "\(text)")
        #expect(FileManager.default.fileExists(atPath: "\(mp.path)/keep.txt"), "visible again")
    }

    @Test func busyUnmountIsRefusedWithTheHoldersNamedUnlessLazy() throws {
        let mp = try mountpoint()
        defer { mp.remove() }
        let (status, output) = try MountCommandTests.mdevsim(["mount", mp.path])
        #expect(status == 0, "\(output)")
        let daemon = MountCommandTests.daemonPID(fromMountOutput: output)
        // Holders: this process (an open file), a `sleep` whose working directory is in the mount.
        let fd = open("\(mp.path)/mdev_supported_types/mdevsim-default/name", O_RDONLY)
        #expect(fd >= 0)
        let sleeper = Process()
        sleeper.executableURL = URL(fileURLWithPath: "/bin/sleep")
        sleeper.arguments = ["30"]
        sleeper.currentDirectoryURL = URL(fileURLWithPath: "\(mp.path)/mdev_supported_types")
        try sleeper.run()
        defer { if sleeper.isRunning { kill(sleeper.processIdentifier, SIGKILL) } }

        let started = Date()
        let (refused, message) = try MountCommandTests.mdevsim(["unmount", "--timeout", "30", mp.path])
        #expect(refused != 0)
        #expect(message.contains("busy"), "\(message)")
        #expect(message.contains("pid \(getpid()) (") && message.contains("open file"), "\(message)")
        #expect(message.contains("pid \(sleeper.processIdentifier) (sleep: working directory)"), "\(message)")
        #expect(message.contains("mdevsim unmount --lazy \(mp.path)"))
        #expect(Date().timeIntervalSince(started) < 15, "refused at once, not after waiting out --timeout")
        #expect(MountCommandTests.mountedHere(mp.path), "still mounted and served")
        #expect(try String(contentsOfFile: "\(mp.path)/mdev_supported_types/mdevsim-default/name", encoding: .utf8) == "mdevsim-default\n")

        // Lazy: detached at once; the holders keep what they hold, the daemon exits after them.
        let (lazy, text) = try MountCommandTests.mdevsim(["unmount", "-z", mp.path])
        #expect(lazy == 0, "\(text)")
        #expect(!MountCommandTests.mountedHere(mp.path))
        var buffer = [UInt8](repeating: 0, count: 64)
        #expect(pread(fd, &buffer, 64, 0) == 16, "the open file still reads")
        close(fd)
        kill(sleeper.processIdentifier, SIGKILL)
        sleeper.waitUntilExit()
        if let daemon {
            var gone = false
            for _ in 0..<1500 where !gone {
                gone = kill(daemon, 0) != 0
                if !gone { usleep(10_000) }
            }
            #expect(gone, "the daemon exits once the last holder let go")
        }
    }
}

extension MountCommandTests {
    static func mountedHere(_ path: String) -> Bool {
        if case .mounted = MountHelpers.status(of: path) { return true }
        return false
    }
}

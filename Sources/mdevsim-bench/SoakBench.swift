// `mdevsim-bench soak`: one mount driven for a long time (10^6 header accesses from several
// threads, then 1,000 migrations), with the daemon's RSS, open descriptors and threads printed at
// intervals. They must stay flat: a leak per access or per device shows up as growth.
import ArgumentParser
import Conformance
import Foundation
import Glibc
import MdevFS

extension Bench {
    struct Soak: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Soak one mount: 10^6 header accesses and 1,000 migrations, printing the daemon's RSS, fds and threads.",
            discussion: "Fails (exit 1) when, over the second half of either phase, the daemon's descriptors or threads grew or its RSS grew by more than 8 MiB.")

        @Option(help: "Header accesses in all (8-byte preads/pwrites of the header), split over --threads devices.")
        var accesses: Int = 1_000_000

        @Option(help: "Threads (each with its own device) driving the header accesses.")
        var threads: Int = 4

        @Option(help: "Migrations (create two devices, migrate with the reference client, compare digests, remove).")
        var migrations: Int = 1_000

        @Option(help: "Device memory of each migration.")
        var memory: ByteSize = ByteSize(1 << 20)

        @Option(help: "Samples printed per phase.")
        var samples: Int = 10

        @Option(help: .hidden) var serve: String?

        static let chunk: UInt64 = 256 << 10

        func validate() throws {
            guard accesses >= 1, threads >= 1, migrations >= 1, samples >= 1 else { throw ValidationError("counts must be at least 1") }
        }

        func run() throws {
            let scenario = fuseBenchScenario(memory: memory.bytes, chunk: Self.chunk, instances: max(16, threads + 2))
            if let serve {
                let mount = try MdevMount(scenario: scenario, mountpoint: serve, handleSignals: true)
                _ = try mount.run()
                return
            }
            try SoakRun(options: self).run()
        }
    }
}

/// The daemon's figures, from /proc/PID.
struct DaemonSample: CustomStringConvertible {
    var rssKiB: Int
    var fds: Int
    var threads: Int

    init?(pid: Int32) {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        func field(_ name: String) -> Int? {
            // "VmRSS:\t   1234 kB", "Threads:\t10"
            status.split(separator: "\n").first { $0.hasPrefix(name + ":") }
                .flatMap { line in Int(line.dropFirst(name.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "") }
        }
        guard let rss = field("VmRSS"), let threads = field("Threads"),
              let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count else { return nil }
        rssKiB = rss
        self.fds = fds
        self.threads = threads
    }

    var description: String { String(format: "RSS %.1f MiB, %d fds, %d threads", Double(rssKiB) / 1024, fds, threads) }
}

struct SoakRun {
    let options: Bench.Soak

    func run() throws {
        let workdir = FileManager.default.temporaryDirectory.appendingPathComponent("mdevsim-soak.\(getpid())").path
        try FileManager.default.createDirectory(atPath: workdir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: workdir) }
        let mountpoint = "\(workdir)/mount"
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let daemon = try ChildDaemon(label: "mdevsim", executable: exe,
                                     arguments: ["soak", "--serve", mountpoint, "--memory", "\(options.memory.bytes)", "--threads", "\(options.threads)"],
                                     mountpoint: mountpoint, logPath: "\(workdir)/daemon.log")
        defer { daemon.stop() }
        let type = "\(mountpoint)/mdev_supported_types/\(Bench.FUSE.typeName)"
        try waitForFile("\(type)/create", alive: { daemon.isRunning })
        guard let pid = daemon.processID else { throw BenchError("no daemon pid") }
        var all: [DaemonSample] = []
        func sample(_ label: String) throws {
            guard let s = DaemonSample(pid: pid) else { throw BenchError("the daemon is gone (\(label)); its log: \(daemon.log.suffix(2000))") }
            all.append(s)
            print("soak: \(label): \(s)")
            fflush(nil)
        }
        try sample("start")
        let start = monotonicNanoseconds()

        // 1. Header accesses: each thread its own device, read and write the header in a loop.
        let devices = try (0..<options.threads).map { _ in try MdevsimDevice.create(mount: mountpoint, type: Bench.FUSE.typeName) }
        let perThread = options.accesses / options.threads
        let step = max(1, perThread / options.samples)
        var done = 0
        while done < perThread {
            let n = min(step, perThread - done)
            let failures = headerRound(devices, accesses: n)
            if failures > 0 { throw BenchError("\(failures) header accesses failed") }
            done += n
            try sample("\(done * options.threads) header accesses")
        }
        for d in devices { d.remove() }
        let headerSamples = all.count - 1
        let headerSeconds = Double(monotonicNanoseconds() - start) / 1e9

        // 2. Migrations through the mount, each with fresh devices.
        let migrationStart = monotonicNanoseconds()
        let every = max(1, options.migrations / options.samples)
        for i in 1...options.migrations {
            let source = try MdevsimDevice.create(mount: mountpoint, type: Bench.FUSE.typeName)
            let destination = try MdevsimDevice.create(mount: mountpoint, type: Bench.FUSE.typeName)
            // The transports (descriptors, mappings) end with this call, before the devices go.
            func migrate() throws -> MigrationReport {
                let s = try FileTransport(directory: source.directory, name: "source")
                let d = try FileTransport(directory: destination.directory, name: "destination")
                return ReferenceClient().migrate(from: s, to: d)
            }
            let report = try migrate()
            guard report.outcome == "completed", report.digestsMatch else {
                throw BenchError("migration \(i): \(report.outcome), digests \(report.digestsMatch ? "equal" : "differ") \(report.failure.map { "\($0.step): \($0.message)" } ?? "")")
            }
            source.remove()
            destination.remove()
            if i % every == 0 || i == options.migrations { try sample("\(i) migrations") }
        }
        let migrationSeconds = Double(monotonicNanoseconds() - migrationStart) / 1e9
        let total = perThread * options.threads
        print(String(format: "soak: %d header accesses in %.1f s (%.0f per second, %d threads); %d migrations of %llu KiB in %.1f s",
                     total, headerSeconds, Double(total) / headerSeconds, options.threads,
                     options.migrations, options.memory.bytes >> 10, migrationSeconds))

        // Flat: each phase's second half against its middle, so that warm-up (libfuse's worker
        // threads, the extent pool, malloc's arenas) does not count as growth.
        var flat = true
        for (phase, samples) in [("header accesses", Array(all[1...headerSamples])), ("migrations", Array(all[(headerSamples + 1)...]))] {
            guard samples.count >= 2 else { continue }
            let middle = samples[(samples.count - 1) / 2], last = samples[samples.count - 1]
            let grew = last.rssKiB - middle.rssKiB
            print("soak: \(phase), second half: RSS \(grew >= 0 ? "+" : "")\(grew) KiB, fds \(middle.fds) -> \(last.fds), threads \(middle.threads) -> \(last.threads)")
            if last.fds > middle.fds || last.threads > middle.threads || grew > 8 << 10 { flat = false }
        }
        if !flat {
            print("soak: NOT flat")
            throw ExitCode.failure
        }
        print("soak: flat")
    }

    /// `accesses` header accesses on each device, one thread per device; returns failures.
    private func headerRound(_ devices: [MdevsimDevice], accesses: Int) -> Int {
        let failures = AtomicCounter()
        DispatchQueue.concurrentPerform(iterations: devices.count) { i in
            let fd = open(devices[i].regionPath, O_RDWR | O_CLOEXEC)
            guard fd >= 0 else { failures.add(accesses); return }
            defer { close(fd) }
            var value: UInt64 = 0
            for k in 0..<accesses {
                let n: Int
                switch k % 4 {
                case 0: n = pread(fd, &value, 8, Int(Field.pendingBytes)) == 8 ? 0 : 1
                case 1: n = pread(fd, &value, 4, Int(Field.deviceState)) == 4 ? 0 : 1
                case 2:
                    var running = UInt32(1).littleEndian
                    n = pwrite(fd, &running, 4, Int(Field.deviceState)) == 4 ? 0 : 1
                default: n = pread(fd, &value, 8, Int(Field.dataSize)) == 8 ? 0 : 1
                }
                if n != 0 { failures.add(1) }
            }
        }
        return failures.value
    }
}

/// A counter several threads add to.
final class AtomicCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add(_ n: Int) { lock.withLock { count += n } }
    var value: Int { lock.withLock { count } }
}

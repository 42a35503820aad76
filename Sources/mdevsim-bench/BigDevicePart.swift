// `mdevsim-bench fuse`'s big-device figure (issue 15, "devices bigger than the machine"): one
// device of more memory than the machine has (64 GiB by default, random contents, a running
// device dirtying a hot set) migrated end to end through one mdevsim mount by the C client's
// pread/pwrite loop (pre-copy pass, then stop-and-copy), with the daemon's peak RSS, the rate,
// and equal digests. It fits because a destination keeps the pages that arrive as the source's
// power-on contents as references (`DeviceMemory`), storing only what the source rewrote.
import Dispatch
import Foundation
import DeviceSimulator
import Glibc
import Scenarios

struct BigDeviceFigure: Codable, Sendable {
    var deviceBytes: UInt64
    /// The scenario the daemon served (its YAML), so the figure can be reproduced by hand.
    var scenario: String
    var bytesMoved: UInt64
    var precopyChunks: Int
    var stopAndCopyBytes: UInt64
    var seconds: Double
    var gbPerSecond: Double
    /// The daemon's peak resident memory (VmHWM) over the whole run, both devices included.
    var daemonPeakRSSBytes: UInt64
    /// The daemon's peak with both devices created, before the migration.
    var daemonRSSBeforeBytes: UInt64
    /// The goal: under this per side (the daemon holds both sides).
    var goalBytesPerSide: UInt64
    var met: Bool
    var digestsMatch: Bool
    /// Both digests, read at the same time from two threads (SHA-256 over all of memory).
    var digestSeconds: Double
}

struct BigDevicePart {
    static let typeName = "mdevsim-big"
    /// The scenario's chunk (the C client's 1 MiB buffer) and page size (the default).
    static let chunkBytes = 1 << 20
    static let pageBytes: UInt64 = 4096
    let workdir: String
    let clientPath: String
    let memory: UInt64
    let out: Printer

    /// 1 MiB chunks (the C client's buffer); the device rewrites 64 MiB/s of device time, 99% of it
    /// in a hot set of 0.1% of its pages, as a busy device with a small working set would.
    var scenarioText: String {
        """
        name: big-device
        description: mdevsim-bench fuse, the big-device figure
        types:
          - type: \(Self.typeName)
            instances: 2
            memory: \(memory)B
            data_section: \(Self.chunkBytes)B
            chunk_size: \(Self.chunkBytes)B
            dirty: {rate: 64MiB/s, pattern: hot-set, hot_fraction: 0.001, hot_share: 0.99}
        """
    }

    func run() throws -> BigDeviceFigure {
        let file = "\(workdir)/big-device.yaml"
        try scenarioText.write(toFile: file, atomically: true, encoding: .utf8)
        let mountpoint = "\(workdir)/mdevsim-big"
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let daemon = try ChildDaemon(label: "mdevsim-big", executable: exe, arguments: ["fuse", "--serve", mountpoint, "--serve-scenario", file],
                                     mountpoint: mountpoint, logPath: "\(workdir)/mdevsim-big.log")
        defer { daemon.stop() }
        try waitForFile("\(mountpoint)/mdev_supported_types/\(Self.typeName)/create", alive: { daemon.isRunning })
        guard let pid = daemon.processID else { throw BenchError("big device: the daemon has no process id") }

        let source = try MdevsimDevice.create(mount: mountpoint, type: Self.typeName)
        let destination = try MdevsimDevice.create(mount: mountpoint, type: Self.typeName)
        defer { source.remove(); destination.remove() }
        let client = try CRegionClient(executable: clientPath)
        defer { client.stop() }
        try client.open(0, source.regionPath, map: false)
        try client.open(1, destination.regionPath, map: false)
        try client.setDeviceState(1, UInt32(StateBits.resuming))
        let before = Self.status(pid, "VmHWM") ?? 0
        out.progress("big device: migrating \(ByteSize.format(memory)) through \(mountpoint) (pread/pwrite, 1 MiB chunks)")

        let start = monotonicNanoseconds()
        try client.setDeviceState(0, UInt32(StateBits.preCopy))
        // One pass over memory (the pages the device re-dirties meanwhile keep pending_bytes above
        // 0, so the pass is bounded by chunks): as many chunks as the stream needs for its pages.
        let pagesPerChunk = (Self.chunkBytes - StreamFormat.chunkRecordSize) / StreamFormat.pageRecordSize(pageSize: Self.pageBytes)
        let passChunks = Int(memory / Self.pageBytes) / pagesPerChunk + 1
        let precopy = try client.readWriteLoop(source: 0, destination: 1, maxChunks: passChunks)
        out.progress(String(format: "big device: pre-copy pass %@ in %.1f s, daemon RSS peak so far %@", ByteSize.format(precopy.bytes),
                            Double(monotonicNanoseconds() - start) / 1e9, ByteSize.format(Self.status(pid, "VmHWM") ?? 0)))
        try client.setDeviceState(0, UInt32(StateBits.stopAndCopy))
        let stop = try client.readWriteLoop(source: 0, destination: 1, maxChunks: 0)
        try client.setDeviceState(0, UInt32(StateBits.stop))
        try client.setDeviceState(1, UInt32(StateBits.running))
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        let peak = Self.status(pid, "VmHWM") ?? 0

        // The two digests at once: each is a SHA-256 over all of a device's memory.
        out.progress("big device: reading both digests")
        let digestStart = monotonicNanoseconds()
        let digests = DigestPair()
        let group = DispatchGroup()
        for (i, device) in [source, destination].enumerated() {
            group.enter()
            Thread.detachNewThread {
                digests.set(i, device.text("digest"))
                group.leave()
            }
        }
        group.wait()
        let digestSeconds = Double(monotonicNanoseconds() - digestStart) / 1e9
        let (a, b) = digests.values
        let moved = precopy.bytes + stop.bytes
        let perSide: UInt64 = 512 << 20
        return BigDeviceFigure(deviceBytes: memory, scenario: scenarioText, bytesMoved: moved, precopyChunks: precopy.chunks,
                               stopAndCopyBytes: stop.bytes, seconds: seconds, gbPerSecond: seconds > 0 ? Double(moved) / seconds / 1e9 : 0,
                               daemonPeakRSSBytes: peak, daemonRSSBeforeBytes: before, goalBytesPerSide: perSide,
                               met: peak < 2 * perSide, digestsMatch: !a.isEmpty && a == b, digestSeconds: digestSeconds)
    }

    /// A `VmXXX:` figure of /proc/PID/status, in bytes.
    static func status(_ pid: Int32, _ key: String) -> UInt64? { ProcessFigures.kibLine(key, of: "/proc/\(pid)/status") }
}

/// Two digest strings written by two threads and read after both joined.
private final class DigestPair: @unchecked Sendable {
    private let lock = NSLock()
    private var texts = ["", ""]
    func set(_ i: Int, _ text: String) { lock.lock(); texts[i] = text; lock.unlock() }
    var values: (String, String) { lock.lock(); defer { lock.unlock() }; return (texts[0], texts[1]) }
}

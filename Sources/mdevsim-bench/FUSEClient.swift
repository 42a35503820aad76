// The client side of `mdevsim-bench fuse`: the same syscalls against either daemon.
import Foundation
import Glibc

@inline(__always) func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// Field offsets of the v1 header (the bare daemon uses the same ones).
enum Field {
    static let deviceState: off_t = 0
    static let pendingBytes: off_t = 8
    static let dataOffset: off_t = 16
    static let dataSize: off_t = 24
    static let dataSection: off_t = 4096
}

/// A region file opened O_RDWR, with its 1 MiB data section mapped MAP_SHARED.
final class RegionClient {
    let path: String
    let fd: Int32
    private(set) var map: UnsafeMutableRawPointer?
    let sectionSize: Int

    init(path: String, sectionSize: Int, mapSection: Bool) throws {
        self.path = path
        self.sectionSize = sectionSize
        fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw BenchError("open \(path): errno \(errno) (\(String(cString: strerror(errno))))") }
        if mapSection {
            let p = mmap(nil, sectionSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, Field.dataSection)
            guard let p, p != MAP_FAILED else {
                let e = errno
                close(fd)
                throw BenchError("mmap(MAP_SHARED) of \(path)'s data section: errno \(e) (\(String(cString: strerror(e))))"
                                 + (e == ENODEV ? ": FUSE_DIRECT_IO_ALLOW_MMAP was not negotiated" : ""))
            }
            map = p
        }
    }

    deinit {
        if let map { munmap(map, sectionSize) }
        close(fd)
    }

    @inline(__always) func read8(_ offset: off_t) throws -> UInt64 {
        var value: UInt64 = 0
        let n = pread(fd, &value, 8, offset)
        guard n == 8 else { throw BenchError("pread of 8 bytes at \(offset) of \(path) returned \(n) (errno \(errno))") }
        return UInt64(littleEndian: value)
    }

    @inline(__always) func write8(_ offset: off_t, _ value: UInt64) throws {
        var v = value.littleEndian
        let n = pwrite(fd, &v, 8, offset)
        guard n == 8 else { throw BenchError("pwrite of 8 bytes at \(offset) of \(path) returned \(n) (errno \(errno))") }
    }

    func setDeviceState(_ value: UInt32) throws {
        var v = value.littleEndian
        let n = pwrite(fd, &v, 4, Field.deviceState)
        guard n == 4 else { throw BenchError("device_state write \(value) to \(path) failed (errno \(errno))") }
    }

    /// Touches the mapping once (a page-fault READ): mdevsim keeps the page cache coherent only
    /// once it has seen the client use a mapping.
    func touchMapping() {
        guard let map else { return }
        var byte: UInt8 = 0
        withUnsafeMutablePointer(to: &byte) { dst in _ = memcpy(dst, map, 1) }
        _ = byte
    }
}

// MARK: - 1. header access latency

/// Nanoseconds per 8-byte pread at offset 8, over `count` accesses.
func headerLatency(_ region: RegionClient, count: Int) throws -> Double {
    let start = monotonicNanoseconds()
    for _ in 0..<count { _ = try region.read8(Field.pendingBytes) }
    return Double(monotonicNanoseconds() - start) / Double(count)
}

// MARK: - 2. chunk-sized (~1 MiB) pread throughput

/// GB/s of `count` preads of `size` bytes at the start of the data section.
func preadThroughput(_ region: RegionClient, size: Int, count: Int, buffer: UnsafeMutableRawPointer) throws -> Double {
    let start = monotonicNanoseconds()
    for _ in 0..<count {
        let n = pread(region.fd, buffer, size, Field.dataSection)
        guard n == size else { throw BenchError("pread of \(size) bytes at 4096 of \(region.path) returned \(n) (errno \(errno))") }
    }
    return Double(size) * Double(count) / Double(monotonicNanoseconds() - start)
}

// MARK: - 3. save + resume through the mapping

/// Time of one save+resume loop, split by step (nanoseconds summed over the chunks).
struct TransferTiming: Codable, Sendable {
    var chunks = 0
    var bytes: UInt64 = 0
    var totalNs: UInt64 = 0
    /// Source `data_offset` read: the daemon pushes the chunk into the page cache (notify_store).
    var saveStoreNs: UInt64 = 0
    /// Destination `data_offset` read: the daemon pre-fills the page cache (notify_store).
    var resumePrefillNs: UInt64 = 0
    /// memcpy from the source mapping to the destination mapping.
    var copyNs: UInt64 = 0
    /// Destination `data_size` write: held while the daemon retrieves the stores, then applied.
    var resumeRetrieveNs: UInt64 = 0
    /// Source `data_size` and `pending_bytes` reads.
    var otherHeaderNs: UInt64 = 0
    /// Minor page faults the client took during the loop (mapping accesses that missed a PTE).
    var clientFaults = 0
    /// Minor page faults the daemon process took during the loop (nil: not a separate process).
    var daemonFaults: Int?

    var gbPerSecond: Double { totalNs > 0 ? Double(bytes) / Double(totalNs) : 0 }
    func microsecondsPerChunk(_ ns: UInt64) -> Double { chunks > 0 ? Double(ns) / Double(chunks) / 1000 : 0 }
}

/// The VMM's chunk loop, through the mappings: source `data_offset`, `data_size`; destination
/// `data_offset`; memcpy mapping to mapping; destination `data_size` write; source `pending_bytes`.
/// Stops when `pending_bytes` reads 0 or after `maxChunks` chunks.
func transferLoop(source: RegionClient, destination: RegionClient, maxChunks: Int, daemon: Int32? = nil) throws -> TransferTiming {
    guard let sourceMap = source.map, let destinationMap = destination.map else { throw BenchError("the data sections are not mapped") }
    let section = UInt64(source.sectionSize)
    var t = TransferTiming()
    let daemonBefore = daemon.flatMap { minorFaults(pid: $0) }
    let faultsBefore = ProcessFigures.minorFaults
    let start = monotonicNanoseconds()
    var a = start
    var pending = try source.read8(Field.pendingBytes)
    var b = monotonicNanoseconds()
    t.otherHeaderNs += b - a
    while pending > 0 && t.chunks < maxChunks {
        a = b
        let offset = try source.read8(Field.dataOffset)
        b = monotonicNanoseconds(); t.saveStoreNs += b - a; a = b
        let size = try source.read8(Field.dataSize)
        b = monotonicNanoseconds(); t.otherHeaderNs += b - a; a = b
        guard size > 0 else { break }
        let destinationOffset = try destination.read8(Field.dataOffset)
        b = monotonicNanoseconds(); t.resumePrefillNs += b - a; a = b
        guard offset >= 4096, destinationOffset >= 4096, offset - 4096 + size <= section, destinationOffset - 4096 + size <= section else {
            throw BenchError("data_offset \(offset) / \(destinationOffset) with data_size \(size) is outside the mapped data section")
        }
        memcpy(destinationMap + Int(destinationOffset - 4096), sourceMap + Int(offset - 4096), Int(size))
        b = monotonicNanoseconds(); t.copyNs += b - a; a = b
        try destination.write8(Field.dataSize, size)
        b = monotonicNanoseconds(); t.resumeRetrieveNs += b - a; a = b
        pending = try source.read8(Field.pendingBytes)
        b = monotonicNanoseconds(); t.otherHeaderNs += b - a
        t.chunks += 1
        t.bytes += size
    }
    t.totalNs = b - start
    t.clientFaults = Int(ProcessFigures.minorFaults - faultsBefore)
    if let daemon, let before = daemonBefore, let after = minorFaults(pid: daemon) { t.daemonFaults = after - before }
    return t
}

/// memcpy of `chunks` x `size` bytes between two pre-faulted private buffers (the same 1 MiB
/// pieces the transfer loop copies, cache-resident like the mappings' pages). Each piece differs
/// (one byte changes) and is observed, so the compiler cannot drop repeated copies.
func memcpyGBps(size: Int, chunks: Int) -> Double {
    let source = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 4096)
    let destination = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 4096)
    defer { source.deallocate(); destination.deallocate() }
    memset(source, 0x5A, size)
    memset(destination, 0, size)
    var check: UInt64 = 0
    let start = monotonicNanoseconds()
    for i in 0..<chunks {
        source.storeBytes(of: UInt8(truncatingIfNeeded: i), toByteOffset: (i &* 4099) % size, as: UInt8.self)
        opaqueCopy(destination, source, size)
        check &+= UInt64(destination.load(fromByteOffset: (i &* 4099) % size, as: UInt8.self))
    }
    let elapsed = monotonicNanoseconds() - start
    blackHole(check)
    return Double(size) * Double(chunks) / Double(elapsed)
}

@inline(never) func opaqueCopy(_ destination: UnsafeMutableRawPointer, _ source: UnsafeRawPointer, _ count: Int) {
    memcpy(destination, source, count)
}

@inline(never) func blackHole<T>(_ value: T) { withExtendedLifetime(value) {} }

// A Swift region-file client (`mdevsim-bench trace`), and the figures of the C client's loops.
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
}

// MARK: - save + resume through the mapping (timed by the C client, CRegionClient)

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

    /// The steps of a chunk as the reports name them, in the loop's order, and the whole.
    static let steps: [(name: String, ns: @Sendable (TransferTiming) -> UInt64)] = [
        ("source data_offset read (notify_store of the chunk)", { $0.saveStoreNs }),
        ("destination data_offset read (pre-fill notify_store)", { $0.resumePrefillNs }),
        ("memcpy mapping -> mapping", { $0.copyNs }),
        ("destination data_size write (notify_retrieve, apply)", { $0.resumeRetrieveNs }),
        ("source data_size + pending_bytes reads", { $0.otherHeaderNs }),
        ("whole chunk", { $0.totalNs }),
    ]
}

@inline(never) func blackHole<T>(_ value: T) { withExtendedLifetime(value) {} }

// Driving a MigrationRegion directly (save passes, resume replay) and a timing transport for the
// reference client.
import Conformance
import DeviceSimulator

/// The errno type the region's accesses fail with, named through `AccessResult.outcome`.
/// This target may depend only on Conformance, DeviceSimulator and ArgumentParser (Package.swift is
/// not ours to edit), so it does not import SystemPackage to spell `Errno`.
protocol AccessOutcome {
    associatedtype Failure: Error
    var outcome: Result<Int, Failure> { get }
}
extension AccessResult: AccessOutcome {}
typealias RegionErrno = AccessResult.Failure

/// `device_state` values of the v1 uapi (reserved bits are 0 on the devices this bench creates).
enum StateBits {
    static let stop: UInt64 = 0b000
    static let running: UInt64 = 0b001
    static let stopAndCopy: UInt64 = 0b010
    static let preCopy: UInt64 = 0b011
    static let resuming: UInt64 = 0b100
}

extension MigrationRegion {
    /// Region offset of the data section (the header page comes first).
    var dataSectionOffset: UInt64 { regionSize - configuration.dataSectionSize }

    func setState(_ bits: UInt64) throws {
        let current = try read(.deviceState).get()
        // Keep the reserved bits 3-31 as the device reports them, as QEMU does.
        try write(.deviceState, (current & ~0b111) | bits).get()
    }

    /// What one save pass moved.
    struct Pass {
        var chunks = 0
        /// Stream bytes (records included).
        var bytes: UInt64 = 0
        var firstPending: UInt64 = 0
        var lastPending: UInt64 = 0
    }

    /// Reads save chunks the way the reference client does (`pending_bytes`, `data_offset`,
    /// `data_size`, the data, `pending_bytes` again, which consumes the chunk) until pending is at
    /// most `threshold`, the pass that was pending at the start has been moved, or `limit` bytes
    /// were moved. `consume` gets each chunk's bytes in the data section.
    func readPass(threshold: UInt64, limit: UInt64 = .max, progress: ((Pass) -> Void)? = nil,
                  consume: (UnsafeRawBufferPointer) throws -> Void) throws -> Pass {
        var pass = Pass()
        var pending = try read(.pendingBytes).get()
        pass.firstPending = pending
        while pending > threshold, pass.bytes < pass.firstPending, pass.bytes < limit {
            let offset = try read(.dataOffset).get()
            let size = try read(.dataSize).get()
            if size == 0 { break }
            guard offset >= dataSectionOffset, offset - dataSectionOffset + size <= UInt64(dataSection.count) else {
                throw BenchError("data_offset \(offset) + data_size \(size) is outside the data section")
            }
            let start = Int(offset - dataSectionOffset)
            try consume(UnsafeRawBufferPointer(rebasing: dataSection[start..<(start + Int(size))]))
            pass.bytes += size
            pass.chunks += 1
            pending = try read(.pendingBytes).get()
            if let progress, pass.chunks % 1024 == 0 { progress(pass) }
        }
        pass.lastPending = pending
        return pass
    }

    /// Applies one recorded source chunk as a resume transaction: `data_offset`, the bytes into
    /// the (mapped) data section, `data_size`.
    func applyChunk(_ bytes: UnsafeRawBufferPointer) throws {
        let offset = try read(.dataOffset).get()
        guard offset >= dataSectionOffset, offset - dataSectionOffset + UInt64(bytes.count) <= UInt64(dataSection.count) else {
            throw BenchError("destination data_offset \(offset) cannot take \(bytes.count) bytes")
        }
        let start = Int(offset - dataSectionOffset)
        UnsafeMutableRawBufferPointer(rebasing: dataSection[start..<(start + bytes.count)]).copyMemory(from: bytes)
        try write(.dataSize, UInt64(bytes.count)).get()
    }
}

/// A whole migration stream recorded in memory, chunk by chunk, to replay into a destination.
final class RecordedStream {
    let storage: UnsafeMutableRawBufferPointer
    private(set) var used = 0
    private(set) var chunks: [Range<Int>] = []

    init(capacity: Int) {
        storage = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 4096)
    }

    deinit { storage.deallocate() }

    func append(_ bytes: UnsafeRawBufferPointer) throws {
        guard used + bytes.count <= storage.count else { throw BenchError("recorded stream outgrew its \(storage.count) bytes") }
        UnsafeMutableRawBufferPointer(rebasing: storage[used..<(used + bytes.count)]).copyMemory(from: bytes)
        chunks.append(used..<(used + bytes.count))
        used += bytes.count
    }

    /// Saves all of `region`: pre-copy pass, stop-and-copy, stop.
    static func record(_ region: MigrationRegion, progress: ((MigrationRegion.Pass) -> Void)? = nil) throws -> RecordedStream {
        let c = region.configuration
        // Page records carry 32 bytes of header per page; add room for chunk records and the tail.
        let pages = c.memorySize / c.pageSize
        let capacity = c.memorySize + pages * 32 + (c.memorySize / c.chunkSize + 16) * 64 + c.configSize + (1 << 20)
        let stream = RecordedStream(capacity: Int(capacity))
        try region.setState(StateBits.preCopy)
        _ = try region.readPass(threshold: 0, progress: progress) { try stream.append($0) }
        try region.setState(StateBits.stopAndCopy)
        _ = try region.readPass(threshold: 0) { try stream.append($0) }
        try region.setState(StateBits.stop)
        return stream
    }
}

/// Forwards every access to an in-process region, counting resume transactions for progress and
/// noting when the client asks for the digest: the reference client computes both digests only
/// after the whole stream moved, so the first digest call ends the timed migration.
final class TimedTransport: RegionTransport {
    let inner: InProcessTransport
    private let headerSize: UInt64
    private let onTransaction: ((Int) -> Void)?
    private(set) var transactions = 0
    /// When `digest()` was first called, and the minor page faults of the process at that moment.
    private(set) var digestStarted: ContinuousClock.Instant?
    private(set) var faultsAtDigest: UInt64?
    private(set) var digestSeconds: Double = 0

    init(_ inner: InProcessTransport, onTransaction: ((Int) -> Void)? = nil) {
        self.inner = inner
        headerSize = inner.region.dataSectionOffset
        self.onTransaction = onTransaction
    }

    var name: String { inner.name }
    var regionSize: UInt64 { inner.regionSize }
    var mappedDataSection: UnsafeMutableRawBufferPointer? { inner.mappedDataSection }
    var mappedOffset: UInt64 { inner.mappedOffset }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(RegionErrno) -> Int {
        try inner.read(at: offset, into: buffer)
    }

    func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(RegionErrno) -> Int {
        let n = try inner.write(at: offset, from: buffer)
        // The only 8-byte writable header field is data_size: one resume transaction.
        if offset < headerSize, buffer.count == 8 {
            transactions += 1
            onTransaction?(transactions)
        }
        return n
    }

    func reset() throws(RegionErrno) { try inner.reset() }

    func digest() throws(RegionErrno) -> String {
        let start = ContinuousClock.now
        if digestStarted == nil {
            digestStarted = start
            faultsAtDigest = ProcessFigures.minorFaults
        }
        defer { digestSeconds += seconds(ContinuousClock.now - start) }
        return try inner.digest()
    }
}

/// Device memory bytes carried by `streamBytes` of pre-copy stream in `chunks` chunks: one 48-byte
/// CHNK record per chunk, the HEAD record once, then (page size + 32)-byte page records.
func pageBytes(streamBytes: UInt64, chunks: Int, _ c: DeviceConfiguration) -> UInt64 {
    let head = UInt64(64 + ((c.typeName.utf8.count + 7) & ~7))
    let overhead = UInt64(chunks) * 48 + (chunks > 0 ? head : 0)
    guard streamBytes > overhead else { return 0 }
    return (streamBytes - overhead) / (c.pageSize + 32) * c.pageSize
}

/// The device every part uses: untouched memory of `memory` bytes in 4 KiB pages, no dirtying,
/// a data section of one `chunk` offered for mmap, chunks of that size.
func benchConfiguration(memory: UInt64, chunk: UInt64) -> DeviceConfiguration {
    DeviceConfiguration(typeName: "mdevsim-bench", memorySize: memory, pageSize: 4096, dataSectionSize: chunk,
                        dataSectionMmap: true, chunkSize: chunk, dirtyRate: 0)
}

import MigrationProtocol
import SystemPackage

/// The source side of one v2 data transfer session: what `read()` on the data_fd returns.
///
/// It stages the same chunks as v1's data section (the same `SaveSession`, so the same bytes for
/// the same seed) into a private buffer and hands them out in whatever sizes the client reads.
/// A read fills the client's buffer across chunk boundaries, as mlx5's `mlx5vf_save_read` does.
struct V2SaveStream {
    private(set) var session: SaveSession
    private let buffer: UnsafeMutableRawBufferPointer
    /// Bytes of the staged chunk already read by the client.
    private var readCursor: UInt64 = 0
    /// Bytes read in this session, by phase.
    private(set) var bytesRead: [MigrationPhase: UInt64] = [:]

    init(configuration: DeviceConfiguration) {
        session = SaveSession(configuration: configuration)
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(configuration.chunkSize), alignment: 8)
    }

    /// Frees the staging buffer; the stream is not used afterwards.
    func release() { buffer.deallocate() }

    /// Bytes of the staged chunk the client has not read yet.
    var stagedLeft: UInt64 { (session.staged?.size ?? 0) - readCursor }

    /// What is still to be read in `phase` if nothing more is dirtied: the rest of the staged
    /// chunk and the chunks still to be staged.
    func pendingBytes(in phase: MigrationPhase) -> UInt64 {
        stagedLeft + session.plannedBytes(in: phase)
    }

    /// `VFIO_MIG_GET_PRECOPY_INFO`: the pre-copy pending bytes split as the uAPI defines them.
    /// `initial_bytes` is what is left of the first pass over the device (the stream header and
    /// chunk records go with it) and reaches 0 once every page was staged once; `dirty_bytes` is
    /// the page records of pages the running device dirtied after they were sent. The sum is the
    /// exact number of bytes pre-copy reads would return now.
    func precopyInfo(recordSize: UInt64) -> (initial: UInt64, dirty: UInt64) {
        let total = pendingBytes(in: .preCopy)
        if session.initialPassDone { return (0, total) }
        let redirtied = session.dirty.setCount - session.initialPagesLeft
        let dirty = min(total, redirtied * recordSize)
        return (total - dirty, dirty)
    }

    /// What one read did: the bytes copied, the sizes of the chunks the client finished reading
    /// (for the caller to let their link time pass), and the errno a fault at staging gave.
    struct ReadOutcome {
        var count = 0
        var moved: UInt64 = 0
        var error: Errno?
    }

    /// Copies the next stream bytes of `phase` into `destination`, at most `cap` (a fault's short
    /// read) when given. `staged` sees each chunk as it is staged (its index in the phase from 1,
    /// the phase's and the session's bytes with it, and its bytes, which it may change) and may
    /// refuse it with an errno: the chunk is then dropped and the read stops there.
    mutating func read(into destination: UnsafeMutableRawBufferPointer, phase: MigrationPhase, device: SimulatedDevice,
                       cap: UInt64? = nil,
                       staged: (Int, UInt64, UInt64, UnsafeMutableRawBufferPointer) -> Errno? = { _, _, _, _ in nil }) -> ReadOutcome {
        var outcome = ReadOutcome()
        var copied = 0
        let limit = cap.map { min(destination.count, Int(clamping: $0)) } ?? destination.count
        while copied < limit {
            if stagedLeft == 0 {
                if let done = session.consumeStaged() { outcome.moved += done.size }
                readCursor = 0
                let size = session.stage(into: buffer, phase: phase, device: device)
                guard size > 0 else { break }
                let index = session.chunksStaged[phase, default: 0]
                let phaseBytes = session.bytesConsumed[phase, default: 0] + size
                let total = session.bytesConsumed.values.reduce(0, +) + size
                if let e = staged(index, phaseBytes, total, UnsafeMutableRawBufferPointer(rebasing: buffer[0..<Int(size)])) {
                    outcome.error = e
                    break
                }
                session.staged = SaveSession.Staged(offset: 0, size: size, phase: phase)
            }
            let n = Int(min(stagedLeft, UInt64(limit - copied)))
            let from = Int(readCursor)
            UnsafeMutableRawBufferPointer(rebasing: destination[copied..<(copied + n)])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: buffer[from..<(from + n)]))
            readCursor += UInt64(n)
            copied += n
            bytesRead[session.staged?.phase ?? phase, default: 0] += UInt64(n)
        }
        // A chunk read to its end is consumed at once, so that PRECOPY_INFO and MIG_DATA_SIZE
        // asked right after this read already count it as sent.
        if stagedLeft == 0, let done = session.consumeStaged() {
            outcome.moved += done.size
            readCursor = 0
        }
        outcome.count = copied
        return outcome
    }

    /// The running device wrote `page`.
    mutating func markDirty(_ page: UInt64) { session.markDirty(page) }

    /// Whether the whole stream, end marker included, has been read.
    var complete: Bool { session.streamComplete && stagedLeft == 0 }
}

/// The exact length of a whole stop-copy stream of a device that has not begun saving: what
/// `VFIO_DEVICE_FEATURE_MIG_DATA_SIZE` reports outside a save session. Computed by the packing
/// arithmetic alone, so that a large device costs no bitmap for it.
func fullStopCopyLength(_ configuration: DeviceConfiguration) -> UInt64 {
    var plan = PackingPlan(capacity: Int(configuration.chunkSize))
    plan.add(fixed: StreamFormat.headerRecordSize(typeName: configuration.typeName))
    plan.add(records: configuration.pageCount, size: StreamFormat.pageRecordSize(pageSize: configuration.pageSize))
    plan.add(fragmentable: configuration.configSize)
    plan.add(fixed: StreamFormat.endRecordSize)
    return plan.total
}

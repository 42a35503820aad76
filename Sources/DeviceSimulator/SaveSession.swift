import MigrationProtocol

/// One save (source) session: from entering a saving state until leaving it.
///
/// It holds what is still to be sent (dirty pages, the stream header, the config blob, the end
/// marker), the chunk staged in the data section, and the figures of the session.
struct SaveSession {
    /// A chunk staged by a `data_offset` read and not yet consumed by a `pending_bytes` read.
    struct Staged {
        /// Where the chunk really is, and its real size.
        var offset: UInt64
        var size: UInt64
        var phase: MigrationPhase
        /// What `data_offset` / `data_size` report: the real values unless a fault changed them.
        var reportedOffset: UInt64
        var reportedSize: UInt64
        /// A fault's cap on each data-section read of this chunk.
        var shortRead: UInt64?
        /// The chunk's number in the stream, for the checker's records.
        var number: UInt64 = 0
        /// Bytes of the chunk the client read with pread (inside its window), and whether it read
        /// `data_size`: the save-side read rules (`chunk-not-read`, `pending-bytes-not-reread`).
        var bytesRead: UInt64 = 0
        var sizeRead = false
        /// A fault changed what `data_offset` / `data_size` report: the read rules do not judge it.
        var reportsTheTruth: Bool { reportedOffset == offset && reportedSize == size }

        init(offset: UInt64, size: UInt64, phase: MigrationPhase) {
            self.offset = offset
            self.size = size
            self.phase = phase
            reportedOffset = offset
            reportedSize = size
        }
    }

    let configuration: DeviceConfiguration
    var dirty: PageBitmap
    private var cursor: UInt64 = 0
    private(set) var headerSent = false
    /// Config snapshot taken when its first byte is staged (the device is stopped by then).
    private var configSnapshot: [UInt8]?
    private(set) var configBytesSent: UInt64 = 0
    private(set) var endSent = false
    private(set) var pagesSent: UInt64 = 0
    private(set) var chunkNumber: UInt64 = 0
    private var recordSequence: UInt64 = 0
    var staged: Staged?
    /// Bytes and chunks consumed per phase.
    private(set) var bytesConsumed: [MigrationPhase: UInt64] = [:]
    private(set) var chunksConsumed: [MigrationPhase: UInt64] = [:]
    /// Chunks staged per phase, for fault triggers (counted at staging).
    private(set) var chunksStaged: [MigrationPhase: Int] = [:]
    /// Whether staging went once over all of memory: what is sent after that are re-sends of
    /// pages the running device dirtied (v2's `dirty_bytes`, as opposed to `initial_bytes`).
    private(set) var initialPassDone = false

    init(configuration: DeviceConfiguration) {
        self.configuration = configuration
        // A save starts with every page to send: the first pass is the whole memory.
        dirty = PageBitmap(count: configuration.pageCount, allSet: true)
    }

    /// Pages of the initial pass not staged yet: those at or after the cursor until it wraps.
    var initialPagesLeft: UInt64 { initialPassDone ? 0 : dirty.count(from: cursor) }

    /// Whether everything, end marker included, has been staged.
    var streamComplete: Bool { endSent }

    // MARK: Planning (pending_bytes)

    private var chunkCapacity: Int { Int(configuration.chunkSize) }
    private var pageRecord: Int { StreamFormat.pageRecordSize(pageSize: configuration.pageSize) }
    private var headerRecord: Int { StreamFormat.headerRecordSize(typeName: configuration.typeName) }

    /// Whether `phase` carries memory: pre-copy only if the device offers pre-copy data.
    private func sendsPages(in phase: MigrationPhase) -> Bool {
        phase == .stopAndCopy || configuration.precopyData
    }

    /// The exact number of bytes the chunks still to be staged in `phase` will hold, if nothing
    /// more is dirtied: the same greedy packing `stage` performs, computed arithmetically.
    func plannedBytes(in phase: MigrationPhase) -> UInt64 {
        var packer = PackingPlan(capacity: chunkCapacity)
        let pages = sendsPages(in: phase) ? dirty.setCount : 0
        let header = !headerSent && (pages > 0 || phase == .stopAndCopy)
        if header { packer.add(fixed: headerRecord) }
        packer.add(records: pages, size: pageRecord)
        if phase == .stopAndCopy {
            packer.add(fragmentable: configuration.configSize - configBytesSent)
            if !endSent { packer.add(fixed: StreamFormat.endRecordSize) }
        }
        return packer.total
    }

    // MARK: Staging (data_offset)

    /// Fills `section` with the next chunk of `phase`; returns its size (0 when nothing is left).
    mutating func stage(into section: UnsafeMutableRawBufferPointer, phase: MigrationPhase, device: SimulatedDevice) -> UInt64 {
        let pagesAllowed = sendsPages(in: phase)
        let hasPages = pagesAllowed && dirty.setCount > 0
        let header = !headerSent && (hasPages || phase == .stopAndCopy)
        let tail = phase == .stopAndCopy && (configBytesSent < configuration.configSize || !endSent)
        guard header || hasPages || tail, let base = section.baseAddress, section.count >= chunkCapacity else { return 0 }

        var writer = RecordWriter(base: base, capacity: chunkCapacity, firstSequence: recordSequence)
        let chunkStart = writer.used
        writer.appendWords(.chunk, argument: chunkNumber, words: [0, UInt64(StreamFormat.phaseCode(phase))])
        if header {
            let c = configuration
            writer.appendWords(.header, argument: StreamFormat.version,
                               words: [c.memorySize, c.pageSize, c.configSize, UInt64(c.typeName.utf8.count), device.seed],
                               trailing: Array(c.typeName.utf8))
            headerSent = true
        }
        if pagesAllowed {
            let pageSize = Int(configuration.pageSize)
            while writer.remaining >= pageRecord, let page = dirty.firstSet(from: cursor) {
                if page < cursor { initialPassDone = true }
                dirty.remove(page)
                cursor = page + 1
                writer.appendSumming(.page, argument: page, payloadLength: pageSize) { payload, sum in
                    if let base = payload.baseAddress { device.readPage(page, into: base, checksum: &sum) }
                }
                pagesSent += 1
            }
        }
        if phase == .stopAndCopy, dirty.setCount == 0 {
            if configSnapshot == nil { configSnapshot = device.config }
            let blob = configSnapshot ?? []
            while configBytesSent < configuration.configSize, writer.remaining > StreamFormat.recordHeaderSize {
                let n = Int(min(configuration.configSize - configBytesSent, UInt64(writer.remaining - StreamFormat.recordHeaderSize)))
                let from = Int(configBytesSent)
                writer.append(.config, argument: configBytesSent, payloadLength: n) { payload in
                    blob.withUnsafeBytes { src in
                        payload.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[from..<(from + n)]))
                    }
                }
                configBytesSent += UInt64(n)
            }
            if configBytesSent == configuration.configSize, !endSent, writer.remaining >= StreamFormat.endRecordSize {
                writer.appendWords(.end, argument: 0, words: [pagesSent, configBytesSent])
                endSent = true
            }
        }
        writer.patchChunkLength(recordStart: chunkStart, length: UInt64(writer.used))
        recordSequence = writer.sequence
        chunkNumber += 1
        chunksStaged[phase, default: 0] += 1
        return UInt64(writer.used)
    }

    /// The staged chunk was consumed by a `pending_bytes` read.
    mutating func consumeStaged() -> Staged? {
        guard let s = staged else { return nil }
        staged = nil
        bytesConsumed[s.phase, default: 0] += s.size
        chunksConsumed[s.phase, default: 0] += 1
        return s
    }

    /// The running device wrote `page`: it has to be sent (again).
    mutating func markDirty(_ page: UInt64) {
        dirty.insert(page)
    }
}

/// The greedy packing of records into chunks, counted without building them.
/// Mirrors `SaveSession.stage`: every chunk starts with a `CHNK` record; a record goes into the
/// current chunk if it fits, else opens the next; config bytes split across chunks.
struct PackingPlan {
    let capacity: Int
    private(set) var total: UInt64 = 0
    private var used: Int
    private var open = false

    init(capacity: Int) {
        self.capacity = capacity
        used = capacity
    }

    private mutating func newChunk() {
        total += UInt64(StreamFormat.chunkRecordSize)
        used = StreamFormat.chunkRecordSize
        open = true
    }

    mutating func add(fixed size: Int) {
        if !open || capacity - used < size { newChunk() }
        total += UInt64(size)
        used += size
    }

    mutating func add(records count: UInt64, size: Int) {
        guard count > 0 else { return }
        var left = count
        if open {
            let fit = UInt64(max(0, (capacity - used) / size))
            let n = min(fit, left)
            total += n * UInt64(size)
            used += Int(n) * size
            left -= n
        }
        guard left > 0 else { return }
        let perChunk = UInt64((capacity - StreamFormat.chunkRecordSize) / size)
        let full = (left - 1) / perChunk
        total += full * UInt64(StreamFormat.chunkRecordSize + Int(perChunk) * size)
        let rest = left - full * perChunk
        newChunk()
        total += rest * UInt64(size)
        used += Int(rest) * size
    }

    mutating func add(fragmentable bytes: UInt64) {
        var left = bytes
        let header = StreamFormat.recordHeaderSize
        while left > 0 {
            if !open || capacity - used <= header { newChunk() }
            let room = UInt64(capacity - used - header)
            if left >= room, used == StreamFormat.chunkRecordSize {
                // Whole chunks of config at once: the open one, then `whole - 1` new ones.
                let whole = left / room
                total += whole * UInt64(capacity - StreamFormat.chunkRecordSize) + (whole - 1) * UInt64(StreamFormat.chunkRecordSize)
                left -= whole * room
                used = capacity
                continue
            }
            let n = min(left, room)
            total += UInt64(header) + n
            used += header + Int(n)
            left -= n
        }
    }
}

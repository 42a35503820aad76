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

    /// The records of the next chunk, decided from the session without changing it. A chunk is
    /// staged in three steps: `plan`, `ChunkFill` writes its bytes (at once, or a few pages at a
    /// time), `commit` leaves the session as the chunk's staging does. Staging ahead
    /// (`StageAhead`) plans and fills the next chunk while the client still copies the staged
    /// one, and commits it only if nothing the plan and the bytes came from changed meanwhile.
    struct ChunkPlan {
        let phase: MigrationPhase
        let number: UInt64
        let firstSequence: UInt64
        let header: Bool
        /// Dirty pages in the order they go in, and where the cursor is after the last one.
        var pages: [UInt64] = []
        var cursorAfter: UInt64
        /// The pages went past the last page and on from the first: the initial pass is over.
        var wraps = false
        /// The config blob the chunk's config records come from (the session's snapshot, or the
        /// device's config, which becomes the snapshot), and the pieces of it they carry.
        var config: [UInt8]?
        var takesSnapshot = false
        var configPieces: [(from: Int, count: Int)] = []
        /// The chunk ends the stream: its `END!` record counts the session's pages and config bytes.
        var end = false
        var pagesSentAfter: UInt64 = 0
        var configSentAfter: UInt64 = 0
    }

    /// The next chunk of `phase` as `stage` would build it now; nil when nothing is left.
    func plan(phase: MigrationPhase, device: SimulatedDevice) -> ChunkPlan? {
        let pagesAllowed = sendsPages(in: phase)
        let hasPages = pagesAllowed && dirty.setCount > 0
        let header = !headerSent && (hasPages || phase == .stopAndCopy)
        let tail = phase == .stopAndCopy && (configBytesSent < configuration.configSize || !endSent)
        guard header || hasPages || tail else { return nil }
        var plan = ChunkPlan(phase: phase, number: chunkNumber, firstSequence: recordSequence, header: header, cursorAfter: cursor)
        var used = StreamFormat.chunkRecordSize + (header ? headerRecord : 0)
        if pagesAllowed {
            // As many records as fit, taken circularly from the cursor (`firstSet` wraps).
            let fit = UInt64(max(0, (chunkCapacity - used) / pageRecord))
            let count = Int(min(dirty.setCount, fit))
            plan.pages.reserveCapacity(count)
            var from = cursor
            while plan.pages.count < count, let page = dirty.firstSet(from: from) {
                if page < from { plan.wraps = true }
                plan.pages.append(page)
                from = page + 1
            }
            plan.cursorAfter = from
            used += plan.pages.count * pageRecord
        }
        if phase == .stopAndCopy, dirty.setCount == UInt64(plan.pages.count) {
            plan.takesSnapshot = configSnapshot == nil
            plan.config = configSnapshot ?? device.config
            var sent = configBytesSent
            while sent < configuration.configSize, chunkCapacity - used > StreamFormat.recordHeaderSize {
                let n = Int(min(configuration.configSize - sent, UInt64(chunkCapacity - used - StreamFormat.recordHeaderSize)))
                plan.configPieces.append((Int(sent), n))
                used += StreamFormat.recordHeaderSize + n
                sent += UInt64(n)
            }
            plan.end = sent == configuration.configSize && !endSent && chunkCapacity - used >= StreamFormat.endRecordSize
            plan.configSentAfter = sent
        }
        plan.pagesSentAfter = pagesSent + UInt64(plan.pages.count)
        return plan
    }

    /// Fills `section` with the next chunk of `phase`; returns its size (0 when nothing is left).
    mutating func stage(into section: UnsafeMutableRawBufferPointer, phase: MigrationPhase, device: SimulatedDevice) -> UInt64 {
        guard let plan = plan(phase: phase, device: device), var fill = ChunkFill(plan, into: section, configuration: configuration, device: device) else { return 0 }
        fill.write(pages: .max, device: device)
        return commit(fill)
    }

    /// Makes the session what staging `fill`'s chunk leaves it; returns the chunk's size.
    mutating func commit(_ fill: ChunkFill) -> UInt64 {
        let plan = fill.plan
        for page in plan.pages { dirty.remove(page) }
        if !plan.pages.isEmpty { cursor = plan.cursorAfter }
        if plan.wraps { initialPassDone = true }
        pagesSent += UInt64(plan.pages.count)
        if plan.header { headerSent = true }
        if plan.takesSnapshot { configSnapshot = plan.config }
        configBytesSent += UInt64(plan.configPieces.reduce(0) { $0 + $1.count })
        if plan.end { endSent = true }
        recordSequence = fill.sequence
        chunkNumber += 1
        chunksStaged[plan.phase, default: 0] += 1
        revision += 1
        return UInt64(fill.used)
    }

    /// Changes each time what the next chunk holds may have changed (a chunk staged, a page
    /// dirtied); with `id`, what staging ahead checks before it commits a chunk built earlier.
    private(set) var revision: UInt64 = 0
    /// Which save session this is, set by the region that starts it.
    var id: UInt64 = 0

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
        revision += 1
    }
}

/// Writes the bytes of a `SaveSession.ChunkPlan`, all at once or a few pages at a time (the
/// records are the ones `RecordWriter` writes; the chunk's length is patched in at the end).
struct ChunkFill {
    let plan: SaveSession.ChunkPlan
    private var writer: RecordWriter
    private let chunkStart: Int
    private let pageSize: Int
    private var nextPage = 0
    private(set) var complete = false

    /// Writes the chunk's first records; nil when `section` is smaller than a chunk.
    init?(_ plan: SaveSession.ChunkPlan, into section: UnsafeMutableRawBufferPointer, configuration c: DeviceConfiguration,
          device: SimulatedDevice) {
        guard let base = section.baseAddress, section.count >= Int(c.chunkSize) else { return nil }
        self.plan = plan
        pageSize = Int(c.pageSize)
        writer = RecordWriter(base: base, capacity: Int(c.chunkSize), firstSequence: plan.firstSequence)
        chunkStart = writer.used
        writer.appendWords(.chunk, argument: plan.number, words: [0, UInt64(StreamFormat.phaseCode(plan.phase))])
        if plan.header {
            writer.appendWords(.header, argument: StreamFormat.version,
                               words: [c.memorySize, c.pageSize, c.configSize, UInt64(c.typeName.utf8.count), device.seed],
                               trailing: Array(c.typeName.utf8))
        }
    }

    var used: Int { writer.used }
    var sequence: UInt64 { writer.sequence }
    /// Pages of the plan not written yet.
    var pagesLeft: Int { plan.pages.count - nextPage }

    /// Writes up to `pages` more page records (each generated or copied and summed in one pass),
    /// then, once every page is in, the config and end records and the chunk's length.
    mutating func write(pages budget: Int, device: SimulatedDevice) {
        guard !complete else { return }
        let last = nextPage + min(budget, pagesLeft)
        while nextPage < last {
            // The plan fits the chunk by construction; this keeps a wrong plan inside the buffer
            // (its stream would then fail the destination's checks, not overrun memory).
            guard writer.remaining >= StreamFormat.recordHeaderSize + pageSize else {
                nextPage = plan.pages.count
                break
            }
            let page = plan.pages[nextPage]
            writer.appendSumming(.page, argument: page, payloadLength: pageSize) { payload, sum in
                if let base = payload.baseAddress { device.readPage(page, into: base, checksum: &sum) }
            }
            nextPage += 1
        }
        guard nextPage == plan.pages.count else { return }
        if let blob = plan.config {
            for piece in plan.configPieces {
                writer.append(.config, argument: UInt64(piece.from), payloadLength: piece.count) { payload in
                    blob.withUnsafeBytes { src in
                        payload.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[piece.from..<(piece.from + piece.count)]))
                    }
                }
            }
        }
        if plan.end { writer.appendWords(.end, argument: 0, words: [plan.pagesSentAfter, plan.configSentAfter]) }
        writer.patchChunkLength(recordStart: chunkStart, length: UInt64(writer.used))
        complete = true
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

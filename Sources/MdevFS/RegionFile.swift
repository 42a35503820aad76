import DeviceSimulator
import Foundation
import FUSEKit
import MigrationProtocol
import SystemPackage

/// The `migration` file of one device: every access is the engine's, and the data section's
/// mapping is kept coherent with the engine's buffer.
///
/// Coherence (see "How the region file works" in README.md): region files are opened `direct_io`, so preads and
/// pwrites reach the engine with their exact offset and size, and the mount negotiates
/// `FUSE_DIRECT_IO_ALLOW_MMAP` so the same files can be mapped. Mapped pages live in the
/// kernel's page cache, apart from the engine's buffer:
/// - save: when a `data_offset` read stages a chunk, the chunk is pushed into the page cache
///   (`notify_store`) before the read is answered, so the mapping shows it with no fault;
/// - resume: a `data_offset` read pre-fills the cache with the data section, and a `data_size`
///   write is held while the client's stores are fetched back (`notify_retrieve`) into the
///   buffer; the engine applies the chunk only then;
/// - page-fault reads (reads of the data section without a lock owner) are answered from the buffer with
///   no side effect, and page writebacks (`writepage`) are copied into it: neither is a header
///   access or a chunk event.
/// Both only happen once the client has shown it uses a mapping (its first fault or writeback):
/// a pread/pwrite client costs nothing extra.
struct RegionFile {
    let fs: MdevFileSystem
    let device: MdevDevice
    let inode: FUSEInode

    private var region: MigrationRegion { device.region }
    private static let dataStart = RegionLayout.dataSectionOffset

    func read(_ request: ReadRequest, reply: DataReply) {
        let offset = UInt64(max(0, request.offset))
        // A page fault of the mapping (one page: MdevMount turns readahead off) carries no lock
        // owner, unlike any pread of the client, even a page-sized one, which the engine sees.
        if request.isPageCacheFill {
            return pageFault(offset: offset, size: request.size, reply: reply)
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, request.size), alignment: 8)
        defer { buffer.deallocate() }
        let target = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<request.size])
        var stageRange: Range<UInt64>?
        var prefill = false
        let result = device.withLock { () -> AccessResult in
            let r = region.read(at: offset, into: target)
            if offset == HeaderField.dataOffset.offset, region.state.isResuming { device.beginTransaction() }
            if offset == HeaderField.dataOffset.offset, r.errno == nil, device.mappingInUse {
                if region.state.isResuming {
                    prefill = true
                } else {
                    stageRange = r.staged
                }
            }
            return r
        }
        if let range = stageRange { store(range) }
        if prefill { store(Self.dataStart..<(Self.dataStart + UInt64(region.dataSection.count))) }
        stall(result.stallNanoseconds)
        switch result.outcome {
        case .failure(let e): reply.error(e)
        case .success(let n): reply.data(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
    }

    func write(_ request: WriteRequest, data: UnsafeRawBufferPointer, reply: WriteReply) {
        let offset = UInt64(max(0, request.offset))
        if request.isWritepage {
            // A late writeback of a mapped page: the client's stores, not a protocol event.
            device.withLock {
                device.mappingInUse = true
                if region.state.isResuming { device.mappedStoresInTransaction = true }
                copyIntoSection(offset: offset, data)
            }
            return reply.write(data.count)
        }
        if offset == HeaderField.dataSize.offset, data.count == 8 {
            let value = UInt64(littleEndian: data.loadUnaligned(as: UInt64.self))
            let fetch = device.withLock { () -> Bool in
                region.state.isResuming && device.mappingInUse && value > 0 && value <= UInt64(region.dataSection.count)
            }
            if fetch, beginRetrieve(size: Int(value), reply: reply) { return }
        }
        let result = device.withLock { () -> AccessResult in
            if offset >= Self.dataStart, region.state.isResuming {
                let start = Int(offset - Self.dataStart)
                device.pwrittenInTransaction.append(start..<(start + data.count))
            }
            return region.write(at: offset, from: data)
        }
        stall(result.stallNanoseconds)
        switch result.outcome {
        case .failure(let e): reply.error(e)
        case .success(let n): reply.write(n)
        }
    }

    /// The kernel filled its page cache (a fault of the mapping): the buffer's bytes, no engine
    /// access, no checker. A readahead window can start below the data section (QEMU's
    /// MADV_HUGEPAGE advice made the kernel read a 2 MiB-aligned one): the header page reads as
    /// zeros there, since it is not mappable, and no header access happens.
    private func pageFault(offset: UInt64, size: Int, reply: DataReply) {
        device.withLock {
            device.mappingInUse = true
            let section = region.dataSection
            if offset >= Self.dataStart {
                let start = Int(offset - Self.dataStart)
                guard start < section.count else { return reply.data([]) }
                return reply.data(UnsafeRawBufferPointer(rebasing: section[start..<min(section.count, start + size)]))
            }
            let end = min(Int(Self.dataStart) + section.count, Int(offset) + size)
            var window = [UInt8](repeating: 0, count: max(0, end - Int(offset)))
            let headerPart = Int(Self.dataStart - offset)
            let fromSection = window.count - headerPart
            if fromSection > 0 {
                window.withUnsafeMutableBytes { w in
                    UnsafeMutableRawBufferPointer(rebasing: w[headerPart...])
                        .copyMemory(from: UnsafeRawBufferPointer(rebasing: section[0..<fromSection]))
                }
            }
            window.withUnsafeBytes { reply.data($0) }
        }
    }

    private func copyIntoSection(offset: UInt64, _ data: UnsafeRawBufferPointer) {
        guard offset >= Self.dataStart else { return }
        let section = region.dataSection
        let start = Int(offset - Self.dataStart)
        guard start < section.count else { return }
        let n = min(data.count, section.count - start)
        UnsafeMutableRawBufferPointer(rebasing: section[start..<(start + n)]).copyMemory(from: UnsafeRawBufferPointer(rebasing: data[0..<n]))
    }

    /// Pushes region bytes `range` (in the data section) into the page cache.
    private func store(_ range: Range<UInt64>) {
        guard let notifier = fs.currentNotifier, range.lowerBound >= Self.dataStart else { return }
        let section = region.dataSection
        // Whole pages: the kernel marks a page up to date only when a store fills it, and a
        // partly stored page would cost the client a fault (a READ round trip) when it reads the
        // chunk's last bytes. The bytes around the chunk are the buffer's, as a fault would see.
        let page = Int(RegionLayout.hostPageSize)
        let start = Int(range.lowerBound - Self.dataStart) / page * page
        let end = min((Int(range.upperBound - Self.dataStart) + page - 1) / page * page, section.count)
        guard start < end else { return }
        // Straight from the buffer, without the device lock (see MdevDevice): the only writers
        // of these bytes are the engine, on behalf of the client now waiting for this very
        // reply, and page writebacks, which carry what the page cache already holds.
        do {
            try notifier.store(inode: inode, offset: Int64(Self.dataStart) + Int64(start), bytes: UnsafeRawBufferPointer(rebasing: section[start..<end]))
        } catch {
            fs.logger.warning("notify_store of \(range) failed: \(error)")
        }
    }

    /// Holds the `data_size` write and asks the kernel for the client's stores; the write is
    /// answered by `finish` once every piece is back. Returns false if the kernel cannot be asked.
    private func beginRetrieve(size: Int, reply: WriteReply) -> Bool {
        guard let notifier = fs.currentNotifier else { return false }
        let piece = max(4096, fs.currentMaxWrite)
        let pieces = (size + piece - 1) / piece
        let apply = RetrieveTable.Apply(device: device, value: UInt64(size), reply: reply)
        let ends = (0..<pieces).map { Int64(Self.dataStart) + Int64(min((($0 + 1) * piece), size)) }
        let cookies = fs.registerRetrieve(apply, pieceEnds: ends)
        for (i, cookie) in cookies.enumerated() {
            let offset = Int(Self.dataStart) + i * piece
            do {
                try notifier.retrieve(inode: inode, size: min(piece, size - i * piece), offset: Int64(offset), cookie: cookie)
            } catch {
                fs.logger.warning("notify_retrieve failed (\(error)): applying the data section as pwritten")
                fs.cancelRetrieve(cookies)
                return false
            }
        }
        return true
    }

    /// Every retrieved piece is in the buffer: the engine applies the chunk, the write is answered.
    func finish(_ apply: RetrieveTable.Apply) {
        let result = device.withLock { () -> AccessResult? in
            if !device.pwrittenInTransaction.isEmpty, device.mappedStoresInTransaction {
                region.recordViolation(.mixedDataAccess, "resume chunk of \(apply.value) bytes written both with pwrite and through the mapping: the pwritten bytes were kept where both wrote")
                if region.strict { return nil }
            }
            var value = apply.value.littleEndian
            return withUnsafeBytes(of: &value) { region.write(at: HeaderField.dataSize.offset, from: $0) }
        }
        // Strict: the mixed chunk is refused, as the checker's other rules refuse their access.
        guard let result else { return apply.reply.error(.invalidArgument) }
        stall(result.stallNanoseconds)
        switch result.outcome {
        case .failure(let e): apply.reply.error(e)
        case .success(let n): apply.reply.write(n)
        }
    }

    /// An injected stall: the access answers late, as a slow driver would.
    private func stall(_ nanoseconds: UInt64) {
        guard nanoseconds > 0 else { return }
        var request = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }
}

/// Held `data_size` writes waiting for their `notify_retrieve` answers, by cookie. A write is
/// fetched in pieces (at most `max_write` each); a piece the kernel answers short is continued
/// under a new cookie until its end.
struct RetrieveTable {
    struct Apply: @unchecked Sendable {
        let device: MdevDevice
        let value: UInt64
        let reply: WriteReply
    }

    struct Piece {
        let apply: Apply
        let id: Int
        /// Region offset where the piece ends.
        let end: Int64
    }

    private var byCookie: [UInt64: Piece] = [:]
    private var outstanding: [Int: Int] = [:]
    private var nextCookie: UInt64 = 1
    private var nextApply = 0

    mutating func register(_ apply: Apply, pieceEnds: [Int64]) -> [UInt64] {
        let id = nextApply
        nextApply += 1
        outstanding[id] = pieceEnds.count
        return pieceEnds.map { end in
            let c = nextCookie
            nextCookie += 1
            byCookie[c] = Piece(apply: apply, id: id, end: end)
            return c
        }
    }

    func piece(_ cookie: UInt64) -> Piece? { byCookie[cookie] }

    /// A new cookie for the rest of the piece `cookie` belongs to (which it replaces).
    mutating func continuation(of cookie: UInt64) -> UInt64 {
        let c = nextCookie
        nextCookie += 1
        byCookie[c] = byCookie.removeValue(forKey: cookie)
        return c
    }

    /// The piece `cookie` is complete; returns whether it was its apply's last.
    mutating func finished(_ cookie: UInt64) -> Bool {
        guard let piece = byCookie.removeValue(forKey: cookie), let left = outstanding[piece.id] else { return false }
        if left <= 1 {
            outstanding[piece.id] = nil
            return true
        }
        outstanding[piece.id] = left - 1
        return false
    }

    mutating func cancel(_ cookies: [UInt64]) {
        for c in cookies { if let piece = byCookie.removeValue(forKey: c) { outstanding[piece.id] = nil } }
    }
}

import DeviceSimulator
import Foundation
import FUSEKit
import Logging
import MigrationProtocol

/// The kernel's page cache of mapped data sections, kept coherent with the engines' buffers.
/// One owner for the three moves (see "How the region file works" in README.md):
/// - store: before a `data_offset` read is answered, the staged chunk (save) or the whole data
///   section (resume pre-fill) is pushed into the page cache (`notify_store`);
/// - retrieve: a resume `data_size` write is held while the client's stores are fetched back
///   (`notify_retrieve`) into the engine (`MigrationRegion.storeThroughMapping`);
/// - the table of retrieves in flight, by cookie, under this type's own lock (never the
///   tree's, and no device lock is held while the kernel is notified: see `MdevDevice`).
final class PageCacheCoherence: @unchecked Sendable {
    let logger: Logger
    private let lock = NSLock()
    private static let dataStart = RegionLayout.dataSectionOffset

    // Guarded by `lock`:
    private var notifier: Notifier?
    private var maxWrite = 1 << 20
    private var retrieves = RetrieveTable()

    init(logger: Logger) {
        self.logger = logger
    }

    /// The session is up: the kernel can be notified, and tells how much one reply may carry.
    func connect(_ notifier: Notifier, maxWrite: Int) {
        lock.withLock {
            self.notifier = notifier
            self.maxWrite = maxWrite
        }
    }

    private var currentNotifier: Notifier? { lock.withLock { notifier } }

    /// Drops every cached page of `inode` (a new holder must not see a previous client's pages).
    func invalidate(_ inode: FUSEInode) {
        try? currentNotifier?.invalidateInode(inode)
    }

    /// Pushes region bytes `range` (in the data section) of `device` into the page cache, from
    /// `section`, the data section as the engine's last access under the device lock left it.
    func store(_ range: Range<UInt64>, of section: UnsafeMutableRawBufferPointer, device: MdevDevice, inode: FUSEInode) {
        guard let notifier = currentNotifier, range.lowerBound >= Self.dataStart else { return }
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
            device.withLock { device.region.copies.pageCacheStore += UInt64(end - start) }
        } catch {
            logger.warning("notify_store of \(range) failed: \(error)")
        }
    }

    /// Asks the kernel for the client's stores to the first `size` bytes of the data section;
    /// `complete` runs once every piece is in the engine. Returns false if the kernel cannot be
    /// asked (the caller then goes on without).
    func retrieve(size: Int, of device: MdevDevice, inode: FUSEInode, complete: @escaping @Sendable () -> Void) -> Bool {
        guard let (notifier, maxWrite) = lock.withLock({ notifier.map { ($0, maxWrite) } }) else { return false }
        let piece = max(4096, maxWrite)
        let pieces = (size + piece - 1) / piece
        let ends = (0..<pieces).map { Int64(Self.dataStart) + Int64(min((($0 + 1) * piece), size)) }
        let apply = RetrieveTable.Apply(device: device, complete: complete)
        let cookies = lock.withLock { retrieves.register(apply, pieceEnds: ends) }
        for (i, cookie) in cookies.enumerated() {
            let offset = Int(Self.dataStart) + i * piece
            do {
                try notifier.retrieve(inode: inode, size: min(piece, size - i * piece), offset: Int64(offset), cookie: cookie)
            } catch {
                logger.warning("notify_retrieve failed (\(error)): applying the data section as pwritten")
                lock.withLock { retrieves.cancel(cookies) }
                return false
            }
        }
        return true
    }

    /// The kernel's answer to one retrieve: its bytes go to the engine; the next part of the
    /// piece is asked for, or the held write completes after its last piece.
    func retrieved(cookie: UInt64, inode: FUSEInode, offset: Int64, data: UnsafeRawBufferPointer) {
        guard let piece = lock.withLock({ retrieves.piece(cookie) }) else { return }
        let device = piece.apply.device
        device.withLock {
            device.region.copies.pageCacheIntoDaemon += UInt64(data.count)
            device.region.storeThroughMapping(at: UInt64(max(0, offset)), data)
        }
        // The kernel stops at the first page it does not hold. That page was either never
        // stored to (the buffer is right) or written back and dropped (its writeback already
        // reached the buffer): skip it and fetch the rest of the piece.
        let next = offset + Int64(data.count) + Int64(RegionLayout.hostPageSize)
        if offset + Int64(data.count) < piece.end, next < piece.end, let notifier = currentNotifier {
            let cookie = lock.withLock { retrieves.continuation(of: cookie) }
            do {
                try notifier.retrieve(inode: inode, size: Int(piece.end - next), offset: next, cookie: cookie)
                return
            } catch {
                logger.warning("notify_retrieve of the rest of a resume chunk failed (\(error)): applying what arrived")
            }
        }
        if lock.withLock({ retrieves.finished(cookie) }) { piece.apply.complete() }
    }
}

/// Held `data_size` writes waiting for their `notify_retrieve` answers, by cookie. A write is
/// fetched in pieces (at most `max_write` each); a piece the kernel answers short is continued
/// under a new cookie until its end.
struct RetrieveTable {
    struct Apply: @unchecked Sendable {
        let device: MdevDevice
        /// Applies the held write and answers it.
        let complete: @Sendable () -> Void
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

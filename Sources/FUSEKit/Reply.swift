import CFuse3
import Glibc
import Logging
import Synchronization
import SystemPackage

/// `fuse_req_t` is a raw pointer; it may cross threads because libfuse allows a request to be
/// answered from any thread, and FUSEKit guarantees it is answered at most once (`RequestSlot`).
struct RequestHandle: @unchecked Sendable {
    let raw: fuse_req_t
}

/// The single owner of a pending `fuse_req_t`. The session keeps every request that outlives its
/// callback (a held reply) in a registry so that, when the loop ends, still-held requests are
/// failed (EIO) before the session is destroyed: answering a request after
/// `fuse_session_destroy` would touch freed memory. A request answered inside its callback (the
/// data path: every read, almost every write) never enters the registry: `registerIfPending`
/// after the callback adds only the ones still held, which saves two locks and a dictionary
/// update per request.
final class RequestSlot: Sendable {
    let operation: String
    let unique: UInt64
    private struct State {
        var handle: RequestHandle?
        var registered = false
    }
    private let pending: Mutex<State>
    /// Mirrors `pending.handle == nil`, so that a reply's last copy can check it without a lock.
    private let answered = Atomic<Bool>(false)
    let context: SessionContext

    /// `registerNow: false`: the caller calls `registerIfPending()` once the callback returned.
    init(_ req: fuse_req_t, operation: String, context: SessionContext, registerNow: Bool = true) {
        self.operation = operation
        self.unique = cfuse3_req_unique(req)
        self.pending = Mutex(State(handle: RequestHandle(raw: req)))
        self.context = context
        if registerNow { registerIfPending() }
    }

    /// Enters the session's registry if the request is not answered yet (it is held for later).
    /// Under the slot's lock, so that an answer on another thread is either before (nothing to
    /// register) or after (it finds the slot registered and removes it).
    func registerIfPending() {
        pending.withLock { state in
            guard state.handle != nil, !state.registered else { return }
            state.registered = true
            context.register(self)
        }
    }

    /// Answers the request with `body` unless it was already answered. The slot's lock is held
    /// during the libfuse call so that teardown (which takes the same lock) waits for it.
    /// Returns false (and logs) when the request had already been answered.
    @discardableResult
    func answer(_ what: String, _ body: (fuse_req_t) -> Int32) -> Bool {
        let outcome: (rc: Int32, registered: Bool)? = pending.withLock { state in
            guard let req = state.handle?.raw else { return nil }
            let rc = body(req)
            state.handle = nil
            answered.store(true, ordering: .releasing)
            return (rc, state.registered)
        }
        guard let (rc, registered) = outcome else {
            context.logger.warning(
                "FUSE reply answered twice; ignoring the second answer",
                metadata: ["op": "\(operation)", "unique": "\(unique)", "answer": "\(what)"])
            return false
        }
        if registered { context.unregister(self) }
        if rc < 0 {
            // The kernel no longer waits for it (interrupted, or the connection is gone).
            context.logger.debug(
                "FUSE reply not delivered",
                metadata: ["op": "\(operation)", "unique": "\(unique)", "errno": "\(Errno(rawValue: -rc))"])
        }
        return true
    }

    var isAnswered: Bool { answered.load(ordering: .acquiring) }
}

/// Shared by every typed reply: answers EIO when the last copy of an unanswered reply goes away.
final class ReplyCore: Sendable {
    let slot: RequestSlot

    init(_ slot: RequestSlot) { self.slot = slot }

    deinit {
        if !slot.isAnswered {
            let answered = slot.answer("EIO (dropped)") { fuse_reply_err($0, EIO) }
            if answered {
                slot.context.logger.error(
                    "FUSE reply dropped without an answer; answered EIO",
                    metadata: ["op": "\(slot.operation)", "unique": "\(slot.unique)"])
            }
        }
    }

    func error(_ errno: Errno) {
        // 0 is success for some operations: never let `error` turn into a success.
        let value = errno.rawValue > 0 ? errno.rawValue : EIO
        slot.answer("error \(errno)") { fuse_reply_err($0, value) }
    }
}

// MARK: - Typed replies. Each must be answered exactly once; copies share one answer.

/// Reply to `lookup`: an entry, a cached negative entry, or an error.
public struct EntryReply: Sendable {
    let core: ReplyCore
    init(_ core: ReplyCore) { self.core = core }

    /// `fuse_reply_entry`. Timeouts are in seconds; each successful lookup adds one to the
    /// node's lookup count (balanced later by `forget`).
    public func entry(_ attributes: FileAttributes, generation: UInt64 = 0,
                      attributeTimeout: Double = 1, entryTimeout: Double = 1) {
        var e = fuse_entry_param()
        e.ino = attributes.inode.rawValue
        e.generation = generation
        e.attr = attributes.stat
        e.attr_timeout = attributeTimeout
        e.entry_timeout = entryTimeout
        core.slot.answer("entry") { req in withUnsafePointer(to: &e) { fuse_reply_entry(req, $0) } }
    }

    /// A negative entry (node id 0) the kernel caches for `timeout` seconds.
    public func negative(timeout: Double) {
        var e = fuse_entry_param()
        e.entry_timeout = timeout
        core.slot.answer("negative entry") { req in withUnsafePointer(to: &e) { fuse_reply_entry(req, $0) } }
    }

    public func error(_ errno: Errno) { core.error(errno) }
    public var isAnswered: Bool { core.slot.isAnswered }
}

/// Reply to `getattr` and `setattr`.
public struct AttrReply: Sendable {
    let core: ReplyCore
    init(_ core: ReplyCore) { self.core = core }

    /// `fuse_reply_attr`, cached by the kernel for `timeout` seconds.
    public func attr(_ attributes: FileAttributes, timeout: Double = 1) {
        var st = attributes.stat
        core.slot.answer("attr") { req in withUnsafePointer(to: &st) { fuse_reply_attr(req, $0, timeout) } }
    }

    public func error(_ errno: Errno) { core.error(errno) }
    public var isAnswered: Bool { core.slot.isAnswered }
}

/// Reply to `readlink`.
public struct ReadlinkReply: Sendable {
    let core: ReplyCore
    init(_ core: ReplyCore) { self.core = core }

    public func link(_ target: String) {
        core.slot.answer("readlink") { req in fuse_reply_readlink(req, target) }
    }

    public func error(_ errno: Errno) { core.error(errno) }
    public var isAnswered: Bool { core.slot.isAnswered }
}

/// Reply to `open` and `opendir`.
public struct OpenReply: Sendable {
    let core: ReplyCore
    init(_ core: ReplyCore) { self.core = core }

    /// `fuse_reply_open`.
    /// - Parameters:
    ///   - handle: becomes `fi->fh` of every later request on this open file.
    ///   - directIO: `FOPEN_DIRECT_IO`: bypass the page cache; every read/write reaches the
    ///     filesystem with the client's exact offset and size. `mmap(MAP_SHARED)` then needs
    ///     `FUSEOptions.allowDirectIOMmap` (else the kernel fails it with ENODEV).
    ///   - keepCache: `FOPEN_KEEP_CACHE`: do not drop cached pages on open.
    ///   - nonSeekable: `FOPEN_NONSEEKABLE`.
    ///   - cacheDirectory: `FOPEN_CACHE_DIR` (opendir only).
    public func open(handle: UInt64 = 0, directIO: Bool = false, keepCache: Bool = false,
                     nonSeekable: Bool = false, cacheDirectory: Bool = false) {
        // A fresh fuse_file_info: the one passed to the callback lives on libfuse's stack
        // and is gone if this reply is answered later.
        var fi = fuse_file_info()
        cfuse3_fi_set_open_flags(&fi, handle, directIO ? 1 : 0, keepCache ? 1 : 0,
                                 nonSeekable ? 1 : 0, cacheDirectory ? 1 : 0)
        core.slot.answer("open") { req in withUnsafePointer(to: &fi) { fuse_reply_open(req, $0) } }
    }

    public func error(_ errno: Errno) { core.error(errno) }
    public var isAnswered: Bool { core.slot.isAnswered }
}

/// Reply to `read`: bytes (fewer than asked means end of file, except on direct_io files
/// where the count is returned to the client as is).
public struct DataReply: Sendable {
    let core: ReplyCore
    init(_ core: ReplyCore) { self.core = core }

    /// `fuse_reply_buf` with the bytes of `buffer` (copied to the kernel before returning).
    public func data(_ buffer: UnsafeRawBufferPointer) {
        core.slot.answer("data") { req in
            fuse_reply_buf(req, buffer.baseAddress?.assumingMemoryBound(to: CChar.self), buffer.count)
        }
    }

    public func data(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { data($0) }
    }

    public func data(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { data($0) }
    }

    public func error(_ errno: Errno) { core.error(errno) }
    public var isAnswered: Bool { core.slot.isAnswered }
}

/// Reply to `write`. May be held and answered later from any thread.
public struct WriteReply: Sendable {
    let core: ReplyCore
    init(_ core: ReplyCore) { self.core = core }

    /// `fuse_reply_write`: how many bytes were written.
    public func write(_ count: Int) {
        core.slot.answer("write \(count)") { req in fuse_reply_write(req, max(0, count)) }
    }

    public func error(_ errno: Errno) { core.error(errno) }
    public var isAnswered: Bool { core.slot.isAnswered }
}

/// Reply to operations whose success carries no data: flush, release, releasedir, fsync.
public struct EmptyReply: Sendable {
    let core: ReplyCore
    init(_ core: ReplyCore) { self.core = core }

    /// Success (`fuse_reply_err(req, 0)`).
    public func ok() {
        core.slot.answer("ok") { req in fuse_reply_err(req, 0) }
    }

    public func error(_ errno: Errno) { core.error(errno) }
    public var isAnswered: Bool { core.slot.isAnswered }
}

/// Reply to `readdir`. Knows the request's offset and buffer size, so a filesystem hands it the
/// whole listing and it sends the page the kernel asked for.
public struct DirectoryReply: Sendable {
    let core: ReplyCore
    /// The kernel's offset: the number of entries of the listing already returned.
    public let offset: Int64
    /// The kernel's buffer size.
    public let size: Int
    init(_ core: ReplyCore, offset: Int64, size: Int) {
        self.core = core
        self.offset = offset
        self.size = size
    }

    /// Sends the entries of `listing` starting at `offset`, as many as fit, with
    /// `fuse_add_direntry`. The listing must be in a stable order and should include "." and "..".
    public func directory(_ listing: [DirectoryEntry]) {
        let start = Int(clamping: max(0, offset))
        let capacity = max(0, size)
        core.slot.answer("directory") { req in
            guard start < listing.count, capacity > 0 else { return fuse_reply_buf(req, nil, 0) }
            var buffer = [CChar](repeating: 0, count: capacity)
            var used = 0
            buffer.withUnsafeMutableBufferPointer { buf in
                guard let base = buf.baseAddress else { return }
                for index in start..<listing.count {
                    let entry = listing[index]
                    var st = Glibc.stat()
                    st.st_ino = entry.inode.stIno
                    st.st_mode = entry.kind.modeBits
                    let need = fuse_add_direntry(req, nil, 0, entry.name, nil, 0)
                    if used + need > capacity { break }
                    // The entry's `off` is where the next readdir resumes: the next index.
                    _ = fuse_add_direntry(req, base + used, capacity - used, entry.name, &st, off_t(index + 1))
                    used += need
                }
            }
            return buffer.withUnsafeBufferPointer { fuse_reply_buf(req, $0.baseAddress, used) }
        }
    }

    public func error(_ errno: Errno) { core.error(errno) }
    public var isAnswered: Bool { core.slot.isAnswered }
}

/// Reply to `statfs`.
public struct StatfsReply: Sendable {
    let core: ReplyCore
    init(_ core: ReplyCore) { self.core = core }

    public func statfs(_ statistics: FileSystemStatistics) {
        var s = statistics.statvfs
        core.slot.answer("statfs") { req in withUnsafePointer(to: &s) { fuse_reply_statfs(req, $0) } }
    }

    public func error(_ errno: Errno) { core.error(errno) }
    public var isAnswered: Bool { core.slot.isAnswered }
}

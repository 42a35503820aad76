import SystemPackage

/// A filesystem served by a `FUSESession`, modelled on Rust fuser's `Filesystem` trait.
///
/// Every method is called on one of libfuse's worker threads (several at once: the session
/// runs the multi-threaded loop), so conforming types must be thread-safe. Each request
/// method gets a typed reply that must be answered exactly once, either before returning or
/// later from any thread (hold it). A reply dropped unanswered answers EIO and logs; a second
/// answer is ignored and logged. Defaults answer ENOSYS, or the sensible success noted.
public protocol FileSystem: AnyObject, Sendable {
    /// INIT: adjust the connection (`want`, `maxWrite`, ...). The session's options are
    /// already applied. `notifier` stays valid for the session's life.
    func initialize(connection: inout ConnectionInfo, notifier: Notifier)
    /// The session is being destroyed (after the loop ended).
    func destroy()

    func lookup(_ request: Request, parent: FUSEInode, name: String, reply: EntryReply)
    /// The kernel dropped `lookups` references to `inode`. No reply.
    func forget(_ request: Request, inode: FUSEInode, lookups: UInt64)
    /// `handle` is set when the kernel knows the open file (fstat).
    func getattr(_ request: Request, inode: FUSEInode, handle: UInt64?, reply: AttrReply)
    func setattr(_ request: Request, inode: FUSEInode, changes: AttributeChanges, handle: UInt64?, reply: AttrReply)
    func readlink(_ request: Request, inode: FUSEInode, reply: ReadlinkReply)

    func opendir(_ request: Request, inode: FUSEInode, flags: OpenFlags, reply: OpenReply)
    func readdir(_ request: Request, inode: FUSEInode, handle: UInt64, reply: DirectoryReply)
    func releasedir(_ request: Request, inode: FUSEInode, handle: UInt64, reply: EmptyReply)

    func open(_ request: Request, inode: FUSEInode, flags: OpenFlags, reply: OpenReply)
    func read(_ request: Request, _ read: ReadRequest, reply: DataReply)
    /// `data` is valid only during this call: copy it if the reply is held.
    func write(_ request: Request, _ write: WriteRequest, data: UnsafeRawBufferPointer, reply: WriteReply)
    /// Sent on every `close` of a file descriptor (synchronously, inside close).
    func flush(_ request: Request, inode: FUSEInode, handle: UInt64, lockOwner: UInt64, reply: EmptyReply)
    /// The last reference to an open file went away. Arrives *after* the client's close returned.
    func release(_ request: Request, inode: FUSEInode, handle: UInt64, flags: OpenFlags, reply: EmptyReply)
    func fsync(_ request: Request, inode: FUSEInode, handle: UInt64, dataOnly: Bool, reply: EmptyReply)
    func statfs(_ request: Request, inode: FUSEInode, reply: StatfsReply)
    /// create/mknod/mkdir/symlink/link/unlink/rmdir/rename: always refused (`TreeChange`).
    func change(_ request: Request, _ change: TreeChange, reply: RefusalReply)

    /// The answer to `Notifier.retrieve`: the bytes the kernel had in its page cache for
    /// `inode` from `offset` (possibly fewer than asked: it stops at the first uncached page
    /// and at `max_write`). `data` is valid only during the call. No reply is needed.
    func retrieveReply(cookie: UInt64, inode: FUSEInode, offset: Int64, data: UnsafeRawBufferPointer)
}

extension FileSystem {
    public func initialize(connection: inout ConnectionInfo, notifier: Notifier) {}
    public func destroy() {}

    public func lookup(_ request: Request, parent: FUSEInode, name: String, reply: EntryReply) {
        reply.error(.noFunction)
    }
    public func forget(_ request: Request, inode: FUSEInode, lookups: UInt64) {}
    public func getattr(_ request: Request, inode: FUSEInode, handle: UInt64?, reply: AttrReply) {
        reply.error(.noFunction)
    }
    public func setattr(_ request: Request, inode: FUSEInode, changes: AttributeChanges, handle: UInt64?, reply: AttrReply) {
        reply.error(.noFunction)
    }
    public func readlink(_ request: Request, inode: FUSEInode, reply: ReadlinkReply) {
        reply.error(.noFunction)
    }

    /// Default: success with handle 0.
    public func opendir(_ request: Request, inode: FUSEInode, flags: OpenFlags, reply: OpenReply) {
        reply.open()
    }
    public func readdir(_ request: Request, inode: FUSEInode, handle: UInt64, reply: DirectoryReply) {
        reply.error(.noFunction)
    }
    /// Default: success.
    public func releasedir(_ request: Request, inode: FUSEInode, handle: UInt64, reply: EmptyReply) {
        reply.ok()
    }

    /// Default: success with handle 0, through the page cache.
    public func open(_ request: Request, inode: FUSEInode, flags: OpenFlags, reply: OpenReply) {
        reply.open()
    }
    public func read(_ request: Request, _ read: ReadRequest, reply: DataReply) {
        reply.error(.noFunction)
    }
    public func write(_ request: Request, _ write: WriteRequest, data: UnsafeRawBufferPointer, reply: WriteReply) {
        reply.error(.noFunction)
    }
    /// Default: ENOSYS, which the kernel remembers and stops sending FLUSH (close succeeds).
    public func flush(_ request: Request, inode: FUSEInode, handle: UInt64, lockOwner: UInt64, reply: EmptyReply) {
        reply.error(.noFunction)
    }
    /// Default: success.
    public func release(_ request: Request, inode: FUSEInode, handle: UInt64, flags: OpenFlags, reply: EmptyReply) {
        reply.ok()
    }
    /// Default: ENOSYS, which the kernel remembers and treats as success from then on.
    public func fsync(_ request: Request, inode: FUSEInode, handle: UInt64, dataOnly: Bool, reply: EmptyReply) {
        reply.error(.noFunction)
    }
    /// Default: an empty filesystem with 255-byte names.
    public func statfs(_ request: Request, inode: FUSEInode, reply: StatfsReply) {
        reply.statfs(FileSystemStatistics())
    }
    public func retrieveReply(cookie: UInt64, inode: FUSEInode, offset: Int64, data: UnsafeRawBufferPointer) {}
    /// Default: ENOSYS, libfuse's answer for an operation a filesystem does not implement.
    public func change(_ request: Request, _ change: TreeChange, reply: RefusalReply) {
        reply.error(.noFunction)
    }
}

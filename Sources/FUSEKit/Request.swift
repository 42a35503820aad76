import CFuse3
import Glibc

/// Who sent a request, from `fuse_req_ctx`, plus the kernel's request id.
public struct Request: Sendable, Hashable {
    /// The kernel's `unique` for this request (read from libfuse's request; see the shim).
    public var unique: UInt64
    public var uid: uid_t
    public var gid: gid_t
    /// The calling thread's pid (0 for requests the kernel makes on its own, e.g. writeback).
    public var pid: pid_t
    public var umask: mode_t

    public init(unique: UInt64, uid: uid_t, gid: gid_t, pid: pid_t, umask: mode_t) {
        self.unique = unique
        self.uid = uid
        self.gid = gid
        self.pid = pid
        self.umask = umask
    }

    init(_ req: fuse_req_t) {
        let unique = cfuse3_req_unique(req)
        if let ctx = fuse_req_ctx(req)?.pointee {
            self.init(unique: unique, uid: ctx.uid, gid: ctx.gid, pid: ctx.pid, umask: ctx.umask)
        } else {
            self.init(unique: unique, uid: 0, gid: 0, pid: 0, umask: 0)
        }
    }
}

/// The `open(2)` flags a request carries (`fi->flags`).
public struct OpenFlags: OptionSet, Sendable, Hashable {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// `O_ACCMODE` part: read-only, write-only or read-write.
    public var accessMode: Int32 { rawValue & O_ACCMODE }
    public var isWritable: Bool { accessMode == O_WRONLY || accessMode == O_RDWR }
    public var isReadable: Bool { accessMode == O_RDONLY || accessMode == O_RDWR }

    public static let append = OpenFlags(rawValue: O_APPEND)
    public static let nonBlocking = OpenFlags(rawValue: O_NONBLOCK)
    public static let truncate = OpenFlags(rawValue: O_TRUNC)
    /// `O_DIRECT` (Glibc only exports it under _GNU_SOURCE, so it is spelled out per arch).
    #if arch(arm64) || arch(arm)
    public static let direct = OpenFlags(rawValue: 0o200000)
    #else
    public static let direct = OpenFlags(rawValue: 0o40000)
    #endif
    public static let sync = OpenFlags(rawValue: O_SYNC)
}

/// A READ as the kernel sent it.
///
/// A filesystem that traps small accesses (a register header) must tell a client's direct
/// `pread` (any offset/size, one request each on a `direct_io` file) from a page-fault or
/// readahead read of a mapping (page-aligned, at least a page, no `O_DIRECT` needed).
public struct ReadRequest: Sendable, Hashable {
    public var inode: FUSEInode
    /// `fi->fh` as answered by `open`.
    public var handle: UInt64
    public var offset: Int64
    public var size: Int
    /// The flags of the open file (`fi->flags`).
    public var flags: OpenFlags
    /// `fi->lock_owner`: the kernel sends one (with `FUSE_READ_LOCKOWNER`) with a process's own
    /// read(2)/pread(2) on a `direct_io` file, and none with the reads that fill the page cache.
    public var lockOwner: UInt64

    public init(inode: FUSEInode, handle: UInt64, offset: Int64, size: Int, flags: OpenFlags, lockOwner: UInt64 = 0) {
        self.inode = inode
        self.handle = handle
        self.offset = offset
        self.size = size
        self.flags = flags
        self.lockOwner = lockOwner
    }

    /// The kernel filling its page cache (a page fault of a mapping, or readahead), not a
    /// client's read: on a `direct_io` file a client's read always carries a lock owner.
    public var isPageCacheFill: Bool { lockOwner == 0 }

    /// True when the read is page-aligned and a whole number of pages: the shape of a page
    /// fault or readahead. (A client could issue such a pread too; combine with context.)
    public var isPageShaped: Bool {
        let page = Int64(sysconf(Int32(_SC_PAGESIZE)))
        return page > 0 && offset % page == 0 && Int64(size) % page == 0 && size > 0
    }
}

/// A WRITE as the kernel sent it (the bytes are passed alongside, valid only during the call).
public struct WriteRequest: Sendable, Hashable {
    public var inode: FUSEInode
    public var handle: UInt64
    public var offset: Int64
    public var size: Int
    public var flags: OpenFlags
    /// `fi->writepage`: the kernel is writing back dirty page-cache pages (a store through a
    /// shared mapping, flushed by msync/munmap/close or background writeback), not a client
    /// `pwrite`. Such writes must not be treated as protocol events.
    public var isWritepage: Bool
    /// `fi->lock_owner`.
    public var lockOwner: UInt64

    public init(inode: FUSEInode, handle: UInt64, offset: Int64, size: Int, flags: OpenFlags,
                isWritepage: Bool, lockOwner: UInt64 = 0) {
        self.inode = inode
        self.handle = handle
        self.offset = offset
        self.size = size
        self.flags = flags
        self.isWritepage = isWritepage
        self.lockOwner = lockOwner
    }
}

/// The connection parameters agreed in INIT, as seen (and adjustable) in `FileSystem.initialize`.
public struct ConnectionInfo: Sendable, Hashable {
    /// Kernel protocol version.
    public var protocolMajor: UInt32
    public var protocolMinor: UInt32
    /// `FUSE_CAP_*` bits the kernel offers (libfuse's 32-bit view).
    public var capable: UInt32
    /// `FUSE_CAP_*` bits that will be requested. Adjustable.
    public var want: UInt32
    /// Adjustable; the session's options are applied before `initialize` is called.
    public var maxWrite: UInt32
    public var maxRead: UInt32
    public var maxReadahead: UInt32
    public var maxBackground: UInt32
    public var timeGranularity: UInt32
    /// The kernel's INIT offered FUSE_DIRECT_IO_ALLOW_MMAP (known only when the session
    /// was created with `allowDirectIOMmap`; otherwise false).
    public var kernelOffersDirectIOMmap: Bool
    /// FUSEKit will set FUSE_DIRECT_IO_ALLOW_MMAP in the INIT reply (option on and offered).
    public var directIOMmapRequested: Bool
}

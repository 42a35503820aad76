import CFuse3
import Glibc

/// The type of a node, as in the `S_IFMT` bits of `st_mode` (and `d_type` in readdir).
public enum FileKind: Sendable, Hashable {
    case regular, directory, symlink, characterDevice, blockDevice, fifo, socket

    /// The `S_IFMT` bits.
    public var modeBits: mode_t {
        switch self {
        case .regular: return S_IFREG
        case .directory: return S_IFDIR
        case .symlink: return S_IFLNK
        case .characterDevice: return S_IFCHR
        case .blockDevice: return S_IFBLK
        case .fifo: return S_IFIFO
        case .socket: return S_IFSOCK
        }
    }

    public init?(modeBits: mode_t) {
        switch modeBits & S_IFMT {
        case S_IFREG: self = .regular
        case S_IFDIR: self = .directory
        case S_IFLNK: self = .symlink
        case S_IFCHR: self = .characterDevice
        case S_IFBLK: self = .blockDevice
        case S_IFIFO: self = .fifo
        case S_IFSOCK: self = .socket
        default: return nil
        }
    }
}

/// A point in time with nanosecond resolution (`struct timespec`).
public struct Timestamp: Sendable, Hashable, Comparable {
    public var seconds: Int64
    public var nanoseconds: Int32

    public init(seconds: Int64, nanoseconds: Int32 = 0) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }
    public init(_ ts: timespec) {
        self.init(seconds: Int64(ts.tv_sec), nanoseconds: Int32(truncatingIfNeeded: ts.tv_nsec))
    }
    public var timespec: Glibc.timespec { Glibc.timespec(tv_sec: Int(seconds), tv_nsec: Int(nanoseconds)) }

    /// `CLOCK_REALTIME` now.
    public static var now: Timestamp {
        var ts = Glibc.timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(ts)
    }
    public static let epoch = Timestamp(seconds: 0)

    public static func < (a: Timestamp, b: Timestamp) -> Bool {
        (a.seconds, a.nanoseconds) < (b.seconds, b.nanoseconds)
    }
}

/// What `getattr`/`lookup` report for a node: the fields of `struct stat` FUSE forwards.
public struct FileAttributes: Sendable, Hashable {
    public var inode: FUSEInode
    public var kind: FileKind
    /// Permission bits (`0o7777` part of `st_mode`).
    public var permissions: UInt16
    public var size: UInt64
    public var linkCount: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var rdev: UInt64
    public var blockSize: UInt32
    public var accessTime: Timestamp
    public var modificationTime: Timestamp
    public var changeTime: Timestamp

    public init(
        inode: FUSEInode, kind: FileKind, permissions: UInt16, size: UInt64 = 0,
        linkCount: UInt32 = 1, uid: UInt32 = getuid(), gid: UInt32 = getgid(), rdev: UInt64 = 0,
        blockSize: UInt32 = 4096, accessTime: Timestamp = .epoch,
        modificationTime: Timestamp = .epoch, changeTime: Timestamp = .epoch
    ) {
        self.inode = inode
        self.kind = kind
        self.permissions = permissions
        self.size = size
        self.linkCount = linkCount
        self.uid = uid
        self.gid = gid
        self.rdev = rdev
        self.blockSize = blockSize
        self.accessTime = accessTime
        self.modificationTime = modificationTime
        self.changeTime = changeTime
    }

    /// `st_mode`: kind plus permissions.
    public var mode: mode_t { kind.modeBits | mode_t(permissions & 0o7777) }

    /// The `struct stat` libfuse sends to the kernel.
    public var stat: Glibc.stat {
        var st = Glibc.stat()
        st.st_ino = inode.stIno
        st.st_mode = mode
        st.st_nlink = nlink_t(linkCount)
        st.st_uid = uid
        st.st_gid = gid
        st.st_rdev = dev_t(rdev)
        st.st_size = off_t(clamping: size)
        st.st_blksize = blksize_t(blockSize)
        st.st_blocks = blkcnt_t(clamping: (size + 511) / 512)
        st.st_atim = accessTime.timespec
        st.st_mtim = modificationTime.timespec
        st.st_ctim = changeTime.timespec
        return st
    }
}

/// How `setattr` sets a time: to a given value or to the server's "now" (`*_NOW`).
public enum TimeChange: Sendable, Hashable {
    case now
    case set(Timestamp)

    /// The concrete time this change stands for.
    public var resolved: Timestamp {
        switch self {
        case .now: return .now
        case .set(let t): return t
        }
    }
}

/// The fields a `setattr` asks to change (each nil when its `FUSE_SET_ATTR_*` bit is clear).
public struct AttributeChanges: Sendable, Hashable {
    public var permissions: UInt16?
    public var uid: UInt32?
    public var gid: UInt32?
    /// Truncate/extend to this size (`FUSE_SET_ATTR_SIZE`).
    public var size: UInt64?
    public var accessTime: TimeChange?
    public var modificationTime: TimeChange?
    public var changeTime: Timestamp?

    public init(
        permissions: UInt16? = nil, uid: UInt32? = nil, gid: UInt32? = nil, size: UInt64? = nil,
        accessTime: TimeChange? = nil, modificationTime: TimeChange? = nil, changeTime: Timestamp? = nil
    ) {
        self.permissions = permissions
        self.uid = uid
        self.gid = gid
        self.size = size
        self.accessTime = accessTime
        self.modificationTime = modificationTime
        self.changeTime = changeTime
    }

    /// Decodes libfuse's `(struct stat *attr, int to_set)` pair.
    init(stat st: Glibc.stat, toSet: Int32) {
        func has(_ bit: Int32) -> Bool { toSet & bit != 0 }
        self.init()
        if has(FUSE_SET_ATTR_MODE) { permissions = UInt16(st.st_mode & 0o7777) }
        if has(FUSE_SET_ATTR_UID) { uid = st.st_uid }
        if has(FUSE_SET_ATTR_GID) { gid = st.st_gid }
        if has(FUSE_SET_ATTR_SIZE) { size = UInt64(clamping: st.st_size) }
        if has(FUSE_SET_ATTR_ATIME_NOW) {
            accessTime = .now
        } else if has(FUSE_SET_ATTR_ATIME) {
            accessTime = .set(Timestamp(st.st_atim))
        }
        if has(FUSE_SET_ATTR_MTIME_NOW) {
            modificationTime = .now
        } else if has(FUSE_SET_ATTR_MTIME) {
            modificationTime = .set(Timestamp(st.st_mtim))
        }
        if has(FUSE_SET_ATTR_CTIME) { changeTime = Timestamp(st.st_ctim) }
    }

    /// True when nothing is asked (e.g. a bare `utimes` with no flags).
    public var isEmpty: Bool { self == AttributeChanges() }
}

/// One name in a directory listing.
public struct DirectoryEntry: Sendable, Hashable {
    public var inode: FUSEInode
    public var kind: FileKind
    public var name: String

    public init(inode: FUSEInode, kind: FileKind, name: String) {
        self.inode = inode
        self.kind = kind
        self.name = name
    }
}

/// What `statfs` reports (`struct statvfs`).
public struct FileSystemStatistics: Sendable, Hashable {
    public var blockSize: UInt = 4096
    public var fragmentSize: UInt = 4096
    public var blocks: UInt64 = 0
    public var freeBlocks: UInt64 = 0
    public var availableBlocks: UInt64 = 0
    public var files: UInt64 = 0
    public var freeFiles: UInt64 = 0
    public var maximumNameLength: UInt = 255

    public init() {}

    var statvfs: Glibc.statvfs {
        var s = Glibc.statvfs()
        s.f_bsize = blockSize
        s.f_frsize = fragmentSize
        s.f_blocks = fsblkcnt_t(blocks)
        s.f_bfree = fsblkcnt_t(freeBlocks)
        s.f_bavail = fsblkcnt_t(availableBlocks)
        s.f_files = fsfilcnt_t(files)
        s.f_ffree = fsfilcnt_t(freeFiles)
        s.f_favail = fsfilcnt_t(freeFiles)
        s.f_namemax = maximumNameLength
        return s
    }
}

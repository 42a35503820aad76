import SystemPackage

/// A request to change the namespace: make, link, remove or rename an entry.
///
/// FUSEKit serves filesystems whose tree is their own (sysfs-like): it hands these requests to
/// `FileSystem.change` only to be refused, so a filesystem gives the errno its model has
/// (without the operation libfuse would answer `ENOSYS`, which no real filesystem gives).
public enum TreeChange: Sendable, Hashable {
    /// `open(O_CREAT)` of a name that does not exist (`FUSE_CREATE`).
    case create(parent: FUSEInode, name: String, mode: UInt32)
    case mknod(parent: FUSEInode, name: String, mode: UInt32)
    case mkdir(parent: FUSEInode, name: String, mode: UInt32)
    case symlink(parent: FUSEInode, name: String, target: String)
    case link(inode: FUSEInode, newParent: FUSEInode, newName: String)
    case unlink(parent: FUSEInode, name: String)
    case rmdir(parent: FUSEInode, name: String)
    case rename(parent: FUSEInode, name: String, newParent: FUSEInode, newName: String)
}

/// Reply to a `TreeChange`: only a refusal (FUSEKit offers no way to accept one).
public struct RefusalReply: Sendable {
    let core: ReplyCore
    init(_ core: ReplyCore) { self.core = core }

    public func error(_ errno: Errno) { core.error(errno) }
    public var isAnswered: Bool { core.slot.isAnswered }
}

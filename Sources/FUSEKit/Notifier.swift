import CFuse3
import Glibc
import SystemPackage

/// Kernel cache notifications of one session (`fuse_lowlevel_notify_*`).
///
/// Safe to use from any thread, including from inside filesystem callbacks (the session runs
/// the multi-threaded loop: `invalidateInode` on dirty pages waits for a writeback that another
/// worker must serve). After the session ends, every call throws `ENOTCONN`.
public struct Notifier: Sendable {
    let context: SessionContext

    /// `fuse_lowlevel_notify_store`: puts `bytes` into the kernel's page cache of `inode` at
    /// `offset` (extending the cached size if needed). Existing mappings see them at once.
    public func store(inode: FUSEInode, offset: Int64, bytes: UnsafeRawBufferPointer) throws(Errno) {
        let rc = context.withLiveSession { se -> Int32 in
            var bufv = cfuse3_bufvec_mem(UnsafeMutableRawPointer(mutating: bytes.baseAddress), bytes.count)
            return fuse_lowlevel_notify_store(se, inode.rawValue, off_t(offset), &bufv, FUSE_BUF_NO_SPLICE)
        }
        try check(rc)
    }

    public func store(inode: FUSEInode, offset: Int64, bytes: [UInt8]) throws(Errno) {
        let rc: Int32? = bytes.withUnsafeBytes { raw in
            context.withLiveSession { se -> Int32 in
                var bufv = cfuse3_bufvec_mem(UnsafeMutableRawPointer(mutating: raw.baseAddress), raw.count)
                return fuse_lowlevel_notify_store(se, inode.rawValue, off_t(offset), &bufv, FUSE_BUF_NO_SPLICE)
            }
        }
        try check(rc)
    }

    /// `fuse_lowlevel_notify_retrieve`: asks the kernel for up to `size` cached bytes of `inode`
    /// from `offset`. The answer arrives later as `FileSystem.retrieveReply(cookie:...)`.
    /// The kernel returns at most `max_write` bytes per call and stops at the first page that is
    /// not in its page cache, so the reply can be shorter than asked (or empty).
    public func retrieve(inode: FUSEInode, size: Int, offset: Int64, cookie: UInt64) throws(Errno) {
        try check(context.withLiveSession { se in
            fuse_lowlevel_notify_retrieve(
                se, inode.rawValue, size, off_t(offset), UnsafeMutableRawPointer(bitPattern: UInt(cookie)))
        })
    }

    /// `fuse_lowlevel_notify_inval_inode`: drops cached attributes and, when `offset >= 0`,
    /// the cached pages in `[offset, offset+length)` (`length <= 0`: to the end of the file).
    /// A negative `offset` invalidates only the attributes.
    public func invalidateInode(_ inode: FUSEInode, offset: Int64 = 0, length: Int64 = 0) throws(Errno) {
        try check(context.withLiveSession { se in
            fuse_lowlevel_notify_inval_inode(se, inode.rawValue, off_t(offset), off_t(length))
        })
    }

    /// `fuse_lowlevel_notify_inval_entry`: drops the cached lookup of `name` in `parent`.
    public func invalidateEntry(parent: FUSEInode, name: String) throws(Errno) {
        let length = name.utf8.count
        try check(context.withLiveSession { se in
            fuse_lowlevel_notify_inval_entry(se, parent.rawValue, name, length)
        })
    }

    private func check(_ rc: Int32?) throws(Errno) {
        guard let rc else { throw .socketNotConnected }
        if rc < 0 { throw Errno(rawValue: -rc) }
        if rc > 0 { throw Errno(rawValue: rc) }
    }
}

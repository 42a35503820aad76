/// Bytes of migration data copied on behalf of one device, by where the copy happens: the
/// figure behind "copies per chunk" (issue 15). The engine counts its own copies; the mount
/// counts the kernel's copies into and out of the daemon that its replies and notifications
/// cause. Counted from the sizes actually moved, never assumed; checksum and comparison passes
/// read the bytes and are not copies.
public struct CopyTally: Sendable, Hashable, Codable {
    /// The engine: a chunk staged into the data section (save).
    public var staged: UInt64 = 0
    /// The engine: the bytes past a chunk built ahead, carried over from the buffer it replaces
    /// as the data section (`StageAhead.swift`): not the chunk's, but copied all the same.
    public var sectionTail: UInt64 = 0
    /// The engine: a client's pwrite copied into the data section (resume).
    public var pwriteIntoSection: UInt64 = 0
    /// The engine: the data section copied into a caller's buffer (an in-process read).
    public var sectionIntoCaller: UInt64 = 0
    /// The engine: a client's stores fetched back from the page cache, copied into the section.
    public var mappingIntoSection: UInt64 = 0
    /// The engine: received pages copied into device memory (a page kept as a reference is
    /// compared, not copied).
    public var intoMemory: UInt64 = 0
    /// The kernel, for the mount: pread replies copied out of the data section.
    public var replyFromSection: UInt64 = 0
    /// The kernel, for the mount: `notify_store` of the section into the page cache.
    public var pageCacheStore: UInt64 = 0
    /// The kernel, for the mount: pages of the page cache copied into the daemon (retrieve
    /// replies, writebacks).
    public var pageCacheIntoDaemon: UInt64 = 0
    /// The kernel, for the mount: a client's pwrite copied into the daemon's request buffer.
    public var writeIntoDaemon: UInt64 = 0

    public init() {}

    /// All of them.
    public var total: UInt64 {
        staged + sectionTail + pwriteIntoSection + sectionIntoCaller + mappingIntoSection + intoMemory
            + replyFromSection + pageCacheStore + pageCacheIntoDaemon + writeIntoDaemon
    }

    /// The sum of two tallies (a source's and its destination's).
    public static func + (a: CopyTally, b: CopyTally) -> CopyTally {
        var s = a
        s.staged += b.staged; s.sectionTail += b.sectionTail; s.pwriteIntoSection += b.pwriteIntoSection; s.sectionIntoCaller += b.sectionIntoCaller
        s.mappingIntoSection += b.mappingIntoSection; s.intoMemory += b.intoMemory; s.replyFromSection += b.replyFromSection
        s.pageCacheStore += b.pageCacheStore; s.pageCacheIntoDaemon += b.pageCacheIntoDaemon; s.writeIntoDaemon += b.writeIntoDaemon
        return s
    }
}

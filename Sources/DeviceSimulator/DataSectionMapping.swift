/// How a client reaches the data section besides pread and pwrite, as far as the checker can tell.
public enum DataSectionMapping: Sendable, Hashable {
    /// Only pread/pwrite: the engine sees every data access.
    case none
    /// A mount's page cache: save-side reads of the mapping are served by the kernel (unseen),
    /// resume-side stores come back through `storeThroughMapping`.
    case pageCache
    /// An in-process client that uses `dataSection` itself: the engine sees no data access.
    case direct
}

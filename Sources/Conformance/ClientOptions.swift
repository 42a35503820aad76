/// How the reference client migrates: the knobs of a VMM's migration loop.
public struct ClientOptions: Sendable, Hashable {
    /// How the client moves the data section's bytes.
    public enum DataAccess: Sendable, Hashable {
        /// Through the mapping when the region offers one (QEMU's path), else pread/pwrite.
        case mapped
        /// pread/pwrite in pieces of at most this many bytes (QEMU's non-mmap path uses 8).
        case pieces(Int)
    }

    /// Pre-copy stops once `pending_bytes` is at most this.
    public var precopyThreshold: UInt64
    /// Pre-copy stops after this many iterations even if it has not converged.
    public var maxPrecopyIterations: Int
    public var dataAccess: DataAccess
    /// Save a paused guest: running -> stop first, then stop-and-copy with no pre-copy.
    public var pausedGuest: Bool
    /// Cancel the migration after this many pre-copy iterations and roll the source back to running.
    public var cancelAfterIterations: Int?
    /// After a failure that left a device in the error state, reset it and check it runs again.
    public var resetOnError: Bool

    public init(
        precopyThreshold: UInt64 = 1 << 20,
        maxPrecopyIterations: Int = 30,
        dataAccess: DataAccess = .mapped,
        pausedGuest: Bool = false,
        cancelAfterIterations: Int? = nil,
        resetOnError: Bool = true
    ) {
        self.precopyThreshold = precopyThreshold
        self.maxPrecopyIterations = maxPrecopyIterations
        self.dataAccess = dataAccess
        self.pausedGuest = pausedGuest
        self.cancelAfterIterations = cancelAfterIterations
        self.resetOnError = resetOnError
    }
}

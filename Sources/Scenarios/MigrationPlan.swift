/// Which device types migrate, and how the reference client drives the migration.
public struct MigrationPlan: Sendable, Hashable {
    /// Type name of the source device.
    public var source: String
    /// Type name of the destination device: the source's type unless the scenario tests an
    /// incompatible destination.
    public var destination: String
    /// The reference client's plan.
    public var client: ClientPlan

    public init(source: String, destination: String? = nil, client: ClientPlan = ClientPlan()) {
        self.source = source
        self.destination = destination ?? source
        self.client = client
    }
}

/// How the reference client (a VMM stand-in) runs the save and the resume.
public struct ClientPlan: Sendable, Hashable {
    /// Pre-copy passes before the client moves to stop-and-copy regardless of `pending_bytes`.
    public var maxPrecopyIterations: Int
    /// Pre-copy ends once `pending_bytes` is at most this many bytes.
    public var stopThreshold: UInt64
    /// How the client moves data-section bytes.
    public var access: DataAccessMode
    /// Save a paused guest: running -> stop -> stop-and-copy, with no pre-copy.
    public var guestPaused: Bool
    /// Cancel the migration after this many pre-copy iterations and return the source to running.
    public var cancelInPrecopyAfter: Int?

    public init(
        maxPrecopyIterations: Int = 16, stopThreshold: UInt64 = 1 << 20, access: DataAccessMode = .mmap,
        guestPaused: Bool = false, cancelInPrecopyAfter: Int? = nil
    ) {
        self.maxPrecopyIterations = maxPrecopyIterations
        self.stopThreshold = stopThreshold
        self.access = access
        self.guestPaused = guestPaused
        self.cancelInPrecopyAfter = cancelInPrecopyAfter
    }
}

/// How the client reads and writes the data section.
public enum DataAccessMode: String, Sendable, Hashable, CaseIterable {
    /// Through a mapping of the data section (needs `mmap: true` on both sides).
    case mmap
    /// `pread`/`pwrite` of whole chunks.
    case pread
    /// `pread`/`pwrite` in pieces of at most 8 bytes, as QEMU does without a mapping.
    case pread8
}

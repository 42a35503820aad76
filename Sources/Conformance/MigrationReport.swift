/// What one migration by the reference client did and saw. Encodes as JSON with snake_case keys.
public struct MigrationReport: Sendable, Hashable, Codable {
    /// Where a migration stopped, when it did not complete.
    public struct Failure: Sendable, Hashable, Codable {
        /// The step, e.g. `source data_offset read in stop-and-copy`.
        public var step: String
        /// The errno name (`EIO`), when an access failed.
        public var errno: String?
        public var message: String
    }

    /// `completed`, `failed` or `cancelled`.
    public var outcome: String
    public var sourceDigest: String?
    public var destinationDigest: String?
    /// True when both digests exist and are equal.
    public var digestsMatch: Bool
    public var precopyIterations: Int
    /// Whether pending fell to the threshold before the iteration limit.
    public var converged: Bool
    /// Bytes moved: `precopy`, `stop_and_copy`, `total`.
    public var bytes: Bytes
    public var chunks: Chunks
    /// Every `pending_bytes` value the source reported, in order.
    public var pendingSequence: [UInt64]
    /// Bytes moved while the source was stopped (the downtime's payload).
    public var bytesWhileStopped: UInt64
    /// `bytes_while_stopped` at the link bandwidth, in milliseconds.
    public var downtimeEstimateMs: Double
    /// Device time of the source at stop, in milliseconds (virtual clock unless wall mode).
    public var sourceTimeMs: Double
    public var failure: Failure?
    /// Final `device_state` names of source and destination.
    public var sourceState: String
    public var destinationState: String
    /// Set when a device was left in the error state and a reset brought it back to running.
    public var recoveredByReset: Bool?
    /// Protocol violations the devices recorded during this migration (a correct client has none).
    public var violations: [String]
    /// How the client's resume transactions differed from the source's chunks.
    public var resumeDeviations: [String]
    /// `violations` with the access and state of each, for reports that place them (HTML).
    public var violationDetails: [ViolationDetail]? = nil
    /// The injected faults that fired, in order, as `source: NAME` / `destination: NAME`.
    public var firedFaults: [String]? = nil

    public struct Bytes: Sendable, Hashable, Codable {
        public var precopy: UInt64
        public var stopAndCopy: UInt64
        public var total: UInt64
    }

    public struct Chunks: Sendable, Hashable, Codable {
        public var precopy: Int
        public var stopAndCopy: Int
        /// `data_size` writes on the destination (more than chunks when the client split them).
        public var resumeTransactions: Int
    }

    public var succeeded: Bool { outcome == "completed" && digestsMatch }
}

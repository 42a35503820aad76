/// What a reference client (v1 or v2) counts while it migrates, and the one place those counts
/// become a `MigrationReport`: both clients keep the same tally, so a report means the same
/// thing whichever protocol made it.
struct MigrationTally {
    /// Every pending value the source reported, in order: v1's `pending_bytes` reads, v2's
    /// PRECOPY_INFO `initial_bytes + dirty_bytes`.
    var pending: [UInt64] = []
    var precopyIterations = 0
    /// Whether pending fell to the threshold before the iteration limit.
    var converged = false
    var precopyBytes: UInt64 = 0
    /// Bytes moved while the source was stopped.
    var stopBytes: UInt64 = 0
    /// Source chunks (v1) or data_fd reads (v2) per phase, and destination `data_size` writes
    /// (v1) or data_fd writes (v2).
    var chunks = MigrationReport.Chunks(precopy: 0, stopAndCopy: 0, resumeTransactions: 0)
    /// Where the migration is, to name the step of a failure: `setup`, `pre-copy`,
    /// `stop-and-copy` (v1) or `stop-copy` (v2), `resumed`.
    var phase = "setup"

    /// The report of the migration so far, before the devices' own records are attached
    /// (`attach`): the digests decide `digestsMatch`, the stopped bytes the downtime estimate at
    /// `linkBandwidth` bytes per second.
    func report(outcome: String, sourceDigest: String?, destinationDigest: String?, linkBandwidth: UInt64,
                failure: MigrationReport.Failure?, sourceState: String, destinationState: String,
                recoveredByReset: Bool?) -> MigrationReport {
        MigrationReport(
            outcome: outcome,
            sourceDigest: sourceDigest, destinationDigest: destinationDigest,
            digestsMatch: sourceDigest != nil && sourceDigest == destinationDigest,
            precopyIterations: precopyIterations, converged: converged,
            bytes: .init(precopy: precopyBytes, stopAndCopy: stopBytes, total: precopyBytes + stopBytes),
            chunks: chunks,
            pendingSequence: pending,
            bytesWhileStopped: stopBytes,
            downtimeEstimateMs: Double(stopBytes) / Double(linkBandwidth) * 1000,
            sourceTimeMs: 0,
            failure: failure,
            sourceState: sourceState, destinationState: destinationState,
            recoveredByReset: recoveredByReset,
            violations: [], resumeDeviations: [])
    }
}

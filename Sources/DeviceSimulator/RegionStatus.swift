import MigrationProtocol

/// A snapshot of a device and its migration session, for `state` files and reports.
/// Encodes as JSON with snake_case keys.
public struct RegionStatus: Sendable, Hashable, Codable {
    public struct Save: Sendable, Hashable, Codable {
        public var phase: String
        public var pagesPending: UInt64
        public var pagesSent: UInt64
        public var chunks: [String: UInt64]
        public var bytes: [String: UInt64]
        /// Region offset and size of the staged chunk, if one is staged.
        public var stagedOffset: UInt64?
        public var stagedSize: UInt64?
        public var lastPendingBytes: UInt64?
        public var streamComplete: Bool
    }

    public struct Resume: Sendable, Hashable, Codable {
        public var chunks: Int
        public var transactions: Int
        public var bytes: UInt64
        public var pagesApplied: UInt64
        public var headerSeen: Bool
        public var complete: Bool
        public var deviations: Int
    }

    public var deviceState: UInt32
    public var stateName: String
    public var typeName: String
    public var memorySize: UInt64
    public var pageSize: UInt64
    public var pagesDirtied: UInt64
    public var materializedPages: UInt64
    public var deviceTimeNs: UInt64
    public var save: Save?
    public var resume: Resume?
    public var lastSave: SaveFigures?
    public var lastResume: ResumeFigures?
    public var violations: Int
    public var firedFaults: [String]
    public var lastError: String?
    public var accesses: UInt64
    /// Bytes of migration data copied for the device, by site (`CopyTally`).
    public var copies: CopyTally
    /// How building save chunks ahead went (`StageAhead.swift`): zeros when it is off.
    public var stagedAhead: StageAheadFigures
}

extension MigrationRegion {
    /// The device and session as they are now.
    public var status: RegionStatus {
        let phase: MigrationPhase = state.isRunning ? .preCopy : .stopAndCopy
        return RegionStatus(
            deviceState: state.rawValue, stateName: state.name, typeName: configuration.typeName,
            memorySize: configuration.memorySize, pageSize: configuration.pageSize,
            pagesDirtied: device.pagesDirtied, materializedPages: device.materializedPages,
            deviceTimeNs: now,
            save: saveSession.map { s in
                RegionStatus.Save(
                    phase: phase.rawValue, pagesPending: s.dirty.setCount, pagesSent: s.pagesSent,
                    chunks: s.chunksConsumed.mapKeys(\.rawValue), bytes: s.bytesConsumed.mapKeys(\.rawValue),
                    stagedOffset: s.staged?.offset, stagedSize: s.staged?.size, lastPendingBytes: lastPendingBytes,
                    streamComplete: s.streamComplete)
            },
            resume: resumeSession.map { r in
                RegionStatus.Resume(
                    chunks: r.chunksApplied, transactions: r.writes, bytes: r.bytesApplied, pagesApplied: r.pagesApplied,
                    headerSeen: r.headerSeen, complete: r.complete, deviations: r.deviations.count)
            },
            lastSave: lastSave, lastResume: lastResume, violations: violations.count,
            firedFaults: firedFaults, lastError: lastError, accesses: accessCount, copies: copies,
            stagedAhead: stagedAhead)
    }
}

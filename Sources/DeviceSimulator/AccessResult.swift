import SystemPackage

/// The device's answer to one region access.
public struct AccessResult: Sendable, Hashable {
    /// Bytes transferred, or the errno the access fails with.
    public var outcome: Result<Int, Errno>
    /// How long the device makes the access wait (an injected stall). The engine does no I/O:
    /// a caller serving a real client sleeps this long before answering.
    public var stallNanoseconds: UInt64
    /// The value of a header field read, for traces.
    public var value: UInt64?
    /// Region offsets of a chunk this access (a `data_offset` read) has just staged: a mapping
    /// layer pushes these bytes to the client's mapping before answering.
    public var staged: Range<UInt64>?

    init(count: Int) {
        outcome = .success(count)
        stallNanoseconds = 0
    }

    init(_ errno: Errno, stall: UInt64 = 0) {
        outcome = .failure(errno)
        stallNanoseconds = stall
    }

    /// The errno, if the access failed.
    public var errno: Errno? {
        if case .failure(let e) = outcome { return e }
        return nil
    }
}

/// What one save session produced, kept after it ends.
public struct SaveFigures: Sendable, Hashable, Codable {
    /// Bytes consumed per phase name (`pre-copy`, `stop-and-copy`).
    public var bytes: [String: UInt64]
    public var chunks: [String: UInt64]
    public var pagesSent: UInt64
    public var streamComplete: Bool
}

/// What one resume session applied, kept after it ends.
public struct ResumeFigures: Sendable, Hashable, Codable {
    public var chunks: Int
    public var transactions: Int
    public var bytes: UInt64
    public var pagesApplied: UInt64
    public var complete: Bool
    /// How the client's transactions differed from the source's chunks.
    public var deviations: [String]
}

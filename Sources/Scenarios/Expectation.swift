import DeviceSimulator
import MigrationProtocol
import SystemPackage

/// What a correct VMM should observe when it runs the scenario's migration. A value only: the
/// runner that judges a run against it lives in Conformance.
public struct Expectation: Sendable, Hashable {
    /// How the migration ends.
    public var outcome: Outcome
    /// At least this many pre-copy iterations happen before stop-and-copy (or the cancel).
    public var minPrecopyIterations: Int?
    /// Whether pre-copy reaches the stop threshold (`true`) or runs out of iterations (`false`);
    /// `nil` when the scenario does not say.
    public var converges: Bool?
    /// The migration is cancelled in pre-copy and the source returns to running.
    public var cancelled: Bool
    /// The source's device time when the migration ends is at least this many nanoseconds
    /// (what its chunks take on the link plus the stalls its faults inject).
    public var minSourceTimeNs: UInt64?

    public init(outcome: Outcome = .success, minPrecopyIterations: Int? = nil, converges: Bool? = nil, cancelled: Bool = false,
                minSourceTimeNs: UInt64? = nil) {
        self.outcome = outcome
        self.minPrecopyIterations = minPrecopyIterations
        self.converges = converges
        self.cancelled = cancelled
        self.minSourceTimeNs = minSourceTimeNs
    }

    /// How a migration ends.
    public enum Outcome: Sendable, Hashable {
        /// The migration completes and source and destination digests are equal.
        case success
        /// The migration fails at `step`. `errno` is what the device returns there; `nil` when a
        /// correct client must detect the problem itself (a misaligned `data_offset`, say).
        case failure(errno: Errno?, step: FailureStep)
        /// The device ends in the error state (110b); `recoversByReset` says a reset brings it back
        /// to running.
        case errorState(recoversByReset: Bool)
    }
}

/// Where a failing migration fails.
public enum FailureStep: Sendable, Hashable, CustomStringConvertible {
    /// An access to a header field, optionally only while the device holds `state` (bits 0...7).
    case access(field: HeaderField, operation: AccessOperation, state: UInt32?)
    /// A read or write of the data section, optionally only while the device holds `state`.
    case data(operation: AccessOperation, state: UInt32?)
    /// A `device_state` write from one state to another.
    case transition(from: UInt32, to: UInt32)

    /// The spelling scenario files use: `data_offset read in stop-and-copy`, `data write`,
    /// `pre-copy -> stop-and-copy`.
    public var description: String {
        func suffix(_ state: UInt32?) -> String { state.map { " in \(StateName.name(of: $0))" } ?? "" }
        switch self {
        case .access(let field, let operation, let state): return "\(field.rawValue) \(operation.rawValue)\(suffix(state))"
        case .data(let operation, let state): return "data \(operation.rawValue)\(suffix(state))"
        case .transition(let from, let to): return "\(StateName.name(of: from)) -> \(StateName.name(of: to))"
        }
    }
}

extension FailureStep {
    /// The header accesses a migration can fail at as the reference client reports them (its
    /// steps are `<role> <field> <op> [in <phase>]`): the one definition that the `step:`
    /// grammar accepts and the client's steps are tested against. A `device_state` write is
    /// reported as its transition (`FROM -> TO`), never as an access; the client never writes
    /// `pending_bytes`, `data_offset` or `reserved` (read-only or ignored) nor reads `reserved`.
    public static let reportableAccesses: [HeaderField: Set<AccessOperation>] = [
        .deviceState: [.read],
        .pendingBytes: [.read],
        .dataOffset: [.read],
        .dataSize: [.read, .write],
    ]

    /// Whether a run can ever report this step (false: an expectation naming it never matches).
    public var isReportable: Bool {
        switch self {
        case .access(let field, let operation, _): return Self.reportableAccesses[field]?.contains(operation) == true
        case .data, .transition: return true
        }
    }
}

import MigrationProtocol
import SystemPackage

/// One injected fault: when `trigger` matches, the device performs `action`.
/// Everything is deterministic: triggers count events, never time.
public struct Fault: Sendable, Hashable {
    /// A short name for logs and reports (the scenario's, or derived).
    public var name: String
    public var trigger: FaultTrigger
    public var action: FaultAction
    /// How many times the fault fires once its trigger first matches: 1 by default; `nil` for
    /// every later matching event too.
    public var times: Int?
    /// Which side of a migration the fault belongs to: events count only while the device is in a
    /// save session (`source`: entering or holding a saving state) or a resume session
    /// (`destination`), or always (`any`).
    public var role: FaultRole

    public init(name: String, trigger: FaultTrigger, action: FaultAction, times: Int? = 1, role: FaultRole = .any) {
        self.name = name
        self.trigger = trigger
        self.action = action
        self.times = times
        self.role = role
    }
}

/// The side of a migration a fault applies to.
public enum FaultRole: String, Sendable, Hashable, CaseIterable {
    case any
    case source
    case destination
}

/// Read or write.
public enum AccessOperation: String, Sendable, Hashable, CaseIterable {
    case read
    case write
}

/// The phases in which chunks move.
public enum MigrationPhase: String, Sendable, Hashable, CaseIterable {
    case preCopy = "pre-copy"
    case stopAndCopy = "stop-and-copy"
    case resuming = "resuming"
}

/// What makes a fault fire. Occurrences and indexes count from 1.
public enum FaultTrigger: Sendable, Hashable {
    /// The `occurrence`-th access to a header field, counting only reads or writes when
    /// `operation` is given.
    case access(field: HeaderField, operation: AccessOperation?, occurrence: Int)
    /// The `occurrence`-th user write that asks to enter the state with these bits.
    case enterState(bits: UInt32, occurrence: Int)
    /// A user write asking to go from one state to another (bits 0...7 each).
    case transition(from: UInt32, to: UInt32)
    /// The `index`-th chunk of a phase: staged by a `data_offset` read on the save side,
    /// applied by a `data_size` write on the resume side.
    case chunk(phase: MigrationPhase, index: Int)
    /// The first chunk after which the bytes moved in `phase` (all phases when `nil`) reach `count`.
    case bytes(phase: MigrationPhase?, count: UInt64)
}

/// What a fired fault does. Each is something a real vendor driver can do.
public enum FaultAction: Sendable, Hashable {
    /// The triggering access fails with this errno. On a `device_state` write the state stays put.
    case fail(Errno)
    /// The triggering access fails with this errno and the device enters the error state (110b).
    case failToErrorState(Errno)
    /// The triggering access succeeds only after this many nanoseconds (virtual time advances by
    /// the same amount; in wall-clock mode the caller really waits).
    case stall(nanoseconds: UInt64)
    /// XOR `count` bytes at `offset` of the chunk with 0xFF: on the save side in the staged data,
    /// on the resume side in the data section just before it is applied.
    case corruptChunk(offset: UInt64, count: UInt64)
    /// `data_size` reads report more than the data section holds.
    case oversizeDataSize
    /// `data_offset` reads return an offset that is not page aligned.
    case misalignedDataOffset
    /// `data_offset` reads return an offset inside the trapped header.
    case overlappingDataOffset
    /// In stop-and-copy `pending_bytes` never reaches 0: after the last chunk it stays at `remaining`.
    case pendingNeverZero(remaining: UInt64)
    /// In stop-and-copy `pending_bytes` grows by `bytes` at every read.
    case pendingGrows(bytes: UInt64)
    /// Data-section reads return at most `bytes` bytes (a short read).
    case shortRead(bytes: UInt64)
}

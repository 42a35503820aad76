import MigrationProtocol
import SystemPackage

/// The scenario's faults on a v2 device: the same triggers and actions as v1, where they mean
/// something in v2 (`scenarios/README.md` says which):
///
/// - state triggers (`enter:`, `from:`/`to:`) name v1 states; each is the v2 state of the same
///   meaning (running RUNNING, pre-copy PRE_COPY, stop-and-copy STOP_COPY, stop STOP, resuming
///   RESUMING) and fires on the arc of a SET walk that enters it. `fail` fails that SET at that
///   arc (the device stays in the state reached, as the uAPI allows); `fail_to_error_state` leaves
///   it in ERROR ("unable to execute the requested arc and ... to restore ... any valid state");
/// - chunk and byte triggers fire on each chunk the source stages for data_fd reads, and on each
///   `write()` the destination applies. `fail` fails that read or write; `fail_to_error_state` also
///   breaks the session, so that leaving its state fails into ERROR (a v2 device never changes
///   state by itself: only a SET or a reset does);
/// - `corrupt` flips bytes of the staged chunk (source) or of the written bytes before they are
///   applied (destination); `short_read` caps every data_fd read of the chunk; `stall` makes the
///   call wait while device time advances; `pending_never_zero` and `pending_grows` make
///   `MIG_DATA_SIZE` and `PRECOPY_INFO` lie (the stream itself still ends);
/// - access triggers and the region-shape actions (`oversize_data_size`, `misaligned_data_offset`,
///   `overlapping_data_offset`) belong to v1's header and data section: they never fire in v2.
struct V2Faults {
    private var injector: FaultInjector
    /// Names of the faults that fired, in order.
    var log: [String] { injector.log }
    /// Lies of the current save session about its remaining bytes.
    private(set) var pendingFloor: UInt64?
    private(set) var pendingGrowthStep: UInt64 = 0
    private var pendingGrowth: UInt64 = 0
    /// A cap on each data_fd read of the current chunk.
    private(set) var shortRead: UInt64?

    init(faults: [Fault]) { injector = FaultInjector(faults: faults) }

    /// The v1 state bits of the same meaning as a v2 state, for state triggers.
    static func v1Bits(_ state: V2DeviceState) -> UInt32? {
        switch state {
        case .stop: DeviceState.stop.bits
        case .running: DeviceState.running.bits
        case .preCopy: DeviceState.preCopy.bits
        case .stopCopy: DeviceState.stopAndCopy.bits
        case .resuming: DeviceState.resuming.bits
        case .runningP2P, .preCopyP2P, .error: nil
        }
    }

    /// The actions an arc `from -> to` of a SET walk fires.
    mutating func arc(from: V2DeviceState, to: V2DeviceState) -> [FaultAction] {
        guard let t = Self.v1Bits(to) else { return [] }
        // A P2P state stands for its fully running twin as the arc's origin.
        let origin = from == .runningP2P ? V2DeviceState.running : from == .preCopyP2P ? .preCopy : from
        let f = Self.v1Bits(origin) ?? t
        let role: FaultRole = to == .resuming ? .destination : to.isSaving ? .source : .any
        return injector.fire(.stateWrite(from: f, to: t), role: role)
    }

    /// The actions a chunk fires: staged by the source (`pre-copy`, `stop-and-copy`) or
    /// written by the destination (`resuming`).
    mutating func chunk(_ phase: MigrationPhase, index: Int, phaseBytes: UInt64, totalBytes: UInt64) -> [FaultAction] {
        injector.fire(.chunk(phase: phase, index: index, phaseBytes: phaseBytes, totalBytes: totalBytes),
                      role: phase == .resuming ? .destination : .source)
    }

    /// Remembers the save-side lies and caps an action carries; returns nothing for others.
    mutating func note(_ action: FaultAction) {
        switch action {
        case .pendingNeverZero(let remaining): pendingFloor = remaining
        case .pendingGrows(let bytes): pendingGrowthStep = bytes
        case .shortRead(let bytes): shortRead = bytes
        default: break
        }
    }

    /// The remaining bytes a save session reports, with the lies applied: at least the floor,
    /// and growing at every query.
    mutating func reported(_ pending: UInt64) -> UInt64 {
        pendingGrowth += pendingGrowthStep
        var value = pending + pendingGrowth
        if let floor = pendingFloor { value = max(value, floor) }
        return value
    }

    /// A new save session: the lies of the last one are gone.
    mutating func sessionEnded() {
        pendingFloor = nil
        pendingGrowthStep = 0
        pendingGrowth = 0
        shortRead = nil
    }

    /// A new chunk: the last one's read cap is gone.
    mutating func chunkStaged() { shortRead = nil }
}

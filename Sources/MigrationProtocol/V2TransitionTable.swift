/// The v2 state machine as data: the single arcs the uAPI defines and, for every (current,
/// requested) pair, the next state on the way, exactly as the kernel's
/// `vfio_mig_get_next_state()` (drivers/vfio/vfio_main.c, Linux 6.2+) chooses it.
///
/// A SET that is not a single arc is carried out as a walk: take `next(from, to)`, skip states the
/// device does not offer by asking again from the skipped state, perform that arc, repeat until
/// `to` is reached. A failing arc stops the walk with the device in the last state reached, which
/// is what the uAPI allows ("the current device_state may be the original operating state or some
/// other state along the combination transition path").
public enum V2TransitionTable {
    /// What performing one arc means for the device; the engine acts on these, nothing else.
    public struct Arc: Sendable, Hashable {
        public let from: V2DeviceState
        public let to: V2DeviceState
        /// Why the arc exists, in the uAPI's words.
        public let meaning: String
    }

    /// Every single arc of the uAPI text. Arcs not listed are never performed one by one.
    public static let arcs: [Arc] = [
        Arc(from: .runningP2P, to: .stop, meaning: "the device stops: no DMA, no interrupts, internal state frozen"),
        Arc(from: .stopCopy, to: .stop, meaning: "the save session ends (the data_fd reads nothing more)"),
        Arc(from: .resuming, to: .stop, meaning: "the resume session ends: the device judges the whole stream written to the data_fd"),
        Arc(from: .runningP2P, to: .running, meaning: "the device runs fully again, peer-to-peer DMA included"),
        Arc(from: .running, to: .runningP2P, meaning: "the device stops initiating peer-to-peer DMA"),
        Arc(from: .stop, to: .runningP2P, meaning: "the device runs again, without peer-to-peer DMA"),
        Arc(from: .stop, to: .stopCopy, meaning: "a save session begins: a new data_fd streams the whole device state"),
        Arc(from: .stop, to: .resuming, meaning: "a resume session begins: a new data_fd accepts a stream"),
        Arc(from: .running, to: .preCopy, meaning: "a save session begins while running: a new data_fd streams the initial state"),
        Arc(from: .runningP2P, to: .preCopyP2P, meaning: "a save session begins while P2P-quiesced: a new data_fd streams the initial state"),
        Arc(from: .preCopy, to: .running, meaning: "the save session is abandoned; the device keeps running"),
        Arc(from: .preCopyP2P, to: .runningP2P, meaning: "the save session is abandoned; the device stays P2P-quiesced"),
        Arc(from: .preCopy, to: .preCopyP2P, meaning: "inside the save session, the device stops initiating peer-to-peer DMA"),
        Arc(from: .preCopyP2P, to: .preCopy, meaning: "inside the save session, the device resumes peer-to-peer DMA"),
        Arc(from: .preCopyP2P, to: .stopCopy, meaning: "the same save session goes on with the device stopped: the final state streams"),
        // Without P2P the uAPI's arcs collapse onto their non-P2P twins; a driver implements these.
        Arc(from: .running, to: .stop, meaning: "(no P2P) the device stops"),
        Arc(from: .stop, to: .running, meaning: "(no P2P) the device runs again"),
        Arc(from: .preCopy, to: .stopCopy, meaning: "(no P2P) the same save session goes on with the device stopped"),
    ]

    // One row per current state, one column per requested state, in raw-value order
    // (ERROR, STOP, RUNNING, STOP_COPY, RESUMING, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P).
    // Each cell is the next state on the kernel's path; ERROR in a cell means "refused".
    private static let E = V2DeviceState.error, S = V2DeviceState.stop, R = V2DeviceState.running
    private static let SC = V2DeviceState.stopCopy, RS = V2DeviceState.resuming, RP = V2DeviceState.runningP2P
    private static let PC = V2DeviceState.preCopy, PP = V2DeviceState.preCopyP2P
    private static let next: [[V2DeviceState]] = [
        /* ERROR        */ [E, E, E, E, E, E, E, E],
        /* STOP         */ [E, S, RP, SC, RS, RP, RP, RP],
        /* RUNNING      */ [E, RP, R, RP, RP, RP, PC, RP],
        /* STOP_COPY    */ [E, S, S, SC, S, S, E, E],  // STOP_COPY -> PRE_COPY(_P2P) is blocked
        /* RESUMING     */ [E, S, S, S, RS, S, S, S],
        /* RUNNING_P2P  */ [E, S, R, S, S, RP, R, PP],
        /* PRE_COPY     */ [E, R, R, PP, R, R, PC, PP],
        /* PRE_COPY_P2P */ [E, RP, RP, SC, RP, RP, PC, PP],
    ]

    /// Why a SET is refused before any arc is performed.
    public enum Refusal: Error, Sendable, Hashable, CustomStringConvertible {
        /// The device is in ERROR: only `VFIO_DEVICE_RESET` leaves it.
        case inError
        /// ERROR was requested: the user may never set it.
        case errorRequested
        /// The requested (or current) state does not exist with the device's features.
        case unsupported(V2DeviceState)
        /// The kernel blocks this combination (STOP_COPY to a PRE_COPY state).
        case blocked(from: V2DeviceState, to: V2DeviceState)

        public var description: String {
            switch self {
            case .inError: "the device is in ERROR; only VFIO_DEVICE_RESET leaves it"
            case .errorRequested: "ERROR cannot be set: only the device enters it"
            case .unsupported(let s): "\(s) is not offered by this device (VFIO_DEVICE_FEATURE_MIGRATION flags)"
            case .blocked(let f, let t): "\(f) -> \(t) is blocked: a save that reached STOP_COPY cannot return to pre-copy"
            }
        }
    }

    /// The next state on the way from `from` to `to` for a device offering `features`, with the
    /// states it does not offer skipped (`vfio_mig_get_next_state`); `from` itself when equal.
    /// Every refusal is `EINVAL` to the user.
    public static func nextState(from: V2DeviceState, to: V2DeviceState,
                                 features: V2MigrationFeatures) -> Result<V2DeviceState, Refusal> {
        if from == .error { return .failure(.inError) }
        if to == .error { return .failure(.errorRequested) }
        guard from.exists(on: features) else { return .failure(.unsupported(from)) }
        guard to.exists(on: features) else { return .failure(.unsupported(to)) }
        var step = next[Int(from.rawValue)][Int(to.rawValue)]
        // Skipping is bounded: each skipped state is an optional one, and there are two.
        var skips = 0
        while step != .error, !step.exists(on: features), skips < V2DeviceState.allCases.count {
            step = next[Int(step.rawValue)][Int(to.rawValue)]
            skips += 1
        }
        return step == .error || !step.exists(on: features) ? .failure(.blocked(from: from, to: to)) : .success(step)
    }

    /// The whole walk of a SET: the states entered one arc at a time, `to` last; empty when
    /// `from == to`. Only the first step can be refused (the table has no refusal past it), so a
    /// refused SET performs no arc.
    ///
    /// `from == to` is an empty walk even in ERROR: drivers loop `while (cur != new)` around
    /// `vfio_mig_get_next_state()` (mlx5, hisi_acc, the samples), so a SET of the current state
    /// succeeds without asking the table. A SET of ERROR is still the user's mistake, which the
    /// checker records.
    public static func path(from: V2DeviceState, to: V2DeviceState,
                            features: V2MigrationFeatures) -> Result<[V2DeviceState], Refusal> {
        if from != .error, !from.exists(on: features) { return .failure(.unsupported(from)) }
        var states: [V2DeviceState] = []
        var current = from
        while current != to {
            switch nextState(from: current, to: to, features: features) {
            case .failure(let refusal): return .failure(refusal)
            case .success(let step):
                states.append(step)
                current = step
            }
            // The table's paths are at most four arcs; more would be a table error.
            if states.count > V2DeviceState.allCases.count { return .failure(.blocked(from: from, to: to)) }
        }
        return .success(states)
    }

    /// Whether a successful SET from `from` to `to` starts a data transfer session, i.e. returns
    /// a new data_fd: it enters the saving group from outside it, or enters RESUMING. Moving
    /// inside the saving group keeps the session (PRE_COPY -> STOP_COPY reuses the data_fd).
    public static func startsSession(from: V2DeviceState, to: V2DeviceState) -> Bool {
        (to.isSaving && !from.isSaving) || (to == .resuming && from != .resuming)
    }

    /// The single arc `from -> to`, if the uAPI defines it.
    public static func arc(from: V2DeviceState, to: V2DeviceState) -> Arc? {
        arcs.first { $0.from == from && $0.to == to }
    }
}

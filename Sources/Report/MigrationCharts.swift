import Conformance
import DeviceSimulator
import MigrationProtocol

/// The chart data of one migration, computed from its records (a trace's, or the access log a
/// run keeps) and, when there is one, the client's report. Pure: no I/O, no clock.
///
/// Every time is `time_ns` of the records: nanoseconds since the trace (or the migration) began,
/// taken when the device had answered, on one clock for both devices.
public struct MigrationCharts: Sendable, Hashable {
    public enum Role: String, Sendable, Hashable, CaseIterable {
        case source, destination
    }

    /// A device state as the timeline draws it: v1's `device_state & VFIO_DEVICE_STATE_MASK`,
    /// or a v2 `enum vfio_device_mig_state`.
    public enum State: Sendable, Hashable {
        case v1(UInt32)
        case v2(V2DeviceState)

        /// The state a device powers on (and resets) into under `migrationProtocol`: running.
        static func running(_ migrationProtocol: MigrationProtocolVersion) -> State {
            migrationProtocol == .v2 ? .v2(.running) : .v1(DeviceState.runningBit)
        }
    }

    /// A span in which a device held one state.
    public struct StateSegment: Sendable, Hashable {
        public var role: Role
        public var start: UInt64
        public var end: UInt64
        public var state: State
        /// How the state became known: `power-on`, `written`, `read` (the device changed it
        /// itself, as into the error state), `reset`; under v2 the SET that reached it, with its
        /// arc (`SET STOP_COPY: PRE_COPY_P2P -> STOP_COPY, ...`).
        public var cause: String

        /// The state's number: `device_state & VFIO_DEVICE_STATE_MASK` under v1, the
        /// `enum vfio_device_mig_state` value under v2.
        public var bits: UInt32 {
            switch state {
            case .v1(let bits): bits
            case .v2(let state): state.rawValue
            }
        }
    }

    /// A shaded span of the timeline: `pre-copy` and `stop-and-copy` (the source saving) and
    /// `resume` (the destination resuming).
    public struct Phase: Sendable, Hashable {
        public var name: String
        public var start: UInt64
        public var end: UInt64
    }

    /// One `pending_bytes` read of the source in pre-copy.
    public struct PendingPoint: Sendable, Hashable {
        /// 1-based, in order.
        public var index: Int
        public var time: UInt64
        public var value: UInt64
    }

    /// One chunk: staged by the source (`pre-copy`, `stop-and-copy`) or one `data_size` write of
    /// the destination (`resume`).
    public struct Chunk: Sendable, Hashable {
        public var phase: String
        public var time: UInt64
        public var bytes: UInt64
    }

    /// Something to mark on a device's lane.
    public struct Mark: Sendable, Hashable {
        public enum Kind: String, Sendable, Hashable {
            /// An access the device answered with an errno (where an injected `fail` fault fires).
            case errno
            /// An access that broke a rule of the protocol (the devices' checker).
            case violation
        }

        public var kind: Kind
        public var role: Role
        public var time: UInt64
        public var title: String
    }

    /// The protocol the records speak: v2 when one of them is a v2 call.
    public var migrationProtocol: MigrationProtocolVersion
    /// Device ids by role (UUIDs through a mount, `scenario/source` in process).
    public var devices: [Role: String]
    public var segments: [StateSegment]
    public var phases: [Phase]
    public var pending: [PendingPoint]
    public var chunks: [Chunk]
    public var marks: [Mark]
    /// Violations of the report that no record matched (listed, not placed).
    public var unplacedViolations: [String]
    /// The first record a failure is read from (an errno answer), or nil.
    public var failureRecordIndex: Int?
    /// The time of the last record.
    public var end: UInt64

    public static let phaseNames = ["pre-copy", "stop-and-copy", "resume"]

    /// The charts of `records`; `report` supplies the violations to place.
    public init(records: [TraceRecord], report: MigrationReport? = nil) {
        let roles = Self.roles(records)
        let migrationProtocol: MigrationProtocolVersion = records.contains { $0.op.isV2 } ? .v2 : .v1
        self.migrationProtocol = migrationProtocol
        devices = roles
        end = records.last?.timeNs ?? 0
        var current: [Role: (start: UInt64, state: State, cause: String)] = [:]
        var segments: [StateSegment] = []
        var pending: [PendingPoint] = []
        var chunks: [Chunk] = []
        var marks: [Mark] = []
        var failureIndex: Int?
        var violations = (report?.violationDetails ?? []).map { Optional($0) }
        let roleOf = Dictionary(roles.map { ($0.value, $0.key) }, uniquingKeysWith: { a, _ in a })
        func enter(_ role: Role, _ state: State, at time: UInt64, cause: String) {
            if let c = current[role] {
                guard c.state != state else { return }
                segments.append(StateSegment(role: role, start: c.start, end: time, state: c.state, cause: c.cause))
            }
            current[role] = (time, state, cause)
        }
        let running = State.running(migrationProtocol)
        for (i, r) in records.enumerated() {
            guard let role = roleOf[r.device] else { continue }
            let time = r.timeNs
            // A device powers on running (the engine's reset value), at its creation or first access.
            if current[role] == nil { enter(role, running, at: time, cause: "power-on") }
            let state = current[role]?.state ?? running
            // The state in each protocol's terms (a v1 record on a v2 chart sees running, never matched).
            let (bits, v2State): (UInt32, V2DeviceState?) = switch state {
            case .v1(let b): (b, nil)
            case .v2(let s): (DeviceState.runningBit, s)
            }
            let ok = r.result == "ok"
            switch r.op {
            case .reset where ok:
                enter(role, running, at: time, cause: "reset")
            case .remove where ok:
                if let c = current[role] { segments.append(StateSegment(role: role, start: c.start, end: time, state: c.state, cause: c.cause)) }
                current[role] = nil
            case .stage:
                if let count = r.count, count > 0, role == .source {
                    chunks.append(Chunk(phase: bits == DeviceState.preCopy.bits ? "pre-copy" : "stop-and-copy", time: time, bytes: UInt64(count)))
                }
            case .read, .write:
                guard r.isHeaderAccess, let offset = r.offset else { break }
                if offset == HeaderField.deviceState.offset, r.width == 4, ok, let value = r.value {
                    enter(role, .v1(UInt32(truncatingIfNeeded: value) & DeviceState.mask), at: time, cause: r.op == .write ? "written" : "read")
                }
                // Fields at their native width only: anything else is a violation, not a value.
                if role == .source, r.op == .read, ok, offset == HeaderField.pendingBytes.offset, r.width == 8, state == .v1(DeviceState.preCopy.bits), let value = r.value {
                    pending.append(PendingPoint(index: pending.count + 1, time: time, value: value))
                }
                if role == .destination, r.op == .write, ok, offset == HeaderField.dataSize.offset, r.width == 8, state == .v1(DeviceState.resuming.bits),
                   let value = r.value, value > 0 {
                    chunks.append(Chunk(phase: "resume", time: time, bytes: value))
                }
            case .v2Set, .v2Get:
                // The record says the state the device is in afterwards, also after a failed SET
                // (any state of the walk, or ERROR); a GET shows a change the device made itself.
                guard let reached = r.state.flatMap(V2DeviceState.init(name:)) else { break }
                enter(role, .v2(reached), at: time, cause: r.op == .v2Get ? "read" : Self.arcText(r, reached: reached))
            case .v2PrecopyInfo:
                // PRECOPY_INFO's initial + dirty bytes: what the v2 client compares to its threshold.
                if role == .source, ok, v2State == .preCopy || v2State == .preCopyP2P, let initial = r.initialBytes, let dirty = r.dirtyBytes {
                    pending.append(PendingPoint(index: pending.count + 1, time: time, value: initial &+ dirty))
                }
            case .v2Read:
                if role == .source, ok, let n = r.returned, n > 0, let v2State, v2State.isSaving {
                    chunks.append(Chunk(phase: v2State == .stopCopy ? "stop-and-copy" : "pre-copy", time: time, bytes: UInt64(n)))
                }
            case .v2Write:
                if role == .destination, ok, let n = r.count, n > 0, v2State == .resuming {
                    chunks.append(Chunk(phase: "resume", time: time, bytes: UInt64(n)))
                }
            default:
                break
            }
            if Self.isCall(r), let result = r.result, result != "ok" {
                if failureIndex == nil { failureIndex = i }
                let fired = (report?.firedFaults ?? []).filter { $0.hasPrefix(role.rawValue + ": ") }.map { String($0.dropFirst(role.rawValue.count + 2)) }
                marks.append(Mark(kind: .errno, role: role, time: time,
                                  title: "\(role.rawValue) \(AccessText.describe(r)) answered \(result) in \(StateText.name(state))"
                                      + (fired.isEmpty ? "" : "; faults that fired on the \(role.rawValue): \(fired.joined(separator: ", "))")))
            }
            if r.op == .read || r.op == .write || r.op.isV2,
               let v = violations.firstIndex(where: { $0.map { Self.matches($0, r, role: role, bits: bits, v2State: v2State) } ?? false }),
               let detail = violations[v] {
                violations[v] = nil
                marks.append(Mark(kind: .violation, role: role, time: time,
                                  title: "\(role.rawValue) \(AccessText.describe(r)) broke [\(detail.rule)] in \(StateText.name(state)): \(detail.explanation) (\(detail.citation))"))
            }
        }
        for role in Role.allCases {
            if let c = current[role] { segments.append(StateSegment(role: role, start: c.start, end: max(end, c.start), state: c.state, cause: c.cause)) }
        }
        self.segments = segments
        phases = segments.compactMap { s -> Phase? in
            switch (s.role, s.state) {
            case (.source, .v1(DeviceState.preCopy.bits)), (.source, .v2(.preCopy)), (.source, .v2(.preCopyP2P)):
                Phase(name: "pre-copy", start: s.start, end: s.end)
            case (.source, .v1(DeviceState.stopAndCopy.bits)), (.source, .v2(.stopCopy)):
                Phase(name: "stop-and-copy", start: s.start, end: s.end)
            case (.destination, .v1(DeviceState.resuming.bits)), (.destination, .v2(.resuming)):
                Phase(name: "resume", start: s.start, end: s.end)
            default: nil
            }
        }
        self.pending = pending
        self.chunks = chunks
        self.marks = marks
        unplacedViolations = violations.compactMap { $0.map { "\($0.role): [\($0.rule)] \($0.explanation)" } }
        failureRecordIndex = failureIndex
    }

    /// The segments of one device, in order.
    public func segments(of role: Role) -> [StateSegment] { segments.filter { $0.role == role } }

    /// The chunks of one phase.
    public func chunks(in phase: String) -> [Chunk] { chunks.filter { $0.phase == phase } }

    /// The bytes of some chunks (wrapping: a hand-made trace may hold any value).
    public static func total(_ chunks: [Chunk]) -> UInt64 { chunks.reduce(0) { $0 &+ $1.bytes } }

    /// Which device is which: the source is the first to be written a saving state (v2: SET
    /// one), the destination the first to be written resuming; devices neither was written to
    /// take the free roles in the order they appear (a migration creates its source first).
    static func roles(_ records: [TraceRecord]) -> [Role: String] {
        var roles: [Role: String] = [:]
        var order: [String] = []
        for r in records {
            if !order.contains(r.device) { order.append(r.device) }
            guard r.result == "ok" else { continue }
            let saving: Bool, resuming: Bool
            if r.op == .write, r.offset == HeaderField.deviceState.offset, let value = r.value {
                let bits = UInt32(truncatingIfNeeded: value) & DeviceState.mask
                saving = bits & (DeviceState.savingBit | DeviceState.resumingBit) == DeviceState.savingBit
                resuming = bits == DeviceState.resuming.bits
            } else if r.op == .v2Set, let to = r.to.flatMap(V2DeviceState.init(name:)) {
                saving = to.isSaving
                resuming = to == .resuming
            } else {
                continue
            }
            if saving, roles[.source] == nil, roles[.destination] != r.device {
                roles[.source] = r.device
            } else if resuming, roles[.destination] == nil, roles[.source] != r.device {
                roles[.destination] = r.device
            }
        }
        for device in order where !roles.values.contains(device) {
            if roles[.source] == nil { roles[.source] = device } else if roles[.destination] == nil { roles[.destination] = device }
        }
        return roles
    }

    /// A client's call to a device that may be answered with an errno: a region access or a v2
    /// call. A data_fd read answered ENOMSG ("no more data for now") is none: QEMU treats it as an
    /// empty pre-copy iteration, and so does the reference client.
    static func isCall(_ r: TraceRecord) -> Bool {
        r.op == .read || r.op == .write || (r.op.isV2 && !(r.op == .v2Read && r.result == "ENOMSG"))
    }

    /// How a v2 SET reached `reached`: `SET STOP_COPY: PRE_COPY_P2P -> STOP_COPY, the same save
    /// session goes on ...` for one arc of the uAPI, the walk's ends for a SET the kernel's table
    /// carries out in several arcs (the records hold one line per SET, not per arc), and the
    /// errno for a SET that failed on its way.
    static func arcText(_ r: TraceRecord, reached: V2DeviceState) -> String {
        let target = r.to ?? "?"
        let from = r.from.flatMap(V2DeviceState.init(name:))
        let failed = r.result.map { $0 == "ok" ? "" : " (failed: \($0))" } ?? ""
        guard let from else { return "SET \(target)\(failed)" }
        if let arc = V2TransitionTable.arc(from: from, to: reached) {
            return "SET \(target)\(failed): \(from) -> \(reached), \(arc.meaning)"
        }
        return "SET \(target)\(failed): \(from) -> \(reached), a walk of several arcs on the kernel's path"
    }

    /// The v2 calls in which each v2 rule the records can show is recorded (`V2Device`): a v2
    /// violation names no access, so it is placed on the first call of its kind, on its device,
    /// in its state, that was answered with an errno, which each of these calls is. The DMA
    /// logging rules are judged in the shim, whose calls no trace holds: never placed.
    static let v2CallsOfRule: [String: Set<TraceRecord.Operation>] = [
        "v2-set-error": [.v2Set], "v2-set-in-error": [.v2Set], "v2-unsupported-state": [.v2Set], "v2-resume-incomplete": [.v2Set],
        "v2-stale-data-fd": [.v2Read, .v2Write, .v2PrecopyInfo], "v2-data-fd-direction": [.v2Read, .v2Write],
        "v2-precopy-info-state": [.v2PrecopyInfo],
    ]

    /// A violation's access is this record: same device, operation, offset, size, value (when
    /// the violation has one) and state. A v2 violation: a failed call of its rule's kind on
    /// its device in its state (`v2CallsOfRule`), the state being the one before the call.
    static func matches(_ v: ViolationDetail, _ r: TraceRecord, role: Role, bits: UInt32, v2State: V2DeviceState? = nil) -> Bool {
        guard v.role == role.rawValue else { return false }
        if r.op.isV2 {
            guard let v2State, v.state == v2State.rawValue, let calls = v2CallsOfRule[v.rule], calls.contains(r.op) else { return false }
            return r.result != nil && r.result != "ok"
        }
        guard v.state & DeviceState.mask == bits, let a = v.access else { return false }
        guard a.operation.rawValue == r.op.rawValue, a.offset == r.offset, a.count == (r.width ?? r.count) else { return false }
        if let value = a.value, r.isHeaderAccess, let seen = r.value { return value == seen }
        return true
    }
}

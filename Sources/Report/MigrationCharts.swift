import Conformance
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

    /// A span in which a device held one `device_state`.
    public struct StateSegment: Sendable, Hashable {
        public var role: Role
        public var start: UInt64
        public var end: UInt64
        /// `device_state & VFIO_DEVICE_STATE_MASK`.
        public var bits: UInt32
        /// How the state became known: `power-on`, `written`, `read` (the device changed it
        /// itself, as into the error state), `reset`.
        public var cause: String
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
        devices = roles
        end = records.last?.timeNs ?? 0
        var current: [Role: (start: UInt64, bits: UInt32, cause: String)] = [:]
        var segments: [StateSegment] = []
        var pending: [PendingPoint] = []
        var chunks: [Chunk] = []
        var marks: [Mark] = []
        var failureIndex: Int?
        var violations = (report?.violationDetails ?? []).map { Optional($0) }
        let roleOf = Dictionary(roles.map { ($0.value, $0.key) }, uniquingKeysWith: { a, _ in a })
        func enter(_ role: Role, _ bits: UInt32, at time: UInt64, cause: String) {
            if let c = current[role] {
                guard c.bits != bits else { return }
                segments.append(StateSegment(role: role, start: c.start, end: time, bits: c.bits, cause: c.cause))
            }
            current[role] = (time, bits, cause)
        }
        for (i, r) in records.enumerated() {
            guard let role = roleOf[r.device] else { continue }
            let time = r.timeNs
            // A device powers on running (the engine's reset value), at its creation or first access.
            if current[role] == nil { enter(role, DeviceState.runningBit, at: time, cause: "power-on") }
            let bits = current[role]?.bits ?? DeviceState.runningBit
            let ok = r.result == "ok"
            switch r.op {
            case .reset where ok:
                enter(role, DeviceState.runningBit, at: time, cause: "reset")
            case .remove where ok:
                if let c = current[role] { segments.append(StateSegment(role: role, start: c.start, end: time, bits: c.bits, cause: c.cause)) }
                current[role] = nil
            case .stage:
                if let count = r.count, count > 0, role == .source {
                    chunks.append(Chunk(phase: bits == DeviceState.preCopy.bits ? "pre-copy" : "stop-and-copy", time: time, bytes: UInt64(count)))
                }
            case .read, .write:
                guard r.isHeaderAccess, let offset = r.offset else { break }
                if offset == HeaderField.deviceState.offset, r.width == 4, ok, let value = r.value {
                    enter(role, UInt32(truncatingIfNeeded: value) & DeviceState.mask, at: time, cause: r.op == .write ? "written" : "read")
                }
                // Fields at their native width only: anything else is a violation, not a value.
                if role == .source, r.op == .read, ok, offset == HeaderField.pendingBytes.offset, r.width == 8, bits == DeviceState.preCopy.bits, let value = r.value {
                    pending.append(PendingPoint(index: pending.count + 1, time: time, value: value))
                }
                if role == .destination, r.op == .write, ok, offset == HeaderField.dataSize.offset, r.width == 8, bits == DeviceState.resuming.bits,
                   let value = r.value, value > 0 {
                    chunks.append(Chunk(phase: "resume", time: time, bytes: value))
                }
            default:
                break
            }
            if (r.op == .read || r.op == .write), let result = r.result, result != "ok" {
                if failureIndex == nil { failureIndex = i }
                let fired = (report?.firedFaults ?? []).filter { $0.hasPrefix(role.rawValue + ": ") }.map { String($0.dropFirst(role.rawValue.count + 2)) }
                marks.append(Mark(kind: .errno, role: role, time: time,
                                  title: "\(role.rawValue) \(AccessText.describe(r)) answered \(result) in \(StateText.name(bits))"
                                      + (fired.isEmpty ? "" : "; faults that fired on the \(role.rawValue): \(fired.joined(separator: ", "))")))
            }
            if r.op == .read || r.op == .write, let v = violations.firstIndex(where: { $0.map { Self.matches($0, r, role: role, bits: bits) } ?? false }),
               let detail = violations[v] {
                violations[v] = nil
                marks.append(Mark(kind: .violation, role: role, time: time,
                                  title: "\(role.rawValue) \(AccessText.describe(r)) broke [\(detail.rule)] in \(StateText.name(bits)): \(detail.explanation) (\(detail.citation))"))
            }
        }
        for role in Role.allCases {
            if let c = current[role] { segments.append(StateSegment(role: role, start: c.start, end: max(end, c.start), bits: c.bits, cause: c.cause)) }
        }
        self.segments = segments
        phases = segments.compactMap { s -> Phase? in
            switch (s.role, s.bits) {
            case (.source, DeviceState.preCopy.bits): Phase(name: "pre-copy", start: s.start, end: s.end)
            case (.source, DeviceState.stopAndCopy.bits): Phase(name: "stop-and-copy", start: s.start, end: s.end)
            case (.destination, DeviceState.resuming.bits): Phase(name: "resume", start: s.start, end: s.end)
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

    /// Which device is which: the source is the first to be written a saving state, the
    /// destination the first to be written resuming; devices neither was written to take the
    /// free roles in the order they appear (a migration creates its source first).
    static func roles(_ records: [TraceRecord]) -> [Role: String] {
        var roles: [Role: String] = [:]
        var order: [String] = []
        for r in records {
            if !order.contains(r.device) { order.append(r.device) }
            guard r.op == .write, r.offset == HeaderField.deviceState.offset, r.result == "ok", let value = r.value else { continue }
            let bits = UInt32(truncatingIfNeeded: value) & DeviceState.mask
            if bits & (DeviceState.savingBit | DeviceState.resumingBit) == DeviceState.savingBit, roles[.source] == nil, roles[.destination] != r.device {
                roles[.source] = r.device
            } else if bits == DeviceState.resuming.bits, roles[.destination] == nil, roles[.source] != r.device {
                roles[.destination] = r.device
            }
        }
        for device in order where !roles.values.contains(device) {
            if roles[.source] == nil { roles[.source] = device } else if roles[.destination] == nil { roles[.destination] = device }
        }
        return roles
    }

    /// A violation's access is this record: same device, operation, offset, size, value (when
    /// the violation has one) and state.
    static func matches(_ v: ViolationDetail, _ r: TraceRecord, role: Role, bits: UInt32) -> Bool {
        guard v.role == role.rawValue, v.state & DeviceState.mask == bits, let a = v.access else { return false }
        guard a.operation.rawValue == r.op.rawValue, a.offset == r.offset, a.count == (r.width ?? r.count) else { return false }
        if let value = a.value, r.isHeaderAccess, let seen = r.value { return value == seen }
        return true
    }
}

import DeviceSimulator
import Foundation
import Glibc
import Synchronization
import SystemPackage

/// What an HTML report needs of one migration's accesses when no trace is written: every header
/// access, v2 call and device event with its time (the trace's records, without payloads), and
/// the last data-section accesses. JSON keys are snake_case, like a trace's.
public struct AccessLog: Sendable, Hashable, Codable {
    /// In order; `time_ns` counts from the start of the migration.
    public var records: [TraceRecord]
    /// Data-section reads and writes left out (only the last `AccessLogRecorder.dataRecordsKept`
    /// are kept: a pread8 client makes one per 8 bytes).
    public var omittedDataRecords: Int
    /// The client's stop threshold for `pending_bytes` (the scenario's plan).
    public var stopThreshold: UInt64?

    public init(records: [TraceRecord], omittedDataRecords: Int = 0, stopThreshold: UInt64? = nil) {
        self.records = records
        self.omittedDataRecords = omittedDataRecords
        self.stopThreshold = stopThreshold
    }
}

/// An observer that keeps an `AccessLog`: the records `TraceRecorder` makes of each access
/// (without payloads), stamped like a trace's. Thread-safe.
public final class AccessLogRecorder: AccessObserver {
    /// Data-section accesses kept: enough for the last accesses before a failure.
    public static let dataRecordsKept = 64

    private struct State {
        var kept: [(sequence: Int, record: TraceRecord)] = []
        var data: [(sequence: Int, record: TraceRecord)] = []
        var sequence = 0
        var omitted = 0
    }

    private let state = Mutex(State())
    private let start = TraceWriter.monotonicNow()
    private let stopThreshold: UInt64?

    public init(stopThreshold: UInt64? = nil) {
        self.stopThreshold = stopThreshold
    }

    public func regionAccessed(_ access: RegionAccess) {
        append(TraceRecorder.records(for: access, payload: false))
    }

    public func deviceEvent(_ event: DeviceEvent, device: String, type: String?, errno: Errno?) {
        append([TraceRecorder.record(for: event, device: device, type: type, errno: errno)])
    }

    /// Every v2 call is kept, data_fd reads and writes included: they are a v2 migration's
    /// chunks (one per read of at most 1 MiB, one per write of at most 32 KiB, as QEMU moves
    /// them), what v1's `stage` records and `data_size` writes are to a v1 one.
    public func v2Called(_ call: V2Call) {
        append([TraceRecorder.record(for: call, payload: false)])
    }

    private func append(_ records: [TraceRecord]) {
        state.withLock { s in
            let now = TraceWriter.monotonicNow() &- start
            for var record in records {
                record.timeNs = now
                s.sequence += 1
                // Header accesses, chunk events (stage/apply) and device events are all kept.
                if record.op == .read || record.op == .write, !record.isHeaderAccess {
                    s.data.append((s.sequence, record))
                    if s.data.count > 2 * Self.dataRecordsKept {
                        s.omitted += s.data.count - Self.dataRecordsKept
                        s.data.removeFirst(s.data.count - Self.dataRecordsKept)
                    }
                } else {
                    s.kept.append((s.sequence, record))
                }
            }
        }
    }

    /// What was recorded so far, in order.
    public var log: AccessLog {
        state.withLock { s in
            let extra = max(0, s.data.count - Self.dataRecordsKept)
            let merged = (s.kept + s.data.suffix(Self.dataRecordsKept)).sorted { $0.sequence < $1.sequence }.map(\.record)
            return AccessLog(records: merged, omittedDataRecords: s.omitted + extra, stopThreshold: stopThreshold)
        }
    }
}

/// Tells every access and event to each of several observers, in order (a trace and an access
/// log at once).
public final class AccessObserverFanOut: AccessObserver {
    public let observers: [any AccessObserver]

    public init(_ observers: [any AccessObserver]) {
        self.observers = observers
    }

    /// The observers that are set: none, one as it is, or several fanned out.
    public static func combine(_ observers: (any AccessObserver)?...) -> (any AccessObserver)? {
        let set = observers.compactMap { $0 }
        return set.count <= 1 ? set.first : AccessObserverFanOut(set)
    }

    public func regionAccessed(_ access: RegionAccess) {
        for o in observers { o.regionAccessed(access) }
    }

    public func deviceEvent(_ event: DeviceEvent, device: String, type: String?, errno: Errno?) {
        for o in observers { o.deviceEvent(event, device: device, type: type, errno: errno) }
    }

    public func v2Called(_ call: V2Call) {
        for o in observers { o.v2Called(call) }
    }
}

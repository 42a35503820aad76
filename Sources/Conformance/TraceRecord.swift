import DeviceSimulator
import Foundation
import MigrationProtocol
import Scenarios
import SystemPackage

/// The first line of a trace file: what produced it and what a replay needs to rebuild its
/// devices. JSON keys are snake_case (`format_version`, `scenario_path`, ...).
public struct TraceHeader: Codable, Sendable, Hashable {
    /// Always `mdevsim-trace`: tells a trace from any other JSON-lines file.
    public var format: String
    /// The record format's version; a reader refuses versions it does not know.
    public var formatVersion: Int
    /// The mdevsim release that wrote the trace, when known.
    public var mdevsimVersion: String?
    /// The scenario's name and seed (a replay against another seed diverges at the first data).
    public var scenario: String
    public var seed: UInt64
    /// The scenario file, absolute, when the scenario came from one.
    public var scenarioPath: String?
    /// Devices of `--strict` mounts turn violations into errnos: a replay must do the same.
    public var strict: Bool
    /// What recorded the trace: `mount`, `run` (through FUSE) or `in-process`.
    public var recorder: String
    /// Devices that existed when the trace started, id -> mdev type name. Devices created later
    /// (all of them, for the recorders mdevsim has) appear as `create` records.
    public var devices: [String: String]

    public static let formatName = "mdevsim-trace"
    /// The newest version: 2 added the migration v2 records (`v2_set` ... `v2_data_size`, with
    /// `from`, `to`, `state`, `session`, `initial_bytes`, `dirty_bytes`). A trace of a scenario
    /// without a v2 type is still written as version 1, byte for byte as before, so that an older
    /// mdevsim reads it; a reader reads every version up to this one.
    public static let currentVersion = 2
    /// The versions a reader accepts.
    public static let readableVersions = 1...currentVersion

    /// The version a trace of `scenario` is written as: 2 when one of its types speaks v2 (its
    /// records may hold v2 calls), else 1.
    public static func version(for scenario: Scenario) -> Int {
        scenario.types.contains { $0.configuration.protocols.contains(.v2) } ? currentVersion : 1
    }

    public init(scenario: Scenario, scenarioPath: String?, strict: Bool, recorder: String,
                mdevsimVersion: String? = nil, devices: [String: String] = [:]) {
        format = Self.formatName
        formatVersion = Self.version(for: scenario)
        self.mdevsimVersion = mdevsimVersion
        self.scenario = scenario.name
        seed = scenario.seed
        self.scenarioPath = scenarioPath.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        self.strict = strict
        self.recorder = recorder
        self.devices = devices
    }
}

/// One line of a trace after the header: a client access and the device's answer, something
/// the device did with the mapped data section, or a device lifecycle event.
///
/// | `op` | at | fields |
/// | --- | --- | --- |
/// | `read`, `write` | header (`offset` < 4096) | `width`, `value` (read: the answer, absent on failure; write: the value written), `result` |
/// | `read` | data section | `count` asked, `returned`, `digest` of the returned bytes, `result` |
/// | `write` | data section | `count`, `data` (the bytes, base64), `result` |
/// | `stage` | save, after the `data_offset` read that staged it | `offset`, `count`, `digest` of the chunk as staged |
/// | `apply` | resume, before the `data_size` write that took it | `offset`, `count`, `data`: the bytes the device took from the section that no pwrite put there (stored through the mapping) |
/// | `create` | | `type`, `result` |
/// | `remove`, `reset`, `open`, `release` | | `result` |
/// | `v2_set` | `MIG_DEVICE_STATE` SET | `from` (state before), `to` (target), `state` (after, also after a failure), `session` (of the new data_fd, if one), `result` |
/// | `v2_get` | `MIG_DEVICE_STATE` GET | `state`, `result` |
/// | `v2_read` | data_fd `read()` | `session`, `count` asked, `returned`, `digest` of the returned bytes, `result` |
/// | `v2_write` | data_fd `write()` | `session`, `count`, `data` (the bytes, base64), `result` |
/// | `v2_precopy_info` | `VFIO_MIG_GET_PRECOPY_INFO` | `session` (when asked on a data_fd), `initial_bytes`, `dirty_bytes` (absent on failure), `result` |
/// | `v2_data_size` | `MIG_DATA_SIZE` | `value` (`stop_copy_length`), `result` |
///
/// v2 states are the uAPI's names (`RUNNING`, `PRE_COPY_P2P`, ...). Device DMA logging is not
/// recorded: the shim (`libmdevsim-vfio.so`) does it inside the VMM, and no call reaches the mount.
///
/// `time_ns` is monotonic nanoseconds since the trace started, taken when the record was
/// written (after the device answered). `result` is `ok` or an errno name (`EINVAL`, ...).
public struct TraceRecord: Codable, Sendable, Hashable {
    public enum Operation: String, Codable, Sendable, CaseIterable {
        case read, write, stage, apply, create, remove, reset, open, release
        case v2Set = "v2_set", v2Get = "v2_get", v2Read = "v2_read", v2Write = "v2_write"
        case v2PrecopyInfo = "v2_precopy_info", v2DataSize = "v2_data_size"

        /// A migration v2 call (version 2 of the format).
        public var isV2: Bool { rawValue.hasPrefix("v2_") }
    }

    public var timeNs: UInt64
    public var device: String
    public var op: Operation
    public var offset: UInt64?
    public var width: Int?
    public var count: Int?
    public var value: UInt64?
    public var returned: Int?
    public var digest: String?
    public var data: String?
    public var type: String?
    public var result: String?
    /// v2 records only (see the table).
    public var from: String?
    public var to: String?
    public var state: String?
    public var session: UInt64?
    public var initialBytes: UInt64?
    public var dirtyBytes: UInt64?

    public init(timeNs: UInt64 = 0, device: String, op: Operation, offset: UInt64? = nil, width: Int? = nil, count: Int? = nil,
                value: UInt64? = nil, returned: Int? = nil, digest: String? = nil, data: String? = nil, type: String? = nil,
                result: String? = nil, from: String? = nil, to: String? = nil, state: String? = nil, session: UInt64? = nil,
                initialBytes: UInt64? = nil, dirtyBytes: UInt64? = nil) {
        self.timeNs = timeNs
        self.device = device
        self.op = op
        self.offset = offset
        self.width = width
        self.count = count
        self.value = value
        self.returned = returned
        self.digest = digest
        self.data = data
        self.type = type
        self.result = result
        self.from = from
        self.to = to
        self.state = state
        self.session = session
        self.initialBytes = initialBytes
        self.dirtyBytes = dirtyBytes
    }

    /// A header access (as opposed to the data section or an event).
    public var isHeaderAccess: Bool {
        (op == .read || op == .write) && (offset ?? 0) < RegionLayout.dataSectionOffset
    }

    /// The record without its time: what a replay compares.
    public var answer: TraceRecord {
        var copy = self
        copy.timeNs = 0
        return copy
    }

    /// `ok`, or the errno's name from the one table scenario files use too.
    public static func resultName(_ errno: Errno?) -> String {
        errno.map { ErrnoName.name(of: $0) } ?? "ok"
    }

    /// One JSON object, keys in a fixed order, no trailing newline. Written by hand, straight
    /// to bytes: a trace line is made for every access, and this is several times faster than
    /// `JSONEncoder` or string interpolation.
    public var jsonLine: String {
        var out: [UInt8] = []
        out.append(contentsOf: "{\"time_ns\":".utf8)
        Self.appendNumber(timeNs, to: &out)
        appendJSON(afterTime: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// `jsonLine` from the comma after `time_ns` on: the writer stamps the time under its lock.
    func appendJSON(afterTime out: inout [UInt8]) {
        out.append(contentsOf: ",\"device\":".utf8)
        Self.appendString(device, to: &out)
        out.append(contentsOf: ",\"op\":\"".utf8)
        out.append(contentsOf: op.rawValue.utf8)
        out.append(UInt8(ascii: "\""))
        if let offset { out.append(contentsOf: ",\"offset\":".utf8); Self.appendNumber(offset, to: &out) }
        if let width { out.append(contentsOf: ",\"width\":".utf8); Self.appendNumber(UInt64(clamping: width), to: &out) }
        if let count { out.append(contentsOf: ",\"count\":".utf8); Self.appendNumber(UInt64(clamping: count), to: &out) }
        if let value { out.append(contentsOf: ",\"value\":".utf8); Self.appendNumber(value, to: &out) }
        if let returned { out.append(contentsOf: ",\"returned\":".utf8); Self.appendNumber(UInt64(clamping: returned), to: &out) }
        if let digest { out.append(contentsOf: ",\"digest\":".utf8); Self.appendString(digest, to: &out) }
        if let type { out.append(contentsOf: ",\"type\":".utf8); Self.appendString(type, to: &out) }
        if let from { out.append(contentsOf: ",\"from\":".utf8); Self.appendString(from, to: &out) }
        if let to { out.append(contentsOf: ",\"to\":".utf8); Self.appendString(to, to: &out) }
        if let state { out.append(contentsOf: ",\"state\":".utf8); Self.appendString(state, to: &out) }
        if let session { out.append(contentsOf: ",\"session\":".utf8); Self.appendNumber(session, to: &out) }
        if let initialBytes { out.append(contentsOf: ",\"initial_bytes\":".utf8); Self.appendNumber(initialBytes, to: &out) }
        if let dirtyBytes { out.append(contentsOf: ",\"dirty_bytes\":".utf8); Self.appendNumber(dirtyBytes, to: &out) }
        if let result { out.append(contentsOf: ",\"result\":".utf8); Self.appendString(result, to: &out) }
        // Last: a long base64 run at the end keeps the other fields readable with `cut`/`less`.
        if let data { out.append(contentsOf: ",\"data\":".utf8); Self.appendString(data, to: &out) }
        out.append(UInt8(ascii: "}"))
    }

    static func appendNumber(_ value: UInt64, to out: inout [UInt8]) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)   // 24 bytes: room for 20 digits
        var n = value, i = 0
        withUnsafeMutableBytes(of: &digits) { raw in
            repeat {
                raw[23 - i] = UInt8(ascii: "0") + UInt8(n % 10)
                n /= 10
                i += 1
            } while n > 0
            out.append(contentsOf: raw[(24 - i)...])
        }
    }

    static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        let utf8 = s.utf8
        if utf8.allSatisfy({ $0 >= 0x20 && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) {
            out.append(contentsOf: utf8)
        } else {
            for byte in utf8 {
                switch byte {
                case UInt8(ascii: "\""): out.append(contentsOf: "\\\"".utf8)
                case UInt8(ascii: "\\"): out.append(contentsOf: "\\\\".utf8)
                case UInt8(ascii: "\n"): out.append(contentsOf: "\\n".utf8)
                case UInt8(ascii: "\r"): out.append(contentsOf: "\\r".utf8)
                case UInt8(ascii: "\t"): out.append(contentsOf: "\\t".utf8)
                case 0..<0x20:
                    let hex = Array("0123456789abcdef".utf8)
                    out.append(contentsOf: "\\u00".utf8)
                    out.append(hex[Int(byte >> 4)])
                    out.append(hex[Int(byte & 15)])
                default: out.append(byte)
                }
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// The one place that turns what a device reports into trace records, for the writer of a
/// trace and for a replay alike (so a replay compares like with like).
public final class TraceRecorder: AccessObserver {
    public let sink: any TraceSink

    public init(sink: any TraceSink) {
        self.sink = sink
    }

    public func regionAccessed(_ access: RegionAccess) {
        sink.append(Self.records(for: access))
    }

    public func deviceEvent(_ event: DeviceEvent, device: String, type: String?, errno: Errno?) {
        sink.append([Self.record(for: event, device: device, type: type, errno: errno)])
    }

    public func v2Called(_ call: V2Call) {
        sink.append([Self.record(for: call)])
    }

    /// The record of one v2 call (see the table of `TraceRecord`). Without `payload`, a data_fd
    /// read carries no digest and a write no bytes (what an `AccessLog` keeps).
    public static func record(for call: V2Call, payload: Bool = true) -> TraceRecord {
        let result = resultName(call.errno)
        let ok = call.errno == nil
        switch call.kind {
        case .set:
            return TraceRecord(device: call.device, op: .v2Set, result: result, from: call.from?.description, to: call.to?.description,
                               state: call.state?.description, session: call.session)
        case .get:
            return TraceRecord(device: call.device, op: .v2Get, result: result, state: call.state?.description)
        case .read:
            return TraceRecord(device: call.device, op: .v2Read, count: call.count, returned: ok ? call.bytes.count : nil,
                               digest: ok && payload ? RegionAccessTrace.digest(call.bytes) : nil, result: result, session: call.session)
        case .write:
            return TraceRecord(device: call.device, op: .v2Write, count: call.count, data: payload ? Data(call.bytes).base64EncodedString() : nil,
                               result: result, session: call.session)
        case .precopyInfo:
            return TraceRecord(device: call.device, op: .v2PrecopyInfo, result: result, session: call.session,
                               initialBytes: call.values?.first, dirtyBytes: call.values?.second)
        case .dataSize:
            return TraceRecord(device: call.device, op: .v2DataSize, value: call.values?.first, result: result)
        }
    }

    /// The records of one access, in the order they happened: the bytes a `data_size` write took
    /// from the mapping, the access, the chunk a `data_offset` read staged. Times are the sink's.
    /// Without `payload`, data records carry no bytes and no digest (what an `AccessLog` keeps:
    /// it never replays, and base64 and SHA-256 of every chunk would double a run's cost).
    public static func records(for access: RegionAccess, payload: Bool = true) -> [TraceRecord] {
        let result = resultName(access.result.errno)
        var records: [TraceRecord] = []
        if let applied = access.applied {
            records.append(TraceRecord(device: access.device, op: .apply, offset: RegionLayout.dataSectionOffset,
                                       count: applied.count, data: payload ? Data(applied).base64EncodedString() : nil))
        }
        let op: TraceRecord.Operation = access.isWrite ? .write : .read
        if access.isHeader {
            var value: UInt64?
            if access.isWrite {
                var raw: UInt64 = 0
                withUnsafeMutableBytes(of: &raw) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: access.bytes.prefix(8))) }
                value = UInt64(littleEndian: raw)
            } else if access.result.errno == nil {
                value = access.result.value
            }
            records.append(TraceRecord(device: access.device, op: op, offset: access.offset, width: access.count, value: value, result: result))
        } else if access.isWrite {
            records.append(TraceRecord(device: access.device, op: op, offset: access.offset, count: access.count,
                                       data: payload ? Data(access.bytes).base64EncodedString() : nil, result: result))
        } else {
            let ok = access.result.errno == nil
            records.append(TraceRecord(device: access.device, op: op, offset: access.offset, count: access.count,
                                       returned: ok ? access.bytes.count : nil,
                                       digest: ok && payload ? RegionAccessTrace.digest(access.bytes) : nil, result: result))
        }
        if let staged = access.staged {
            records.append(TraceRecord(device: access.device, op: .stage, offset: RegionLayout.dataSectionOffset,
                                       count: staged.count, digest: payload ? RegionAccessTrace.digest(staged) : nil))
        }
        return records
    }

    public static func record(for event: DeviceEvent, device: String, type: String?, errno: Errno?) -> TraceRecord {
        let op: TraceRecord.Operation = switch event {
        case .create: .create
        case .remove: .remove
        case .reset: .reset
        case .open: .open
        case .release: .release
        }
        return TraceRecord(device: device, op: op, type: type, result: resultName(errno))
    }

    static func resultName(_ errno: Errno?) -> String { TraceRecord.resultName(errno) }
}

/// Where a `TraceRecorder` puts records: a trace file (`TraceWriter`) or a replay's comparison.
public protocol TraceSink: AnyObject, Sendable {
    /// Appends the records of one event, together (no other device's record comes between them);
    /// the sink stamps their time.
    func append(_ records: [TraceRecord])
}

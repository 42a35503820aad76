import DeviceSimulator
import Foundation
import MigrationProtocol
import Scenarios
import Synchronization
import SystemPackage

/// Plays the client's side of a trace against fresh devices of a scenario, in process, and
/// finds the first point where a device answers differently from the trace.
///
/// Every record the client caused is played in order: `create` makes a fresh device of the
/// record's type with the record's device id (which seeds its power-on memory, as the mount's
/// UUIDs do), header and data accesses go to the engine with the recorded offsets, widths,
/// values and bytes, an `apply` puts its bytes into the data section before the `data_size`
/// write it belongs to (what a mapping client stored there), `reset` resets. The replayed
/// devices report through the same `TraceRecorder` as the traced ones, and each record they
/// produce must equal the trace's, time aside: a header value or errno, a data read's length
/// and digest, a staged chunk's digest. `remove`, `open` and `release` are the mount's answers,
/// not the device's: they are taken from the trace as they are (a removed device is dropped).
///
/// Migration v2 records (format version 2) are played on the v2 face of the same device
/// (`V2Device`): a SET of the record's target, a GET, a data_fd read of the recorded size or a
/// write of the recorded bytes on the recorded session, PRECOPY_INFO, MIG_DATA_SIZE; each must
/// produce the same record (state reached, errno, read length and digest, sizes).
///
/// Deterministic because the devices are: their dirtying runs on a virtual clock that only
/// accesses advance. Scenarios with `clock: wall` cannot be replayed and are refused.
public struct TraceReplay {
    public let trace: TraceFile
    public let scenario: Scenario

    /// The trace and the scenario do not fit together.
    public struct Mismatch: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// Where a replay first differed from the trace.
    public struct Divergence: Sendable, CustomStringConvertible {
        /// The trace line of the record that differs.
        public var line: Int
        /// The line of the client access that was being played (the same line, or the access
        /// before a `stage`, or the `data_size` write after an `apply`).
        public var accessLine: Int
        public var access: TraceRecord
        /// The trace's record, and what the replay produced instead (nil: nothing).
        public var expected: TraceRecord?
        public var got: TraceRecord?

        public var description: String { (["diverged at line \(line)"] + details).joined(separator: "\n") }

        /// The access, what the trace has and what the replay got, one indented line each.
        public var details: [String] {
            ["  access:   line \(accessLine): \(TraceReplay.describe(access))",
             "  expected: \(expected.map { TraceReplay.shown($0) } ?? "no record here (the trace ends)")",
             "  got:      \(got.map { TraceReplay.shown($0) } ?? "nothing (the replayed device did not produce this record)")"]
        }
    }

    public struct Outcome: Sendable {
        /// Region accesses (reads and writes) played with matching answers.
        public var matched: Int
        /// Records compared equal.
        public var recordsMatched: Int
        /// Devices the trace created.
        public var devices: Int
        public var divergence: Divergence?
    }

    /// Checks that every device the trace creates has a type the scenario defines (with a
    /// virtual clock), and that every access names a device created before it.
    public init(trace: TraceFile, scenario: Scenario) throws(Mismatch) {
        self.trace = trace
        self.scenario = scenario
        var live = trace.header.devices
        for (_, type) in trace.header.devices.sorted(by: { $0.key < $1.key }) {
            try Self.checkType(type, in: scenario, line: 1)
        }
        for entry in trace.entries {
            let r = entry.record
            if r.op.isV2, let type = live[r.device], scenario.type(named: type)?.configuration.protocols.contains(.v2) != true {
                throw Mismatch(description: "\(trace.path):\(entry.line): a \(r.op.rawValue) record for device \(r.device), whose type '\(type)' does not speak migration v2 in scenario '\(scenario.name)' (add protocols: [v1, v2] to it)")
            }
            switch r.op {
            case .create where r.result == "ok":
                try Self.checkType(r.type ?? "", in: scenario, line: entry.line)
                live[r.device] = r.type ?? ""
            case .create, .open, .release:
                break
            case .remove where r.result == "ok":
                live[r.device] = nil
            default:
                guard live[r.device] != nil else {
                    throw Mismatch(description: "\(trace.path):\(entry.line): device \(r.device) is not created before this \(r.op.rawValue)")
                }
            }
        }
    }

    private static func checkType(_ name: String, in scenario: Scenario, line: Int) throws(Mismatch) {
        guard let type = scenario.type(named: name) else {
            throw Mismatch(description: "line \(line): the trace creates a device of type '\(name)', which scenario '\(scenario.name)' does not define (it has \(scenario.types.map(\.name).joined(separator: ", ")))")
        }
        if type.configuration.clock == .wall {
            throw Mismatch(description: "type '\(name)' runs on the wall clock (clock: wall): its dirtying depends on timing, so it cannot be replayed; use clock: virtual")
        }
    }

    /// Plays the whole trace, or up to the first divergence.
    public func run() -> Outcome {
        let collector = Collector()
        let recorder = TraceRecorder(sink: collector)
        var devices: [String: MigrationRegion] = [:]
        // The v2 face of each device whose type speaks v2, on the same simulated device (as a mount's).
        var v2Devices: [String: V2Device] = [:]
        var created = 0
        func make(_ id: String, type: String) {
            guard let spec = scenario.type(named: type) else { return }
            let region = MigrationRegion(configuration: spec.configuration, identity: id, strict: trace.header.strict)
            region.observer = recorder
            devices[id] = region
            if spec.configuration.protocols.contains(.v2) {
                let v2 = V2Device(device: region.device, features: spec.configuration.v2Features, strict: trace.header.strict)
                v2.observer = recorder
                v2Devices[id] = v2
            } else {
                v2Devices[id] = nil
            }
            created += 1
        }
        for (id, type) in trace.header.devices.sorted(by: { $0.key < $1.key }) { make(id, type: type) }

        let entries = trace.entries
        var outcome = Outcome(matched: 0, recordsMatched: 0, devices: 0, divergence: nil)
        var i = 0
        while i < entries.count {
            let first = entries[i]
            if first.record.op == .stage {
                // A chunk the traced device staged, with no data_offset read of ours before it.
                outcome.divergence = Divergence(line: first.line, accessLine: first.line, access: first.record, expected: first.record, got: nil)
                break
            }
            let access = first.record.op == .apply && i + 1 < entries.count ? entries[i + 1] : first
            let r = access.record
            switch r.op {
            case .create:
                if r.result == "ok", let type = r.type { make(r.device, type: type) }
                collector.append([r])
            case .remove:
                if r.result == "ok" {
                    devices[r.device] = nil
                    v2Devices[r.device] = nil
                }
                collector.append([r])
            case .open, .release:
                collector.append([r])
            case .reset:
                // Both faces, as the mount's reset does (MdevDevice.reset); only the region reports it.
                devices[r.device]?.reset()
                v2Devices[r.device]?.reset()
            case .v2Set, .v2Get, .v2Read, .v2Write, .v2PrecopyInfo, .v2DataSize:
                if let v2 = v2Devices[r.device] { Self.play(r, on: v2) }
            case .read, .write:
                guard let region = devices[r.device] else { break }
                if first.record.op == .apply, let bytes = first.record.data.flatMap({ Data(base64Encoded: $0) }) {
                    // What the client had stored through its mapping when it wrote data_size.
                    let n = min(bytes.count, region.dataSection.count)
                    bytes.withUnsafeBytes { region.dataSection.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                }
                play(r, on: region)
            case .stage, .apply:
                break
            }
            let produced = collector.take()
            if produced.isEmpty {
                outcome.divergence = Divergence(line: first.line, accessLine: access.line, access: r, expected: first.record, got: nil)
                break
            }
            for (k, got) in produced.enumerated() {
                let expected = i + k < entries.count ? entries[i + k] : nil
                if expected?.record.answer != got.answer {
                    outcome.divergence = Divergence(line: expected?.line ?? ((entries.last?.line ?? 1) + 1), accessLine: access.line,
                                                    access: r, expected: expected?.record, got: got)
                    break
                }
            }
            if outcome.divergence != nil { break }
            outcome.recordsMatched += produced.count
            if r.op == .read || r.op == .write || r.op.isV2 { outcome.matched += 1 }
            i += produced.count
        }
        outcome.devices = created
        return outcome
    }

    /// Performs one client access as the trace has it.
    private func play(_ r: TraceRecord, on region: MigrationRegion) {
        let offset = r.offset ?? 0
        if r.isHeaderAccess {
            let width = r.width ?? 0
            // Header values are little-endian; a width past 8 bytes (refused) is padded with zeros.
            var bytes = [UInt8](repeating: 0, count: width)
            withUnsafeBytes(of: (r.value ?? 0).littleEndian) { raw in
                for k in 0..<min(8, width) { bytes[k] = raw[k] }
            }
            if r.op == .write {
                _ = bytes.withUnsafeBytes { region.write(at: offset, from: $0) }
            } else {
                _ = bytes.withUnsafeMutableBytes { region.read(at: offset, into: $0) }
            }
        } else if r.op == .write {
            let bytes = r.data.flatMap { Data(base64Encoded: $0) } ?? Data()
            _ = bytes.withUnsafeBytes { region.write(at: offset, from: $0) }
        } else {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, r.count ?? 0), alignment: 8)
            defer { buffer.deallocate() }
            _ = region.read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<(r.count ?? 0)]))
        }
    }

    /// Performs one v2 call as the trace has it.
    private static func play(_ r: TraceRecord, on v2: V2Device) {
        switch r.op {
        case .v2Set:
            if let target = r.to.flatMap(V2DeviceState.init(name:)) { _ = v2.set(target) }
        case .v2Get:
            _ = v2.get()
        case .v2Read:
            let count = r.count ?? 0
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, count), alignment: 8)
            defer { buffer.deallocate() }
            _ = v2.read(session: r.session ?? 0, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count]))
        case .v2Write:
            let bytes = r.data.flatMap { Data(base64Encoded: $0) } ?? Data()
            _ = bytes.withUnsafeBytes { v2.write(session: r.session ?? 0, from: $0) }
        case .v2PrecopyInfo:
            _ = v2.precopyInfo(session: r.session)
        case .v2DataSize:
            _ = v2.stopCopyLength()
        default:
            break
        }
    }

    /// Records a replay's devices produce, handed over after each access.
    final class Collector: TraceSink {
        private let records = Mutex<[TraceRecord]>([])
        func append(_ new: [TraceRecord]) { records.withLock { $0.append(contentsOf: new) } }
        func take() -> [TraceRecord] { records.withLock { r in defer { r.removeAll() }; return r } }
    }

    /// A record for a message: its JSON without the time, the data cut short.
    static func shown(_ r: TraceRecord) -> String {
        var copy = r.answer
        if let data = copy.data, data.count > 48 { copy.data = String(data.prefix(40)) + "...(\(data.count) chars)" }
        var line = copy.jsonLine
        if let range = line.range(of: "\"time_ns\":0,") { line.removeSubrange(range) }
        return line
    }

    /// `read data_offset (offset 16, width 8) of <device>`.
    static func describe(_ r: TraceRecord) -> String {
        switch r.op {
        case .read, .write:
            if r.isHeaderAccess {
                let name = HeaderField.at(offset: r.offset ?? 0, width: r.width ?? 0).map(\.rawValue) ?? "header"
                let value = r.op == .write ? " value \(r.value ?? 0)" : ""
                return "\(r.op.rawValue) \(name) (offset \(r.offset ?? 0), width \(r.width ?? 0))\(value) of \(r.device)"
            }
            return "\(r.op.rawValue) of \(r.count ?? 0) data bytes at offset \(r.offset ?? 0) of \(r.device)"
        case .stage, .apply:
            return "\(r.op.rawValue) of \(r.count ?? 0) bytes of \(r.device)"
        case .create:
            return "create \(r.device) of type \(r.type ?? "?")"
        case .remove, .reset, .open, .release:
            return "\(r.op.rawValue) \(r.device)"
        case .v2Set:
            return "SET MIG_DEVICE_STATE \(r.from ?? "?") -> \(r.to ?? "?") of \(r.device)"
        case .v2Get:
            return "GET MIG_DEVICE_STATE of \(r.device)"
        case .v2Read:
            return "data_fd read of \(r.count ?? 0) bytes (session \(r.session ?? 0)) of \(r.device)"
        case .v2Write:
            return "data_fd write of \(r.count ?? 0) bytes (session \(r.session ?? 0)) of \(r.device)"
        case .v2PrecopyInfo:
            return "VFIO_MIG_GET_PRECOPY_INFO\(r.session.map { " (session \($0))" } ?? "") of \(r.device)"
        case .v2DataSize:
            return "GET MIG_DATA_SIZE of \(r.device)"
        }
    }
}

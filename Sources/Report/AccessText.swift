import Conformance
import Foundation
import MigrationProtocol

/// Records and states in words, for titles and tables.
enum AccessText {
    /// `data_offset read = 4096`, `device_state write 3`, `data read of 1048576 bytes at 4096`.
    /// v2: `SET STOP_COPY`, `data_fd read of 1048576 bytes`, `PRECOPY_INFO`.
    static func describe(_ r: TraceRecord) -> String {
        if r.op.isV2 { return v2Call(r) }
        guard r.op == .read || r.op == .write, let offset = r.offset else { return r.op.rawValue }
        if r.isHeaderAccess {
            let field = HeaderField.allCases.first { $0.offset == offset }?.rawValue ?? "header offset \(offset)"
            return "\(field) \(r.op.rawValue)\(r.value.map { " \(r.op == .read ? "= " : "")\($0)" } ?? "")"
        }
        return "data \(r.op.rawValue) of \(r.count ?? 0) bytes at \(offset)"
    }

    /// A v2 call in the uAPI's words (the ioctl, or the data_fd operation).
    static func v2Call(_ r: TraceRecord) -> String {
        switch r.op {
        case .v2Set: "SET \(r.to ?? "?")"
        case .v2Get: "GET MIG_DEVICE_STATE"
        case .v2Read: "data_fd read of \(r.count ?? 0) bytes"
        case .v2Write: "data_fd write of \(r.count ?? 0) bytes"
        case .v2PrecopyInfo: "PRECOPY_INFO"
        case .v2DataSize: "MIG_DATA_SIZE"
        default: r.op.rawValue
        }
    }

    /// The field a header offset names, or `data` beyond the header; a v2 call's name.
    static func field(_ r: TraceRecord) -> String {
        if r.op.isV2 { return v2Call(r) }
        guard let offset = r.offset else { return "" }
        guard r.isHeaderAccess else { return "data" }
        return HeaderField.allCases.first { $0.offset == offset }?.rawValue ?? "offset \(offset)"
    }
}

enum StateText {
    /// `pre-copy (011b)` under v1, `PRE_COPY_P2P` under v2.
    static func name(_ state: MigrationCharts.State) -> String {
        switch state {
        case .v1(let bits): name(bits)
        case .v2(let v2): v2.description
        }
    }

    /// `pre-copy (011b)`.
    static func name(_ bits: UInt32) -> String {
        let low = String(bits & DeviceState.mask, radix: 2)
        return "\(DeviceState.name(ofBits: bits)) (\(String(repeating: "0", count: max(0, 3 - low.count)) + low)b)"
    }

    /// Milliseconds with three decimals.
    static func ms(_ ns: UInt64) -> String { String(format: "%.3f ms", Double(ns) / 1e6) }
}

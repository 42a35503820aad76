import Conformance
import Foundation
import MigrationProtocol

/// Records and states in words, for titles and tables.
enum AccessText {
    /// `data_offset read = 4096`, `device_state write 3`, `data read of 1048576 bytes at 4096`.
    static func describe(_ r: TraceRecord) -> String {
        guard r.op == .read || r.op == .write, let offset = r.offset else { return r.op.rawValue }
        if r.isHeaderAccess {
            let field = HeaderField.allCases.first { $0.offset == offset }?.rawValue ?? "header offset \(offset)"
            return "\(field) \(r.op.rawValue)\(r.value.map { " \(r.op == .read ? "= " : "")\($0)" } ?? "")"
        }
        return "data \(r.op.rawValue) of \(r.count ?? 0) bytes at \(offset)"
    }

    /// The field a header offset names, or `data` beyond the header.
    static func field(_ r: TraceRecord) -> String {
        guard let offset = r.offset else { return "" }
        guard r.isHeaderAccess else { return "data" }
        return HeaderField.allCases.first { $0.offset == offset }?.rawValue ?? "offset \(offset)"
    }
}

enum StateText {
    /// `pre-copy (011b)`.
    static func name(_ bits: UInt32) -> String {
        let low = String(bits & DeviceState.mask, radix: 2)
        return "\(DeviceState.name(ofBits: bits)) (\(String(repeating: "0", count: max(0, 3 - low.count)) + low)b)"
    }

    /// Milliseconds with three decimals.
    static func ms(_ ns: UInt64) -> String { String(format: "%.3f ms", Double(ns) / 1e6) }
}

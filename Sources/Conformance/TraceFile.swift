import Foundation
import MigrationProtocol
import Scenarios
import SystemPackage

/// A trace file read back: its header and every record with its line number, each checked for
/// the fields its operation needs (see `TraceRecord`), so a replay never meets a half record.
public struct TraceFile: Sendable {
    /// A record and the line (1-based, the header is line 1) it came from.
    public struct Entry: Sendable, Hashable {
        public var line: Int
        public var record: TraceRecord
    }

    /// Why a trace cannot be read, at which line.
    public struct Malformed: Error, CustomStringConvertible, Sendable {
        public var path: String
        public var line: Int
        public var reason: String
        /// `FILE:LINE: reason`; a file that cannot be read at all has no line to name.
        public var description: String { line > 0 ? "\(path):\(line): \(reason)" : "\(path): \(reason)" }
    }

    public var path: String
    public var header: TraceHeader
    public var entries: [Entry]

    /// Reads and checks the trace at `path`.
    public static func load(path: String) throws(Malformed) -> TraceFile {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw Malformed(path: path, line: 0, reason: "cannot read the trace: \((error as NSError).localizedDescription)")
        }
        return try parse(data, path: path)
    }

    /// Parses trace text; `path` only names it in errors. Blank lines are ignored.
    public static func parse(_ data: Data, path: String = "trace") throws(Malformed) -> TraceFile {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        var header: TraceHeader?
        var entries: [Entry] = []
        var lineNumber = 0
        for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: "\r") }) { continue }
            func fail(_ reason: String) -> Malformed { Malformed(path: path, line: lineNumber, reason: reason) }
            guard header != nil else {
                let h: TraceHeader
                do { h = try decoder.decode(TraceHeader.self, from: Data(line)) } catch {
                    throw fail("not a trace header (the first line must be mdevsim's trace header): \(Self.explain(error))")
                }
                guard h.format == TraceHeader.formatName else { throw fail("format is '\(h.format)', not '\(TraceHeader.formatName)'") }
                guard TraceHeader.readableVersions.contains(h.formatVersion) else {
                    throw fail("format_version \(h.formatVersion) is not supported (this mdevsim reads versions \(TraceHeader.readableVersions.lowerBound) to \(TraceHeader.readableVersions.upperBound))")
                }
                header = h
                continue
            }
            let record: TraceRecord
            do { record = try decoder.decode(TraceRecord.self, from: Data(line)) } catch { throw fail(Self.explain(error)) }
            if record.op.isV2, let version = header?.formatVersion, version < 2 {
                throw fail("a \(record.op.rawValue) record needs format_version 2 (the header says \(version))")
            }
            if let problem = check(record) ?? checkDevice(record, recorder: header?.recorder) { throw fail(problem) }
            entries.append(Entry(line: lineNumber, record: record))
        }
        guard let header else { throw Malformed(path: path, line: 1, reason: "empty file: no trace header") }
        // An `apply` belongs to the `data_size` write right after it: the replay plays them together.
        for (i, entry) in entries.enumerated() where entry.record.op == .apply {
            let next = i + 1 < entries.count ? entries[i + 1].record : nil
            guard let next, next.op == .write, next.device == entry.record.device, next.offset == HeaderField.dataSize.offset else {
                throw Malformed(path: path, line: entry.line, reason: "an apply record must be followed by the data_size write (offset \(HeaderField.dataSize.offset)) of the same device")
            }
        }
        return TraceFile(path: path, header: header, entries: entries)
    }

    /// A mount names its devices by their UUIDs (`MdevUUID`): a trace a mount recorded with any
    /// other device name was not written by mdevsim (in-process recorders use free names).
    static func checkDevice(_ r: TraceRecord, recorder: String?) -> String? {
        guard recorder == "mount" || recorder == "run", !MdevUUID.isDeviceName(r.device) else { return nil }
        return "device '\(r.device)' is not an mdev UUID (8-4-4-4-12 lowercase hex digits), as a \(recorder ?? "") trace names devices"
    }

    /// What is missing or wrong in a record for its operation, if anything.
    static func check(_ r: TraceRecord) -> String? {
        if r.device.isEmpty { return "device is empty" }
        func need(_ value: Any?, _ key: String) -> String? {
            value == nil ? "a \(r.op.rawValue) record needs '\(key)'" : nil
        }
        func bytes(_ key: String = "data") -> String? {
            guard let text = r.data, let decoded = Data(base64Encoded: text) else { return "'\(key)' is not base64" }
            guard let count = r.count, decoded.count == count else { return "'\(key)' holds \(decoded.count) bytes, count says \(r.count.map(String.init) ?? "nothing")" }
            return nil
        }
        switch r.op {
        case .read, .write:
            if let problem = need(r.offset, "offset") ?? checkResult(r.result) { return problem }
            if r.isHeaderAccess {
                if let problem = need(r.width, "width") { return problem }
                if let width = r.width, width < 0 || width > Int(RegionLayout.dataSectionOffset) { return "width \(width) is out of range" }
                if r.op == .write, r.value == nil { return "a header write record needs 'value'" }
            } else {
                if let problem = need(r.count, "count") { return problem }
                if let count = r.count, count < 0 || count > 1 << 30 { return "count \(count) is out of range" }
                if r.op == .write { return bytes() }
            }
        case .stage:
            return need(r.offset, "offset") ?? need(r.count, "count") ?? need(r.digest, "digest")
        case .apply:
            if let problem = need(r.count, "count") ?? need(r.data, "data") { return problem }
            return bytes()
        case .create:
            return need(r.type, "type") ?? checkResult(r.result)
        case .remove, .reset, .open, .release:
            return checkResult(r.result)
        case .v2Set:
            return need(r.to, "to") ?? state(r.to, "to") ?? state(r.from, "from") ?? state(r.state, "state") ?? checkResult(r.result)
        case .v2Get:
            return state(r.state, "state") ?? checkResult(r.result)
        case .v2Read:
            if let problem = need(r.session, "session") ?? need(r.count, "count") ?? checkResult(r.result) { return problem }
            if let count = r.count, count < 0 || count > 1 << 30 { return "count \(count) is out of range" }
        case .v2Write:
            if let problem = need(r.session, "session") ?? checkResult(r.result) { return problem }
            return bytes()
        case .v2PrecopyInfo, .v2DataSize:
            return checkResult(r.result)
        }
        return nil
    }

    /// A v2 state name, when present, must be one of the uAPI's.
    private static func state(_ name: String?, _ key: String) -> String? {
        guard let name, V2DeviceState(name: name) == nil else { return nil }
        return "'\(key)' is '\(name)', not a v2 state (\(V2DeviceState.allCases.map(\.description).joined(separator: ", ")))"
    }

    private static func checkResult(_ result: String?) -> String? {
        guard let result else { return "a record of a client access or event needs 'result'" }
        if result == "ok" || ErrnoName.errno(named: result) != nil { return nil }
        if result.hasPrefix("errno "), Int32(result.dropFirst(6)) != nil { return nil }
        return "result '\(result)' is neither ok nor an errno name"
    }

    /// A decoding error in a line's terms.
    static func explain(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _):
            return "missing '\(snake(key.stringValue))'"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "'\(context.codingPath.map { snake($0.stringValue) }.joined(separator: "."))' has the wrong type"
        case DecodingError.dataCorrupted(let context):
            if let key = context.codingPath.last {
                if key.stringValue == "op" {
                    return "'op' must be one of \(TraceRecord.Operation.allCases.map(\.rawValue).joined(separator: ", "))"
                }
                return "'\(snake(key.stringValue))' is invalid"
            }
            return "not a JSON object"
        default:
            return "\(error)"
        }
    }

    private static func snake(_ camel: String) -> String {
        var out = ""
        for c in camel {
            if c.isUppercase { out += "_" + c.lowercased() } else { out.append(c) }
        }
        return out
    }
}

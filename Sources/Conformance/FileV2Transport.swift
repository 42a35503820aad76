import Foundation
import Glibc
import MigrationProtocol
import SystemPackage

/// A v2 device reached through a mount, one file operation per v2 call (docs/vmm-guide.md,
/// "The v2 contract"): `mig_features`, `mig_state`, `mig_data_size`, `mig_precopy_info` read or
/// written whole at offset 0, and `mig_data` opened after each SET that starts a session as the
/// data_fd. Nothing but open, read, write, pread, pwrite and close.
public final class FileV2Transport: V2Transport {
    public let name: String
    public let directory: String
    private let stateFD: FileDescriptor
    private var data: FileDescriptor?

    /// Opens `directory/mig_state` (e.g. `MOUNT/devices/<uuid>`).
    public init(directory: String, name: String? = nil) throws(Errno) {
        self.directory = directory
        self.name = name ?? directory
        stateFD = try openFile("\(directory)/mig_state", O_RDWR)
    }

    deinit {
        try? data?.close()
        try? stateFD.close()
    }

    /// Reads the whole little-endian value of a small v2 file.
    private func readValue(_ file: String, width: Int) throws(Errno) -> [UInt8] {
        let fd = try openFile("\(directory)/\(file)", O_RDONLY)
        defer { try? fd.close() }
        var bytes = [UInt8](repeating: 0, count: width)
        let n = try retryingEINTR { bytes.withUnsafeMutableBytes { pread(fd.rawValue, $0.baseAddress, width, 0) } }
        guard n == width else { throw .ioError }
        return bytes
    }

    private static func word(_ bytes: [UInt8], _ index: Int) -> UInt64 {
        bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self)) }
    }

    public func features() throws(Errno) -> V2MigrationFeatures {
        V2MigrationFeatures(rawValue: Self.word(try readValue("mig_features", width: 8), 0))
    }

    public func state() throws(Errno) -> V2DeviceState {
        var raw: UInt32 = 0
        let n = try retryingEINTR { withUnsafeMutableBytes(of: &raw) { pread(stateFD.rawValue, $0.baseAddress, 4, 0) } }
        guard n == 4, let s = V2DeviceState(rawValue: UInt32(littleEndian: raw)) else { throw .ioError }
        return s
    }

    public func setState(_ target: V2DeviceState) throws(Errno) -> Bool {
        let before = try state()
        let value = target.rawValue.littleEndian
        _ = try retryingEINTR { withUnsafeBytes(of: value) { pwrite(stateFD.rawValue, $0.baseAddress, 4, 0) } }
        // The data_fd of a new session is an open of `mig_data` (the previous one is closed).
        guard V2TransitionTable.startsSession(from: before, to: target) else { return false }
        closeDataFD()
        data = try openFile("\(directory)/mig_data", target == .resuming ? O_WRONLY : O_RDONLY)
        return true
    }

    private func current() throws(Errno) -> FileDescriptor {
        guard let data else { throw .badFileDescriptor }
        return data
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        let fd = try current()
        return try retryingEINTR { Glibc.read(fd.rawValue, buffer.baseAddress, buffer.count) }
    }

    public func write(from buffer: UnsafeRawBufferPointer) throws(Errno) -> Int {
        let fd = try current()
        return try retryingEINTR { Glibc.write(fd.rawValue, buffer.baseAddress, buffer.count) }
    }

    public func precopyInfo() throws(Errno) -> (initialBytes: UInt64, dirtyBytes: UInt64) {
        let bytes = try readValue("mig_precopy_info", width: 16)
        return (Self.word(bytes, 0), Self.word(bytes, 1))
    }

    public func stopCopyLength() throws(Errno) -> UInt64 { Self.word(try readValue("mig_data_size", width: 8), 0) }

    public func closeDataFD() {
        try? data?.close()
        data = nil
    }

    public func reset() throws(Errno) { try FileTransport.writeText("1\n", to: "\(directory)/reset") }

    public func digest() throws(Errno) -> String {
        guard let text = try? String(contentsOfFile: "\(directory)/digest", encoding: .utf8) else { throw .ioError }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

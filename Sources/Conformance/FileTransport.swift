import Foundation
import Glibc
import MdevFS
import MigrationProtocol
import SystemPackage

/// A device's region reached through a mount, as a VMM reaches a VFIO region: `pread`/`pwrite` on
/// `devices/<uuid>/migration`, the data section mapped `MAP_SHARED` from the same descriptor when
/// `migration.info` lists an mmap area, `reset` and `digest` as files beside it.
public final class FileTransport: RegionTransport {
    public let name: String
    public let directory: String
    public let regionSize: UInt64
    public private(set) var mappedDataSection: UnsafeMutableRawBufferPointer?
    public private(set) var mappedOffset: UInt64 = 0
    private let fd: FileDescriptor
    private var closed = false

    /// Opens `directory/migration` (e.g. `MOUNT/devices/<uuid>`).
    /// - Parameter map: map the data section when the region offers an mmap area.
    public init(directory: String, name: String? = nil, map: Bool = true) throws(Errno) {
        self.directory = directory
        self.name = name ?? directory
        fd = try openFile("\(directory)/migration", O_RDWR)
        var st = stat()
        guard fstat(fd.rawValue, &st) == 0 else {
            let e = Errno(rawValue: errno)
            try? fd.close()
            throw e
        }
        regionSize = UInt64(st.st_size)
        if map, let area = try? Self.mmapArea(directory: directory) {
            guard let base = mmap(nil, Int(area.size), PROT_READ | PROT_WRITE, MAP_SHARED, fd.rawValue, off_t(area.offset)),
                  base != MAP_FAILED
            else {
                let e = Errno(rawValue: errno)
                try? fd.close()
                throw e
            }
            mappedDataSection = UnsafeMutableRawBufferPointer(start: base, count: Int(area.size))
            mappedOffset = area.offset
        }
    }

    deinit { close() }

    /// Unmaps the data section and closes the descriptor (once; later calls do nothing). The
    /// device's RELEASE reaches the daemon asynchronously after this returns.
    public func close() {
        guard !closed else { return }
        closed = true
        if let map = mappedDataSection {
            // Write the dirty pages back first: munmap flushes them while holding this process's
            // mmap lock, and when the mount is served by this same process (`mdevsim migrate`,
            // the runner, the tests) the daemon threads that must answer those writebacks can
            // need that lock themselves (malloc, madvise, mmap): a deadlock seen with mapped data
            // sections of 4 MiB and more. msync(MS_SYNC) waits for the writeback without it.
            msync(map.baseAddress, map.count, MS_SYNC)
            munmap(map.baseAddress, map.count)
            mappedDataSection = nil
        }
        try? fd.close()
    }

    /// The first mmap area `migration.info` lists, if any.
    static func mmapArea(directory: String) throws -> (offset: UInt64, size: UInt64)? {
        try RegionInfo.read(directory: directory).mmapAreas.first.map { ($0.offset, $0.size) }
    }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try retryingEINTR { pread(fd.rawValue, buffer.baseAddress, buffer.count, off_t(offset)) }
    }

    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(Errno) -> Int {
        try retryingEINTR { pwrite(fd.rawValue, buffer.baseAddress, buffer.count, off_t(offset)) }
    }

    public func reset() throws(Errno) { try Self.writeText("1\n", to: "\(directory)/reset") }

    public func digest() throws(Errno) -> String {
        guard let text = try? String(contentsOfFile: "\(directory)/digest", encoding: .utf8) else { throw .ioError }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Writes a whole small file (`echo text > path`).
    public static func writeText(_ text: String, to path: String) throws(Errno) {
        let fd = try openFile(path, O_WRONLY)
        defer { try? fd.close() }
        let bytes = Array(text.utf8)
        let n = try retryingEINTR { bytes.withUnsafeBytes { Glibc.write(fd.rawValue, $0.baseAddress, $0.count) } }
        guard n == bytes.count else { throw .ioError }
    }
}

/// `open(2)` with close-on-exec, as a typed throw.
func openFile(_ path: String, _ flags: Int32) throws(Errno) -> FileDescriptor {
    while true {
        let fd = Glibc.open(path, flags | O_CLOEXEC)
        if fd >= 0 { return FileDescriptor(rawValue: fd) }
        let e = Errno(rawValue: errno)
        if e != .interrupted { throw e }
    }
}

/// Runs a syscall that returns -1 and sets errno, retrying on EINTR.
func retryingEINTR(_ call: () -> Int) throws(Errno) -> Int {
    while true {
        let n = call()
        if n >= 0 { return n }
        let e = Errno(rawValue: errno)
        if e != .interrupted { throw e }
    }
}

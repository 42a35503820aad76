import SystemPackage

/// How a VMM-side client reaches one device's migration region: in process, or through the
/// region file of a mount. The reference client is written against this only.
public protocol RegionTransport: AnyObject {
    /// A name for messages ("source", a UUID).
    var name: String { get }
    /// The region's size (`VFIO_DEVICE_GET_REGION_INFO.size`).
    var regionSize: UInt64 { get }
    /// The data section mapped into the client, when the region offers a mapping
    /// (sparse mmap area) and the client chose to map it; its region offset is `mappedOffset`.
    var mappedDataSection: UnsafeMutableRawBufferPointer? { get }
    var mappedOffset: UInt64 { get }
    /// pread: fewer bytes than asked only at the end of the region.
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int
    /// pwrite.
    func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(Errno) -> Int
    /// `VFIO_DEVICE_RESET`.
    func reset() throws(Errno)
    /// The device digest (SHA-256 of memory and config, hex).
    func digest() throws(Errno) -> String
}

extension RegionTransport {
    /// Reads one 4- or 8-byte header field.
    func readField(at offset: UInt64, width: Int) throws(Errno) -> UInt64 {
        var value: UInt64 = 0
        let n = try withUnsafeMutableBytes(of: &value) { (raw) throws(Errno) -> Int in
            try read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<width]))
        }
        guard n == width else { throw Errno.ioError }
        return UInt64(littleEndian: value)
    }

    /// Writes one 4- or 8-byte header field.
    func writeField(at offset: UInt64, width: Int, _ value: UInt64) throws(Errno) {
        let n = try withUnsafeBytes(of: value.littleEndian) { (raw) throws(Errno) -> Int in
            try write(at: offset, from: UnsafeRawBufferPointer(rebasing: raw[0..<width]))
        }
        guard n == width else { throw Errno.ioError }
    }
}

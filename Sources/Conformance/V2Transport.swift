import DeviceSimulator
import MigrationProtocol
import SystemPackage

/// How the v2 reference client reaches one device: the v2 calls one to one
/// (`VFIO_DEVICE_FEATURE` GET/SET of `MIGRATION`, `MIG_DEVICE_STATE`, `MIG_DATA_SIZE`, and on the
/// data_fd `read`, `write`, `VFIO_MIG_GET_PRECOPY_INFO`, `close`), so that the same client runs
/// in process and through a mount.
public protocol V2Transport: AnyObject {
    /// For messages: `source`, `destination`.
    var name: String { get }
    /// `VFIO_DEVICE_FEATURE_MIGRATION` GET.
    func features() throws(Errno) -> V2MigrationFeatures
    /// `MIG_DEVICE_STATE` GET.
    func state() throws(Errno) -> V2DeviceState
    /// `MIG_DEVICE_STATE` SET; true when it started a data transfer session, whose data_fd the
    /// transport then holds (the previous one is closed, as a VMM closes it).
    func setState(_ state: V2DeviceState) throws(Errno) -> Bool
    /// `read()` on the current data_fd.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int
    /// `write()` on the current data_fd.
    func write(from buffer: UnsafeRawBufferPointer) throws(Errno) -> Int
    /// `VFIO_MIG_GET_PRECOPY_INFO` on the current data_fd.
    func precopyInfo() throws(Errno) -> (initialBytes: UInt64, dirtyBytes: UInt64)
    /// `VFIO_DEVICE_FEATURE_MIG_DATA_SIZE` GET.
    func stopCopyLength() throws(Errno) -> UInt64
    /// `close()` of the current data_fd, if one is open.
    func closeDataFD()
    /// `VFIO_DEVICE_RESET`.
    func reset() throws(Errno)
    /// The device's content digest.
    func digest() throws(Errno) -> String
}

/// A v2 device reached in process: every call goes straight to the engine.
public final class InProcessV2Transport: V2Transport {
    public let device: V2Device
    public let name: String
    private var session: UInt64?

    public init(device: V2Device, name: String) {
        self.device = device
        self.name = name
    }

    public func features() throws(Errno) -> V2MigrationFeatures { device.features }
    public func state() throws(Errno) -> V2DeviceState { device.get() }

    public func setState(_ state: V2DeviceState) throws(Errno) -> Bool {
        // The GET the file transport needs before each SET (its SET does not answer whether a
        // session, a data_fd, began), made here too: the client's accesses, and so a trace of
        // the same scenario, are then the same in process and through a mount.
        _ = device.get()
        switch device.set(state) {
        case .failure(let failure): throw failure.errno
        case .success(let outcome):
            guard let new = outcome.newSession else { return false }
            session = new
            return true
        }
    }

    private func current() throws(Errno) -> UInt64 {
        guard let session else { throw .badFileDescriptor }
        return session
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try device.read(session: current(), into: buffer).get()
    }

    public func write(from buffer: UnsafeRawBufferPointer) throws(Errno) -> Int {
        try device.write(session: current(), from: buffer).get()
    }

    public func precopyInfo() throws(Errno) -> (initialBytes: UInt64, dirtyBytes: UInt64) {
        try device.precopyInfo(session: current()).get()
    }

    public func stopCopyLength() throws(Errno) -> UInt64 { device.stopCopyLength() }
    public func closeDataFD() { session = nil }
    public func reset() throws(Errno) { device.reset() }
    public func digest() throws(Errno) -> String { device.device.digest() }
}

import MigrationProtocol
import SystemPackage

/// One migration v2 call a device answered, as a trace observer is told it (the v2 counterpart
/// of `RegionAccess`): `MIG_DEVICE_STATE` SET and GET, a data_fd `read()` or `write()`,
/// `VFIO_MIG_GET_PRECOPY_INFO`, `MIG_DATA_SIZE`. A borrowed view: `bytes` is valid only during
/// the observer's call.
public struct V2Call {
    public enum Kind: String, Sendable, CaseIterable {
        case set, get, read, write, precopyInfo, dataSize
    }

    /// The device's identity (an mdev UUID through a mount).
    public let device: String
    public let kind: Kind
    /// SET: the state before the call, and the target asked for.
    public let from: V2DeviceState?
    public let to: V2DeviceState?
    /// SET: the state the device was left in (also after a failure: any state of the walk, or
    /// ERROR); GET: the answer.
    public let state: V2DeviceState?
    /// A data_fd call (and PRECOPY_INFO when asked on one): the session of the data_fd used;
    /// SET: the session of the new data_fd, when the walk started one.
    public let session: UInt64?
    /// read, write: bytes the client asked to move.
    public let count: Int
    /// read: the bytes returned (empty on failure); write: the client's bytes.
    public let bytes: UnsafeRawBufferPointer
    /// PRECOPY_INFO: `initial_bytes`, `dirty_bytes`; MIG_DATA_SIZE: `stop_copy_length` in `first`.
    public let values: (first: UInt64, second: UInt64)?
    /// How the call failed, if it did.
    public let errno: Errno?

    public init(device: String, kind: Kind, from: V2DeviceState? = nil, to: V2DeviceState? = nil, state: V2DeviceState? = nil,
                session: UInt64? = nil, count: Int = 0, bytes: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
                values: (first: UInt64, second: UInt64)? = nil, errno: Errno? = nil) {
        self.device = device
        self.kind = kind
        self.from = from
        self.to = to
        self.state = state
        self.session = session
        self.count = count
        self.bytes = bytes
        self.values = values
        self.errno = errno
    }
}

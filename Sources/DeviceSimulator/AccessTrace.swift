import Crypto
import MigrationProtocol
import SystemPackage

/// What a trace observer is told: every client access a region answers, and the device
/// lifecycle events around them. The engine stays free of I/O: it only hands these to an
/// `AccessObserver`, which a higher layer (Conformance's `TraceRecorder`) turns into records.
///
/// Not client accesses, and so never reported: page-fault reads of a mapped data section and
/// late page writebacks (the mount's `RegionFile` answers them from the buffer without the
/// engine). What a mapping client moved is reported instead as the chunk the device staged
/// (`staged`) and the bytes the device took from the section when `data_size` was written
/// (`applied`).
public protocol AccessObserver: AnyObject, Sendable {
    /// One region access, answered. Called by the engine before it returns the answer, under
    /// whatever lock serializes the engine, so one device's accesses arrive in order. The
    /// buffers in `access` are valid only during the call.
    func regionAccessed(_ access: RegionAccess)
    /// A device was created, removed, reset, or its region opened or released. `type` is the
    /// mdev type name (for `create`); `errno` is how the event failed, if it did.
    func deviceEvent(_ event: DeviceEvent, device: String, type: String?, errno: Errno?)
    /// One migration v2 call, answered (`V2Device`): called before the answer returns, under the
    /// lock that serializes the engine. Observers that only care about the region ignore it.
    func v2Called(_ call: V2Call)
}

extension AccessObserver {
    /// Nothing: an observer of the v1 region only.
    public func v2Called(_ call: V2Call) {}
}

/// A device lifecycle event a trace records beside the accesses.
public enum DeviceEvent: String, Sendable, CaseIterable {
    case create, remove, reset, open, release
}

/// One client access to a region as the engine answered it. A borrowed view: its buffers point
/// into the client's request and the engine's data section.
public struct RegionAccess {
    /// The device's identity (an mdev UUID through a mount; `scenario/source` in process).
    public let device: String
    public let isWrite: Bool
    /// Region offset of the access.
    public let offset: UInt64
    /// Bytes the client asked to move.
    public let count: Int
    /// A write: the client's bytes. A read: the bytes the device returned (empty on failure).
    public let bytes: UnsafeRawBufferPointer
    public let result: AccessResult
    /// Save: the chunk a `data_offset` read has just staged, as the data section holds it.
    public let staged: UnsafeRawBufferPointer?
    /// Resume, a `data_size` write: the bytes the device takes from the data section that the
    /// client did not pwrite in this transaction (it stored them through the mapping).
    public let applied: UnsafeRawBufferPointer?

    /// A header access (the trapped page before the data section).
    public var isHeader: Bool { offset < RegionLayout.dataSectionOffset }
}

/// Helpers shared by everything that writes or checks traces.
public enum RegionAccessTrace {
    /// The digest a trace keeps of bytes it does not store (data reads, staged chunks): the
    /// first 16 bytes of their SHA-256, as 32 lowercase hex digits. Enough to tell any two
    /// chunks apart in practice, and a quarter of the line a full digest would take.
    public static func digest(_ bytes: UnsafeRawBufferPointer) -> String {
        SimulatedDevice.hex(SHA256.hash(data: bytes).prefix(16))
    }
}

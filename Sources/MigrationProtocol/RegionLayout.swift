/// Byte layout of the VFIO migration v1 region header, `struct vfio_device_migration_info`
/// (`<linux/vfio.h>`, v14 uapi, seed 002).
///
/// ```
/// offset  width  field          access
///      0      4  device_state   read/write
///      4      4  reserved       reads 0, writes ignored
///      8      8  pending_bytes  read only
///     16      8  data_offset    read only
///     24      8  data_size      read/write
/// ```
/// The tests compile `<linux/vfio.h>` and prove these numbers equal the C compiler's.
public enum RegionLayout {
    /// `sizeof(struct vfio_device_migration_info)`.
    public static let headerSize: UInt64 = 32
    /// `VFIO_REGION_TYPE_MIGRATION` (now `VFIO_REGION_TYPE_MIGRATION_DEPRECATED`).
    public static let regionType: UInt32 = 3
    /// `VFIO_REGION_SUBTYPE_MIGRATION` (now `..._DEPRECATED`).
    public static let regionSubtype: UInt32 = 1
    /// Where the data section starts. The uapi asks for a page-aligned `data_offset` when the data
    /// section is mmapped, so it begins on the first host page after the header.
    public static let hostPageSize: UInt64 = 4096
    public static let dataSectionOffset: UInt64 = hostPageSize

    /// The region's index among the device's regions: `VFIO_PCI_NUM_REGIONS`, the first
    /// device-specific index (the shim takes the same constant from `<linux/vfio.h>`).
    public static let regionIndex = 9

    /// `VFIO_REGION_INFO_FLAG_READ`, `_WRITE`, `_MMAP`.
    public static let regionFlagRead: UInt32 = 1 << 0
    public static let regionFlagWrite: UInt32 = 1 << 1
    public static let regionFlagMmap: UInt32 = 1 << 2
}

/// One field of the trapped header.
public enum HeaderField: String, Sendable, CaseIterable, Codable, Hashable {
    case deviceState = "device_state"
    case reserved = "reserved"
    case pendingBytes = "pending_bytes"
    case dataOffset = "data_offset"
    case dataSize = "data_size"

    /// What the user may do with a field.
    public enum Access: Sendable, Hashable {
        case readWrite
        case readOnly
        /// Reads return zero and writes are ignored (uapi: "reserved").
        case reserved
    }

    /// Byte offset in the region.
    public var offset: UInt64 {
        switch self {
        case .deviceState: 0
        case .reserved: 4
        case .pendingBytes: 8
        case .dataOffset: 16
        case .dataSize: 24
        }
    }

    /// Native width in bytes: the only width at which the field may be accessed.
    public var width: Int {
        switch self {
        case .deviceState, .reserved: 4
        case .pendingBytes, .dataOffset, .dataSize: 8
        }
    }

    public var access: Access {
        switch self {
        case .deviceState, .dataSize: .readWrite
        case .reserved: .reserved
        case .pendingBytes, .dataOffset: .readOnly
        }
    }

    /// The field accessed by `width` bytes at `offset`, or `nil` if that access is not exactly one
    /// field at its native width and alignment ("Field accesses from this structure are only
    /// supported at their native width and alignment. Otherwise, the result is undefined and vendor
    /// drivers should return an error.").
    public static func at(offset: UInt64, width: Int) -> HeaderField? {
        allCases.first { $0.offset == offset && $0.width == width }
    }
}

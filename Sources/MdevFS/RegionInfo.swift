import DeviceSimulator
import Foundation
import MigrationProtocol

/// `migration.info`: the region as `VFIO_DEVICE_GET_REGION_INFO` (with its type and sparse mmap
/// capabilities) would describe it, as JSON. The one definition of that file's format: the
/// mount writes it with this type, every Swift reader decodes it with this type, and the shim's
/// C parser is tested against what the mount writes (QEMUTests' ShimBuildTests).
public struct RegionInfo: Codable, Sendable, Hashable {
    public struct Flags: Codable, Sendable, Hashable {
        public var read: Bool
        public var write: Bool
        public var mmap: Bool
    }
    public struct Area: Codable, Sendable, Hashable {
        public var offset: UInt64
        public var size: UInt64
    }

    public var index: Int = RegionLayout.regionIndex
    public var size: UInt64
    public var flags: Flags
    /// `flags` as the ioctl's bit mask.
    public var flagsValue: UInt32
    public var type: UInt32 = RegionLayout.regionType
    public var subtype: UInt32 = RegionLayout.regionSubtype
    public var headerSize: UInt64 = RegionLayout.headerSize
    public var dataOffset: UInt64 = RegionLayout.dataSectionOffset
    public var dataSize: UInt64
    /// The sparse mmap areas: the data section when it can be mapped, else none.
    public var mmapAreas: [Area]

    /// The file's keys, spelled out so the format does not depend on an encoder's strategy.
    enum CodingKeys: String, CodingKey {
        case index, size, flags, type, subtype
        case flagsValue = "flags_value"
        case headerSize = "header_size"
        case dataOffset = "data_offset"
        case dataSize = "data_size"
        case mmapAreas = "mmap_areas"
    }

    /// - Parameter mmapAvailable: the device offers mmap and the kernel can map this mount's
    ///   direct-I/O files (`FUSE_DIRECT_IO_ALLOW_MMAP` negotiated).
    public init(configuration: DeviceConfiguration, mmapAvailable: Bool) {
        size = configuration.regionSize
        let mmap = configuration.dataSectionMmap && mmapAvailable
        flags = Flags(read: true, write: true, mmap: mmap)
        flagsValue = RegionLayout.regionFlagRead | RegionLayout.regionFlagWrite | (mmap ? RegionLayout.regionFlagMmap : 0)
        dataSize = configuration.dataSectionSize
        mmapAreas = mmap ? [Area(offset: RegionLayout.dataSectionOffset, size: configuration.dataSectionSize)] : []
    }

    /// Reads `migration.info` of the device directory `directory`.
    public static func read(directory: String) throws -> RegionInfo {
        try JSONDecoder().decode(RegionInfo.self, from: Data(contentsOf: URL(fileURLWithPath: "\(directory)/migration.info")))
    }
}

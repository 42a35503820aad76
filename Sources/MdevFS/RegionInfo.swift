import DeviceSimulator
import MigrationProtocol

/// `migration.info`: the region as `VFIO_DEVICE_GET_REGION_INFO` (with its type and sparse mmap
/// capabilities) would describe it. Encodes as JSON.
struct RegionInfo: Encodable {
    struct Flags: Encodable {
        var read: Bool
        var write: Bool
        var mmap: Bool
    }
    struct Area: Encodable {
        var offset: UInt64
        var size: UInt64
    }

    var index: Int = 9 // VFIO_PCI_NUM_REGIONS: the first device-specific region index
    var size: UInt64
    var flags: Flags
    var flagsValue: UInt32
    var type: UInt32 = RegionLayout.regionType
    var subtype: UInt32 = RegionLayout.regionSubtype
    var headerSize: UInt64 = RegionLayout.headerSize
    var dataOffset: UInt64 = RegionLayout.dataSectionOffset
    var dataSize: UInt64
    var mmapAreas: [Area]

    /// - Parameter mmapAvailable: the device offers mmap and the kernel can map this mount's
    ///   direct-I/O files (`FUSE_DIRECT_IO_ALLOW_MMAP` negotiated).
    init(configuration: DeviceConfiguration, mmapAvailable: Bool) {
        size = configuration.regionSize
        let mmap = configuration.dataSectionMmap && mmapAvailable
        flags = Flags(read: true, write: true, mmap: mmap)
        flagsValue = RegionLayout.regionFlagRead | RegionLayout.regionFlagWrite | (mmap ? RegionLayout.regionFlagMmap : 0)
        dataSize = configuration.dataSectionSize
        mmapAreas = mmap ? [Area(offset: RegionLayout.dataSectionOffset, size: configuration.dataSectionSize)] : []
    }
}

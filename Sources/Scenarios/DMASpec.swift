/// Device DMA into guest memory (scenario key `dma:`): while a device of the type runs, it
/// rewrites a range of guest-physical memory at a given rate, through the DMA mappings the VMM
/// registered with the VFIO container, and reports the pages it wrote as dirty.
///
/// The device lives in the mdevsim daemon but the DMA mappings live in the VMM, so
/// `libmdevsim-vfio.so` performs the writes inside the VMM and reports them in
/// `VFIO_IOMMU_DIRTY_PAGES` bitmaps; the mount publishes the spec in each device's `dma` file.
public struct DMASpec: Sendable, Hashable, Encodable {
    /// Guest-physical address of the first byte written (4KiB aligned).
    public var address: UInt64
    /// Bytes of the range (a multiple of 4KiB, at most `maximumSize`).
    public var size: UInt64
    /// Bytes written per second while the device runs.
    public var rate: UInt64
    /// Seed of the written pattern (combined with the scenario seed).
    public var seed: UInt64

    public init(address: UInt64, size: UInt64, rate: UInt64, seed: UInt64 = 1) {
        self.address = address
        self.size = size
        self.rate = rate
        self.seed = seed
    }

    /// The largest range: the shim keeps one dirty bit per page of it.
    public static let maximumSize: UInt64 = 256 << 20
    static let keys = ["address", "size", "rate"]
}

import DeviceSimulator
import Glibc
import Synchronization

/// Memory extents a device gave back (it was removed, reset or powered on again), kept for the
/// next device that needs one.
///
/// Why: a resume writes every page it receives into memory the destination never touched, and
/// the kernel zeroes each fresh page on that first touch: most of a destination's `data_size`
/// cost (mdevsim-bench: ~70% of an in-process resume). A real device's memory exists before the
/// migration starts; reusing extents of earlier devices gives a mount that runs one scenario
/// after another the same. Stale bytes in a reused extent are never read: `DeviceMemory` reads
/// a page from its extent only once the page was written whole.
///
/// The engine allocates plainly (`HeapExtents`); the host of the devices (a mount, a bench)
/// injects a pool. A mount keeps one for all its devices.
public final class ExtentPool: ExtentProvider {
    /// The pool a mount uses: at most 256 extents of 2 MiB (512 MiB) are kept.
    public static func standard() -> ExtentPool { ExtentPool(capacity: 256, extentBytes: 2 << 20) }

    public let capacity: Int
    public let extentBytes: Int
    /// Addresses (bit patterns) of free extents.
    private let free = Mutex<[UInt]>([])

    public init(capacity: Int, extentBytes: Int) {
        self.capacity = capacity
        self.extentBytes = extentBytes
    }

    /// An extent of `extentBytes`, 2 MiB aligned: a kept one if any, else a new one backed by a
    /// transparent huge page where the kernel allows it; nil when the process has no memory left.
    public func take() -> UnsafeMutableRawPointer? {
        if let address = free.withLock({ $0.popLast() }), let kept = UnsafeMutableRawPointer(bitPattern: address) {
            return kept
        }
        guard let base = FallibleAllocation.allocate(byteCount: extentBytes, alignment: extentBytes) else { return nil }
        _ = madvise(base, extentBytes, MADV_HUGEPAGE)
        return base
    }

    /// Gives an extent from `take` back: kept while there is room, freed otherwise.
    public func give(_ extent: UnsafeMutableRawPointer) {
        let kept = free.withLock { list -> Bool in
            guard list.count < capacity else { return false }
            list.append(UInt(bitPattern: extent))
            return true
        }
        if !kept { FallibleAllocation.free(extent) }
    }

    /// Extents kept right now.
    public var keptCount: Int { free.withLock { $0.count } }
}

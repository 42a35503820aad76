import DeviceSimulator
import Foundation
import FUSEKit
import MigrationProtocol
import SystemPackage
import Synchronization

/// One simulated mdev device of the mount: its engine, who holds its region, and the page-cache
/// coherence state of its data section mapping.
///
/// The engine is not thread-safe; every engine call happens under `lock`. Cache notifications
/// (`notify_store`, `notify_retrieve`) are never sent while `lock` is held: the kernel may be
/// holding a page lock while it waits for this daemon to answer a page-fault read, and that read
/// is answered without `lock` (see `RegionFile`), so no cycle can form.
final class MdevDevice: @unchecked Sendable {
    let uuid: String
    let typeIndex: Int
    /// The device's IOMMU group number (`iommu_group` link), unique within the mount.
    let iommuGroup: Int
    let region: MigrationRegion
    /// The device's migration v2 face, on the same simulated device, when its type speaks v2.
    let v2: V2Device?
    private let lock = NSCondition()

    // Guarded by `lock`:
    /// The handle of the open file description holding the region, if any.
    private(set) var holder: UInt64?
    /// `region.dataSectionWrites` when the data section was last pushed whole into the page
    /// cache (a resume's pre-fill), nil when the cache may hold other bytes (a new holder).
    var prefilledAt: UInt64?
    /// The client has used a mapping of the data section (a page-fault read or a writeback
    /// reached us): from then on the device keeps the kernel's page cache coherent. Kept in the
    /// engine, whose checker then knows that save-side reads of the mapping are unseen.
    var mappingInUse: Bool {
        get { region.dataSectionMapping != .none }
        set { region.dataSectionMapping = newValue ? .pageCache : .none }
    }

    /// Throws `ENOMEM` when the device's memory is not there (`MigrationRegion.make`).
    init(uuid: String, typeIndex: Int, iommuGroup: Int, configuration: DeviceConfiguration, strict: Bool,
         observer: (any AccessObserver)? = nil, clock: HostClock, extents: ExtentPool) throws(Errno) {
        self.uuid = uuid
        self.typeIndex = typeIndex
        self.iommuGroup = iommuGroup
        region = try MigrationRegion.make(configuration: configuration, identity: uuid, strict: strict,
                                          wallClock: clock, extents: extents).get()
        region.observer = observer
        // Every pread and pwrite reaches the engine until the client maps the section.
        region.dataSectionMapping = .none
        v2 = configuration.protocols.contains(.v2)
            ? V2Device(device: region.device, features: configuration.v2Features, strict: strict, wallClock: clock) : nil
        v2?.observer = observer
        adviseHugePages()
    }

    /// The kernel copies a chunk out of and into the section for every notify_store, retrieve
    /// and pread: on transparent huge pages, pinning a 1 MiB buffer walks one PMD, not 256 PTEs.
    /// For each of the section's buffers (staging ahead adds one).
    func adviseHugePages() {
        for buffer in region.sectionBuffers where buffer.count >= 2 << 20 {
            if let base = buffer.baseAddress { _ = madvise(base, buffer.count, MADV_HUGEPAGE) }
        }
    }

    /// `VFIO_DEVICE_RESET`: both protocol faces back to running, power-on memory.
    func reset() {
        withLock {
            region.reset()
            v2?.reset()
        }
    }

    /// Threads blocked in `withLock`: work done in slices under the lock lets them in first.
    private let waiting = Atomic<Int>(0)

    /// Runs `body` with the engine locked.
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        waiting.add(1, ordering: .relaxed)
        lock.lock()
        waiting.subtract(1, ordering: .relaxed)
        defer { lock.unlock() }
        return try body()
    }

    /// For work that takes the lock a slice at a time (building a chunk ahead): returns once no
    /// thread is waiting for the lock. A mutex is not fair: the slicing thread would take it
    /// again at once, and a client's request would wait for all the slices, not one.
    func letWaitersIn() {
        while waiting.load(ordering: .relaxed) > 0 { sched_yield() }
    }

    /// Takes the region for `handle`. A region held by another open waits up to `grace` for that
    /// open's RELEASE, which FUSE delivers after the client's `close` has already returned (a
    /// client that closes and reopens at once would otherwise see a spurious EBUSY).
    func acquire(_ handle: UInt64, grace: TimeInterval = 0.25) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let deadline = Date().addingTimeInterval(grace)
        while holder != nil {
            if !lock.wait(until: deadline) { break }
        }
        guard holder == nil else { return false }
        holder = handle
        return true
    }

    func release(_ handle: UInt64) {
        lock.lock()
        if holder == handle { holder = nil }
        lock.broadcast()
        lock.unlock()
    }

    /// Open `mig_data` files (v2 data_fds) of the device.
    private var dataFiles = 0

    func dataFileOpened() { withLock { dataFiles += 1 } }
    func dataFileClosed() { withLock { dataFiles = max(0, dataFiles - 1) } }

    /// Whether a VMM holds the device: its v1 region or a v2 data_fd is open. sysfs refuses to
    /// remove an mdev while its VFIO device is open (the kernel waits for the last close); the
    /// mount answers EBUSY instead of waiting.
    var isOpen: Bool { withLock { holder != nil || dataFiles > 0 } }
}

extension MdevDevice {
    /// Whether the device directory has `file`: the v2 files only on a device speaking v2.
    func offers(_ file: MdevNode.DeviceFile) -> Bool { !file.isV2 || v2 != nil }
}

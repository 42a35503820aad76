import DeviceSimulator
import Foundation
import FUSEKit
import MigrationProtocol
import SystemPackage

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
    private let lock = NSCondition()

    // Guarded by `lock`:
    /// The handle of the open file description holding the region, if any.
    private(set) var holder: UInt64?
    /// The client has used a mapping of the data section (a page-fault read or a writeback
    /// reached us): from then on the device keeps the kernel's page cache coherent.
    var mappingInUse = false
    /// Resume: the data-section bytes (offsets in the section) pwritten since the last
    /// `data_offset` read. They win over the mapping where both wrote.
    var pwrittenInTransaction: [Range<Int>] = []
    /// Resume: the client stored through the mapping since the last `data_offset` read (a
    /// writeback arrived, or a retrieved byte outside the pwritten ones differs from the buffer).
    var mappedStoresInTransaction = false

    /// A new resume transaction begins (a `data_offset` read).
    func beginTransaction() {
        pwrittenInTransaction = []
        mappedStoresInTransaction = false
    }

    /// Copies retrieved mapping bytes at section offset `start` into the data section. Bytes
    /// the client pwrote in this transaction are kept (the pwrite wins); any other byte that
    /// differs from the buffer is a store through the mapping.
    func mergeRetrieved(_ data: UnsafeRawBufferPointer, at start: Int) {
        let section = region.dataSection
        guard start >= 0, start < section.count else { return }
        let end = start + min(data.count, section.count - start)
        var keep = pwrittenInTransaction.filter { $0.overlaps(start..<end) }.sorted { $0.lowerBound < $1.lowerBound }
        var cursor = start
        keep.append(end..<end)
        for pwritten in keep {
            let segment = cursor..<max(cursor, min(end, pwritten.lowerBound))
            if !segment.isEmpty {
                let target = UnsafeMutableRawBufferPointer(rebasing: section[segment])
                let source = UnsafeRawBufferPointer(rebasing: data[(segment.lowerBound - start)..<(segment.upperBound - start)])
                if !pwrittenInTransaction.isEmpty, !mappedStoresInTransaction,
                   let t = target.baseAddress, let s = source.baseAddress, memcmp(t, s, segment.count) != 0 {
                    mappedStoresInTransaction = true
                }
                target.copyMemory(from: source)
            }
            cursor = max(cursor, pwritten.upperBound)
        }
    }

    /// Throws `ENOMEM` when the device's memory is not there (`MigrationRegion.make`).
    init(uuid: String, typeIndex: Int, iommuGroup: Int, configuration: DeviceConfiguration, strict: Bool,
         observer: (any AccessObserver)? = nil) throws(Errno) {
        self.uuid = uuid
        self.typeIndex = typeIndex
        self.iommuGroup = iommuGroup
        region = try MigrationRegion.make(configuration: configuration, identity: uuid, strict: strict).get()
        region.observer = observer
    }

    /// Runs `body` with the engine locked.
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
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

    var isOpen: Bool { withLock { holder != nil } }
}

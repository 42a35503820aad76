@testable import DeviceSimulator
import MigrationProtocol
import PropertyBased
import Testing

/// Bookkeeping follows what a device touched, not its size (issue 13): the sparse `PageBitmap`
/// against a plain set, and a 64 TiB device saved for a while.
@Suite struct SparseBookkeepingTests {
    /// Random inserts, removes and scans on both backgrounds give what a `Set` gives.
    @Test func bitmapMatchesASet() async {
        let step = zip(Gen.int(in: 0...3), Gen.uint64(in: 0...199_999))
        await propertyCheck(count: 40, input: zip(Gen.bool, step.array(of: 1...300))) { allSet, steps in
            let count: UInt64 = 200_000
            var bitmap = PageBitmap(count: count, allSet: allSet)
            var reference: Set<UInt64> = allSet ? Set(0..<count) : []
            for (kind, bit) in steps {
                switch kind {
                case 0: #expect(bitmap.insert(bit) == reference.insert(bit).inserted)
                case 1: bitmap.remove(bit); reference.remove(bit)
                case 2: #expect(bitmap.contains(bit) == reference.contains(bit))
                default:
                    let above = reference.filter { $0 >= bit }
                    #expect(bitmap.firstSet(from: bit) == (above.min() ?? reference.min()))
                    // What v2's PRECOPY_INFO counts: the bits at and after the save cursor.
                    #expect(bitmap.count(from: bit) == UInt64(above.count))
                }
                #expect(bitmap.setCount == UInt64(reference.count))
            }
        }
    }

    @Test func aSavePassOverAllSetLeavesNoLeavesBehindTheCursor() {
        var bitmap = PageBitmap(count: 3 << 16, allSet: true)
        var cursor: UInt64 = 0, sent: UInt64 = 0
        while let page = bitmap.firstSet(from: cursor) {
            bitmap.remove(page)
            cursor = page + 1
            sent += 1
        }
        #expect(sent == 3 << 16 && bitmap.setCount == 0)
        bitmap.removeAll()
        #expect(bitmap.storageBytes == 0 && bitmap.firstSet(from: 0) == nil)
    }

    /// 2^34 pages: a flat bitmap would be 2 GiB (the allocation that killed the daemon).
    @Test func aSixtyFourTiBDeviceCostsWhatItTouched() {
        var c = DeviceConfiguration(dirtyRate: 0)
        c.typeName = "huge"
        c.memorySize = 64 << 40
        c.fill = .zero
        let region = MigrationRegion(configuration: c, identity: "huge")
        #expect(region.set(DeviceState.stopAndCopy.bits) == nil)
        for _ in 0..<8 {
            #expect((region.value(.pendingBytes) ?? 0) > 0)
            #expect(region.value(.dataOffset) == RegionLayout.dataSectionOffset)
        }
        let session = region.saveSession
        #expect(session?.pagesSent ?? 0 > 1000)
        #expect((session?.dirty.storageBytes ?? .max) < 64 << 10, "a few leaves, not 2 GiB")
        #expect(region.device.materializedPages == 0)
    }

    /// A page the device rewrites costs a page, wherever it is: 1,000 pages, one in each 2 MiB of
    /// a 2 GiB device, fit in two extents (they took one extent each before), and read back.
    @Test func sparseRewritesCostAPageEach() {
        let config = DeviceConfiguration(memorySize: 2 << 30, pageSize: 4096, dirtyRate: 0)
        let memory = DeviceMemory(pageSize: 4096, pageCount: config.pageCount,
                                  generator: PageGenerator(seed: 1, fill: .random, pageSize: 4096), extents: HeapExtents.standard)
        let stride: UInt64 = 512
        for i in 0..<UInt64(1000) { #expect(memory.rewrite(page: i * stride + i % 7, version: i + 1)) }
        #expect(memory.materializedPages == 1000)
        #expect(memory.residentBytes == 2 * (2 << 20))
        let generator = PageGenerator(seed: 1, fill: .random, pageSize: 4096)
        var page = [UInt8](repeating: 0, count: 4096)
        for i in [UInt64(0), 499, 999] {
            page.withUnsafeMutableBytes { memory.read(page: i * stride + i % 7, into: $0.baseAddress!) }
            #expect(page.withUnsafeBytes { generator.matches(page: i * stride + i % 7, version: i + 1, bytes: $0.baseAddress!) })
        }
        memory.powerOn()
        #expect(memory.materializedPages == 0 && memory.residentBytes == 0)
    }
}

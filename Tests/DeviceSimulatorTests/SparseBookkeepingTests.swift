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
}

import DeviceSimulator
import EngineFixtures
import MigrationProtocol
import SystemPackage
import Testing

/// The save sequence as seed 002 settles it, with Alex Williamson's clarifications.
@Suite struct SaveSequenceTests {
    func chunkNumber(_ region: MigrationRegion, at offset: UInt64) -> UInt64 {
        let start = Int(offset - RegionLayout.dataSectionOffset)
        #expect(region.dataSection.loadUnaligned(fromByteOffset: start, as: UInt32.self) == 0x4B4E_4843, "CHNK")
        return region.dataSection.loadUnaligned(fromByteOffset: start + 8, as: UInt64.self)
    }

    @Test func pendingBytesHasNoSideEffectUntilAChunkIsStaged() {
        let region = MigrationRegion(configuration: smallConfiguration(), identity: "s")
        _ = region.set(DeviceState.preCopy.bits)
        let first = region.value(.pendingBytes)
        #expect(first ?? 0 > 0)
        for _ in 0..<5 { #expect(region.value(.pendingBytes) == first) }
    }

    @Test func dataOffsetStagesAndRereadsReturnTheSameBufferUntilPendingIsRead() {
        let region = MigrationRegion(configuration: smallConfiguration(), identity: "s")
        _ = region.set(DeviceState.preCopy.bits)
        let p0 = region.value(.pendingBytes) ?? 0
        let offset = region.value(.dataOffset) ?? 0
        let size = region.value(.dataSize) ?? 0
        #expect(offset == RegionLayout.dataSectionOffset)
        #expect(size > 0 && size <= region.configuration.chunkSize)
        #expect(chunkNumber(region, at: offset) == 0)
        for _ in 0..<3 {
            #expect(region.value(.dataOffset) == offset)
            #expect(region.value(.dataSize) == size)
            #expect(chunkNumber(region, at: offset) == 0, "re-reading does not stage a new chunk")
        }
        // Reading pending_bytes marks the chunk consumed; with no dirtying it drops by exactly data_size.
        #expect(region.value(.pendingBytes) == p0 - size)
        _ = region.value(.dataOffset)
        #expect(chunkNumber(region, at: offset) == 1)
        #expect(region.violations.isEmpty)
    }

    @Test(arguments: [(UInt64(2 << 20), UInt64(4096), UInt64(64 << 10), UInt64(4096)),
                      (1 << 20, 512, 4096, 100), (3 << 20, 65536, 1 << 20, 70_000), (0, 4096, 8192, 20_000)])
    func pendingAccountsForEveryByteExactly(memory: UInt64, page: UInt64, chunk: UInt64, config: UInt64) {
        let region = MigrationRegion(configuration: smallConfiguration(memory: memory, pageSize: page, chunk: chunk, section: chunk, configSize: config), identity: "s")
        _ = region.set(DeviceState.stopAndCopy.bits)
        var pending = region.value(.pendingBytes) ?? 0
        var total: UInt64 = 0
        let planned = pending
        while pending > 0 {
            _ = region.value(.dataOffset)
            let size = region.value(.dataSize) ?? 0
            #expect(size > 0, "data_size 0 with \(pending) pending")
            if size == 0 { break }
            total += size
            let next = region.value(.pendingBytes) ?? 0
            #expect(next == pending - size)
            pending = next
        }
        #expect(total == planned)
    }

    @Test func stopAndCopyMayBeEnteredWithBytesPendingAndAStagedChunkSurvivesIt() {
        let region = MigrationRegion(configuration: smallConfiguration(), identity: "s")
        _ = region.set(DeviceState.preCopy.bits)
        _ = region.value(.pendingBytes)
        let offset = region.value(.dataOffset) ?? 0
        let size = region.value(.dataSize) ?? 0
        #expect(region.set(DeviceState.stopAndCopy.bits) == nil)
        // QEMU may leave pre-copy between moving a chunk and reading pending_bytes: the chunk
        // stays staged and is consumed by the next read, not sent twice or lost.
        #expect(region.value(.dataOffset) == offset)
        #expect(region.value(.dataSize) == size)
        #expect(chunkNumber(region, at: offset) == 0)
        _ = region.value(.pendingBytes)
        _ = region.value(.dataOffset)
        #expect(chunkNumber(region, at: offset) == 1)
    }

    @Test func preCopyPendingGrowsWhileTheDeviceDirties() {
        let region = MigrationRegion(configuration: smallConfiguration(memory: 1 << 20, dirtyRate: 4 << 30), identity: "s")
        _ = region.set(DeviceState.preCopy.bits)
        var grew = false
        var previous = region.value(.pendingBytes) ?? 0
        for _ in 0..<20 {
            _ = region.value(.dataOffset)
            let size = region.value(.dataSize) ?? 0
            let next = region.value(.pendingBytes) ?? 0
            if next > previous - min(size, previous) { grew = true }
            previous = next
        }
        #expect(grew)
    }

    @Test func aDeviceWithoutPrecopyDataSendsEverythingInStopAndCopy() {
        let region = MigrationRegion(configuration: smallConfiguration(precopy: false), identity: "s")
        _ = region.set(DeviceState.preCopy.bits)
        #expect(region.value(.pendingBytes) == 0)
        _ = region.value(.dataOffset)
        #expect(region.value(.dataSize) == 0)
        _ = region.set(DeviceState.stopAndCopy.bits)
        #expect(region.value(.pendingBytes) ?? 0 > 2 << 20)
    }

    @Test func checkerFlagsReadingDataOrDataSizeBeforeDataOffset() {
        let region = MigrationRegion(configuration: smallConfiguration(), identity: "s")
        _ = region.set(DeviceState.preCopy.bits)
        #expect(region.read(.dataSize) == .success(0))
        var byte: UInt8 = 0
        _ = withUnsafeMutableBytes(of: &byte) { region.read(at: RegionLayout.dataSectionOffset, into: $0) }
        #expect(region.violations.map(\.rule) == [.dataSizeWithoutOffset, .dataBeforeOffset])
        _ = region.value(.dataOffset)
        let size = region.value(.dataSize) ?? 0
        _ = withUnsafeMutableBytes(of: &byte) { region.read(at: RegionLayout.dataSectionOffset + size, into: $0) }
        #expect(region.violations.last?.rule == .dataOutsideWindow)
    }

    @Test func leavingStopAndCopyWithBytesPendingIsRecorded() {
        let region = MigrationRegion(configuration: smallConfiguration(), identity: "s")
        _ = region.set(DeviceState.stopAndCopy.bits)
        #expect(region.set(DeviceState.stopBits) == nil)
        #expect(region.violations.map(\.rule) == [.stopWithPending])
        let strict = MigrationRegion(configuration: smallConfiguration(), identity: "s", strict: true)
        _ = strict.set(DeviceState.stopAndCopy.bits)
        #expect(strict.set(DeviceState.stopBits) == .invalidArgument)
        #expect(strict.bits == DeviceState.stopAndCopy.bits)
    }
}

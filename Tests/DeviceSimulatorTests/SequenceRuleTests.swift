import DeviceSimulator
import EngineFixtures
import MigrationProtocol
import SystemPackage
import Testing

/// The save-sequence and resume-order rules, and refused streams recorded with what was wrong.
@Suite struct SequenceRuleTests {
    static func saving(strict: Bool = false) -> MigrationRegion {
        let r = MigrationRegion(configuration: smallConfiguration(), identity: "s", strict: strict)
        r.dataSectionMapping = .none // a pread client: the checker sees every read
        _ = r.set(DeviceState.stopAndCopy.bits)
        return r
    }

    static func readChunk(_ r: MigrationRegion) -> [UInt8] {
        let offset = r.value(.dataOffset) ?? 0, size = Int(r.value(.dataSize) ?? 0)
        var bytes = [UInt8](repeating: 0, count: size)
        _ = bytes.withUnsafeMutableBytes { r.read(at: offset, into: $0) }
        return bytes
    }

    @Test(arguments: [false, true]) func pendingBytesBeforeTheChunkWasReadIsRecorded(strict: Bool) {
        let r = Self.saving(strict: strict)
        #expect((r.value(.pendingBytes) ?? 0) > 0)
        _ = r.value(.dataOffset)
        _ = r.value(.dataSize)
        #expect((r.read(.pendingBytes).err == .invalidArgument) == strict)
        #expect(r.violations.map(\.rule) == [.chunkNotRead])
        #expect(r.violations.first?.explanation.contains("0 of the") == true, "\(r.violations)")
        #expect(r.hasStagedChunk == strict, "strict: the chunk is not consumed")
    }

    @Test func anEngineUserReadingTheBufferItselfIsNotJudged() {
        let r = MigrationRegion(configuration: smallConfiguration(), identity: "s")
        #expect(r.dataSectionMapping == .direct)
        _ = r.set(DeviceState.stopAndCopy.bits)
        while (r.value(.pendingBytes) ?? 0) > 0 { _ = r.value(.dataOffset); _ = r.value(.dataSize) }
        #expect(r.violations.isEmpty)
    }

    @Test func aFullyReadChunkIsNotFlagged() {
        let r = Self.saving()
        while (r.value(.pendingBytes) ?? 0) > 0 { _ = Self.readChunk(r) }
        #expect(r.violations.isEmpty)
    }

    @Test(arguments: [false, true]) func dataOffsetAgainWithoutPendingBytesIsRecorded(strict: Bool) {
        let r = Self.saving(strict: strict)
        _ = r.value(.pendingBytes)
        _ = Self.readChunk(r)
        // Re-reading the header before the data is allowed (uapi: the same buffer is returned).
        _ = r.value(.dataOffset)
        #expect(r.violations.map(\.rule) == [.pendingNotReread])
        #expect((r.read(.dataOffset).err == .invalidArgument) == strict)
    }

    @Test func headerReadsBeforeTheDataAreAllowed() {
        let r = Self.saving()
        _ = r.value(.pendingBytes)
        _ = r.value(.dataOffset); _ = r.value(.dataSize); _ = r.value(.dataOffset); _ = r.value(.dataSize)
        #expect(r.violations.isEmpty)
    }

    @Test func readsAfterPendingBytesReachedZeroAreRecorded() {
        let r = Self.saving()
        while (r.value(.pendingBytes) ?? 0) > 0 { _ = Self.readChunk(r) }
        _ = r.value(.dataOffset)
        #expect(r.violations.map(\.rule) == [.readAfterPendingZero])
        let strict = Self.saving(strict: true)
        while (strict.value(.pendingBytes) ?? 0) > 0 { _ = Self.readChunk(strict) }
        #expect(strict.read(.dataOffset).err == .invalidArgument)
        #expect(strict.read(.dataSize).err == .invalidArgument)
        #expect(strict.violations.map(\.rule) == [.readAfterPendingZero, .readAfterPendingZero])
    }

    @Test(arguments: [false, true]) func anEmptyResumeTransactionIsRecorded(strict: Bool) {
        let d = MigrationRegion(configuration: smallConfiguration(), identity: "d", strict: strict)
        _ = d.set(DeviceState.resuming.bits)
        _ = d.read(.dataOffset)
        #expect((d.write(.dataSize, 0).err == .invalidArgument) == strict)
        #expect(d.violations.map(\.rule) == [.emptyResumeTransaction])
    }

    @Test func dataSizeBeforeTheDataIsRecordedAsTheSwap() {
        let chunks = ResumeTests.stream(smallConfiguration())
        let d = MigrationRegion(configuration: smallConfiguration(), identity: "d")
        d.dataSectionMapping = .none
        _ = d.set(DeviceState.resuming.bits)
        #expect(ResumeTests.apply(chunks[0], to: d).err == nil)
        _ = d.read(.dataOffset)
        #expect(d.write(.dataSize, UInt64(chunks[1].count)).err == .invalidArgument)
        // The data written after it fails (error state) without another record.
        let late = chunks[1].withUnsafeBytes { d.write(at: RegionLayout.dataSectionOffset, from: $0) }
        #expect(late.errno == .ioError)
        #expect(d.violations.map(\.rule) == [.resumeOrder])
    }

    @Test func aReplayedChunkIsRecordedWithWhatWasWrong() {
        let chunks = ResumeTests.stream(smallConfiguration())
        let d = MigrationRegion(configuration: smallConfiguration(), identity: "d")
        _ = d.set(DeviceState.resuming.bits)
        #expect(ResumeTests.apply(chunks[0], to: d).err == nil)
        #expect(ResumeTests.apply(chunks[1], to: d).err == nil)
        #expect(ResumeTests.apply(chunks[1], to: d).err == .invalidArgument)
        #expect(d.violations.map(\.rule) == [.resumeStream])
        let text = d.violations.first?.explanation ?? ""
        #expect(text.contains("out of order") && text.contains("source chunk 1"), "\(text)")
        #expect(text.contains("no fault was injected on this device"), "\(text)")
    }

    @Test func dataAtAWrongOffsetIsNamed() {
        let chunks = ResumeTests.stream(smallConfiguration())
        let d = MigrationRegion(configuration: smallConfiguration(), identity: "d")
        _ = d.set(DeviceState.resuming.bits)
        _ = d.read(.dataOffset)
        _ = chunks[0].withUnsafeBytes { d.write(at: RegionLayout.dataSectionOffset + 64, from: UnsafeRawBufferPointer(rebasing: $0[0..<($0.count - 64)])) }
        #expect(d.write(.dataSize, UInt64(chunks[0].count)).err == .invalidArgument)
        #expect(d.violations.map(\.rule) == [.resumeStream])
        #expect(d.violations.first?.explanation.contains("start at region offset \(RegionLayout.dataSectionOffset + 64)") == true, "\(d.violations)")
    }

    @Test func dataOffsetOutsideASessionIsRecorded() {
        let r = MigrationRegion(configuration: smallConfiguration(), identity: "r", strict: false)
        #expect(r.read(.dataOffset) == .failure(.invalidArgument))
        #expect(r.violations.map(\.rule) == [.dataOutsideWindow])
        #expect(r.violations.first?.explanation.contains("no migration session") == true)
    }
}

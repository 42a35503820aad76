@testable import DeviceSimulator
import EngineFixtures
import MigrationProtocol
import Testing

/// A destination keeps a received page that is exactly the source's power-on page as a
/// reference, not as bytes (issue 15, "devices bigger than the machine"), and still reads,
/// digests and re-saves the same bytes.
@Suite struct ReferencePageTests {
    /// Moves one chunk of `source` (in a saving state) to `d`; false when none is left.
    static func moveChunk(_ source: MigrationRegion, to d: MigrationRegion) -> Bool {
        guard (source.value(.pendingBytes) ?? 0) > 0 else { return false }
        let offset = Int((source.value(.dataOffset) ?? 0) - RegionLayout.dataSectionOffset)
        let size = Int(source.value(.dataSize) ?? 0)
        guard size > 0 else { return false }
        ResumeTests.apply(Array(source.dataSection[offset..<(offset + size)]), to: d)
        return true
    }

    /// Saves `source` into a fresh destination: `precopyChunks` chunks of pre-copy while the
    /// source runs, then all of stop-and-copy; returns the resumed destination.
    static func migrate(_ source: MigrationRegion, identity: String = "destination", precopyChunks: Int = 0) -> MigrationRegion {
        let d = MigrationRegion(configuration: source.device.configuration, identity: identity)
        _ = d.set(DeviceState.resuming.bits)
        if precopyChunks > 0 {
            _ = source.set(DeviceState.preCopy.bits)
            for _ in 0..<precopyChunks where moveChunk(source, to: d) {}
        }
        _ = source.set(DeviceState.stopAndCopy.bits)
        while moveChunk(source, to: d) {}
        _ = d.set(DeviceState.runningBit)
        return d
    }

    @Test(arguments: [MemoryFill.random, .zero])
    func anUntouchedSourceLeavesTheDestinationNothingToStore(_ fill: MemoryFill) {
        var c = smallConfiguration()
        c.fill = fill
        let s = MigrationRegion(configuration: c, identity: "source")
        let d = Self.migrate(s)
        #expect(d.device.digest() == s.device.digest())
        #expect(d.device.materializedPages == 0)
        #expect(d.device.referencedPages == c.pageCount)
        #expect(d.violations.isEmpty && d.lastError == nil)
    }

    /// The pages the running source rewrote arrive as other bytes: those, and only those, are stored.
    @Test func pagesTheSourceRewroteAreStored() {
        let s = MigrationRegion(configuration: smallConfiguration(dirtyRate: 1 << 30), identity: "source")
        let d = Self.migrate(s, precopyChunks: 8)
        let rewritten = s.device.materializedPages
        #expect(rewritten > 0 && rewritten < s.device.pageCount)
        #expect(d.device.digest() == s.device.digest())
        #expect(d.device.materializedPages == rewritten)
        #expect(d.device.referencedPages == s.device.pageCount - rewritten)
    }

    /// A destination's references survive its own save: a third device gets the same bytes.
    @Test func aDestinationResavesTheBytesItReferences() {
        let s = MigrationRegion(configuration: smallConfiguration(), identity: "source")
        let d = Self.migrate(s)
        let third = Self.migrate(d, identity: "third")
        #expect(third.device.digest() == s.device.digest())
        // The destination's stream names its own seed: the third device stores what the
        // destination referenced to the first source, since it is not the destination's power-on.
        #expect(third.device.materializedPages == s.device.pageCount)
    }

    @Test func theMemoryComparesEveryWordAndForgetsAtPowerOn() {
        let c = smallConfiguration(memory: 64 << 10)
        let source = SimulatedDevice(configuration: c, identity: "source")
        let d = SimulatedDevice(configuration: c, identity: "destination")
        let r = d.referenceSource(seed: source.seed)
        #expect(r == 0 && d.referenceSource(seed: source.seed) == 0, "one source, one index")
        var page = [UInt8](repeating: 0, count: 4096)
        var read = page
        page.withUnsafeMutableBytes { source.readPage(3, into: $0.baseAddress!) }
        // One bit off in the last word: stored as bytes, read back as they came.
        var almost = page
        almost[4095] ^= 0x80
        #expect(almost.withUnsafeBytes { d.writePage(3, from: $0.baseAddress!, reference: r) })
        #expect(d.materializedPages == 1 && d.referencedPages == 0)
        read.withUnsafeMutableBytes { d.readPage(3, into: $0.baseAddress!) }
        #expect(read == almost)
        // The exact page: a reference, and the stored copy no longer counts.
        #expect(page.withUnsafeBytes { d.writePage(3, from: $0.baseAddress!, reference: r) })
        #expect(d.materializedPages == 0 && d.referencedPages == 1)
        read.withUnsafeMutableBytes { d.readPage(3, into: $0.baseAddress!) }
        #expect(read == page)
        d.powerOn()
        #expect(d.referencedPages == 0)
        let fresh = SimulatedDevice(configuration: c, identity: "destination")
        #expect(d.digest() == fresh.digest())
    }

    /// Resumes from several sources without a power-on in between: each page reads from the
    /// source it came from, and past `maxReferenceSources` pages are stored as bytes.
    @Test func pagesOfSeveralSourcesEachReadTheirOwn() {
        let c = smallConfiguration(memory: 64 << 10)
        let d = SimulatedDevice(configuration: c, identity: "destination")
        var expected: [[UInt8]] = []
        for i in 0..<(DeviceMemory.maxReferenceSources + 1) {
            let source = SimulatedDevice(configuration: c, identity: "source \(i)")
            var page = [UInt8](repeating: 0, count: 4096)
            page.withUnsafeMutableBytes { source.readPage(UInt64(i), into: $0.baseAddress!) }
            let r = d.referenceSource(seed: source.seed)
            #expect((r == nil) == (i == DeviceMemory.maxReferenceSources))
            #expect(page.withUnsafeBytes { d.writePage(UInt64(i), from: $0.baseAddress!, reference: r) })
            expected.append(page)
        }
        #expect(d.referencedPages == UInt64(DeviceMemory.maxReferenceSources) && d.materializedPages == 1)
        for (i, page) in expected.enumerated() {
            var read = [UInt8](repeating: 0, count: 4096)
            read.withUnsafeMutableBytes { d.readPage(UInt64(i), into: $0.baseAddress!) }
            #expect(read == page, "page \(i)")
        }
    }

    /// A version-1 stream (no seed in `HEAD`) still resumes; its pages are all stored.
    @Test func aVersionOneStreamIsStillRead() throws {
        let c = smallConfiguration(memory: 64 << 10, chunk: 128 << 10, section: 128 << 10, configSize: 64)
        let source = SimulatedDevice(configuration: c, identity: "source")
        var chunk = [UInt8](repeating: 0, count: Int(c.chunkSize))
        let length = chunk.withUnsafeMutableBytes { buffer -> Int in
            guard let base = buffer.baseAddress else { return 0 }
            var w = RecordWriter(base: base, capacity: buffer.count, firstSequence: 0)
            w.appendWords(.chunk, argument: 0, words: [0, UInt64(StreamFormat.phaseCode(.stopAndCopy))])
            w.appendWords(.header, argument: 1, words: [c.memorySize, c.pageSize, c.configSize, UInt64(c.typeName.utf8.count)],
                          trailing: Array(c.typeName.utf8))
            for p in 0..<c.pageCount {
                w.append(.page, argument: p, payloadLength: Int(c.pageSize)) { source.readPage(p, into: $0.baseAddress!) }
            }
            let config = source.config
            w.append(.config, argument: 0, payloadLength: config.count) { $0.copyBytes(from: config) }
            w.appendWords(.end, argument: 0, words: [c.pageCount, c.configSize])
            w.patchChunkLength(recordStart: 0, length: UInt64(w.used))
            return w.used
        }
        let d = MigrationRegion(configuration: c, identity: "destination")
        _ = d.set(DeviceState.resuming.bits)
        #expect(ResumeTests.apply(Array(chunk[0..<length]), to: d).err == nil, "\(d.lastError ?? "")")
        #expect(d.set(DeviceState.runningBit) == nil)
        #expect(d.device.digest() == source.digest())
        #expect(d.device.referencedPages == 0 && d.device.materializedPages == c.pageCount)
    }
}

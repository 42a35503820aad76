import DeviceSimulator
import EngineFixtures
import MigrationProtocol
import SystemPackage
import Testing

/// The resume sequence and the stream's defences.
@Suite struct ResumeTests {
    /// Every chunk a source produces in stop-and-copy, as byte arrays.
    static func stream(_ configuration: DeviceConfiguration, identity: String = "source") -> [[UInt8]] {
        let s = MigrationRegion(configuration: configuration, identity: identity)
        _ = s.set(DeviceState.stopAndCopy.bits)
        var chunks: [[UInt8]] = []
        while (s.value(.pendingBytes) ?? 0) > 0 {
            let offset = Int((s.value(.dataOffset) ?? 0) - RegionLayout.dataSectionOffset)
            let size = Int(s.value(.dataSize) ?? 0)
            if size == 0 { break }
            chunks.append(Array(s.dataSection[offset..<(offset + size)]))
        }
        return chunks
    }

    /// Writes one transaction the way the resume sequence says; returns the data_size write's result.
    @discardableResult
    static func apply(_ bytes: [UInt8], to d: MigrationRegion) -> Result<Void, Errno> {
        _ = d.read(.dataOffset)
        bytes.withUnsafeBytes { _ = d.write(at: RegionLayout.dataSectionOffset, from: $0) }
        return d.write(.dataSize, UInt64(bytes.count))
    }

    @Test func chunksAppliedInOrderResumeTheDevice() {
        let config = smallConfiguration()
        let chunks = Self.stream(config)
        let d = MigrationRegion(configuration: config, identity: "destination")
        #expect(d.set(DeviceState.resuming.bits) == nil)
        for chunk in chunks { #expect(Self.apply(chunk, to: d).err == nil) }
        #expect(d.set(DeviceState.runningBit) == nil)
        let s = MigrationRegion(configuration: config, identity: "source")
        #expect(d.device.digest() == s.device.digest())
        #expect(d.violations.isEmpty)
    }

    @Test(arguments: ["other type", "other memory size", "other page size", "other config size"])
    func incompatibleDestinationRejectsTheFirstChunk(_ name: String) {
        let config = smallConfiguration()
        var other = config
        switch name {
        case "other type": other.typeName = "other-type"
        case "other memory size": other.memorySize = 1 << 20
        case "other page size": other.pageSize = 8192
        default: other.configSize = 100
        }
        let chunks = Self.stream(config)
        let d = MigrationRegion(configuration: other, identity: "destination")
        _ = d.set(DeviceState.resuming.bits)
        #expect(Self.apply(chunks[0], to: d).err == .invalidArgument, "\(name)")
        #expect(d.state.isError)
        #expect(d.lastError?.contains("incompatible stream") == true, "\(d.lastError ?? "")")
    }

    @Test(arguments: [0, 20, 40, 100, 5000])
    func corruptionAnywhereIsDetected(_ position: Int) {
        let config = smallConfiguration()
        var chunks = Self.stream(config)
        let d = MigrationRegion(configuration: config, identity: "destination")
        _ = d.set(DeviceState.resuming.bits)
        chunks[1][position] ^= 0x01
        #expect(Self.apply(chunks[0], to: d).err == nil)
        #expect(Self.apply(chunks[1], to: d).err == .invalidArgument)
        #expect(d.state.isError)
        #expect(d.lastError != nil)
    }

    @Test func reorderedOrRepeatedChunksAreRefused() {
        let config = smallConfiguration()
        let chunks = Self.stream(config)
        let swapped = MigrationRegion(configuration: config, identity: "d1")
        _ = swapped.set(DeviceState.resuming.bits)
        Self.apply(chunks[0], to: swapped)
        #expect(Self.apply(chunks[2], to: swapped).err == .invalidArgument)
        #expect(swapped.lastError?.contains("out of order") == true)

        let repeated = MigrationRegion(configuration: config, identity: "d2")
        _ = repeated.set(DeviceState.resuming.bits)
        Self.apply(chunks[0], to: repeated)
        Self.apply(chunks[1], to: repeated)
        #expect(Self.apply(chunks[1], to: repeated).err == .invalidArgument)
    }

    @Test func splitTransactionsAreAcceptedAndRecorded() {
        let config = smallConfiguration()
        let chunks = Self.stream(config)
        let d = MigrationRegion(configuration: config, identity: "destination")
        _ = d.set(DeviceState.resuming.bits)
        for chunk in chunks {
            // Split every chunk at an odd point, as a client with a smaller data section would.
            let cut = chunk.count / 3 + 1
            #expect(Self.apply(Array(chunk[..<cut]), to: d).err == nil)
            #expect(Self.apply(Array(chunk[cut...]), to: d).err == nil)
        }
        #expect(d.set(DeviceState.runningBit) == nil)
        #expect(d.device.digest() == MigrationRegion(configuration: config, identity: "source").device.digest())
        #expect(d.violations.filter { $0.rule == .resumeTransactions }.count == chunks.count)
    }

    @Test func dataSizeBeyondTheDataSectionIsRefused() {
        let d = MigrationRegion(configuration: smallConfiguration(), identity: "d")
        _ = d.set(DeviceState.resuming.bits)
        _ = d.read(.dataOffset)
        #expect(d.write(.dataSize, d.configuration.dataSectionSize + 1).err == .invalidArgument)
        #expect(d.bits == DeviceState.resumingBit)
    }

    @Test func dataSizeWrittenWithoutDataOffsetIsRecorded() {
        let config = smallConfiguration()
        let chunks = Self.stream(config)
        let d = MigrationRegion(configuration: config, identity: "d")
        _ = d.set(DeviceState.resuming.bits)
        chunks[0].withUnsafeBytes { _ = d.write(at: RegionLayout.dataSectionOffset, from: $0) }
        _ = d.write(.dataSize, UInt64(chunks[0].count))
        #expect(d.violations.map(\.rule) == [.dataBeforeOffset, .dataSizeWithoutOffset])
    }
}

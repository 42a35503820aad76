import DeviceSimulator
import EngineFixtures
import MigrationProtocol
import SystemPackage
import Testing

/// The engine's record of one resume transaction: what was pwritten, what came back through the
/// mapping (`storeThroughMapping`, as the mount hands over writebacks and retrieved pages), and
/// the `mixed-data-access` rule judged per transaction.
@Suite struct ResumeTransactionTests {
    enum Way: String, CaseIterable { case pwrite, mapping }

    /// Writes one chunk as a client would: `data_offset`, the bytes one way or the other (the
    /// mapping's pages come back whole, as the kernel hands them over), then `data_size`.
    static func write(_ chunk: [UInt8], to d: MigrationRegion, _ ways: [Way]) -> Result<Void, Errno> {
        _ = d.read(.dataOffset)
        // A late writeback of a page the mapping dirtied in an earlier chunk: it carries what the
        // section already holds, so it is no store of this chunk.
        d.storeThroughMapping(at: RegionLayout.dataSectionOffset, UnsafeRawBufferPointer(rebasing: d.dataSection[0..<4096]))
        let half = chunk.count / 2
        for (i, way) in ways.enumerated() {
            // With two ways, the first half goes one way and the second the other.
            let part = ways.count == 1 ? 0..<chunk.count : (i == 0 ? 0..<half : half..<chunk.count)
            let offset = RegionLayout.dataSectionOffset + UInt64(part.lowerBound)
            switch way {
            case .pwrite:
                _ = chunk[part].withUnsafeBytes { d.write(at: offset, from: $0) }
            case .mapping:
                // The page cache returns what the mapping holds: this chunk's bytes over what the
                // section showed before (the pre-fill), page by page.
                var pages = Array(d.dataSection[0..<d.dataSection.count])
                pages.replaceSubrange(part, with: chunk[part])
                pages.withUnsafeBytes { d.storeThroughMapping(at: RegionLayout.dataSectionOffset, UnsafeRawBufferPointer(rebasing: $0[0..<chunk.count])) }
            }
        }
        return d.write(.dataSize, UInt64(chunk.count))
    }

    static func mixedRecords(_ d: MigrationRegion) -> Int { d.violations.filter { $0.rule == .mixedDataAccess }.count }

    @Test(arguments: [false, true])
    func oneWayPerChunkIsNeverMixed(strict: Bool) {
        let config = smallConfiguration()
        let chunks = ResumeTests.stream(config)
        for pattern in [[Way.mapping, .pwrite], [.pwrite, .mapping]] {
            let d = MigrationRegion(configuration: config, identity: "destination", strict: strict)
            _ = d.set(DeviceState.resuming.bits)
            for (i, chunk) in chunks.enumerated() {
                let way = i == 0 ? pattern[0] : pattern[1]
                #expect(Self.write(chunk, to: d, [way]).err == nil, "\(pattern) chunk \(i)")
            }
            #expect(d.set(DeviceState.runningBit) == nil)
            #expect(d.violations.isEmpty, "\(pattern): \(d.violations)")
            #expect(d.device.digest() == MigrationRegion(configuration: config, identity: "source").device.digest())
        }
    }

    @Test(arguments: [false, true])
    func aChunkWrittenBothWaysIsMixedOnce(strict: Bool) {
        let config = smallConfiguration()
        let chunks = ResumeTests.stream(config)
        let d = MigrationRegion(configuration: config, identity: "destination", strict: strict)
        _ = d.set(DeviceState.resuming.bits)
        #expect(Self.write(chunks[0], to: d, [.pwrite, .mapping]).err == (strict ? .invalidArgument : nil))
        #expect(Self.mixedRecords(d) == 1)
        let record = d.violations.first { $0.rule == .mixedDataAccess }
        #expect(record?.access?.offset == HeaderField.dataSize.offset, "the record names the data_size write it judged")
        #expect(record?.access?.value == UInt64(chunks[0].count))
        guard !strict else { return }
        // The next chunk, one way only: no second, false line.
        #expect(Self.write(chunks[1], to: d, [.pwrite]).err == nil)
        #expect(Self.mixedRecords(d) == 1)
    }

    @Test func pwrittenBytesWinOverTheMapping() {
        let config = smallConfiguration()
        let d = MigrationRegion(configuration: config, identity: "destination")
        _ = d.set(DeviceState.resuming.bits)
        _ = d.read(.dataOffset)
        let written = [UInt8](repeating: 0xAB, count: 100)
        _ = written.withUnsafeBytes { d.write(at: RegionLayout.dataSectionOffset + 10, from: $0) }
        let mapped = [UInt8](repeating: 0xCD, count: 4096)
        mapped.withUnsafeBytes { d.storeThroughMapping(at: RegionLayout.dataSectionOffset, $0) }
        #expect(Array(d.dataSection[0..<10]) == [UInt8](repeating: 0xCD, count: 10))
        #expect(Array(d.dataSection[10..<110]) == written)
        #expect(Array(d.dataSection[110..<4096]) == [UInt8](repeating: 0xCD, count: 3986))
    }
}

import Conformance
import Crypto
import DeviceSimulator
import EngineFixtures
import MigrationProtocol
import PropertyBased
import Synchronization
import Testing

/// A pool that keeps every extent given back and hands it out again filled with 0xA5: the worst
/// an earlier device can leave behind for the next one.
final class PoisoningPool: ExtentProvider {
    let extentBytes = 2 << 20
    private let free = Mutex<[UInt]>([])

    func take() -> UnsafeMutableRawPointer? {
        if let address = free.withLock({ $0.popLast() }), let extent = UnsafeMutableRawPointer(bitPattern: address) {
            extent.initializeMemory(as: UInt8.self, repeating: 0xA5, count: extentBytes)
            return extent
        }
        return UnsafeMutableRawPointer.allocate(byteCount: extentBytes, alignment: extentBytes)
    }

    func give(_ extent: UnsafeMutableRawPointer) { free.withLock { $0.append(UInt(bitPattern: extent)) } }

    var kept: Int { free.withLock { $0.count } }
}

@Suite struct DeterminismTests {
    /// SHA-256 of every chunk a dirtying source produces through a full migration.
    static func streamHash(_ config: DeviceConfiguration, extents: any ExtentProvider = HeapExtents.standard) -> (String, [UInt64]) {
        let s = MigrationRegion(configuration: config, identity: "source", extents: extents)
        var hasher = SHA256()
        var pendings: [UInt64] = []
        _ = s.set(DeviceState.preCopy.bits)
        for state in [DeviceState.preCopy.bits, DeviceState.stopAndCopy.bits] {
            if state == DeviceState.stopAndCopy.bits { _ = s.set(state) }
            var rounds = 0
            while let p = s.value(.pendingBytes), p > (state == DeviceState.preCopy.bits ? 64 << 10 : 0), rounds < 200 {
                pendings.append(p)
                let offset = Int((s.value(.dataOffset) ?? 0) - RegionLayout.dataSectionOffset)
                let size = Int(s.value(.dataSize) ?? 0)
                hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: s.dataSection[offset..<(offset + size)]))
                rounds += 1
            }
        }
        return (hasher.finalize().description, pendings)
    }

    @Test func sameConfigurationSameStreamBytesAndPendingSequence() {
        let config = smallConfiguration(memory: 2 << 20, dirtyRate: 300 << 20)
        let a = Self.streamHash(config), b = Self.streamHash(config)
        #expect(a.0 == b.0)
        #expect(a.1 == b.1)
        var other = config
        other.contentSeed += 1
        #expect(Self.streamHash(other).0 != a.0)
    }

    /// Device memory extents are reused across devices (a mount's ExtentPool): bytes an earlier
    /// device left in them must never show through a page the new device has not written.
    @Test func reusedMemoryNeverShowsAnEarlierDevicesBytes() {
        let config = smallConfiguration(memory: 8 << 20, dirtyRate: 300 << 20)
        var other = config
        other.contentSeed += 7
        let pool = PoisoningPool()
        let first = Self.streamHash(config)
        // Their extents go back to the pool when these sources are freed, and come out poisoned.
        for _ in 0..<3 { _ = Self.streamHash(other, extents: pool) }
        #expect(pool.kept > 0)
        let again = Self.streamHash(config, extents: pool)
        #expect(again.0 == first.0)
        #expect(again.1 == first.1)
    }

    @Test func hotSetAndSequentialPatternsMigrate() {
        for pattern in [DirtyPattern.hotSet(fraction: 0.1, share: 0.9), .sequential, .uniform] {
            var config = smallConfiguration(memory: 2 << 20, dirtyRate: 100 << 20)
            config.dirtyPattern = pattern
            let (s, d) = devicePair(config)
            let report = migrate(s, d, options: ClientOptions(precopyThreshold: 128 << 10))
            #expect(report.succeeded, "\(pattern): \(report)")
        }
    }

    @Test func aDeviceDirtyingFasterThanTheLinkDoesNotConverge() {
        let (s, d) = devicePair(smallConfiguration(memory: 2 << 20, dirtyRate: 2 << 30))
        let report = migrate(s, d, options: ClientOptions(precopyThreshold: 64 << 10, maxPrecopyIterations: 5))
        #expect(!report.converged)
        #expect(report.precopyIterations == 5)
        #expect(report.succeeded, "stop-and-copy still completes it")
    }

    @Test func untouchedLargeDeviceCostsNoMemory() {
        let region = MigrationRegion(configuration: smallConfiguration(memory: 64 << 30, chunk: 1 << 20, section: 1 << 20), identity: "big")
        _ = region.set(DeviceState.preCopy.bits)
        for _ in 0..<64 {
            _ = region.value(.pendingBytes)
            _ = region.value(.dataOffset)
        }
        #expect(region.device.materializedPages == 0)
    }
}

/// Random access sequences and random device shapes.
@Suite struct EnginePropertyTests {
    /// Any sequence of accesses: no crash, and the invariants hold after each.
    @Test func randomAccessSequencesKeepInvariants() async {
        let access = zip(Gen.int(in: 0...5), Gen.uint64(in: 0...4200), Gen.int(in: 0...9), Gen.uint64(in: 0...7))
        await propertyCheck(count: 60, input: access.array(of: 1...60)) { steps in
            let region = MigrationRegion(configuration: smallConfiguration(memory: 256 << 10, dirtyRate: 50 << 20), identity: "p")
            let widths = [1, 2, 3, 4, 8, 8, 8, 4, 16, 4096]
            for (kind, rawOffset, w, value) in steps {
                let offset: UInt64 = kind < 3 ? [0, 4, 8, 16, 24][Int(rawOffset % 5)] : rawOffset
                let width = kind < 3 ? [4, 4, 8, 8, 8][Int(rawOffset % 5)] : widths[w]
                var buffer = [UInt8](repeating: UInt8(truncatingIfNeeded: value), count: width)
                let result: AccessResult = buffer.withUnsafeMutableBytes { raw in
                    kind % 2 == 0 ? region.read(at: offset, into: raw) : region.write(at: offset, from: UnsafeRawBufferPointer(raw))
                }
                if let e = result.errno { #expect([.invalidArgument, .ioError].contains(e)) }
                #expect(region.state.isValid || region.state.isError)
                #expect(region.read(.reserved) == .success(0))
            }
        }
    }

    /// Random sizes, dirty rates, chunk sizes and access modes: digests match after migration.
    @Test func randomDevicesMigrateWithEqualDigests() async {
        let shape = zip(Gen.int(in: 0...6), Gen.int(in: 0...3), Gen.int(in: 1...16), Gen.uint64(in: 0...(256 << 20)), Gen.int(in: 0...2))
        await propertyCheck(count: 25, input: shape) { pagesLog, pageLog, chunkPages, rate, mode in
            let pageSize = UInt64(512) << UInt64(pageLog * 2)
            let memory = (UInt64(1) << UInt64(pagesLog + 4)) * pageSize
            let chunk = StreamFormat.minimumChunkSize(pageSize: pageSize) + UInt64(chunkPages - 1) * (pageSize + 32)
            let section = (chunk + 4095) / 4096 * 4096
            let config = smallConfiguration(memory: memory, pageSize: pageSize, chunk: chunk, section: section, dirtyRate: rate, configSize: UInt64(chunkPages) * 300)
            #expect((try? config.validate()) != nil)
            let (s, d) = devicePair(config)
            let access: ClientOptions.DataAccess = [.mapped, .pieces(8), .pieces(1000)][mode]
            let report = migrate(s, d, options: ClientOptions(precopyThreshold: 4 * pageSize, maxPrecopyIterations: 8, dataAccess: access))
            #expect(report.succeeded, "\(config) \(report.failure.map { "\($0)" } ?? "")")
            #expect(s.violations.isEmpty && d.violations.isEmpty)
        }
    }
}

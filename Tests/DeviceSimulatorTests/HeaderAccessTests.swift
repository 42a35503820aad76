import DeviceSimulator
import EngineFixtures
import MigrationProtocol
import SystemPackage
import Testing

/// Field access rules of the trapped header (uapi text, seed 002).
@Suite struct HeaderAccessTests {
    func access(_ region: MigrationRegion, read: Bool, offset: UInt64, width: Int, value: UInt64 = 0) -> Result<Int, Errno> {
        var word = value.littleEndian
        return withUnsafeMutableBytes(of: &word) { raw in
            let slice = UnsafeMutableRawBufferPointer(rebasing: raw[0..<min(width, 8)])
            return read ? region.read(at: offset, into: slice).outcome : region.write(at: offset, from: UnsafeRawBufferPointer(slice)).outcome
        }
    }

    @Test(arguments: [
        (UInt64(0), 2), (0, 8), (0, 1), (2, 2), (4, 8), (8, 4), (12, 4), (9, 8), (16, 4), (20, 4), (24, 4), (28, 4), (30, 2), (32, 4), (40, 8), (4000, 8),
    ])
    func accessesOtherThanOneFieldAtNativeWidthFailWithEINVAL(offset: UInt64, width: Int) {
        let region = MigrationRegion(configuration: smallConfiguration(), identity: "a")
        #expect(access(region, read: true, offset: offset, width: width) == .failure(.invalidArgument))
        #expect(access(region, read: false, offset: offset, width: width, value: 1) == .failure(.invalidArgument))
        #expect(region.bits == DeviceState.runningBit, "a refused write changes nothing")
        #expect(region.violations.allSatisfy { $0.rule == .accessWidth })
    }

    @Test func readOnlyFieldsRefuseWrites() {
        let region = MigrationRegion(configuration: smallConfiguration(), identity: "a")
        #expect(region.set(DeviceState.preCopy.bits) == nil)
        #expect(region.write(.pendingBytes, 0).err == .invalidArgument)
        #expect(region.write(.dataOffset, 4096).err == .invalidArgument)
        #expect(region.violations.map(\.rule) == [.readOnlyWrite, .readOnlyWrite])
    }

    @Test func reservedReadsZeroAndIgnoresWrites() {
        let region = MigrationRegion(configuration: smallConfiguration(), identity: "a")
        #expect(region.write(.reserved, 0xDEAD_BEEF).err == nil)
        #expect(region.read(.reserved) == .success(0))
        #expect(region.violations.isEmpty)
    }

    @Test func fieldsAreLittleEndianAtTheirOffsets() {
        let region = MigrationRegion(configuration: smallConfiguration(), identity: "a")
        var bytes = [UInt8](repeating: 0xAA, count: 4)
        let n = bytes.withUnsafeMutableBytes { region.read(at: 0, into: $0).outcome }
        #expect(n == .success(4))
        #expect(bytes == [1, 0, 0, 0])
    }

    @Test func reservedStateBitsArePreservedAndCheckedOnWrite() {
        var config = smallConfiguration()
        config.reservedStateBits = 0xA0
        let region = MigrationRegion(configuration: config, identity: "a")
        #expect(region.read(.deviceState) == .success(0xA1))
        // A read-modify-write keeps them: no violation.
        #expect(region.write(.deviceState, 0xA3).err == nil)
        #expect(region.violations.isEmpty)
        #expect(region.read(.deviceState) == .success(0xA3))
        // Writing the bits alone: accepted, the device keeps its reserved bits, and it is recorded.
        #expect(region.write(.deviceState, 0b001).err == nil)
        #expect(region.read(.deviceState) == .success(0xA1))
        #expect(region.violations.map(\.rule) == [.reservedBits])
        // A deviation (QEMU 7.2 writes device_state this way): strict records it, never refuses it.
        region.strict = true
        #expect(region.write(.deviceState, 0b000).err == nil)
        #expect(region.read(.deviceState) == .success(0xA0), "the device keeps its reserved bits")
        #expect(region.violations.map(\.rule) == [.reservedBits, .reservedBits])
    }

    @Test func pendingBytesOutsideSavingIsZeroAndDataOffsetRefused() {
        let region = MigrationRegion(configuration: smallConfiguration(), identity: "a")
        #expect(region.read(.pendingBytes) == .success(0))
        #expect(region.read(.dataOffset) == .failure(.invalidArgument))
        #expect(region.read(.dataSize) == .success(0))
        #expect(region.write(.dataSize, 8).err == .invalidArgument)
    }
}

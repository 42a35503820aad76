import DeviceSimulator
import EngineFixtures
import MigrationProtocol
import SystemPackage
import Testing

/// The full 8x8 matrix through the engine: every state a device can hold, every value written.
@Suite struct DeviceStateMachineTests {
    /// A region in `bits`, reached the way a client (or, for the error state, a fault) gets there.
    static func region(in bits: UInt32) -> MigrationRegion {
        var config = smallConfiguration()
        if bits == DeviceState.error.bits {
            config.faults = [Fault(name: "to-error", trigger: .enterState(bits: 0, occurrence: 1), action: .failToErrorState(.ioError))]
        }
        let region = MigrationRegion(configuration: config, identity: "m")
        switch bits {
        case 0b001: break
        case 0b110: _ = region.set(0)
        default: _ = region.set(bits)
        }
        return region
    }

    @Test(arguments: [UInt32(0b000), 0b001, 0b010, 0b011, 0b100, 0b110])
    func row(_ from: UInt32) {
        for to: UInt32 in 0..<8 {
            let region = Self.region(in: from)
            #expect(region.bits == from)
            let error = region.set(to)
            switch TransitionTable.decision(from: from, to: to) {
            case .allowed:
                #expect(error == nil, "\(from) -> \(to)")
                #expect(region.bits == to)
            case .unchanged:
                #expect(error == nil, "\(from) -> \(to) twice must succeed")
                #expect(region.bits == from)
            case .rejected, .unreachable:
                #expect(error == .invalidArgument, "\(from) -> \(to)")
                #expect(region.bits == from, "a refused write leaves the state unchanged")
            }
        }
    }

    @Test func invalidStatesAreNeverReachable() {
        for from: UInt32 in [0, 1, 2, 3, 4, 6] {
            for to: UInt32 in [0b101, 0b111, 0b110] {
                let region = Self.region(in: from)
                #expect(region.set(to) == .invalidArgument)
                #expect(region.state.isValid || region.state.isError)
            }
        }
    }

    @Test func errorStateIsLeftOnlyByResetWhichRestoresPowerOn() {
        let region = Self.region(in: DeviceState.error.bits)
        #expect(region.state.isError)
        #expect(region.read(.pendingBytes) == .failure(.ioError))
        #expect(region.read(.dataOffset) == .failure(.ioError))
        #expect(region.read(.deviceState) == .success(UInt64(DeviceState.error.rawValue)))
        region.reset()
        #expect(region.bits == DeviceState.runningBit)
        let fresh = MigrationRegion(configuration: smallConfiguration(), identity: "m")
        #expect(region.device.digest() == fresh.device.digest())
    }

    @Test func resetDropsTheSessionAndRestoresMemory() {
        var config = smallConfiguration(dirtyRate: 1 << 30)
        config.faults = []
        let region = MigrationRegion(configuration: config, identity: "r")
        let powerOn = region.device.digest()
        _ = region.set(DeviceState.preCopy.bits)
        for _ in 0..<4 {
            _ = region.read(.dataOffset)
            _ = region.read(.pendingBytes)
        }
        #expect(region.device.pagesDirtied > 0)
        #expect(region.device.digest() != powerOn)
        region.reset()
        #expect(region.bits == DeviceState.runningBit)
        #expect(region.read(.pendingBytes) == .success(0))
        #expect(region.device.digest() == powerOn)
    }

    @Test func resumingToRunningNeedsACompleteStreamOrNone() {
        let empty = Self.region(in: DeviceState.resuming.bits)
        #expect(empty.set(DeviceState.runningBit) == nil, "no data at all: the device keeps its state")

        let (s, d) = devicePair(smallConfiguration())
        _ = s.set(DeviceState.preCopy.bits)
        _ = d.set(DeviceState.resuming.bits)
        _ = s.read(.pendingBytes)
        let offset = s.value(.dataOffset) ?? 0
        let size = s.value(.dataSize) ?? 0
        _ = d.read(.dataOffset)
        let start = Int(offset - RegionLayout.dataSectionOffset)
        UnsafeMutableRawBufferPointer(rebasing: d.dataSection[0..<Int(size)])
            .copyMemory(from: UnsafeRawBufferPointer(rebasing: s.dataSection[start..<(start + Int(size))]))
        #expect(d.write(.dataSize, size).err == nil)
        #expect(d.set(DeviceState.runningBit) == .invalidArgument, "incomplete stream")
        #expect(d.bits == DeviceState.resumingBit)
        #expect(d.set(DeviceState.stopBits) == nil, "abandoning the resume is allowed")
    }
}

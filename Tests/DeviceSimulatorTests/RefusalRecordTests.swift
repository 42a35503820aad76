import DeviceSimulator
import EngineFixtures
import MigrationProtocol
import SystemPackage
import Testing

/// Every access the engine refuses because the client broke the protocol carries its rule.
@Suite struct RefusalRecordTests {
    static func region(in bits: UInt32) -> MigrationRegion {
        let r = MigrationRegion(configuration: smallConfiguration(), identity: "r")
        switch bits {
        case DeviceState.stopAndCopy.bits: _ = r.set(DeviceState.stopAndCopy.bits)
        case DeviceState.preCopy.bits: _ = r.set(DeviceState.preCopy.bits)
        case DeviceState.resuming.bits: _ = r.set(DeviceState.resuming.bits)
        default: break
        }
        #expect(r.bits == bits)
        return r
    }

    @Test(arguments: [(DeviceState.preCopy.bits, DeviceState.resuming.bits), (DeviceState.stopAndCopy.bits, DeviceState.preCopy.bits),
                      (DeviceState.resuming.bits, DeviceState.stopAndCopy.bits)])
    func forbiddenTransitionsAreRecordedWithFromAndTo(_ from: UInt32, _ to: UInt32) {
        let r = Self.region(in: from)
        #expect(r.set(to) == .invalidArgument)
        #expect(r.bits == from, "the state stays put")
        #expect(r.violations.map(\.rule) == [.invalidState])
        let text = r.violations.first?.explanation ?? ""
        #expect(text.contains("\(DeviceState.name(ofBits: from)) -> \(DeviceState.name(ofBits: to))"), "\(text)")
        #expect(r.violations.first?.access?.value == UInt64(r.state.with(bits: to).rawValue))
    }

    @Test func resumingToRunningWithAnIncompleteStreamIsRecorded() {
        let chunks = ResumeTests.stream(smallConfiguration())
        let d = Self.region(in: DeviceState.resuming.bits)
        #expect(ResumeTests.apply(chunks[0], to: d).err == nil)
        #expect(d.set(DeviceState.runningBit) == .invalidArgument)
        #expect(d.violations.map(\.rule) == [.incompleteResume])
        #expect(d.violations.first?.explanation.contains("incomplete stream") == true)
    }

    @Test func dataSizeWritesTheDeviceCannotTakeAreRecorded() {
        let saving = Self.region(in: DeviceState.preCopy.bits)
        #expect(saving.write(.dataSize, 4096).err == .invalidArgument)
        #expect(saving.violations.map(\.rule) == [.dataSizeOutsideResume])
        let resuming = Self.region(in: DeviceState.resuming.bits)
        _ = resuming.read(.dataOffset)
        #expect(resuming.write(.dataSize, resuming.configuration.dataSectionSize + 1).err == .invalidArgument)
        #expect(resuming.violations.map(\.rule) == [.dataSizeTooLarge])
        #expect(resuming.violations.first?.access?.value == resuming.configuration.dataSectionSize + 1)
    }
}

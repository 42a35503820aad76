import Conformance
import DeviceSimulator
import EngineFixtures
import MigrationProtocol
import SystemPackage
import Testing

/// The scenario's faults on v2 devices: the same triggers and actions, in their v2 form.
@Suite struct V2FaultTests {
    static let all: V2MigrationFeatures = [.stopCopy, .p2p, .preCopy]

    static func migrate(_ faults: [Fault], features: V2MigrationFeatures = all) -> (MigrationReport, V2Device, V2Device) {
        let c = smallConfiguration(dirtyRate: 16 << 20, faults: faults)
        let src = V2Device(device: SimulatedDevice(configuration: c, identity: "source"), features: features)
        let dst = V2Device(device: SimulatedDevice(configuration: c, identity: "destination"), features: features)
        let report = V2ReferenceClient(options: ClientOptions(precopyThreshold: 64 << 10)).migrate(
            from: InProcessV2Transport(device: src, name: "source"), to: InProcessV2Transport(device: dst, name: "destination"))
        return (report, src, dst)
    }

    @Test func aStateTriggerFailsTheSetAtItsArc() {
        let fault = Fault(name: "stop-copy-fails", trigger: .enterState(bits: DeviceState.stopAndCopy.bits, occurrence: 1),
                          action: .fail(.ioError), role: .source)
        let (report, src, _) = Self.migrate([fault])
        #expect(report.outcome == "failed")
        #expect(report.failure?.step == "source SET STOP_COPY" && report.failure?.errno == "EIO")
        // The walk stopped before the failing arc: PRE_COPY_P2P was reached, STOP_COPY was not;
        // the client's roll-back then returned the source to RUNNING.
        #expect(src.stateLog.prefix(2) == [.preCopy, .preCopyP2P])
        #expect(!src.stateLog.contains(.stopCopy))
        #expect(src.state == .running)
        #expect(src.firedFaults == ["stop-copy-fails"])
    }

    @Test func failToErrorStateOnAnArcLeavesERRORAndResetRecovers() {
        let fault = Fault(name: "resume-setup", trigger: .enterState(bits: DeviceState.resuming.bits, occurrence: 1),
                          action: .failToErrorState(.ioError), role: .destination)
        let (report, _, dst) = Self.migrate([fault])
        #expect(report.outcome == "failed" && report.failure?.step == "destination SET RESUMING")
        #expect(report.recoveredByReset == true)
        #expect(dst.state == .running)
        #expect(dst.stateLog.contains(.error))
    }

    @Test func aChunkFaultFailsTheReadThatStagesIt() {
        let fault = Fault(name: "chunk-3", trigger: .chunk(phase: .preCopy, index: 3), action: .fail(.ioError), role: .source)
        let (report, src, _) = Self.migrate([fault])
        #expect(report.outcome == "failed")
        #expect(report.failure?.step == "source data_fd read in pre-copy" && report.failure?.errno == "EIO")
        #expect(src.state == .running, "the client rolled the source back")
        #expect(src.firedFaults == ["chunk-3"])
    }

    @Test func aCorruptedChunkIsRefusedByTheDestination() {
        let fault = Fault(name: "flip", trigger: .chunk(phase: .preCopy, index: 2),
                          action: .corruptChunk(offset: 100, count: 4), role: .source)
        let (report, _, dst) = Self.migrate([fault])
        #expect(report.outcome == "failed")
        #expect(report.failure?.step == "destination data_fd write" && report.failure?.errno == "EINVAL")
        #expect(dst.lastError?.contains("corrupted stream") == true)
    }

    @Test func aResumeWriteFaultFailsThatWrite() {
        let fault = Fault(name: "write-5", trigger: .chunk(phase: .resuming, index: 5), action: .fail(.noSpace), role: .destination)
        let (report, _, _) = Self.migrate([fault])
        #expect(report.failure?.step == "destination data_fd write" && report.failure?.errno == "ENOSPC")
    }

    @Test func aStallAdvancesDeviceTimeAndIsOwed() throws {
        let c = smallConfiguration(faults: [Fault(name: "slow", trigger: .enterState(bits: DeviceState.preCopy.bits, occurrence: 1),
                                                  action: .stall(nanoseconds: 5_000_000))])
        let d = V2Device(device: SimulatedDevice(configuration: c, identity: "x"), features: Self.all)
        let before = d.now
        _ = try d.set(.preCopy).get()
        #expect(d.now - before == 5_000_000)
        #expect(d.takeStall() == 5_000_000)
        #expect(d.takeStall() == 0)
    }

    @Test func pendingNeverZeroMakesMigDataSizeLie() throws {
        let c = smallConfiguration(faults: [Fault(name: "liar", trigger: .enterState(bits: DeviceState.stopAndCopy.bits, occurrence: 1),
                                                  action: .pendingNeverZero(remaining: 4096))])
        let d = V2Device(device: SimulatedDevice(configuration: c, identity: "x"), features: [.stopCopy])
        let s = try #require(try d.set(.stopCopy).get().newSession)
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while try buffer.withUnsafeMutableBytes({ try d.read(session: s, into: $0).get() }) > 0 {}
        // The stream ended (read returned 0) but the device still claims 4 KiB to go.
        #expect(d.stopCopyLength() == 4096)
    }
}

import Conformance
import DeviceSimulator
import EngineFixtures
import MigrationProtocol
import SystemPackage
import Testing

/// Every fault action, driven into by the reference client or by hand, with its exact effect.
@Suite struct FaultTests {
    func pair(_ faults: [Fault], destinationFaults: [Fault] = []) -> (MigrationRegion, MigrationRegion) {
        (MigrationRegion(configuration: smallConfiguration(faults: faults), identity: "source"),
         MigrationRegion(configuration: smallConfiguration(faults: destinationFaults), identity: "destination"))
    }

    @Test func failAccessFailsThatAccessWithTheErrno() {
        let fault = Fault(name: "eio", trigger: .access(field: .dataOffset, operation: .read, occurrence: 3), action: .fail(.ioError))
        let (s, d) = pair([fault])
        let report = migrate(s, d)
        #expect(report.outcome == "failed")
        #expect(report.failure?.errno == "EIO")
        #expect(report.failure?.step.contains("source data_offset read") == true, "\(report.failure?.step ?? "")")
        #expect(s.bits == DeviceState.runningBit, "the client rolls the source back to running")
        #expect(s.firedFaults == ["eio"])
    }

    @Test func failedTransitionStaysPut() {
        let fault = Fault(name: "no-sc", trigger: .transition(from: 0b011, to: 0b010), action: .fail(.resourceTemporarilyUnavailable))
        let s = MigrationRegion(configuration: smallConfiguration(faults: [fault]), identity: "s")
        _ = s.set(DeviceState.preCopy.bits)
        #expect(s.set(DeviceState.stopAndCopy.bits) == .resourceTemporarilyUnavailable)
        #expect(s.bits == DeviceState.preCopy.bits)
        #expect(s.set(DeviceState.stopAndCopy.bits) == nil, "fires once")
    }

    @Test func failToErrorStateAndRecoverByReset() {
        let fault = Fault(name: "err", trigger: .enterState(bits: 0b010, occurrence: 1), action: .failToErrorState(.ioError))
        let (s, d) = pair([fault])
        let report = migrate(s, d)
        #expect(report.outcome == "failed")
        #expect(report.failure?.errno == "EIO")
        #expect(report.recoveredByReset == true)
        #expect(s.bits == DeviceState.runningBit)
    }

    @Test func stallIsReportedAndAdvancesDeviceTime() {
        let fault = Fault(name: "slow", trigger: .access(field: .pendingBytes, operation: .read, occurrence: 1), action: .stall(nanoseconds: 5_000_000))
        let s = MigrationRegion(configuration: smallConfiguration(faults: [fault]), identity: "s")
        _ = s.set(DeviceState.preCopy.bits)
        let before = s.now
        var value: UInt64 = 0
        let result = withUnsafeMutableBytes(of: &value) { s.read(at: HeaderField.pendingBytes.offset, into: $0) }
        #expect(result.stallNanoseconds == 5_000_000)
        #expect(result.outcome == .success(8))
        #expect(s.now - before == 5_000_000)
    }

    /// One stall per trigger kind: the access that fires it answers late by the stall, and
    /// device time is ahead of an unfaulted twin's by exactly the stall.
    @Test(arguments: [
        ("access", FaultTrigger.access(field: .dataOffset, operation: .read, occurrence: 1)),
        ("chunk", .chunk(phase: .preCopy, index: 1)),
        ("bytes", .bytes(phase: .preCopy, count: 1)),
        ("state write", .transition(from: DeviceState.runningBit, to: DeviceState.preCopy.bits)),
    ])
    func stallOfEveryTriggerKindAdvancesDeviceTime(_ kind: String, _ trigger: FaultTrigger) {
        let stall: UInt64 = 7_000_000
        let fault = Fault(name: "slow", trigger: trigger, action: .stall(nanoseconds: stall))
        let faulted = MigrationRegion(configuration: smallConfiguration(faults: [fault]), identity: "s")
        let twin = MigrationRegion(configuration: smallConfiguration(), identity: "s")
        var stalls: [UInt64] = []
        for region in [faulted, twin] {
            var value: UInt64 = 0
            let state = withUnsafeBytes(of: UInt64(region.state.with(bits: DeviceState.preCopy.bits).rawValue).littleEndian) {
                region.write(at: HeaderField.deviceState.offset, from: UnsafeRawBufferPointer(rebasing: $0[0..<4]))
            }
            let offset = withUnsafeMutableBytes(of: &value) { region.read(at: HeaderField.dataOffset.offset, into: $0) }
            #expect(state.errno == nil && offset.errno == nil, "\(kind)")
            stalls.append(state.stallNanoseconds + offset.stallNanoseconds)
        }
        #expect(faulted.firedFaults == ["slow"], "\(kind)")
        #expect(stalls == [stall, 0], "\(kind): the triggering access answers late")
        #expect(faulted.now == twin.now + stall, "\(kind): device time advances by the stall")
    }

    @Test func resumeChunkStallAdvancesDeviceTime() {
        let stall: UInt64 = 3_000_000
        let fault = Fault(name: "slow-apply", trigger: .chunk(phase: .resuming, index: 1), action: .stall(nanoseconds: stall), role: .destination)
        let (s1, d1) = pair([], destinationFaults: [fault])
        let (s2, d2) = pair([])
        #expect(migrate(s1, d1).succeeded)
        #expect(migrate(s2, d2).succeeded)
        #expect(d1.now == d2.now + stall)
    }

    @Test func aRunningDeviceWorksThroughAChunkStall() {
        // Eight pages: the first chunk carries all of them, so only the stall can leave any owed.
        let fault = Fault(name: "slow", trigger: .chunk(phase: .preCopy, index: 1), action: .stall(nanoseconds: 10_000_000))
        let faulted = MigrationRegion(configuration: smallConfiguration(memory: 32 << 10, dirtyRate: 100 << 20, faults: [fault]), identity: "s")
        _ = faulted.set(DeviceState.preCopy.bits)
        let before = faulted.device.pagesDirtied
        _ = faulted.value(.dataOffset)
        // 10 ms at 100 MiB/s is 256 pages' worth, capped at one memory's worth (8 pages).
        #expect(faulted.device.pagesDirtied - before == 8)
        #expect((faulted.status.save?.pagesPending ?? 0) > 0, "pages dirtied in the stall are owed by the session")
    }

    @Test func corruptedChunkIsRejectedByTheDestination() {
        let fault = Fault(name: "flip", trigger: .chunk(phase: .preCopy, index: 2), action: .corruptChunk(offset: 200, count: 4))
        let (s, d) = pair([fault])
        let report = migrate(s, d)
        #expect(report.outcome == "failed")
        #expect(report.failure?.errno == "EINVAL")
        #expect(report.failure?.step.contains("destination data_size write") == true)
        #expect(d.lastError?.contains("checksum") == true)
        #expect(report.recoveredByReset == true, "the destination entered the error state and was reset")
    }

    @Test(arguments: [FaultAction.oversizeDataSize, .overlappingDataOffset, .misalignedDataOffset])
    func lyingOffsetsAndSizesAreCaughtByTheClient(_ action: FaultAction) {
        let fault = Fault(name: "lie", trigger: .chunk(phase: .preCopy, index: 1), action: action)
        let (s, d) = pair([fault])
        let report = migrate(s, d)
        #expect(report.outcome == "failed", "\(action)")
        #expect(report.failure?.errno == "EINVAL")
        #expect(d.device.digest() != s.device.digest())
    }

    @Test func lyingOffsetsAsSeenInTheHeader() {
        let cases: [(FaultAction, (UInt64, UInt64, MigrationRegion) -> Bool)] = [
            (.oversizeDataSize, { _, size, r in size > r.configuration.dataSectionSize }),
            (.overlappingDataOffset, { offset, _, _ in offset < RegionLayout.headerSize }),
            (.misalignedDataOffset, { offset, _, _ in offset % RegionLayout.hostPageSize != 0 }),
        ]
        for (action, check) in cases {
            let s = MigrationRegion(configuration: smallConfiguration(faults: [Fault(name: "x", trigger: .chunk(phase: .preCopy, index: 1), action: action)]), identity: "s")
            _ = s.set(DeviceState.preCopy.bits)
            let offset = s.value(.dataOffset) ?? 0
            let size = s.value(.dataSize) ?? 0
            #expect(check(offset, size, s), "\(action): offset \(offset) size \(size)")
        }
    }

    @Test func pendingThatNeverReachesZeroFailsLikeQEMU() {
        let fault = Fault(name: "stuck", trigger: .enterState(bits: 0b010, occurrence: 1), action: .pendingNeverZero(remaining: 4096))
        let (s, d) = pair([fault])
        let report = migrate(s, d)
        #expect(report.outcome == "failed")
        #expect(report.failure?.message.contains("data_size is 0 with pending bytes 4096") == true)
        #expect(report.pendingSequence.last == 4096)
    }

    @Test func pendingThatGrowsInStopAndCopy() {
        let fault = Fault(name: "grow", trigger: .enterState(bits: 0b010, occurrence: 1), action: .pendingGrows(bytes: 1000))
        let s = MigrationRegion(configuration: smallConfiguration(faults: [fault]), identity: "s")
        _ = s.set(DeviceState.stopAndCopy.bits)
        let a = s.value(.pendingBytes) ?? 0
        let b = s.value(.pendingBytes) ?? 0
        #expect(b == a + 1000)
    }

    @Test func shortReadsCapEachDataRead() {
        let fault = Fault(name: "short", trigger: .chunk(phase: .preCopy, index: 1), action: .shortRead(bytes: 100))
        let s = MigrationRegion(configuration: smallConfiguration(faults: [fault]), identity: "s")
        _ = s.set(DeviceState.preCopy.bits)
        _ = s.read(.dataOffset)
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { s.read(at: RegionLayout.dataSectionOffset, into: $0).outcome }
        #expect(n == .success(100))
        // The reference client keeps reading and still migrates.
        let (s2, d2) = pair([fault])
        let report = migrate(s2, d2, options: ClientOptions(dataAccess: .pieces(4096)))
        #expect(report.succeeded, "\(report)")
    }

    @Test func resumeSideFaultsCountDestinationEvents() {
        let fault = Fault(name: "apply-fail", trigger: .chunk(phase: .resuming, index: 2), action: .fail(.noMemory), role: .destination)
        let (s, d) = pair([], destinationFaults: [fault])
        let report = migrate(s, d)
        #expect(report.outcome == "failed")
        #expect(report.failure?.errno == "ENOMEM")
        #expect(report.failure?.step.contains("destination data_size write") == true)
    }

    @Test func bytesTriggerFiresOnceTheCountIsReached() {
        let fault = Fault(name: "late", trigger: .bytes(phase: .preCopy, count: 200 << 10), action: .fail(.ioError))
        let (s, d) = pair([fault])
        let report = migrate(s, d)
        #expect(report.outcome == "failed")
        #expect(report.bytes.precopy >= (200 << 10) - (64 << 10))
        #expect(report.bytes.precopy < 200 << 10)
    }
}

import DeviceSimulator
import SystemPackage
import Testing

/// The DMA-logging checker in the engine (`DMALog`), apart from any mount: each misuse's
/// decision and errno, and what a strict device does with a tolerated one.
@Suite struct DMALogTests {
    static let gib: UInt64 = 1 << 30

    @Test func reportIsCoveredOnlyByTheUnionOfStartsRanges() {
        let ranges = [DMALogRange(iova: 0, length: 2 * Self.gib), DMALogRange(iova: 2 * Self.gib, length: Self.gib),
                      DMALogRange(iova: 4 * Self.gib, length: Self.gib)]
        var log = DMALog()
        #expect(log.checkStart(ranges: ranges, pageSize: 4096) == .accept)
        #expect(log.start(ranges: ranges) == 4096)
        #expect(log.checkReport(iova: 0, length: 3 * Self.gib, pageSize: 4096) == .accept, "adjacent ranges cover their join")
        #expect(log.checkReport(iova: 4 * Self.gib, length: Self.gib, pageSize: 1 << 21) == .accept, "any power-of-two page size from 4096")
        guard case .tolerate(.v2DMALogReportRange, .invalidArgument, _) = log.checkReport(iova: 2 * Self.gib, length: 2 * Self.gib, pageSize: 4096) else {
            Issue.record("a range across the hole between 3 and 4 GiB is not covered")
            return
        }
        guard case .refuse(.v2DMALogStartTwice, .invalidArgument, _) = log.checkStart(ranges: ranges, pageSize: 4096) else {
            Issue.record("a second START is refused")
            return
        }
        log.stop()
        #expect(!log.isStarted)
        guard case .refuse(.v2DMALogReportWithoutStart, .invalidArgument, _) = log.checkReport(iova: 0, length: 4096, pageSize: 4096) else {
            Issue.record("REPORT after STOP is refused")
            return
        }
    }

    @Test func startRefusesWhatTheKernelsCoreRefuses() {
        let log = DMALog()
        let cases: [([DMALogRange], UInt64, ProtocolViolation.Rule, Errno)] = [
            ([], 4096, .v2DMALogRanges, .invalidArgument),
            (Array(repeating: DMALogRange(iova: 0, length: 4096), count: DMALog.maxRanges + 1), 4096, .v2DMALogRanges, .argListTooLong),
            ([DMALogRange(iova: 0, length: 4096)], 0, .v2DMALogPageSize, .invalidArgument),
            ([DMALogRange(iova: 4096, length: 0)], 4096, .v2DMALogRanges, .invalidArgument),
            ([DMALogRange(iova: UInt64.max - 4095, length: 8192)], 4096, .v2DMALogRanges, .overflow),
            ([DMALogRange(iova: 8192, length: 8192), DMALogRange(iova: 0, length: 12288)], 4096, .v2DMALogRanges, .invalidArgument),
        ]
        for (ranges, pageSize, rule, e) in cases {
            guard case .refuse(let r, let got, _) = log.checkStart(ranges: ranges, pageSize: pageSize) else {
                Issue.record("START \(ranges.prefix(2)) page size \(pageSize) is refused")
                continue
            }
            #expect(r == rule && got == e, "START \(ranges.prefix(2)) page size \(pageSize)")
        }
    }

    @Test(arguments: [false, true])
    func strictRefusesAToleratedMisuseAndBothRecordIt(strict: Bool) {
        let device = V2Device(device: SimulatedDevice(configuration: DeviceConfiguration(), identity: "d"), features: [.stopCopy], strict: strict)
        /// The errno of a call, nil for success.
        func errno(_ r: Result<Void, Errno>) -> Errno? { if case .failure(let e) = r { e } else { nil } }
        #expect(errno(device.dmaLoggingStop()) == (strict ? .invalidArgument : nil))
        #expect(device.violations.map(\.rule) == [.v2DMALogStopWithoutStart])
        #expect(errno(device.dmaLoggingReport(iova: 0, length: 4096, pageSize: 4096)) == .invalidArgument, "refused in either mode")
        #expect(device.violations.map(\.rule) == [.v2DMALogStopWithoutStart, .v2DMALogReportWithoutStart])
        #expect(device.dmaLoggingStart(ranges: [DMALogRange(iova: 0, length: 1 << 20)], pageSize: 512) == .success(4096))
        #expect(device.status.dmaLogging)
    }
}

import Conformance
import DeviceSimulator
import EngineFixtures
import MigrationProtocol
import SystemPackage
import Testing

@Suite struct MigrationTests {
    @Test func cleanMigrationGivesEqualDigests() {
        let (s, d) = devicePair(smallConfiguration())
        #expect(s.device.digest() != d.device.digest(), "devices must power on different")
        let report = migrate(s, d)
        #expect(report.failure == nil)
        #expect(report.outcome == "completed")
        #expect(report.digestsMatch)
        #expect(s.violations.isEmpty && d.violations.isEmpty, "\(s.violations) \(d.violations)")
        #expect(d.bits == DeviceState.runningBit)
        #expect(s.bits == DeviceState.stopBits)
    }

    @Test(arguments: [ClientOptions.DataAccess.mapped, .pieces(8), .pieces(4096), .pieces(100_000)])
    func everyDataAccessModeMigrates(_ access: ClientOptions.DataAccess) {
        let (s, d) = devicePair(smallConfiguration(memory: 256 << 10))
        let report = migrate(s, d, options: ClientOptions(dataAccess: access))
        #expect(report.succeeded, "\(report)")
        #expect(s.violations.isEmpty && d.violations.isEmpty, "\(s.violations) \(d.violations)")
    }

    @Test func dirtyingDeviceStillConverges() {
        // 4 MiB at 1 GiB/s takes ~4 ms, in which 200 MiB/s dirties ~800 KiB: pass 2 is needed,
        // and it dirties ~160 KiB, under the threshold.
        let (s, d) = devicePair(smallConfiguration(memory: 4 << 20, dirtyRate: 200 << 20))
        let report = migrate(s, d, options: ClientOptions(precopyThreshold: 256 << 10))
        #expect(report.succeeded, "\(report)")
        #expect(report.precopyIterations >= 2)
        #expect(s.device.pagesDirtied > 0)
    }

    @Test func pausedGuestSavesFromStop() {
        let (s, d) = devicePair(smallConfiguration())
        let report = migrate(s, d, options: ClientOptions(pausedGuest: true))
        #expect(report.succeeded, "\(report)")
        #expect(report.precopyIterations == 0)
        #expect(report.bytes.precopy == 0)
    }

    @Test func smallerDestinationSectionSplitsChunksAndRecordsIt() {
        let source = smallConfiguration(chunk: 64 << 10, section: 64 << 10)
        var destination = source
        destination.dataSectionSize = 16 << 10
        destination.chunkSize = 16 << 10
        let (s, d) = devicePair(source, destination: destination)
        let report = migrate(s, d)
        #expect(report.succeeded, "\(report)")
        #expect(report.chunks.resumeTransactions > report.chunks.precopy + report.chunks.stopAndCopy)
        #expect(d.violations.contains { $0.rule == .resumeTransactions })
    }
}

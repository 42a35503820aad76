import Conformance
import DeviceSimulator
import Foundation
import MdevFS
import MigrationProtocol
import Scenarios
import SystemPackage
import Testing
import TestSupport

/// `mdevsim migrate --protocol v2`: the v2 reference client on a scenario's devices, in process
/// and through a mount's v2 files, with the same devices (identities) both ways.
@Suite(.serialized) struct V2MigrationTests {
    static func scenario() throws -> Scenario {
        try ScenarioLoader.load(contentsOf: FilePath("\(libraryDirectory)/qemu10.yaml"))
    }

    @Test func inProcessAndThroughTheMountMigrateTheSameDevices() throws {
        let scenario = try Self.scenario()
        let inProcess = try V2Migration.inProcess(InProcessMigration(scenario: scenario))
        #expect(inProcess.succeeded, "\(inProcess.failure?.step ?? ""): \(inProcess.failure?.message ?? "")")
        #expect(inProcess.violations.isEmpty)
        #expect(inProcess.precopyIterations > 0)

        let mountpoint = try makeTemporaryDirectory("mdevsim-v2-migrate")
        defer { rmdir(mountpoint) }
        var fuse = FUSEMigration(scenario: scenario, mountpoint: mountpoint)
        fuse.migrationProtocol = .v2
        let throughMount = try fuse.run()
        #expect(throughMount.succeeded, "\(throughMount.failure?.step ?? ""): \(throughMount.failure?.message ?? "")")
        #expect(throughMount.violations.isEmpty)
        // The same devices (UUIDs from the scenario), the same stream: the same digests.
        #expect(throughMount.sourceDigest == inProcess.sourceDigest)
        #expect(throughMount.bytes == inProcess.bytes)
    }

    @Test func aTypeThatDoesNotSpeakV2IsRefused() throws {
        let outcome = try CommandContractTests.mdevsim(["migrate", "--in-process", "--protocol", "v2"])
        #expect(outcome.status == 2, "\(outcome.stderr)")
        #expect(outcome.stderr.contains("mdevsim migrate: error: cannot migrate with v2: the type mdevsim-default does not speak migration v2"), "\(outcome.stderr)")
        let v2 = try CommandContractTests.mdevsim(["migrate", "--in-process", "--protocol", "v2", "--scenario", "\(libraryDirectory)/qemu10.yaml"])
        #expect(v2.status == 0, "\(v2.stdout)\(v2.stderr)")
        #expect(v2.stdout.contains("PASS"), "\(v2.stdout)")
    }
}

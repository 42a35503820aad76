import Conformance
import DeviceSimulator
import Foundation
import Glibc
import MdevFS
import MigrationProtocol
import Scenarios
import SystemPackage
import Testing
import TestSupport

/// Migration v2 through a real mount: the v2 files of a device speaking v2, one file operation
/// per v2 call, and the v2 reference client migrating through them.
@Suite(.serialized) struct V2MountTests {
    static func scenario(features: V2MigrationFeatures = [.stopCopy, .p2p, .preCopy]) -> Scenario {
        var base = smallScenario()
        var both = base.types[0].configuration
        both.typeName = "mdevsim-v2"
        both.protocols = [.v1, .v2]
        both.v2Features = features
        base.types.append(DeviceTypeSpec(configuration: both, instances: 4))
        return base
    }

    static let v2Files = ["mig_features", "mig_state", "mig_data", "mig_precopy_info", "mig_data_size", "mig_state_log"]

    @Test func v2FilesExistOnlyOnDevicesSpeakingV2() throws {
        let fixture = try MountFixture(Self.scenario())
        defer { fixture.close() }
        let v1 = try fixture.create()
        let v2 = try fixture.create(type: "mdevsim-v2")
        let v1Listing = try FileManager.default.contentsOfDirectory(atPath: v1)
        let v2Listing = try FileManager.default.contentsOfDirectory(atPath: v2)
        for f in Self.v2Files {
            #expect(!v1Listing.contains(f))
            #expect(v2Listing.contains(f))
            #expect(access("\(v1)/\(f)", F_OK) != 0 && errno == ENOENT)
        }
        #expect(v2Listing.contains("migration"), "a device speaking both keeps its v1 region")
    }

    @Test func eachFileIsOneCallWithExactSizes() throws {
        let fixture = try MountFixture(Self.scenario())
        defer { fixture.close() }
        let dir = try fixture.create(type: "mdevsim-v2")
        let fd = open("\(dir)/mig_state", O_RDWR)
        #expect(fd >= 0)
        defer { close(fd) }
        var state: UInt32 = 0
        #expect(pread(fd, &state, 4, 0) == 4 && state == V2DeviceState.running.rawValue)
        var wide: UInt64 = 0
        #expect(pread(fd, &wide, 8, 0) == -1 && errno == EINVAL, "GET is exactly 4 bytes")
        // No session: no data_fd to open.
        #expect(open("\(dir)/mig_data", O_RDONLY) == -1 && errno == ENODEV)
        // PRECOPY_INFO outside pre-copy is EINVAL, as the uAPI says.
        let info = open("\(dir)/mig_precopy_info", O_RDONLY)
        defer { close(info) }
        var pair = (UInt64(0), UInt64(0))
        #expect(pread(info, &pair, 16, 0) == -1 && errno == EINVAL)
        // SET ERROR is refused and recorded.
        var error = V2DeviceState.error.rawValue
        #expect(pwrite(fd, &error, 4, 0) == -1 && errno == EINVAL)
        // SET PRE_COPY opens a session; its data_fd reads to ENOMSG through FUSE.
        var pre = V2DeviceState.preCopy.rawValue
        #expect(pwrite(fd, &pre, 4, 0) == 4)
        let data = open("\(dir)/mig_data", O_RDONLY)
        #expect(data >= 0)
        defer { close(data) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 8)
        defer { buffer.deallocate() }
        var total = 0
        var end: Int32 = 0
        while true {
            let n = read(data, buffer.baseAddress, buffer.count)
            if n < 0 { end = errno; break }
            if n == 0 { break }
            total += n
        }
        #expect(total > 0)
        #expect(end == ENOMSG, "pre-copy's temporary end of stream reaches the client as ENOMSG")
        let violations = fixture.read("devices/\(URL(fileURLWithPath: dir).lastPathComponent)/violations") ?? ""
        #expect(violations.contains("v2-set-error"))
    }

    @Test(arguments: [V2MigrationFeatures([.stopCopy, .p2p, .preCopy]), [.stopCopy]])
    func referenceClientMigratesThroughTheMount(_ features: V2MigrationFeatures) throws {
        let fixture = try MountFixture(Self.scenario(features: features))
        defer { fixture.close() }
        let src = try fixture.create(type: "mdevsim-v2"), dst = try fixture.create(type: "mdevsim-v2")
        #expect(fixture.read("devices/\(URL(fileURLWithPath: src).lastPathComponent)/digest")
                != fixture.read("devices/\(URL(fileURLWithPath: dst).lastPathComponent)/digest"))
        let report: MigrationReport
        do {
            let source = try FileV2Transport(directory: src, name: "source")
            let destination = try FileV2Transport(directory: dst, name: "destination")
            report = V2ReferenceClient(options: ClientOptions(precopyThreshold: 64 << 10)).migrate(from: source, to: destination)
        }
        #expect(report.succeeded, "\(report.failure?.step ?? ""): \(report.failure?.message ?? "")")
        #expect(report.sourceState == "STOP" && report.destinationState == "RUNNING")
        for dir in [src, dst] {
            #expect(fixture.read("devices/\(URL(fileURLWithPath: dir).lastPathComponent)/violations") == "")
        }
        let uuid = URL(fileURLWithPath: src).lastPathComponent
        let log = fixture.mount.filesystem.v2Device(uuid)?.stateLog ?? []
        #expect(log == (features.contains(.preCopy) ? [.preCopy, .preCopyP2P, .stopCopy, .stop] : [.stop, .stopCopy, .stop]))
        // The same log, read from the mount.
        #expect(fixture.read("devices/\(uuid)/mig_state_log") == log.map(\.description).joined(separator: " ") + "\n")
    }
}

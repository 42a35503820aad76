import Conformance
import Foundation
import Glibc
import MdevFS
import Scenarios
import SystemPackage
import Testing
import TestSupport

/// The sysfs-shaped view (`class/mdev_bus/<parent>/...`, `bus/mdev/devices/<uuid>`) through the
/// kernel: the paths and links the kernel's mdev core makes, over the same devices as
/// mdevsim's own tree.
@Suite struct SysfsTreeTests {
    func link(_ path: String) throws -> String { try FileManager.default.destinationOfSymbolicLink(atPath: path) }
    func list(_ path: String) throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: path).sorted() }
    func resolved(_ path: String) -> String { URL(fileURLWithPath: path).resolvingSymlinksInPath().path }

    @Test func layoutLinksAndSharedFiles() throws {
        var scenario = smallScenario(instances: 2)
        scenario.parent = "0000:65:00.1"
        let fixture = try MountFixture(scenario)
        defer { fixture.close() }
        let root = fixture.path
        #expect(try list(root) == ["bus", "class", "devices", "iommu_groups", "mdev_supported_types"])
        #expect(try list("\(root)/class/mdev_bus") == ["0000:65:00.1"])
        let parent = "\(root)/class/mdev_bus/0000:65:00.1"
        let type = "\(parent)/mdev_supported_types/mdevsim-test"
        #expect(try list("\(parent)/mdev_supported_types") == ["mdevsim-test", "mdevsim-test-small-section"])
        #expect(try list(type) == ["available_instances", "create", "description", "device_api", "devices", "name"])
        #expect(fixture.read("class/mdev_bus/0000:65:00.1/mdev_supported_types/mdevsim-test/name") == "mdevsim-test\n")
        #expect(try list("\(type)/devices").isEmpty)
        #expect(try list("\(root)/bus/mdev/devices").isEmpty)

        // A device created through the sysfs view's create (as mdevctl writes it: no newline).
        let uuid = "3c1a2b4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
        try FileTransport.writeText(uuid, to: "\(type)/create")
        #expect(fixture.read("mdev_supported_types/mdevsim-test/available_instances") == "1\n", "one device, both trees")
        #expect(try list("\(type)/devices") == [uuid])
        #expect(try link("\(type)/devices/\(uuid)") == "../../../\(uuid)")
        #expect(try list("\(parent)") == [uuid, "mdev_supported_types"])
        let device = "\(parent)/\(uuid)"
        #expect(try list(device) == ["config", "digest", "dma", "iommu_group", "mdev_type", "migration", "migration.info",
                                     "remove", "reset", "state", "violations"])
        #expect(try link("\(device)/mdev_type") == "../mdev_supported_types/mdevsim-test")
        #expect(resolved("\(device)/mdev_type") == type)
        #expect(try link("\(device)/iommu_group") == "../../../../iommu_groups/1000")
        #expect(resolved("\(device)/iommu_group") == "\(root)/iommu_groups/1000")
        #expect(try link("\(root)/bus/mdev/devices/\(uuid)") == "../../../class/mdev_bus/0000:65:00.1/\(uuid)")
        // What mdevctl derives: the parent is the name of the directory the bus link resolves into.
        let canonical = resolved("\(root)/bus/mdev/devices/\(uuid)")
        #expect(canonical == device)
        #expect(URL(fileURLWithPath: canonical).deletingLastPathComponent().lastPathComponent == "0000:65:00.1")
        // The same files as mdevsim's own device directory: the same inodes and contents.
        var a = stat(), b = stat()
        #expect(stat("\(device)/migration", &a) == 0 && stat("\(root)/devices/\(uuid)/migration", &b) == 0)
        #expect(a.st_ino == b.st_ino && a.st_mode & 0o777 == 0o600)
        #expect(fixture.read("class/mdev_bus/0000:65:00.1/\(uuid)/digest") == fixture.read("devices/\(uuid)/digest"))
        // Another type's devices/ does not list it; the other tree still shows it.
        #expect(try list("\(parent)/mdev_supported_types/mdevsim-test-small-section/devices").isEmpty)
        #expect(try link("\(root)/devices/\(uuid)/mdev_type") == "../../mdev_supported_types/mdevsim-test")

        // remove through the bus link (as mdevctl stop does): gone from both trees.
        try FileTransport.writeText("1", to: "\(root)/bus/mdev/devices/\(uuid)/remove")
        #expect(try list("\(root)/bus/mdev/devices").isEmpty)
        #expect(try list("\(type)/devices").isEmpty)
        #expect(!FileManager.default.fileExists(atPath: "\(root)/devices/\(uuid)"))
        #expect(!FileManager.default.fileExists(atPath: device))
    }

    @Test func defaultParentIsTheScenarioDefault() throws {
        let fixture = try MountFixture(smallScenario())
        defer { fixture.close() }
        #expect(try list("\(fixture.path)/class/mdev_bus") == [MdevParent.defaultName])
        #expect(!FileManager.default.fileExists(atPath: "\(fixture.path)/class/mdev_bus/0000:65:00.1"))
    }
}

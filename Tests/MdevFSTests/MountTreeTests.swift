import Conformance
import DeviceSimulator
import Foundation
import Glibc
import MdevFS
import MigrationProtocol
import SystemPackage
import Testing
import TestSupport

/// The tree, the device lifecycle files, and the header rules once more through the kernel.
@Suite struct MountTreeTests {
    @Test func typeAttributesAndDeviceLifecycle() throws {
        let fixture = try MountFixture(smallScenario(instances: 2))
        defer { fixture.close() }
        let type = "mdev_supported_types/mdevsim-test"
        #expect(fixture.read("\(type)/name") == "mdevsim-test\n")
        #expect(fixture.read("\(type)/device_api") == "vfio-pci\n")
        #expect(fixture.read("\(type)/available_instances") == "2\n")
        let uuid = "5b6f6a3e-0e2c-4b7e-9c39-3d1f0b0a1c2d"
        let dir = try fixture.create(uuid)
        #expect(fixture.read("\(type)/available_instances") == "1\n")
        #expect(throws: Errno.fileExists) { try FileTransport.writeText(uuid, to: "\(fixture.path)/\(type)/create") }
        #expect(throws: Errno.invalidArgument) { try FileTransport.writeText("not-a-uuid", to: "\(fixture.path)/\(type)/create") }
        _ = try fixture.create()
        #expect(throws: Errno.noSpace) { try FileTransport.writeText(UUID().uuidString, to: "\(fixture.path)/\(type)/create") }
        let entries = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        #expect(entries == ["config", "digest", "dma", "iommu_group", "mdev_type", "migration", "migration.info", "remove", "reset", "state", "violations"])
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "\(dir)/mdev_type") == "../../mdev_supported_types/mdevsim-test")
        // PCI identity: the default ids (no pci: in the scenario), type-0 header, no BARs/capabilities/pin.
        let config = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(dir)/config")))
        #expect(config.count == 256)
        #expect(Array(config[0..<4]) == [0x36, 0x1b, 0x00, 0x7a])
        #expect(Array(config[8..<12]) == [0x01, 0x00, 0x00, 0xff])
        #expect(config[0x0e] == 0 && config[0x06] & 0x10 == 0 && config[0x3d] == 0)
        #expect(config[0x10..<0x28].allSatisfy { $0 == 0 })
        #expect(fixture.read("devices/\(uuid)/dma") == "{}\n", "no dma: in the scenario")
        // One IOMMU group per device, numbered from 1000, each a directory of iommu_groups.
        let group = try FileManager.default.destinationOfSymbolicLink(atPath: "\(dir)/iommu_group")
        #expect(group == "../../iommu_groups/1000")
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(fixture.path)/iommu_groups").sorted() == ["1000", "1001"])
        var st = stat()
        #expect(stat("\(dir)/migration", &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600)
        #expect(UInt64(st.st_size) == RegionLayout.dataSectionOffset + (256 << 10))
        #expect(stat("\(dir)/remove", &st) == 0 && st.st_mode & 0o777 == 0o200)
        let info = try RegionInfo.read(directory: dir)
        #expect(info.type == 3)
        #expect(info.subtype == 1)
        #expect(info.headerSize == 32)
        #expect(info.mmapAreas.first?.offset == 4096)
        #expect(info.mmapAreas.first?.size == 256 << 10)
        let state = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/state"))) as? [String: Any]
        #expect(state?["state_name"] as? String == "running")
        try FileTransport.writeText("1\n", to: "\(dir)/remove")
        #expect(!FileManager.default.fileExists(atPath: dir))
        #expect(fixture.read("\(type)/available_instances") == "1\n")
    }

    @Test func regionIsExclusiveAndReopensRightAfterClose() throws {
        let fixture = try MountFixture()
        defer { fixture.close() }
        let dir = try fixture.create()
        let first = open("\(dir)/migration", O_RDWR)
        #expect(first >= 0)
        #expect(open("\(dir)/migration", O_RDWR) == -1 && errno == EBUSY)
        #expect(throws: Errno.resourceBusy) { try FileTransport.writeText("1", to: "\(dir)/remove") }
        close(first)
        // RELEASE reaches the daemon after close() returned: reopening at once must still work.
        for _ in 0..<20 {
            let fd = open("\(dir)/migration", O_RDWR)
            #expect(fd >= 0, "errno \(errno)")
            close(fd)
        }
        let violations = try String(contentsOfFile: "\(dir)/violations", encoding: .utf8)
        #expect(violations.contains("concurrent-open"))
    }

    @Test func headerRulesThroughTheKernel() throws {
        let fixture = try MountFixture()
        defer { fixture.close() }
        let dir = try fixture.create()
        let fd = open("\(dir)/migration", O_RDWR)
        #expect(fd >= 0)
        defer { close(fd) }
        func rw(_ write: Bool, _ offset: Int, _ width: Int, _ value: UInt64 = 0) -> (Int, Int32, UInt64) {
            var v = value.littleEndian
            let n = withUnsafeMutableBytes(of: &v) { raw in
                write ? pwrite(fd, raw.baseAddress, width, off_t(offset)) : pread(fd, raw.baseAddress, width, off_t(offset))
            }
            return (n, n < 0 ? errno : 0, UInt64(littleEndian: v))
        }
        #expect(rw(false, 0, 4).2 == 1, "device_state reads running")
        for (offset, width) in [(0, 2), (0, 8), (8, 4), (12, 4), (9, 8), (30, 2), (32, 4)] {
            #expect(rw(false, offset, width).1 == EINVAL, "read \(width)@\(offset)")
            #expect(rw(true, offset, width, 1).1 == EINVAL, "write \(width)@\(offset)")
        }
        #expect(rw(false, 4, 4).2 == 0)
        #expect(rw(true, 4, 4, 0xFFFF).0 == 4)
        #expect(rw(true, 8, 8, 5).1 == EINVAL, "pending_bytes is read only")
        #expect(rw(true, 16, 8, 5).1 == EINVAL, "data_offset is read only")
        #expect(rw(true, 0, 4, 0b101).1 == EINVAL)
        #expect(rw(true, 0, 4, 0b110).1 == EINVAL)
        #expect(rw(true, 0, 4, 0b011).0 == 4)
        #expect(rw(true, 0, 4, 0b011).0 == 4, "same state twice")
        #expect(rw(true, 0, 4, 0b100).1 == EINVAL, "pre-copy -> resuming")
        let pending = rw(false, 8, 8).2
        #expect(pending > 0)
        #expect(rw(false, 8, 8).2 == pending, "no side effect")
        #expect(rw(false, 16, 8).2 == 4096)
        let size = rw(false, 24, 8).2
        #expect(size > 0 && size <= 256 << 10)
        #expect(rw(false, 16, 8).2 == 4096)
        #expect(rw(false, 24, 8).2 == size)
        // Data in any piece size, down to bytes.
        var byte: UInt8 = 0
        #expect(pread(fd, &byte, 1, 4096) == 1)
        #expect(byte == 0x43, "a chunk starts with its CHNK record")
        let violations = try String(contentsOfFile: "\(dir)/violations", encoding: .utf8)
        #expect(violations.contains("access-width") && violations.contains("read-only-write") && violations.contains("invalid-state"))
    }

    /// The violations file holds every record however long it grows: its st_size is 0 (a
    /// generated file), so a reader that trusts st_size, as Foundation does, reads to the end.
    @Test func aLongViolationsFileIsReadWhole() throws {
        let fixture = try MountFixture(smallScenario(instances: 1))
        defer { fixture.close() }
        let dir = try fixture.create()
        let fd = open("\(dir)/migration", O_RDWR)
        #expect(fd >= 0)
        defer { close(fd) }
        var half: UInt16 = 0
        for _ in 0..<64 { #expect(pread(fd, &half, 2, 8) == -1, "pending_bytes is read 8 bytes wide") }
        let text = try String(contentsOfFile: "\(dir)/violations", encoding: .utf8)
        #expect(text.utf8.count > 4096)
        #expect(text.split(separator: "\n").count == 64)
    }

    /// An open attribute file holds the text its read at offset 0 produced, as sysfs's seq_file
    /// does: the reads after it continue that text even if the device changed meanwhile, and a
    /// read at offset 0 (here a new open) takes the text anew.
    @Test func anOpenAttributeFileKeepsItsText() throws {
        let fixture = try MountFixture(smallScenario(instances: 1))
        defer { fixture.close() }
        let dir = try fixture.create()
        let fd = open("\(dir)/state", O_RDONLY)
        try #require(fd >= 0)
        defer { close(fd) }
        var head = [UInt8](repeating: 0, count: 8)
        #expect(read(fd, &head, head.count) == head.count)
        let region = open("\(dir)/migration", O_RDWR)
        try #require(region >= 0)
        var stop = UInt32(0).littleEndian
        #expect(pwrite(region, &stop, 4, 0) == 4, "running -> stop")
        close(region)
        var rest = [UInt8](repeating: 0, count: 64 << 10)
        let n = read(fd, &rest, rest.count)
        try #require(n > 0)
        let whole = try #require(try JSONSerialization.jsonObject(with: Data(head + rest[0..<n])) as? [String: Any])
        #expect(whole["state_name"] as? String == "running", "the text read at offset 0, continued")
        let now = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/state"))) as? [String: Any]
        #expect(now?["state_name"] as? String == "stop")
    }

    /// A client's page-sized, page-aligned pread of the data section is the client's access, not
    /// a page fault: the checker sees it (here: data read before any data_offset read), while the
    /// faults of a mapping on the same file stay invisible to it.
    @Test func pageSizedPreadIsCheckedAndFaultsAreNot() throws {
        let fixture = try MountFixture()
        defer { fixture.close() }
        let dir = try fixture.create()
        let fd = open("\(dir)/migration", O_RDWR)
        #expect(fd >= 0)
        defer { close(fd) }
        var state: UInt32 = 0b011
        #expect(pwrite(fd, &state, 4, 0) == 4)
        // Faults: map the data section and touch three pages before any data_offset read.
        let section = 256 << 10
        let map = mmap(nil, section, PROT_READ, MAP_SHARED, fd, 4096)
        #expect(map != MAP_FAILED)
        if let map, map != MAP_FAILED {
            let bytes = map.assumingMemoryBound(to: UInt8.self)
            _ = bytes[0] &+ bytes[4096] &+ bytes[section - 1]
            msync(map, section, MS_SYNC)
            munmap(map, section)
        }
        #expect(try String(contentsOfFile: "\(dir)/violations", encoding: .utf8).isEmpty, "page faults are not client reads")
        var page = [UInt8](repeating: 0, count: 4096)
        #expect(pread(fd, &page, 4096, 4096) == 4096)
        let violations = try String(contentsOfFile: "\(dir)/violations", encoding: .utf8)
        #expect(violations.contains("data-before-data-offset"), "\(violations)")
    }

    @Test func resetRestoresPowerOnAndLeavesTheErrorState() throws {
        let fault = Fault(name: "err", trigger: .enterState(bits: 0, occurrence: 1), action: .failToErrorState(.ioError))
        let fixture = try MountFixture(smallScenario(faults: [fault]))
        defer { fixture.close() }
        let dir = try fixture.create()
        let digest = try String(contentsOfFile: "\(dir)/digest", encoding: .utf8)
        let fd = open("\(dir)/migration", O_RDWR)
        defer { close(fd) }
        var state: UInt32 = 0
        #expect(pwrite(fd, &state, 4, 0) == -1 && errno == EIO)
        #expect(pread(fd, &state, 4, 0) == 4 && state == 0b110)
        try FileTransport.writeText("1\n", to: "\(dir)/reset")
        #expect(pread(fd, &state, 4, 0) == 4 && state == 0b001)
        #expect(try String(contentsOfFile: "\(dir)/digest", encoding: .utf8) == digest)
    }
}

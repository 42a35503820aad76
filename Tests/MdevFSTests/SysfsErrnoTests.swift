import Conformance
import Foundation
import Glibc
import SystemPackage
import Testing
import TestSupport

/// The tree answers every call as sysfs does (issue 13, findings 1 and 4), through the kernel.
@Suite struct SysfsErrnoTests {
    struct UUIDRow: Decodable {
        var input: String
        var uuid: String?
        var why: String
    }

    /// Tests/Fixtures/mdev-uuids.json, the table of MdevUUIDTests and ShimUUIDTests.
    static func uuidTable() throws -> [UUIDRow] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/mdev-uuids.json")
        return try JSONDecoder().decode([UUIDRow].self, from: Data(contentsOf: url))
    }

    /// The errno of one write(2) of `bytes` to `path` (nil on success).
    static func writeErrno(_ bytes: [UInt8], to path: String) -> Errno? {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return Errno(rawValue: errno) }
        defer { close(fd) }
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        return n == bytes.count ? nil : Errno(rawValue: n < 0 ? errno : EIO)
    }

    /// Every input of the table: EINVAL and no device, or the device under its lowercase name.
    @Test func createTakesExactlyTheKernelsUUIDs() throws {
        let rows = try Self.uuidTable()
        let valid = rows.filter { $0.uuid != nil }
        let fixture = try MountFixture(smallScenario(instances: valid.count))
        defer { fixture.close() }
        let create = "\(fixture.path)/mdev_supported_types/\(fixture.typeName)/create"
        // An empty write never reaches a driver (the kernel answers 0 itself, as for sysfs).
        for row in rows where row.uuid == nil && !row.input.isEmpty {
            #expect(Self.writeErrno(Array(row.input.utf8), to: create) == .invalidArgument, "\(row.why)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(fixture.path)/devices").isEmpty,
                "no device was created under another name")
        var made: Set<String> = []
        for row in valid {
            guard let uuid = row.uuid else { continue }
            let e = Self.writeErrno(Array(row.input.utf8), to: create)
            #expect(e == (made.contains(uuid) ? .fileExists : nil), "\(row.why)")
            made.insert(uuid)
            #expect(FileManager.default.fileExists(atPath: "\(fixture.path)/devices/\(uuid)/migration"), "\(row.why)")
        }
        #expect(try Set(FileManager.default.contentsOfDirectory(atPath: "\(fixture.path)/devices")) == made)
    }

    /// The command line takes the same UUIDs: `qemu-args` refuses what `create` would.
    @Test func qemuArgsRefusesWhatIsNotAUUID() throws {
        for row in try Self.uuidTable() where row.uuid == nil && !row.input.isEmpty && !row.input.contains("\u{0}") {
            let (status, output) = try MountCommandTests.mdevsim(["qemu-args", "--mount", "/nonexistent", "--", row.input])
            #expect(status != 0 && output.contains("is not an mdev UUID"), "\(row.why): \(output)")
        }
    }

    /// create, mknod, mkdir, symlink, link, unlink, rmdir, rename: sysfs's EACCES/EPERM, never ENOSYS.
    @Test func namespaceChangesGetSysfsErrnos() throws {
        let fixture = try MountFixture()
        defer { fixture.close() }
        let dir = try fixture.create()
        func errno(_ rc: Int32) -> Errno? { rc == 0 ? nil : Errno(rawValue: Glibc.errno) }
        let fd = open("\(dir)/new-file", O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        #expect(fd < 0 && Errno(rawValue: Glibc.errno) == .permissionDenied, "open(O_CREAT) of a new name")
        if fd >= 0 { close(fd) }
        #expect(errno(mknod("\(dir)/node", S_IFREG | 0o644, 0)) == .notPermitted)
        #expect(errno(mkdir("\(fixture.path)/devices/extra", 0o755)) == .notPermitted)
        #expect(errno(symlink("digest", "\(dir)/link")) == .notPermitted)
        #expect(errno(link("\(dir)/digest", "\(dir)/hard")) == .notPermitted)
        #expect(errno(unlink("\(dir)/digest")) == .notPermitted)
        #expect(errno(rmdir(dir)) == .notPermitted)
        #expect(errno(rename("\(dir)/digest", "\(dir)/digest2")) == .notPermitted)
        #expect(FileManager.default.fileExists(atPath: "\(dir)/digest"))
    }

    /// O_TRUNC and utime(2) are refused where truncate(2) is, instead of succeeding without effect.
    @Test func truncatingOpensAndTimeChangesAreRefusedLikeTruncate() throws {
        let fixture = try MountFixture()
        defer { fixture.close() }
        let dir = try fixture.create()
        #expect(truncate("\(dir)/migration", 0) != 0 && Errno(rawValue: errno) == .permissionDenied)
        let fd = open("\(dir)/migration", O_RDWR | O_TRUNC | O_CLOEXEC)
        #expect(fd < 0 && Errno(rawValue: errno) == .permissionDenied, "O_RDWR|O_TRUNC of the region")
        if fd >= 0 { close(fd) }
        for file in ["migration", "digest", "state"] {
            #expect(utime("\(dir)/\(file)", nil) != 0 && Errno(rawValue: errno) == .permissionDenied, "utime of \(file)")
        }
        // What sysfs allows stays allowed: `echo 1 > reset` opens with O_TRUNC.
        let reset = open("\(dir)/reset", O_WRONLY | O_TRUNC | O_CLOEXEC)
        #expect(reset >= 0)
        if reset >= 0 { close(reset) }
        let region = open("\(dir)/migration", O_RDWR | O_CLOEXEC)
        #expect(region >= 0)
        if region >= 0 { close(region) }
    }
}

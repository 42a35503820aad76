import Conformance
import Foundation
import Glibc
import Testing
import TestSupport

/// Another user (uid/gid 65534, no groups) against a mount of root's, with and without
/// `allow_other` (issue 13, finding 2): what the modes forbid fails with EACCES, what they allow works.
@Suite(.serialized) struct AccessControlTests {
    /// Runs `script` with bash (its echo names the errno of a failed write) as uid/gid 65534
    /// (`setpriv`); its exit status and its output.
    /// Extra descriptors are opened by a root shell first (`rootRedirects`), as a leak would hand them over.
    static func asNobody(_ script: String, rootRedirects: String = "") throws -> (Int32, String) {
        let quoted = script.replacingOccurrences(of: "'", with: "'\\''")
        return try runTool("/bin/sh", ["-c", "exec \(rootRedirects) setpriv --reuid=65534 --regid=65534 --clear-groups /bin/bash -c '\(quoted)'"])
    }

    static func requireRootAndSetpriv() throws {
        try #require(getuid() == 0, "the access tests run as root (CI does), to act as a second user")
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"), "setpriv (util-linux) is needed")
    }

    @Test func withoutAllowOtherAnotherUserReachesNothing() throws {
        try Self.requireRootAndSetpriv()
        let fixture = try MountFixture()
        defer { fixture.close() }
        let dir = try fixture.create()
        let type = "\(fixture.path)/mdev_supported_types/\(fixture.typeName)"
        for (what, command) in [
            ("list the mount", "ls \(fixture.path)"),
            ("read a type's name", "cat \(type)/name"),
            ("write create", "echo \(UUID().uuidString.lowercased()) > \(type)/create"),
            ("open the region", ": <> \(dir)/migration"),
            ("read the digest", "cat \(dir)/digest"),
            ("write reset", "echo 1 > \(dir)/reset"),
            ("write remove", "echo 1 > \(dir)/remove"),
        ] {
            let (status, output) = try Self.asNobody(command)
            #expect(status != 0 && output.contains("Permission denied"), "\(what): \(output)")
        }
        #expect(FileManager.default.fileExists(atPath: "\(dir)/migration"), "the device is still there")
    }

    @Test func withAllowOtherModesDecide() throws {
        try Self.requireRootAndSetpriv()
        let fixture = try MountFixture(allowOther: true)
        defer { fixture.close() }
        let dir = try fixture.create()
        let uuid = URL(fileURLWithPath: dir).lastPathComponent
        let type = "\(fixture.path)/mdev_supported_types/\(fixture.typeName)"
        // Refused: every control file (root's, 0200) and the region (root's, 0600), and the tree itself.
        for (what, command) in [
            ("write create", "echo \(UUID().uuidString.lowercased()) > \(type)/create"),
            ("open the region read-write", ": <> \(dir)/migration"),
            ("open the region read-only", ": < \(dir)/migration"),
            ("open the region write-only", ": > \(dir)/migration"),
            ("write reset", "echo 1 > \(dir)/reset"),
            ("write remove", "echo 1 > \(dir)/remove"),
            ("write a read-only attribute", "echo 1 > \(dir)/state"),
            ("make a directory", "mkdir \(fixture.path)/devices/x"),
        ] {
            let (status, output) = try Self.asNobody(command)
            #expect(status != 0 && output.contains("Permission denied"), "\(what): \(output)")
        }
        // Allowed by the modes: reading the 0444 attributes and listing the tree.
        let (status, output) = try Self.asNobody("cat \(type)/name \(type)/available_instances \(dir)/state > /dev/null && ls \(fixture.path)/devices")
        #expect(status == 0 && output.contains(uuid), "\(output)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(fixture.path)/devices") == [uuid], "nothing was created or removed")
        let state = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/state"))) as? [String: Any]
        #expect(state?["state_name"] as? String == "running")
    }

    /// The filesystem checks the writer of a control file itself: a descriptor root opened and
    /// another user holds (the kernel checked only the open) still cannot reset or remove.
    @Test func aControlFileWriteIsCheckedForItsCaller() throws {
        try Self.requireRootAndSetpriv()
        let fixture = try MountFixture(allowOther: true)
        defer { fixture.close() }
        let dir = try fixture.create()
        for file in ["reset", "remove"] {
            let (status, output) = try Self.asNobody("echo 1 >&3", rootRedirects: "3>\(dir)/\(file)")
            #expect(status != 0 && output.contains("Permission denied"), "\(file): \(output)")
        }
        let create = "\(fixture.path)/mdev_supported_types/\(fixture.typeName)/create"
        let (status, output) = try Self.asNobody("echo \(UUID().uuidString.lowercased()) >&3", rootRedirects: "3>\(create)")
        #expect(status != 0 && output.contains("Permission denied"), "create: \(output)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(fixture.path)/devices").count == 1)
        // Root, the owner, still can.
        try FileTransport.writeText("1\n", to: "\(dir)/remove")
        #expect(!FileManager.default.fileExists(atPath: dir))
    }
}

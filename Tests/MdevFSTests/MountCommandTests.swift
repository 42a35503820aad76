import Conformance
import Foundation
import FUSEKit
import Glibc
import SystemPackage
import Testing
import TestSupport

/// `mdevsim mount` / `unmount` as a user runs them: the built executable, a daemon, a stale mount.
@Suite(.serialized) struct MountCommandTests {
    /// The `mdevsim` executable built beside this test bundle.
    static var executable: String { BuiltProducts.directory.appendingPathComponent("mdevsim").path }

    /// Runs mdevsim with `arguments`; returns its status and combined output.
    @discardableResult
    static func mdevsim(_ arguments: [String]) throws -> (Int32, String) {
        try runTool(executable, arguments)
    }

    /// The daemon's pid as `mdevsim mount` reports it ("... (daemon pid N) ..."). Not by scanning
    /// /proc/*/cmdline: reading the cmdline of a process stuck on a FUSE fault (another test's
    /// stopped daemon) blocks forever.
    static func daemonPID(fromMountOutput output: String) -> pid_t? {
        guard let range = output.range(of: "(daemon pid ") else { return nil }
        return pid_t(output[range.upperBound...].prefix { $0.isNumber })
    }

    @Test func daemonMountsServesAndUnmounts() throws {
        let mountpoint = try RunMountpoint(prefix: "/tmp/mdevsim-cmd.")
        defer { mountpoint.remove() }
        let dir = mountpoint.path
        let (status, output) = try Self.mdevsim(["mount", dir])
        #expect(status == 0, "\(output)")
        #expect(output.contains("mounted at \(dir)"))
        let pid = Self.daemonPID(fromMountOutput: output)
        #expect(FileManager.default.fileExists(atPath: "\(dir)/mdev_supported_types/mdevsim-default/create"))
        // A second mount on the same place is refused with the command that fixes it.
        let (busy, message) = try Self.mdevsim(["mount", dir])
        #expect(busy != 0)
        #expect(message.contains("mdevsim unmount \(dir)"))
        #expect(pid != nil)
        let (down, text) = try Self.mdevsim(["unmount", dir])
        #expect(down == 0, "\(text)")
        #expect(MountHelpers.status(of: dir) == .notMounted)
        if let pid { #expect(kill(pid, 0) != 0, "the daemon exited") }
    }

    @Test func staleMountOfAKilledDaemonIsClearedByUnmount() throws {
        let mountpoint = try RunMountpoint(prefix: "/tmp/mdevsim-cmd.")
        defer { mountpoint.remove() }
        let dir = mountpoint.path
        let (mounted, output) = try Self.mdevsim(["mount", dir])
        #expect(mounted == 0, "\(output)")
        let pid = try #require(Self.daemonPID(fromMountOutput: output))
        kill(pid, SIGKILL)
        #expect(waitUntil(timeout: .seconds(30)) { MountHelpers.status(of: dir) == .stale })
        let (refused, message) = try Self.mdevsim(["mount", dir])
        #expect(refused != 0)
        #expect(message.contains("stale") && message.contains("mdevsim unmount \(dir)"))
        let (status, cleared) = try Self.mdevsim(["unmount", dir])
        #expect(status == 0, "\(cleared)")
        #expect(cleared.contains("cleared the stale mount"))
        #expect(MountHelpers.status(of: dir) == .notMounted)
    }

    @Test func clearMessagesForBadMountpoints() throws {
        let (status, output) = try Self.mdevsim(["mount", "/nonexistent/mdevsim-mp"])
        #expect(status != 0)
        #expect(output.contains("does not exist") && output.contains("mkdir -p"))
        let (notMounted, text) = try Self.mdevsim(["unmount", "/tmp"])
        #expect(notMounted != 0)
        #expect(text.contains("nothing is mounted"))
    }
}

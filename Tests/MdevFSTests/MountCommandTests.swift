import Conformance
import Foundation
import FUSEKit
import Glibc
import SystemPackage
import Testing

/// `mdevsim mount` / `unmount` as a user runs them: the built executable, a daemon, a stale mount.
@Suite(.serialized) struct MountCommandTests {
    /// The `mdevsim` executable built beside this test bundle.
    static var executable: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("mdevsim").path
    }

    /// Runs mdevsim with `arguments`; returns its status and combined output.
    @discardableResult
    static func mdevsim(_ arguments: [String]) throws -> (Int32, String) {
        try runTool(executable, arguments)
    }

    static func daemonPID(_ mountpoint: String) -> pid_t? {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for pid in pids.compactMap({ pid_t($0) }) {
            guard let cmdline = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8) else { continue }
            let args = cmdline.split(separator: "\0").map(String.init)
            if args.contains("--ready-fd"), args.contains(mountpoint) { return pid }
        }
        return nil
    }

    @Test func daemonMountsServesAndUnmounts() throws {
        let mountpoint = try RunMountpoint(prefix: "/tmp/mdevsim-cmd.")
        defer { mountpoint.remove() }
        let dir = mountpoint.path
        let (status, output) = try Self.mdevsim(["mount", dir])
        #expect(status == 0, "\(output)")
        #expect(output.contains("mounted at \(dir)"))
        #expect(FileManager.default.fileExists(atPath: "\(dir)/mdev_supported_types/mdevsim-default/create"))
        // A second mount on the same place is refused with the command that fixes it.
        let (busy, message) = try Self.mdevsim(["mount", dir])
        #expect(busy != 0)
        #expect(message.contains("mdevsim unmount \(dir)"))
        let pid = Self.daemonPID(dir)
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
        #expect(try Self.mdevsim(["mount", dir]).0 == 0)
        let pid = try #require(Self.daemonPID(dir))
        kill(pid, SIGKILL)
        #expect(waitFor { MountHelpers.status(of: dir) == .stale })
        let (refused, message) = try Self.mdevsim(["mount", dir])
        #expect(refused != 0)
        #expect(message.contains("stale") && message.contains("mdevsim unmount \(dir)"))
        let (status, output) = try Self.mdevsim(["unmount", dir])
        #expect(status == 0, "\(output)")
        #expect(output.contains("cleared the stale mount"))
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

    func waitFor(_ condition: () -> Bool) -> Bool {
        for _ in 0..<200 {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }
}

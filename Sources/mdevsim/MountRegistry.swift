import Foundation
import Glibc

/// Where a running `mdevsim mount` daemon leaves its pid, so `mdevsim unmount` can wait for it
/// to finish: `/tmp/mdevsim-<uid>/<mountpoint with / as %>.pid`.
enum MountRegistry {
    static var directory: String { "/tmp/mdevsim-\(getuid())" }

    /// Must be computed before the mount exists or after it is served: resolving the path
    /// touches the mountpoint, which a daemon that is not serving yet would never answer.
    static func pidFile(for mountpoint: String) -> String {
        var absolute = mountpoint
        if let resolved = realpath(mountpoint, nil) {
            absolute = String(cString: resolved)
            free(resolved)
        }
        return "\(directory)/\(absolute.replacingOccurrences(of: "/", with: "%")).pid"
    }

    static func record(pid: pid_t, pidFile: String) {
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try? "\(pid)\n".write(toFile: pidFile, atomically: true, encoding: .utf8)
    }

    static func pid(inFile pidFile: String) -> pid_t? {
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
              let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0
        else { return nil }
        // Only a live mdevsim process counts (the pid may have been reused). Its comm, not its
        // cmdline: reading a cmdline takes the process's mmap lock, and blocks for good on a
        // process stuck in a page fault of a dead FUSE mount.
        guard kill(pid, 0) == 0 || errno == EPERM,
              let comm = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8),
              comm.contains("mdevsim")
        else { return nil }
        return pid
    }

    static func forget(pidFile: String) {
        try? FileManager.default.removeItem(atPath: pidFile)
    }
}

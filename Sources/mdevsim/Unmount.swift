import ArgumentParser
import Foundation
import FUSEKit
import Glibc

/// `mdevsim unmount`: stop a mount, or clear a stale one left by a killed daemon.
struct Unmount: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Unmount an mdevsim mount, or clear a stale one left by a killed daemon.",
        discussion: """
            Like fusermount3 -u: refused while a process holds a file of the mount (an open file, \
            a mapping, its working directory), naming each holder by pid and command as fuser -m \
            does; --lazy (-z) detaches it anyway, and the daemon exits once the last holder lets go. \
            Waits (up to --timeout seconds) for the daemon serving the mount to exit. Also clears \
            a stale mount of a killed daemon.

            \(ExitStatus.help([.success, .badInput, .environment, .usage]))
            """
    )

    @Argument(help: ArgumentHelp("The mountpoint.", valueName: "mountpoint"))
    var mountpoint: String

    @Option(name: .long, help: "Seconds to wait for the daemon to exit.")
    var timeout: Double = 10

    @Flag(name: [.customShort("z"), .customLong("lazy")], help: "Detach the mount even while it is busy (fusermount3 -u -z).")
    var lazy = false

    @OptionGroup var logging: LoggingOptions

    func run() throws {
        logging.bootstrap()
        let status = MountHelpers.status(of: mountpoint)
        // realpath stats the mountpoint: only on a live (served) or absent mount.
        let pidFile = MountRegistry.pidFile(for: status == .stale ? URL(fileURLWithPath: mountpoint).standardizedFileURL.path : mountpoint)
        let pid = MountRegistry.pid(inFile: pidFile)
        switch status {
        case .stale:
            try detach()
            MountRegistry.forget(pidFile: pidFile)
            print("mdevsim: cleared the stale mount at \(mountpoint)")
            return
        case .mounted:
            break
        case .notMounted, .missing, .notADirectory:
            throw CommandError("nothing is mounted at \(mountpoint)", status: .badInput)
        }
        if !lazy {
            try unmountUnlessBusy()
            return try finish(pid: pid, pidFile: pidFile, state: "unmounted")
        }
        let holders = MountHelpers.holders(of: mountpoint)
        if !holders.isEmpty {
            // As fusermount3 -u -z: detach now; the holders keep what they hold, and the daemon
            // serves them until the last lets go (then the kernel ends the connection).
            try detach()
            print("mdevsim: detached \(mountpoint); the daemon\(pid.map { " (pid \($0))" } ?? "") exits once the last holder lets go: \(holders.map(\.description).joined(separator: "; "))")
            return
        }
        if let pid {
            // The daemon unmounts itself (lazily) on SIGTERM (libfuse's handler ends its loop).
            kill(pid, SIGTERM)
            if waitGone(pid: pid) {
                print("mdevsim: unmounted \(mountpoint)")
                return
            }
        }
        try detach()
        try finish(pid: pid, pidFile: pidFile, state: "detached")
    }

    /// Waits for the daemon to exit once its mount is gone, then forgets its pid file.
    private func finish(pid: pid_t?, pidFile: String, state: String) throws {
        if let pid, !waitGone(pid: pid) {
            throw CommandError("\(mountpoint) is \(state) but daemon \(pid) has not exited yet", cause: "files still open?", status: .environment)
        }
        MountRegistry.forget(pidFile: pidFile)
        print("mdevsim: unmounted \(mountpoint)")
    }

    /// As fusermount3 -u: the kernel's non-lazy unmount, refused while anything holds the
    /// mount; the holders are named first (from /proc), so the message says who.
    private func unmountUnlessBusy() throws {
        let holders = MountHelpers.holders(of: mountpoint)
        if !holders.isEmpty {
            throw CommandError("cannot unmount \(mountpoint)", cause: "busy: held by \(holders.map(\.description).joined(separator: "; "))",
                               fix: "stop them, or detach it anyway: mdevsim unmount --lazy \(mountpoint)", status: .environment)
        }
        do {
            try MountHelpers.unmount(mountpoint, lazy: false)
        } catch {
            if error.errno == .resourceBusy {
                throw CommandError("cannot unmount \(mountpoint)", cause: "busy (the holder is not visible here: another user's process, or another mount namespace)",
                                   fix: "detach it anyway: mdevsim unmount --lazy \(mountpoint)", status: .environment)
            }
            throw CommandError("cannot unmount \(mountpoint)", cause: error.message, status: .environment)
        }
    }

    private func detach() throws {
        do {
            try MountHelpers.unmount(mountpoint)
        } catch {
            throw CommandError("cannot unmount \(mountpoint)", cause: error.message, status: .environment)
        }
    }

    /// True once the mount is gone and `pid` has exited.
    private func waitGone(pid: pid_t) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let mounted: Bool = if case .mounted = MountHelpers.status(of: mountpoint) { true } else { false }
            if !mounted, kill(pid, 0) != 0, errno == ESRCH { return true }
            usleep(20_000)
        }
        return false
    }
}

import ArgumentParser
import Foundation
import FUSEKit
import Glibc

/// `mdevsim unmount`: stop a mount, or clear a stale one left by a killed daemon.
struct Unmount: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Unmount an mdevsim mount, or clear a stale one left by a killed daemon.",
        discussion: """
            Waits (up to --timeout seconds) for the daemon serving the mount to exit. Also clears \
            a stale mount of a killed daemon.

            \(ExitStatus.help([.success, .badInput, .environment, .usage]))
            """
    )

    @Argument(help: ArgumentHelp("The mountpoint.", valueName: "mountpoint"))
    var mountpoint: String

    @Option(name: .long, help: "Seconds to wait for the daemon to exit.")
    var timeout: Double = 10

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
        if let pid {
            // The daemon unmounts itself on SIGTERM (libfuse's handler ends its loop).
            kill(pid, SIGTERM)
            if waitGone(pid: pid) {
                print("mdevsim: unmounted \(mountpoint)")
                return
            }
        }
        try detach()
        if let pid, !waitGone(pid: pid) {
            throw CommandError("\(mountpoint) is detached but daemon \(pid) has not exited yet", cause: "files still open?", status: .environment)
        }
        MountRegistry.forget(pidFile: pidFile)
        print("mdevsim: unmounted \(mountpoint)")
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

import CFuse3
import Glibc

/// Detaching a mounted filesystem's process the way every libfuse filesystem does:
/// `fuse_daemonize` forks, the parent exits 0 once the child has its own session with
/// stdin/stdout/stderr on /dev/null and `/` as its working directory.
public enum FUSEDaemon {
    /// Detaches this process (call once mounted, before serving: like libfuse's examples, so a
    /// mount error still reaches the caller's terminal). Returns in the child only; the parent
    /// exits inside libfuse. `keepOutput` keeps a duplicate of stdout open in the child (the
    /// returned descriptor) so it can still tell its caller how the start went; close it when done.
    ///
    /// libfuse forks, and a forked process keeps only the calling thread: call it while the
    /// process has no other thread (FUSEKit starts its threads in `FUSESession.run`).
    ///
    /// `inherited` (from `inheritedDescriptors()`, taken before anything was opened) are closed
    /// in the child: a daemon must hold nothing of its caller's but what it was asked to. A
    /// caller's pipe or socket held by the daemon keeps that caller waiting for as long as the
    /// mount lives (Foundation's `Process` waits for such a socket to close to see its child exit).
    public static func daemonize(keepOutput: Bool, closing inherited: [Int32] = []) throws(FUSEError) -> Int32? {
        let saved = keepOutput ? fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3) : -1
        guard fuse_daemonize(0) == 0 else {
            if saved >= 0 { close(saved) }
            throw FUSEError(.sessionCreationFailed, message: "fuse_daemonize failed (its message is above)")
        }
        for fd in inherited where fd != saved { close(fd) }
        return saved >= 0 ? saved : nil
    }

    /// The descriptors above stderr this process was started with: every one that is not an
    /// anonymous inode (the runtime's own epoll, eventfd and timerfd are). Call it first thing.
    /// They are made close-on-exec, so the helpers libfuse runs (fusermount3) do not get them.
    public static func inheritedDescriptors() -> [Int32] {
        MountHelpers.directoryEntries("/proc/self/fd").compactMap { Int32($0) }.filter { fd in
            // The listing's own descriptor is closed by now: its link no longer reads.
            guard fd > 2, let target = MountHelpers.link("/proc/self/fd/\(fd)"), !target.hasPrefix("anon_inode:") else { return false }
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
            return true
        }
    }

    /// Threads of this process (from /proc/self/task), to check `daemonize`'s precondition.
    public static var threadCount: Int { MountHelpers.directoryEntries("/proc/self/task").count }
}

import CFuse3
import Glibc

/// Detaching a mounted filesystem's process the way every libfuse filesystem does:
/// `fuse_daemonize` forks, the parent exits 0 once the child has its own session with
/// stdin/stdout/stderr on /dev/null and `/` as its working directory.
public enum FUSEDaemon {
    /// Detaches this process (call once mounted, before serving: like libfuse's examples, so a
    /// mount error still reaches the caller's terminal). Returns in the child only; the parent
    /// exits 0 inside libfuse, and only after `inChild` has run in the child (with the child's
    /// pid, and stdout still the caller's): what the caller may rely on once the command
    /// returns (a pid file, a line naming the daemon) is done there.
    ///
    /// libfuse forks, and a forked process keeps only the calling thread: call it while the
    /// process has no other thread (FUSEKit starts its threads in `FUSESession.run`).
    ///
    /// `inherited` (from `inheritedDescriptors()`, taken before anything was opened) are closed
    /// in the child: a daemon must hold nothing of its caller's but what it was asked to. A
    /// caller's pipe or socket held by the daemon keeps that caller waiting for as long as the
    /// mount lives (Foundation's `Process` waits for such a socket to close to see its child exit).
    public static func daemonize(closing inherited: [Int32] = [], inChild: @escaping (pid_t) -> Void) throws(FUSEError) {
        // fuse_daemonize forks, then the child redirects its stdio and releases the waiting
        // parent: a fork handler is the one place in the child before that.
        ForkHook.child = inChild
        defer { ForkHook.child = nil }  // later forks (libfuse's fusermount3 at unmount) run nothing
        if !ForkHook.registered {
            ForkHook.registered = true
            pthread_atfork(nil, nil) { ForkHook.child?(getpid()) }
        }
        guard fuse_daemonize(0) == 0 else {
            throw FUSEError(.sessionCreationFailed, message: "fuse_daemonize failed (its message is above)")
        }
        for fd in inherited { close(fd) }
    }

    /// What the fork handler runs. Set and cleared around the one fork of `daemonize`, on the
    /// only thread the process has then.
    private enum ForkHook {
        nonisolated(unsafe) static var child: ((pid_t) -> Void)?
        nonisolated(unsafe) static var registered = false
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

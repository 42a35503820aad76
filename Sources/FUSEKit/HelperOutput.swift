import Glibc

/// The stdout and stderr libfuse's mount helper gets. With `auto_unmount` libfuse runs
/// fusermount3, which stays behind as a watchdog for the life of the mount, holding whatever
/// stdout/stderr it was started with: a caller's pipe (`$(mdevsim mount ...)`, a test harness)
/// would then never see end-of-file. So the helper writes into a pipe of ours instead, and
/// what it wrote while mounting (its error messages) is passed on to our own stderr.
enum HelperOutput {
    /// Runs `body` with fds 1 and 2 on a pipe; then restores them and copies what arrived to stderr.
    static func capture<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        var fds: [Int32] = [0, 0]
        let saved = (fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3), fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3))
        guard saved.0 >= 0, saved.1 >= 0, pipe(&fds) == 0 else {
            if saved.0 >= 0 { close(saved.0) }
            if saved.1 >= 0 { close(saved.1) }
            return try body()
        }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
        dup2(fds[1], STDOUT_FILENO)  // dup2 clears close-on-exec on 1 and 2: the helper gets them
        dup2(fds[1], STDERR_FILENO)
        close(fds[1])
        defer {
            dup2(saved.0, STDOUT_FILENO)
            dup2(saved.1, STDERR_FILENO)
            close(saved.0)
            close(saved.1)
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
                if n <= 0 { break }
                _ = chunk.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, n) }
            }
            close(fds[0])  // the watchdog's later writes fail (EPIPE) instead of blocking anyone
        }
        return try body()
    }
}

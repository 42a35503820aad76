import Foundation
import Glibc

/// Starts `mdevsim mount` as a detached daemon and returns once its mount is ready, the way
/// sshfs does: the child (this same executable, `--ready-fd N`) reports `ok PID` or
/// `error MESSAGE` on a pipe after its mount attempt.
enum DaemonLauncher {
    static func launch(arguments: [String], mountpoint: String) throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            Mount.fail("cannot start the daemon: pipe: \(String(cString: strerror(errno)))")
            throw ExitStatus.environment.code
        }
        let (readEnd, writeEnd) = (fds[0], fds[1])
        // Only the write end goes to the child; the read end stays here.
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
        let args = arguments.map { $0 == "READY_FD" ? String(writeEnd) : $0 }
        // The daemon must hold nothing of ours but the pipe: an inherited descriptor (a caller's
        // pipe for our output, say) would keep that caller waiting for as long as the mount lives.
        closeOnExecAll(except: writeEnd)
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for target in [STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO] {
            posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == STDIN_FILENO ? O_RDONLY : O_WRONLY, 0)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Its own session: the daemon outlives this terminal and its signals.
        // POSIX_SPAWN_SETSID (glibc, 0x80) is behind _GNU_SOURCE and not imported.
        posix_spawnattr_setflags(&attributes, Int16(0x80))

        var pid: pid_t = 0
        let argv = ([executable] + args).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        close(writeEnd)
        guard rc == 0 else {
            close(readEnd)
            Mount.fail("cannot start the daemon (\(executable)): \(String(cString: strerror(rc)))")
            throw ExitStatus.environment.code
        }
        let answer = readLine(fd: readEnd, timeout: 30)
        close(readEnd)
        if let answer, answer.hasPrefix("ok ") {
            print("mdevsim: mounted at \(mountpoint) (daemon pid \(answer.dropFirst(3))); stop it with: mdevsim unmount \(mountpoint)")
            return
        }
        if let answer, answer.hasPrefix("error ") {
            Mount.fail(String(answer.dropFirst(6)))
        } else {
            var status: Int32 = 0
            let exited = waitpid(pid, &status, WNOHANG) == pid
            Mount.fail(exited
                ? "the mount daemon exited before the mount was ready (status \(status)); run with --foreground to see why"
                : "the mount daemon did not report ready within 30 s; run with --foreground to see why")
        }
        throw ExitStatus.environment.code
    }

    private static func closeOnExecAll(except keep: Int32) {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return }
        for fd in entries.compactMap({ Int32($0) }) where fd > 2 && fd != keep {
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
    }

    /// Writes one line to the parent and closes the pipe.
    static func report(fd: Int32, _ line: String) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    private static func readLine(fd: Int32, timeout: Int32) -> String? {
        var data = [UInt8]()
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let deadline = Date().addingTimeInterval(TimeInterval(timeout))
        while Date() < deadline {
            let r = poll(&pfd, 1, 250)
            if r < 0 && errno != EINTR { return nil }
            if r <= 0 { continue }
            var byte: UInt8 = 0
            let n = read(fd, &byte, 1)
            if n <= 0 { break }
            if byte == UInt8(ascii: "\n") { return String(decoding: data, as: UTF8.self) }
            data.append(byte)
        }
        return data.isEmpty ? nil : String(decoding: data, as: UTF8.self)
    }
}


import Glibc

/// The daemon's last words: a fatal signal (a crash, an abort, a Swift runtime trap) is written
/// to the `--log` file with its reason before the process dies, and the runtime's own message
/// (`Fatal error: ...`, printed on stderr) lands in the same file. Without it a detached daemon
/// (stderr on /dev/null) vanishes leaving nothing but `ENOTCONN` behind.
enum FatalSignalLog {
    /// The log's descriptor, read by the handler (which may use async-signal-safe calls only).
    nonisolated(unsafe) private static var fd: Int32 = -1
    /// The actions installed before ours (the Swift runtime's backtracer), by signal number:
    /// ours writes its line and then calls the previous one, so the backtrace still follows.
    nonisolated(unsafe) private static var previous = Array<sigaction>(repeating: sigaction(), count: 65)

    static let signals: [(Int32, StaticString)] = [
        (SIGSEGV, "SIGSEGV (invalid memory access)"), (SIGBUS, "SIGBUS (bus error)"),
        (SIGILL, "SIGILL (illegal instruction: a Swift runtime trap, e.g. a failed precondition or allocation)"),
        (SIGTRAP, "SIGTRAP (a Swift runtime trap)"), (SIGABRT, "SIGABRT (abort: e.g. an allocation failure)"),
        (SIGFPE, "SIGFPE (arithmetic fault)"),
    ]

    /// Logs fatal signals to `path` (appended); also sends stderr there when `redirectStderr`.
    static func install(path: String, redirectStderr: Bool) {
        let opened = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard opened >= 0 else { return }
        fd = opened
        if redirectStderr { _ = dup2(opened, STDERR_FILENO) }
        for (number, _) in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_sigaction = { number, info, context in FatalSignalLog.report(number, info, context) }
            action.sa_flags = SA_SIGINFO
            sigemptyset(&action.sa_mask)
            _ = sigaction(number, &action, &previous[Int(number)])
        }
    }

    /// In the handler: one line, the previous handler (the runtime's backtrace) for a fault of
    /// this process, then death by the default action. A signal another process sent (`kill`,
    /// si_code <= 0) is no fault: nothing to backtrace, and the runtime's backtracer, started
    /// for it and returned from, outlived the daemon blocked on its socket (one such process
    /// was left behind by every run of the fatal-signal test). No allocation (the heap may be
    /// what failed): the line is built in a stack buffer.
    private static func report(_ number: Int32, _ info: UnsafeMutablePointer<siginfo_t>?, _ context: UnsafeMutableRawPointer?) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 512) { buffer in
            var used = 0
            func add(_ text: StaticString) {
                text.withUTF8Buffer { bytes in
                    for byte in bytes where used < buffer.count { buffer[used] = byte; used += 1 }
                }
            }
            func addNumber(_ value: UInt64, radix: UInt64 = 10) {
                var divisor: UInt64 = 1
                while value / divisor >= radix { divisor *= radix }
                while divisor > 0, used < buffer.count {
                    let d = UInt8(value / divisor % radix)
                    buffer[used] = d < 10 ? d + 48 : d + 87
                    used += 1
                    divisor /= radix
                }
            }
            add("mdevsim daemon (pid ")
            addNumber(UInt64(getpid()))
            add(") killed by fatal signal ")
            addNumber(UInt64(number))
            add(" ")
            for (candidate, name) in signals where candidate == number { add(name) }
            if let info {
                add(", si_code ")
                addNumber(UInt64(UInt32(bitPattern: info.pointee.si_code)))
                if number == SIGSEGV || number == SIGBUS {
                    add(", address 0x")
                    addNumber(info.pointee._sifields._sigfault.si_addr.map { UInt64(UInt(bitPattern: $0)) } ?? 0, radix: 16)
                }
            }
            add("\n")
            _ = write(fd, buffer.baseAddress, used)
        }
        let sentByAnotherProcess = info.map { $0.pointee.si_code <= 0 } ?? false
        if number > 0, number < 65, !sentByAnotherProcess {
            let prior = previous[Int(number)]
            if prior.sa_flags & SA_SIGINFO != 0, let handler = prior.__sigaction_handler.sa_sigaction {
                handler(number, info, context)
            }
        }
        // Blocked while this handler runs: delivered, with the default action, once it returns.
        var fallback = sigaction()
        sigemptyset(&fallback.sa_mask)
        _ = sigaction(number, &fallback, nil)
        raise(number)
    }
}

import CFuse3
import Glibc
import Logging
import Synchronization
import SystemPackage

/// One FUSE mount served by a `FileSystem`, following libfuse's `hello_ll.c` lifecycle:
/// new → mount → (signal handlers) → multi-threaded loop → unmount → destroy.
///
/// ```swift
/// let session = try FUSESession(filesystem: fs, mountpoint: "/mnt/x", options: options)
/// try session.mount()          // the mount exists when this returns
/// try session.run()            // blocks until exit(), a signal, or an external unmount
/// ```
/// `run` returns with the filesystem unmounted and every held reply answered. `exit()` and
/// `unmount()` may be called from any thread. The session is destroyed in `deinit`.
public final class FUSESession: Sendable {
    /// How `run` ended.
    public enum Outcome: Sendable, Hashable {
        /// `exit()` or an unmount ended the loop.
        case exited
        /// libfuse's handler caught this signal (SIGINT/SIGTERM/SIGHUP).
        case signal(Int32)
    }

    private enum Phase: Sendable { case created, mounted, running, finished }
    private struct Lifecycle {
        var phase: Phase = .created
        var mounted = false
        var loopThread: LoopThread?
    }
    private struct LoopThread: @unchecked Sendable { let raw: pthread_t }

    public let mountpoint: String
    public let options: FUSEOptions
    /// Cache notifications for this session (also handed to `FileSystem.initialize`).
    public let notifier: Notifier
    let context: SessionContext
    private let handle: SessionHandle
    private let lifecycle = Mutex(Lifecycle())

    /// Creates the libfuse session (`fuse_session_new`); nothing is mounted yet.
    public init(filesystem: any FileSystem, mountpoint: String, options: FUSEOptions = FUSEOptions(),
                logger: Logger = Logger(label: "mdevsim.fusekit")) throws(FUSEError) {
        self.mountpoint = mountpoint
        self.options = options
        let context = SessionContext(filesystem: filesystem, options: options, logger: logger)
        self.context = context
        self.notifier = Notifier(context: context)

        var args = cfuse3_args_empty()
        defer { fuse_opt_free_args(&args) }
        for a in options.arguments where fuse_opt_add_arg(&args, a) != 0 {
            throw FUSEError(.sessionCreationFailed, errno: .noMemory, message: "could not build FUSE arguments")
        }
        var ops = makeLowLevelOperations()
        // The session holds one retain of the context as userdata; released in deinit.
        let userdata = Unmanaged.passRetained(context).toOpaque()
        guard let se = fuse_session_new(&args, &ops, MemoryLayout<fuse_lowlevel_ops>.size, userdata) else {
            Unmanaged<SessionContext>.fromOpaque(userdata).release()
            throw FUSEError(.invalidOption, message:
                "libfuse rejected the session options \(options.arguments.dropFirst().joined(separator: " ")) "
                + "(see libfuse's message on stderr)")
        }
        self.handle = SessionHandle(raw: se)
        context.attach(se)
    }

    deinit {
        teardown()
        fuse_session_destroy(handle.raw)
        Unmanaged.passUnretained(context).release()
    }

    // MARK: lifecycle

    /// Checks `/dev/fuse` and the mountpoint, then mounts (`fuse_session_mount`). When this
    /// returns the mount exists; requests wait in the kernel until `run` serves them.
    public func mount() throws(FUSEError) {
        try lifecycle.withLock { (l: inout Lifecycle) throws(FUSEError) in
            guard l.phase == .created else {
                throw FUSEError(.invalidState, path: mountpoint, message: "FUSE session already mounted once")
            }
            try MountHelpers.checkFUSEDevice()
            try MountHelpers.checkMountpoint(mountpoint)
            let se = handle.raw, path = mountpoint
            // errno as fuse_session_mount left it (restoring the helper's output changes it).
            let mount = { () -> (Int32, Int32) in
                errno = 0
                let rc = fuse_session_mount(se, path)
                return (rc, errno)
            }
            // Only auto_unmount leaves a helper behind; redirecting stdio is process-wide.
            let (rc, error) = options.autoUnmount ? HelperOutput.capture(mount) : mount()
            guard rc == 0 else {
                let e = error == 0 ? Errno.ioError : Errno(rawValue: error)
                throw FUSEError(.mountFailed, errno: e, path: mountpoint, message:
                    "mounting FUSE on \(mountpoint) failed (are you root, or is fusermount3 installed? "
                    + "apt-get install -y fuse3)")
            }
            l.mounted = true
            l.phase = .mounted
            if options.allowDirectIOMmap {
                let rc = context.negotiation.install(on: handle.raw)
                if rc != 0 {
                    context.logger.warning("FUSE custom io not installed; DIRECT_IO_ALLOW_MMAP will not be negotiated",
                                           metadata: ["errno": "\(Errno(rawValue: -rc))"])
                }
            }
        }
    }

    /// Serves requests with libfuse's multi-threaded loop until `exit()`, a handled signal, or
    /// an unmount. Then fails still-held replies with EIO and unmounts. One call per session.
    @discardableResult
    public func run() throws(FUSEError) -> Outcome {
        try lifecycle.withLock { (l: inout Lifecycle) throws(FUSEError) in
            guard l.phase == .mounted else {
                throw FUSEError(.invalidState, path: mountpoint,
                                message: "FUSE session must be mounted (and not yet run) before run()")
            }
            l.phase = .running
        }
        let se = handle.raw
        let wakeSignal = options.wakeSignal
        LoopWaker.installHandler(for: wakeSignal)
        // The calling thread may block signals (libdispatch and Swift concurrency threads block
        // nearly all): unblock the wake signal (and the handled ones) for the loop's duration.
        var unblock = sigset_t()
        var savedMask = sigset_t()
        sigemptyset(&unblock)
        sigaddset(&unblock, wakeSignal)
        if options.handleSignals {
            for sig in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&unblock, sig) }
        }
        pthread_sigmask(SIG_UNBLOCK, &unblock, &savedMask)
        defer { pthread_sigmask(SIG_SETMASK, &savedMask, nil) }
        lifecycle.withLock { $0.loopThread = LoopThread(raw: pthread_self()) }
        let signalsInstalled = options.handleSignals && fuse_set_signal_handlers(se) == 0
        if options.handleSignals && !signalsInstalled {
            context.logger.warning("FUSE signal handlers not installed (another session owns them?)")
        }
        // libfuse's loop thread sleeps in sem_wait until a worker finishes; setting the exit
        // flag (exit(), or libfuse's signal handler on whatever thread got the signal) does
        // not wake it. The waker sees the flag and interrupts that sem_wait with `wakeSignal`,
        // repeatedly, so a signal landing just before sem_wait is not lost.
        let waker = LoopWaker(session: SessionHandle(raw: se), loopThread: pthread_self(), signal: wakeSignal)
        let wakerThread = PosixThread { waker.run() }

        let rc = options.singleThreaded
            ? fuse_session_loop(se)
            : cfuse3_session_loop_mt(se, options.maxThreads, options.maxIdleThreads.map { Int32(clamping: $0) } ?? -1,
                                     options.cloneFD ? 1 : 0)

        waker.stop()
        wakerThread?.join()
        lifecycle.withLock { $0.loopThread = nil }
        if signalsInstalled { fuse_remove_signal_handlers(se) }
        teardown()
        lifecycle.withLock { $0.phase = .finished }
        if rc < 0 {
            throw FUSEError(.loopFailed, errno: Errno(rawValue: -rc), path: mountpoint,
                            message: "FUSE session loop on \(mountpoint) failed")
        }
        return rc > 0 ? .signal(rc) : .exited
    }

    /// Ends `run` from any thread: sets libfuse's exit flag and interrupts the loop thread's
    /// wait with `FUSEOptions.wakeSignal`. `run` then fails held replies and unmounts.
    public func exit() {
        fuse_session_exit(handle.raw)
        if let thread = lifecycle.withLock({ $0.loopThread }) {
            pthread_kill(thread.raw, options.wakeSignal)
        }
    }

    /// Unmounts (lazily, so open files do not block it). Idempotent. While `run` is active
    /// this ends the loop once the kernel drops the connection.
    public func unmount() {
        lifecycle.withLock { l in
            guard l.mounted else { return }
            fuse_session_unmount(handle.raw)
            l.mounted = false
        }
    }

    private func teardown() {
        context.failPending()
        context.refuseNotifications()
        unmount()
        context.waitForNotifications()
    }

    // MARK: state

    /// The mount exists (mounted and not yet unmounted by this session).
    public var isMounted: Bool { lifecycle.withLock { $0.mounted } }

    /// INIT has been answered (the connection parameters are known).
    public var isInitialized: Bool { context.connection != nil }

    /// The connection as agreed in INIT (nil before).
    public var connection: ConnectionInfo? { context.connection }

    /// The kernel offered FUSE_DIRECT_IO_ALLOW_MMAP and FUSEKit set it in the INIT reply.
    public var directIOMmapNegotiated: Bool { context.negotiation.negotiated }

    /// Waits until INIT has been answered, or the timeout passes. False on timeout.
    public func waitUntilInitialized(timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            if isInitialized && (!options.allowDirectIOMmap || context.negotiation.settled) { return true }
            usleep(1_000)
        }
        return isInitialized
    }

    /// Requests currently held by the filesystem (answered neither yet nor dropped).
    public var pendingRequestCount: Int { context.pendingCount }
}

/// Wakes libfuse's loop thread once the session's exit flag is set (see `run`).
private final class LoopWaker: Sendable {
    private struct Thread: @unchecked Sendable { let raw: pthread_t }
    private let session: SessionHandle
    private let loopThread: Thread
    private let signal: Int32
    private let stopped = Atomic<Bool>(false)

    init(session: SessionHandle, loopThread: pthread_t, signal: Int32) {
        self.session = session
        self.loopThread = Thread(raw: loopThread)
        self.signal = signal
    }

    func run() {
        while !stopped.load(ordering: .acquiring) {
            if fuse_session_exited(session.raw) != 0 { pthread_kill(loopThread.raw, signal) }
            usleep(10_000)
        }
    }

    func stop() { stopped.store(true, ordering: .releasing) }

    /// Makes sure `signal` interrupts rather than kills or is ignored: installs a no-op
    /// handler (without SA_RESTART; sem_wait is never restarted anyway) when the signal's
    /// disposition is the default or ignore. An existing handler is left alone.
    static func installHandler(for signal: Int32) {
        var old = sigaction()
        guard sigaction(signal, nil, &old) == 0 else { return }
        let current = unsafeBitCast(old.__sigaction_handler.sa_handler, to: Int.self)
        guard current == 0 /* SIG_DFL */ || current == 1 /* SIG_IGN */ else { return }
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        sigaction(signal, &action, nil)
    }
}

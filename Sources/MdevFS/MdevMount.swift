import DeviceSimulator
import Foundation
import FUSEKit
import Logging
import Scenarios
import Synchronization

/// A mounted `MdevFileSystem`: the FUSE session set up the way region files need it, with its
/// loop on a background thread (in-process use: tests, `mdevsim run`) or on the caller's thread
/// (the daemon).
public final class MdevMount: Sendable {
    public let filesystem: MdevFileSystem
    public let session: FUSESession
    public let mountpoint: String
    private let finished = Mutex<Result<FUSESession.Outcome, FUSEError>?>(nil)
    private let done = DispatchSemaphore(value: 0)

    /// The session options region files need: `FUSE_DIRECT_IO_ALLOW_MMAP` so direct-I/O files can
    /// be mapped; no readahead, so a page fault is one page-sized READ and never pulls in the
    /// trapped header page; 1 MiB writes and retrieves; the kernel checking modes.
    public static func options(allowOther: Bool, handleSignals: Bool) -> FUSEOptions {
        var o = FUSEOptions()
        o.fsname = "mdevsim"
        o.subtype = "mdevsim"
        o.allowOther = allowOther
        // Always: the kernel checks the tree's modes (`AccessControl.swift`); without it, with
        // allow_other, any user could write root's `create` or open root's regions.
        o.defaultPermissions = true
        o.allowDirectIOMmap = true
        o.maxReadahead = 0
        o.maxWrite = 1 << 20
        o.handleSignals = handleSignals
        return o
    }

    /// `options` with what a user's libfuse command line (`mdevsim mount -d -s -o ...`) asks for:
    /// its options go after mdevsim's, so `fsname=`, `subtype=` and the like override them.
    public static func options(_ base: FUSEOptions, commandLine line: FUSECommandLine) -> FUSEOptions {
        var o = base
        o.extraArguments = line.sessionArguments
        o.singleThreaded = line.singleThreaded
        o.cloneFD = line.cloneFD
        o.maxThreads = line.maxThreads
        o.maxIdleThreads = line.maxIdleThreads ?? o.maxIdleThreads
        return o
    }

    /// Mounts; requests are served once `start()` or `run()` is called. `observer` (a trace) is
    /// told every region access and device event. `commandLine` is the user's libfuse command line.
    public init(scenario: Scenario, mountpoint: String, strict: Bool = false, stagesAhead: Bool = true, allowOther: Bool = false,
                handleSignals: Bool = false, observer: (any AccessObserver)? = nil,
                commandLine: FUSECommandLine = FUSECommandLine(),
                logger: Logger = Logger(label: "mdevsim")) throws(FUSEError) {
        filesystem = MdevFileSystem(scenario: scenario, strict: strict, stagesAhead: stagesAhead, observer: observer, logger: logger)
        let options = Self.options(Self.options(allowOther: allowOther, handleSignals: handleSignals), commandLine: commandLine)
        session = try FUSESession(filesystem: filesystem, mountpoint: mountpoint, options: options, logger: logger)
        self.mountpoint = mountpoint
        try session.mount()
    }

    /// Serves requests on this thread until unmounted or signalled.
    public func run() throws(FUSEError) -> FUSESession.Outcome {
        try session.run()
    }

    /// Serves requests on a background thread; returns once the kernel's INIT is answered.
    public func start(timeout: Duration = .seconds(10)) throws(FUSEError) {
        let thread = Thread { [self] in
            let result = Result { () throws(FUSEError) in try session.run() }
            finished.withLock { $0 = result }
            done.signal()
        }
        thread.name = "mdevsim-fuse"
        thread.start()
        guard session.waitUntilInitialized(timeout: timeout) else {
            stop()
            throw FUSEError(.mountFailed, path: mountpoint, message: "the kernel did not initialize the mount at \(mountpoint) within \(timeout)")
        }
    }

    /// Unmounts and waits (bounded) for the loop to end.
    public func stop(timeout: TimeInterval = 10) {
        session.exit()
        session.unmount()
        _ = done.wait(timeout: .now() + timeout)
    }
}

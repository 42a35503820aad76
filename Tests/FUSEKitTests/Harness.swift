@testable import FUSEKit
import Glibc
import Synchronization
import SystemPackage
import Testing
import TestSupport

/// FUSEKit's thread, joinable with a timeout: a test must not hang on a thread that never ends.
final class TestThread: Sendable {
    private let thread: PosixThread
    private let done: DoneFlag
    private let joined = Atomic<Bool>(false)

    init(_ body: @escaping @Sendable () -> Void) throws {
        let done = DoneFlag()
        guard let thread = PosixThread({ body(); done.set() }) else { throw Errno.resourceTemporarilyUnavailable }
        self.thread = thread
        self.done = done
    }

    var isFinished: Bool { done.isSet }

    /// Joins if the thread finishes within `timeout`; false (not joined) otherwise.
    @discardableResult
    func join(timeout: Duration) -> Bool {
        guard waitUntil(timeout: timeout, interval: .milliseconds(1), { self.done.isSet }) else { return false }
        if !joined.exchange(true, ordering: .acquiringAndReleasing) { thread.join() }
        return true
    }
}

final class DoneFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func set() { flag.store(true, ordering: .releasing) }
    var isSet: Bool { flag.load(ordering: .acquiring) }
}

/// How `run` ended, written by the loop thread.
final class OutcomeBox: Sendable {
    private let value = Mutex<Result<FUSESession.Outcome, FUSEError>?>(nil)
    func set(_ r: Result<FUSESession.Outcome, FUSEError>) { value.withLock { $0 = r } }
    /// The outcome when `run` returned normally.
    var outcome: FUSESession.Outcome? { value.withLock { v in v.flatMap { try? $0.get() } } }
}

/// A mounted session whose loop runs on a background thread. Always `shutdown()` it (defer).
final class Mount: Sendable {
    let session: FUSESession
    let path: String
    let loop: TestThread
    let outcome = OutcomeBox()

    /// Tests run in parallel: none but the signal test may own libfuse's (global) handlers.
    static var defaultOptions: FUSEOptions {
        var o = FUSEOptions()
        o.handleSignals = false
        return o
    }

    /// Mount tests must run: a missing /dev/fuse fails the test with the fix in the message.
    init(_ fs: some FileSystem, options: FUSEOptions = Mount.defaultOptions) throws {
        try MountHelpers.checkFUSEDevice()
        path = try makeTemporaryDirectory("fusekit")
        do {
            session = try FUSESession(filesystem: fs, mountpoint: path, options: options)
            try session.mount()
        } catch {
            rmdir(path)
            throw error
        }
        let session = session
        let outcome = self.outcome
        loop = try TestThread {
            do throws(FUSEError) {
                let r = try session.run()
                outcome.set(.success(r))
            } catch {
                outcome.set(.failure(error))
            }
        }
        try #require(session.waitUntilInitialized(timeout: .seconds(5)) || touchRoot(),
                     "FUSE INIT did not complete within 5 s")
    }

    /// Makes the kernel talk to the daemon (INIT is answered before any other request).
    private func touchRoot() -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    func file(_ name: String) -> String { path + "/" + name }

    /// Ends the loop, joins it (bounded), and removes the mountpoint. Never leaves a mount.
    func shutdown() {
        session.exit()
        if !loop.join(timeout: .seconds(5)) {
            Issue.record("FUSE loop did not end within 5 s of exit(); unmounting by force")
            try? MountHelpers.unmount(path)
            if !loop.join(timeout: .seconds(5)) { Issue.record("FUSE loop thread leaked") }
        }
        if MountHelpers.isMountPoint(path) {
            Issue.record("mount still present after the loop ended")
            try? MountHelpers.unmount(path)
        }
        rmdir(path)
    }
}

/// Runs `body` with a mounted filesystem, always unmounting and joining afterwards.
func withMount<R>(_ fs: some FileSystem, options: FUSEOptions = Mount.defaultOptions,
                  _ body: (Mount) throws -> R) throws -> R {
    let mount = try Mount(fs, options: options)
    defer { mount.shutdown() }
    return try body(mount)
}

/// Opens a path, throwing Errno.
func openFile(_ path: String, _ flags: Int32) throws(Errno) -> Int32 {
    let fd = open(path, flags | O_CLOEXEC)
    guard fd >= 0 else { throw Errno(rawValue: errno) }
    return fd
}

import CFuse3
import Glibc
import Logging
import Synchronization

/// `struct fuse_session *`, only dereferenced by libfuse. Lifetime is guarded by SessionContext.
struct SessionHandle: @unchecked Sendable {
    let raw: OpaquePointer
}

/// Per-mount state reachable from every C callback through libfuse's userdata (never a global).
final class SessionContext: Sendable {
    let filesystem: any FileSystem
    let options: FUSEOptions
    let logger: Logger
    let negotiation: DirectIOMmapNegotiation

    struct State {
        var session: SessionHandle?
        /// Set once the loop ended: notifications refuse with ENOTCONN.
        var closed = false
        var notifiesInFlight = 0
        var pending: [ObjectIdentifier: RequestSlot] = [:]
        var connection: ConnectionInfo?
    }
    private let state = Mutex(State())

    init(filesystem: any FileSystem, options: FUSEOptions, logger: Logger) {
        self.filesystem = filesystem
        self.options = options
        self.logger = logger
        self.negotiation = DirectIOMmapNegotiation(enabled: options.allowDirectIOMmap)
    }

    static func from(_ userdata: UnsafeMutableRawPointer) -> SessionContext {
        Unmanaged<SessionContext>.fromOpaque(userdata).takeUnretainedValue()
    }

    static func from(_ req: fuse_req_t) -> SessionContext? {
        guard let userdata = fuse_req_userdata(req) else { return nil }
        return from(userdata)
    }

    func attach(_ se: OpaquePointer) { state.withLock { $0.session = SessionHandle(raw: se) } }

    // MARK: pending requests

    func register(_ slot: RequestSlot) { state.withLock { $0.pending[ObjectIdentifier(slot)] = slot } }
    func unregister(_ slot: RequestSlot) { _ = state.withLock { $0.pending.removeValue(forKey: ObjectIdentifier(slot)) } }
    var pendingCount: Int { state.withLock { $0.pending.count } }

    /// Answers every still-held request with EIO. Called once the loop has ended, before the
    /// session is destroyed (a later answer would otherwise use a freed request).
    func failPending() {
        let slots = state.withLock { Array($0.pending.values) }
        for slot in slots {
            if slot.answer("EIO (session ended)", { fuse_reply_err($0, EIO) }) {
                logger.warning("FUSE request still held when the session ended; answered EIO",
                               metadata: ["op": "\(slot.operation)", "unique": "\(slot.unique)"])
            }
        }
    }

    // MARK: notifications

    /// Runs `body` with the session unless it is closed; counts the call so `close` can wait
    /// for it. Not a lock around the call: a notification may block on other workers.
    func withLiveSession<R>(_ body: (OpaquePointer) -> R) -> R? {
        let se: SessionHandle? = state.withLock { st in
            guard !st.closed, let se = st.session else { return nil }
            st.notifiesInFlight += 1
            return se
        }
        guard let se else { return nil }
        defer { state.withLock { $0.notifiesInFlight -= 1 } }
        return body(se.raw)
    }

    /// Refuses further notifications (they throw ENOTCONN).
    func refuseNotifications() { state.withLock { $0.closed = true } }

    /// Waits (bounded) for notifications in flight. Call after unmounting, which unblocks any
    /// that wait on the kernel, and before destroying the session.
    func waitForNotifications() {
        var waited = 0
        while state.withLock({ $0.notifiesInFlight }) > 0 && waited < 5_000 {
            usleep(1_000)
            waited += 1
        }
        if waited >= 5_000 { logger.error("FUSE notifications still in flight after 5 s at session close") }
    }

    // MARK: connection

    var connection: ConnectionInfo? { state.withLock { $0.connection } }
    func setConnection(_ info: ConnectionInfo) { state.withLock { $0.connection = info } }
}

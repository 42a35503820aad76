import Glibc

/// A joinable POSIX thread running a Swift closure (FUSEKit does not depend on Foundation).
final class PosixThread: Sendable {
    private final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    private struct ID: @unchecked Sendable { let raw: pthread_t }
    private let id: ID

    /// Returns nil (and does not run `body`) when the thread cannot be created.
    init?(_ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { arg in
            guard let arg else { return nil }
            let box = Unmanaged<Box>.fromOpaque(arg).takeRetainedValue()
            box.body()
            return nil
        }, box)
        guard rc == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            return nil
        }
        id = ID(raw: tid)
    }

    func join() { pthread_join(id.raw, nil) }
}

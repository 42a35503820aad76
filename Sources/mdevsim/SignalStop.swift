import Dispatch
import Glibc

/// SIGINT and SIGTERM for the commands that mount (`run`, `migrate`): the handler runs on a
/// dispatch queue (not in signal context), so it may unmount, write reports and exit.
enum SignalStop {
    /// Installs `handler` for SIGINT and SIGTERM; keep the returned sources alive (and cancel
    /// them to restore nothing: the signals stay ignored, as the process is ending anyway).
    static func install(_ handler: @escaping @Sendable (Int32) -> Void) -> [DispatchSourceSignal] {
        [SIGINT, SIGTERM].map { sig in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { handler(sig) }
            source.resume()
            return source
        }
    }

    /// The status a signal ends a command with (128 + the signal: 130, 143).
    static func status(for sig: Int32) -> ExitStatus { sig == SIGINT ? .interrupted : .terminated }

    /// `SIGINT`, `SIGTERM`.
    static func name(_ sig: Int32) -> String { sig == SIGINT ? "SIGINT" : "SIGTERM" }

    /// Blocks the calling thread until the handler ends the process.
    static func waitForTheHandler() -> Never {
        while true { pause() }
    }
}

import Glibc

/// Polls `condition` every `interval` until it holds or `timeout` passes; returns whether it
/// held. One poller for every test target (mounts coming up, daemons going away, files showing).
/// The default is generous: CI runs every suite at once on 2 cores.
@discardableResult
public func waitUntil(timeout: Duration = .seconds(30), interval: Duration = .milliseconds(10), _ condition: () -> Bool) -> Bool {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    let micros = UInt32(clamping: interval.components.seconds * 1_000_000 + interval.components.attoseconds / 1_000_000_000_000)
    while !condition() {
        if ContinuousClock.now >= deadline { return condition() }
        usleep(micros)
    }
    return true
}

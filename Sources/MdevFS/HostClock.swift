import Glibc
import DeviceSimulator

/// The host's monotonic clock, for devices in wall-clock mode (`clock: wall`): the engine reads
/// no clock, its host gives it this one.
public struct HostClock: WallClock {
    private let origin = ContinuousClock.now

    public init() {}

    public func nanoseconds() -> UInt64 {
        let elapsed = ContinuousClock.now - origin
        return UInt64(max(0, elapsed.components.seconds)) &* 1_000_000_000
            &+ UInt64(max(0, elapsed.components.attoseconds / 1_000_000_000))
    }
}

/// Waits `nanoseconds` on the host: an injected stall the engine asked for (it does no I/O and
/// never sleeps itself). Called without any device lock held.
func hostSleep(nanoseconds: UInt64) {
    guard nanoseconds > 0 else { return }
    var request = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}

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

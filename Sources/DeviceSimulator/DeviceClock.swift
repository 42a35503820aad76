/// Elapsed wall time, for devices in wall-clock mode. The layer hosting the devices reads the
/// host's clock (MdevFS's `HostClock`); the engine reads none.
public protocol WallClock: Sendable {
    /// Nanoseconds since an origin fixed for this clock; never decreasing.
    func nanoseconds() -> UInt64
}

/// Device time, in nanoseconds since power-on.
///
/// In `virtual` mode it advances only when told (bytes moved at the link bandwidth, stalls), so a
/// run is a pure function of its configuration and access sequence. In `wall` mode it follows
/// the wall clock it was given, for soak runs; without one, wall time stands still.
struct DeviceClock: Sendable {
    let mode: ClockMode
    let bandwidth: UInt64
    private(set) var now: UInt64 = 0
    private let wall: (any WallClock)?
    private let wallStart: UInt64

    init(mode: ClockMode, bandwidth: UInt64, wall: (any WallClock)?) {
        self.mode = mode
        self.bandwidth = bandwidth
        self.wall = wall
        wallStart = mode == .wall ? wall?.nanoseconds() ?? 0 : 0
    }

    /// Nanoseconds it takes to move `bytes` over the link.
    func transferTime(bytes: UInt64) -> UInt64 {
        let (high, low) = bytes.multipliedFullWidth(by: 1_000_000_000)
        if high >= bandwidth { return UInt64.max / 2 }
        return bandwidth.dividingFullWidth((high, low)).quotient
    }

    /// Advances virtual time; returns the nanoseconds that passed. In wall mode the argument is
    /// ignored and real elapsed time is returned.
    mutating func advance(by nanoseconds: UInt64) -> UInt64 {
        switch mode {
        case .virtual:
            now &+= nanoseconds
            return nanoseconds
        case .wall:
            guard let wall else { return 0 }
            let total = wall.nanoseconds() &- wallStart
            let passed = total &- now
            now = total
            return passed
        }
    }
}

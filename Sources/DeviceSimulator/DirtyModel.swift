/// The running device's writes to its own memory: `rate` bytes per second, spread over pages by
/// a pattern, drawn from a seeded generator so the same time steps dirty the same pages.
struct DirtyModel: Sendable {
    let rate: UInt64
    let pattern: DirtyPattern
    let pageCount: UInt64
    let pageSize: UInt64
    private var rng: SplitMix64
    private let seed: UInt64
    private var owedBytes: Double = 0
    private var sweep: UInt64 = 0
    /// Pages rewritten so far (also each rewrite's version number).
    private(set) var writes: UInt64 = 0

    init(configuration: DeviceConfiguration, seed: UInt64) {
        rate = configuration.dirtyRate
        pattern = configuration.dirtyPattern
        pageCount = configuration.pageCount
        pageSize = configuration.pageSize
        self.seed = seed ^ 0x6469_7274_7921_2121
        rng = SplitMix64(seed: self.seed)
    }

    /// Back to the power-on sequence of pages.
    mutating func powerOn() {
        rng = SplitMix64(seed: seed)
        owedBytes = 0
        sweep = 0
        writes = 0
    }

    /// Lets `nanoseconds` of running time pass, calling `rewrite(page, version)` for each page
    /// the device writes in that time.
    mutating func run(nanoseconds: UInt64, rewrite: (UInt64, UInt64) -> Void) {
        guard rate > 0, pageCount > 0, nanoseconds > 0 else { return }
        owedBytes += Double(rate) * Double(nanoseconds) / 1e9
        // A long stall must not turn into an unbounded loop: at most one full memory's worth.
        var pages = min(UInt64(owedBytes / Double(pageSize)), pageCount)
        owedBytes -= Double(pages) * Double(pageSize)
        if owedBytes > Double(pageCount * pageSize) { owedBytes = 0 }
        while pages > 0 {
            writes += 1
            rewrite(nextPage(), writes)
            pages -= 1
        }
    }

    private mutating func nextPage() -> UInt64 {
        switch pattern {
        case .uniform:
            return rng.next(below: pageCount)
        case .sequential:
            defer { sweep = (sweep + 1) % pageCount }
            return sweep
        case .hotSet(let fraction, let share):
            let hot = max(1, UInt64(Double(pageCount) * fraction))
            return rng.nextUnit() < share ? rng.next(below: hot) : rng.next(below: pageCount)
        }
    }
}

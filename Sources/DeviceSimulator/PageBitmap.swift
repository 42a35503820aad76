/// One bit per page, with a running count of set bits: dirty tracking and "materialized" marks.
struct PageBitmap: Sendable {
    private(set) var words: [UInt64]
    let count: UInt64
    private(set) var setCount: UInt64 = 0

    init(count: UInt64, allSet: Bool = false) {
        self.count = count
        let n = Int((count + 63) / 64)
        words = [UInt64](repeating: allSet ? ~0 : 0, count: n)
        if allSet {
            setCount = count
            let tail = count % 64
            if tail != 0, n > 0 { words[n - 1] = (1 << tail) - 1 }
        }
    }

    @inline(__always)
    func contains(_ i: UInt64) -> Bool {
        words[Int(i >> 6)] & (1 << (i & 63)) != 0
    }

    /// Sets bit `i`; returns whether it was clear before.
    @inline(__always) @discardableResult
    mutating func insert(_ i: UInt64) -> Bool {
        let w = Int(i >> 6), bit: UInt64 = 1 << (i & 63)
        if words[w] & bit != 0 { return false }
        words[w] |= bit
        setCount += 1
        return true
    }

    @inline(__always)
    mutating func remove(_ i: UInt64) {
        let w = Int(i >> 6), bit: UInt64 = 1 << (i & 63)
        if words[w] & bit != 0 {
            words[w] &= ~bit
            setCount -= 1
        }
    }

    /// The first set bit at or after `start`, wrapping around once; `nil` when none is set.
    func firstSet(from start: UInt64) -> UInt64? {
        guard setCount > 0, count > 0 else { return nil }
        if let hit = scan(from: start % count, to: count) { return hit }
        return scan(from: 0, to: count)
    }

    private func scan(from start: UInt64, to end: UInt64) -> UInt64? {
        var w = Int(start >> 6)
        var word = words[w] & (~0 << (start & 63))
        let lastWord = Int((end + 63) >> 6)
        while true {
            if word != 0 {
                let i = UInt64(w) << 6 + UInt64(word.trailingZeroBitCount)
                return i < end ? i : nil
            }
            w += 1
            if w >= lastWord { return nil }
            word = words[w]
        }
    }

    /// Set bits at index `start` and above.
    func count(from start: UInt64) -> UInt64 {
        guard start < count else { return 0 }
        var w = Int(start >> 6)
        var total = UInt64((words[w] & (~0 << (start & 63))).nonzeroBitCount)
        w += 1
        while w < words.count {
            total += UInt64(words[w].nonzeroBitCount)
            w += 1
        }
        return total
    }

    mutating func removeAll() {
        for i in words.indices { words[i] = 0 }
        setCount = 0
    }
}

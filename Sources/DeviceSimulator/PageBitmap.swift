/// One bit per page, with a running count of set bits: dirty tracking and "materialized" marks.
///
/// Stored sparsely, so that its memory follows what a device touched, not the device's size (a
/// 64 TiB device has 2^34 pages of 4 KiB: a flat bitmap would be 2 GiB): bits live in leaves of
/// 2^15 bits (4 KiB), and a leaf exists only where its bits differ from the background, which is
/// all clear, or all set for a bitmap made `allSet` (a save's first pass owes every page).
struct PageBitmap: Sendable {
    let count: UInt64
    private(set) var setCount: UInt64 = 0
    /// The value of every bit that no leaf holds.
    private var background: Bool
    private var leaves: [UInt64: Leaf] = [:]
    /// The indices of `leaves`, ascending (kept for a clear background, where scans visit leaves
    /// only; with a set background, scans step through indices).
    private var order: [UInt64] = []

    static let leafShift: UInt64 = 15
    static let leafBits: UInt64 = 1 << leafShift

    struct Leaf: Sendable {
        var words: [UInt64]
        var setCount: UInt64

        init(allSet: Bool, bits: UInt64) {
            let n = Int(PageBitmap.leafBits / 64)
            words = [UInt64](repeating: 0, count: n)
            setCount = 0
            if allSet {
                for w in 0..<Int((bits + 63) / 64) {
                    let tail = bits - UInt64(w) * 64
                    words[w] = tail >= 64 ? ~0 : (1 << tail) - 1
                }
                setCount = bits
            }
        }

        func contains(_ bit: UInt64) -> Bool { words[Int(bit >> 6)] & (1 << (bit & 63)) != 0 }

        /// Set bits below `end`.
        func count(below end: UInt64) -> UInt64 {
            var total: UInt64 = 0
            let whole = Int(end >> 6)
            for w in 0..<min(whole, words.count) { total += UInt64(words[w].nonzeroBitCount) }
            if whole < words.count, end & 63 != 0 { total += UInt64((words[whole] & ((1 << (end & 63)) - 1)).nonzeroBitCount) }
            return total
        }

        mutating func insert(_ bit: UInt64) -> Bool {
            let w = Int(bit >> 6), mask: UInt64 = 1 << (bit & 63)
            if words[w] & mask != 0 { return false }
            words[w] |= mask
            setCount += 1
            return true
        }

        mutating func remove(_ bit: UInt64) -> Bool {
            let w = Int(bit >> 6), mask: UInt64 = 1 << (bit & 63)
            if words[w] & mask == 0 { return false }
            words[w] &= ~mask
            setCount -= 1
            return true
        }

        /// The first set bit at or after `start` (in the leaf), if any.
        func first(from start: UInt64) -> UInt64? {
            guard setCount > 0 else { return nil }
            var w = Int(start >> 6)
            guard w < words.count else { return nil }
            var word = words[w] & (~0 << (start & 63))
            while true {
                if word != 0 { return UInt64(w) << 6 + UInt64(word.trailingZeroBitCount) }
                w += 1
                if w >= words.count { return nil }
                word = words[w]
            }
        }
    }

    init(count: UInt64, allSet: Bool = false) {
        self.count = count
        background = allSet && count > 0
        setCount = background ? count : 0
    }

    /// Bytes the bitmap holds beyond its fixed part: 4 KiB and a little per leaf.
    var storageBytes: UInt64 { UInt64(leaves.count) * (Self.leafBits / 8 + 64) + UInt64(order.count) * 8 }

    /// Bits of leaf `index` that exist (the last leaf may be partial).
    private func bits(ofLeaf index: UInt64) -> UInt64 { min(Self.leafBits, count - index << Self.leafShift) }

    @inline(__always)
    func contains(_ i: UInt64) -> Bool {
        guard let leaf = leaves[i >> Self.leafShift] else { return background && i < count }
        return leaf.contains(i & (Self.leafBits - 1))
    }

    /// Sets bit `i`; returns whether it was clear before.
    @discardableResult
    mutating func insert(_ i: UInt64) -> Bool {
        guard i < count else { return false }
        let index = i >> Self.leafShift, bit = i & (Self.leafBits - 1)
        if let inserted = leaves[index]?.insert(bit) {
            guard inserted else { return false }
            setCount += 1
            // Back to the background: the leaf is no longer needed.
            if background, leaves[index]?.setCount == bits(ofLeaf: index) { dropLeaf(index) }
            return true
        }
        if background { return false }
        var leaf = Leaf(allSet: false, bits: bits(ofLeaf: index))
        _ = leaf.insert(bit)
        addLeaf(index, leaf)
        setCount += 1
        return true
    }

    mutating func remove(_ i: UInt64) {
        guard i < count else { return }
        let index = i >> Self.leafShift, bit = i & (Self.leafBits - 1)
        if let removed = leaves[index]?.remove(bit) {
            guard removed else { return }
            setCount -= 1
            if !background, leaves[index]?.setCount == 0 { dropLeaf(index) }
            return
        }
        guard background else { return }
        var leaf = Leaf(allSet: true, bits: bits(ofLeaf: index))
        _ = leaf.remove(bit)
        addLeaf(index, leaf)
        setCount -= 1
    }

    private mutating func addLeaf(_ index: UInt64, _ leaf: Leaf) {
        leaves[index] = leaf
        if !background { order.insert(index, at: lowerBound(index)) }
    }

    private mutating func dropLeaf(_ index: UInt64) {
        leaves[index] = nil
        if !background {
            let at = lowerBound(index)
            if at < order.count, order[at] == index { order.remove(at: at) }
        }
    }

    /// The first position of `order` whose index is at least `index`.
    private func lowerBound(_ index: UInt64) -> Int {
        var low = 0, high = order.count
        while low < high {
            let mid = (low + high) / 2
            if order[mid] < index { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// The first set bit at or after `start`, wrapping around once; `nil` when none is set.
    func firstSet(from start: UInt64) -> UInt64? {
        guard setCount > 0, count > 0 else { return nil }
        if let hit = scan(from: start % count) { return hit }
        return scan(from: 0)
    }

    private func scan(from start: UInt64) -> UInt64? {
        let first = start >> Self.leafShift
        if background {
            let last = (count - 1) >> Self.leafShift
            var index = first
            while index <= last {
                let base = index << Self.leafShift
                let from = index == first ? start - base : 0
                guard let leaf = leaves[index] else { return base + from }
                if let hit = leaf.first(from: from) { return base + hit }
                index += 1
            }
            return nil
        }
        var at = lowerBound(first)
        while at < order.count {
            let index = order[at], base = index << Self.leafShift
            if let leaf = leaves[index], let hit = leaf.first(from: index == first ? start - base : 0) { return base + hit }
            at += 1
        }
        return nil
    }

    /// Set bits at index `start` and above: what `setCount` holds minus the bits below `start`,
    /// counted over the explicit leaves only (the background stands for the rest).
    func count(from start: UInt64) -> UInt64 {
        guard start < count else { return 0 }
        let first = start >> Self.leafShift
        // Leaves wholly below `start` are full-size (the short one, if any, is the last).
        var below: UInt64 = background ? first << Self.leafShift : 0
        // Every explicit leaf (`order` lists them only over a clear background).
        for (index, leaf) in leaves where index < first {
            if background { below -= bits(ofLeaf: index) }
            below += leaf.setCount
        }
        let within = start - (first << Self.leafShift)
        if within > 0 {
            if let leaf = leaves[first] {
                below += leaf.count(below: within)
            } else if background {
                below += within
            }
        }
        return setCount - below
    }

    mutating func removeAll() {
        leaves = [:]
        order = []
        background = false
        setCount = 0
    }
}

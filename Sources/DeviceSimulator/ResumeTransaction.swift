/// One v1 resume transaction as the engine tracks it: opened by a `data_offset` read, closed by
/// the `data_size` write that takes what was written in between. One record with one lifetime:
/// the mount layer only tells the engine what came back through the mapping
/// (`MigrationRegion.storeThroughMapping`), and holds no protocol state of its own.
struct ResumeTransaction: Sendable {
    /// `data_offset` was read: writes to the data section are in the window.
    var offsetRead = false
    /// Data-section ranges (offsets in the section) the client pwrote in this transaction. They
    /// win over the mapping where both wrote.
    private(set) var pwritten: [Range<Int>] = []
    /// How far from the section's start the pwrites cover it without a gap. What lies beyond
    /// came through a mapping, and a trace must carry it for a replay to reproduce the transaction.
    private(set) var pwrittenPrefix: UInt64 = 0
    /// Bytes that differ from the data section arrived through the mapping in this transaction
    /// (a writeback or a retrieved page). A page the mapping dirtied in an earlier transaction
    /// carries what the section already holds, so it never counts.
    var mappedStores = false

    /// An open transaction (`data_offset` was just read).
    static var opened: ResumeTransaction { ResumeTransaction(offsetRead: true) }

    /// A pwrite of `range` of the section succeeded.
    mutating func pwrote(_ range: Range<Int>) {
        pwritten.append(range)
        if UInt64(range.lowerBound) <= pwrittenPrefix { pwrittenPrefix = max(pwrittenPrefix, UInt64(range.upperBound)) }
    }

    /// The pwritten ranges, in the order written.
    var pwrittenRanges: [Range<Int>] { pwritten }

    /// Written both ways: the `mixed-data-access` rule.
    var isMixed: Bool { !pwritten.isEmpty && mappedStores }

    /// The pieces of `range` no pwrite of this transaction covers, in order.
    func uncovered(_ range: Range<Int>) -> [Range<Int>] {
        var pieces: [Range<Int>] = []
        var cursor = range.lowerBound
        for p in pwritten.filter({ $0.overlaps(range) }).sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if p.lowerBound > cursor { pieces.append(cursor..<p.lowerBound) }
            cursor = max(cursor, p.upperBound)
        }
        if cursor < range.upperBound { pieces.append(cursor..<range.upperBound) }
        return pieces
    }
}

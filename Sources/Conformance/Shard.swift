/// One slice of a scenario list, so a CI matrix can spread a suite over machines: `--shard I/N`
/// (1-based `I`). Entry `k` of the sorted list (from 0) belongs to shard `k % N + 1`: every
/// entry is in exactly one shard, and shard sizes differ by at most one.
public struct Shard: Sendable, Hashable, CustomStringConvertible {
    /// From 1.
    public let index: Int
    public let count: Int

    public struct InvalidShard: Error, Sendable, Hashable, CustomStringConvertible {
        public var description: String
    }

    public init(index: Int, count: Int) throws(InvalidShard) {
        guard count >= 1 else { throw InvalidShard(description: "shard count must be at least 1, got \(count)") }
        guard (1...count).contains(index) else {
            throw InvalidShard(description: "shard index must be between 1 and \(count), got \(index)")
        }
        self.index = index
        self.count = count
    }

    /// Parses `I/N`, e.g. `2/4`.
    public init(parsing text: String) throws(InvalidShard) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0].trimmingWhitespace), let n = Int(parts[1].trimmingWhitespace) else {
            throw InvalidShard(description: "expected I/N with whole numbers, 1 <= I <= N (e.g. 2/4), got '\(text)'")
        }
        try self.init(index: i, count: n)
    }

    public var description: String { "\(index)/\(count)" }

    /// The elements of this shard, in their order.
    public func slice<T>(_ all: [T]) -> [T] {
        all.enumerated().filter { $0.offset % count == index - 1 }.map(\.element)
    }
}

extension Substring {
    fileprivate var trimmingWhitespace: Substring {
        var s = self
        while s.first?.isWhitespace == true { s.removeFirst() }
        while s.last?.isWhitespace == true { s.removeLast() }
        return s
    }
}

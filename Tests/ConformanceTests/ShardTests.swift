import Conformance
import Testing

@Suite struct ShardTests {
    @Test func slicesDeterministicallyAndCoverEverythingOnce() throws {
        let all = (0..<30).map { "s\($0)" }
        for n in 1...7 {
            var seen: [String] = []
            for i in 1...n {
                let slice = try Shard(index: i, count: n).slice(all)
                #expect(slice == (try Shard(parsing: "\(i)/\(n)").slice(all)))
                #expect(abs(slice.count - all.count / n) <= 1)
                #expect(slice == slice.sorted { all.firstIndex(of: $0)! < all.firstIndex(of: $1)! }, "keeps the list order")
                seen += slice
            }
            #expect(seen.sorted() == all.sorted(), "every entry in exactly one of \(n) shards")
        }
        #expect(try Shard(parsing: "2/3").slice(Array(0..<7)) == [1, 4])
        #expect(try Shard(parsing: "1/1").slice(Array(0..<3)) == [0, 1, 2])
        #expect(try Shard(parsing: "4/4").slice(Array(0..<2)) == [], "more shards than scenarios: empty slices")
    }

    @Test(arguments: [
        ("0/3", "shard index must be between 1 and 3, got 0"),
        ("4/3", "shard index must be between 1 and 3, got 4"),
        ("1/0", "shard count must be at least 1, got 0"),
        ("-1/2", "shard index must be between 1 and 2, got -1"),
        ("1", "expected I/N"),
        ("a/b", "expected I/N"),
        ("1/2/3", "expected I/N"),
        ("", "expected I/N"),
        ("1/", "expected I/N"),
    ])
    func refusesInvalid(_ text: String, _ message: String) {
        #expect {
            try Shard(parsing: text)
        } throws: { error in
            "\(error)".contains(message)
        }
    }
}

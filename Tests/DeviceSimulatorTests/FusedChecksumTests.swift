@testable import DeviceSimulator
import Testing

/// A page is staged and summed in one pass, and compared and summed in one pass (issue 15: every
/// migrated byte passed through the checksum in a pass of its own, 36% of an in-process
/// migration of a zero-filled device). The fused sums must be exactly `update` over the bytes.
@Suite struct FusedChecksumTests {
    /// A checksum with a state of its own, as after a record header's 24 bytes.
    static func started(_ seed: UInt64) -> StreamChecksum {
        var rng = SplitMix64(seed: seed)
        var c = StreamChecksum()
        for _ in 0..<3 { c.update(rng.next()) }
        c.update(UnsafeRawBufferPointer(start: nil, count: 0))
        return c
    }

    @Test(arguments: [0, 1, 7, 8, 9, 24, 31, 32, 33, 63, 64, 100, 4096, 4099])
    func zerosSumAsTheirBytes(_ count: Int) {
        for seed: UInt64 in [1, 2, 3] {
            var byBytes = Self.started(seed)
            [UInt8](repeating: 0, count: count).withUnsafeBytes { byBytes.update($0) }
            var byCount = Self.started(seed)
            byCount.updateZeros(count: count)
            #expect(byCount.finalize() == byBytes.finalize(), "\(count) zero bytes")
        }
    }

    /// The checksum as it was first written, four scalar lanes and a byte-by-byte tail: the
    /// oracle the SIMD version must equal bit for bit (streams carry its values).
    struct ScalarOracle {
        var a: (UInt64, UInt64, UInt64, UInt64) = (1, 2, 3, 4)
        var b: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        var length: UInt64 = 0
        mutating func update(_ bytes: [UInt8]) {
            var i = 0
            func word(_ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) } }
            while i + 32 <= bytes.count {
                a.0 &+= word(i); a.1 &+= word(i + 8); a.2 &+= word(i + 16); a.3 &+= word(i + 24)
                b.0 &+= a.0; b.1 &+= a.1; b.2 &+= a.2; b.3 &+= a.3
                i += 32
            }
            var tail: UInt64 = 0, shift: UInt64 = 0
            while i < bytes.count {
                tail |= UInt64(bytes[i]) << shift
                shift += 8
                if shift == 64 { a.0 &+= tail; b.0 &+= a.0; tail = 0; shift = 0 }
                i += 1
            }
            if shift > 0 { a.1 &+= tail ^ (shift << 56); b.1 &+= a.1 }
            length &+= UInt64(bytes.count)
        }
        func finalize() -> UInt64 {
            var h = length &* 0x9E37_79B9_7F4A_7C15
            for v in [a.0, a.1, a.2, a.3, b.0, b.1, b.2, b.3] { h = SplitMix64.mix(h ^ v) }
            return h
        }
    }

    @Test func theChecksumIsTheScalarOne() {
        var rng = SplitMix64(seed: 3)
        for count in Array(0...70) + [255, 256, 4096 + 24, 4096 + 7] {
            let first = (0..<24).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            var oracle = ScalarOracle()
            oracle.update(first)
            oracle.update(bytes)
            var c = StreamChecksum()
            first.withUnsafeBytes { c.update($0) }
            bytes.withUnsafeBytes { c.update($0) }
            #expect(c.finalize() == oracle.finalize(), "\(count) bytes")
        }
    }

    @Test(arguments: [0, 1, 3, 128])
    func blocksSumAsTheirBytes(_ count: Int) {
        var rng = SplitMix64(seed: UInt64(count) &+ 99)
        let words = (0..<(4 * count)).map { _ in rng.next() }
        var byBytes = Self.started(7)
        words.withUnsafeBytes { byBytes.update($0) }
        var byBlocks = Self.started(7)
        byBlocks.updateBlocks(count: count) { i in SIMD4(words[4 * i], words[4 * i + 1], words[4 * i + 2], words[4 * i + 3]) }
        #expect(byBlocks.finalize() == byBytes.finalize())
        // Two words swapped are another sum (the second sums see order).
        if count >= 2 {
            var swapped = Self.started(7)
            swapped.updateBlocks(count: count) { i in
                let j = i == 0 ? 1 : i == 1 ? 0 : i
                return SIMD4(words[4 * j], words[4 * j + 1], words[4 * j + 2], words[4 * j + 3])
            }
            #expect(swapped.finalize() != byBytes.finalize())
        }
    }

    /// Generating with the sum writes the same bytes `generate` writes and sums them as `update`
    /// would; comparing with the sum answers as `matches` and sums the same way.
    @Test(arguments: [MemoryFill.random, .zero], [UInt64(0), 3])
    func generatingAndComparingSumThePage(_ fill: MemoryFill, _ version: UInt64) {
        let pageSize = 4096
        let g = PageGenerator(seed: 42, fill: fill, pageSize: UInt64(pageSize))
        var plain = [UInt8](repeating: 0xA5, count: pageSize)
        var summed = [UInt8](repeating: 0x5A, count: pageSize)
        plain.withUnsafeMutableBytes { g.generate(page: 17, version: version, into: $0.baseAddress!) }
        var sum = Self.started(5)
        summed.withUnsafeMutableBytes { g.generate(page: 17, version: version, into: $0.baseAddress!, checksum: &sum) }
        #expect(summed == plain)
        var expected = Self.started(5)
        plain.withUnsafeBytes { expected.update($0) }
        #expect(sum.finalize() == expected.finalize())

        var other = plain
        other[100] ^= 1
        for (bytes, isPage) in [(plain, true), (other, false)] {
            var compareSum = Self.started(5)
            let matched = bytes.withUnsafeBytes { g.matches(page: 17, version: version, bytes: $0.baseAddress!, checksum: &compareSum) }
            #expect(matched == bytes.withUnsafeBytes { g.matches(page: 17, version: version, bytes: $0.baseAddress!) })
            #expect(matched == isPage)
            var bytesSum = Self.started(5)
            bytes.withUnsafeBytes { bytesSum.update($0) }
            #expect(compareSum.finalize() == bytesSum.finalize())
        }
    }

    /// A page record written by the fused staging decodes with the plain checksum, and one decoded
    /// with the power-on comparison gives the same record, its match, and the same refusal of a
    /// corrupted byte.
    @Test(arguments: [MemoryFill.random, .zero])
    func recordsDecodeTheSameWithAndWithoutTheComparison(_ fill: MemoryFill) throws {
        let pageSize = 4096
        let g = PageGenerator(seed: 9, fill: fill, pageSize: UInt64(pageSize))
        let memory = DeviceMemory(pageSize: UInt64(pageSize), pageCount: 8, generator: g, extents: HeapExtents.standard)
        // Page 5 is rewritten, so it is stored: its record is staged by the copy that sums.
        #expect(memory.rewrite(page: 5, version: 2))
        var buffer = [UInt8](repeating: 0, count: 2 * (pageSize + 32))
        try buffer.withUnsafeMutableBytes { raw in
            let base = try #require(raw.baseAddress)
            var writer = RecordWriter(base: base, capacity: raw.count, firstSequence: 4)
            for page: UInt64 in [2, 5] {
                writer.appendSumming(.page, argument: page, payloadLength: pageSize) { payload, sum in
                    memory.read(page: page, into: payload.baseAddress!, checksum: &sum)
                }
            }
        }
        let powerOn = PowerOnPages(generator: g, pageCount: 8, pageSize: pageSize)
        try buffer.withUnsafeBytes { raw in
            let plain = try RecordDecoder.decode(raw, maxPayload: pageSize)
            let compared = try RecordDecoder.decode(raw, maxPayload: pageSize, powerOn: powerOn)
            #expect(plain.argument == 2 && compared.argument == 2 && plain.sequence == 4)
            #expect(plain.powerOnMatch == nil && compared.powerOnMatch == true)
            let second = UnsafeRawBufferPointer(rebasing: raw[(pageSize + 32)...])
            let five = try RecordDecoder.decode(second, maxPayload: pageSize, powerOn: powerOn)
            #expect(five.argument == 5 && five.powerOnMatch == false)
            var rewritten = [UInt8](repeating: 0, count: pageSize)
            rewritten.withUnsafeMutableBytes { g.generate(page: 5, version: 2, into: $0.baseAddress!) }
            #expect(Array(five.payload) == rewritten)
            // Another source's power-on page 2 is not this one (zero pages are all alike).
            let other = PowerOnPages(generator: PageGenerator(seed: 10, fill: fill, pageSize: UInt64(pageSize)), pageCount: 8, pageSize: pageSize)
            #expect(try RecordDecoder.decode(raw, maxPayload: pageSize, powerOn: other).powerOnMatch == (fill == .zero))
        }
        buffer[32 + 200] ^= 0x10
        try buffer.withUnsafeBytes { raw in
            for p in [nil, powerOn] {
                #expect(throws: RecordDecodeError.badChecksum(tag: StreamFormat.Tag.page.rawValue, sequence: 4)) {
                    try RecordDecoder.decode(raw, maxPayload: pageSize, powerOn: p)
                }
            }
        }
    }
}

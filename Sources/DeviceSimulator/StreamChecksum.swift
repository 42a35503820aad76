/// The checksum carried by every stream record: a four-lane Fletcher-style sum over 64-bit words.
///
/// Not cryptographic: it only has to catch corruption on the way (flipped, zeroed or shifted
/// bytes), and it has to keep up with memcpy, since every migrated byte passes through it twice.
/// The order-dependent second sums make it sensitive to swapped words, unlike a plain sum.
public struct StreamChecksum: Sendable {
    /// Lane `j` sums words `j`, `j + 4`, `j + 8`... of each update (`a`), and the running sums of
    /// those (`b`): one SIMD add each per 32 bytes.
    private var a = SIMD4<UInt64>(1, 2, 3, 4)
    private var b = SIMD4<UInt64>(repeating: 0)
    private var length: UInt64 = 0

    public init() {}

    /// Adds bytes. Feeding the same bytes in different splits gives the same result only when the
    /// splits fall on 32-byte boundaries; records are fed whole, so that is never a concern.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        let count = bytes.count
        updateBlocks(count: count / 32) { base.loadUnaligned(fromByteOffset: $0 * 32, as: SIMD4<UInt64>.self) }
        var i = count / 32 * 32
        // The tail: whole words into lane 0, a last partial word (with its bit count) into lane 1.
        while i + 8 <= count {
            a[0] &+= base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            b[0] &+= a[0]
            i += 8
        }
        if i < count {
            var tail: UInt64 = 0
            var shift: UInt64 = 0
            while i < count {
                tail |= UInt64(base.load(fromByteOffset: i, as: UInt8.self)) << shift
                shift += 8
                i += 1
            }
            a[1] &+= tail ^ (shift << 56)
            b[1] &+= a[1]
        }
        length &+= UInt64(count % 32)
    }

    /// Adds `count` zero bytes, exactly as `update` over them would, without reading memory: a
    /// zero page is summed in O(1) where it was one more pass over its bytes.
    public mutating func updateZeros(count: Int) {
        guard count > 0 else { return }
        // A zero block leaves every `a` lane as it is and adds it once more to its `b` lane.
        b &+= a &* UInt64(count / 32)
        let rest = count % 32
        b[0] &+= a[0] &* UInt64(rest / 8)
        let partialBits = UInt64(rest % 8) * 8
        if partialBits > 0 { a[1] &+= partialBits << 56; b[1] &+= a[1] }
        length &+= UInt64(count)
    }

    /// Adds `count` 32-byte blocks, block `i` being `block(i)` (its four words in memory order),
    /// exactly as `update` over their bytes would: a page is generated, copied or compared in the
    /// same pass that sums it, instead of a second pass over bytes that may have left the cache.
    @inline(__always)
    mutating func updateBlocks(count: Int, _ block: (Int) -> SIMD4<UInt64>) {
        var sa = a, sb = b
        for i in 0..<count {
            sa &+= block(i)
            sb &+= sa
        }
        a = sa
        b = sb
        length &+= UInt64(count) &* 32
    }

    public mutating func update(_ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { update($0) }
    }

    /// The 64-bit value.
    public func finalize() -> UInt64 {
        var h = length &* 0x9E37_79B9_7F4A_7C15
        for j in 0..<4 { h = SplitMix64.mix(h ^ a[j]) }
        for j in 0..<4 { h = SplitMix64.mix(h ^ b[j]) }
        return h
    }

    public static func of(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var c = StreamChecksum()
        c.update(bytes)
        return c.finalize()
    }
}

/// SplitMix64: the seeded generator and mixer behind every "random" thing the device does.
public struct SplitMix64: Sendable, Hashable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return Self.mix(state)
    }

    /// A uniformly distributed value in `0..<bound` (`bound` > 0), by multiply-shift.
    public mutating func next(below bound: UInt64) -> UInt64 {
        next().multipliedFullWidth(by: bound).high
    }

    /// A value in [0, 1).
    public mutating func nextUnit() -> Double {
        Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }

    @inline(__always)
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// FNV-1a of a string's UTF-8, to fold names (a device UUID) into seeds.
    public static func hash(_ string: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in string.utf8 {
            h ^= UInt64(byte)
            h &*= 0x100_0000_01B3
        }
        return h
    }
}

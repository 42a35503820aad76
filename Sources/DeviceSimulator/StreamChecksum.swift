/// The checksum carried by every stream record: a four-lane Fletcher-style sum over 64-bit words.
///
/// Not cryptographic: it only has to catch corruption on the way (flipped, zeroed or shifted
/// bytes), and it has to keep up with memcpy, since every migrated byte passes through it twice.
/// The order-dependent second sums make it sensitive to swapped words, unlike a plain sum.
public struct StreamChecksum: Sendable {
    private var a: (UInt64, UInt64, UInt64, UInt64) = (1, 2, 3, 4)
    private var b: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    private var length: UInt64 = 0

    public init() {}

    /// Adds bytes. Feeding the same bytes in different splits gives the same result only when the
    /// splits fall on 32-byte boundaries; records are fed whole, so that is never a concern.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        let count = bytes.count
        var i = 0
        var (a0, a1, a2, a3) = a
        var (b0, b1, b2, b3) = b
        while i + 32 <= count {
            a0 &+= base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            a1 &+= base.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self)
            a2 &+= base.loadUnaligned(fromByteOffset: i + 16, as: UInt64.self)
            a3 &+= base.loadUnaligned(fromByteOffset: i + 24, as: UInt64.self)
            b0 &+= a0; b1 &+= a1; b2 &+= a2; b3 &+= a3
            i += 32
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < count {
            tail |= UInt64(base.load(fromByteOffset: i, as: UInt8.self)) << shift
            shift += 8
            if shift == 64 {
                a0 &+= tail; b0 &+= a0
                tail = 0; shift = 0
            }
            i += 1
        }
        if shift > 0 { a1 &+= tail ^ (shift << 56); b1 &+= a1 }
        a = (a0, a1, a2, a3)
        b = (b0, b1, b2, b3)
        length &+= UInt64(count)
    }

    public mutating func update(_ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { update($0) }
    }

    /// The 64-bit value.
    public func finalize() -> UInt64 {
        var h = length &* 0x9E37_79B9_7F4A_7C15
        for v in [a.0, a.1, a.2, a.3, b.0, b.1, b.2, b.3] {
            h = SplitMix64.mix(h ^ v)
        }
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

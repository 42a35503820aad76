@testable import DeviceSimulator
import Testing

@Suite struct ByteComparisonTests {
    /// Equal ranges, and one byte changed anywhere (in a word, in the tail) or lengths apart.
    @Test(arguments: [0, 1, 7, 8, 9, 4095, 4096, 4099])
    func aDifferenceAnywhereIsSeen(count: Int) {
        let a = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        a.withUnsafeBytes { x in
            #expect(ByteComparison.equal(x, x))
            var b = a
            b.withUnsafeBytes { #expect(ByteComparison.equal(x, $0)) }
            for i in Set([0, count / 2, count - 1]) where i >= 0 && i < count {
                b[i] ^= 0x40
                b.withUnsafeBytes { #expect(!ByteComparison.equal(x, $0), "byte \(i) of \(count)") }
                b[i] ^= 0x40
            }
            (a + [0]).withUnsafeBytes { #expect(!ByteComparison.equal(x, $0), "lengths differ") }
        }
    }
}

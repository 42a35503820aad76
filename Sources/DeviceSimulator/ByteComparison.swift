/// Whether two byte ranges hold the same bytes, eight at a time: the engine compares bytes that
/// arrive with those it holds, where `Sequence.elementsEqual` walked them one by one (with 64
/// mapped pairs through one mount, 7% of the machine's samples were that walk, over writebacks
/// of sections the daemon already held).
enum ByteComparison {
    static func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        guard let x = a.baseAddress, let y = b.baseAddress else { return a.count == 0 }
        let words = a.count / 8
        var i = 0
        while i < words {
            if x.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self) != y.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self) {
                return false
            }
            i += 1
        }
        for j in (words * 8)..<a.count where x.load(fromByteOffset: j, as: UInt8.self) != y.load(fromByteOffset: j, as: UInt8.self) {
            return false
        }
        return true
    }
}

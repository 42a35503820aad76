/// Produces the power-on (and rewritten) contents of any page from a seed, without storing it.
///
/// A page is a window of a seeded "texture" XORed with a per-page key: page `p`, version `v` is
/// `texture[start(p, v) ..< start + pageWords] ^ key(p, v)` word by word. That is as cheap as a
/// memcpy from cache, distinct for every page, version and seed, and fully deterministic, so an
/// untouched 64 GiB device costs no memory at all.
struct PageGenerator: Sendable {
    let seed: UInt64
    let fill: MemoryFill
    let pageWords: Int
    private let texture: [UInt64]

    init(seed: UInt64, fill: MemoryFill, pageSize: UInt64) {
        self.seed = seed
        self.fill = fill
        pageWords = Int(pageSize / 8)
        var rng = SplitMix64(seed: seed ^ 0x7465_7874_7572_6521)
        // At least twice the page so any window of a page fits without wrapping.
        let words = max(8192, 2 * Int(pageSize / 8))
        texture = (0..<words).map { _ in rng.next() }
    }

    @inline(__always)
    private func key(page: UInt64, version: UInt64) -> UInt64 {
        SplitMix64.mix(seed ^ SplitMix64.mix(page &+ 1) ^ (version &* 0xD6E8_FEB8_6659_FD93))
    }

    /// Whether page `version` is all zero bytes (the power-on contents of a zero-filled device).
    @inline(__always)
    private func isZero(_ version: UInt64) -> Bool { version == 0 && fill == .zero }

    /// The page's key and where its window of the texture starts.
    @inline(__always)
    private func window(page: UInt64, version: UInt64) -> (key: UInt64, start: Int) {
        let k = key(page: page, version: version)
        return (k, Int(k % UInt64(texture.count - pageWords + 1)))
    }

    /// Runs `body` with the page's window of the texture and its key: word `i` of the page is
    /// `window[i] ^ key` (the one place that says so).
    @inline(__always)
    private func withWords<R>(page: UInt64, version: UInt64, _ body: (UnsafePointer<UInt64>, UInt64) -> R) -> R? {
        let (k, start) = window(page: page, version: version)
        return texture.withUnsafeBufferPointer { tex in
            guard let t = tex.baseAddress else { return nil }
            return body(t + start, k)
        }
    }

    /// Writes page `page` at `version` (0 is power-on) into `destination` (`pageWords * 8` bytes).
    func generate(page: UInt64, version: UInt64, into destination: UnsafeMutableRawPointer) {
        if isZero(version) {
            destination.initializeMemory(as: UInt8.self, repeating: 0, count: pageWords * 8)
            return
        }
        let out = destination.assumingMemoryBound(to: UInt64.self)
        _ = withWords(page: page, version: version) { src, k in
            for i in 0..<pageWords { out[i] = src[i] ^ k }
        }
    }

    /// `generate`, adding the page's bytes to `checksum` in the same pass (a save staging a page
    /// record): a zero page is summed without reading it back.
    func generate(page: UInt64, version: UInt64, into destination: UnsafeMutableRawPointer, checksum: inout StreamChecksum) {
        if isZero(version) {
            destination.initializeMemory(as: UInt8.self, repeating: 0, count: pageWords * 8)
            checksum.updateZeros(count: pageWords * 8)
            return
        }
        guard pageWords % 4 == 0 else {
            generate(page: page, version: version, into: destination)
            checksum.update(UnsafeRawBufferPointer(start: destination, count: pageWords * 8))
            return
        }
        var sum = checksum
        _ = withWords(page: page, version: version) { src, k in
            let window = UnsafeRawPointer(src)
            let key = SIMD4<UInt64>(repeating: k)
            // Four words at a time, generated, stored and summed in registers.
            sum.updateBlocks(count: pageWords / 4) { i in
                let w = window.loadUnaligned(fromByteOffset: i * 32, as: SIMD4<UInt64>.self) ^ key
                destination.storeBytes(of: w, toByteOffset: i * 32, as: SIMD4<UInt64>.self)
                return w
            }
        }
        checksum = sum
    }

    /// Whether the `pageWords * 8` bytes at `bytes` are exactly page `page` at `version`: a
    /// comparison word by word against the generated words, with no buffer in between.
    func matches(page: UInt64, version: UInt64, bytes: UnsafeRawPointer) -> Bool {
        let words = bytes.assumingMemoryBound(to: UInt64.self)
        var differ: UInt64 = 0
        if isZero(version) {
            for i in 0..<pageWords { differ |= words[i] }
            return differ == 0
        }
        // Branch-free over the page (the common case is a match): one pass, as fast as a read.
        return withWords(page: page, version: version) { src, k in
            for i in 0..<pageWords { differ |= words[i] ^ src[i] ^ k }
            return differ == 0
        } ?? false
    }

    /// `matches`, adding the bytes to `checksum` in the same pass (a resume verifying a page
    /// record and comparing it with the source's power-on page reads the page once, not twice).
    func matches(page: UInt64, version: UInt64, bytes: UnsafeRawPointer, checksum: inout StreamChecksum) -> Bool {
        guard pageWords % 4 == 0 else {
            checksum.update(UnsafeRawBufferPointer(start: bytes, count: pageWords * 8))
            return matches(page: page, version: version, bytes: bytes)
        }
        var differ = SIMD4<UInt64>(repeating: 0)
        var sum = checksum
        defer { checksum = sum }
        if isZero(version) {
            sum.updateBlocks(count: pageWords / 4) { i in
                let w = bytes.loadUnaligned(fromByteOffset: i * 32, as: SIMD4<UInt64>.self)
                differ |= w
                return w
            }
            return differ == .zero
        }
        return withWords(page: page, version: version) { src, k in
            let window = UnsafeRawPointer(src)
            let key = SIMD4<UInt64>(repeating: k)
            sum.updateBlocks(count: pageWords / 4) { i in
                let w = bytes.loadUnaligned(fromByteOffset: i * 32, as: SIMD4<UInt64>.self)
                differ |= w ^ window.loadUnaligned(fromByteOffset: i * 32, as: SIMD4<UInt64>.self) ^ key
                return w
            }
            return differ == .zero
        } ?? false
    }

    /// `count` bytes of the device-config blob at power-on.
    func configBlob(count: Int) -> [UInt8] {
        var rng = SplitMix64(seed: seed ^ 0x636F_6E66_6967_2121)
        var bytes = [UInt8](repeating: 0, count: count)
        var i = 0
        while i < count {
            var w = rng.next()
            for _ in 0..<8 where i < count {
                bytes[i] = UInt8(truncatingIfNeeded: w)
                w >>= 8
                i += 1
            }
        }
        return bytes
    }
}

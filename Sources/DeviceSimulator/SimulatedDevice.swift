import Crypto

/// The device behind the region: memory, a config blob, and the work it does while running.
/// It knows nothing of the migration protocol; `MigrationRegion` drives it.
public final class SimulatedDevice {
    public let configuration: DeviceConfiguration
    /// What makes this device's power-on contents its own (an mdev UUID, "source", ...).
    public let identity: String
    /// The seed actually used: the configuration's content seed folded with the identity.
    public let seed: UInt64

    let memory: DeviceMemory
    private let generator: PageGenerator
    private let powerOnConfig: [UInt8]
    /// The device-config blob as it is now.
    private(set) var config: [UInt8]
    private var dirty: DirtyModel

    /// - Parameter extents: where memory extents come from (plain allocations by default; a
    ///   mount injects its pool).
    public init(configuration: DeviceConfiguration, identity: String, extents: any ExtentProvider = HeapExtents.standard) {
        self.configuration = configuration
        self.identity = identity
        seed = SplitMix64.mix(configuration.contentSeed ^ SplitMix64.hash(identity))
        generator = PageGenerator(seed: seed, fill: configuration.fill, pageSize: configuration.pageSize)
        memory = DeviceMemory(pageSize: configuration.pageSize, pageCount: configuration.pageCount, generator: generator, extents: extents)
        powerOnConfig = generator.configBlob(count: Int(configuration.configSize))
        config = powerOnConfig
        dirty = DirtyModel(configuration: configuration, seed: seed)
    }

    public var pageSize: Int { Int(configuration.pageSize) }
    public var pageCount: UInt64 { configuration.pageCount }
    /// Pages rewritten by the running device since power-on.
    public var pagesDirtied: UInt64 { dirty.writes }
    /// Page rewrites of the running device lost because no memory was left for the page.
    public private(set) var writesLostForMemory: UInt64 = 0
    /// Changes whenever memory or config may have changed (power-on, the running device's
    /// writes, a resume's pages or config): staging ahead builds on an unchanged revision.
    private(set) var revision: UInt64 = 0
    /// Pages that hold RAM of their own (written since power-on).
    public var materializedPages: UInt64 { memory.materializedPages }

    /// Back to power-on memory and config (`VFIO_DEVICE_RESET`).
    public func powerOn() {
        revision += 1
        memory.powerOn()
        config = powerOnConfig
        dirty.powerOn()
    }

    /// Lets the device run for `nanoseconds`, rewriting pages; `marked` is told each page written.
    func run(nanoseconds: UInt64, marked: (UInt64) -> Void) {
        let writes = dirty.writes
        defer { if dirty.writes != writes { revision += 1 } }
        dirty.run(nanoseconds: nanoseconds) { page, version in
            // Without memory for the page the device's write is lost: the page stays as it was
            // and is not owed again (the stream still matches memory).
            guard memory.rewrite(page: page, version: version) else {
                writesLostForMemory += 1
                return
            }
            marked(page)
        }
        // The config is live device state too: its first word counts the device's writes.
        if config.count >= 8, dirty.writes > 0 {
            withUnsafeBytes(of: dirty.writes.littleEndian) { word in
                for i in 0..<8 { config[i] = word[i] }
            }
        }
    }

    /// Copies page `page` to `destination`.
    public func readPage(_ page: UInt64, into destination: UnsafeMutableRawPointer) {
        memory.read(page: page, into: destination)
    }

    /// `readPage`, adding the page's bytes to `checksum` in the same pass.
    func readPage(_ page: UInt64, into destination: UnsafeMutableRawPointer, checksum: inout StreamChecksum) {
        memory.read(page: page, into: destination, checksum: &checksum)
    }

    /// Pages held as references to a source device's power-on contents (`DeviceMemory`).
    public var referencedPages: UInt64 { memory.referencedPages }

    /// False when no memory was left for the page. `reference`: a source from `referenceSource`,
    /// whose power-on page is kept as a reference if the bytes are exactly it.
    /// `matched`: the bytes were already compared with that power-on page (nil: compare them).
    func writePage(_ page: UInt64, from source: UnsafeRawPointer, reference: Int? = nil, matched: Bool? = nil) -> Bool {
        revision += 1
        return memory.write(page: page, from: source, reference: reference, matched: matched)
    }

    /// The generator of reference source `reference` (`referenceSource`).
    func referenceGenerator(_ reference: Int) -> PageGenerator? {
        memory.referenceGenerator(reference)
    }

    /// The reference source of a stream from a device of seed `seed` (nil: pages are stored).
    func referenceSource(seed: UInt64) -> Int? { memory.referenceSource(seed: seed) }

    func replaceConfig(_ bytes: [UInt8]) {
        revision += 1
        config = bytes
    }

    /// The device's digest, lowercase hex: SHA-256 over the SHA-256 of each page of memory in
    /// page order, then the config blob (a hash list). Equal digests on source (at stop) and
    /// destination (after resume) prove a migration.
    ///
    /// A hash list rather than one SHA-256 of all the bytes: a page known to be all zero without
    /// reading it (power-on contents of a zero-filled device, its own or a source's it holds as
    /// a reference) takes the zero page's hash, computed once, so a 16 GiB sparse device is
    /// digested in milliseconds instead of ~11 s; every other page is hashed from its bytes.
    public func digest() -> String {
        var list = SHA256()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: pageSize, alignment: 4096)
        defer { buffer.deallocate() }
        guard let base = buffer.baseAddress else { return "" }
        func pageHash() -> SHA256.Digest {
            var hasher = SHA256()
            hasher.update(bufferPointer: UnsafeRawBufferPointer(buffer))
            return hasher.finalize()
        }
        var zeroPage: SHA256.Digest?
        func zeroPageHash() -> SHA256.Digest {
            if let known = zeroPage { return known }
            base.initializeMemory(as: UInt8.self, repeating: 0, count: pageSize)
            let hash = pageHash()
            zeroPage = hash
            return hash
        }
        for page in 0..<pageCount {
            let hash: SHA256.Digest
            if memory.isPowerOnZero(page) {
                hash = zeroPageHash()
            } else {
                memory.read(page: page, into: base)
                hash = pageHash()
            }
            hash.withUnsafeBytes { list.update(bufferPointer: $0) }
        }
        config.withUnsafeBytes { list.update(bufferPointer: $0) }
        return Self.hex(list.finalize())
    }

    static func hex<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> String {
        let digits = Array("0123456789abcdef".unicodeScalars)
        var text = ""
        for byte in bytes {
            text.unicodeScalars.append(digits[Int(byte >> 4)])
            text.unicodeScalars.append(digits[Int(byte & 15)])
        }
        return text
    }
}

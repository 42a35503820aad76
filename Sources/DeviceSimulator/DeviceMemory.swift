/// Device memory stored sparsely: a page exists in RAM only once it was written (by the running
/// device or by a resume); every other page is generated on demand from the seed.
///
/// A page a resume receives that is, byte for byte, the source device's power-on contents of
/// that page is not stored either: it is kept as a reference to the source's generator (the
/// stream's header says the source's seed), after a real comparison of every word. Reads, the
/// digest, a later save and DMA see the same bytes. So a destination stores only the pages the
/// source's running device rewrote, and a 64 GiB device migrates on a machine of less memory.
///
/// Storage is 2 MiB extents allocated on first write, found by their index, so an untouched
/// device costs nothing whatever its size, and a touched one its extents and a sparse bitmap
/// of the touched pages (`PageBitmap`). When no memory is left for an extent, the write that
/// needed it fails (`write`/`rewrite` answer false) and the page keeps its contents.
final class DeviceMemory {
    let pageSize: Int
    let pageCount: UInt64
    private let extentPages: Int
    private var extents: [Int: UnsafeMutableRawPointer] = [:]
    /// The extent `slot` found last (nil base: none).
    private var lastExtent: (index: Int, base: UnsafeMutableRawPointer?) = (-1, nil)
    private var present: PageBitmap
    private var generator: PageGenerator
    private let provider: any ExtentProvider
    /// The generators of source devices whose power-on pages this memory holds as references,
    /// and which pages refer to each (a page is in at most one, and never also `present`).
    private var references: [(generator: PageGenerator, pages: PageBitmap)] = []
    /// More sources than this without a power-on (resumes from different devices, each left
    /// unfinished) and further pages are stored as bytes: lookups stay short.
    static let maxReferenceSources = 4

    init(pageSize: UInt64, pageCount: UInt64, generator: PageGenerator, extents provider: any ExtentProvider) {
        self.provider = provider
        self.pageSize = Int(pageSize)
        self.pageCount = pageCount
        self.generator = generator
        extentPages = max(1, (2 << 20) / Int(pageSize))
        present = PageBitmap(count: pageCount)
    }

    deinit { releaseAll() }

    /// Pages that currently hold their own RAM.
    var materializedPages: UInt64 { present.setCount }
    /// Pages held as references to a source's power-on contents.
    var referencedPages: UInt64 { references.reduce(0) { $0 + $1.pages.setCount } }
    var residentBytes: UInt64 { UInt64(extents.count) * UInt64(extentPages * pageSize) }

    /// Where `page` is stored, allocating its extent if needed; nil when no memory is left.
    private func slot(_ page: UInt64) -> UnsafeMutableRawPointer? {
        let e = Int(page / UInt64(extentPages))
        let base: UnsafeMutableRawPointer
        // Streams and passes go page after page: most lookups hit the extent of the last one.
        if e == lastExtent.index, let cached = lastExtent.base {
            base = cached
        } else if let existing = extents[e] {
            base = existing
        } else {
            guard let fresh = allocateExtent() else { return nil }
            base = fresh
            extents[e] = base
        }
        lastExtent = (e, base)
        return base + Int(page % UInt64(extentPages)) * pageSize
    }

    /// A 2 MiB extent from the injected provider (a mount's `ExtentPool` hands out memory an
    /// earlier device already touched): a resume fills memory page after page, and faulting
    /// fresh memory in costs more than the copy itself (measured by mdevsim-bench: ~70% of a
    /// 4 GiB resume). Other sizes (pages larger than 2 MiB) are allocated as they are.
    private var extentBytes: Int { extentPages * pageSize }

    private func allocateExtent() -> UnsafeMutableRawPointer? {
        if extentBytes == provider.extentBytes { return provider.take() }
        return FallibleAllocation.allocate(byteCount: extentBytes, alignment: 4096)
    }

    /// Copies the current bytes of `page` to `destination`.
    func read(page: UInt64, into destination: UnsafeMutableRawPointer) {
        if present.contains(page), let stored = slot(page) {
            destination.copyMemory(from: stored, byteCount: pageSize)
            return
        }
        for reference in references where reference.pages.contains(page) {
            reference.generator.generate(page: page, version: 0, into: destination)
            return
        }
        generator.generate(page: page, version: 0, into: destination)
    }

    /// The index of the reference source whose generator has `seed` (a resume's stream header
    /// named it), added if new; nil once `maxReferenceSources` are held (pages are then stored).
    func referenceSource(seed: UInt64) -> Int? {
        if let known = references.firstIndex(where: { $0.generator.seed == seed }) { return known }
        guard references.count < Self.maxReferenceSources else { return nil }
        let source = PageGenerator(seed: seed, fill: generator.fill, pageSize: UInt64(pageSize))
        references.append((source, PageBitmap(count: pageCount)))
        return references.count - 1
    }

    /// Replaces `page` with `pageSize` bytes from `source` (a resume applying a page record):
    /// kept as a reference when they are the power-on page of reference source `reference`,
    /// stored otherwise; false when no memory is left for them.
    func write(page: UInt64, from source: UnsafeRawPointer, reference: Int? = nil) -> Bool {
        if let r = reference, r < references.count, references[r].generator.matches(page: page, version: 0, bytes: source) {
            forgetReference(page)
            references[r].pages.insert(page)
            present.remove(page)
            return true
        }
        guard let stored = slot(page) else { return false }
        stored.copyMemory(from: source, byteCount: pageSize)
        present.insert(page)
        forgetReference(page)
        return true
    }

    private func forgetReference(_ page: UInt64) {
        for r in references.indices where references[r].pages.contains(page) { references[r].pages.remove(page) }
    }

    /// Rewrites `page` with generated contents of a new version (the running device dirtying
    /// it); false when no memory is left for it.
    func rewrite(page: UInt64, version: UInt64) -> Bool {
        guard let stored = slot(page) else { return false }
        generator.generate(page: page, version: version, into: stored)
        present.insert(page)
        forgetReference(page)
        return true
    }

    /// Back to power-on contents: every page generated again, all RAM released.
    func powerOn() {
        releaseAll()
        present.removeAll()
        references = []
    }

    private func releaseAll() {
        for extent in extents.values {
            if extentBytes == provider.extentBytes { provider.give(extent) } else { FallibleAllocation.free(extent) }
        }
        extents = [:]
        lastExtent = (-1, nil)
    }
}

/// Device memory stored sparsely: a page exists in RAM only once it was written (by the running
/// device or by a resume); every other page is generated on demand from the seed.
///
/// A page a resume receives that is, byte for byte, the source device's power-on contents of
/// that page is not stored either: it is kept as a reference to the source's generator (the
/// stream's header says the source's seed), after a real comparison of every word. Reads, the
/// digest, a later save and DMA see the same bytes. So a destination stores only the pages the
/// source's running device rewrote, and a 64 GiB device migrates on a machine of less memory.
///
/// A stored page takes one page-sized slot; slots are handed out one after another from 2 MiB
/// extents, whatever the page's index, and a table per 512 pages says which slot holds which
/// page. So a page costs its own bytes and 4 bytes of table, however sparse the writes: when each
/// page had the place of its index in a 2 MiB extent, a device rewriting one random page per
/// extent cost 2 MiB a page (a 64 GiB device dirtying a hot set reached 20 GB). When no memory
/// is left for a slot, the write that needed it fails (`write`/`rewrite` answer false) and the
/// page keeps its contents.
final class DeviceMemory {
    let pageSize: Int
    let pageCount: UInt64
    /// Slot numbers (+1; 0: not stored) of the pages of one table's 512.
    private final class SlotTable {
        var slots = [UInt32](repeating: 0, count: Int(DeviceMemory.tablePages))
    }
    private static let tablePages: UInt64 = 512
    private var tables: [UInt64: SlotTable] = [:]
    /// The table found last: streams and passes go page after page.
    private var lastTable: (index: UInt64, table: SlotTable?) = (.max, nil)
    private var extents: [UnsafeMutableRawPointer] = []
    private let slotsPerExtent: Int
    /// Slots handed out from the extents so far, and those given back since.
    private var slotsUsed = 0
    private var freeSlots: [UInt32] = []
    private var generator: PageGenerator
    private let provider: any ExtentProvider
    /// The generators of source devices whose power-on pages this memory holds as references,
    /// and which pages refer to each (a page is in at most one, and never also stored).
    private var references: [(generator: PageGenerator, pages: PageBitmap)] = []
    /// More sources than this without a power-on (resumes from different devices, each left
    /// unfinished) and further pages are stored as bytes: lookups stay short.
    static let maxReferenceSources = 4

    init(pageSize: UInt64, pageCount: UInt64, generator: PageGenerator, extents provider: any ExtentProvider) {
        self.provider = provider
        self.pageSize = Int(pageSize)
        self.pageCount = pageCount
        self.generator = generator
        slotsPerExtent = max(1, (2 << 20) / Int(pageSize))
    }

    deinit { releaseAll() }

    /// Bytes copied into stored pages by `write` (received pages that were not references).
    private(set) var bytesCopiedIn: UInt64 = 0
    /// Pages that currently hold their own RAM.
    var materializedPages: UInt64 { UInt64(slotsUsed - freeSlots.count) }
    /// Pages held as references to a source's power-on contents.
    var referencedPages: UInt64 { references.reduce(0) { $0 + $1.pages.setCount } }
    var residentBytes: UInt64 { UInt64(extents.count) * UInt64(extentBytes) }

    private func table(_ page: UInt64, creating: Bool) -> SlotTable? {
        let index = page / Self.tablePages
        if index == lastTable.index, let cached = lastTable.table { return cached }
        var found = tables[index]
        if found == nil, creating {
            let fresh = SlotTable()
            tables[index] = fresh
            found = fresh
        }
        if let found { lastTable = (index, found) }
        return found
    }

    private func address(ofSlot slot: UInt32) -> UnsafeMutableRawPointer {
        let s = Int(slot)
        return extents[s / slotsPerExtent] + (s % slotsPerExtent) * pageSize
    }

    /// Where `page` is stored, nil if it is not.
    private func stored(_ page: UInt64) -> UnsafeMutableRawPointer? {
        guard let t = table(page, creating: false) else { return nil }
        let entry = t.slots[Int(page % Self.tablePages)]
        return entry == 0 ? nil : address(ofSlot: entry - 1)
    }

    /// Where `page` is stored, giving it a slot if needed; nil when no memory is left.
    private func slot(_ page: UInt64) -> UnsafeMutableRawPointer? {
        guard let t = table(page, creating: true) else { return nil }
        let i = Int(page % Self.tablePages)
        if t.slots[i] != 0 { return address(ofSlot: t.slots[i] - 1) }
        let slot: UInt32
        if let reused = freeSlots.popLast() {
            slot = reused
        } else {
            guard slotsUsed < Int(UInt32.max - 1) else { return nil }
            if slotsUsed == extents.count * slotsPerExtent {
                guard let fresh = allocateExtent() else { return nil }
                extents.append(fresh)
            }
            slot = UInt32(slotsUsed)
            slotsUsed += 1
        }
        t.slots[i] = slot + 1
        return address(ofSlot: slot)
    }

    /// Gives `page`'s slot back, if it has one (the page is now a reference).
    private func unstore(_ page: UInt64) {
        guard let t = table(page, creating: false) else { return }
        let i = Int(page % Self.tablePages)
        guard t.slots[i] != 0 else { return }
        freeSlots.append(t.slots[i] - 1)
        t.slots[i] = 0
    }

    /// A 2 MiB extent from the injected provider (a mount's `ExtentPool` hands out memory an
    /// earlier device already touched): a resume fills memory page after page, and faulting
    /// fresh memory in costs more than the copy itself (measured by mdevsim-bench: ~70% of a
    /// 4 GiB resume). Other sizes (pages larger than 2 MiB) are allocated as they are.
    private var extentBytes: Int { slotsPerExtent * pageSize }

    private func allocateExtent() -> UnsafeMutableRawPointer? {
        if extentBytes == provider.extentBytes { return provider.take() }
        return FallibleAllocation.allocate(byteCount: extentBytes, alignment: 4096)
    }

    /// Where the current bytes of a page come from: its slot, or a generator's power-on page
    /// (its own, or the reference source's the page refers to).
    private enum Contents {
        case stored(UnsafeMutableRawPointer)
        case powerOn(PageGenerator)
    }

    /// The one lookup every read of a page goes through.
    private func contents(_ page: UInt64) -> Contents {
        if let stored = stored(page) { return .stored(stored) }
        for reference in references where reference.pages.contains(page) { return .powerOn(reference.generator) }
        return .powerOn(generator)
    }

    /// Copies the current bytes of `page` to `destination`.
    func read(page: UInt64, into destination: UnsafeMutableRawPointer) {
        switch contents(page) {
        case .stored(let stored): destination.copyMemory(from: stored, byteCount: pageSize)
        case .powerOn(let g): g.generate(page: page, version: 0, into: destination)
        }
    }

    /// `read`, adding the page's bytes to `checksum` in the same pass (a save staging a page
    /// record): generated pages are summed as they are written, a zero page without a read.
    func read(page: UInt64, into destination: UnsafeMutableRawPointer, checksum: inout StreamChecksum) {
        switch contents(page) {
        case .powerOn(let g):
            g.generate(page: page, version: 0, into: destination, checksum: &checksum)
        case .stored(let stored) where pageSize % 32 != 0:
            destination.copyMemory(from: stored, byteCount: pageSize)
            checksum.update(UnsafeRawBufferPointer(start: destination, count: pageSize))
        case .stored(let stored):
            let from = UnsafeRawPointer(stored)
            checksum.updateBlocks(count: pageSize / 32) { i in
                let w = from.loadUnaligned(fromByteOffset: i * 32, as: SIMD4<UInt64>.self)
                destination.storeBytes(of: w, toByteOffset: i * 32, as: SIMD4<UInt64>.self)
                return w
            }
        }
    }

    /// Whether `page` is all zero bytes without reading it: not stored, and the power-on page of
    /// a zero-filled generator (its own, or the reference source's it refers to).
    func isPowerOnZero(_ page: UInt64) -> Bool {
        if case .powerOn(let g) = contents(page) { return g.fill == .zero }
        return false
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

    /// The generator of reference source `reference`, to compare received pages with.
    func referenceGenerator(_ reference: Int) -> PageGenerator? {
        reference < references.count ? references[reference].generator : nil
    }

    /// Replaces `page` with `pageSize` bytes from `source` (a resume applying a page record):
    /// kept as a reference when they are the power-on page of reference source `reference`,
    /// stored otherwise; false when no memory is left for them. `matched`: whether the bytes were
    /// already compared with that page (as the record's checksum was verified), nil to compare.
    func write(page: UInt64, from source: UnsafeRawPointer, reference: Int? = nil, matched: Bool? = nil) -> Bool {
        if let r = reference, r < references.count,
           matched ?? references[r].generator.matches(page: page, version: 0, bytes: source) {
            forgetReference(page)
            references[r].pages.insert(page)
            unstore(page)
            return true
        }
        guard let stored = slot(page) else { return false }
        stored.copyMemory(from: source, byteCount: pageSize)
        bytesCopiedIn += UInt64(pageSize)
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
        forgetReference(page)
        return true
    }

    /// Back to power-on contents: every page generated again, all RAM released.
    func powerOn() {
        releaseAll()
        references = []
    }

    private func releaseAll() {
        for extent in extents {
            if extentBytes == provider.extentBytes { provider.give(extent) } else { FallibleAllocation.free(extent) }
        }
        extents = []
        tables = [:]
        lastTable = (.max, nil)
        slotsUsed = 0
        freeSlots = []
    }
}

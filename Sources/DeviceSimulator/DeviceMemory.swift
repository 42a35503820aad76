/// Device memory stored sparsely: a page exists in RAM only once it was written (by the running
/// device or by a resume); every other page is generated on demand from the seed.
///
/// Storage is a table of 2 MiB extents allocated on first write, so an untouched 64 GiB device
/// costs its bitmaps (2 MiB per 64 GiB at 4 KiB pages) and nothing else.
final class DeviceMemory {
    let pageSize: Int
    let pageCount: UInt64
    private let extentPages: Int
    private var extents: [UnsafeMutableRawPointer?]
    private var present: PageBitmap
    private var generator: PageGenerator
    private let provider: any ExtentProvider

    init(pageSize: UInt64, pageCount: UInt64, generator: PageGenerator, extents provider: any ExtentProvider) {
        self.provider = provider
        self.pageSize = Int(pageSize)
        self.pageCount = pageCount
        self.generator = generator
        extentPages = max(1, (2 << 20) / Int(pageSize))
        extents = Array(repeating: nil, count: Int((pageCount + UInt64(extentPages) - 1) / UInt64(extentPages)))
        present = PageBitmap(count: pageCount)
    }

    deinit { releaseAll() }

    /// Pages that currently hold their own RAM.
    var materializedPages: UInt64 { present.setCount }
    var residentBytes: UInt64 { UInt64(extents.lazy.filter { $0 != nil }.count) * UInt64(extentPages * pageSize) }

    private func slot(_ page: UInt64) -> UnsafeMutableRawPointer {
        let e = Int(page / UInt64(extentPages))
        let base: UnsafeMutableRawPointer
        if let existing = extents[e] {
            base = existing
        } else {
            base = allocateExtent()
            extents[e] = base
        }
        return base + Int(page % UInt64(extentPages)) * pageSize
    }

    /// A 2 MiB extent from the injected provider (a mount's `ExtentPool` hands out memory an
    /// earlier device already touched): a resume fills memory page after page, and faulting
    /// fresh memory in costs more than the copy itself (measured by mdevsim-bench: ~70% of a
    /// 4 GiB resume). Other sizes (pages larger than 2 MiB) are allocated as they are.
    private var extentBytes: Int { extentPages * pageSize }

    private func allocateExtent() -> UnsafeMutableRawPointer {
        if extentBytes == provider.extentBytes { return provider.take() }
        return UnsafeMutableRawPointer.allocate(byteCount: extentBytes, alignment: 4096)
    }

    /// Copies the current bytes of `page` to `destination`.
    func read(page: UInt64, into destination: UnsafeMutableRawPointer) {
        if present.contains(page) {
            destination.copyMemory(from: slot(page), byteCount: pageSize)
        } else {
            generator.generate(page: page, version: 0, into: destination)
        }
    }

    /// Replaces `page` with `pageSize` bytes from `source` (a resume applying a page record).
    func write(page: UInt64, from source: UnsafeRawPointer) {
        slot(page).copyMemory(from: source, byteCount: pageSize)
        present.insert(page)
    }

    /// Rewrites `page` with generated contents of a new version (the running device dirtying it).
    func rewrite(page: UInt64, version: UInt64) {
        generator.generate(page: page, version: version, into: slot(page))
        present.insert(page)
    }

    /// Back to power-on contents: every page generated again, all RAM released.
    func powerOn() {
        releaseAll()
        present.removeAll()
    }

    private func releaseAll() {
        for i in extents.indices {
            guard let extent = extents[i] else { continue }
            if extentBytes == provider.extentBytes { provider.give(extent) } else { extent.deallocate() }
            extents[i] = nil
        }
    }
}

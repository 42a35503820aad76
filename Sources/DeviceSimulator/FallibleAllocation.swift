import CFallibleMemory

/// Allocations whose size a scenario or a client decides. Swift's own allocation ends the
/// process when memory runs out; these answer nil instead, so that the one access that needed
/// the memory fails (`ENOMEM`) and the daemon and its other devices go on (issue 13).
public enum FallibleAllocation {
    /// `byteCount` bytes aligned to `alignment` (a power of two, at least a pointer), or nil.
    /// Give them back with `free`.
    public static func allocate(byteCount: Int, alignment: Int) -> UnsafeMutableRawPointer? {
        cfallible_allocate(max(1, byteCount), max(alignment, MemoryLayout<UnsafeRawPointer>.size))
    }

    public static func free(_ memory: UnsafeMutableRawPointer) { cfallible_free(memory) }

    /// `byteCount` bytes of zero pages, page aligned, backed only once written; nil when the
    /// process has no address space left. Give them back with `freeZeroPages`.
    public static func allocateZeroPages(byteCount: Int) -> UnsafeMutableRawBufferPointer? {
        cfallible_allocate_zero_pages(byteCount).map { UnsafeMutableRawBufferPointer(start: $0, count: byteCount) }
    }

    public static func freeZeroPages(_ memory: UnsafeMutableRawBufferPointer) {
        if let base = memory.baseAddress { cfallible_free_zero_pages(base, memory.count) }
    }
}

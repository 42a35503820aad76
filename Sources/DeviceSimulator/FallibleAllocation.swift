import Glibc

/// Allocations whose size a scenario or a client decides. Swift's own allocation ends the
/// process when memory runs out; these answer nil instead, so that the one access that needed
/// the memory fails (`ENOMEM`) and the daemon and its other devices go on (issue 13).
public enum FallibleAllocation {
    /// `byteCount` bytes aligned to `alignment` (a power of two, at least a pointer), or nil.
    /// Give them back with `free`.
    public static func allocate(byteCount: Int, alignment: Int) -> UnsafeMutableRawPointer? {
        var memory: UnsafeMutableRawPointer?
        guard posix_memalign(&memory, max(alignment, MemoryLayout<UnsafeRawPointer>.size), max(1, byteCount)) == 0 else { return nil }
        return memory
    }

    public static func free(_ memory: UnsafeMutableRawPointer) { Glibc.free(memory) }
}

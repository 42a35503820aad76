/// Where a device's memory extents come from. The engine keeps no pool of its own and gives the
/// kernel no advice: the layer hosting the devices decides (a mount injects MdevFS's
/// `ExtentPool`, which keeps extents between devices and asks for huge pages).
public protocol ExtentProvider: AnyObject, Sendable {
    /// Bytes of every extent `take` returns, a multiple of the page size.
    var extentBytes: Int { get }
    /// An extent of `extentBytes`, aligned to `extentBytes`, or nil when there is no memory left
    /// (the access that needed it fails, not the process). Its bytes are undefined: a device
    /// reads a page from its extent only once it wrote the page whole.
    func take() -> UnsafeMutableRawPointer?
    /// Gives back an extent from `take`.
    func give(_ extent: UnsafeMutableRawPointer)
}

/// Fresh memory for every extent, freed when given back: the engine's default provider.
public final class HeapExtents: ExtentProvider {
    /// One shared instance; it holds no state.
    public static let standard = HeapExtents(extentBytes: 2 << 20)

    public let extentBytes: Int

    public init(extentBytes: Int) {
        self.extentBytes = extentBytes
    }

    public func take() -> UnsafeMutableRawPointer? {
        FallibleAllocation.allocate(byteCount: extentBytes, alignment: extentBytes)
    }

    public func give(_ extent: UnsafeMutableRawPointer) {
        FallibleAllocation.free(extent)
    }
}

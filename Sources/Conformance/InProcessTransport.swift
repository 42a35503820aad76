import DeviceSimulator
import MigrationProtocol
import SystemPackage

/// A region reached in process: every access is a direct call into the engine, and the data
/// section "mapping" is the engine's own buffer (when the device offers mmap).
public final class InProcessTransport: RegionTransport {
    public let region: MigrationRegion
    public let name: String
    private let useMapping: Bool

    /// - Parameter useMapping: map the data section when the device offers it (like QEMU does).
    public init(region: MigrationRegion, name: String, useMapping: Bool = true) {
        self.region = region
        self.name = name
        self.useMapping = useMapping
        // A mapping client reads and writes the engine's buffer itself; one that does not reaches
        // it only through `read` and `write`, which the checker sees whole.
        region.dataSectionMapping = useMapping && region.configuration.dataSectionMmap ? .direct : .none
    }

    public var regionSize: UInt64 { region.regionSize }
    public var mappedDataSection: UnsafeMutableRawBufferPointer? {
        useMapping && region.configuration.dataSectionMmap ? region.dataSection : nil
    }
    public var mappedOffset: UInt64 { RegionLayout.dataSectionOffset }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try region.read(at: offset, into: buffer).outcome.get()
    }

    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(Errno) -> Int {
        try region.write(at: offset, from: buffer).outcome.get()
    }

    public func reset() throws(Errno) { region.reset() }
    public func digest() throws(Errno) -> String { region.device.digest() }
}

import DeviceSimulator
import MigrationProtocol
import SystemPackage

// Engine fixtures shared by the engine's tests and the tests above it: they need nothing but
// the engine, so engine tests depend on nothing else.

/// A small device configuration for tests: quick to migrate, several chunks.
public func smallConfiguration(
    memory: UInt64 = 2 << 20, pageSize: UInt64 = 4096, chunk: UInt64 = 64 << 10, section: UInt64 = 64 << 10,
    dirtyRate: UInt64 = 0, configSize: UInt64 = 4096, precopy: Bool = true, faults: [Fault] = []
) -> DeviceConfiguration {
    DeviceConfiguration(
        typeName: "test-small", memorySize: memory, pageSize: pageSize, contentSeed: 7, configSize: configSize,
        dataSectionSize: section, chunkSize: chunk, precopyData: precopy, dirtyRate: dirtyRate,
        linkBandwidth: 1 << 30, faults: faults)
}

/// A source and a destination of the same configuration.
public func devicePair(_ configuration: DeviceConfiguration, destination: DeviceConfiguration? = nil) -> (MigrationRegion, MigrationRegion) {
    (MigrationRegion(configuration: configuration, identity: "source"),
     MigrationRegion(configuration: destination ?? configuration, identity: "destination"))
}

extension MigrationRegion {
    /// Reads a field and fails the test's expectations loudly through the result.
    public func value(_ field: HeaderField) -> UInt64? { try? read(field).get() }
    public var bits: UInt32 { state.bits }
    public func set(_ bits: UInt32) -> Errno? {
        if case .failure(let e) = write(.deviceState, UInt64(state.with(bits: bits).rawValue)) { return e }
        return nil
    }
}

extension Result {
    /// The error, if any: lets tests compare `Result<Void, Errno>`, which is not Equatable.
    public var err: Failure? {
        if case .failure(let e) = self { return e }
        return nil
    }
}

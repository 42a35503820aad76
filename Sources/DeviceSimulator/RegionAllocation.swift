import Logging
import MigrationProtocol
import SystemPackage

extension MigrationRegion {
    /// A device and its region at power-on, or `ENOMEM` when the memory they need from the start
    /// (the data section, and room for the config blobs) is not there: what a device created by
    /// a client's `create` uses, so that creating one too many fails that write, not the daemon.
    public static func make(configuration: DeviceConfiguration, identity: String, strict: Bool = false,
                            logger: Logger = MigrationRegion.silentLogger, wallClock: (any WallClock)? = nil,
                            extents: any ExtentProvider = HeapExtents.standard) -> Result<MigrationRegion, Errno> {
        // The config blobs (power-on, live, a save's snapshot, a resume's buffer) are Swift arrays,
        // which end the process when they cannot be allocated: make sure there is room for them
        // first. (Another thread may take the room meanwhile; the memory model in `check` covers them.)
        let configRoom = Int(configuration.configSize) * 4
        if configRoom > 0 {
            guard let probe = FallibleAllocation.allocate(byteCount: configRoom, alignment: 16) else { return .failure(.noMemory) }
            FallibleAllocation.free(probe)
        }
        guard let buffer = FallibleAllocation.allocateZeroPages(byteCount: Int(configuration.dataSectionSize)) else {
            return .failure(.noMemory)
        }
        let device = SimulatedDevice(configuration: configuration, identity: identity, extents: extents)
        return .success(MigrationRegion(device: device, strict: strict, logger: logger, wallClock: wallClock, dataSection: buffer))
    }
}

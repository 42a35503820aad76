import MigrationProtocol

/// Everything that defines one simulated device: what its memory is, how it dirties, how its
/// migration region is shaped, and which faults it injects. Scenario files produce these.
public struct DeviceConfiguration: Sendable, Hashable {
    /// The mdev type name, e.g. `mdevsim-small`. Part of the stream header: a destination of
    /// another type rejects the stream.
    public var typeName: String
    /// Device memory in bytes (a multiple of `pageSize`; zero for a device with no memory).
    public var memorySize: UInt64
    /// Granularity of dirty tracking and of page records, in bytes (a power of two, 512...2 MiB).
    public var pageSize: UInt64
    /// Seed of the power-on contents; combined with the device's identity so that no two devices
    /// power on with the same memory.
    public var contentSeed: UInt64
    /// How power-on memory is filled.
    public var fill: MemoryFill
    /// Size in bytes of the device-config blob, sent only in stop-and-copy.
    public var configSize: UInt64
    /// Size in bytes of the region's data section (after the first host page of the region).
    public var dataSectionSize: UInt64
    /// Whether the data section is offered for `mmap` (sparse mmap capability).
    public var dataSectionMmap: Bool
    /// Largest chunk the device stages per `data_offset` read, in bytes (at most `dataSectionSize`).
    public var chunkSize: UInt64
    /// Whether memory is offered in pre-copy. `false` models a device that has no pre-copy data
    /// at all (seed 000): everything is sent in stop-and-copy.
    public var precopyData: Bool
    /// Bytes of memory rewritten per second while the device runs.
    public var dirtyRate: UInt64
    /// Which pages the running device rewrites.
    public var dirtyPattern: DirtyPattern
    /// Assumed link bandwidth in bytes per second: the virtual clock advances by moved bytes / bandwidth.
    public var linkBandwidth: UInt64
    /// Virtual (deterministic) or wall-clock time.
    public var clock: ClockMode
    /// Reserved `device_state` bits 3-31 the device reports; a client must write them back unchanged.
    public var reservedStateBits: UInt32
    /// Injected faults, evaluated in order.
    public var faults: [Fault]
    /// The migration protocols the device speaks: v1 (the region) and/or v2
    /// (`VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE` and a data_fd). Both drive the same device.
    public var protocols: MigrationProtocols = [.v1]
    /// What a v2 device reports to `VFIO_DEVICE_FEATURE_MIGRATION` (STOP_COPY always).
    public var v2Features: V2MigrationFeatures = [.stopCopy, .p2p, .preCopy]

    public init(
        typeName: String = "mdevsim-default",
        memorySize: UInt64 = 64 << 20,
        pageSize: UInt64 = 4096,
        contentSeed: UInt64 = 1,
        fill: MemoryFill = .random,
        configSize: UInt64 = 4096,
        dataSectionSize: UInt64 = 1 << 20,
        dataSectionMmap: Bool = true,
        chunkSize: UInt64 = 1 << 20,
        precopyData: Bool = true,
        dirtyRate: UInt64 = 0,
        dirtyPattern: DirtyPattern = .uniform,
        linkBandwidth: UInt64 = 1 << 30,
        clock: ClockMode = .virtual,
        reservedStateBits: UInt32 = 0,
        faults: [Fault] = []
    ) {
        self.typeName = typeName
        self.memorySize = memorySize
        self.pageSize = pageSize
        self.contentSeed = contentSeed
        self.fill = fill
        self.configSize = configSize
        self.dataSectionSize = dataSectionSize
        self.dataSectionMmap = dataSectionMmap
        self.chunkSize = chunkSize
        self.precopyData = precopyData
        self.dirtyRate = dirtyRate
        self.dirtyPattern = dirtyPattern
        self.linkBandwidth = linkBandwidth
        self.clock = clock
        self.reservedStateBits = reservedStateBits
        self.faults = faults
    }

    /// Pages of device memory.
    public var pageCount: UInt64 { memorySize / pageSize }

    /// Size of the whole migration region: the header page, then the data section.
    public var regionSize: UInt64 { RegionLayout.dataSectionOffset + dataSectionSize }

    /// Checks every rule the engine relies on; throws the first problem (`problems` has them all).
    public func validate() throws(ConfigurationError) {
        if let first = problems().first { throw first }
    }

    /// Every rule the engine relies on that this configuration breaks, in key order of the
    /// scenario file, each with its key. The one rule set: the scenario loader maps each problem
    /// to the file position of its key. `size` and `rate` format the figures in messages (plain
    /// numbers by default; the loader passes its unit formatting).
    public func problems(size: (UInt64) -> String = { "\($0)" }, rate: (UInt64) -> String = { "\($0)" }) -> [ConfigurationError] {
        var found: [ConfigurationError] = []
        func fail(_ key: String, _ message: String) { found.append(ConfigurationError(key: key, message: message)) }
        if typeName.isEmpty || typeName.utf8.count > StreamFormat.maxTypeNameLength {
            fail("type", "a type name of 1...\(StreamFormat.maxTypeNameLength) bytes, got \(typeName.utf8.count) bytes")
        }
        if pageSize < 512 || pageSize > 2 << 20 || pageSize & (pageSize - 1) != 0 {
            // Every other size is judged in pages: nothing more can be said.
            fail("page_size", "a power of two from \(size(512)) to \(size(2 << 20)), got \(size(pageSize))")
            return found
        }
        if memorySize % pageSize != 0 {
            fail("memory", "a multiple of the page size (\(size(pageSize))), got \(size(memorySize))")
        }
        if memorySize > 1 << 46 { fail("memory", "at most \(size(1 << 46)), got \(size(memorySize))") }
        if configSize > 64 << 20 { fail("config_size", "at most \(size(64 << 20)), got \(size(configSize))") }
        if dataSectionSize == 0 { fail("data_section", "at least \(size(1)), got \(size(0))") }
        if dataSectionSize > 1 << 30 { fail("data_section", "at most \(size(1 << 30)), got \(size(dataSectionSize))") }
        if dataSectionMmap, dataSectionSize % RegionLayout.hostPageSize != 0 {
            fail("data_section", "a multiple of \(size(RegionLayout.hostPageSize)) when mmap is on, got \(size(dataSectionSize))")
        }
        let smallest = StreamFormat.minimumChunkSize(pageSize: pageSize)
        if chunkSize < smallest {
            fail("chunk_size", "at least \(size(smallest)) (the chunk record and one page record), got \(size(chunkSize))")
        } else if chunkSize > dataSectionSize {
            fail("chunk_size", "at most the data section (\(size(dataSectionSize))), got \(size(chunkSize))")
        }
        if linkBandwidth == 0 { fail("link_bandwidth", "a bandwidth above \(rate(0))") }
        if case .hotSet(let fraction, let share) = dirtyPattern {
            if !(fraction > 0 && fraction <= 1) { fail("dirty.hot_fraction", "a fraction in (0, 1], got \(fraction)") }
            if !(share >= 0 && share <= 1) { fail("dirty.hot_share", "a fraction in [0, 1], got \(share)") }
        }
        if dirtyRate > 0, memorySize == 0 {
            fail("dirty.rate", "\(rate(0)) for a device with no memory, got \(rate(dirtyRate))")
        }
        return found
    }
}

/// A configuration rule that does not hold, naming the key and what is expected.
public struct ConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    public var key: String
    public var message: String
    public init(key: String, message: String) {
        self.key = key
        self.message = message
    }
    public var description: String { "\(key): expected \(message)" }
}

/// How power-on memory is filled.
public enum MemoryFill: String, Sendable, Hashable, Codable, CaseIterable {
    /// Pseudo-random bytes derived from the seed and the device identity.
    case random
    /// All zero (every device of the type then powers on identical: digests prove less).
    case zero
}

/// Which pages a running device rewrites.
public enum DirtyPattern: Sendable, Hashable {
    /// Any page with equal probability.
    case uniform
    /// `share` of the writes go to the first `fraction` of the pages, the rest anywhere.
    case hotSet(fraction: Double, share: Double)
    /// A sweep from page 0 upwards, wrapping around.
    case sequential
}

/// Where time comes from.
public enum ClockMode: String, Sendable, Hashable, Codable {
    /// Advances only with the bytes the client moves, at the link bandwidth: fully deterministic.
    case virtual
    /// Real elapsed time: for soak runs; not reproducible.
    case wall
}

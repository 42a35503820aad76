import Logging
import MigrationProtocol
import SystemPackage

/// The vendor driver's side of one device's VFIO migration v1 region: it answers every access to
/// the trapped header, owns the data section, and drives the simulated device through save and
/// resume sessions exactly as the v14 uapi text (seed 002) and its clarifications settle it.
///
/// Not thread-safe: a caller serving several threads wraps it in a lock. It does no I/O; a stall
/// is returned to the caller to perform.
public final class MigrationRegion {
    public let device: SimulatedDevice
    public var configuration: DeviceConfiguration { device.configuration }
    /// `device_state` as the device holds it, reserved bits included.
    public internal(set) var state: DeviceState
    /// The data section: `configuration.dataSectionSize` bytes at region offset
    /// `RegionLayout.dataSectionOffset`, page aligned, for mapping layers to share. With staging
    /// ahead (`enableStagingAhead`) it is one of two buffers, which trade places when a chunk
    /// built ahead is staged: read it again after each `data_offset` read.
    public internal(set) var dataSection: UnsafeMutableRawBufferPointer
    /// Staging ahead: the other buffer, where the next chunk is built (`StageAhead.swift`).
    var spareSection: UnsafeMutableRawBufferPointer?
    /// Bytes from the start of each buffer past which it holds only zeros: what a chunk built
    /// ahead takes over from the section it replaces beyond its own end.
    var sectionHighWater = 0
    var spareHighWater = 0
    var ahead: StageAhead?
    var saveSessionsStarted: UInt64 = 0
    /// How staging ahead went (chunks built ahead and staged, finished at staging, dropped).
    public internal(set) var stagedAhead = StageAheadFigures()
    /// With `strict`, each protocol violation fails the offending access with `EINVAL`.
    public var strict: Bool
    /// How the client reaches the data section besides pread/pwrite: what the checker can see
    /// of its data accesses (the save-side read rules need every read; see `DataSectionMapping`).
    /// An engine user may read and write `dataSection` itself, so `.direct` is the default; the
    /// mount, which sees every pread and pwrite, says `.none` until the client maps the section.
    public var dataSectionMapping: DataSectionMapping = .direct {
        // A `.direct` user may have written anywhere in the section, unseen.
        didSet { if oldValue == .direct, accessCount > 0 { sectionHighWater = dataSection.count } }
    }
    /// Counts the engine's own writes into `dataSection`: a staged chunk, a client's pwrite, a
    /// fault corrupting it. Stores through the mapping do not count: they carry what the page
    /// cache holds. A layer that copied the section into a page cache knows by an unchanged
    /// count that its copy still is the section.
    public internal(set) var dataSectionWrites: UInt64 = 0
    /// Bytes of migration data copied for this device, by site (the engine's own; a mount adds
    /// the kernel's copies it causes). `intoMemory` is read from the device's memory.
    public var copies: CopyTally {
        get {
            var t = ownCopies
            t.intoMemory = device.memory.bytesCopiedIn
            return t
        }
        set { ownCopies = newValue }
    }
    private var ownCopies = CopyTally()
    public var logger: Logger

    var save: SaveSession?
    var resume: ResumeSession?
    var clock: DeviceClock
    var faults: FaultInjector
    /// Resume: the transaction the client is writing, and the last `data_size` it wrote.
    var transaction = ResumeTransaction()
    var lastDataSizeWritten: UInt64 = 0
    /// Stop-and-copy fault modifiers of the current session.
    var pendingFloor: UInt64?
    var pendingGrowth: UInt64 = 0
    var pendingGrowthStep: UInt64 = 0
    /// The last `pending_bytes` value reported in this session.
    var lastPending: UInt64?
    /// The last `pending_bytes` read of this phase answered 0: the save sequence is over until
    /// `pending_bytes` is read again (or the phase changes).
    var pendingReachedZero = false
    /// Chunk modifiers fired before a chunk was staged (e.g. on the `data_offset` read that stages it).
    var pendingModifiers: [FaultAction] = []
    /// Save figures kept after the session ends, for reports.
    public internal(set) var lastSave: SaveFigures?
    public internal(set) var lastResume: ResumeFigures?
    public internal(set) var violations: [ProtocolViolation] = []
    /// The last failure the device logged (incompatible or corrupted stream, injected fault).
    public internal(set) var lastError: String?
    /// Header and data accesses answered.
    public private(set) var accessCount: UInt64 = 0
    /// Told every access and reset (traces). Nil, the default, costs one check per access.
    public var observer: (any AccessObserver)?

    /// A logger that drops everything: the engine's default, so that library users and tests
    /// see nothing unless they pass their own.
    public static let silentLogger = Logger(label: "mdevsim.device", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Creates the region of a device at power-on (`_RUNNING`). Ends the process when its data
    /// section cannot be allocated: a server of clients uses `make` (RegionAllocation.swift).
    /// - Parameter wallClock: where a device in wall-clock mode takes the time from (the engine
    ///   reads no clock); without one its wall time stands still. Virtual mode ignores it.
    public convenience init(device: SimulatedDevice, strict: Bool = false, logger: Logger = MigrationRegion.silentLogger,
                            wallClock: (any WallClock)? = nil) {
        let bytes = Int(device.configuration.dataSectionSize)
        guard let section = FallibleAllocation.allocateZeroPages(byteCount: bytes) else {
            fatalError("no address space for a data section of \(bytes) bytes")
        }
        self.init(device: device, strict: strict, logger: logger, wallClock: wallClock, dataSection: section)
    }

    /// `dataSection`: `dataSectionSize` bytes of zero pages from `FallibleAllocation.allocateZeroPages`,
    /// owned by the region from now on.
    init(device: SimulatedDevice, strict: Bool, logger: Logger, wallClock: (any WallClock)?, dataSection: UnsafeMutableRawBufferPointer) {
        self.device = device
        self.strict = strict
        self.logger = logger
        let c = device.configuration
        state = DeviceState(rawValue: (c.reservedStateBits & ~DeviceState.mask) | DeviceState.runningBit)
        self.dataSection = dataSection
        clock = DeviceClock(mode: c.clock, bandwidth: c.linkBandwidth, wall: wallClock)
        faults = FaultInjector(faults: c.faults)
    }

    public convenience init(configuration: DeviceConfiguration, identity: String, strict: Bool = false,
                            wallClock: (any WallClock)? = nil, extents: any ExtentProvider = HeapExtents.standard) {
        self.init(device: SimulatedDevice(configuration: configuration, identity: identity, extents: extents), strict: strict,
                  wallClock: wallClock)
    }

    deinit {
        FallibleAllocation.freeZeroPages(dataSection)
        if let spareSection { FallibleAllocation.freeZeroPages(spareSection) }
    }

    /// Total region size: header page plus data section.
    public var regionSize: UInt64 { configuration.regionSize }
    /// Device time in nanoseconds.
    public var now: UInt64 { clock.now }
    /// Names of the faults that fired, in order.
    public var firedFaults: [String] { faults.log }
    var saveSession: SaveSession? { save }
    var resumeSession: ResumeSession? { resume }
    var lastPendingBytes: UInt64? { lastPending }
    /// True while a chunk staged by `data_offset` waits to be consumed.
    public var hasStagedChunk: Bool { save?.staged != nil }

    // MARK: - Accesses

    /// Reads `buffer.count` bytes at region `offset`. Header fields are written little-endian.
    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> AccessResult {
        accessCount += 1
        catchUpWallClock()
        let result = offset < RegionLayout.dataSectionOffset ? readHeader(at: offset, into: buffer) : readData(at: offset, into: buffer)
        if let observer { report(to: observer, read: offset, buffer, result) }
        return result
    }

    /// Reads `count` bytes of the data section at region `offset` (>= the data section's start)
    /// as `read(at:into:)` does, with the same checks and report, but answers with the bytes
    /// where they are: on success, `bytes` points into `dataSection` (a reply sends them from
    /// there, with no copy). They stay valid as long as the region; they change when the engine
    /// stages the next chunk, so a caller sends them before the next access to the region.
    public func readInPlace(at offset: UInt64, count: Int) -> (result: AccessResult, bytes: UnsafeRawBufferPointer) {
        guard offset >= RegionLayout.dataSectionOffset else {
            return (AccessResult(.invalidArgument), UnsafeRawBufferPointer(start: nil, count: 0))
        }
        accessCount += 1
        catchUpWallClock()
        let (result, range) = dataReadRange(at: offset, count: count)
        let bytes = range.map { UnsafeRawBufferPointer(rebasing: dataSection[$0]) } ?? UnsafeRawBufferPointer(start: nil, count: 0)
        if let observer { report(to: observer, read: offset, count: count, returned: bytes, result) }
        return (result, bytes)
    }

    /// Writes `buffer.count` bytes at region `offset`.
    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer) -> AccessResult {
        accessCount += 1
        catchUpWallClock()
        guard offset < RegionLayout.dataSectionOffset else {
            let result = writeData(at: offset, from: buffer)
            observer?.regionAccessed(RegionAccess(device: device.identity, isWrite: true, offset: offset, count: buffer.count,
                                                  bytes: buffer, result: result, staged: nil, applied: nil))
            return result
        }
        guard let observer else { return writeHeader(at: offset, from: buffer) }
        // Taken before the engine runs: a fault can corrupt the section while applying it.
        let applied = mappedBytes(ofDataSizeWrite: offset, buffer)
        defer { applied?.deallocate() }
        let result = writeHeader(at: offset, from: buffer)
        observer.regionAccessed(RegionAccess(device: device.identity, isWrite: true, offset: offset, count: buffer.count,
                                             bytes: buffer, result: result, staged: nil, applied: applied.map { UnsafeRawBufferPointer($0) }))
        return result
    }

    private func report(to observer: any AccessObserver, read offset: UInt64, _ buffer: UnsafeMutableRawBufferPointer, _ result: AccessResult) {
        let returned = (try? result.outcome.get()) ?? 0
        report(to: observer, read: offset, count: buffer.count, returned: UnsafeRawBufferPointer(rebasing: buffer[0..<min(returned, buffer.count)]), result)
    }

    /// `returned`: the bytes the read answers (`count` were asked).
    private func report(to observer: any AccessObserver, read offset: UInt64, count: Int, returned: UnsafeRawBufferPointer, _ result: AccessResult) {
        var staged: UnsafeRawBufferPointer?
        if let range = result.staged {
            let start = Int(range.lowerBound - RegionLayout.dataSectionOffset), end = Int(range.upperBound - RegionLayout.dataSectionOffset)
            staged = UnsafeRawBufferPointer(rebasing: dataSection[start..<min(end, dataSection.count)])
        }
        observer.regionAccessed(RegionAccess(device: device.identity, isWrite: false, offset: offset, count: count,
                                             bytes: returned, result: result, staged: staged, applied: nil))
    }

    /// Reads one header field at its native width: a convenience over `read(at:into:)`.
    public func read(_ field: HeaderField) -> Result<UInt64, Errno> {
        var value: UInt64 = 0
        let result = withUnsafeMutableBytes(of: &value) { read(at: field.offset, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<field.width])) }
        return result.outcome.map { _ in UInt64(littleEndian: value) }
    }

    /// Writes one header field at its native width.
    @discardableResult
    public func write(_ field: HeaderField, _ value: UInt64) -> Result<Void, Errno> {
        let le = value.littleEndian
        return withUnsafeBytes(of: le) { write(at: field.offset, from: UnsafeRawBufferPointer(rebasing: $0[0..<field.width])) }.outcome.map { _ in () }
    }

    /// `VFIO_DEVICE_RESET`: back to `_RUNNING` with power-on memory and config; any migration
    /// session is dropped. The only way out of the error state.
    public func reset() {
        endSave()
        endResume()
        device.powerOn()
        state = DeviceState(rawValue: state.reservedBits | DeviceState.runningBit)
        logger.info("device reset: running with power-on memory")
        observer?.deviceEvent(.reset, device: device.identity, type: nil, errno: nil)
    }

    /// Records a violation noticed outside the region (a second open, by the FUSE layer).
    public func recordViolation(_ rule: ProtocolViolation.Rule, _ explanation: String) {
        violations.append(ProtocolViolation(index: violations.count, rule: rule, state: state.rawValue, access: nil, explanation: explanation))
    }

    func enterError(_ message: String) {
        lastError = message
        logger.error("\(message)")
        endSave()
        endResume()
        state = state.settingError
    }

    /// XORs `count` bytes at `offset` of the data section with 0xFF, up to `limit` (an injected corruption).
    func corrupt(offset: UInt64, count: UInt64, limit: UInt64) {
        guard offset < limit else { return }
        let end = Int(min(offset + count, limit))
        for i in Int(offset)..<end { dataSection[i] ^= 0xFF }
        dataSectionWrites += 1
        sectionHighWater = max(sectionHighWater, end)
    }

    // MARK: - Helpers

    /// The role events count under: source while saving, destination while resuming.
    var role: FaultRole {
        if state.isResuming { return .destination }
        if state.isSaving || save != nil { return .source }
        return .any
    }

    func role(for bits: UInt32) -> FaultRole {
        if bits & DeviceState.savingBit != 0 { return .source }
        return role
    }

    func runDevice(nanoseconds: UInt64) {
        guard state.isRunning, !state.isError, nanoseconds > 0 else { return }
        device.run(nanoseconds: nanoseconds) { page in
            save?.markDirty(page)
        }
    }

    private func catchUpWallClock() {
        guard clock.mode == .wall else { return }
        runDevice(nanoseconds: clock.advance(by: 0))
    }

    /// Records a violation; returns true when the access is to fail: the rule table
    /// (`RuleTable.swift`) says whether it is refused always, only with `strict`, or never.
    @discardableResult
    func violation(_ rule: ProtocolViolation.Rule, _ access: RegionAccessRecord, _ explanation: String) -> Bool {
        violations.append(ProtocolViolation(index: violations.count, rule: rule, state: state.rawValue, access: access, explanation: explanation))
        logger.notice("protocol \(rule.kind.rawValue) [\(rule.rawValue)]: \(explanation)")
        return rule.refuses(strict: strict)
    }
}

extension Dictionary {
    func mapKeys<K: Hashable>(_ transform: (Key) -> K) -> [K: Value] {
        Dictionary<K, Value>(uniqueKeysWithValues: map { (transform($0.key), $0.value) })
    }
}

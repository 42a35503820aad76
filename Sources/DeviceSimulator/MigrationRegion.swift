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
    public private(set) var state: DeviceState
    /// The data section: `configuration.dataSectionSize` bytes at region offset
    /// `RegionLayout.dataSectionOffset`, page aligned, for mapping layers to share.
    public let dataSection: UnsafeMutableRawBufferPointer
    /// With `strict`, each protocol violation fails the offending access with `EINVAL`.
    public var strict: Bool
    public var logger: Logger

    private var save: SaveSession?
    private var resume: ResumeSession?
    private var clock: DeviceClock
    private var faults: FaultInjector
    /// Resume: `data_offset` was read since the last `data_size` write.
    private var resumeOffsetRead = false
    private var lastDataSizeWritten: UInt64 = 0
    /// Stop-and-copy fault modifiers of the current session.
    private var pendingFloor: UInt64?
    private var pendingGrowth: UInt64 = 0
    private var pendingGrowthStep: UInt64 = 0
    /// The last `pending_bytes` value reported in this session.
    private var lastPending: UInt64?
    /// Save figures kept after the session ends, for reports.
    public private(set) var lastSave: SaveFigures?
    public private(set) var lastResume: ResumeFigures?
    public private(set) var violations: [ProtocolViolation] = []
    /// The last failure the device logged (incompatible or corrupted stream, injected fault).
    public private(set) var lastError: String?
    /// Header and data accesses answered.
    public private(set) var accessCount: UInt64 = 0
    /// Told every access and reset (traces). Nil, the default, costs one check per access.
    public var observer: (any AccessObserver)?
    /// Resume: how far from the data section's start the client's successful pwrites of this
    /// transaction cover it without a gap. What lies beyond came through a mapping, and a trace
    /// must carry it for a replay to reproduce the transaction.
    private var pwrittenPrefix: UInt64 = 0

    /// A logger that drops everything: the engine's default, so that library users and tests
    /// see nothing unless they pass their own.
    public static let silentLogger = Logger(label: "mdevsim.device", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Creates the region of a device at power-on (`_RUNNING`). Ends the process when its data
    /// section cannot be allocated: a server of clients uses `make` (RegionAllocation.swift).
    public convenience init(device: SimulatedDevice, strict: Bool = false, logger: Logger = MigrationRegion.silentLogger) {
        let bytes = Int(device.configuration.dataSectionSize)
        self.init(device: device, strict: strict, logger: logger,
                  dataSection: .allocate(byteCount: bytes, alignment: Int(RegionLayout.hostPageSize)))
    }

    /// `dataSection`: `dataSectionSize` bytes, page aligned, owned by the region from now on.
    init(device: SimulatedDevice, strict: Bool, logger: Logger, dataSection: UnsafeMutableRawBufferPointer) {
        self.device = device
        self.strict = strict
        self.logger = logger
        let c = device.configuration
        state = DeviceState(rawValue: (c.reservedStateBits & ~DeviceState.mask) | DeviceState.runningBit)
        self.dataSection = dataSection
        dataSection.initializeMemory(as: UInt8.self, repeating: 0)
        clock = DeviceClock(mode: c.clock, bandwidth: c.linkBandwidth)
        faults = FaultInjector(faults: c.faults)
    }

    public convenience init(configuration: DeviceConfiguration, identity: String, strict: Bool = false) {
        self.init(device: SimulatedDevice(configuration: configuration, identity: identity), strict: strict)
    }

    deinit { dataSection.deallocate() }

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

    /// Writes `buffer.count` bytes at region `offset`.
    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer) -> AccessResult {
        accessCount += 1
        catchUpWallClock()
        guard offset < RegionLayout.dataSectionOffset else {
            let result = writeData(at: offset, from: buffer)
            if result.errno == nil, state.isResuming, offset - RegionLayout.dataSectionOffset <= pwrittenPrefix {
                pwrittenPrefix = max(pwrittenPrefix, offset - RegionLayout.dataSectionOffset + UInt64(buffer.count))
            }
            observer?.regionAccessed(RegionAccess(device: device.identity, isWrite: true, offset: offset, count: buffer.count,
                                                  bytes: buffer, result: result, staged: nil, applied: nil))
            return result
        }
        // Whatever a data_size write applies, the next transaction starts uncovered.
        defer { if offset == HeaderField.dataSize.offset { pwrittenPrefix = 0 } }
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
        var staged: UnsafeRawBufferPointer?
        if let range = result.staged {
            let start = Int(range.lowerBound - RegionLayout.dataSectionOffset), end = Int(range.upperBound - RegionLayout.dataSectionOffset)
            staged = UnsafeRawBufferPointer(rebasing: dataSection[start..<min(end, dataSection.count)])
        }
        observer.regionAccessed(RegionAccess(device: device.identity, isWrite: false, offset: offset, count: buffer.count,
                                             bytes: UnsafeRawBufferPointer(rebasing: buffer[0..<min(returned, buffer.count)]),
                                             result: result, staged: staged, applied: nil))
    }

    /// A copy of what a `data_size` write about to be applied takes from the data section
    /// beyond the bytes the client pwrote (nil when pwrites cover it or nothing is applied).
    private func mappedBytes(ofDataSizeWrite offset: UInt64, _ buffer: UnsafeRawBufferPointer) -> UnsafeMutableRawBufferPointer? {
        guard offset == HeaderField.dataSize.offset, buffer.count == 8, state.isResuming, !state.isError else { return nil }
        let size = UInt64(littleEndian: buffer.loadUnaligned(as: UInt64.self))
        guard size > pwrittenPrefix, size <= UInt64(dataSection.count) else { return nil }
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(size), alignment: 8)
        copy.copyMemory(from: UnsafeRawBufferPointer(rebasing: dataSection[0..<Int(size)]))
        return copy
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

    // MARK: - Header

    private func headerField(_ offset: UInt64, _ count: Int, _ op: RegionAccessRecord.Operation) -> Result<HeaderField, Errno> {
        guard let field = HeaderField.at(offset: offset, width: count) else {
            violation(.accessWidth, RegionAccessRecord(operation: op, offset: offset, count: count),
                      "\(count)-byte \(op.rawValue) at offset \(offset) is not one header field at its native width and alignment")
            return .failure(.invalidArgument)
        }
        return .success(field)
    }

    private func readHeader(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> AccessResult {
        let field: HeaderField
        switch headerField(offset, buffer.count, .read) {
        case .failure(let e): return AccessResult(e)
        case .success(let f): field = f
        }
        var result = AccessResult(count: buffer.count)
        let actions = faults.fire(.access(field, .read), role: role)
        if let failure = applyFaults(actions, to: &result) { return failure }

        let value: UInt64
        switch readField(field, result: &result) {
        case .failure(let e):
            return AccessResult(e, stall: result.stallNanoseconds)
        case .success(let v):
            value = v
        }
        withUnsafeBytes(of: value.littleEndian) { bytes in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[0..<field.width]))
        }
        result.value = value
        return result
    }

    private func readField(_ field: HeaderField, result: inout AccessResult) -> Result<UInt64, Errno> {
        let access = RegionAccessRecord(operation: .read, offset: field.offset, count: field.width)
        switch field {
        case .deviceState:
            return .success(UInt64(state.rawValue))
        case .reserved:
            return .success(0)
        case .pendingBytes:
            if state.isError { return .failure(.ioError) }
            return .success(readPendingBytes())
        case .dataOffset:
            if state.isError { return .failure(.ioError) }
            if state.isResuming {
                resumeOffsetRead = true
                return .success(RegionLayout.dataSectionOffset)
            }
            guard state.isSaving, save != nil else { return .failure(.invalidArgument) }
            return stageIfNeeded(result: &result)
        case .dataSize:
            if state.isError { return .failure(.ioError) }
            if state.isResuming { return .success(lastDataSizeWritten) }
            guard state.isSaving, let session = save else { return .success(0) }
            guard let staged = session.staged else {
                if violation(.dataSizeWithoutOffset, access, "data_size read with no chunk staged: read data_offset first") {
                    return .failure(.invalidArgument)
                }
                return .success(0)
            }
            return .success(staged.reportedSize)
        }
    }

    /// `pending_bytes`: consumes a staged chunk, then reports what is left of the current phase.
    private func readPendingBytes() -> UInt64 {
        guard state.isSaving, save != nil else { return 0 }
        let phase: MigrationPhase = state.isRunning ? .preCopy : .stopAndCopy
        // Sessions are mutated in place (`save?.`): a copy would duplicate the dirty bitmap,
        // pageCount / 8 bytes, on every access.
        if let consumed = save?.consumeStaged() {
            // The client moved the chunk: that takes link time, during which a running device works.
            let passed = clock.advance(by: clock.transferTime(bytes: consumed.size))
            runDevice(nanoseconds: passed)
        }
        var pending = save?.plannedBytes(in: phase) ?? 0
        if phase == .stopAndCopy {
            pendingGrowth += pendingGrowthStep
            pending += pendingGrowth
            if pending == 0, let floor = pendingFloor { pending = floor }
        }
        lastPending = pending
        return pending
    }

    /// `data_offset` while saving: stages the next chunk unless one is staged already, and returns
    /// only when its bytes are in the data section.
    private func stageIfNeeded(result: inout AccessResult) -> Result<UInt64, Errno> {
        if let staged = save?.staged { return .success(staged.reportedOffset) }
        // Taken out of `save` so that it is unique and staging clears bitmap bits in place.
        guard var session = save else { return .failure(.invalidArgument) }
        save = nil
        let phase: MigrationPhase = state.isRunning ? .preCopy : .stopAndCopy
        let size = session.stage(into: dataSection, phase: phase, device: device)
        var staged = SaveSession.Staged(offset: RegionLayout.dataSectionOffset, size: size, phase: phase)
        for action in pendingModifiers { apply(action, to: &staged, result: &result) }
        pendingModifiers = []
        if size > 0 {
            let index = session.chunksStaged[phase, default: 0]
            let phaseBytes = session.bytesConsumed[phase, default: 0] + size
            let total = session.bytesConsumed.values.reduce(0, +) + size
            let actions = faults.fire(.chunk(phase: phase, index: index, phaseBytes: phaseBytes, totalBytes: total), role: role)
            for action in actions {
                switch action {
                case .fail(let e), .failToErrorState(let e):
                    // The driver could not produce the chunk: nothing is staged, the pages stay owed.
                    if case .failToErrorState = action { enterError("fault: staging chunk \(index) of \(phase.rawValue) failed") }
                    else { restartSaveAfterFailedStage(phase: phase) }
                    return .failure(e)
                default:
                    apply(action, to: &staged, result: &result)
                }
            }
        }
        session.staged = staged
        save = session
        result.staged = size > 0 ? staged.offset..<(staged.offset + size) : nil
        return .success(staged.reportedOffset)
    }

    /// After an injected staging failure the session goes on, but the chunk's pages are owed
    /// again: the simplest faithful model is a fresh pass over all memory.
    private func restartSaveAfterFailedStage(phase: MigrationPhase) {
        save = SaveSession(configuration: configuration)
        lastError = "fault: staging a \(phase.rawValue) chunk failed"
    }

    private func writeHeader(at offset: UInt64, from buffer: UnsafeRawBufferPointer) -> AccessResult {
        var raw: UInt64 = 0
        withUnsafeMutableBytes(of: &raw) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: buffer[0..<min(8, buffer.count)])) }
        let value = UInt64(littleEndian: raw)
        let field: HeaderField
        switch headerField(offset, buffer.count, .write) {
        case .failure(let e): return AccessResult(e)
        case .success(let f): field = f
        }
        let access = RegionAccessRecord(operation: .write, offset: offset, count: buffer.count, value: value)
        var result = AccessResult(count: buffer.count)
        let actions = faults.fire(.access(field, .write), role: role)
        if let failure = applyFaults(actions, to: &result) { return failure }

        switch field.access {
        case .reserved:
            return result
        case .readOnly:
            violation(.readOnlyWrite, access, "\(field.rawValue) is read only")
            return AccessResult(.invalidArgument, stall: result.stallNanoseconds)
        case .readWrite:
            break
        }
        let outcome: Result<Void, Errno> = field == .deviceState
            ? writeDeviceState(UInt32(truncatingIfNeeded: value), access: access, result: &result)
            : writeDataSize(value, access: access, result: &result)
        if case .failure(let e) = outcome { return AccessResult(e, stall: result.stallNanoseconds) }
        return result
    }

    // MARK: - device_state

    private func writeDeviceState(_ value: UInt32, access: RegionAccessRecord, result: inout AccessResult) -> Result<Void, Errno> {
        let written = DeviceState(rawValue: value)
        let from = state.bits, to = written.bits
        if written.reservedBits != state.reservedBits {
            let explanation = "device_state write 0x\(String(value, radix: 16)) changes reserved bits 0x\(String(state.reservedBits, radix: 16)) -> 0x\(String(written.reservedBits, radix: 16)); the device keeps its own"
            if violation(.reservedBits, access, explanation) { return .failure(.invalidArgument) }
        }
        let decision = TransitionTable.decision(from: from, to: to)
        // Faults see every write that asks for a state, allowed or not.
        let actions = faults.fire(.stateWrite(from: from, to: to), role: to == DeviceState.resumingBit ? .destination : role(for: to))
        if decision == .rejected || decision == .unreachable {
            let reason = TransitionTable.reason(from: from, to: to)
            if !written.isValid || state.isError {
                violation(.invalidState, access, "device_state \(DeviceState.name(ofBits: from)) -> \(DeviceState.name(ofBits: to)): \(reason)")
            }
            logger.info("device_state write \(DeviceState.name(ofBits: from)) -> \(DeviceState.name(ofBits: to)) rejected: \(reason)")
            return .failure(.invalidArgument)
        }
        let transition = "transition \(DeviceState.name(ofBits: from)) -> \(DeviceState.name(ofBits: to))"
        if let failure = applyFaults(actions, to: &result, what: transition), let e = failure.errno {
            return .failure(e)
        }
        if decision == .unchanged { return .success(()) }

        // Leaving stop-and-copy for stop with bytes still pending.
        if from == DeviceState.stopAndCopy.bits, to == DeviceState.stop.bits, let session = save {
            let left = session.plannedBytes(in: .stopAndCopy) + (session.staged.map { $0.size } ?? 0)
            if left > 0, violation(.stopWithPending, access, "stop-and-copy -> stop with \(left) bytes still pending") {
                return .failure(.invalidArgument)
            }
        }
        if to == DeviceState.running.bits, from == DeviceState.resuming.bits, let session = resume, session.started, !session.complete {
            lastError = "resuming -> running with an incomplete stream (\(session.chunksApplied) chunks, no end marker)"
            logger.warning("\(lastError ?? "")")
            return .failure(.invalidArgument)
        }
        perform(from: from, to: to)
        state = state.with(bits: to)
        logger.debug("device_state \(DeviceState.name(ofBits: from)) -> \(DeviceState.name(ofBits: to))")
        return .success(())
    }

    /// The effects of an allowed transition on sessions.
    private func perform(from: UInt32, to: UInt32) {
        let wasSaving = from & DeviceState.savingBit != 0 && from != DeviceState.error.bits
        let willSave = to & DeviceState.savingBit != 0
        if wasSaving, !willSave { endSave() }
        if !wasSaving, willSave { save = SaveSession(configuration: configuration) }
        if from == DeviceState.resuming.bits, to != DeviceState.resuming.bits { endResume() }
        if to == DeviceState.resuming.bits, from != DeviceState.resuming.bits {
            resume = ResumeSession(configuration: configuration)
            resumeOffsetRead = false
            lastDataSizeWritten = 0
            pwrittenPrefix = 0
        }
    }

    private func endSave() {
        if let s = save {
            lastSave = SaveFigures(
                bytes: s.bytesConsumed.mapKeys(\.rawValue), chunks: s.chunksConsumed.mapKeys(\.rawValue),
                pagesSent: s.pagesSent, streamComplete: s.streamComplete)
        }
        save = nil
        pendingModifiers = []
        pendingFloor = nil
        pendingGrowth = 0
        pendingGrowthStep = 0
        lastPending = nil
    }

    private func endResume() {
        if let r = resume {
            lastResume = ResumeFigures(
                chunks: r.chunksApplied, transactions: r.writes, bytes: r.bytesApplied,
                pagesApplied: r.pagesApplied, complete: r.complete, deviations: r.deviations)
        }
        resume = nil
    }

    private func enterError(_ message: String) {
        lastError = message
        logger.error("\(message)")
        endSave()
        endResume()
        state = state.settingError
    }

    // MARK: - data_size (resume)

    private func writeDataSize(_ size: UInt64, access: RegionAccessRecord, result: inout AccessResult) -> Result<Void, Errno> {
        if state.isError { return .failure(.ioError) }
        guard state.isResuming, var session = resume else {
            logger.info("data_size write outside _RESUMING rejected")
            return .failure(.invalidArgument)
        }
        guard size <= configuration.dataSectionSize else {
            lastError = "data_size \(size) exceeds the data section (\(configuration.dataSectionSize) bytes)"
            return .failure(.invalidArgument)
        }
        if !resumeOffsetRead, violation(.dataSizeWithoutOffset, access, "data_size written without reading data_offset first") {
            return .failure(.invalidArgument)
        }
        resumeOffsetRead = false
        lastDataSizeWritten = size
        guard size > 0 else { return .success(()) }

        let actions = faults.fire(.chunk(phase: .resuming, index: session.writes + 1,
                                         phaseBytes: session.bytesApplied + size, totalBytes: session.bytesApplied + size),
                                  role: .destination)
        for action in actions {
            switch action {
            case .fail(let e):
                lastError = "fault: applying resume transaction \(session.writes + 1) failed"
                return .failure(e)
            case .failToErrorState(let e):
                enterError("fault: applying resume transaction \(session.writes + 1) failed, device in error state")
                return .failure(e)
            case .corruptChunk(let offset, let count):
                corrupt(offset: offset, count: count, limit: size)
            case .stall(let ns):
                result.stallNanoseconds += ns
                _ = clock.advance(by: ns)
            default:
                break
            }
        }
        let deviationsBefore = session.deviations.count
        // Unique while applying, so its buffers are mutated in place.
        resume = nil
        do {
            try session.apply(UnsafeRawBufferPointer(rebasing: dataSection[0..<Int(size)]), to: device)
        } catch {
            resume = session
            enterError("resume failed: \(error.message)")
            return .failure(error.errno)
        }
        for deviation in session.deviations[deviationsBefore...] {
            // QEMU splits chunks that do not fit the destination's data section: recorded, not refused.
            recordViolation(.resumeTransactions, deviation)
        }
        resume = session
        _ = clock.advance(by: clock.transferTime(bytes: size))
        return .success(())
    }

    // MARK: - Data section

    private func readData(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> AccessResult {
        let access = RegionAccessRecord(operation: .read, offset: offset, count: buffer.count)
        guard offset < regionSize else { return AccessResult(count: 0) }
        var count = Int(min(UInt64(buffer.count), regionSize - offset))
        if let session = save, let staged = session.staged, let limit = staged.shortRead {
            count = min(count, Int(limit))
        }
        if let refusal = checkDataWindow(offset: offset, count: count, access: access) { return refusal }
        let start = Int(offset - RegionLayout.dataSectionOffset)
        buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: dataSection[start..<(start + count)]))
        return AccessResult(count: count)
    }

    private func writeData(at offset: UInt64, from buffer: UnsafeRawBufferPointer) -> AccessResult {
        let access = RegionAccessRecord(operation: .write, offset: offset, count: buffer.count)
        guard offset + UInt64(buffer.count) <= regionSize else { return AccessResult(.invalidArgument) }
        if let refusal = checkDataWindow(offset: offset, count: buffer.count, access: access) { return refusal }
        let start = Int(offset - RegionLayout.dataSectionOffset)
        UnsafeMutableRawBufferPointer(rebasing: dataSection[start..<(start + buffer.count)]).copyMemory(from: buffer)
        return AccessResult(count: buffer.count)
    }

    /// The checker's view of a data-section access: inside the window the device made available.
    private func checkDataWindow(offset: UInt64, count: Int, access: RegionAccessRecord) -> AccessResult? {
        let end = offset + UInt64(count)
        var problem: (ProtocolViolation.Rule, String)?
        if state.isResuming {
            if access.operation == .read {
                problem = (.dataOutsideWindow, "data section read while resuming: the client writes there")
            } else if !resumeOffsetRead {
                problem = (.dataBeforeOffset, "data written at \(offset) before reading data_offset")
            }
        } else if state.isSaving, let session = save {
            if let staged = session.staged {
                if access.operation == .write {
                    problem = (.dataOutsideWindow, "data section written while saving")
                } else if offset < staged.offset || end > staged.offset + staged.size {
                    problem = (.dataOutsideWindow, "data read at \(offset)..<\(end), outside [\(staged.offset), \(staged.offset + staged.size))")
                }
            } else {
                problem = (.dataBeforeOffset, "data section \(access.operation.rawValue) at \(offset) with no chunk staged: read data_offset first")
            }
        } else {
            problem = (.dataOutsideWindow, "data section \(access.operation.rawValue) in \(state.name): no migration session")
        }
        if let (rule, text) = problem, violation(rule, access, text) { return AccessResult(.invalidArgument) }
        return nil
    }

    // MARK: - Faults

    /// Applies the faults fired by a header access or a state write (`what`, for messages);
    /// returns the failure to answer, if any. Chunk modifiers change the staged chunk, or the
    /// next one staged when none is.
    private func applyFaults(_ actions: [FaultAction], to result: inout AccessResult, what: String = "access") -> AccessResult? {
        for action in actions {
            switch action {
            case .fail(let e):
                lastError = "fault: \(what) failed with \(e)"
                return AccessResult(e, stall: result.stallNanoseconds)
            case .failToErrorState(let e):
                enterError("fault: \(what) failed with \(e), device in error state")
                return AccessResult(e, stall: result.stallNanoseconds)
            case .stall(let ns):
                result.stallNanoseconds += ns
                runDevice(nanoseconds: clock.advance(by: ns))
            case .pendingNeverZero(let remaining):
                pendingFloor = remaining
            case .pendingGrows(let bytes):
                pendingGrowthStep = bytes
            case .corruptChunk, .oversizeDataSize, .misalignedDataOffset, .overlappingDataOffset, .shortRead:
                if var session = save, var staged = session.staged {
                    apply(action, to: &staged, result: &result)
                    session.staged = staged
                    save = session
                } else {
                    pendingModifiers.append(action)
                }
            }
        }
        return nil
    }

    /// Chunk modifiers fired before a chunk was staged (e.g. on the `data_offset` read that stages it).
    private var pendingModifiers: [FaultAction] = []

    private func apply(_ action: FaultAction, to staged: inout SaveSession.Staged, result: inout AccessResult) {
        switch action {
        case .corruptChunk(let offset, let count):
            corrupt(offset: offset, count: count, limit: staged.size)
        case .oversizeDataSize:
            staged.reportedSize = configuration.dataSectionSize + RegionLayout.hostPageSize
        case .misalignedDataOffset:
            staged.reportedOffset = staged.offset + 8
        case .overlappingDataOffset:
            staged.reportedOffset = HeaderField.dataOffset.offset
        case .shortRead(let bytes):
            staged.shortRead = bytes
        case .stall(let ns):
            result.stallNanoseconds += ns
        case .pendingNeverZero(let remaining):
            pendingFloor = remaining
        case .pendingGrows(let bytes):
            pendingGrowthStep = bytes
        case .fail, .failToErrorState:
            break
        }
    }

    private func corrupt(offset: UInt64, count: UInt64, limit: UInt64) {
        guard offset < limit else { return }
        let end = Int(min(offset + count, limit))
        for i in Int(offset)..<end { dataSection[i] ^= 0xFF }
    }

    // MARK: - Helpers

    /// The role events count under: source while saving, destination while resuming.
    private var role: FaultRole {
        if state.isResuming { return .destination }
        if state.isSaving || save != nil { return .source }
        return .any
    }

    private func role(for bits: UInt32) -> FaultRole {
        if bits & DeviceState.savingBit != 0 { return .source }
        return role
    }

    private func runDevice(nanoseconds: UInt64) {
        guard state.isRunning, !state.isError, nanoseconds > 0 else { return }
        device.run(nanoseconds: nanoseconds) { page in
            save?.markDirty(page)
        }
    }

    private func catchUpWallClock() {
        guard clock.mode == .wall else { return }
        runDevice(nanoseconds: clock.advance(by: 0))
    }

    /// Records a violation; returns true when `strict` turns it into a failure.
    @discardableResult
    private func violation(_ rule: ProtocolViolation.Rule, _ access: RegionAccessRecord, _ explanation: String) -> Bool {
        violations.append(ProtocolViolation(index: violations.count, rule: rule, state: state.rawValue, access: access, explanation: explanation))
        logger.notice("protocol violation [\(rule.rawValue)]: \(explanation)")
        return strict
    }
}

extension Dictionary {
    func mapKeys<K: Hashable>(_ transform: (Key) -> K) -> [K: Value] {
        Dictionary<K, Value>(uniqueKeysWithValues: map { (transform($0.key), $0.value) })
    }
}

import Logging
import MigrationProtocol
import SystemPackage

/// The vendor driver's side of one device speaking VFIO migration v2 (`<linux/vfio.h>`,
/// Linux >= 5.18, PRE_COPY since 6.2): `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE` SET and GET, the
/// data_fd of each data transfer session, `VFIO_MIG_GET_PRECOPY_INFO` and
/// `VFIO_DEVICE_FEATURE_MIG_DATA_SIZE`, on the same simulated device, stream and dirty model as v1.
///
/// A data_fd is named by its session number: every arc that starts a session (into PRE_COPY,
/// PRE_COPY_P2P, STOP_COPY from outside the saving group, or into RESUMING) returns a new one,
/// and every access names the session it was opened for, so that a stale data_fd is told apart.
///
/// Not thread-safe: a caller serving several threads wraps it in a lock. It does no I/O.
public final class V2Device {
    public let device: SimulatedDevice
    public var configuration: DeviceConfiguration { device.configuration }
    /// What `VFIO_DEVICE_FEATURE_MIGRATION` GET reports.
    public let features: V2MigrationFeatures
    public private(set) var state: V2DeviceState = .running
    /// With `strict`, each protocol violation fails the offending call with `EINVAL`.
    public var strict: Bool
    public var logger: Logger
    /// Told every v2 call the device answers (a trace), if set.
    public var observer: (any AccessObserver)?

    private var clock: DeviceClock
    private var faults: V2Faults
    /// Nanoseconds the last calls must wait (injected stalls), for the host to sleep: the engine
    /// does no I/O. Taken with `takeStall()`.
    public private(set) var stallOwed: UInt64 = 0
    /// A fault broke the current save session: reads fail, and leaving its state fails into ERROR.
    private var saveBroken: String?
    /// An errno a fault gave at staging after the read had already copied bytes: the next read's.
    private var heldReadError: Errno?
    private var save: V2SaveStream?
    private var resume: ResumeSession?
    /// The resume stream was found broken by a write; leaving RESUMING then fails.
    private var resumeFailure: String?
    /// The session number of the current data_fd, if a session is open.
    public private(set) var currentSession: UInt64?
    private var lastSessionNumber: UInt64 = 0
    public private(set) var violations: [ProtocolViolation] = []
    /// The last failure the device logged (a stream it could not load, a refused arc).
    public private(set) var lastError: String?
    /// Every state the device entered, in order (each arc of a walk), for reports and tests.
    public private(set) var stateLog: [V2DeviceState] = []
    public private(set) var lastSave: SaveFigures?
    public private(set) var lastResume: ResumeFigures?
    /// Device DMA logging: what START gave.
    public private(set) var dmaLog = DMALog()

    /// Creates the v2 face of a device at power-on (RUNNING); `.stopCopy` is always offered.
    /// - Parameter wallClock: where a device in wall-clock mode takes the time from (the engine
    ///   reads no clock). Virtual mode ignores it.
    public init(device: SimulatedDevice, features: V2MigrationFeatures, strict: Bool = false,
                logger: Logger = MigrationRegion.silentLogger, wallClock: (any WallClock)? = nil) {
        self.device = device
        self.features = features.union(.stopCopy)
        self.strict = strict
        self.logger = logger
        clock = DeviceClock(mode: device.configuration.clock, bandwidth: device.configuration.linkBandwidth, wall: wallClock)
        faults = V2Faults(faults: device.configuration.faults)
    }

    /// Names of the faults that fired, in order.
    public var firedFaults: [String] { faults.log }

    /// The injected wait the host owes the last calls; zero afterwards.
    public func takeStall() -> UInt64 {
        defer { stallOwed = 0 }
        return stallOwed
    }

    deinit { save?.release() }

    /// Device time in nanoseconds.
    public var now: UInt64 { clock.now }

    /// What a SET did.
    public struct SetOutcome: Sendable, Hashable {
        /// The state the device is in afterwards.
        public var state: V2DeviceState
        /// The session number of the new data_fd, when an arc of the walk started a session.
        public var newSession: UInt64?
    }

    /// A SET failure: the errno and the state the device was left in, which may be any state
    /// along the walk, or ERROR.
    public struct SetFailure: Error, Sendable, Hashable {
        public var errno: Errno
        public var state: V2DeviceState
        public var reason: String
    }

    // MARK: - MIG_DEVICE_STATE

    /// `VFIO_DEVICE_FEATURE_SET` of `MIG_DEVICE_STATE`: walks the kernel's path one arc at a time.
    public func set(_ target: V2DeviceState) -> Result<SetOutcome, SetFailure> {
        let from = state
        let outcome = walk(to: target)
        if let observer {
            let session: UInt64? = if case .success(let o) = outcome { o.newSession } else { nil }
            let errno: Errno? = if case .failure(let f) = outcome { f.errno } else { nil }
            observer.v2Called(V2Call(device: device.identity, kind: .set, from: from, to: target, state: state, session: session, errno: errno))
        }
        return outcome
    }

    /// `VFIO_DEVICE_FEATURE_GET` of `MIG_DEVICE_STATE`: the state, as a call a trace records.
    public func get() -> V2DeviceState {
        observer?.v2Called(V2Call(device: device.identity, kind: .get, state: state))
        return state
    }

    private func walk(to target: V2DeviceState) -> Result<SetOutcome, SetFailure> {
        if target == .error,
           violation(.v2SetError, "SET of ERROR: only the device enters it (VFIO_DEVICE_STATE_ERROR cannot be specified)"), state == .error {
            // The drivers' `while (cur != new)` loop would succeed here; strict refuses.
            return .failure(SetFailure(errno: .invalidArgument, state: state, reason: "SET of ERROR"))
        }
        let path: [V2DeviceState]
        switch V2TransitionTable.path(from: state, to: target, features: features) {
        case .failure(let refusal):
            if case .inError = refusal { violation(.v2SetInError, "SET \(target) while in ERROR: only VFIO_DEVICE_RESET leaves it") }
            if case .unsupported(let s) = refusal { violation(.v2UnsupportedState, "SET \(target): \(s) is not offered (features 0x\(String(features.rawValue, radix: 16)))") }
            logger.info("SET \(target) from \(state) refused: \(refusal)")
            return .failure(SetFailure(errno: .invalidArgument, state: state, reason: refusal.description))
        case .success(let p):
            path = p
        }
        var newSession: UInt64?
        for next in path {
            if let failure = fireArcFaults(to: next) {
                lastError = failure.reason
                return .failure(failure)
            }
            switch perform(from: state, to: next) {
            case .failure(let failure):
                lastError = failure.reason
                logger.warning("SET \(target): arc \(state) -> \(next) failed: \(failure.reason)")
                return .failure(failure)
            case .success(let session):
                if let session { newSession = session }
                state = next
                stateLog.append(next)
            }
        }
        logger.debug("SET \(target): now \(state)")
        return .success(SetOutcome(state: state, newSession: newSession))
    }

    /// The faults an arc fires, acted on; the failure of the SET if one fails it.
    private func fireArcFaults(to next: V2DeviceState) -> SetFailure? {
        for action in faults.arc(from: state, to: next) {
            switch action {
            case .fail(let e):
                return SetFailure(errno: e, state: state, reason: "fault: arc \(state) -> \(next) failed with \(e)")
            case .failToErrorState(let e):
                let reason = "fault: arc \(state) -> \(next) failed with \(e), device in ERROR"
                enterError(reason)
                return SetFailure(errno: e, state: .error, reason: reason)
            case .stall(let ns):
                stall(ns)
            default:
                faults.note(action)
            }
        }
        return nil
    }

    private func stall(_ ns: UInt64) {
        stallOwed += ns
        let passed = clock.advance(by: ns)
        if var stream = save {
            save = nil
            runDevice(nanoseconds: passed, stream: &stream)
            save = stream
        } else if state.isRunning {
            device.run(nanoseconds: passed) { _ in }
        }
    }

    /// One arc: its effect on sessions; the new session number if it started one.
    private func perform(from: V2DeviceState, to: V2DeviceState) -> Result<UInt64?, SetFailure> {
        switch (from, to) {
        case (.running, .preCopy), (.runningP2P, .preCopyP2P), (.stop, .stopCopy):
            save?.release()
            save = V2SaveStream(configuration: configuration)
            saveBroken = nil
            heldReadError = nil
            return .success(openSession())
        case (.preCopy, .running), (.preCopyP2P, .runningP2P), (.stopCopy, .stop):
            if let broken = saveBroken {
                // The driver cannot bring a device whose save broke back to a valid state.
                let reason = "leaving \(from) after the save session broke: \(broken)"
                enterError(reason)
                return .failure(SetFailure(errno: .ioError, state: .error, reason: reason))
            }
            endSave()
            currentSession = nil
            return .success(nil)
        case (.stop, .resuming):
            resume = ResumeSession(configuration: configuration)
            resumeFailure = nil
            return .success(openSession())
        case (.resuming, .stop):
            return judgeResume().map { nil }
        default:
            return .success(nil)
        }
    }

    private func openSession() -> UInt64 {
        lastSessionNumber += 1
        currentSession = lastSessionNumber
        return lastSessionNumber
    }

    /// Leaving RESUMING: the uAPI asks the driver to "perform final validity and consistency
    /// checking of the new device state" and to fail the SET if the data is "incomplete,
    /// inconsistent, or otherwise invalid". The device then cannot hold any valid state with
    /// half a stream applied, so it goes to ERROR (the uAPI's "optionally go to the ERROR
    /// state"), which only a reset leaves; QEMU resets a device whose SET fails that way.
    private func judgeResume() -> Result<Void, SetFailure> {
        let session = resume
        endResume()
        currentSession = nil
        var reason: String?
        if let failure = resumeFailure {
            reason = "the stream written to the data_fd cannot be loaded: \(failure)"
        } else if let session, !session.complete {
            reason = session.started
                ? "RESUMING left with an incomplete stream (\(session.chunksApplied) chunks, no end marker)"
                : "RESUMING left before any stream byte was written"
            violation(.v2ResumeIncomplete, reason ?? "")
        }
        guard let reason else { return .success(()) }
        enterError(reason)
        return .failure(SetFailure(errno: .invalidArgument, state: .error, reason: reason))
    }

    // MARK: - The data_fd

    /// `read()` on the data_fd of `session`: the next stream bytes. In a pre-copy state with
    /// nothing more for now it fails with `ENOMSG` (the uAPI's temporary end of stream); in
    /// STOP_COPY it returns 0 at the end of the stream.
    public func read(session: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Result<Int, Errno> {
        let outcome = readStream(session: session, into: buffer)
        if let observer {
            let n = (try? outcome.get()) ?? 0
            observer.v2Called(V2Call(device: device.identity, kind: .read, session: session, count: buffer.count,
                                     bytes: UnsafeRawBufferPointer(rebasing: buffer[0..<n]), errno: outcome.failureErrno))
        }
        return outcome
    }

    private func readStream(session: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Result<Int, Errno> {
        if let refusal = checkSession(session, reading: true) { return .failure(refusal) }
        guard state.isSaving, var stream = save else { return .failure(.badFileDescriptor) }
        if let e = heldReadError {
            heldReadError = nil
            return .failure(e)
        }
        if let broken = saveBroken {
            logger.info("data_fd read after the save broke: \(broken)")
            return .failure(.ioError)
        }
        save = nil
        let phase: MigrationPhase = state == .stopCopy ? .stopAndCopy : .preCopy
        var stalls: UInt64 = 0
        let outcome = stream.read(into: buffer, phase: phase, device: device, cap: faults.shortRead) { index, phaseBytes, total, chunk in
            faults.chunkStaged()
            for action in faults.chunk(phase, index: index, phaseBytes: phaseBytes, totalBytes: total) {
                switch action {
                case .fail(let e):
                    return e
                case .failToErrorState(let e):
                    saveBroken = "fault: staging chunk \(index) of \(phase.rawValue) failed with \(e)"
                    return e
                case .corruptChunk(let offset, let count):
                    guard offset < UInt64(chunk.count) else { continue }
                    for i in Int(offset)..<Int(min(offset + count, UInt64(chunk.count))) { chunk[i] ^= 0xFF }
                case .stall(let ns):
                    stalls += ns
                default:
                    faults.note(action)
                }
            }
            return nil
        }
        // The client moved whole chunks: link time passes, during which a running device works.
        if outcome.moved > 0 { runDevice(nanoseconds: clock.advance(by: clock.transferTime(bytes: outcome.moved)), stream: &stream) }
        save = stream
        if stalls > 0 { stall(stalls) }
        if let e = outcome.error {
            lastError = saveBroken ?? "fault: staging a \(phase.rawValue) chunk failed with \(e)"
            guard outcome.count > 0 else { return .failure(e) }
            heldReadError = e
        }
        if outcome.count == 0, phase == .preCopy { return .failure(.noMessage) }
        return .success(outcome.count)
    }

    /// `write()` on the data_fd of `session`: stream bytes in any segmentation.
    public func write(session: UInt64, from buffer: UnsafeRawBufferPointer) -> Result<Int, Errno> {
        let outcome = writeStream(session: session, from: buffer)
        observer?.v2Called(V2Call(device: device.identity, kind: .write, session: session, count: buffer.count, bytes: buffer,
                                  errno: outcome.failureErrno))
        return outcome
    }

    private func writeStream(session: UInt64, from buffer: UnsafeRawBufferPointer) -> Result<Int, Errno> {
        if let refusal = checkSession(session, reading: false) { return .failure(refusal) }
        guard state == .resuming, var stream = resume else { return .failure(.badFileDescriptor) }
        if let failure = resumeFailure {
            logger.info("data_fd write after the stream broke: \(failure)")
            return .failure(.invalidArgument)
        }
        resume = nil
        defer { resume = stream }
        var corrupted: [UInt8]?
        let index = stream.writes + 1, applied = stream.bytesApplied + UInt64(buffer.count)
        for action in faults.chunk(.resuming, index: index, phaseBytes: applied, totalBytes: applied) {
            switch action {
            case .fail(let e):
                lastError = "fault: applying write \(index) failed with \(e)"
                return .failure(e)
            case .failToErrorState(let e):
                resumeFailure = "fault: applying write \(index) failed with \(e)"
                lastError = resumeFailure
                return .failure(e)
            case .corruptChunk(let offset, let count):
                var copy = corrupted ?? Array(buffer)
                if offset < UInt64(copy.count) {
                    for i in Int(offset)..<Int(min(offset + count, UInt64(copy.count))) { copy[i] ^= 0xFF }
                }
                corrupted = copy
            case .stall(let ns):
                stall(ns)
            default:
                break
            }
        }
        let applying: Result<Void, ResumeSession.Failure>
        if let corrupted {
            applying = corrupted.withUnsafeBytes { b in Result { () throws(ResumeSession.Failure) in try stream.apply(b, to: device) } }
        } else {
            applying = Result { () throws(ResumeSession.Failure) in try stream.apply(buffer, to: device) }
        }
        if case .failure(let error) = applying {
            resumeFailure = error.message
            lastError = error.message
            logger.warning("resume stream refused: \(error.message)")
            return .failure(.invalidArgument)
        }
        _ = clock.advance(by: clock.transferTime(bytes: UInt64(buffer.count)))
        return .success(buffer.count)
    }

    /// A data_fd of an ended session answers `ENODEV`, as mlx5's does once its file is disabled;
    /// a save data_fd is not written and a resume one not read (`EBADF`, their open modes).
    private func checkSession(_ session: UInt64, reading: Bool) -> Errno? {
        guard session == currentSession else {
            violation(.v2StaleDataFD, "data_fd of session \(session) used after that session ended (current: \(currentSession.map(String.init) ?? "none"), state \(state))")
            return .operationNotSupportedByDevice
        }
        if reading, state == .resuming {
            violation(.v2DataFDDirection, "read() on the data_fd of a resume session")
            return .badFileDescriptor
        }
        if !reading, state.isSaving {
            violation(.v2DataFDDirection, "write() on the data_fd of a save session")
            return .badFileDescriptor
        }
        return nil
    }

    // MARK: - Sizes

    /// `VFIO_MIG_GET_PRECOPY_INFO` on the data_fd of `session` (nil: the current session's):
    /// valid only in PRE_COPY and PRE_COPY_P2P (`EINVAL` elsewhere, as the uAPI says).
    public func precopyInfo(session: UInt64? = nil) -> Result<(initialBytes: UInt64, dirtyBytes: UInt64), Errno> {
        let outcome = answerPrecopyInfo(session: session)
        if let observer {
            let values = (try? outcome.get()).map { (first: $0.initialBytes, second: $0.dirtyBytes) }
            let errno: Errno? = if case .failure(let e) = outcome { e } else { nil }
            observer.v2Called(V2Call(device: device.identity, kind: .precopyInfo, session: session, values: values, errno: errno))
        }
        return outcome
    }

    private func answerPrecopyInfo(session: UInt64?) -> Result<(initialBytes: UInt64, dirtyBytes: UInt64), Errno> {
        if let session, let refusal = checkSession(session, reading: true) { return .failure(refusal) }
        guard state == .preCopy || state == .preCopyP2P, let stream = save else {
            violation(.v2PrecopyInfoState, "VFIO_MIG_GET_PRECOPY_INFO in \(state): valid only in PRE_COPY states")
            return .failure(.invalidArgument)
        }
        let info = stream.precopyInfo(recordSize: UInt64(StreamFormat.pageRecordSize(pageSize: configuration.pageSize)))
        // A lying device (pending_never_zero, pending_grows) reports more dirty bytes than it has.
        let total = faults.reported(info.initial + info.dirty)
        return .success((info.initial, total - info.initial))
    }

    /// `VFIO_DEVICE_FEATURE_MIG_DATA_SIZE`: the exact length of what stop-copy would stream now
    /// (unless a fault makes the device lie).
    public func stopCopyLength() -> UInt64 {
        let length = save.map { faults.reported($0.pendingBytes(in: .stopAndCopy)) } ?? fullStopCopyLength(configuration)
        observer?.v2Called(V2Call(device: device.identity, kind: .dataSize, values: (length, 0)))
        return length
    }

    // MARK: - Device DMA logging

    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_START`: the page size the device tracks with.
    public func dmaLoggingStart(ranges: [DMALogRange], pageSize: UInt64) -> Result<UInt64, Errno> {
        if let e = judge(dmaLog.checkStart(ranges: ranges, pageSize: pageSize)) { return .failure(e) }
        return .success(dmaLog.start(ranges: ranges))
    }

    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT` of `[iova, iova + length)`: whether it may be
    /// answered (the host fills the bitmap from the DMA it performed).
    public func dmaLoggingReport(iova: UInt64, length: UInt64, pageSize: UInt64) -> Result<Void, Errno> {
        judge(dmaLog.checkReport(iova: iova, length: length, pageSize: pageSize)).map { .failure($0) } ?? .success(())
    }

    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP`.
    public func dmaLoggingStop() -> Result<Void, Errno> {
        if let e = judge(dmaLog.checkStop()) { return .failure(e) }
        dmaLog.stop()
        return .success(())
    }

    /// Records what a DMA logging check found; the errno the call fails with, if it does.
    private func judge(_ decision: DMALog.Decision) -> Errno? {
        switch decision {
        case .accept:
            return nil
        case .refuse(let rule, let e, let explanation):
            violation(rule, explanation)
            return e
        case .tolerate(let rule, let e, let explanation):
            return violation(rule, explanation) ? e : nil
        }
    }

    // MARK: - Reset

    /// `VFIO_DEVICE_RESET`: RUNNING with power-on memory; every session and data_fd ends. The
    /// only way out of ERROR.
    public func reset() {
        endSave()
        endResume()
        currentSession = nil
        device.powerOn()
        state = .running
        stateLog.append(.running)
        logger.info("device reset: RUNNING with power-on memory")
    }

    // MARK: - Helpers

    private func endSave() {
        if let s = save {
            lastSave = SaveFigures(bytes: s.bytesRead.mapKeys(\.rawValue), chunks: s.session.chunksConsumed.mapKeys(\.rawValue),
                                   pagesSent: s.session.pagesSent, streamComplete: s.complete)
            s.release()
        }
        save = nil
        // The lies of a fault last one session (a fault arming them fires before it starts).
        faults.sessionEnded()
    }

    private func endResume() {
        if let r = resume {
            lastResume = ResumeFigures(chunks: r.chunksApplied, transactions: r.writes, bytes: r.bytesApplied,
                                       pagesApplied: r.pagesApplied, complete: r.complete, deviations: [])
        }
        resume = nil
    }

    private func enterError(_ message: String) {
        lastError = message
        logger.error("\(message)")
        endSave()
        endResume()
        currentSession = nil
        state = .error
        stateLog.append(.error)
    }

    private func runDevice(nanoseconds: UInt64, stream: inout V2SaveStream) {
        guard state.isRunning, nanoseconds > 0 else { return }
        device.run(nanoseconds: nanoseconds) { page in stream.markDirty(page) }
    }

    /// Records a violation; returns true when the rule table (`RuleTable.swift`) makes it a
    /// failure on this device. Callers of an `always` rule fail the call whatever it returns.
    @discardableResult
    private func violation(_ rule: ProtocolViolation.Rule, _ explanation: String) -> Bool {
        violations.append(ProtocolViolation(index: violations.count, rule: rule, state: state.rawValue, access: nil, explanation: explanation))
        logger.notice("protocol violation [\(rule.rawValue)]: \(explanation)")
        return rule.refuses(strict: strict)
    }
}

extension Result where Failure == Errno {
    /// The errno of a failure, nil on success.
    var failureErrno: Errno? {
        if case .failure(let e) = self { return e }
        return nil
    }
}

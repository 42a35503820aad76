import MigrationProtocol
import SystemPackage

/// The trapped header of the v1 region: each field's access rules (native width, read only,
/// reserved), what a read answers in each state, and `device_state` writes judged by the
/// transition table, with their effects on the save and resume sessions.
extension MigrationRegion {
    func headerField(_ offset: UInt64, _ count: Int, _ op: RegionAccessRecord.Operation) -> Result<HeaderField, Errno> {
        guard let field = HeaderField.at(offset: offset, width: count) else {
            violation(.accessWidth, RegionAccessRecord(operation: op, offset: offset, count: count),
                      "\(count)-byte \(op.rawValue) at offset \(offset) is not one header field at its native width and alignment")
            return .failure(.invalidArgument)
        }
        return .success(field)
    }

    func readHeader(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> AccessResult {
        let field: HeaderField
        switch headerField(offset, buffer.count, .read) {
        case .failure(let e): return AccessResult(e)
        case .success(let f): field = f
        }
        var result = AccessResult(count: buffer.count)
        let actions = faults.fire(.access(field, .read), role: role)
        if let e = interpret(actions, at: .access("access"), result: &result) { return AccessResult(e, stall: result.stallNanoseconds) }

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

    func readField(_ field: HeaderField, result: inout AccessResult) -> Result<UInt64, Errno> {
        let access = RegionAccessRecord(operation: .read, offset: field.offset, count: field.width)
        switch field {
        case .deviceState:
            return .success(UInt64(state.rawValue))
        case .reserved:
            return .success(0)
        case .pendingBytes:
            if state.isError { return .failure(.ioError) }
            if state.isSaving, let e = checkChunkRead(access) { return .failure(e) }
            return .success(readPendingBytes())
        case .dataOffset:
            if state.isError { return .failure(.ioError) }
            if state.isResuming {
                // A new transaction: what the mapping or pwrites did before belongs to the last one.
                transaction = .opened
                return .success(RegionLayout.dataSectionOffset)
            }
            guard state.isSaving, save != nil else {
                // Refused on any mount: there is no buffer to point at outside a session.
                violation(.dataOutsideWindow, access, "data_offset read in \(state.name): no migration session, no data section buffer")
                return .failure(.invalidArgument)
            }
            if let e = checkSaveSequence(.dataOffset, access) { return .failure(e) }
            return stageIfNeeded(result: &result)
        case .dataSize:
            if state.isError { return .failure(.ioError) }
            if state.isResuming { return .success(lastDataSizeWritten) }
            guard state.isSaving, let session = save else { return .success(0) }
            if let e = checkSaveSequence(.dataSize, access) { return .failure(e) }
            if session.staged == nil, pendingReachedZero { return .success(0) }
            save?.staged?.sizeRead = true
            guard let staged = session.staged else {
                if violation(.dataSizeWithoutOffset, access, "data_size read with no chunk staged: read data_offset first") {
                    return .failure(.invalidArgument)
                }
                return .success(0)
            }
            return .success(staged.reportedSize)
        }
    }

    func writeHeader(at offset: UInt64, from buffer: UnsafeRawBufferPointer) -> AccessResult {
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
        if let e = interpret(actions, at: .access("access"), result: &result) { return AccessResult(e, stall: result.stallNanoseconds) }

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

    func writeDeviceState(_ value: UInt32, access: RegionAccessRecord, result: inout AccessResult) -> Result<Void, Errno> {
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
            // Every refused transition names itself, from and to: the VMM author sees why.
            violation(.invalidState, access, "device_state \(DeviceState.name(ofBits: from)) -> \(DeviceState.name(ofBits: to)): \(reason)")
            logger.info("device_state write \(DeviceState.name(ofBits: from)) -> \(DeviceState.name(ofBits: to)) rejected: \(reason)")
            return .failure(.invalidArgument)
        }
        let transition = "transition \(DeviceState.name(ofBits: from)) -> \(DeviceState.name(ofBits: to))"
        if let e = interpret(actions, at: .access(transition), result: &result) { return .failure(e) }
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
            // Refused whatever `strict` says: a device cannot run on part of its state.
            violation(.incompleteResume, access, lastError ?? "")
            return .failure(.invalidArgument)
        }
        perform(from: from, to: to)
        // Each phase's sequence starts with a pending_bytes read (uapi step a).
        pendingReachedZero = false
        state = state.with(bits: to)
        logger.debug("device_state \(DeviceState.name(ofBits: from)) -> \(DeviceState.name(ofBits: to))")
        return .success(())
    }

    /// The effects of an allowed transition on sessions.
    func perform(from: UInt32, to: UInt32) {
        let wasSaving = from & DeviceState.savingBit != 0 && from != DeviceState.error.bits
        let willSave = to & DeviceState.savingBit != 0
        if wasSaving, !willSave { endSave() }
        if !wasSaving, willSave { beginSave() }
        if from == DeviceState.resuming.bits, to != DeviceState.resuming.bits { endResume() }
        if to == DeviceState.resuming.bits, from != DeviceState.resuming.bits {
            resume = ResumeSession(configuration: configuration)
            transaction = ResumeTransaction()
            lastDataSizeWritten = 0
        }
    }
}

import MigrationProtocol
import SystemPackage

/// The v1 save side: `pending_bytes` consumes the staged chunk and plans the rest of the phase;
/// `data_offset` stages the next chunk into the data section (`SaveSession` builds it).
extension MigrationRegion {
    /// `pending_bytes`: consumes a staged chunk, then reports what is left of the current phase.
    func readPendingBytes() -> UInt64 {
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
        pendingReachedZero = pending == 0
        return pending
    }

    /// The save-side read rules: the client reads a staged chunk's data before `pending_bytes`
    /// consumes it. Judged only where the engine sees every read (pread clients; a mapping's
    /// reads are the kernel's) and where no fault changed what the header reports.
    func checkChunkRead(_ access: RegionAccessRecord) -> Errno? {
        guard dataSectionMapping == .none, let staged = save?.staged, staged.size > 0, staged.reportsTheTruth,
              staged.bytesRead < staged.size else { return nil }
        let explanation = "pending_bytes read after \(staged.bytesRead) of the \(staged.size) bytes of chunk \(staged.number) were read: read data_size bytes at data_offset first (uapi step d, then f)"
        return violation(.chunkNotRead, access, explanation) ? .invalidArgument : nil
    }

    /// `data_offset` (or `data_size`) read where the save sequence does not allow it: after
    /// `pending_bytes` answered 0, or again after this chunk's data was read.
    func checkSaveSequence(_ field: HeaderField, _ access: RegionAccessRecord) -> Errno? {
        if save?.staged == nil, pendingReachedZero {
            let explanation = "\(field.rawValue) read after pending_bytes reported 0: there is nothing to iterate (uapi step a)"
            return violation(.readAfterPendingZero, access, explanation) ? .invalidArgument : nil
        }
        if field == .dataOffset, dataSectionMapping == .none, let staged = save?.staged, staged.sizeRead, staged.bytesRead > 0 {
            let explanation = "data_offset read again after \(staged.bytesRead) bytes of chunk \(staged.number) were read, without reading pending_bytes: the driver hands the same chunk again (uapi step f comes before step b)"
            return violation(.pendingNotReread, access, explanation) ? .invalidArgument : nil
        }
        return nil
    }

    /// `data_offset` while saving: stages the next chunk unless one is staged already, and returns
    /// only when its bytes are in the data section.
    func stageIfNeeded(result: inout AccessResult) -> Result<UInt64, Errno> {
        if let staged = save?.staged { return .success(staged.reportedOffset) }
        // Taken out of `save` so that it is unique and staging clears bitmap bits in place.
        guard var session = save else { return .failure(.invalidArgument) }
        save = nil
        let phase: MigrationPhase = state.isRunning ? .preCopy : .stopAndCopy
        // A chunk built ahead from exactly this session and device is the chunk staging builds.
        let size = takeStagedAhead(for: session, phase: phase).map { session.commit($0) }
            ?? session.stage(into: dataSection, phase: phase, device: device)
        sectionHighWater = max(sectionHighWater, Int(size))
        dataSectionWrites += 1
        copies.staged += size
        var staged = SaveSession.Staged(offset: RegionLayout.dataSectionOffset, size: size, phase: phase)
        staged.number = size > 0 ? session.chunkNumber - 1 : session.chunkNumber
        for action in pendingModifiers { modify(&staged, action) }
        pendingModifiers = []
        session.staged = staged
        let index = session.chunksStaged[phase, default: 0]
        let phaseBytes = session.bytesConsumed[phase, default: 0] + size
        let total = session.bytesConsumed.values.reduce(0, +) + size
        // Back in place before the chunk's faults act: a stall lets the running device work,
        // and the pages it writes meanwhile are owed by this session.
        save = consume session
        if size > 0 {
            let actions = faults.fire(.chunk(phase: phase, index: index, phaseBytes: phaseBytes, totalBytes: total), role: role)
            if let e = interpret(actions, at: .saveChunk(phase, index: index), result: &result) { return .failure(e) }
        }
        let reported = save?.staged ?? staged
        result.staged = size > 0 ? reported.offset..<(reported.offset + size) : nil
        return .success(reported.reportedOffset)
    }

    /// After an injected staging failure the session goes on, but the chunk's pages are owed
    /// again: the simplest faithful model is a fresh pass over all memory.
    func restartSaveAfterFailedStage(phase: MigrationPhase) {
        beginSave()
        lastError = "fault: staging a \(phase.rawValue) chunk failed"
    }

    /// A new save session (entering a saving state, or starting over after a failed stage).
    func beginSave() {
        saveSessionsStarted += 1
        save = SaveSession(configuration: configuration)
        save?.id = saveSessionsStarted
    }

    func endSave() {
        ahead = nil
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
}

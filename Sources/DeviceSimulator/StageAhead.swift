/// Staging ahead: the next save chunk is built in a second buffer while the client still copies
/// the staged one, and the `data_offset` read that stages it takes the built chunk instead of
/// building it then (issue 15's save pipeline).
///
/// Exact by construction: a chunk is what `SaveSession.plan` decides and `ChunkFill` writes from
/// the session, the phase and the device's memory and config. The built chunk is taken only when
/// none of those changed since it was planned: the same session at the same revision (a chunk
/// staged or a page dirtied changes it), the same device revision (memory or config written,
/// the running device's writes), the same `device_state`. Consuming the staged chunk changes
/// none of them, so a stopped device, or a running one that dirties nothing, takes every chunk
/// built ahead; a running device that dirties builds nothing ahead (it would dirty a page before
/// the chunk is asked for), and a chunk whose inputs changed anyway is dropped and staged as
/// before. Faults act after staging, on whichever buffer is the section, as they always did.
///
/// The two buffers trade places when a built chunk is taken; the bytes past the chunk's end
/// are copied over from the buffer it replaces (both track how far they hold anything but
/// zeros), so the section reads exactly as in-place staging leaves it.
struct StageAhead {
    struct Basis: Equatable {
        var session: UInt64
        var sessionRevision: UInt64
        var deviceRevision: UInt64
        var state: UInt32
    }

    let basis: Basis
    /// Nil: nothing was left to stage when it was planned.
    var fill: ChunkFill?
}

/// How staging ahead went for one region.
public struct StageAheadFigures: Sendable, Hashable, Codable {
    /// Chunks built ahead and staged by a `data_offset` read.
    public var taken: UInt64 = 0
    /// Of those, chunks the `data_offset` read found partly built and finished itself.
    public var finishedAtStaging: UInt64 = 0
    /// Chunks built ahead, then dropped because the session or the device changed meanwhile.
    public var dropped: UInt64 = 0

    public init() {}

    /// Both regions' counts together.
    public static func + (a: StageAheadFigures, b: StageAheadFigures) -> StageAheadFigures {
        var s = a
        s.taken += b.taken
        s.finishedAtStaging += b.finishedAtStaging
        s.dropped += b.dropped
        return s
    }
}

extension MigrationRegion {
    /// Whether the region builds the next save chunk ahead (`enableStagingAhead`).
    public var stagesAhead: Bool { spareSection != nil }

    /// The data section's buffers: `dataSection`, and the spare one with staging ahead (for a
    /// mapping layer that advises the kernel about them; their roles change, their addresses not).
    public var sectionBuffers: [UnsafeMutableRawBufferPointer] { [dataSection] + (spareSection.map { [$0] } ?? []) }

    /// Gives the region a second data-section buffer, where `stageAhead(pages:)` builds the next
    /// save chunk. False when there is no memory for it (the region stages as before). Needs the
    /// engine to see every write to the section: nothing is built ahead while
    /// `dataSectionMapping` is `.direct`.
    public func enableStagingAhead() -> Bool {
        if spareSection != nil { return true }
        guard let spare = FallibleAllocation.allocateZeroPages(byteCount: dataSection.count) else { return false }
        spareSection = spare
        spareHighWater = 0
        return true
    }

    /// Builds up to `pages` page records of the chunk that follows the staged one, into the
    /// spare buffer. Returns whether more is left to build; false when there is nothing to do (no
    /// chunk out with the client, staging ahead off, the next chunk built already). A caller
    /// calls it again, releasing its lock between calls, while the client copies the staged chunk.
    public func stageAhead(pages budget: Int) -> Bool {
        guard let spare = spareSection, dataSectionMapping != .direct, state.isSaving, !state.isError,
              let session = save, session.staged != nil else { return false }
        // A running device that dirties pages will have changed the session by then (the
        // `pending_bytes` read runs it over the chunk's link time): the chunk would be dropped,
        // and building it would take a CPU from the client for nothing.
        guard !(state.isRunning && configuration.dirtyRate > 0) else { return false }
        let phase: MigrationPhase = state.isRunning ? .preCopy : .stopAndCopy
        let basis = stagingBasis(session)
        if var built = ahead, built.basis == basis {
            guard var fill = built.fill, !fill.complete else { return false }
            // Out of `ahead` while writing, so that the pages array is not copied.
            built.fill = nil
            ahead = nil
            fill.write(pages: max(1, budget), device: device)
            built.fill = fill
            ahead = built
            return !fill.complete
        }
        if ahead?.fill != nil { stagedAhead.dropped += 1 }
        // Consuming the staged chunk changes nothing a plan reads: this is the next chunk.
        guard let plan = session.plan(phase: phase, device: device),
              let fill = ChunkFill(plan, into: spare, configuration: configuration, device: device) else {
            ahead = StageAhead(basis: basis, fill: nil)
            return false
        }
        ahead = StageAhead(basis: basis, fill: fill)
        return true
    }

    /// What a chunk staged now would be built from, besides the memory it reads.
    private func stagingBasis(_ session: SaveSession) -> StageAhead.Basis {
        StageAhead.Basis(session: session.id, sessionRevision: session.revision, deviceRevision: device.revision, state: state.rawValue)
    }

    /// At a `data_offset` read that stages: the chunk built ahead, finished and made the
    /// section, if it was built from exactly `session` and the device as they are; else nil.
    func takeStagedAhead(for session: SaveSession, phase: MigrationPhase) -> ChunkFill? {
        guard let built = ahead else { return nil }
        ahead = nil
        guard var fill = built.fill else { return nil }
        guard stagingBasis(session) == built.basis, fill.plan.phase == phase, dataSectionMapping != .direct, let spare = spareSection else {
            stagedAhead.dropped += 1
            return nil
        }
        if !fill.complete {
            fill.write(pages: .max, device: device)
            stagedAhead.finishedAtStaging += 1
        }
        // Past the chunk, the section's own bytes, as staging in place leaves them.
        let end = fill.used
        let tail = max(sectionHighWater, spareHighWater)
        if end < tail {
            UnsafeMutableRawBufferPointer(rebasing: spare[end..<tail])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: dataSection[end..<tail]))
            copies.sectionTail += UInt64(tail - end)
        }
        spareSection = dataSection
        dataSection = spare
        swap(&sectionHighWater, &spareHighWater)
        sectionHighWater = max(spareHighWater, end)
        stagedAhead.taken += 1
        return fill
    }
}

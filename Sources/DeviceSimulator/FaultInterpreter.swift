import MigrationProtocol
import SystemPackage

/// Where fired faults act: the trigger site decides what a failure means and what a chunk
/// modifier changes, never whether an effect happens.
enum FaultSite {
    /// A header access or a `device_state` write (`what` names it in messages).
    case access(String)
    /// A `data_offset` read that staged chunk `index` of `phase`.
    case saveChunk(MigrationPhase, index: Int)
    /// A `data_size` write about to apply resume transaction `index` of `size` bytes.
    case resumeChunk(index: Int, size: UInt64)
}

extension MigrationRegion {
    /// The one interpreter of fault actions: every trigger site (header access, state write,
    /// staged chunk, applied resume transaction; byte-count triggers fire at the chunk sites)
    /// passes what `FaultInjector.fire` returned here. Returns the errno the triggering access
    /// fails with, if an action fails it; the actions after a failure do not act.
    ///
    /// A stall is reported in `result` for the caller to wait, and device time advances by it
    /// at every site (a running device works meanwhile), as `FaultAction.stall` documents.
    func interpret(_ actions: [FaultAction], at site: FaultSite, result: inout AccessResult) -> Errno? {
        for action in actions {
            switch action {
            case .fail(let e):
                fail(at: site, e, errorState: false)
                return e
            case .failToErrorState(let e):
                fail(at: site, e, errorState: true)
                return e
            case .stall(let ns):
                result.stallNanoseconds += ns
                runDevice(nanoseconds: clock.advance(by: ns))
            case .corruptChunk(let offset, let count):
                if case .resumeChunk(_, let size) = site {
                    // Resume side: the data section just before it is applied.
                    corrupt(offset: offset, count: count, limit: size)
                } else {
                    modifySaveChunk(action)
                }
            case .pendingNeverZero, .pendingGrows, .oversizeDataSize, .misalignedDataOffset, .overlappingDataOffset, .shortRead:
                // Save-side behaviour: a destination applying a transaction has none of it.
                if case .resumeChunk = site { continue }
                modifySaveChunk(action)
            }
        }
        return nil
    }

    private func fail(at site: FaultSite, _ e: Errno, errorState: Bool) {
        switch site {
        case .access(let what):
            if errorState { enterError("fault: \(what) failed with \(e), device in error state") }
            else { lastError = "fault: \(what) failed with \(e)" }
        case .saveChunk(let phase, let index):
            // The driver could not produce the chunk: nothing is staged, the pages stay owed.
            if errorState {
                save = nil
                enterError("fault: staging chunk \(index) of \(phase.rawValue) failed")
            } else {
                restartSaveAfterFailedStage(phase: phase)
            }
        case .resumeChunk(let index, _):
            if errorState { enterError("fault: applying resume transaction \(index) failed, device in error state") }
            else { lastError = "fault: applying resume transaction \(index) failed" }
        }
    }

    /// A save-side modifier: it changes the staged chunk, or the next one staged when none is.
    private func modifySaveChunk(_ action: FaultAction) {
        switch action {
        case .pendingNeverZero(let remaining):
            pendingFloor = remaining
        case .pendingGrows(let bytes):
            pendingGrowthStep = bytes
        default:
            if var staged = save?.staged {
                modify(&staged, action)
                save?.staged = staged
            } else {
                pendingModifiers.append(action)
            }
        }
    }

    /// What a chunk modifier does to a staged chunk.
    func modify(_ staged: inout SaveSession.Staged, _ action: FaultAction) {
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
        case .fail, .failToErrorState, .stall, .pendingNeverZero, .pendingGrows:
            break
        }
    }
}

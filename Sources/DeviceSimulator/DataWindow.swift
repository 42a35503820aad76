import MigrationProtocol
import SystemPackage

/// The data section as the checker sees it: reads and writes inside the window the device made
/// available, and nowhere else.
extension MigrationRegion {
    func readData(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> AccessResult {
        let (result, range) = dataReadRange(at: offset, count: buffer.count)
        if let range {
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: dataSection[range]))
            copies.sectionIntoCaller += UInt64(range.count)
        }
        return result
    }

    /// A data-section read of `count` bytes at region `offset`, checked, without moving bytes:
    /// the result, and on success where in `dataSection` the answer lies.
    func dataReadRange(at offset: UInt64, count asked: Int) -> (AccessResult, Range<Int>?) {
        let access = RegionAccessRecord(operation: .read, offset: offset, count: asked)
        guard offset < regionSize else { return (AccessResult(count: 0), nil) }
        var count = Int(min(UInt64(asked), regionSize - offset))
        if let session = save, let staged = session.staged, let limit = staged.shortRead {
            count = min(count, Int(limit))
        }
        if let refusal = checkDataWindow(offset: offset, count: count, access: access) { return (refusal, nil) }
        let start = Int(offset - RegionLayout.dataSectionOffset)
        // What of the staged chunk the client has read (chunk-not-read), whoever moves the bytes.
        if state.isSaving, let staged = save?.staged, offset >= staged.offset, offset + UInt64(count) <= staged.offset + staged.size {
            save?.staged?.bytesRead += UInt64(count)
        }
        return (AccessResult(count: count), start..<(start + count))
    }

    func writeData(at offset: UInt64, from buffer: UnsafeRawBufferPointer) -> AccessResult {
        let access = RegionAccessRecord(operation: .write, offset: offset, count: buffer.count)
        guard offset + UInt64(buffer.count) <= regionSize else {
            // Past the region's end there is nothing to write: refused on any mount, and recorded.
            violation(.dataOutsideWindow, access, "data write at \(offset)..<\(offset + UInt64(buffer.count)) runs past the end of the \(regionSize)-byte region")
            return AccessResult(.invalidArgument)
        }
        if let refusal = checkDataWindow(offset: offset, count: buffer.count, access: access) { return refusal }
        let start = Int(offset - RegionLayout.dataSectionOffset)
        UnsafeMutableRawBufferPointer(rebasing: dataSection[start..<(start + buffer.count)]).copyMemory(from: buffer)
        dataSectionWrites += 1
        sectionHighWater = max(sectionHighWater, start + buffer.count)
        copies.pwriteIntoSection += UInt64(buffer.count)
        if state.isResuming { transaction.pwrote(start..<(start + buffer.count)) }
        return AccessResult(count: buffer.count)
    }

    /// The checker's view of a data-section access: inside the window the device made available.
    func checkDataWindow(offset: UInt64, count: Int, access: RegionAccessRecord) -> AccessResult? {
        // The device already refused and recorded what put it in the error state; a data access
        // now fails like every other until a reset, and is not another broken rule.
        if state.isError { return AccessResult(.ioError) }
        let end = offset + UInt64(count)
        var problem: (ProtocolViolation.Rule, String)?
        if state.isResuming {
            if access.operation == .read {
                problem = (.dataOutsideWindow, "data section read while resuming: the client writes there")
            } else if !transaction.offsetRead {
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
}

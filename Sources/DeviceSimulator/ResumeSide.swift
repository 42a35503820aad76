import MigrationProtocol
import SystemPackage

/// The v1 resume side: a `data_size` write applies the transaction the client wrote at
/// `data_offset` (`ResumeSession` checks and applies the stream; `ResumeTransaction` is what the
/// engine knows of how the bytes came).
extension MigrationRegion {
    /// A copy of what a `data_size` write about to be applied takes from the data section
    /// beyond the bytes the client pwrote (nil when pwrites cover it or nothing is applied).
    func mappedBytes(ofDataSizeWrite offset: UInt64, _ buffer: UnsafeRawBufferPointer) -> UnsafeMutableRawBufferPointer? {
        guard offset == HeaderField.dataSize.offset, buffer.count == 8, state.isResuming, !state.isError else { return nil }
        let size = UInt64(littleEndian: buffer.loadUnaligned(as: UInt64.self))
        guard size > transaction.pwrittenPrefix, size <= UInt64(dataSection.count) else { return nil }
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(size), alignment: 8)
        copy.copyMemory(from: UnsafeRawBufferPointer(rebasing: dataSection[0..<Int(size)]))
        return copy
    }

    func writeDataSize(_ size: UInt64, access: RegionAccessRecord, result: inout AccessResult) -> Result<Void, Errno> {
        if state.isError { return .failure(.ioError) }
        // Both refused whatever `strict` says: there is nothing the device could apply.
        guard state.isResuming, var session = resume else {
            logger.info("data_size write outside _RESUMING rejected")
            violation(.dataSizeOutsideResume, access, "data_size written in \(state.name): the field is written only while resuming")
            return .failure(.invalidArgument)
        }
        guard size <= configuration.dataSectionSize else {
            lastError = "data_size \(size) exceeds the data section (\(configuration.dataSectionSize) bytes)"
            violation(.dataSizeTooLarge, access, lastError ?? "")
            return .failure(.invalidArgument)
        }
        // Strict: the mixed chunk is refused, as the checker's other rules refuse their access.
        if transaction.isMixed, violation(.mixedDataAccess, access, "resume chunk of \(size) bytes written both with pwrite and through the mapping: the pwritten bytes were kept where both wrote") {
            return .failure(.invalidArgument)
        }
        if !transaction.offsetRead, violation(.dataSizeWithoutOffset, access, "data_size written without reading data_offset first") {
            return .failure(.invalidArgument)
        }
        if size == 0, violation(.emptyResumeTransaction, access, "data_size 0 written: a transaction of no bytes, which the source never produces") {
            return .failure(.invalidArgument)
        }
        // The transaction is taken: the next one starts with a data_offset read.
        let written = transaction
        transaction = ResumeTransaction()
        lastDataSizeWritten = size
        guard size > 0 else { return .success(()) }

        let actions = faults.fire(.chunk(phase: .resuming, index: session.writes + 1,
                                         phaseBytes: session.bytesApplied + size, totalBytes: session.bytesApplied + size),
                                  role: .destination)
        if let e = interpret(actions, at: .resumeChunk(index: session.writes + 1, size: size), result: &result) { return .failure(e) }
        let deviationsBefore = session.deviations.count
        // Unique while applying, so its buffers are mutated in place.
        resume = nil
        do {
            try session.apply(UnsafeRawBufferPointer(rebasing: dataSection[0..<Int(size)]), to: device)
        } catch {
            resume = session
            recordRefusedStream(error.message, size: size, written: written, access: access)
            enterError("resume failed: \(error.message)")
            return .failure(.invalidArgument)
        }
        for deviation in session.deviations[deviationsBefore...] {
            // QEMU splits chunks that do not fit the destination's data section: recorded, not refused.
            recordViolation(.resumeTransactions, deviation)
        }
        resume = session
        _ = clock.advance(by: clock.transferTime(bytes: size))
        return .success(())
    }

    /// The destination refused the stream: the record says what in it was wrong and which VMM
    /// step most likely caused it. An incompatible stream (another device type or size) and a
    /// device out of memory are the destination's own condition, not the client's doing.
    func recordRefusedStream(_ message: String, size: UInt64, written: ResumeTransaction, access: RegionAccessRecord) {
        if message.hasPrefix("incompatible stream") || message.hasPrefix("out of memory") { return }
        // The transaction saw no data at all (no pwrite, no store through the mapping): its
        // data_size write came before the data, and the section held what it held before.
        // Judged only here, where the stale bytes were refused: an in-process client that stores
        // into `dataSection` itself is invisible, and its correct transactions apply.
        if written.pwrittenRanges.isEmpty, !written.mappedStores, dataSectionMapping != .direct {
            violation(.resumeOrder, access, "data_size \(size) written before any data of this transaction (write the data at data_offset, then data_size): the section held stale bytes, refused: \(message)")
            return
        }
        var cause: String
        if let first = written.pwrittenRanges.map(\.lowerBound).min(), first > 0, !written.mappedStores {
            cause = "the transaction's pwrites start at region offset \(RegionLayout.dataSectionOffset + UInt64(first)), not at data_offset \(RegionLayout.dataSectionOffset)"
        } else if firedFaults.isEmpty {
            cause = "no fault was injected on this device: the VMM delivered bytes the source did not produce (a chunk replayed, reordered, altered or of another device)"
        } else {
            cause = "faults fired on this device: \(firedFaults.joined(separator: ", "))"
        }
        violation(.resumeStream, access, "resume transaction of \(size) bytes refused: \(message); \(cause)")
    }

    /// Bytes of the data section that come back from the client's mapping (a page written back,
    /// or fetched from the page cache before a `data_size` write is applied), at region
    /// `offset`. Bytes the client pwrote in this transaction are kept (the pwrite wins); any
    /// other byte that differs from the section is a store of this transaction through the
    /// mapping. Neither a header access nor a chunk event: nothing is counted or traced.
    public func storeThroughMapping(at offset: UInt64, _ data: UnsafeRawBufferPointer) {
        guard offset >= RegionLayout.dataSectionOffset, offset - RegionLayout.dataSectionOffset < UInt64(dataSection.count) else { return }
        let start = Int(offset - RegionLayout.dataSectionOffset)
        let end = start + min(data.count, dataSection.count - start)
        for piece in transaction.uncovered(start..<end) {
            let target = UnsafeMutableRawBufferPointer(rebasing: dataSection[piece])
            let source = UnsafeRawBufferPointer(rebasing: data[(piece.lowerBound - start)..<(piece.upperBound - start)])
            // Bytes the section holds already (a writeback of what a retrieve fetched, or the
            // reverse) are neither a store nor a copy.
            if ByteComparison.equal(UnsafeRawBufferPointer(target), source) { continue }
            if state.isResuming { transaction.mappedStores = true }
            target.copyMemory(from: source)
            sectionHighWater = max(sectionHighWater, piece.upperBound)
            copies.mappingIntoSection += UInt64(piece.count)
        }
    }

    func endResume() {
        if let r = resume {
            lastResume = ResumeFigures(
                chunks: r.chunksApplied, transactions: r.writes, bytes: r.bytesApplied,
                pagesApplied: r.pagesApplied, complete: r.complete, deviations: r.deviations)
        }
        resume = nil
    }
}

import Foundation
import MigrationProtocol
import Scenarios
import SystemPackage

/// The VMM side of a v1 migration, written the way QEMU 5.2-7.2's `hw/vfio/migration.c` drives
/// a device, so that what passes here passes there:
///
/// - `device_state` is always written as `(state & mask) | value` after reading it, and every
///   mask keeps the reserved bits 3-31 (QEMU's save_setup uses `VFIO_DEVICE_STATE_MASK` as the
///   mask and so clears them: a deviation from the uapi's read-modify-write rule that this
///   client does not copy);
/// - pre-copy: read `pending_bytes`; while above the threshold, move chunks
///   (`data_offset`, `data_size`, the data, then `pending_bytes` again, which consumes the chunk);
/// - stop-and-copy: clear `_RUNNING`, iterate until `pending_bytes` is 0 (a chunk of size 0 with
///   bytes pending is an error, as in QEMU), then clear `_SAVING`;
/// - resume: `_RESUMING`, and per source chunk: `data_offset`, the data, `data_size`, splitting a
///   chunk that does not fit the destination's data section the way QEMU's `vfio_load_buffer` does;
///   then `_RUNNING`.
public struct ReferenceClient {
    public var options: ClientOptions
    /// Assumed link bandwidth for the downtime estimate, bytes per second.
    public var linkBandwidth: UInt64
    /// Called after each pre-copy iteration and stop-and-copy chunk, for progress displays.
    public var progress: (@Sendable (String) -> Void)?

    public init(options: ClientOptions = ClientOptions(), linkBandwidth: UInt64 = 1 << 30) {
        self.options = options
        self.linkBandwidth = linkBandwidth
    }

    /// Migrates `source` to `destination` and reports. Never throws: failures are in the report.
    public func migrate(from source: RegionTransport, to destination: RegionTransport) -> MigrationReport {
        var run = Run(client: self, source: source, destination: destination)
        return run.execute()
    }

    private struct Run {
        let client: ReferenceClient
        let source: RegionTransport
        let destination: RegionTransport
        var options: ClientOptions { client.options }
        var tally = MigrationTally()
        var buffer: UnsafeMutableRawBufferPointer?

        init(client: ReferenceClient, source: RegionTransport, destination: RegionTransport) {
            self.client = client
            self.source = source
            self.destination = destination
        }

        mutating func execute() -> MigrationReport {
            defer { buffer?.deallocate() }
            var failure: MigrationReport.Failure?
            var outcome = "completed"
            var sourceDigest: String?
            var destinationDigest: String?
            var recovered: Bool?
            do {
                let cancelled = try saveAndResume()
                if cancelled {
                    outcome = "cancelled"
                } else {
                    sourceDigest = try? source.digest()
                    tally.phase = "resumed"
                    try setState(destination, "destination", mask: ~DeviceState.mask, value: DeviceState.runningBit)
                    destinationDigest = try? destination.digest()
                }
            } catch let error as StepFailure {
                outcome = "failed"
                failure = MigrationReport.Failure(step: error.step, errno: error.errno.map(Self.errnoName), message: error.message)
                recovered = rollBack()
            } catch {
                outcome = "failed"
                failure = MigrationReport.Failure(step: tally.phase, errno: nil, message: "\(error)")
            }
            return tally.report(
                outcome: outcome, sourceDigest: sourceDigest, destinationDigest: destinationDigest,
                linkBandwidth: client.linkBandwidth, failure: failure,
                sourceState: stateName(source), destinationState: stateName(destination), recoveredByReset: recovered)
        }

        /// Returns true when the migration was cancelled as asked.
        mutating func saveAndResume() throws -> Bool {
            tally.phase = "setup"
            try setState(destination, "destination", mask: ~DeviceState.mask, value: DeviceState.resumingBit)
            if options.pausedGuest {
                // The guest is paused before migration: the VM stop handler clears _RUNNING,
                // then save_setup sets _SAVING on the stopped device (000 -> 010).
                try setState(source, "source", mask: ~DeviceState.runningBit, value: 0)
                try setState(source, "source", mask: ~0, value: DeviceState.savingBit)
            } else {
                try setState(source, "source", mask: ~0, value: DeviceState.savingBit)
                tally.phase = "pre-copy"
                var p = try readPending()
                while true {
                    if p <= options.precopyThreshold { tally.converged = true; break }
                    if tally.precopyIterations >= options.maxPrecopyIterations { break }
                    if let cancel = options.cancelAfterIterations, tally.precopyIterations >= cancel {
                        // QEMU's cancel notifier: (state & ~(_SAVING|_RESUMING)) | _RUNNING.
                        try setState(source, "source", mask: ~(DeviceState.savingBit | DeviceState.resumingBit), value: DeviceState.runningBit)
                        try setState(destination, "destination", mask: ~DeviceState.mask, value: 0)
                        return true
                    }
                    tally.precopyIterations += 1
                    client.progress?("pre-copy iteration \(tally.precopyIterations): \(tally.precopyBytes) bytes moved, pending \(p)")
                    // One pass: move what was pending when it began.
                    var moved: UInt64 = 0
                    while moved < p {
                        let size = try transferChunk()
                        if size == 0 { break }
                        moved += size
                        tally.precopyBytes += size
                        tally.chunks.precopy += 1
                        client.progress?("pre-copy iteration \(tally.precopyIterations): \(tally.precopyBytes) bytes moved, pending \(p - min(p, moved))")
                        let next = try readPending()
                        if next == 0 { p = 0; break }
                        if moved >= p { p = next; break }
                    }
                    if moved == 0 { p = try readPending() }
                }
                tally.phase = "stop-and-copy"
                try setState(source, "source", mask: ~DeviceState.runningBit, value: 0)
            }
            tally.phase = "stop-and-copy"
            var p = try readPending()
            var rounds = 0
            while p > 0 {
                let size = try transferChunk()
                if size == 0 {
                    throw StepFailure(step: "source data_size read in stop-and-copy", errno: nil,
                                      message: "data_size is 0 with pending bytes \(p): the device reports data it does not stage (QEMU 5.2-7.2 would stop iterating and send a truncated stream; a correct VMM fails the migration)")
                }
                tally.stopBytes += size
                tally.chunks.stopAndCopy += 1
                rounds += 1
                p = try readPending()
                client.progress?("stop-and-copy: \(tally.precopyBytes + tally.stopBytes) bytes moved, pending \(p)")
            }
            try setState(source, "source", mask: ~DeviceState.savingBit, value: 0)
            return false
        }

        mutating func readPending() throws(StepFailure) -> UInt64 {
            let p = try access("source pending_bytes read") { () throws(Errno) -> UInt64 in
                try source.readField(at: HeaderField.pendingBytes.offset, width: 8)
            }
            tally.pending.append(p)
            return p
        }

        /// Moves the next chunk from source to destination; returns its size.
        mutating func transferChunk() throws(StepFailure) -> UInt64 {
            let offset = try access("source data_offset read") { () throws(Errno) -> UInt64 in
                try source.readField(at: HeaderField.dataOffset.offset, width: 8)
            }
            let size = try access("source data_size read") { () throws(Errno) -> UInt64 in
                try source.readField(at: HeaderField.dataSize.offset, width: 8)
            }
            guard size > 0 else { return 0 }
            // A correct VMM checks what the driver says before touching memory.
            guard offset >= RegionLayout.headerSize, offset < source.regionSize else {
                throw StepFailure(step: "source data_offset read in \(tally.phase)", errno: .invalidArgument,
                                  message: "data_offset \(offset) is not inside the data section of a \(source.regionSize)-byte region")
            }
            guard size <= source.regionSize - offset else {
                throw StepFailure(step: "source data_size read in \(tally.phase)", errno: .invalidArgument,
                                  message: "data_size \(size) at data_offset \(offset) runs past the end of a \(source.regionSize)-byte region")
            }
            let data = try fetch(offset: offset, size: Int(size))
            try deliver(data)
            return size
        }

        /// The chunk's bytes: straight from the mapping, or read in pieces into a buffer.
        mutating func fetch(offset: UInt64, size: Int) throws(StepFailure) -> UnsafeRawBufferPointer {
            if case .mapped = options.dataAccess, let map = source.mappedDataSection, offset >= source.mappedOffset,
               offset - source.mappedOffset + UInt64(size) <= UInt64(map.count) {
                if offset % RegionLayout.hostPageSize != 0 {
                    throw StepFailure(step: "source data_offset read in \(tally.phase)", errno: .invalidArgument,
                                      message: "data_offset \(offset) of an mmapped data section is not page aligned")
                }
                let start = Int(offset - source.mappedOffset)
                return UnsafeRawBufferPointer(rebasing: map[start..<(start + size)])
            }
            let buf = scratch(size)
            var done = 0
            let piece = pieceSize
            while done < size {
                let n = min(piece, size - done)
                let got = try access("source data read at \(offset + UInt64(done)) in \(tally.phase)") { () throws(Errno) -> Int in
                    try source.read(at: offset + UInt64(done), into: UnsafeMutableRawBufferPointer(rebasing: buf[done..<(done + n)]))
                }
                if got == 0 {
                    throw StepFailure(step: "source data read in \(tally.phase)", errno: nil, message: "end of region after \(done) of \(size) bytes")
                }
                done += got
            }
            return UnsafeRawBufferPointer(rebasing: buf[0..<size])
        }

        /// Writes one source chunk to the destination, split like QEMU's `vfio_load_buffer`.
        mutating func deliver(_ data: UnsafeRawBufferPointer) throws(StepFailure) {
            var sent = 0
            while sent < data.count {
                let offset = try access("destination data_offset read") { () throws(Errno) -> UInt64 in
                    try destination.readField(at: HeaderField.dataOffset.offset, width: 8)
                }
                guard offset >= RegionLayout.headerSize, offset < destination.regionSize else {
                    throw StepFailure(step: "destination data_offset read", errno: .invalidArgument, message: "data_offset \(offset) outside the region")
                }
                let n = Int(min(UInt64(data.count - sent), destination.regionSize - offset))
                let piece = UnsafeRawBufferPointer(rebasing: data[sent..<(sent + n)])
                if case .mapped = options.dataAccess, let map = destination.mappedDataSection, offset >= destination.mappedOffset,
                   offset - destination.mappedOffset + UInt64(n) <= UInt64(map.count) {
                    let start = Int(offset - destination.mappedOffset)
                    UnsafeMutableRawBufferPointer(rebasing: map[start..<(start + n)]).copyMemory(from: piece)
                } else {
                    var done = 0
                    while done < n {
                        let m = min(pieceSize, n - done)
                        let wrote = try access("destination data write at \(offset + UInt64(done))") { () throws(Errno) -> Int in
                            try destination.write(at: offset + UInt64(done), from: UnsafeRawBufferPointer(rebasing: piece[done..<(done + m)]))
                        }
                        done += wrote
                    }
                }
                try access("destination data_size write") { () throws(Errno) in
                    try destination.writeField(at: HeaderField.dataSize.offset, width: 8, UInt64(n))
                }
                tally.chunks.resumeTransactions += 1
                sent += n
            }
        }

        var pieceSize: Int {
            if case .pieces(let n) = options.dataAccess { return max(1, n) }
            return 1 << 20
        }

        mutating func scratch(_ size: Int) -> UnsafeMutableRawBufferPointer {
            if let b = buffer, b.count >= size { return b }
            buffer?.deallocate()
            let b = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 4096)
            buffer = b
            return b
        }

        /// Read-modify-write of `device_state`: `(state & mask) | value`, as QEMU does.
        func setState(_ t: RegionTransport, _ who: String, mask: UInt32, value: UInt32) throws(StepFailure) {
            let current = try access("\(who) device_state read") { () throws(Errno) -> UInt64 in
                try t.readField(at: HeaderField.deviceState.offset, width: 4)
            }
            let next = (UInt32(truncatingIfNeeded: current) & mask) | value
            try access("\(who) device_state write \(DeviceState.name(ofBits: UInt32(truncatingIfNeeded: current))) -> \(DeviceState.name(ofBits: next))") { () throws(Errno) in
                try t.writeField(at: HeaderField.deviceState.offset, width: 4, UInt64(next))
            }
        }

        func access<T>(_ step: String, _ body: () throws(Errno) -> T) throws(StepFailure) -> T {
            do {
                return try body()
            } catch {
                // A state write names its transition; a destination access is always in resuming.
                let located = step.contains(" in ") || step.contains("->") ? step
                    : step.hasPrefix("destination") ? "\(step) in resuming" : "\(step) in \(tally.phase)"
                throw StepFailure(step: located, errno: error, message: "\(step) failed: \(error)")
            }
        }

        /// After a failure, as QEMU would: the source goes back to running; a device found in the
        /// error state is reset (when allowed) and must then run. Returns whether a reset recovered one.
        func rollBack() -> Bool? {
            var recovered: Bool?
            for (t, who) in [(source, "source"), (destination, "destination")] {
                let state = (try? t.readField(at: HeaderField.deviceState.offset, width: 4)).map { DeviceState(rawValue: UInt32(truncatingIfNeeded: $0)) }
                if let state, state.isError {
                    guard options.resetOnError else { recovered = false; continue }
                    try? t.reset()
                    let after = (try? t.readField(at: HeaderField.deviceState.offset, width: 4)).map { DeviceState(rawValue: UInt32(truncatingIfNeeded: $0)) }
                    recovered = (recovered ?? true) && after?.bits == DeviceState.runningBit
                } else if who == "source" {
                    try? setState(t, who, mask: ~(DeviceState.savingBit | DeviceState.resumingBit), value: DeviceState.runningBit)
                } else {
                    try? setState(t, who, mask: ~DeviceState.mask, value: 0)
                }
            }
            return recovered
        }

        func stateName(_ t: RegionTransport) -> String {
            guard let raw = try? t.readField(at: HeaderField.deviceState.offset, width: 4) else { return "unreadable" }
            return DeviceState.name(ofBits: UInt32(truncatingIfNeeded: raw))
        }

        static func errnoName(_ e: Errno) -> String {
            ErrnoName.name(of: e)
        }
    }
}

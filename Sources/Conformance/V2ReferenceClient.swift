import DeviceSimulator
import MigrationProtocol
import Scenarios
import SystemPackage

/// The VMM side of a v2 migration, written the way QEMU 8-10's `hw/vfio/migration.c` drives a
/// device (../shared/notes/qemu10-v2-findings.md), so that what passes here passes there:
///
/// - setup: GET `MIGRATION` (STOP_COPY must be offered), `MIG_DATA_SIZE`, then PRE_COPY when the
///   device offers it (this SET returns the data_fd);
/// - pre-copy: one read of at most 1 MiB per iteration; `ENOMSG` means "nothing more for now";
///   `VFIO_MIG_GET_PRECOPY_INFO` gives the exact pending bytes, and the switchover comes once
///   `initial_bytes` is 0 and the total is at most the threshold (or at the iteration limit);
/// - switchover: PRE_COPY_P2P (the P2P prepare handler) when P2P is offered, then STOP_COPY on the
///   same data_fd; without PRE_COPY: RUNNING_P2P, STOP, STOP_COPY (a new data_fd); read until 0;
///   then STOP and close the data_fd;
/// - resume: one SET RESUMING from RUNNING, the stream written in pieces of at most 32 KiB
///   (QEMU's file buffer), RUNNING_P2P then RUNNING, and the data_fd closed only after RUNNING;
/// - cancel: close the data_fd in PRE_COPY, then RUNNING.
public struct V2ReferenceClient {
    public var options: ClientOptions
    /// Assumed link bandwidth for the downtime estimate, bytes per second.
    public var linkBandwidth: UInt64
    /// Called after each pre-copy iteration and periodically in stop-copy, for progress displays.
    public var progress: (@Sendable (String) -> Void)?
    /// QEMU reads at most this much per `read()` (`VFIO_MIG_DEFAULT_DATA_BUFFER_SIZE`).
    public static let readSize = 1 << 20
    /// QEMU's destination writes the stream in pieces of at most this many bytes.
    public static let writePiece = 32 << 10

    public init(options: ClientOptions = ClientOptions(), linkBandwidth: UInt64 = 1 << 30) {
        self.options = options
        self.linkBandwidth = linkBandwidth
    }

    /// Migrates `source` to `destination` and reports. Never throws: failures are in the report.
    public func migrate(from source: any V2Transport, to destination: any V2Transport) -> MigrationReport {
        var run = Run(client: self, source: source, destination: destination)
        return run.execute()
    }

    private struct Run {
        let client: V2ReferenceClient
        let source: any V2Transport
        let destination: any V2Transport
        var options: ClientOptions { client.options }
        var tally = MigrationTally()
        /// Page aligned: a direct_io read of a buffer that straddles one more page than its size
        /// needs is split by the kernel at FUSE's 256-page limit, and the device saw each 1 MiB
        /// read as two (1 MiB - 16 bytes, then 16), unlike the same client in process.
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: V2ReferenceClient.readSize, alignment: 4096)

        init(client: V2ReferenceClient, source: any V2Transport, destination: any V2Transport) {
            self.client = client
            self.source = source
            self.destination = destination
        }

        mutating func execute() -> MigrationReport {
            defer { buffer.deallocate() }
            var failure: MigrationReport.Failure?
            var outcome = "completed"
            var sourceDigest: String?, destinationDigest: String?
            var recovered: Bool?
            do {
                if try saveAndResume() {
                    outcome = "cancelled"
                } else {
                    sourceDigest = try? source.digest()
                    destinationDigest = try? destination.digest()
                }
            } catch {
                outcome = "failed"
                failure = MigrationReport.Failure(step: error.step, errno: error.errno.map { ErrnoName.name(of: $0) }, message: error.message)
                recovered = rollBack()
            }
            return tally.report(
                outcome: outcome, sourceDigest: sourceDigest, destinationDigest: destinationDigest,
                linkBandwidth: client.linkBandwidth, failure: failure,
                sourceState: ((try? source.state()) ?? .error).description,
                destinationState: ((try? destination.state()) ?? .error).description, recoveredByReset: recovered)
        }

        /// Returns true when the migration was cancelled as asked.
        mutating func saveAndResume() throws(StepFailure) -> Bool {
            let features = try call("source GET VFIO_DEVICE_FEATURE_MIGRATION") { () throws(Errno) in try source.features() }
            guard features.contains(.stopCopy) else {
                throw StepFailure(step: "source GET VFIO_DEVICE_FEATURE_MIGRATION", errno: nil,
                                  message: "the device does not offer VFIO_MIGRATION_STOP_COPY (flags 0x\(String(features.rawValue, radix: 16)))")
            }
            let p2p = features.contains(.p2p)
            _ = try call("source GET VFIO_DEVICE_FEATURE_MIG_DATA_SIZE") { () throws(Errno) in try source.stopCopyLength() }
            // The destination is set up first, as QEMU's load_setup runs at the incoming side.
            _ = try set(destination, .resuming)
            if features.contains(.preCopy) {
                _ = try set(source, .preCopy)
                tally.phase = "pre-copy"
                if try iteratePreCopy() { return true }
                // A paused guest's device is never stopped by QEMU: PRE_COPY straight to
                // STOP_COPY, which the kernel's table walks through PRE_COPY_P2P.
                if p2p, !options.pausedGuest { _ = try set(source, .preCopyP2P) }
                tally.phase = "stop-copy"
                if try set(source, .stopCopy) {
                    throw StepFailure(step: "source SET STOP_COPY", errno: nil,
                                      message: "the device opened a new data_fd for STOP_COPY inside the saving group")
                }
            } else {
                // The VM stop handler quiesces P2P first, then stops; save_complete asks for STOP_COPY.
                if p2p, !options.pausedGuest { _ = try set(source, .runningP2P) }
                _ = try set(source, .stop)
                tally.phase = "stop-copy"
                guard try set(source, .stopCopy) else {
                    throw StepFailure(step: "source SET STOP_COPY", errno: nil, message: "STOP -> STOP_COPY returned no data_fd")
                }
            }
            var rounds = 0
            while true {
                let n = try readChunk()
                if n == 0 { break }
                tally.stopBytes += UInt64(n)
                tally.chunks.stopAndCopy += 1
                try deliver(n)
                rounds += 1
                if rounds % 64 == 0 { client.progress?("stop-copy: \(tally.stopBytes) bytes") }
            }
            _ = try set(source, .stop)
            source.closeDataFD()
            tally.phase = "resumed"
            if p2p { _ = try set(destination, .runningP2P) }
            _ = try set(destination, .running)
            destination.closeDataFD()
            return false
        }

        /// Pre-copy iterations; returns true when cancelled as asked.
        mutating func iteratePreCopy() throws(StepFailure) -> Bool {
            while true {
                let info = try call("source VFIO_MIG_GET_PRECOPY_INFO") { () throws(Errno) in try source.precopyInfo() }
                let total = info.initialBytes + info.dirtyBytes
                tally.pending.append(total)
                if info.initialBytes == 0, total <= options.precopyThreshold { tally.converged = true; return false }
                if tally.precopyIterations >= options.maxPrecopyIterations { return false }
                if let cancel = options.cancelAfterIterations, tally.precopyIterations >= cancel {
                    // QEMU's cancel: close the data_fd, then RUNNING.
                    source.closeDataFD()
                    _ = try set(source, .running)
                    destination.closeDataFD()
                    return true
                }
                tally.precopyIterations += 1
                let n: Int
                do {
                    n = try source.read(into: buffer)
                } catch .noMessage {
                    // "No more data for now": QEMU treats it as an empty iteration.
                    n = 0
                } catch {
                    throw StepFailure(step: "source data_fd read in pre-copy", errno: error, message: "read failed")
                }
                if n > 0 {
                    tally.precopyBytes += UInt64(n)
                    tally.chunks.precopy += 1
                    try deliver(n)
                }
                client.progress?("pre-copy iteration \(tally.precopyIterations): pending \(total)")
            }
        }

        mutating func readChunk() throws(StepFailure) -> Int {
            do {
                return try source.read(into: buffer)
            } catch {
                throw StepFailure(step: "source data_fd read in \(tally.phase)", errno: error, message: "read failed")
            }
        }

        /// Writes the first `count` bytes of the buffer to the destination in QEMU's pieces.
        mutating func deliver(_ count: Int) throws(StepFailure) {
            var offset = 0
            while offset < count {
                let n = min(V2ReferenceClient.writePiece, count - offset)
                let written: Int
                do {
                    written = try destination.write(from: UnsafeRawBufferPointer(rebasing: buffer[offset..<(offset + n)]))
                } catch {
                    throw StepFailure(step: "destination data_fd write", errno: error, message: "write failed")
                }
                guard written > 0 else {
                    throw StepFailure(step: "destination data_fd write", errno: nil, message: "write accepted no bytes")
                }
                tally.chunks.resumeTransactions += 1
                offset += written
            }
        }

        @discardableResult
        mutating func set(_ device: any V2Transport, _ state: V2DeviceState) throws(StepFailure) -> Bool {
            try call("\(device.name) SET \(state)") { () throws(Errno) in try device.setState(state) }
        }

        func call<T>(_ step: String, _ body: () throws(Errno) -> T) throws(StepFailure) -> T {
            do {
                return try body()
            } catch {
                throw StepFailure(step: step, errno: error, message: "\(step) failed with \(ErrnoName.name(of: error))")
            }
        }

        /// After a failure: the source back to RUNNING (QEMU's recover state), and a device left in
        /// ERROR reset when the options ask for it; true when a reset brought one back.
        func rollBack() -> Bool? {
            source.closeDataFD()
            destination.closeDataFD()
            var recovered: Bool?
            for device in [source, destination] {
                if (try? device.state()) == .error {
                    guard options.resetOnError else { recovered = false; continue }
                    try? device.reset()
                    recovered = (recovered ?? true) && (try? device.state()) == .running
                } else if device === source {
                    _ = try? device.setState(.running)
                }
                // A destination still in RESUMING is left as QEMU leaves it: the incoming side exits.
            }
            return recovered
        }
    }
}

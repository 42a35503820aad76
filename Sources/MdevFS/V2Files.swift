import DeviceSimulator
import Foundation
import FUSEKit
import MigrationProtocol
import SystemPackage

/// The migration v2 files of a device directory, each one v2 call (docs/vmm-guide.md, "The v2
/// contract"): `mig_features`, `mig_state`, `mig_data_size`, `mig_precopy_info` hold binary
/// little-endian values read (or, for `mig_state`, written) whole at offset 0; `mig_data` is the
/// data_fd of the session current when it was opened. It only moves bytes: every rule is the
/// engine's (`V2Device`).
final class V2Files: @unchecked Sendable {
    private let lock = NSLock()
    // Guarded by `lock`: open `mig_data` files and the session each was opened for.
    private var dataHandles: [UInt64: (device: MdevDevice, session: UInt64)] = [:]
    /// Open `mig_precopy_info` files and the session each is bound to (nil: the current one).
    private var precopyHandles: [UInt64: UInt64?] = [:]
    /// Data handles are numbered apart from region handles, so a release finds its own table.
    private var nextHandle: UInt64 = 1 << 62

    /// Opens `mig_data`: binds the open file to the device's current data transfer session.
    /// With no session open there is no data_fd to stand for (`ENODEV`).
    func openData(_ device: MdevDevice, reply: OpenReply) {
        guard let v2 = device.v2, let session = device.withLock({ v2.currentSession }) else {
            return reply.error(.operationNotSupportedByDevice)
        }
        let handle = lock.withLock { () -> UInt64 in
            defer { nextHandle += 1 }
            dataHandles[nextHandle] = (device, session)
            return nextHandle
        }
        device.dataFileOpened()
        // A stream: offsets mean nothing, and every read or write must reach the device.
        reply.open(handle: handle, directIO: true, nonSeekable: true)
    }

    /// Opens `mig_precopy_info`: bound to the session open now, if one is, so that it answers
    /// `VFIO_MIG_GET_PRECOPY_INFO` on that session's data_fd (a stale one is refused and
    /// recorded); an open made with no session open answers for whichever session is current.
    func openPrecopyInfo(_ device: MdevDevice, reply: OpenReply) {
        guard let v2 = device.v2 else { return reply.error(.operationNotSupportedByDevice) }
        let session = device.withLock { v2.currentSession }
        let handle = lock.withLock { () -> UInt64 in
            defer { nextHandle += 1 }
            precopyHandles[nextHandle] = session
            return nextHandle
        }
        reply.open(handle: handle, directIO: true)
    }

    /// Forgets a `mig_data` or `mig_precopy_info` open; false when `handle` is not one.
    @discardableResult
    func release(_ handle: UInt64) -> Bool {
        let (data, precopy) = lock.withLock { (dataHandles.removeValue(forKey: handle), precopyHandles.removeValue(forKey: handle)) }
        data?.device.dataFileClosed()
        return data != nil || precopy != nil
    }

    /// Waits for the stalls the last call's faults asked for, with no lock held.
    private func settle(_ v2: V2Device, of device: MdevDevice) {
        hostSleep(nanoseconds: device.withLock { v2.takeStall() })
    }

    func read(_ device: MdevDevice, _ file: MdevNode.DeviceFile, _ request: ReadRequest, reply: DataReply) {
        guard let v2 = device.v2 else { return reply.error(.operationNotSupportedByDevice) }
        if file == .migData {
            guard let bound = lock.withLock({ dataHandles[request.handle] }) else { return reply.error(.badFileDescriptor) }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: request.size, alignment: 8)
            defer { buffer.deallocate() }
            let outcome = device.withLock { v2.read(session: bound.session, into: buffer) }
            settle(v2, of: device)
            switch outcome {
            case .failure(let e): reply.error(e)
            case .success(let n): reply.data(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            }
            return
        }
        let width: Int
        switch file {
        case .migFeatures: width = 8
        case .migState: width = 4
        case .migDataSize: width = 8
        case .migPrecopyInfo: width = 16
        case .migDMALogging: width = 8
        default: return reply.error(.invalidArgument)
        }
        // One value, read whole at offset 0, as the ioctl returns it whole; checked before the
        // engine is asked, so a refused read is no call (and no trace record).
        guard request.offset == 0, request.size == width else { return reply.error(.invalidArgument) }
        // PRECOPY_INFO answers for the session its open was bound to (the data_fd it sits next to).
        let precopySession = file == .migPrecopyInfo ? lock.withLock { precopyHandles[request.handle] ?? nil } : nil
        let value: Result<[UInt64], Errno> = switch file {
        case .migState: .success([UInt64(device.withLock { v2.get().rawValue })])
        case .migDataSize: .success([device.withLock { v2.stopCopyLength() }])
        case .migPrecopyInfo: device.withLock { v2.precopyInfo(session: precopySession) }.map { [$0.initialBytes, $0.dirtyBytes] }
        case .migDMALogging: .success([device.withLock { v2.dmaLog.isStarted ? DMALog.trackedPageSize : 0 }])
        default: .success([v2.features.rawValue])
        }
        settle(v2, of: device)
        switch value {
        case .failure(let e): reply.error(e)
        case .success(let words):
            var bytes: [UInt8] = []
            for w in words { withUnsafeBytes(of: w.littleEndian) { bytes += $0 } }
            reply.data(bytes.prefix(width))
        }
    }

    func write(_ device: MdevDevice, _ file: MdevNode.DeviceFile, _ request: WriteRequest, data: UnsafeRawBufferPointer,
               reply: WriteReply) {
        guard let v2 = device.v2 else { return reply.error(.operationNotSupportedByDevice) }
        switch file {
        case .migData:
            guard let bound = lock.withLock({ dataHandles[request.handle] }) else { return reply.error(.badFileDescriptor) }
            let outcome = device.withLock { v2.write(session: bound.session, from: data) }
            settle(v2, of: device)
            switch outcome {
            case .failure(let e): reply.error(e)
            case .success(let n): reply.write(n)
            }
        case .migState:
            guard request.offset == 0, data.count == 4 else { return reply.error(.invalidArgument) }
            let raw = UInt32(littleEndian: data.loadUnaligned(as: UInt32.self))
            guard let target = V2DeviceState(rawValue: raw) else { return reply.error(.invalidArgument) }
            let outcome = device.withLock { v2.set(target) }
            settle(v2, of: device)
            switch outcome {
            case .failure(let failure): reply.error(failure.errno)
            case .success: reply.write(4)
            }
        case .migDMALogging:
            guard request.offset == 0, let command = DMALogCommand(data) else { return reply.error(.invalidArgument) }
            let outcome: Result<Void, Errno> = device.withLock {
                switch command {
                case .start(let pageSize, let ranges): v2.dmaLoggingStart(ranges: ranges, pageSize: pageSize).map { _ in () }
                case .stop: v2.dmaLoggingStop()
                case .report(let pageSize, let iova, let length): v2.dmaLoggingReport(iova: iova, length: length, pageSize: pageSize)
                }
            }
            switch outcome {
            case .failure(let e): reply.error(e)
            case .success: reply.write(data.count)
            }
        default:
            reply.error(.permissionDenied)
        }
    }
}

/// One write to `mig_dma_logging` (docs/vmm-guide.md, "The v2 contract"): little-endian
/// `u32 op` (1 START, 2 STOP, 3 REPORT), `u32 count`, `u64 page_size`, then `count` ranges of
/// `u64 iova`, `u64 length`: START's ranges, REPORT's one range, none for STOP.
enum DMALogCommand: Equatable {
    case start(pageSize: UInt64, ranges: [DMALogRange])
    case stop
    case report(pageSize: UInt64, iova: UInt64, length: UInt64)

    static let headerSize = 16
    static let rangeSize = 16

    /// Nil for a record of the wrong shape (the file then answers `EINVAL`).
    init?(_ data: UnsafeRawBufferPointer) {
        guard data.count >= Self.headerSize else { return nil }
        func u64(_ offset: Int) -> UInt64 { UInt64(littleEndian: data.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
        let op = UInt32(littleEndian: data.loadUnaligned(as: UInt32.self))
        let count = Int(UInt32(littleEndian: data.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
        guard data.count == Self.headerSize + count * Self.rangeSize else { return nil }
        let pageSize = u64(8)
        let ranges = (0..<count).map { i in
            DMALogRange(iova: u64(Self.headerSize + i * Self.rangeSize), length: u64(Self.headerSize + i * Self.rangeSize + 8))
        }
        switch (op, count) {
        case (1, _): self = .start(pageSize: pageSize, ranges: ranges)
        case (2, 0): self = .stop
        case (3, 1): self = .report(pageSize: pageSize, iova: ranges[0].iova, length: ranges[0].length)
        default: return nil
        }
    }
}

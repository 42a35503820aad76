import DeviceSimulator
import MigrationProtocol
import SystemPackage
import EngineFixtures
import Testing

/// The v2 front-end in process: SET walks, the data_fd of each session, PRECOPY_INFO and
/// MIG_DATA_SIZE, and the checker's v2 records.
@Suite struct V2DeviceTests {
    static let all: V2MigrationFeatures = [.stopCopy, .p2p, .preCopy]

    static func pair(_ c: DeviceConfiguration, features: V2MigrationFeatures = all) -> (V2Device, V2Device) {
        (V2Device(device: SimulatedDevice(configuration: c, identity: "source"), features: features),
         V2Device(device: SimulatedDevice(configuration: c, identity: "destination"), features: features))
    }

    /// Reads the data_fd in `size` pieces until ENOMSG (pre-copy) or 0 (stop-copy).
    static func drain(_ d: V2Device, session: UInt64, size: Int = 1 << 20) -> (bytes: [UInt8], end: Errno?) {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: size)
        while true {
            let r = buffer.withUnsafeMutableBytes { d.read(session: session, into: $0) }
            switch r {
            case .failure(let e): return (out, e)
            case .success(0): return (out, nil)
            case .success(let n): out += buffer[0..<n]
            }
        }
    }

    /// Writes `bytes` in pieces of `piece` (QEMU writes at most 32 KiB at a time).
    static func feed(_ d: V2Device, session: UInt64, _ bytes: [UInt8], piece: Int = 32 << 10) -> Errno? {
        var offset = 0
        while offset < bytes.count {
            let n = min(piece, bytes.count - offset)
            let r = bytes[offset..<(offset + n)].withUnsafeBytes { d.write(session: session, from: $0) }
            if case .failure(let e) = r { return e }
            offset += n
        }
        return nil
    }

    /// What QEMU 10.0 does: PRE_COPY, iterate until ENOMSG, STOP_COPY (crossing PRE_COPY_P2P on
    /// the same data_fd), drain to 0, STOP; the destination resumes from 32 KiB writes.
    static func qemuLikeMigration(_ c: DeviceConfiguration, features: V2MigrationFeatures = all) throws -> (V2Device, V2Device, [UInt8]) {
        let (src, dst) = pair(c, features: features)
        var stream: [UInt8] = []
        let usesPreCopy = features.contains(.preCopy)
        let session: UInt64
        if usesPreCopy {
            let out = try src.set(.preCopy).get()
            session = try #require(out.newSession)
            let pre = drain(src, session: session)
            #expect(pre.end == .noMessage)
            stream += pre.bytes
            let stop = try src.set(.stopCopy).get()
            #expect(stop.newSession == nil, "STOP_COPY continues the pre-copy session on the same data_fd")
        } else {
            session = try #require(try src.set(.stopCopy).get().newSession)
        }
        let rest = drain(src, session: session)
        #expect(rest.end == nil)
        stream += rest.bytes
        _ = try src.set(.stop).get()

        let d = try #require(try dst.set(.resuming).get().newSession)
        #expect(feed(dst, session: d, stream) == nil)
        _ = try dst.set(features.contains(.p2p) ? .runningP2P : .running).get()
        _ = try dst.set(.running).get()
        return (src, dst, stream)
    }

    @Test(arguments: V2MigrationFeatures.allValid)
    func migratesWithEqualDigests(_ features: V2MigrationFeatures) throws {
        let c = smallConfiguration(dirtyRate: 64 << 20)
        let before = SimulatedDevice(configuration: c, identity: "destination").digest()
        let (src, dst, stream) = try Self.qemuLikeMigration(c, features: features)
        #expect(!stream.isEmpty)
        #expect(before != src.device.digest(), "devices must differ before the stream is applied")
        #expect(src.device.digest() == dst.device.digest())
        #expect(src.violations.isEmpty && dst.violations.isEmpty)
        #expect(dst.state == .running)
        #expect(dst.lastResume?.complete == true)
        // In pre-copy the running device dirtied pages it had sent: they went again, and arrived.
        // Without PRE_COPY the save happens stopped, and nothing is dirtied.
        if features.contains(.preCopy) {
            #expect(src.device.pagesDirtied > 0)
            #expect((src.lastSave?.pagesSent ?? 0) > c.pageCount)
        } else {
            #expect(src.device.pagesDirtied == 0)
        }
    }

    @Test func sameSeedSameStream() throws {
        let c = smallConfiguration(dirtyRate: 64 << 20)
        let a = try Self.qemuLikeMigration(c).2, b = try Self.qemuLikeMigration(c).2
        #expect(a == b)
    }

    /// The v1 and v2 streams of the same stop-and-copy save are the same bytes: one device model.
    @Test func stopCopyLengthIsExactAndTheStreamIsTheDevicesOwn() throws {
        let c = smallConfiguration()
        let src = V2Device(device: SimulatedDevice(configuration: c, identity: "source"), features: [.stopCopy])
        let announced = src.stopCopyLength()
        let session = try #require(try src.set(.stopCopy).get().newSession)
        #expect(src.stateLog == [.stop, .stopCopy], "RUNNING -> STOP_COPY without P2P walks RUNNING -> STOP -> STOP_COPY")
        #expect(src.stopCopyLength() == announced)
        let drained = Self.drain(src, session: session, size: 4000)
        #expect(UInt64(drained.bytes.count) == announced)
        #expect(src.stopCopyLength() == 0)
    }

    @Test func precopyInfoSumsToWhatPreCopyReturns() throws {
        let c = smallConfiguration()
        let src = V2Device(device: SimulatedDevice(configuration: c, identity: "source"), features: Self.all)
        let session = try #require(try src.set(.preCopy).get().newSession)
        let info = try src.precopyInfo(session: session).get()
        #expect(info.initialBytes > 0 && info.dirtyBytes == 0)
        let drained = Self.drain(src, session: session, size: 50_000)
        #expect(UInt64(drained.bytes.count) == info.initialBytes + info.dirtyBytes)
        #expect(drained.end == .noMessage)
        let after = try src.precopyInfo(session: session).get()
        #expect(after.initialBytes == 0 && after.dirtyBytes == 0)
        // Outside the pre-copy states the ioctl is EINVAL, and recorded.
        _ = try src.set(.stopCopy).get()
        #expect(src.precopyInfo(session: session).err == .invalidArgument)
        #expect(src.violations.map(\.rule) == [.v2PrecopyInfoState])
    }

    @Test func dirtyingShowsAsDirtyBytesAfterTheInitialPass() throws {
        let c = smallConfiguration(dirtyRate: 100 << 20)
        let src = V2Device(device: SimulatedDevice(configuration: c, identity: "source"), features: Self.all)
        let session = try #require(try src.set(.preCopy).get().newSession)
        var chunk = [UInt8](repeating: 0, count: Int(c.chunkSize))
        var info = try src.precopyInfo(session: session).get()
        var reads = 0
        while info.initialBytes > 0, reads < 1000 {
            _ = try chunk.withUnsafeMutableBytes { try src.read(session: session, into: $0).get() }
            info = try src.precopyInfo(session: session).get()
            reads += 1
        }
        // Reading took link time, during which the running device dirtied pages it had sent.
        #expect(info.initialBytes == 0)
        #expect(info.dirtyBytes > 0)
        // Pre-copy converges on an idle link only when the device stops dirtying: the dirty
        // bytes are exactly what the next reads return before ENOMSG, with no more time passing.
        #expect(info.dirtyBytes % UInt64(StreamFormat.pageRecordSize(pageSize: c.pageSize)) == 0 || info.dirtyBytes < c.chunkSize)
    }

    @Test func incompleteStreamFailsLeavingResumingAndOnlyResetRecovers() throws {
        let c = smallConfiguration()
        let (src, dst) = Self.pair(c)
        let s = try #require(try src.set(.stopCopy).get().newSession)
        let stream = Self.drain(src, session: s).bytes
        let d = try #require(try dst.set(.resuming).get().newSession)
        #expect(Self.feed(dst, session: d, Array(stream[0..<(stream.count / 2)])) == nil)
        let failure = try #require(dst.set(.running).err)
        #expect(failure.errno == .invalidArgument && failure.state == .error)
        #expect(dst.state == .error)
        #expect(dst.violations.map(\.rule) == [.v2ResumeIncomplete])
        #expect(dst.set(.running).err?.errno == .invalidArgument)
        #expect(dst.violations.last?.rule == .v2SetInError)
        dst.reset()
        #expect(dst.state == .running)
    }

    @Test func corruptedStreamIsRefusedByTheWriteAndTheSet() throws {
        let c = smallConfiguration()
        let (src, dst) = Self.pair(c)
        let s = try #require(try src.set(.stopCopy).get().newSession)
        var stream = Self.drain(src, session: s).bytes
        stream[stream.count / 2] ^= 0xFF
        let d = try #require(try dst.set(.resuming).get().newSession)
        #expect(Self.feed(dst, session: d, stream) == .invalidArgument)
        #expect(dst.state == .resuming, "a write never changes the state: only SET and reset do")
        #expect(dst.set(.stop).err?.state == .error)
        #expect(dst.lastError?.contains("corrupted stream") == true)
    }

    @Test func staleAndWrongWayDataFDs() throws {
        let c = smallConfiguration()
        let src = V2Device(device: SimulatedDevice(configuration: c, identity: "source"), features: Self.all)
        let first = try #require(try src.set(.preCopy).get().newSession)
        _ = try src.set(.running).get()  // cancel: the session ends
        var byte = [UInt8](repeating: 0, count: 16)
        #expect(byte.withUnsafeMutableBytes { src.read(session: first, into: $0) }.err == .operationNotSupportedByDevice)
        let second = try #require(try src.set(.preCopy).get().newSession)
        #expect(second != first)
        #expect(byte.withUnsafeBytes { src.write(session: second, from: $0) }.err == .badFileDescriptor)
        #expect(src.violations.map(\.rule) == [.v2StaleDataFD, .v2DataFDDirection])
    }

    @Test func refusedSetsLeaveTheStateAndRecordTheRule() {
        let c = smallConfiguration()
        let d = V2Device(device: SimulatedDevice(configuration: c, identity: "x"), features: [.stopCopy])
        #expect(d.set(.preCopy).err?.errno == .invalidArgument)
        #expect(d.set(.error).err?.errno == .invalidArgument)
        #expect(d.state == .running)
        #expect(d.violations.map(\.rule) == [.v2UnsupportedState, .v2SetError])
    }
}

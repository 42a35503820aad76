import Conformance
import DeviceSimulator
import Foundation
import Glibc
import MdevFS
import MigrationProtocol
import Scenarios
import SystemPackage
import Testing
import TestSupport

/// Migration v2 through a real mount: the v2 files of a device speaking v2, one file operation
/// per v2 call, and the v2 reference client migrating through them.
@Suite(.serialized) struct V2MountTests {
    static func scenario(features: V2MigrationFeatures = [.stopCopy, .p2p, .preCopy]) -> Scenario {
        var base = smallScenario()
        var both = base.types[0].configuration
        both.typeName = "mdevsim-v2"
        both.protocols = [.v1, .v2]
        both.v2Features = features
        base.types.append(DeviceTypeSpec(configuration: both, instances: 4))
        return base
    }

    static let v2Files = ["mig_features", "mig_state", "mig_data", "mig_precopy_info", "mig_data_size", "mig_dma_logging", "mig_state_log"]

    @Test func v2FilesExistOnlyOnDevicesSpeakingV2() throws {
        let fixture = try MountFixture(Self.scenario())
        defer { fixture.close() }
        let v1 = try fixture.create()
        let v2 = try fixture.create(type: "mdevsim-v2")
        let v1Listing = try FileManager.default.contentsOfDirectory(atPath: v1)
        let v2Listing = try FileManager.default.contentsOfDirectory(atPath: v2)
        for f in Self.v2Files {
            #expect(!v1Listing.contains(f))
            #expect(v2Listing.contains(f))
            #expect(access("\(v1)/\(f)", F_OK) != 0 && errno == ENOENT)
        }
        #expect(v2Listing.contains("migration"), "a device speaking both keeps its v1 region")
    }

    /// A device speaking both protocols has one checker per front-end: its `violations` file
    /// lists the v1 records, then the v2 ones, each counting `index` from 0 (docs/vmm-guide.md,
    /// "What the checker flags").
    @Test func violationsListV1ThenV2EachIndexedFromZero() throws {
        let fixture = try MountFixture(Self.scenario())
        defer { fixture.close() }
        let dir = try fixture.create(type: "mdevsim-v2")
        // v2 first in time: the order of the file is by front-end, not by time.
        let state = open("\(dir)/mig_state", O_RDWR)
        #expect(state >= 0)
        var error = V2DeviceState.error.rawValue
        #expect(pwrite(state, &error, 4, 0) == -1 && errno == EINVAL)
        close(state)
        let region = open("\(dir)/migration", O_RDWR)
        #expect(region >= 0)
        var half: UInt32 = 0
        _ = pread(region, &half, 4, off_t(HeaderField.pendingBytes.offset))   // a 4-byte pending_bytes read: access-width
        _ = pread(region, &half, 2, off_t(HeaderField.deviceState.offset))    // a 2-byte device_state read: access-width
        close(region)
        let lines = (fixture.read("devices/\(URL(fileURLWithPath: dir).lastPathComponent)/violations") ?? "").split(separator: "\n")
        let records = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(records.count == 3, "\(lines)")
        #expect(records.map { $0["rule"] as? String } == ["access-width", "access-width", "v2-set-error"])
        #expect(records.map { $0["index"] as? Int } == [0, 1, 0])
        #expect(records[2]["access"] == nil && records[2]["state"] as? Int == Int(V2DeviceState.running.rawValue))
    }

    @Test func eachFileIsOneCallWithExactSizes() throws {
        let fixture = try MountFixture(Self.scenario())
        defer { fixture.close() }
        let dir = try fixture.create(type: "mdevsim-v2")
        let fd = open("\(dir)/mig_state", O_RDWR)
        #expect(fd >= 0)
        defer { close(fd) }
        var state: UInt32 = 0
        #expect(pread(fd, &state, 4, 0) == 4 && state == V2DeviceState.running.rawValue)
        var wide: UInt64 = 0
        #expect(pread(fd, &wide, 8, 0) == -1 && errno == EINVAL, "GET is exactly 4 bytes")
        // No session: no data_fd to open.
        #expect(open("\(dir)/mig_data", O_RDONLY) == -1 && errno == ENODEV)
        // PRECOPY_INFO outside pre-copy is EINVAL, as the uAPI says.
        let info = open("\(dir)/mig_precopy_info", O_RDONLY)
        defer { close(info) }
        var pair = (UInt64(0), UInt64(0))
        #expect(pread(info, &pair, 16, 0) == -1 && errno == EINVAL)
        // SET ERROR is refused and recorded.
        var error = V2DeviceState.error.rawValue
        #expect(pwrite(fd, &error, 4, 0) == -1 && errno == EINVAL)
        // SET PRE_COPY opens a session; its data_fd reads to ENOMSG through FUSE.
        var pre = V2DeviceState.preCopy.rawValue
        #expect(pwrite(fd, &pre, 4, 0) == 4)
        let data = open("\(dir)/mig_data", O_RDONLY)
        #expect(data >= 0)
        defer { close(data) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 8)
        defer { buffer.deallocate() }
        var total = 0
        var end: Int32 = 0
        while true {
            let n = read(data, buffer.baseAddress, buffer.count)
            if n < 0 { end = errno; break }
            if n == 0 { break }
            total += n
        }
        #expect(total > 0)
        #expect(end == ENOMSG, "pre-copy's temporary end of stream reaches the client as ENOMSG")
        let violations = fixture.read("devices/\(URL(fileURLWithPath: dir).lastPathComponent)/violations") ?? ""
        #expect(violations.contains("v2-set-error"))
    }

    /// An open data_fd holds the device as an open region does: `remove` is EBUSY until it
    /// closes (sysfs does not remove an mdev whose VFIO device is open).
    @Test func anOpenDataFDKeepsTheDeviceFromRemoval() throws {
        let fixture = try MountFixture(Self.scenario())
        defer { fixture.close() }
        let dir = try fixture.create(type: "mdevsim-v2")
        let state = open("\(dir)/mig_state", O_RDWR)
        try #require(state >= 0)
        var pre = V2DeviceState.preCopy.rawValue
        #expect(pwrite(state, &pre, 4, 0) == 4)
        close(state)
        let data = open("\(dir)/mig_data", O_RDONLY)
        try #require(data >= 0)
        #expect(throws: Errno.resourceBusy) { try FileTransport.writeText("1\n", to: "\(dir)/remove") }
        close(data)
        // The RELEASE reaches the daemon after close returns.
        var removed = false
        for _ in 0..<100 where !removed {
            removed = (try? FileTransport.writeText("1\n", to: "\(dir)/remove")) != nil
            if !removed { usleep(20_000) }
        }
        #expect(removed && !FileManager.default.fileExists(atPath: dir))
    }

    @Test(arguments: [V2MigrationFeatures([.stopCopy, .p2p, .preCopy]), [.stopCopy]])
    func referenceClientMigratesThroughTheMount(_ features: V2MigrationFeatures) throws {
        let fixture = try MountFixture(Self.scenario(features: features))
        defer { fixture.close() }
        let src = try fixture.create(type: "mdevsim-v2"), dst = try fixture.create(type: "mdevsim-v2")
        #expect(fixture.read("devices/\(URL(fileURLWithPath: src).lastPathComponent)/digest")
                != fixture.read("devices/\(URL(fileURLWithPath: dst).lastPathComponent)/digest"))
        let report: MigrationReport
        do {
            let source = try FileV2Transport(directory: src, name: "source")
            let destination = try FileV2Transport(directory: dst, name: "destination")
            report = V2ReferenceClient(options: ClientOptions(precopyThreshold: 64 << 10)).migrate(from: source, to: destination)
        }
        #expect(report.succeeded, "\(report.failure?.step ?? ""): \(report.failure?.message ?? "")")
        #expect(report.sourceState == "STOP" && report.destinationState == "RUNNING")
        for dir in [src, dst] {
            #expect(fixture.read("devices/\(URL(fileURLWithPath: dir).lastPathComponent)/violations") == "")
        }
        let uuid = URL(fileURLWithPath: src).lastPathComponent
        let log = fixture.mount.filesystem.v2Device(uuid)?.stateLog ?? []
        #expect(log == (features.contains(.preCopy) ? [.preCopy, .preCopyP2P, .stopCopy, .stop] : [.stop, .stopCopy, .stop]))
        // The same log, read from the mount.
        #expect(fixture.read("devices/\(uuid)/mig_state_log") == log.map(\.description).joined(separator: " ") + "\n")
    }

    /// One `mig_dma_logging` command as the contract lays it out: op, count, page size, ranges.
    private static func dmaCommand(_ op: UInt32, pageSize: UInt64, _ ranges: [(UInt64, UInt64)]) -> [UInt8] {
        var bytes: [UInt8] = []
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        put(op)
        put(UInt32(ranges.count))
        put(pageSize)
        for (iova, length) in ranges {
            put(iova)
            put(length)
        }
        return bytes
    }

    /// DMA logging misuse through a real mount, as a plain client (or the VFIO shim) makes the
    /// calls: each call is one pwrite of `mig_dma_logging`; the checker records each misuse
    /// with its rule, and the errno is the kernel's (vfio_main.c's core checks, mlx5's
    /// `log_active`). What the kernel lets pass (STOP without START, a REPORT outside START's
    /// ranges) succeeds and is recorded; `--strict` refuses it with EINVAL.
    @Test(arguments: [false, true])
    func dmaLoggingMisuseIsRecordedWithTheKernelsErrno(strict: Bool) throws {
        let fixture = try MountFixture(Self.scenario(), strict: strict)
        defer { fixture.close() }
        let dir = try fixture.create(type: "mdevsim-v2")
        let uuid = URL(fileURLWithPath: dir).lastPathComponent
        let fd = open("\(dir)/mig_dma_logging", O_RDWR)
        #expect(fd >= 0)
        defer { close(fd) }
        /// The errno of one command (0 for success).
        func call(_ op: UInt32, pageSize: UInt64 = 4096, _ ranges: [(UInt64, UInt64)] = []) -> Int32 {
            let bytes = Self.dmaCommand(op, pageSize: pageSize, ranges)
            return pwrite(fd, bytes, bytes.count, 0) == bytes.count ? 0 : errno
        }
        func tracked() -> UInt64 {
            var v: UInt64 = 0xdead
            return pread(fd, &v, 8, 0) == 8 ? v : 0xdead
        }
        let (start, stop, report): (UInt32, UInt32, UInt32) = (1, 2, 3)
        let tolerated = strict ? EINVAL : 0
        var expected: [String] = []
        // Each step: the call, its errno, the rule it records (nil: none).
        let steps: [(String, () -> Int32, Int32, String?)] = [
            ("REPORT before START", { call(report, [(0, 1 << 20)]) }, EINVAL, "v2-dma-log-report-without-start"),
            ("STOP without START", { call(stop) }, tolerated, "v2-dma-log-stop-without-start"),
            ("START with no range", { call(start, []) }, EINVAL, "v2-dma-log-ranges"),
            ("START with overlapping ranges", { call(start, [(0, 2 << 20), (1 << 20, 2 << 20)]) }, EINVAL, "v2-dma-log-ranges"),
            ("START with a range not aligned to the page size", { call(start, [(512, 4096)]) }, EINVAL, "v2-dma-log-ranges"),
            ("START with a wrapping range", { call(start, [(UInt64.max - 4095, 8192)]) }, EOVERFLOW, "v2-dma-log-ranges"),
            ("START with a page size that is no power of two", { call(start, pageSize: 3000, [(0, 3000)]) }, EINVAL, "v2-dma-log-page-size"),
            ("START", { call(start, pageSize: 2048, [(0, 64 << 20), (128 << 20, 64 << 20)]) }, 0, nil),
            ("START twice", { call(start, [(0, 4096)]) }, EINVAL, "v2-dma-log-start-twice"),
            ("REPORT with a page size below 4096", { call(report, pageSize: 2048, [(0, 1 << 20)]) }, EINVAL, "v2-dma-log-page-size"),
            ("REPORT within START's ranges", { call(report, [(128 << 20, 64 << 20)]) }, 0, nil),
            ("REPORT exceeding START's ranges", { call(report, [(32 << 20, 64 << 20)]) }, tolerated, "v2-dma-log-report-range"),
            ("REPORT that wraps", { call(report, [(UInt64.max - 4095, 8192)]) }, EOVERFLOW, "v2-dma-log-report-range"),
            ("STOP", { call(stop) }, 0, nil),
        ]
        #expect(tracked() == 0, "logging off: no page size")
        for (name, step, errnoExpected, rule) in steps {
            #expect(step() == errnoExpected, "\(name)")
            if let rule { expected.append(rule) }
            if name == "START" { #expect(tracked() == 4096, "the device tracks 4 KiB pages whatever START asked") }
        }
        #expect(tracked() == 0, "STOP ended logging")
        // A malformed record is no call: EINVAL, nothing recorded.
        #expect(pwrite(fd, [UInt8](repeating: 0, count: 12), 12, 0) == -1 && errno == EINVAL)
        let records = (fixture.read("devices/\(uuid)/violations") ?? "").split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }
        #expect(records.compactMap { $0["rule"] as? String } == expected)
        #expect(records.first?["explanation"] as? String == "DMA_LOGGING_REPORT while logging is not started")
        let state = (try? JSONSerialization.jsonObject(with: Data((fixture.read("devices/\(uuid)/state") ?? "").utf8))) as? [String: Any]
        let v2 = state?["v2"] as? [String: Any]
        #expect(v2?["violations"] as? Int == expected.count)
        #expect(v2?["dma_logging"] as? Bool == false)
    }

    /// `mig_precopy_info` opened during a session answers for that session only, as
    /// PRECOPY_INFO on its data_fd: once a new session started, the old open is refused with
    /// ENODEV and recorded as a stale data_fd; an open made with no session follows the current one.
    @Test func precopyInfoAnswersForTheSessionItWasOpenedIn() throws {
        let fixture = try MountFixture(Self.scenario())
        defer { fixture.close() }
        let dir = try fixture.create(type: "mdevsim-v2")
        let uuid = URL(fileURLWithPath: dir).lastPathComponent
        let state = open("\(dir)/mig_state", O_RDWR)
        let unbound = open("\(dir)/mig_precopy_info", O_RDONLY)
        defer { close(state); close(unbound) }
        func set(_ s: V2DeviceState) -> Bool {
            var raw = s.rawValue
            return pwrite(state, &raw, 4, 0) == 4
        }
        func info(_ fd: Int32) -> Int32 {
            var pair = (UInt64(0), UInt64(0))
            return pread(fd, &pair, 16, 0) == 16 ? 0 : errno
        }
        #expect(set(.preCopy))
        let first = open("\(dir)/mig_precopy_info", O_RDONLY)
        defer { close(first) }
        #expect(info(first) == 0 && info(unbound) == 0)
        #expect(set(.running) && set(.preCopy), "a second save session")
        #expect(info(first) == ENODEV, "the first session's PRECOPY_INFO after it ended")
        #expect(info(unbound) == 0, "an open made with no session follows the current one")
        let second = open("\(dir)/mig_precopy_info", O_RDONLY)
        defer { close(second) }
        #expect(info(second) == 0)
        #expect(fixture.read("devices/\(uuid)/violations")?.contains("v2-stale-data-fd") == true)
    }
}

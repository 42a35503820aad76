import Conformance
import DeviceSimulator
import Foundation
import FUSEKit
import Glibc
import MdevFS
import Scenarios
import SystemPackage
import Testing
import TestSupport

/// Traces recorded through real FUSE mounts replay clean in process.
@Suite struct TraceMountTests {
    /// A migration through the region files of a mount, traced by the mount's observer.
    @Test(arguments: [DataAccessMode.mmap, .pread])
    func fuseMigrationTraceReplaysClean(access: DataAccessMode) throws {
        var scenario = smallScenario()
        scenario.migration.client.access = access
        let mountpoint = try RunMountpoint(prefix: "/tmp/mdevsim-test.")
        defer { mountpoint.remove() }
        let path = mountpoint.path + ".trace.jsonl"
        defer { unlink(path) }
        let writer = try TraceWriter(path: path, header: TraceHeader(scenario: scenario, scenarioPath: nil, strict: false, recorder: "run"))
        let report = try FUSEMigration(scenario: scenario, mountpoint: mountpoint.path, observer: TraceRecorder(sink: writer)).run()
        #expect(writer.close() == nil)
        #expect(report.succeeded, "\(report.failure?.message ?? "")")

        let trace = try TraceFile.load(path: path)
        let ops = trace.entries.map(\.record.op)
        for op in [TraceRecord.Operation.create, .open, .release, .remove] {
            #expect(ops.filter { $0 == op }.count == 2, "two \(op.rawValue) records")
        }
        // Page faults and writebacks of the mapping are not accesses: only whole chunks appear.
        #expect(!trace.entries.contains { !$0.record.isHeaderAccess && $0.record.count == 4096 && $0.record.op != .apply })
        if access == .mmap {
            #expect(ops.contains(.stage) && ops.contains(.apply))
        } else {
            #expect(!ops.contains(.apply))
        }
        let outcome = try TraceReplay(trace: trace, scenario: scenario).run()
        #expect(outcome.divergence == nil, "\(outcome.divergence?.description ?? "")")
        #expect(outcome.recordsMatched == trace.entries.count)
        #expect(outcome.devices == 2)
    }

    /// `mdevsim mount --trace` as a user runs it: the daemon gets the option, and a SIGTERM's
    /// clean unmount leaves the whole trace on disk, which `mdevsim replay` plays back clean.
    @Test func daemonTraceIsCompleteAfterSIGTERM() throws {
        let mountpoint = try RunMountpoint(prefix: "/tmp/mdevsim-test.")
        defer { mountpoint.remove() }
        let dir = mountpoint.path
        let path = dir + ".trace.jsonl"
        defer { unlink(path) }
        let (status, output) = try MountCommandTests.mdevsim(["mount", dir, "--trace", path])
        #expect(status == 0, "\(output)")
        // From the command's own message: scanning /proc/*/cmdline can block on an unrelated
        // process stuck in a page fault of some other hung FUSE mount.
        let pidText = try #require(output.split(separator: "daemon pid ").last?.prefix { $0.isNumber })
        let pid = try #require(pid_t(pidText))
        var terminated = false
        defer { if !terminated { _ = try? MountCommandTests.mdevsim(["unmount", dir]) } }

        let uuid = UUID().uuidString.lowercased()
        try FileTransport.writeText(uuid + "\n", to: "\(dir)/mdev_supported_types/mdevsim-default/create")
        do {
            let region = try FileTransport(directory: "\(dir)/devices/\(uuid)", map: false)
            var state: UInt32 = 0
            #expect(try withUnsafeMutableBytes(of: &state) { try region.read(at: 0, into: $0) } == 4)
            var pending: UInt64 = 0
            // Not in a saving state: EINVAL is part of what the trace must reproduce.
            #expect(throws: Errno.self) { try withUnsafeMutableBytes(of: &pending) { try region.read(at: 8, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<4])) } }
            var precopy: UInt32 = 3
            #expect(try withUnsafeBytes(of: &precopy) { try region.write(at: 0, from: $0) } == 4)
            #expect(try withUnsafeMutableBytes(of: &pending) { try region.read(at: 8, into: $0) } == 8)
            #expect(pending > 0)
            var offset: UInt64 = 0
            #expect(try withUnsafeMutableBytes(of: &offset) { try region.read(at: 16, into: $0) } == 8)
            var chunk = [UInt8](repeating: 0, count: 1000)
            #expect(try chunk.withUnsafeMutableBytes { try region.read(at: offset, into: $0) } == 1000)
            try region.reset()
        }
        // The region's RELEASE reaches the daemon just after close: remove refuses (EBUSY) until then.
        #expect(waitUntil(timeout: .seconds(30), interval: .milliseconds(50)) { (try? FileTransport.writeText("1\n", to: "\(dir)/devices/\(uuid)/remove")) != nil })
        kill(pid, SIGTERM)
        #expect(waitUntil(timeout: .seconds(30), interval: .milliseconds(50)) { kill(pid, 0) != 0 && MountHelpers.status(of: dir) == .notMounted })
        terminated = true

        let trace = try TraceFile.load(path: path)
        let ops = trace.entries.map(\.record.op)
        #expect(ops.filter { $0 != .remove } == [.create, .open, .read, .read, .write, .read, .read, .stage, .read, .reset, .release])
        #expect(trace.entries.last?.record.op == .remove && trace.entries.last?.record.result == "ok")
        #expect(trace.entries[3].record.result == "EINVAL")
        #expect(trace.header.recorder == "mount" && trace.header.scenario == "default")
        let (replayed, text) = try MountCommandTests.mdevsim(["replay", path])
        #expect(replayed == 0, "\(text)")
        #expect(text.contains("replay: 6 accesses matched (\(trace.entries.count) records, 1 device)"))
    }
}

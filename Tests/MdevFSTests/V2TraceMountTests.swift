import Conformance
import Foundation
import FUSEKit
import Glibc
import Testing
import TestSupport

/// `mdevsim mount --trace` records the v2 calls of a plain C client (examples/migrate_v2.c)
/// through the mount's v2 files, and `mdevsim replay` plays them back with no divergence.
@Suite(.serialized) struct V2TraceMountTests {
    @Test func aV2ClientTracedByTheMountCommandReplaysClean() throws {
        let binary = try VMMExampleTests.build(VMMExampleTests.v2Source)
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: binary).deletingLastPathComponent().path) }
        let mountpoint = try RunMountpoint(prefix: "/tmp/mdevsim-test.")
        defer { mountpoint.remove() }
        let dir = mountpoint.path
        let path = dir + ".trace.jsonl", scenario = dir + ".yaml"
        defer { unlink(path); unlink(scenario) }
        try """
            # Exercises: a small v2 device for the mount trace test.
            name: v2-trace
            types:
              - type: mdevsim-v2
                memory: 2MiB
                dirty: {rate: 1MiB/s}
                protocols: [v1, v2]
                v2: {p2p: true, pre_copy: true}
            """.write(toFile: scenario, atomically: true, encoding: .utf8)
        let (status, output) = try MountCommandTests.mdevsim(["mount", dir, "--scenario", scenario, "--trace", path])
        #expect(status == 0, "\(output)")
        var mounted = status == 0
        defer { if mounted { _ = try? MountCommandTests.mdevsim(["unmount", dir]) } }

        let (migrated, text) = try runTool(binary, [dir, "mdevsim-v2"])
        #expect(migrated == 0 && text.contains("digests equal, 0 violation(s)"), "\(text)")
        let (unmounted, why) = try MountCommandTests.mdevsim(["unmount", dir])
        #expect(unmounted == 0, "\(why)")
        mounted = unmounted != 0

        let trace = try TraceFile.load(path: path)
        #expect(trace.header.recorder == "mount" && trace.header.formatVersion == 2)
        let ops = Set(trace.entries.map(\.record.op))
        #expect(ops.isSuperset(of: [.create, .v2Set, .v2Read, .v2Write, .remove]), "\(ops)")
        let (replayed, result) = try MountCommandTests.mdevsim(["replay", path, "--scenario", scenario])
        #expect(replayed == 0, "\(result)")
        #expect(result.contains("replay: \(trace.entries.filter { $0.record.op.isV2 }.count) accesses matched"), "\(result)")
    }
}

import Conformance
import Foundation
import FUSEKit
import Glibc
import Testing
import TestSupport

/// The same scenarios and seeds give the same bytes: stream digests, reports and traces, twice
/// through a real FUSE mount and once in process. Never skipped (fails without /dev/fuse).
@Suite(.serialized) struct DeterminismMountTests {
    /// Scenarios that dirty while pre-copy runs (the identities seed the dirtying), map the data
    /// section, read it with pread, stall, and fail: the paths a mount could make differ.
    static let files = ["hot-set.yaml", "mmap-on.yaml", "mmap-off-pread.yaml", "fault-stall.yaml",
                        "fault-fail-data-offset.yaml"].map { libraryDirectory + "/" + $0 }

    struct Outputs {
        var stdout: String
        var json: Data
        var junit: Data
        var traces: [String: Data]
        var status: Int32
    }

    static func run(_ extra: [String], tmp: String, name: String) throws -> Outputs {
        let dir = tmp + "/" + name
        let arguments = ["run", "--reproducible", "--json", dir + ".json", "--junit", dir + ".xml", "--trace", dir] + extra + files
        let (process, out) = try RunnerMountTests.launch(arguments, tmp: tmp)
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        var traces: [String: Data] = [:]
        for file in try FileManager.default.contentsOfDirectory(atPath: dir) {
            traces[file] = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + file))
        }
        return Outputs(stdout: text, json: try Data(contentsOf: URL(fileURLWithPath: dir + ".json")),
                       junit: try Data(contentsOf: URL(fileURLWithPath: dir + ".xml")), traces: traces,
                       status: process.terminationStatus)
    }

    /// A trace without its header line (which names its recorder: `run` or `in-process`).
    static func records(_ trace: Data) -> Data {
        guard let newline = trace.firstIndex(of: 0x0A) else { return Data() }
        return trace[(newline + 1)...]
    }

    @Test func runTwiceThroughFUSEAndOnceInProcessGivesTheSameBytes() throws {
        try MountHelpers.checkFUSEDevice()
        let tmp = try RunnerMountTests.privateTmp()
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        // A small device speaking both protocols: its v2 entry's trace is compared too.
        let both = tmp + "/both-protocols.yaml"
        try """
            name: both-protocols
            types:
              - type: both
                memory: 4MiB
                dirty: {rate: 8MiB/s}
                protocols: [v1, v2]
                v2: {p2p: true, pre_copy: true}
            """.write(toFile: both, atomically: true, encoding: .utf8)
        let first = try Self.run([both], tmp: tmp, name: "fuse1")
        let second = try Self.run([both], tmp: tmp, name: "fuse2")
        let local = try Self.run(["--in-process", both], tmp: tmp, name: "local")
        #expect(first.status == 0, "\(first.stdout)")
        for outputs in [first, local] {
            #expect(ReportSchemas.jsonProblem(data: outputs.json) == nil)
            #expect(ReportSchemas.junitProblem(text: String(decoding: outputs.junit, as: UTF8.self)) == nil)
        }
        #expect(first.traces.count == Self.files.count + 2, "\(first.traces.keys.sorted())")
        #expect(first.traces["both-protocols.v2.trace.jsonl"] != nil)
        #expect(first.stdout == second.stdout)
        #expect(first.json == second.json, "JSON reports of two runs through FUSE differ")
        #expect(first.junit == second.junit, "JUnit reports of two runs through FUSE differ")
        #expect(first.traces == second.traces, "traces of two runs through FUSE differ")
        // In process: the same lines, and the same reports but for the mode they name.
        #expect(local.stdout == first.stdout)
        // The run's mode (`fuse`, in JUnit testcase properties `mount`) is the one intended difference.
        let mode = { (d: Data) in
            String(decoding: d, as: UTF8.self).replacingOccurrences(of: "in-process", with: "fuse").replacingOccurrences(of: "\"mount\"", with: "\"fuse\"")
        }
        #expect(mode(local.json) == mode(first.json))
        #expect(mode(local.junit) == mode(first.junit))
        #expect(Set(local.traces.keys) == Set(first.traces.keys))
        for (name, trace) in first.traces {
            #expect(local.traces[name].map(Self.records) == Self.records(trace), "\(name): in process and through FUSE differ")
        }
        // And the stream itself: the digests are there, of real devices (not the same as each other's power-on).
        let json = try #require(JSONSerialization.jsonObject(with: first.json) as? [String: Any])
        let scenarios = try #require(json["scenarios"] as? [[String: Any]])
        let hotSet = try #require(scenarios.first { $0["name"] as? String == "hot-set" }?["report"] as? [String: Any])
        #expect((hotSet["source_digest"] as? String)?.count == 64)
        #expect((hotSet["pending_sequence"] as? [Int])?.count ?? 0 > 7)
        #expect(RunnerMountTests.mountsUnder(tmp).isEmpty)
    }

    @Test func migrateRepeatsThroughFUSEAndGivenUUIDsAreUsed() throws {
        try MountHelpers.checkFUSEDevice()
        let tmp = try RunnerMountTests.privateTmp()
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        func migrate(_ extra: [String]) throws -> String {
            let (process, out) = try RunnerMountTests.launch(["migrate", "--json"] + extra, tmp: tmp)
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "\(text)")
            return text
        }
        let a = try migrate([]), b = try migrate([]), c = try migrate(["--in-process"])
        #expect(ReportSchemas.jsonProblem(data: Data(a.utf8), definition: "migration_report") == nil)
        #expect(a == b, "two migrations of the built-in default through FUSE differ")
        #expect(a == c)
        // Other identities are other devices: other power-on memory, other dirtying.
        let other = try migrate(["--uuid", "0b8f8e3c-4f0e-4d51-9b61-58c3a3a1f001", "--uuid", "0b8f8e3c-4f0e-4d51-9b61-58c3a3a1f002"])
        #expect(other != a)
        #expect(other == (try migrate(["--in-process", "--uuid", "0b8f8e3c-4f0e-4d51-9b61-58c3a3a1f001", "--uuid", "0b8f8e3c-4f0e-4d51-9b61-58c3a3a1f002"])))
        #expect(RunnerMountTests.mountsUnder(tmp).isEmpty)
    }

    @Test func identitiesDeriveFromTheSeedAndNameAndAreUUIDs() throws {
        let a = DeviceIdentities.derived(seed: 1, scenario: "default", role: "source")
        #expect(a == DeviceIdentities.derived(seed: 1, scenario: "default", role: "source"))
        #expect(a != DeviceIdentities.derived(seed: 2, scenario: "default", role: "source"))
        #expect(a != DeviceIdentities.derived(seed: 1, scenario: "default", role: "destination"))
        #expect(a != DeviceIdentities.derived(seed: 1, scenario: "other", role: "source"))
        let uuid = try #require(UUID(uuidString: a))
        #expect(uuid.uuidString.lowercased() == a)
        #expect(Array(a)[14] == "8", "version 8 (derived), never equal to a random version 4 UUID")
        #expect(throws: DeviceIdentities.InvalidIdentities.self) { try DeviceIdentities.parse(["x", "y"]) }
        #expect(throws: DeviceIdentities.InvalidIdentities.self) { try DeviceIdentities.parse([a]) }
        #expect(throws: DeviceIdentities.InvalidIdentities.self) { try DeviceIdentities.parse([a, a.uppercased()]) }
    }
}

import Conformance
import Foundation
import FUSEKit
import Glibc
import Scenarios
import Testing
import TestSupport

/// `mdevsim run` through a real FUSE mount: never skipped (fails clearly without /dev/fuse).
@Suite(.serialized) struct RunnerMountTests {
    static func mountsUnder(_ path: String) -> [String] {
        let text = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").filter { $0.split(separator: " ").dropFirst().first.map { $0.hasPrefix(path) } ?? false }.map(String.init)
    }

    @Test func scenariosPassThroughTheMountAndLeaveNothingMounted() throws {
        try MountHelpers.checkFUSEDevice()
        let mountpoint = try RunMountpoint()
        defer { mountpoint.remove() }
        let files = ["fault-fail-data-offset.yaml", "mmap-off-pread.yaml", "small-converges.yaml", "fault-error-state.yaml"]
        let entries = try ScenarioCatalog.collect(files.map { libraryDirectory + "/" + $0 })
        let runner = ScenarioRunner(mode: .fuse, mountpoint: mountpoint.path)
        for entry in entries {
            let result = runner.run(entry)
            #expect(result.passed, "\(result.name): \(result.verdict.mismatches.joined(separator: "; "))")
            #expect(result.report?.violations == [])
            #expect(Self.mountsUnder(mountpoint.path).isEmpty, "\(result.name) left its mount behind")
        }
        let success = try #require(runner.run(entries[2]).report)
        #expect(success.digestsMatch && success.sourceDigest?.count == 64)
        #expect(try FileManager.default.contentsOfDirectory(atPath: mountpoint.path).isEmpty)
    }

    @Test func theMountIsGoneAfterAFailedSetUp() throws {
        try MountHelpers.checkFUSEDevice()
        let mountpoint = try RunMountpoint()
        defer { mountpoint.remove() }
        // A scenario whose migration names a type it lacks cannot come from the loader; build one.
        var scenario = try ScenarioLoader.load(contentsOf: .init(libraryDirectory + "/small-converges.yaml"))
        scenario.migration.destination = "no-such-type"
        #expect(throws: (any Error).self) { try FUSEMigration(scenario: scenario, mountpoint: mountpoint.path).run() }
        // Creating a device of a type the mount lacks fails after mounting: still unmounted.
        scenario = try ScenarioLoader.load(contentsOf: .init(libraryDirectory + "/small-converges.yaml"))
        scenario.types[0].instances = 1
        let result = ScenarioRunner(mode: .fuse, mountpoint: mountpoint.path).run(ScenarioEntry(file: "x.yaml", scenario: .success(scenario)))
        #expect(!result.passed)
        #expect(result.verdict.mismatches.first?.contains("creating a mdevsim-small device") == true, "\(result.verdict.mismatches)")
        #expect(Self.mountsUnder(mountpoint.path).isEmpty)
    }

    /// The built `mdevsim` beside the test bundle.
    static func command() throws -> String {
        try BuiltProducts.mdevsim()
    }

    static func launch(_ arguments: [String], tmp: String) throws -> (Process, Pipe) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try command())
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["TMPDIR"] = tmp
        process.environment = environment
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        return (process, out)
    }

    static func privateTmp() throws -> String {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("mdevsim-runner-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        return tmp
    }

    @Test func theCommandPrintsVerdictsSummaryAndReports() throws {
        try MountHelpers.checkFUSEDevice()
        let tmp = try Self.privateTmp()
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let files = ["small-converges.yaml", "fault-fail-transition.yaml", "no-precopy-data.yaml"].map { libraryDirectory + "/" + $0 }
        let (process, out) = try Self.launch(["run", "--shard", "1/1", "--junit", tmp + "/junit.xml", "--json", tmp + "/run.json"] + files, tmp: tmp)
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(text)")
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.last == "3 passed, 0 failed")
        #expect(lines.filter { $0.hasPrefix("PASS ") }.count == 3, "\(text)")
        #expect(text.contains("\u{1B}") == false, "no progress output when stderr is not a terminal")
        #expect(FileManager.default.fileExists(atPath: tmp + "/junit.xml"))
        #expect(FileManager.default.fileExists(atPath: tmp + "/run.json"))
        #expect(ReportSchemas.junitProblem(tmp + "/junit.xml") == nil)
        #expect(ReportSchemas.jsonProblem(tmp + "/run.json") == nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: tmp).sorted() == ["junit.xml", "run.json"], "the mountpoint is removed")
        #expect(Self.mountsUnder(tmp).isEmpty)
    }

    @Test func theCommandUnmountsAndExits130OnSIGINT() throws {
        try MountHelpers.checkFUSEDevice()
        let tmp = try Self.privateTmp()
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        // pread8 through FUSE takes seconds: long enough to be interrupted mid-migration.
        let (process, _) = try Self.launch(["run", libraryDirectory + "/mmap-off-pread8.yaml"], tmp: tmp)
        var mounted = false
        for _ in 0..<600 where !mounted {  // up to 30 s: a loaded CI machine starts processes slowly
            usleep(50_000)
            mounted = !Self.mountsUnder(tmp).isEmpty
        }
        #expect(mounted, "the run should have mounted under \(tmp)")
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        #expect(process.terminationStatus == 130)
        #expect(Self.mountsUnder(tmp).isEmpty, "SIGINT left a mount behind")
        #expect(try FileManager.default.contentsOfDirectory(atPath: tmp).isEmpty, "the mountpoint is removed")
    }

    @Test func theCommandRefusesBadShards() throws {
        let tmp = try Self.privateTmp()
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        for shard in ["0/2", "3/2", "x"] {
            let (process, _) = try Self.launch(["run", "--in-process", "--shard", shard], tmp: tmp)
            process.waitUntilExit()
            #expect(process.terminationStatus == 64, "--shard \(shard): a usage error")
        }
    }
}

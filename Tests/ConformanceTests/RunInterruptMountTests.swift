import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import FUSEKit
import Glibc
import Testing
import TestSupport

/// A CI job's timeout must not lose the results: SIGTERM, SIGINT and --timeout during a run
/// through a real mount still write both reports. Never skipped (fails without /dev/fuse).
@Suite(.serialized) struct RunInterruptMountTests {
    /// small-converges passes quickly; mmap-off-pread8 (8-byte accesses through FUSE) takes
    /// seconds, long enough to be stopped inside; hot-set never starts.
    static let files = ["a-small.yaml": "small-converges.yaml", "b-slow.yaml": "mmap-off-pread8.yaml", "c-hot.yaml": "hot-set.yaml"]

    static func library(_ tmp: String) throws -> [String] {
        try files.sorted { $0.key < $1.key }.map { name, source in
            try FileManager.default.copyItem(atPath: libraryDirectory + "/" + source, toPath: tmp + "/" + name)
            return tmp + "/" + name
        }
    }

    /// Starts the run, waits until the slow scenario is under way (its JSON report not yet written).
    static func stop(_ extra: [String], signal sig: Int32?, tmp: String) throws -> (status: Int32, stdout: String) {
        let files = try library(tmp)
        let (process, out) = try RunnerMountTests.launch(["run", "--junit", tmp + "/r.xml", "--json", tmp + "/r.json"] + extra + files, tmp: tmp)
        if let sig {
            // The first scenario takes well under 3 s; then the slow one runs for many seconds.
            var mounted = false
            for _ in 0..<600 where !mounted {  // up to 30 s: a loaded CI machine starts processes slowly
                usleep(50_000)
                mounted = !RunnerMountTests.mountsUnder(tmp).isEmpty
            }
            #expect(mounted)
            usleep(3_000_000)
            kill(process.processIdentifier, sig)
        }
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }

    static func check(tmp: String, stdout: String, errorPrefix: String, skipped: String) throws {
        #expect(ReportSchemas.junitProblem(tmp + "/r.xml") == nil)
        #expect(ReportSchemas.jsonProblem(tmp + "/r.json") == nil)
        let document = try XMLDocument(data: Data(contentsOf: URL(fileURLWithPath: tmp + "/r.xml")))
        let suite = try #require(document.rootElement()?.elements(forName: "testsuite").first)
        let cases = suite.elements(forName: "testcase")
        #expect(cases.map { $0.attribute(forName: "name")?.stringValue ?? "" } == ["small-converges", "mmap-off-pread8", "hot-set"])
        #expect(cases[0].elements(forName: "failure").isEmpty && cases[0].elements(forName: "error").isEmpty, "the first one ran and passed")
        let error = try #require(cases[1].elements(forName: "error").first, "the running one is an error")
        #expect(error.attribute(forName: "message")?.stringValue?.hasPrefix(errorPrefix) == true, "\(error)")
        #expect(error.attribute(forName: "message")?.stringValue?.contains("at: pre-copy iteration 1") == true, "its last step: \(error)")
        #expect(cases[2].elements(forName: "skipped").first?.attribute(forName: "message")?.stringValue == skipped)
        #expect(suite.attribute(forName: "tests")?.stringValue == "3")
        #expect(suite.attribute(forName: "errors")?.stringValue == "1")
        #expect(suite.attribute(forName: "skipped")?.stringValue == "1")
        let json = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp + "/r.json"))) as? [String: Any])
        #expect((json["scenarios"] as? [[String: Any]])?.map { $0["status"] as? String } == ["passed", "error", "skipped"])
        #expect(stdout.contains("PASS small-converges"))
        #expect(stdout.contains("ERROR mmap-off-pread8"))
        #expect(RunnerMountTests.mountsUnder(tmp).isEmpty, "unmounted")
        #expect(try FileManager.default.contentsOfDirectory(atPath: tmp).filter { $0.hasPrefix("mdevsim-run.") }.isEmpty, "the mountpoint is removed")
    }

    @Test(arguments: [(SIGTERM, Int32(143), "interrupted (SIGTERM)", "terminated"), (SIGINT, 130, "interrupted (SIGINT)", "interrupted")])
    func aSignalKeepsTheResults(sig: Int32, status: Int32, prefix: String, ended: String) throws {
        try MountHelpers.checkFUSEDevice()
        let tmp = try RunnerMountTests.privateTmp()
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let (code, stdout) = try Self.stop([], signal: sig, tmp: tmp)
        #expect(code == status, "\(stdout)")
        try Self.check(tmp: tmp, stdout: stdout, errorPrefix: prefix, skipped: "interrupted")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp + "/r.json"))) as? [String: Any]
        #expect(json?["ended"] as? String == ended)
    }

    @Test func aTimeoutKeepsTheResults() throws {
        try MountHelpers.checkFUSEDevice()
        let tmp = try RunnerMountTests.privateTmp()
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let (code, stdout) = try Self.stop(["--timeout", "3"], signal: nil, tmp: tmp)
        #expect(code == 124, "\(stdout)")
        try Self.check(tmp: tmp, stdout: stdout, errorPrefix: "timed out after 3 s (--timeout)", skipped: "interrupted: the run stopped at a timeout")
    }

    /// --log-level and MDEVSIM_LOG_LEVEL reach the mount's log, in the one line format.
    @Test func theLogLevelReachesTheMountsLogInOneFormat() throws {
        try MountHelpers.checkFUSEDevice()
        let tmp = try RunnerMountTests.privateTmp()
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let file = libraryDirectory + "/small-converges.yaml"
        let quiet = try CommandContractTests.mdevsim(["run", "--quiet", file], environment: ["TMPDIR": tmp])
        #expect(quiet.status == 0)
        #expect(quiet.stderr.isEmpty, "warnings only by default: \(quiet.stderr)")
        for (arguments, environment) in [(["run", "--quiet", "--log-level", "info", file], [String: String]()),
                                         (["run", "--quiet", file], ["MDEVSIM_LOG_LEVEL": "info"])] {
            let r = try CommandContractTests.mdevsim(arguments, environment: environment.merging(["TMPDIR": tmp]) { a, _ in a })
            #expect(r.status == 0, "\(r.stderr)")
            let lines = r.stderr.split(separator: "\n").map(String.init)
            #expect(lines.contains { $0.contains(" info mdevsim.run: created mdevsim-small device ") }, "\(r.stderr)")
            let format = /^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z (trace|debug|info|notice|warning|error|critical) [a-z.]+: .+$/
            #expect(lines.allSatisfy { $0.wholeMatch(of: format) != nil }, "one log line format: \(r.stderr)")
        }
        #expect(try CommandContractTests.mdevsim(["run", "--log-level", "loud", file]).status == 64)
        #expect(RunnerMountTests.mountsUnder(tmp).isEmpty)
    }
}

import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Glibc
import Conformance
import Scenarios
import Testing
import TestSupport

/// The built `mdevsim` as a CI job meets it: one error line format and one exit-status table
/// for every command, discovery, report files. In process only (no mount).
@Suite struct CommandContractTests {
    struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs mdevsim with `arguments` (and `environment` added) in `directory`.
    static func mdevsim(_ arguments: [String], in directory: String? = nil, environment: [String: String] = [:]) throws -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try RunnerMountTests.command())
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["GITHUB_ACTIONS"] = nil
        for (k, v) in environment { env[k] = v }
        process.environment = env
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        // stderr to a file, stdout through a pipe read to its end: neither can fill up and block it.
        let errPath = FileManager.default.temporaryDirectory.appendingPathComponent("mdevsim-contract-\(UUID().uuidString).err").path
        #expect(FileManager.default.createFile(atPath: errPath, contents: nil), "cannot create \(errPath)")
        defer { try? FileManager.default.removeItem(atPath: errPath) }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle(forWritingAtPath: errPath)
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let errData = (try? Data(contentsOf: URL(fileURLWithPath: errPath))) ?? Data()
        return Outcome(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                       stderr: String(decoding: errData, as: UTF8.self))
    }

    static func scratch() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mdevsim-contract-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Each command's errors: its own prefix, `error:`, what and why, the table's status.
    @Test(arguments: [
        (["check", "nope.yaml"], "check", Int32(2), "cannot read nope.yaml: no such file or directory"),
        (["run", "--in-process", "nope.yaml"], "run", 2, "cannot read nope.yaml: no such file or directory"),
        (["migrate", "--in-process", "--scenario", "nope.yaml"], "migrate", 2, "cannot read the scenario nope.yaml: no such file"),
        (["migrate", "--in-process", "--scenario", "."], "migrate", 2, "cannot read the scenario .: it is a directory"),
        (["replay", "nope.jsonl"], "replay", 2, "cannot replay the trace nope.jsonl: cannot read the trace"),
        (["qemu-args", "0b8f8e3c-4f0e-4d51-9b61-58c3a3a1f001", "--mount", "/nonexistent/m"], "qemu-args", 2, "cannot use the mount /nonexistent/m"),
        (["mount", "/nonexistent/mdevsim-mp"], "mount", 2, "cannot mount /nonexistent/mdevsim-mp: it does not exist; fix: mkdir -p /nonexistent/mdevsim-mp"),
        (["unmount", "/nonexistent/mdevsim-mp"], "unmount", 2, "nothing is mounted at /nonexistent/mdevsim-mp"),
        (["run", "--bogus"], "run", 64, "Unknown option '--bogus'"),
        (["migrate", "--access", "x"], "migrate", 64, "--access must be mmap, pread or pread8"),
        (["qemu-args"], "qemu-args", 64, "Missing expected argument"),
        (["check"], "check", 64, "Missing expected argument"),
    ])
    func everyCommandReportsErrorsInOneFormatWithItsStatus(arguments: [String], command: String, status: Int32, text: String) throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try Self.mdevsim(arguments, in: dir)
        #expect(r.status == status, "\(arguments): \(r.stderr)")
        let first = r.stderr.split(separator: "\n").first.map(String.init) ?? ""
        #expect(first.hasPrefix("mdevsim \(command): error: "), "\(arguments): \(r.stderr)")
        #expect(first.contains(text), "\(arguments): \(first)")
        #expect(!r.stderr.contains("Error:"), "ArgumentParser's own prefix is replaced: \(r.stderr)")
        #expect(!r.stderr.contains(":0:"), "no line 0: \(r.stderr)")
    }

    /// Every command's --help lists the exit statuses it can end with, from the one table.
    @Test(arguments: ["mount", "unmount", "migrate", "check", "run", "replay", "qemu-args"])
    func everyHelpListsItsExitStatuses(command: String) throws {
        let r = try Self.mdevsim([command, "--help"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("Exit status:"), "\(command) --help")
        #expect(r.stdout.contains("64  usage error"), "\(command) --help")
        #expect(r.stdout.contains("0   success"), "\(command) --help")
    }

    @Test func discoveryTakesYmlRefusesEmptySelectionsAndDuplicateNames() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/lib", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/empty", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: libraryDirectory + "/small-converges.yaml", toPath: dir + "/lib/one.yml")
        let ran = try Self.mdevsim(["run", "--in-process", "lib"], in: dir)
        #expect(ran.status == 0, "\(ran.stdout)\(ran.stderr)")
        #expect(ran.stdout.contains("PASS small-converges"), "a directory's *.yml files are scenarios")
        #expect(try Self.mdevsim(["check", "lib"], in: dir).stdout == "ok lib/one.yml\n")
        // An empty selection is its own status (5), not a pass.
        for arguments in [["run", "--in-process", "--shard", "2/2", "lib"], ["run", "--in-process", "empty"], ["check", "empty"]] {
            let r = try Self.mdevsim(arguments, in: dir)
            #expect(r.status == 5, "\(arguments): \(r.stdout)\(r.stderr)")
            #expect(r.stderr.contains("error: no scenario selected"), "\(arguments): \(r.stderr)")
            #expect(!r.stdout.contains("0 passed, 0 failed"))
        }
        // Two scenarios named alike: refused by check and run, naming both files.
        try FileManager.default.copyItem(atPath: libraryDirectory + "/small-converges.yaml", toPath: dir + "/lib/two.yaml")
        for command in ["check", "run"] {
            let r = try Self.mdevsim(command == "run" ? ["run", "--in-process", "lib"] : ["check", "lib"], in: dir)
            #expect(r.status == 2, "\(command): \(r.stderr)")
            #expect(r.stderr.contains("mdevsim \(command): error: duplicate scenario names: scenario name 'small-converges' is used by lib/one.yml and lib/two.yaml"), "\(r.stderr)")
            #expect(!r.stdout.contains("PASS"))
        }
    }

    @Test func reportPathsAreCheckedBeforeTheFirstScenario() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for option in ["--junit", "--json"] {
            let r = try Self.mdevsim(["run", "--in-process", option, "/nonexistent/dir/x", libraryDirectory + "/small-converges.yaml"], in: dir)
            #expect(r.status == 2)
            #expect(r.stderr.hasPrefix("mdevsim run: error: cannot write the \(option == "--junit" ? "JUnit" : "JSON") report /nonexistent/dir/x: no such directory /nonexistent/dir"), "\(r.stderr)")
            #expect(r.stdout.isEmpty, "nothing ran: \(r.stdout)")
        }
        let r = try Self.mdevsim(["run", "--in-process", "--json", dir, libraryDirectory + "/small-converges.yaml"], in: dir)
        #expect(r.status == 2 && r.stderr.contains("it is a directory"))
    }

    /// `migrate` judges against `expect:` as `run` does: an expected failure is a pass.
    @Test func migrateJudgesAgainstTheScenariosExpectation() throws {
        let r = try Self.mdevsim(["migrate", "--in-process", "--scenario", libraryDirectory + "/fault-fail-data-offset.yaml"])
        #expect(r.status == 0, "\(r.stdout)")
        #expect(r.stdout.contains("PASS: meets the scenario's expectation"))
        let run = try Self.mdevsim(["run", "--in-process", libraryDirectory + "/fault-fail-data-offset.yaml"])
        #expect(run.status == 0 && run.stdout.contains("PASS fault-fail-data-offset"))
    }

    /// An invalid file is an error (not a failure), its diagnostics printed once each, GitHub
    /// annotations when asked (or inside GitHub Actions), and true JUnit counts.
    @Test func invalidFilesAreErrorsWithEachDiagnosticOnce() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A value error and an unknown key beside it: both, in one pass.
        let bad = "name: bad\ntypes:\n  - type: t1\n    memory: 4MiB\n    data_section: 1MiB\n    chunk_size: 3MiB\n    dirty:\n      rate: 1MiB/s\n      foo: 1\n"
        try bad.write(toFile: dir + "/bad.yaml", atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: libraryDirectory + "/mmap-on.yaml", toPath: dir + "/good.yaml")
        let r = try Self.mdevsim(["run", "--in-process", "--junit", "r.xml", "--json", "r.json", "bad.yaml", "good.yaml"], in: dir,
                                 environment: ["GITHUB_ACTIONS": "true"])
        #expect(r.status == 1)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        let diagnostics = lines.filter { $0.contains("bad.yaml:") && $0.contains(": error: ") }
        #expect(diagnostics.count == 2, "\(r.stdout)")
        #expect(Set(diagnostics).count == diagnostics.count, "each diagnostic once: \(r.stdout)")
        #expect(lines.contains { $0.hasPrefix("ERROR bad ") }, "\(r.stdout)")
        let annotations = lines.filter { $0.hasPrefix("::error file=bad.yaml,line=") }
        #expect(annotations.count == 2, "\(r.stdout)")
        #expect(lines.last == "1 passed, 1 failed")
        let check = try Self.mdevsim(["check", "--format", "github", "bad.yaml"], in: dir)
        #expect(check.status == 1)
        #expect(check.stderr.split(separator: "\n").allSatisfy { $0.hasPrefix("::error file=bad.yaml,line=") && $0.contains(",col=") }, "\(check.stderr)")

        #expect(ReportSchemas.junitProblem(dir + "/r.xml") == nil)
        #expect(ReportSchemas.jsonProblem(dir + "/r.json") == nil)
        let document = try XMLDocument(data: Data(contentsOf: URL(fileURLWithPath: dir + "/r.xml")))
        let suite = try #require(document.rootElement()?.elements(forName: "testsuite").first)
        #expect(suite.attribute(forName: "errors")?.stringValue == "1")
        #expect(suite.attribute(forName: "failures")?.stringValue == "0")
        #expect(suite.attribute(forName: "hostname")?.stringValue?.isEmpty == false)
        #expect(suite.attribute(forName: "timestamp")?.stringValue?.hasSuffix("Z") == true)
        let cases = suite.elements(forName: "testcase")
        #expect(cases[0].elements(forName: "error").count == 1 && cases[0].elements(forName: "failure").isEmpty)
        let properties = cases[1].elements(forName: "properties").first?.elements(forName: "property") ?? []
        let names = properties.compactMap { $0.attribute(forName: "name")?.stringValue }
        #expect(names == ["seed", "protocol", "type", "mode"])
        #expect(properties.last?.attribute(forName: "value")?.stringValue == "in-process")
        #expect(cases[1].elements(forName: "system-out").first?.stringValue?.contains("pending_bytes:") == true)

        let json = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/r.json"))) as? [String: Any])
        #expect(json["format_version"] as? Int == 2)
        #expect(json["errors"] as? Int == 1)
        let scenarios = try #require(json["scenarios"] as? [[String: Any]])
        #expect(scenarios.map { $0["status"] as? String } == ["error", "passed"])
    }

    /// A skipped scenario carries no verdict (it must not read as passing).
    @Test func skippedEntriesCarryNoVerdict() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try Self.mdevsim(["run", "--in-process", "--max-memory", "1MiB", "--json", "r.json", libraryDirectory + "/small-converges.yaml"], in: dir)
        #expect(r.status == 0, "\(r.stdout)")
        let json = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/r.json"))) as? [String: Any])
        #expect(ReportSchemas.jsonProblem(dir + "/r.json") == nil)
        let entry = try #require((json["scenarios"] as? [[String: Any]])?.first)
        #expect(entry["status"] as? String == "skipped")
        #expect(entry["verdict"] == nil)
    }
}

/// The bundled library is built into the executable: it runs from any directory.
@Suite struct BundledLibraryTests {
    @Test func theEmbeddedLibraryIsTheRepositorysScenariosDirectory() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: libraryDirectory)
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
        #expect(Scenario.bundledLibrary.map(\.file) == files)
        for (file, text) in Scenario.bundledLibrary {
            #expect(text == (try String(contentsOfFile: libraryDirectory + "/" + file, encoding: .utf8)), "\(file)")
        }
        #expect(ScenarioCatalog.bundled().allSatisfy { if case .success = $0.scenario { true } else { false } })
    }

    @Test func runAndScenariosWorkOutsideTheRepository() throws {
        let dir = try CommandContractTests.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let list = try CommandContractTests.mdevsim(["scenarios"], in: dir)
        #expect(list.status == 0)
        #expect(list.stdout.split(separator: "\n").count == Scenario.bundledLibrary.count)
        #expect(list.stdout.contains("small-converges"))
        // Sorted by file name, shard 1/30 is cancel-in-precopy: a small device.
        let count = Scenario.bundledLibrary.count
        let r = try CommandContractTests.mdevsim(["run", "--in-process", "--reproducible", "--shard", "1/\(count)", "--junit", "j.xml"], in: dir)
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("PASS cancel-in-precopy"), "\(r.stdout)")
        let junit = try String(contentsOfFile: dir + "/j.xml", encoding: .utf8)
        #expect(junit.contains("file=\"builtin:cancel-in-precopy.yaml\""))
        let same = try CommandContractTests.mdevsim(["run", "--in-process", "--reproducible", "--builtin", "--shard", "1/\(count)"], in: dir)
        #expect(same.stdout == r.stdout)
    }
}

/// docs/ci/github-actions.yml uses only options `mdevsim run` has.
@Suite struct WorkflowExampleTests {
    @Test func theWorkflowExampleUsesRealOptions() throws {
        let path = URL(fileURLWithPath: libraryDirectory).deletingLastPathComponent().appendingPathComponent("docs/ci/github-actions.yml").path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.contains("matrix:") && text.contains("--shard ${{ matrix.shard }}/4") && text.contains("upload-artifact"))
        let help = try CommandContractTests.mdevsim(["run", "--help"]).stdout
        let options = text.split(whereSeparator: { $0 == " " || $0 == "\n" }).filter { $0.hasPrefix("--") }.map(String.init)
        #expect(Set(options) == ["--builtin", "--format", "--shard", "--junit", "--json", "--timeout", "--product"])
        for option in options where option != "--product" {
            #expect(help.contains(option), "\(option) is no option of mdevsim run")
        }
    }
}

/// Progress: a live line on a terminal that leaves the result lines intact, a plain line every
/// MDEVSIM_PROGRESS_INTERVAL seconds off a terminal, nothing with --quiet.
@Suite struct ProgressTests {
    @Test func offATerminalPlainLinesComeAtTheInterval() throws {
        let file = libraryDirectory + "/hot-set.yaml"
        let r = try CommandContractTests.mdevsim(["run", "--in-process", file], environment: ["MDEVSIM_PROGRESS_INTERVAL": "0"])
        #expect(r.status == 0)
        let lines = r.stderr.split(separator: "\n").map(String.init)
        #expect(lines.count > 3, "\(r.stderr)")
        #expect(lines.allSatisfy { $0.hasPrefix("mdevsim run: [1/1] hot-set: ") }, "\(r.stderr)")
        #expect(lines.contains { $0.contains("pre-copy iteration 1: ") && $0.contains("MiB moved") && $0.contains("/s, ") && $0.hasSuffix(" s") }, "\(r.stderr)")
        #expect(!r.stderr.contains("\u{1B}"), "no terminal control off a terminal")
        let quiet = try CommandContractTests.mdevsim(["run", "--in-process", "--quiet", file], environment: ["MDEVSIM_PROGRESS_INTERVAL": "0"])
        #expect(quiet.stderr.isEmpty, "\(quiet.stderr)")
        #expect(quiet.stdout.contains("PASS hot-set") && quiet.stdout.hasSuffix("1 passed, 0 failed\n"), "\(quiet.stdout)")
    }

    @Test func onATerminalOneLiveLineLeavesTheResultLinesIntact() throws {
        // script(1) gives the command a pseudo-terminal as stdin, stdout and stderr.
        let command = try RunnerMountTests.command()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        process.arguments = ["-qec", "\(command) run --in-process --reproducible \(libraryDirectory)/hot-set.yaml", "/dev/null"]
        let out = Pipe()
        process.standardOutput = out
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(text.contains("\r\u{1B}[K[1/1] hot-set: setting up the devices"), "\(text.debugDescription)")
        #expect(text.contains("\r\u{1B}[K[1/1] hot-set: pre-copy iteration 1: "), "\(text.debugDescription)")
        // The live line is cleared before the result line, which stands alone on its line.
        #expect(text.contains("\r\u{1B}[KPASS hot-set  completed"), "\(text.debugDescription)")
        #expect(text.contains("1 passed, 0 failed"))
    }
}

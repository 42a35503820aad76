@testable import Conformance
import Foundation
import FUSEKit
import Glibc
import Testing

/// The page a real `mdevsim run --html` writes, loaded by headless Chromium with the network
/// namespace cut off (`unshare -n`): its DOM holds every scenario, its verdict and its charts,
/// and its screenshots are not blank. Needs /dev/fuse and Debian's chromium
/// (`scripts/ensure-deps.sh --with-browser`); fails, never skips, without them.
///
/// The screenshots stay in `$TMPDIR/mdevsim-report-browser/` (run.png and one per kind of
/// scenario: passing.png, fault.png, never-converges.png; v2.png for a v2 entry) for a person to look at.
@Suite(.serialized) struct ReportBrowserTests {
    static let chromium = "/usr/bin/chromium"
    static let scenarios = ["small-converges", "fault-fail-data-offset", "never-converges"]

    /// The built `mdevsim` beside the test bundle.
    static var mdevsim: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("mdevsim").path
    }

    /// The folder of the pages and screenshots (each run overwrites the last run's files).
    static func artifacts() throws -> String {
        let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        let dir = (base as NSString).appendingPathComponent("mdevsim-report-browser")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Runs a program to its end; its status and its output (stdout, then stderr).
    static func run(_ tool: String, _ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, out: String, err: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mdevsim-tool-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out"), err = dir.appendingPathComponent("err")
        #expect(FileManager.default.createFile(atPath: out.path, contents: nil))
        #expect(FileManager.default.createFile(atPath: err.path, contents: nil))
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return (process.terminationStatus, (try? String(contentsOf: out, encoding: .utf8)) ?? "", (try? String(contentsOf: err, encoding: .utf8)) ?? "")
    }

    /// Headless Chromium in a network namespace of its own (no interface but a down loopback).
    static func browser(_ arguments: [String], profile: String) throws -> (status: Int32, out: String, err: String) {
        // Root may make a network namespace; anyone else needs a user namespace for it.
        let unshare = getuid() == 0 ? ["-n"] : ["-r", "-n"]
        return try run("/usr/bin/unshare", unshare + [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                                      "--no-first-run", "--user-data-dir=\(profile)"] + arguments)
    }

    /// Width, height, and the mean and standard deviation of the luminance (0-255) of a PNG,
    /// decoded by python3's zlib (8-bit RGB or RGBA, all five row filters).
    static func pixelStatistics(_ png: String) throws -> (width: Int, height: Int, mean: Double, deviation: Double, inked: Double) {
        let script = """
        import struct, sys, zlib
        data = open(sys.argv[1], 'rb').read()
        assert data[:8] == b'\\x89PNG\\r\\n\\x1a\\n', 'not a PNG'
        pos, idat = 8, b''
        while pos < len(data):
            n, kind = struct.unpack('>I4s', data[pos:pos + 8]); body = data[pos + 8:pos + 8 + n]; pos += 12 + n
            if kind == b'IHDR': w, h, depth, ctype = struct.unpack('>IIBB', body[:10])
            elif kind == b'IDAT': idat += body
        assert depth == 8 and ctype in (2, 6), 'unsupported PNG %d/%d' % (depth, ctype)
        bpp = 3 if ctype == 2 else 4
        raw, stride = zlib.decompress(idat), w * bpp
        prev, total, total2, inked, i = bytearray(stride), 0.0, 0.0, 0, 0
        for y in range(h):
            f = raw[i]; line = bytearray(raw[i + 1:i + 1 + stride]); i += 1 + stride
            for x in range(stride):
                a = line[x - bpp] if x >= bpp else 0; b = prev[x]; c = prev[x - bpp] if x >= bpp else 0
                if f == 1: line[x] = (line[x] + a) & 255
                elif f == 2: line[x] = (line[x] + b) & 255
                elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
                elif f == 4:
                    p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
            for x in range(0, stride, bpp):
                l = 0.2126 * line[x] + 0.7152 * line[x + 1] + 0.0722 * line[x + 2]
                total += l; total2 += l * l; inked += l < 200
            prev = line
        n = w * h; mean = total / n
        print(w, h, mean, max(0.0, total2 / n - mean * mean) ** 0.5, inked / n)
        """
        let (status, out, err) = try run("/usr/bin/python3", ["-c", script, png])
        try #require(status == 0, "decoding \(png): \(err)")
        let f = out.split(separator: " ").map { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1 }
        try #require(f.count == 5)
        return (Int(f[0]), Int(f[1]), f[2], f[3], f[4])
    }

    /// The DOM of one scenario's `<details>`.
    static func section(_ dom: String, scenario: String) -> String? {
        dom.components(separatedBy: "<details").first { $0.contains("data-scenario=\"\(scenario)\"") }
    }

    /// The state classes of a lane's segments, in order.
    static func laneStates(_ section: String, lane: String) -> [String] {
        guard let start = section.range(of: "data-lane=\"\(lane)\"") else { return [] }
        var rest = section[start.upperBound...]
        if let end = rest.range(of: "class=\"lane\"") ?? rest.range(of: "class=\"marker") ?? rest.range(of: "class=\"axis\"") { rest = rest[..<end.lowerBound] }
        return rest.components(separatedBy: "class=\"segment state-").dropFirst().map { String($0.prefix { $0 != "\"" }) }
    }

    /// Screenshots must show a page: a spread of luminance and some ink on the white.
    static func expectNotBlank(_ png: String) throws {
        let s = try pixelStatistics(png)
        #expect(s.width == 1280, "\(png)")
        #expect(s.deviation > 20, "\(png): luminance deviation \(s.deviation)")
        #expect(s.inked > 0.02, "\(png): \(s.inked * 100)% of the pixels are darker than white-ish")
    }

    @Test func theRunPageOpensOfflineWithEveryScenarioItsVerdictAndItsCharts() throws {
        try MountHelpers.checkFUSEDevice()
        try #require(FileManager.default.isExecutableFile(atPath: Self.chromium), "chromium is missing: run scripts/ensure-deps.sh --with-browser (as root)")
        let dir = try Self.artifacts()
        let files = Self.scenarios.map { "\(libraryDirectory)/\($0).yaml" }
        let (status, out, err) = try Self.run(Self.mdevsim, ["run", "--html", dir + "/run.html", "--json", dir + "/run.json"] + files, environment: ["TMPDIR": dir])
        #expect(status == 0, "\(out)\(err)")
        let lines = out.split(separator: "\n").map(String.init)
        #expect(lines.suffix(2) == ["HTML report: \(dir)/run.html", "3 passed, 0 failed"], "\(out)")

        // What the page must show, from the run's own JSON report (the client's counters).
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let summary = try decoder.decode(RunSummary.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/run.json")))
        let html = try String(contentsOfFile: dir + "/run.html", encoding: .utf8)
        for banned in ["<script", "src=", "href=", "@import", "url(http", "<link"] { #expect(!html.contains(banned), "the page must fetch nothing: \(banned)") }

        let (dumped, dom, chromeErr) = try Self.browser(["--dump-dom", "file://\(dir)/run.html"], profile: dir + "/profile")
        #expect(dumped == 0, "\(chromeErr)")
        #expect(dom.contains("<h1>mdevsim run</h1>"), "chromium rendered the page offline")
        for name in Self.scenarios {
            let section = try #require(Self.section(dom, scenario: name), "\(name) is on the page")
            let result = try #require(summary.results.first { $0.name == name })
            let report = try #require(result.report)
            #expect(section.contains("data-verdict=\"PASS\""), "\(name)")
            #expect(Self.laneStates(section, lane: "source") == (name == "fault-fail-data-offset"
                ? ["running", "pre-copy", "stop-and-copy", "running"] : ["running", "pre-copy", "stop-and-copy", "stop"]), "\(name)")
            #expect(Self.laneStates(section, lane: "destination") == (name == "fault-fail-data-offset"
                ? ["running", "resuming", "stop"] : ["running", "resuming", "running"]), "\(name)")
            #expect(Self.laneStates(section, lane: "source").last == report.sourceState && Self.laneStates(section, lane: "destination").last == report.destinationState)
            // One point per pre-copy pending_bytes read: all reads but stop-and-copy's (one per chunk, and the last).
            #expect(occurrences(of: "class=\"point\"", in: section) == report.pendingSequence.count - (report.chunks.stopAndCopy + 1), "\(name)")
            #expect(occurrences(of: "class=\"bar bar-", in: section) == report.chunks.precopy + report.chunks.stopAndCopy + report.chunks.resumeTransactions, "\(name)")
            #expect(occurrences(of: "<svg", in: section) == 3 && occurrences(of: "role=\"img\"", in: section) == 3, "\(name)")
            #expect(occurrences(of: "class=\"reference\"", in: section) == 1, "\(name): the stop threshold line")
            #expect(occurrences(of: "class=\"marker marker-errno\"", in: section) == (name == "fault-fail-data-offset" ? 1 : 0), "\(name)")
        }
        let fault = try #require(Self.section(dom, scenario: "fault-fail-data-offset"))
        #expect(fault.contains(" open=\"\"") || fault.contains(" open>") || fault.contains(" open "), "a failed migration's detail is open")
        #expect(occurrences(of: "<table class=\"compare\"", in: fault) == 1 && occurrences(of: "<tr class=\"failing\"", in: fault) == 1)
        #expect(fault.contains("data_offset read in stop-and-copy"))
        let never = try #require(summary.results.first { $0.name == "never-converges" }?.report)
        #expect(!never.converged && never.precopyIterations == 8)

        let (shot, _, shotErr) = try Self.browser(["--window-size=1280,2200", "--screenshot=\(dir)/run.png", "file://\(dir)/run.html"], profile: dir + "/profile")
        #expect(shot == 0, "\(shotErr)")
        try Self.expectNotBlank(dir + "/run.png")

        // `mdevsim report` draws the same page from the JSON report.
        let (again, againOut, againErr) = try Self.run(Self.mdevsim, ["report", dir + "/run.json", "-o", dir + "/again.html"])
        #expect(again == 0 && againOut == "HTML report: \(dir)/again.html\n", "\(againOut)\(againErr)")
        let redrawn = try String(contentsOfFile: dir + "/again.html", encoding: .utf8)
        #expect(occurrences(of: "class=\"segment state-", in: redrawn) == occurrences(of: "class=\"segment state-", in: html))
        #expect(Self.mountsUnder(dir).isEmpty)
        try? FileManager.default.removeItem(atPath: dir + "/profile")
    }

    /// One page per kind of scenario, written by `mdevsim migrate --html`, each looked at. Each
    /// meets its scenario's expectation (the injected fault's scenario expects the failure), so
    /// `migrate` exits 0 and the page says PASS, as `run` would.
    @Test(arguments: [("passing", "small-converges", Int32(0)), ("fault", "fault-fail-data-offset", Int32(0)), ("never-converges", "never-converges", Int32(0))])
    func aMigrationPageOfEachKindIsDrawn(kind: String, scenario: String, expectedStatus: Int32) throws {
        try MountHelpers.checkFUSEDevice()
        try #require(FileManager.default.isExecutableFile(atPath: Self.chromium), "chromium is missing: run scripts/ensure-deps.sh --with-browser (as root)")
        let dir = try Self.artifacts()
        let page = "\(dir)/\(kind).html"
        let (status, out, err) = try Self.run(Self.mdevsim, ["migrate", "--scenario", "\(libraryDirectory)/\(scenario).yaml", "--html", page])
        #expect(status == expectedStatus, "\(out)\(err)")
        #expect(out.hasSuffix("HTML report: \(page)\n"), "\(out)")
        let (dumped, dom, _) = try Self.browser(["--dump-dom", "file://\(page)"], profile: "\(dir)/profile-\(kind)")
        #expect(dumped == 0)
        let section = try #require(Self.section(dom, scenario: scenario))
        #expect(section.contains(expectedStatus == 0 ? "data-verdict=\"PASS\"" : "data-verdict=\"FAIL\""))
        #expect(occurrences(of: "<svg", in: section) == 3)
        let (shot, _, shotErr) = try Self.browser(["--window-size=1280,1800", "--screenshot=\(dir)/\(kind).png", "file://\(page)"], profile: "\(dir)/profile-\(kind)")
        #expect(shot == 0, "\(shotErr)")
        try Self.expectNotBlank("\(dir)/\(kind).png")
        try? FileManager.default.removeItem(atPath: "\(dir)/profile-\(kind)")
    }

    /// A v2 entry of a real `mdevsim run --protocol v2` has its own timeline: the v2 states of
    /// both devices, in the order the v2 client's SETs reached them, ending where its report says.
    @Test func aV2EntryOfARunDrawsItsV2States() throws {
        try MountHelpers.checkFUSEDevice()
        try #require(FileManager.default.isExecutableFile(atPath: Self.chromium), "chromium is missing: run scripts/ensure-deps.sh --with-browser (as root)")
        let dir = try Self.artifacts()
        let (status, out, err) = try Self.run(Self.mdevsim, ["run", "--protocol", "v2", "--html", dir + "/v2.html", "--json", dir + "/v2.json",
                                                             "\(libraryDirectory)/qemu10.yaml"], environment: ["TMPDIR": dir])
        #expect(status == 0, "\(out)\(err)")
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let summary = try decoder.decode(RunSummary.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/v2.json")))
        let report = try #require(summary.results.first { $0.entryName == "qemu10 [v2]" }?.report)
        let (dumped, dom, chromeErr) = try Self.browser(["--dump-dom", "file://\(dir)/v2.html"], profile: dir + "/profile-v2")
        #expect(dumped == 0, "\(chromeErr)")
        let section = try #require(Self.section(dom, scenario: "qemu10 [v2]"), "the v2 entry is on the page")
        #expect(section.contains("data-verdict=\"PASS\""))
        #expect(Self.laneStates(section, lane: "source") == ["RUNNING", "PRE_COPY", "PRE_COPY_P2P", "STOP_COPY", "STOP"])
        #expect(Self.laneStates(section, lane: "destination") == ["RUNNING", "RESUMING", "RUNNING_P2P", "RUNNING"])
        #expect(Self.laneStates(section, lane: "source").last == report.sourceState && Self.laneStates(section, lane: "destination").last == report.destinationState)
        // One point per PRECOPY_INFO, all of which the v2 client asks in pre-copy.
        #expect(occurrences(of: "class=\"point\"", in: section) == report.pendingSequence.count)
        #expect(occurrences(of: "<svg", in: section) == 3)
        let (shot, _, shotErr) = try Self.browser(["--window-size=1280,1800", "--screenshot=\(dir)/v2.png", "file://\(dir)/v2.html"], profile: dir + "/profile-v2")
        #expect(shot == 0, "\(shotErr)")
        try Self.expectNotBlank(dir + "/v2.png")
        #expect(Self.mountsUnder(dir).isEmpty)
        try? FileManager.default.removeItem(atPath: dir + "/profile-v2")
    }

    static func mountsUnder(_ dir: String) -> [String] {
        ((try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? "").split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            return fields.count > 1 && fields[1].hasPrefix(dir) ? String(fields[1]) : nil
        }
    }
}

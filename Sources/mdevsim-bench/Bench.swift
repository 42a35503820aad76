/// mdevsim-bench: the engine benchmark. It prints figures; it is not a pass/fail test.
///
/// What it measures, each part against baselines taken in the same run (the machine is shared
/// and noisy, so absolute figures matter less than the ratios printed next to them):
///
/// 1. `throughput`: an in-process migration of an untouched device (default 4 GiB, no dirtying,
///    1 MiB data section and chunks, mapped data access) from a source `MigrationRegion` to a
///    destination `MigrationRegion` by the `ReferenceClient`. The timed part ends when the client
///    starts the source digest, so the two SHA-256 digests (timed separately) are excluded. Each
///    repeat is paired with plain memcpy baselines of the same bytes: pre-faulted buffers as one
///    call and in 1 MiB pieces, and a destination that takes its first-touch page faults (as the
///    destination device does when it materializes its memory). Goal: at least 0.5x memcpy.
/// 2. `rss`: peak RSS of a process that creates an untouched 64 GiB device, enters pre-copy
///    (`device_state` = 0b011) and reads the whole first pass chunk by chunk with no destination.
///    `all` runs it in a child process of this same binary, so no other part pollutes the peak.
///    Goal: under 256 MiB.
/// 3. `breakdown`: where the migration's time goes, from micro-benchmarks of the engine's public
///    API: page generation, the stream checksum, the client's copy, the source's save pass alone,
///    the destination's resume apply alone, and the save pass on a much larger device reading the
///    same number of bytes (per-chunk costs that grow with device size show up there).
///
/// Run everything (about two minutes at the defaults):
///
///     swift run -c release mdevsim-bench                  # same as `mdevsim-bench all`
///     swift build -c release --scratch-path .build-bench --product mdevsim-bench && .build-bench/release/mdevsim-bench
///     swift run -c release mdevsim-bench all --size 256MiB --rss-size 4GiB   # a quick run
///     swift run -c release mdevsim-bench throughput --size 4GiB --repeats 3
///     swift run -c release mdevsim-bench rss --size 64GiB
///     swift run -c release mdevsim-bench breakdown --size 1GiB --large-size 64GiB
///
/// Memory: the 4 GiB throughput part needs about 8 GiB free (two memcpy buffers, then the
/// destination device materializing all its memory); the RSS part needs almost none.
///
/// Add `--json` to any of them for one JSON object of the figures on stdout (the human-readable
/// lines then go to stderr with the progress lines). GB/s means 10^9 bytes of device memory per
/// second.
import ArgumentParser
import Conformance
import DeviceSimulator
import Foundation

@main
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mdevsim-bench",
        abstract: "Benchmark the mdevsim engine: migration throughput vs memcpy, pre-copy RSS, time breakdown.",
        subcommands: [All.self, Throughput.self, PrecopyRSS.self, Breakdown.self, FUSE.self, Trace.self, Soak.self],
        defaultSubcommand: All.self
    )
}

/// Options every part shares.
struct CommonOptions: ParsableArguments {
    @Flag(help: "Print one JSON object of the figures on stdout; human-readable lines go to stderr.")
    var json = false

    @Option(help: "Data section and chunk size of the simulated devices (e.g. 1MiB).")
    var chunk: ByteSize = ByteSize(1 << 20)
}

/// The throughput part's options, shared by `all` and `throughput`.
struct ThroughputOptions: ParsableArguments {
    @Option(help: "Device memory the throughput part migrates (e.g. 4GiB, 256MiB).")
    var size: ByteSize = ByteSize(4 << 30)

    @Option(help: "How many times the throughput part migrates (median and spread are printed).")
    var repeats: Int = 3

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
    }
}

extension Bench {
    struct All: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run all three parts: pre-copy RSS (in a child process first), throughput, breakdown.")

        @OptionGroup var common: CommonOptions
        @OptionGroup var throughput: ThroughputOptions

        @Option(name: .customLong("rss-size"), help: "Device memory of the pre-copy RSS part (e.g. 64GiB).")
        var rssSize: ByteSize = ByteSize(64 << 30)

        @Option(name: .customLong("breakdown-size"), help: "Device memory of the breakdown micro-benchmarks (at most --size is used).")
        var breakdownSize: ByteSize = ByteSize(1 << 30)

        @Option(name: .customLong("large-size"), help: "The larger device the breakdown's save pass is compared with.")
        var largeSize: ByteSize = ByteSize(64 << 30)

        @Flag(name: .customLong("skip-breakdown"), help: "Skip the breakdown part.")
        var skipBreakdown = false

        func run() throws {
            let out = Printer(json: common.json)
            var figures = Figures(machine: .current())
            out.header(figures.machine)
            // RSS is per process and only ever grows: measure it first, in a fresh child.
            figures.precopyRss = try PrecopyRSS.inChild(size: rssSize, chunk: common.chunk, out: out)
            figures.throughput = try ThroughputPart(size: throughput.size.bytes, chunk: common.chunk.bytes, repeats: throughput.repeats, out: out).run()
            if !skipBreakdown {
                figures.breakdown = try BreakdownPart(size: min(breakdownSize.bytes, throughput.size.bytes), largeSize: largeSize.bytes,
                                                      chunk: common.chunk.bytes, out: out).run()
            }
            out.summary(figures)
            try out.emitJSON(figures)
        }
    }

    struct Throughput: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Migrate an untouched device in process and compare GB/s with memcpy of the same bytes.")

        @OptionGroup var common: CommonOptions
        @OptionGroup var throughput: ThroughputOptions

        func run() throws {
            let out = Printer(json: common.json)
            var figures = Figures(machine: .current())
            out.header(figures.machine)
            figures.throughput = try ThroughputPart(size: throughput.size.bytes, chunk: common.chunk.bytes, repeats: throughput.repeats, out: out).run()
            out.summary(figures)
            try out.emitJSON(figures)
        }
    }

    struct PrecopyRSS: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rss",
            abstract: "Peak RSS while one pre-copy pass of an untouched device is read (run it in a fresh process).")

        @OptionGroup var common: CommonOptions

        @Option(help: "Device memory (e.g. 64GiB).")
        var size: ByteSize = ByteSize(64 << 30)

        @Option(help: "Stop the pass once pending_bytes is at most this (the reference client's pre-copy threshold).")
        var threshold: ByteSize = ByteSize(1 << 20)

        @Flag(help: .hidden)
        var child = false

        func run() throws {
            let out = Printer(json: common.json)
            var figures = Figures(machine: .current())
            if !child { out.header(figures.machine) }
            figures.precopyRss = try RSSPart(size: size.bytes, chunk: common.chunk.bytes, threshold: threshold.bytes, out: out).run()
            if !child { out.summary(figures) }
            try out.emitJSON(figures)
        }

        /// Runs this subcommand in a child process of the same binary and returns its figures.
        static func inChild(size: ByteSize, chunk: ByteSize, out: Printer) throws -> RSSFigures {
            let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = ["rss", "--size", "\(size.bytes)", "--chunk", "\(chunk.bytes)", "--json", "--child"]
            let pipe = Pipe()
            process.standardOutput = pipe
            out.progress("rss: running `\(executable) \(process.arguments?.joined(separator: " ") ?? "")` in a fresh process")
            try process.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw BenchError("the rss child process exited with status \(process.terminationStatus)")
            }
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            let figures = try decoder.decode(Figures.self, from: data)
            guard let rss = figures.precopyRss else { throw BenchError("the rss child process printed no pre-copy RSS figures") }
            return rss
        }
    }

    struct Breakdown: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Micro-benchmarks of the engine's public API: where a migration's time goes.")

        @OptionGroup var common: CommonOptions

        @Option(help: "Device memory of the micro-benchmarks (e.g. 1GiB).")
        var size: ByteSize = ByteSize(1 << 30)

        @Option(name: .customLong("large-size"), help: "The larger device the save pass is compared with (same bytes read).")
        var largeSize: ByteSize = ByteSize(64 << 30)

        func run() throws {
            let out = Printer(json: common.json)
            var figures = Figures(machine: .current())
            out.header(figures.machine)
            figures.breakdown = try BreakdownPart(size: size.bytes, largeSize: largeSize.bytes, chunk: common.chunk.bytes, out: out).run()
            out.summary(figures)
            try out.emitJSON(figures)
        }
    }
}

/// A size in bytes, written `4GiB`, `256MiB`, `64G`, `1M`, `4096` or `4096B` (binary units).
struct ByteSize: ExpressibleByArgument, Sendable, CustomStringConvertible {
    var bytes: UInt64

    init(_ bytes: UInt64) { self.bytes = bytes }

    init?(argument: String) {
        let text = argument.trimmingCharacters(in: .whitespaces).lowercased()
        let digits = text.prefix { $0.isNumber }
        guard let value = UInt64(digits), value > 0 else { return nil }
        let shift: UInt64
        switch text.dropFirst(digits.count) {
        case "", "b": shift = 0
        case "k", "kib", "kb": shift = 10
        case "m", "mib", "mb": shift = 20
        case "g", "gib", "gb": shift = 30
        case "t", "tib", "tb": shift = 40
        default: return nil
        }
        guard value <= UInt64.max >> shift else { return nil }
        bytes = value << shift
    }

    var description: String { Self.format(bytes) }
    var defaultValueDescription: String { description }

    static func format(_ bytes: UInt64) -> String {
        for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] where bytes >= 1 << shift {
            let value = Double(bytes) / Double(UInt64(1) << UInt64(shift))
            return value == value.rounded() ? "\(Int(value))\(unit)" : String(format: "%.1f", value) + unit
        }
        return "\(bytes)B"
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// `mdevsim-bench fuse`: mdevsim's FUSE region files against a bare libfuse daemon doing the same
/// things with the same loop (Benchmarks/fuse/bare_region.c), in the same run, every loop timed
/// by the same C client (Benchmarks/fuse/client.c, `--client`); the pre-copy pass is also moved
/// by pread/pwrite (goal >= 1.0x bare). Run it with `scripts/bench-fuse.sh` (builds both, prints the table, cleans up).
///
/// Both daemons: libfuse 3.14 low-level API, multi-threaded loop (clone_fd 0, max 10 threads),
/// max_readahead 0, max_write 1 MiB, direct_io opens, FUSE_DIRECT_IO_ALLOW_MMAP negotiated through
/// fuse_session_custom_io. By default each runs in its own child process (`--in-process` mounts
/// mdevsim inside the client instead). What is measured, each repeat pairing the daemons back to
/// back (order alternating), medians and the median of the paired ratios printed:
///
/// 1. header access latency: an 8-byte pread at offset 8. mdevsim: `pending_bytes` of a running
///    device (answers 0, no side effect), through RegionFile.read and the engine's header trap;
///    bare: a counter. Also mdevsim with `strict` on (a third mount). Goal: <= 1.05x bare.
/// 2. pread throughput at offset 4096 (the data section), `data_size` bytes (~1 MiB) a read.
///    mdevsim: a device in pre-copy with a chunk staged, read whole as a VMM reads it, through
///    the engine and its checker. Bare: the same byte count from its buffer. Goal: >= 0.95x bare.
/// 3. save+resume through the mappings: per 1 MiB chunk, source `data_offset` read (the daemon
///    notify_stores the chunk before answering), `data_size` read, destination `data_offset` read
///    (pre-fill notify_store), memcpy source mapping -> destination mapping, destination
///    `data_size` write (held while the daemon notify_retrieves the stores, then applied),
///    source `pending_bytes`. mdevsim: a real pre-copy pass of an untouched device into a resuming
///    device (the engine generates and applies the chunks; the migration is then finished
///    untimed and the two digests compared); bare: the same calls on its two files, as many
///    chunks. GB/s of chunk bytes; ratios to bare (goal >= 0.95x) and to memcpy of the same 1 MiB
///    pieces. The per-step time split and the engine alone (same pass in process, no FUSE) show
///    where mdevsim's extra time goes.
/// 4. concurrency (ConcurrencyPart.swift): N pairs (`--pairs`, default 4 16 64) migrating at once
///    through one mount, one C client process per pair, mapped and by pread/pwrite; aggregate GB/s
///    and the ratio to the smallest N (goal: >= 0.9x). Interleaved, the same clients run the same
///    loops on N pairs of a bare daemon's regions: the machine's own fall with N.
/// 5. the in-process migration of `mdevsim-bench throughput` (default 4 GiB, smaller if it does
///    not fit MemAvailable) against memcpy of the same bytes (goal: >= 0.5x).
/// 6. a 64 GiB device through one mount, with the daemon's peak RSS (BigDevicePart.swift).
/// 7. the bundled `large-sparse` scenario as `mdevsim run` runs it, through FUSE and in process
///    (LargeSparsePart.swift; goal: in the default run, under 10 s).
import ArgumentParser
import DeviceSimulator
import Foundation
import FUSEKit
import Glibc
import MdevFS
import Scenarios

extension Bench {
    struct FUSE: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "fuse",
            abstract: "Compare mdevsim's FUSE region files with a bare libfuse C daemon (header latency, 1 MiB pread, save+resume through mmap); concurrent pairs; in-process migration vs memcpy.",
            discussion: "Normally run through scripts/bench-fuse.sh, which builds Benchmarks/fuse/bare_region.c and passes --bare-daemon.")

        @Option(name: .customLong("bare-daemon"), help: "Path of the built bare_region daemon (Benchmarks/fuse/bare_region.c).")
        var bareDaemon: String?

        @Option(help: "Path of the built region_client (Benchmarks/fuse/client.c): the client that times every loop.")
        var client: String?

        @Option(help: "Directory for the mountpoints and daemon logs (default: a fresh /tmp/mdevsim-fusebench.XXXXXX, removed at the end).")
        var workdir: String?

        @Option(help: "Paired repeats of every measurement (medians are printed).")
        var repeats: Int = 7

        @Option(name: .customLong("header-accesses"), help: "8-byte preads per header latency measurement.")
        var headerAccesses: Int = 20_000

        @Option(help: "Chunk-sized (~1 MiB) preads per throughput measurement.")
        var reads: Int = 1_000

        @Option(help: "Device memory moved by one save+resume measurement (its pre-copy pass).")
        var memory: ByteSize = ByteSize(128 << 20)

        @Flag(name: .customLong("in-process"), help: "Mount mdevsim inside this process instead of a child process.")
        var inProcess = false

        @Flag(name: .customLong("skip-strict"), help: "Do not measure header latency with strict on.")
        var skipStrict = false

        @Option(parsing: .upToNextOption, help: "Concurrency figure: how many source/destination pairs migrate at once through one mdevsim mount (each N a measurement).")
        var pairs: [Int] = [4, 16, 64]

        @Option(name: .customLong("pair-memory"), help: "Concurrency figure: device memory each pair moves in its timed pre-copy pass.")
        var pairMemory: ByteSize = ByteSize(32 << 20)

        @Option(name: .customLong("concurrency-repeats"), help: "Concurrency figure: repeats of every N (medians are printed).")
        var concurrencyRepeats: Int = 3

        @Flag(name: .customLong("skip-concurrency"), help: "Do not measure concurrent pairs.")
        var skipConcurrency = false

        @Option(name: .customLong("bdi-max-ratio"), help: ArgumentHelp("Concurrency figure: measure it a second time with max_ratio of both pair mounts' backing devices (/sys/class/bdi/MAJ:MIN) at this percent (FUSE sets 1, with strictlimit; root only); 0: only with the kernel's default.", valueName: "percent"))
        var bdiMaxRatio: Int = 100

        @Option(name: .customLong("migration-size"), help: "In-process figure: device memory of the in-process migration against memcpy (made smaller, and said so, if it does not fit MemAvailable).")
        var migrationSize: ByteSize = ByteSize(4 << 30)

        @Flag(name: .customLong("skip-in-process-migration"), help: "Do not measure the in-process migration against memcpy.")
        var skipInProcessMigration = false

        @Option(name: .customLong("big-device"), help: "Big-device figure: memory of the one device migrated end to end through a mount (random contents, dirtying a hot set), with the daemon's peak RSS.")
        var bigDevice: ByteSize = ByteSize(64 << 30)

        @Flag(name: .customLong("skip-big-device"), help: "Do not measure the big-device migration.")
        var skipBigDevice = false

        @Flag(name: .customLong("skip-large-sparse"), help: "Do not time the bundled large-sparse scenario (through FUSE and in process).")
        var skipLargeSparse = false

        @Flag(help: "Print one JSON object of the figures on stdout; human-readable lines go to stderr.")
        var json = false

        @Flag(help: "Print the README's performance table (markdown, with the date and the machine) on stdout; human-readable lines go to stderr.")
        var markdown = false

        @Option(help: .hidden) var serve: String?
        /// With `--serve`: the scenario file the daemon serves instead of the bench's own type.
        @Option(name: .customLong("serve-scenario"), help: .hidden) var serveScenario: String?
        @Option(help: .hidden) var instances: Int = 16
        @Flag(help: .hidden) var strict = false
        /// With `--serve`: the mount stages at `data_offset` only (the "staging ahead off" mount).
        @Flag(name: .customLong("no-stage-ahead"), help: .hidden) var noStageAhead = false

        static let chunk = 1 << 20
        static let typeName = "mdevsim-bench"

        func validate() throws {
            guard repeats >= 1, headerAccesses >= 1, reads >= 1, concurrencyRepeats >= 1, instances >= 1 else { throw ValidationError("counts must be at least 1") }
            guard !pairs.isEmpty, pairs.allSatisfy({ $0 >= 1 }) else { throw ValidationError("--pairs needs counts of at least 1") }
            guard pairMemory.bytes >= UInt64(Self.chunk), migrationSize.bytes >= UInt64(Self.chunk) else {
                throw ValidationError("--pair-memory and --migration-size must be at least one chunk (1 MiB)")
            }
            if serve == nil && (bareDaemon == nil || client == nil) {
                throw ValidationError("--bare-daemon and --client are required (scripts/bench-fuse.sh builds both)")
            }
        }

        func run() throws {
            if let serve {
                // The mdevsim daemon of a run: serves until SIGTERM/SIGINT (libfuse's handlers unmount).
                let scenario = try serveScenario.map { try ScenarioLoader.parse(String(contentsOfFile: $0, encoding: .utf8)) }
                    ?? fuseBenchScenario(memory: memory.bytes, chunk: UInt64(Self.chunk), instances: instances)
                let mount = try MdevMount(scenario: scenario, mountpoint: serve, strict: strict, stagesAhead: !noStageAhead, handleSignals: true)
                _ = try mount.run()
                return
            }
            try FUSEBenchRun(options: self).run()
        }
    }
}

/// Codable figures of one run (`--json`).
struct FUSEFigures: Codable, Sendable {
    struct Machine: Codable, Sendable {
        var cpus: Int
        var cpuModel: String
        var kernel: String
        var loadAverage: String
    }
    struct Pair: Codable, Sendable {
        var bare: Spread
        var mdevsim: Spread
        /// Median of the per-repeat ratios mdevsim / bare.
        var ratio: Spread
        var goal: String
        var met: Bool
    }
    var machine: Machine
    var mdevsimDaemon: String
    var repeats: Int
    var headerLatencyMicroseconds: Pair?
    var strictHeaderLatencyMicroseconds: Spread?
    /// The bare daemon's header latency as the bench's former Swift client measured it, in the
    /// same repeats as the C client: the check that the baseline is the machine's, not a client's.
    var swiftClientBareHeaderMicroseconds: Spread?
    var strictToNonStrictRatio: Spread?
    var preadGbPerSecond: Pair?
    var saveResumeGbPerSecond: Pair?
    /// The whole pre-copy pass moved by pread (source side) and pwrite (destination side).
    var preadSaveGbPerSecond: Pair?
    var pwriteResumeGbPerSecond: Pair?
    var memcpyGbPerSecond: Spread?
    var bareToMemcpy: Spread?
    var mdevsimToMemcpy: Spread?
    var engineAloneGbPerSecond: Spread?
    var engineSaveMicrosecondsPerChunk: Spread?
    var engineSaveApplyMicrosecondsPerChunk: Spread?
    /// The engine's header read in process (checker included), and its share of mdevsim's
    /// header latency over FUSE: the bound on the checker's cost for a clean client.
    var engineHeaderNanoseconds: Spread?
    var engineHeaderShareOfFUSELatency: Spread?
    var chunksPerPass = 0
    /// The same passes on a second mdevsim mount that stages at `data_offset` only
    /// (`--no-stage-ahead`): the save pipeline's own gain, as mdevsim with it / without it.
    var stageAheadGain: StageAheadGain?
    /// What mdevsim's devices counted they copied (`CopyTally`, both sides summed) over every
    /// timed pass, through the mappings and by pread/pwrite.
    var mappedCopies: CopyFigure?
    var preadCopies: CopyFigure?
    var bareSteps: TransferTiming?
    var mdevsimSteps: TransferTiming?
    var digestsMatched: Int = 0
    var violations: [String] = []
    /// N pairs migrating at once through one mount.
    var concurrency: ConcurrencyFigures?
    /// The same with the pair mounts' backing-device max_ratio raised (`--bdi-max-ratio`).
    var concurrencyRaisedBDI: ConcurrencyFigures?
    /// The in-process migration (no FUSE) against memcpy of the same bytes.
    var inProcessMigration: InProcessMigrationFigure?
    /// One device bigger than the machine migrated through a mount.
    var bigDevice: BigDeviceFigure?
    /// The bundled `large-sparse` scenario, timed as `mdevsim run` runs it.
    var largeSparse: LargeSparseFigure?
}

/// mdevsim with staging ahead against mdevsim without it, pass by pass in the same repeats.
struct StageAheadGain: Codable, Sendable {
    /// GB/s without staging ahead, and the ratio with / without per repeat.
    var mappedSaveResumeOff: Spread
    var mappedSaveResumeRatio: Spread
    var preadSaveOff: Spread
    var preadSaveRatio: Spread
    var pwriteResumeOff: Spread
    var pwriteResumeRatio: Spread
    /// Over the timed passes with staging ahead: chunks built ahead and taken, of those the ones
    /// the `data_offset` read had to finish, and the ones dropped.
    var figures: StageAheadFigures
}

/// The in-process migration of `mdevsim-bench throughput`, run by `fuse` for the README's table.
struct InProcessMigrationFigure: Codable, Sendable {
    /// What was asked for, and what was measured (smaller when it did not fit the memory).
    var requestedBytes: UInt64
    var deviceBytes: UInt64
    var migrationGbPerSecond: Double
    var memcpyGbPerSecond: Double
    var ratioToMemcpy: Double
    var goalRatio: Double
    var met: Bool
    var digestsMatch: Bool

    init(requestedBytes: UInt64, figures t: ThroughputFigures) {
        self.requestedBytes = requestedBytes
        deviceBytes = t.deviceBytes
        migrationGbPerSecond = t.migrationGbPerSecond.median
        memcpyGbPerSecond = t.memcpyPrefaultedPiecesGbPerSecond.median
        ratioToMemcpy = t.ratioToMemcpy.median
        goalRatio = t.goalRatio
        met = t.meetsGoal
        digestsMatch = t.runs.allSatisfy(\.digestsMatch)
    }

    /// The largest size, halving from `requested`, whose run fits the memory available now: the
    /// memcpy baselines hold two buffers of the device size (the destination device keeps the
    /// untouched source's pages as references), so about twice the size plus 1 GiB of room.
    static func fittingSize(_ requested: UInt64, chunk: UInt64) -> UInt64 {
        guard let available = ProcessFigures.kibLine("MemAvailable", of: "/proc/meminfo") else { return requested }
        var size = requested
        while size > chunk && 2 * size + (1 << 30) > available { size /= 2 }
        return max(chunk, size / chunk * chunk)
    }
}

extension FUSEFigures.Machine {
    static func current() -> Self {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
        var u = utsname()
        uname(&u)
        let release = withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))
            .map { $0.split(separator: " ").prefix(3).joined(separator: " ") } ?? "unknown"
        return Self(cpus: ProcessInfo.processInfo.activeProcessorCount, cpuModel: model, kernel: release, loadAverage: load)
    }
}

/// The engine alone (no FUSE), per chunk of the same pass.
struct EngineRun: Codable, Sendable {
    var gbPerSecond: Double = 0
    /// Save + copy into the destination's data section + apply.
    var allNsPerChunk: Double = 0
    /// Save alone.
    var saveNsPerChunk: Double = 0
    /// One 8-byte `pending_bytes` read of a running device through the engine, checker included:
    /// an upper bound of what the checker adds to a header access over FUSE.
    var headerNs: Double = 0
}

/// One run of the comparison.
final class FUSEBenchRun {
    let o: Bench.FUSE
    let out: Printer
    var daemons: [BenchDaemon] = []
    var workdir = ""
    var ownsWorkdir = false

    init(options: Bench.FUSE) {
        o = options
        out = Printer(json: options.json || options.markdown)
    }

    func run() throws {
        if let dir = o.workdir {
            workdir = dir
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } else {
            var template = Array("/tmp/mdevsim-fusebench.XXXXXX".utf8CString)
            guard mkdtemp(&template) != nil else { throw BenchError("mkdtemp failed (errno \(errno))") }
            workdir = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            ownsWorkdir = true
        }
        defer { cleanUp() }
        try measure()
    }

    /// Stops every daemon (unmounting), then removes the mountpoint directories.
    func cleanUp() {
        for d in daemons.reversed() { d.stop() }
        for d in daemons where !isMounted(d.mountpoint) { rmdir(d.mountpoint) }
        daemons = []
        if ownsWorkdir { try? FileManager.default.removeItem(atPath: workdir) }
    }

    /// The bare C daemon mounted at `workdir/name`, with `regions` region files.
    func startBare(name: String = "bare", regions: Int = 4) throws -> ChildDaemon {
        guard let path = o.bareDaemon else { throw BenchError("no --bare-daemon") }
        let mountpoint = "\(workdir)/\(name)"
        let d = try ChildDaemon(label: name, executable: path, arguments: [mountpoint, String(regions)], mountpoint: mountpoint, logPath: "\(workdir)/\(name).log")
        daemons.append(d)
        try waitForFile("\(mountpoint)/region0", alive: { d.isRunning })
        return d
    }

    /// An mdevsim mount: `memory` per device, `instances` devices at most (the concurrency
    /// figure's mount has its own size and room for all its pairs).
    func startMdevsim(strict: Bool, stagesAhead: Bool = true, name: String? = nil, memory: UInt64? = nil, instances: Int = 16) throws -> BenchDaemon {
        let name = name ?? (strict ? "mdevsim-strict" : stagesAhead ? "mdevsim" : "mdevsim-no-stage-ahead")
        let memory = memory ?? o.memory.bytes
        let mountpoint = "\(workdir)/\(name)"
        let d: BenchDaemon
        if o.inProcess {
            d = try InProcessMdevDaemon(label: name, scenario: fuseBenchScenario(memory: memory, chunk: UInt64(Bench.FUSE.chunk), instances: instances),
                                        mountpoint: mountpoint, strict: strict, stagesAhead: stagesAhead)
            daemons.append(d)
        } else {
            let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
            var args = ["fuse", "--serve", mountpoint, "--memory", "\(memory)", "--instances", "\(instances)"]
            if strict { args.append("--strict") }
            if !stagesAhead { args.append("--no-stage-ahead") }
            let c = try ChildDaemon(label: name, executable: exe, arguments: args, mountpoint: mountpoint, logPath: "\(workdir)/\(name).log")
            daemons.append(c)
            d = c
            try waitForFile("\(mountpoint)/mdev_supported_types/\(Bench.FUSE.typeName)/create", alive: { c.isRunning })
        }
        return d
    }

    // swiftlint:disable:next function_body_length
    func measure() throws {
        let machine = FUSEFigures.Machine.current()
        var figures = FUSEFigures(machine: machine, mdevsimDaemon: o.inProcess ? "in process (client threads share the process)" : "child process",
                                  repeats: o.repeats)
        out.line("mdevsim-bench fuse: \(machine.cpus) CPUs (\(machine.cpuModel)), kernel \(machine.kernel), load average \(machine.loadAverage)")
        out.line("  daemons: bare libfuse C daemon (child process) vs mdevsim MdevFS (\(figures.mdevsimDaemon)); same client code; \(o.repeats) paired repeats, order alternating")

        let section = Bench.FUSE.chunk
        let bare = try startBare()
        let mdev = try startMdevsim(strict: false)
        let strictMount = o.skipStrict ? nil : try startMdevsim(strict: true)
        let mdevOff = try startMdevsim(strict: false, stagesAhead: false)
        out.progress("mounted \(bare.mountpoint), \(mdev.mountpoint), \(mdevOff.mountpoint)\(strictMount.map { ", " + $0.mountpoint } ?? "")")

        // One C client times every loop, against both daemons; its files stay open across repeats.
        guard let clientPath = o.client else { throw BenchError("no --client") }
        let c = try CRegionClient(executable: clientPath)
        defer { c.stop() }
        try c.open(Slot.bareHeader, "\(bare.mountpoint)/region0", map: false)
        let swiftBareHeader = try RegionClient(path: "\(bare.mountpoint)/region0", sectionSize: section, mapSection: false)
        try c.open(Slot.bareSource, "\(bare.mountpoint)/region0", map: true)
        try c.open(Slot.bareDestination, "\(bare.mountpoint)/region1", map: true)
        try c.open(Slot.bareReadSource, "\(bare.mountpoint)/region2", map: false)
        try c.open(Slot.bareWriteDestination, "\(bare.mountpoint)/region3", map: false)
        let headerDevice = try MdevsimDevice.create(mount: mdev.mountpoint, type: Bench.FUSE.typeName)
        try c.open(Slot.mdevHeader, headerDevice.regionPath, map: false)
        let readDevice = try MdevsimDevice.create(mount: mdev.mountpoint, type: Bench.FUSE.typeName)
        try c.open(Slot.mdevReader, readDevice.regionPath, map: false)
        try c.setDeviceState(Slot.mdevReader, UInt32(StateBits.preCopy))
        _ = try c.read8(Slot.mdevReader, Field.pendingBytes)
        _ = try c.read8(Slot.mdevReader, Field.dataOffset)   // stages a chunk: the data section holds it
        let staged = try c.read8(Slot.mdevReader, Field.dataSize)
        var strictDevice: MdevsimDevice?
        if let strictMount {
            let d = try MdevsimDevice.create(mount: strictMount.mountpoint, type: Bench.FUSE.typeName)
            strictDevice = d
            try c.open(Slot.strictHeader, d.regionPath, map: false)
        }
        // Both daemons are read in pieces of the staged chunk's size: a longer read of mdevsim's
        // data section would leave [data_offset, data_offset + data_size) and be a violation.
        let readSize = Int(staged)
        out.progress("mdevsim read device in pre-copy, chunk of \(staged) bytes staged; preads of that size at 4096 read it")
        let chunksPerPass = Int(o.memory.bytes / UInt64(section))

        // Warm-up (untimed): threads spawned, code paths and caches warm.
        _ = try c.headerLatency(Slot.bareHeader, count: 2_000)
        _ = try c.headerLatency(Slot.mdevHeader, count: 2_000)
        if strictMount != nil { _ = try c.headerLatency(Slot.strictHeader, count: 2_000) }
        _ = try c.preadThroughput(Slot.bareHeader, size: readSize, count: 50)
        _ = try c.preadThroughput(Slot.mdevReader, size: readSize, count: 50)
        try c.touch(Slot.bareSource)
        try c.touch(Slot.bareDestination)
        _ = try c.mappedLoop(source: Slot.bareSource, destination: Slot.bareDestination, maxChunks: 16)
        _ = try c.readWriteLoop(source: Slot.bareReadSource, destination: Slot.bareWriteDestination, maxChunks: 16)
        // One whole pass for mdevsim too: its daemon then holds the memory extents a device
        // reuses (ExtentPool), as a mount that has run a migration before does.
        _ = try mdevsimSaveResume(c, mount: mdev.mountpoint, daemon: mdev.processID, mapped: true)
        _ = try mdevsimSaveResume(c, mount: mdevOff.mountpoint, daemon: mdevOff.processID, mapped: true)

        var header: [String: [Double]] = [:], pread: [String: [Double]] = [:], transfer: [String: [Double]] = [:]
        var rwSave: [String: [Double]] = [:], rwResume: [String: [Double]] = [:], swiftHeader: [Double] = []
        var memcpyRuns: [Double] = [], engineRuns: [EngineRun] = []
        var bareSteps = TransferTiming(), mdevSteps = TransferTiming()
        var mappedCopies = CopyFigure(), preadCopies = CopyFigure()
        var transferOff: [Double] = [], rwSaveOff: [Double] = [], rwResumeOff: [Double] = []
        var aheadFigures = StageAheadFigures()
        for r in 0..<o.repeats {
            let order = r % 2 == 0 ? ["bare", "mdevsim", "strict"] : ["strict", "mdevsim", "bare"]
            for who in order {
                let slot = who == "bare" ? Slot.bareHeader : who == "mdevsim" ? Slot.mdevHeader : Slot.strictHeader
                if who == "strict" && strictMount == nil { continue }
                header[who, default: []].append(try c.headerLatency(slot, count: o.headerAccesses) / 1000)
                if who == "bare" { swiftHeader.append(try Bench.Trace.fuseLatency(swiftBareHeader, count: o.headerAccesses) / 1000) }
            }
            for who in order where who != "strict" {
                pread[who, default: []].append(try c.preadThroughput(who == "bare" ? Slot.bareHeader : Slot.mdevReader, size: readSize, count: o.reads))
            }
            for who in order where who != "strict" {
                if who == "bare" {
                    let t = try c.mappedLoop(source: Slot.bareSource, destination: Slot.bareDestination, maxChunks: chunksPerPass, daemon: bare.processID)
                    bareSteps = sum(bareSteps, t)
                    transfer[who, default: []].append(t.gbPerSecond)
                    let w = try c.readWriteLoop(source: Slot.bareReadSource, destination: Slot.bareWriteDestination, maxChunks: chunksPerPass)
                    rwSave[who, default: []].append(w.saveGBps)
                    rwResume[who, default: []].append(w.resumeGBps)
                } else {
                    let (t, _, matched, copies) = try mdevsimSaveResume(c, mount: mdev.mountpoint, daemon: mdev.processID, mapped: true)
                    mappedCopies = mappedCopies + copies
                    mdevSteps = sum(mdevSteps, t)
                    transfer[who, default: []].append(t.gbPerSecond)
                    if matched { figures.digestsMatched += 1 }
                    let (_, w, rwMatched, rwCopies) = try mdevsimSaveResume(c, mount: mdev.mountpoint, daemon: mdev.processID, mapped: false)
                    preadCopies = preadCopies + rwCopies
                    rwSave[who, default: []].append(w.saveGBps)
                    rwResume[who, default: []].append(w.resumeGBps)
                    if rwMatched { figures.digestsMatched += 1 }
                    aheadFigures = aheadFigures + copies.stagedAhead + rwCopies.stagedAhead
                    // The same two passes with staging ahead off, right after (order alternating).
                    let (tOff, _, offMatched, _) = try mdevsimSaveResume(c, mount: mdevOff.mountpoint, daemon: mdevOff.processID, mapped: true)
                    let (_, wOff, rwOffMatched, _) = try mdevsimSaveResume(c, mount: mdevOff.mountpoint, daemon: mdevOff.processID, mapped: false)
                    if !offMatched || !rwOffMatched { throw BenchError("a save+resume on the mount without staging ahead ended with different digests") }
                    transferOff.append(tOff.gbPerSecond)
                    rwSaveOff.append(wOff.saveGBps)
                    rwResumeOff.append(wOff.resumeGBps)
                }
            }
            memcpyRuns.append(try c.memcpyGBps(size: section, count: chunksPerPass))
            engineRuns.append(try engineAlone())
            out.progress(String(format: "repeat %d/%d: header %.2f / %.2f us, pread %.2f / %.2f GB/s, mapped save+resume %.2f / %.2f GB/s, pread save %.2f / %.2f, pwrite resume %.2f / %.2f GB/s (bare / mdevsim)",
                                r + 1, o.repeats, header["bare"]?.last ?? 0, header["mdevsim"]?.last ?? 0,
                                pread["bare"]?.last ?? 0, pread["mdevsim"]?.last ?? 0,
                                transfer["bare"]?.last ?? 0, transfer["mdevsim"]?.last ?? 0,
                                rwSave["bare"]?.last ?? 0, rwSave["mdevsim"]?.last ?? 0,
                                rwResume["bare"]?.last ?? 0, rwResume["mdevsim"]?.last ?? 0))
        }

        // The checker's view of everything the benchmark did on mdevsim.
        for d in [headerDevice, readDevice] + (strictDevice.map { [$0] } ?? []) {
            let v = d.text("violations")
            if !v.isEmpty { figures.violations.append(contentsOf: v.split(separator: "\n").map { "\(d.uuid): \($0)" }) }
        }

        func ratios(_ a: [Double], _ b: [Double]) -> Spread { Spread(zip(a, b).map { $1 > 0 ? $0 / $1 : 0 }) }
        func pair(_ m: [String: [Double]], goal: String, met: (Double) -> Bool) -> FUSEFigures.Pair {
            let r = ratios(m["mdevsim"] ?? [], m["bare"] ?? [])
            return .init(bare: Spread(m["bare"] ?? []), mdevsim: Spread(m["mdevsim"] ?? []), ratio: r, goal: goal, met: met(r.median))
        }
        figures.headerLatencyMicroseconds = pair(header, goal: "<= 1.05x bare") { $0 <= 1.05 }
        if let s = header["strict"] {
            figures.strictHeaderLatencyMicroseconds = Spread(s)
            figures.strictToNonStrictRatio = ratios(s, header["mdevsim"] ?? [])
        }
        figures.swiftClientBareHeaderMicroseconds = Spread(swiftHeader)
        figures.preadGbPerSecond = pair(pread, goal: ">= 0.95x bare") { $0 >= 0.95 }
        figures.saveResumeGbPerSecond = pair(transfer, goal: ">= 0.95x bare") { $0 >= 0.95 }
        figures.preadSaveGbPerSecond = pair(rwSave, goal: ">= 1.0x bare") { $0 >= 1.0 }
        figures.pwriteResumeGbPerSecond = pair(rwResume, goal: ">= 1.0x bare") { $0 >= 1.0 }
        figures.memcpyGbPerSecond = Spread(memcpyRuns)
        figures.bareToMemcpy = ratios(transfer["bare"] ?? [], memcpyRuns)
        figures.mdevsimToMemcpy = ratios(transfer["mdevsim"] ?? [], memcpyRuns)
        figures.engineAloneGbPerSecond = Spread(engineRuns.map(\.gbPerSecond))
        figures.engineSaveMicrosecondsPerChunk = Spread(engineRuns.map { $0.saveNsPerChunk / 1000 })
        figures.engineSaveApplyMicrosecondsPerChunk = Spread(engineRuns.map { $0.allNsPerChunk / 1000 })
        figures.engineHeaderNanoseconds = Spread(engineRuns.map(\.headerNs))
        if let h = header["mdevsim"], !h.isEmpty {
            figures.engineHeaderShareOfFUSELatency = Spread(zip(engineRuns, h).map { $0.headerNs / ($1 * 1000) })
        }
        figures.stageAheadGain = StageAheadGain(
            mappedSaveResumeOff: Spread(transferOff), mappedSaveResumeRatio: ratios(transfer["mdevsim"] ?? [], transferOff),
            preadSaveOff: Spread(rwSaveOff), preadSaveRatio: ratios(rwSave["mdevsim"] ?? [], rwSaveOff),
            pwriteResumeOff: Spread(rwResumeOff), pwriteResumeRatio: ratios(rwResume["mdevsim"] ?? [], rwResumeOff),
            figures: aheadFigures)
        figures.chunksPerPass = chunksPerPass
        figures.mappedCopies = mappedCopies
        figures.preadCopies = preadCopies
        if !o.skipConcurrency {
            figures.concurrency = try measureConcurrency(clientPath: clientPath, bdiMaxRatio: nil)
            if o.bdiMaxRatio > 0 {
                do {
                    figures.concurrencyRaisedBDI = try measureConcurrency(clientPath: clientPath, bdiMaxRatio: o.bdiMaxRatio)
                } catch {
                    out.line("concurrency with max_ratio \(o.bdiMaxRatio): not measured (\(error))")
                }
            }
        }
        if !o.skipInProcessMigration {
            let size = InProcessMigrationFigure.fittingSize(o.migrationSize.bytes, chunk: UInt64(Bench.FUSE.chunk))
            if size != o.migrationSize.bytes {
                out.line("in-process migration: \(ByteSize.format(o.migrationSize.bytes)) does not fit MemAvailable "
                         + "(it needs about twice the device size); measuring \(ByteSize.format(size)) instead")
            }
            let t = try ThroughputPart(size: size, chunk: UInt64(Bench.FUSE.chunk), repeats: 1, out: out).run()
            figures.inProcessMigration = InProcessMigrationFigure(requestedBytes: o.migrationSize.bytes, figures: t)
        }
        if !o.skipBigDevice {
            figures.bigDevice = try BigDevicePart(workdir: workdir, clientPath: clientPath, memory: o.bigDevice.bytes, out: out).run()
        }
        if !o.skipLargeSparse {
            figures.largeSparse = try LargeSparsePart(out: out).run()
        }
        figures.bareSteps = bareSteps
        figures.mdevsimSteps = mdevSteps
        report(figures)
        if o.markdown { print(figures.markdown(date: Date()), terminator: "") }
        if o.json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            print(String(decoding: try encoder.encode(figures), as: UTF8.self))
        }
        if figures.digestsMatched != 2 * o.repeats {
            throw BenchError("only \(figures.digestsMatched) of \(2 * o.repeats) mdevsim save+resume runs ended with equal digests")
        }
        for c in [figures.concurrency, figures.concurrencyRaisedBDI].compactMap({ $0 }) where c.digestsMatched != c.pairsRun {
            throw BenchError("only \(c.digestsMatched) of \(c.pairsRun) concurrent pairs ended with equal digests")
        }
        if let l = figures.largeSparse, !l.passed {
            throw BenchError("the large-sparse scenario did not meet its expectation")
        }
        if let b = figures.bigDevice, !b.digestsMatch {
            throw BenchError("the big device's source and destination digests differ")
        }
    }

    /// The concurrency figure on fresh mounts (mdevsim's and the bare daemon's), their backing
    /// devices' max_ratio set to `bdiMaxRatio` when given.
    private func measureConcurrency(clientPath: String, bdiMaxRatio: Int?) throws -> ConcurrencyFigures {
        // Its own mount, so the pairs are alone on it; the other mounts stay idle.
        let most = o.pairs.max() ?? 1
        let pairsMount = try startMdevsim(strict: false, name: "mdevsim-pairs", memory: o.pairMemory.bytes, instances: 2 * most)
        // The baseline's own mount too: four regions a pair (mapped and pread/pwrite roles).
        let barePairs = try startBare(name: "bare-pairs", regions: max(4, 4 * most))
        out.progress("concurrency: \(o.pairs.map(String.init).joined(separator: ", ")) pairs of \(ByteSize.format(o.pairMemory.bytes)) devices through \(pairsMount.mountpoint), and as many pairs of regions through \(barePairs.mountpoint)")
        var part = ConcurrencyPart(mount: pairsMount.mountpoint, type: Bench.FUSE.typeName, clientPath: clientPath,
                                   pairCounts: o.pairs, bytesPerPair: o.pairMemory.bytes,
                                   repeats: o.concurrencyRepeats, out: out, daemon: pairsMount.processID)
        defer { pairsMount.stop(); barePairs.stop() }
        part.bareMount = barePairs.mountpoint
        part.bdiMaxRatio = bdiMaxRatio
        if let ratio = bdiMaxRatio {
            for m in [pairsMount.mountpoint, barePairs.mountpoint] {
                // Both mounts are served by now: resolving their paths does not block.
                let bdi = try MountHelpers.setDirtyShare(percent: ratio, ofMountAt: MountHelpers.resolvedPath(m))
                out.progress("concurrency: \(bdi)/max_ratio = \(ratio) for \(m)")
            }
        }
        return try part.run()
    }

    func sum(_ a: TransferTiming, _ b: TransferTiming) -> TransferTiming {
        var s = a
        s.chunks += b.chunks; s.bytes += b.bytes; s.totalNs += b.totalNs
        s.saveStoreNs += b.saveStoreNs; s.resumePrefillNs += b.resumePrefillNs; s.copyNs += b.copyNs
        s.resumeRetrieveNs += b.resumeRetrieveNs; s.otherHeaderNs += b.otherHeaderNs; s.clientFaults += b.clientFaults
        if let x = b.daemonFaults { s.daemonFaults = (s.daemonFaults ?? 0) + x }
        return s
    }

    /// A real migration between two fresh mdevsim devices, through their mappings (`mapped`) or
    /// by pread/pwrite: the pre-copy pass is timed; stop-and-copy, the state changes and the
    /// digest comparison are not.
    func mdevsimSaveResume(_ c: CRegionClient, mount: String, daemon: Int32?, mapped: Bool) throws -> (TransferTiming, ReadWriteTiming, Bool, CopyFigure) {
        let source = try MdevsimDevice.create(mount: mount, type: Bench.FUSE.typeName)
        let destination = try MdevsimDevice.create(mount: mount, type: Bench.FUSE.typeName)
        defer { source.remove(); destination.remove() }
        var mappedTiming = TransferTiming(), rwTiming = ReadWriteTiming()
        do {
            let (s, d) = (Slot.passSource, Slot.passDestination)
            try c.open(s, source.regionPath, map: mapped)
            try c.open(d, destination.regionPath, map: mapped)
            defer { try? c.close(s); try? c.close(d) }
            try c.setDeviceState(d, UInt32(StateBits.resuming))
            try c.setDeviceState(s, UInt32(StateBits.preCopy))
            if mapped {
                try c.touch(s)
                try c.touch(d)
                mappedTiming = try c.mappedLoop(source: s, destination: d, maxChunks: 0, daemon: daemon)
                try c.setDeviceState(s, UInt32(StateBits.stopAndCopy))
                _ = try c.mappedLoop(source: s, destination: d, maxChunks: 0)
            } else {
                rwTiming = try c.readWriteLoop(source: s, destination: d, maxChunks: 0)
                try c.setDeviceState(s, UInt32(StateBits.stopAndCopy))
                _ = try c.readWriteLoop(source: s, destination: d, maxChunks: 0)
            }
            try c.setDeviceState(s, UInt32(StateBits.stop))
            try c.setDeviceState(d, UInt32(StateBits.running))
        }
        let a = source.text("digest"), b = destination.text("digest")
        for dev in [source, destination] {
            let v = dev.text("violations")
            if !v.isEmpty { out.progress("violations on \(dev.uuid): \(v)") }
        }
        if a.isEmpty || a != b { out.progress("digests differ: source \(a), destination \(b) (\(destination.text("state")))") }
        let copies = CopyFigure(source: source.text("state"), destination: destination.text("state"))
        return (mappedTiming, rwTiming, !a.isEmpty && a == b, copies)
    }

    /// The same pre-copy pass with no FUSE, in process: the engine's save of each chunk, one copy
    /// into the destination's data section and the engine's apply (`all`); and the save alone.
    func engineAlone() throws -> EngineRun {
        let config = benchConfiguration(memory: o.memory.bytes, chunk: UInt64(Bench.FUSE.chunk))
        var run = EngineRun()
        do {
            let source = MigrationRegion(configuration: config, identity: "fuse-engine-source", extents: benchExtents)
            try source.setState(StateBits.preCopy)
            let start = monotonicNanoseconds()
            let pass = try source.readPass(threshold: 0) { blackHole($0.load(as: UInt8.self)) }
            run.saveNsPerChunk = Double(monotonicNanoseconds() - start) / Double(max(1, pass.chunks))
        }
        do {
            let device = MigrationRegion(configuration: config, identity: "fuse-engine-header", extents: benchExtents)
            var value: UInt64 = 0
            let reads = 200_000
            let start = monotonicNanoseconds()
            for _ in 0..<reads {
                _ = withUnsafeMutableBytes(of: &value) { device.read(at: 8, into: $0) }
                blackHole(UInt8(truncatingIfNeeded: value))
            }
            run.headerNs = Double(monotonicNanoseconds() - start) / Double(reads)
        }
        let source = MigrationRegion(configuration: config, identity: "fuse-engine-source", extents: benchExtents)
        let destination = MigrationRegion(configuration: config, identity: "fuse-engine-destination", extents: benchExtents)
        try destination.setState(StateBits.resuming)
        try source.setState(StateBits.preCopy)
        let start = monotonicNanoseconds()
        let pass = try source.readPass(threshold: 0) { try destination.applyChunk($0) }
        let ns = Double(monotonicNanoseconds() - start)
        run.gbPerSecond = Double(pass.bytes) / ns
        run.allNsPerChunk = ns / Double(max(1, pass.chunks))
        return run
    }

    func report(_ f: FUSEFigures) {
        let l = { (s: String) in self.out.line(s) }
        l("")
        l("== FUSE benchmark (\(f.repeats) paired repeats; median, with min..max)")
        l("  machine: \(f.machine.cpus) CPUs, \(f.machine.cpuModel), kernel \(f.machine.kernel), load average \(f.machine.loadAverage)")
        l("  " + pad("", 48) + pad("bare C", 22) + pad("mdevsim", 22) + pad("mdevsim/bare", 14) + "goal")
        func row(_ name: String, _ p: FUSEFigures.Pair?, _ unit: String, _ fmt: String = "%.2f") {
            guard let p else { return }
            let cell = { (s: Spread) in String(format: "\(fmt) (\(fmt)..\(fmt))", s.median, s.min, s.max) }
            l("  " + pad("\(name) [\(unit)]", 48) + pad(cell(p.bare), 22) + pad(cell(p.mdevsim), 22)
              + pad(String(format: "%.3fx", p.ratio.median), 14) + p.goal + (p.met ? "  MET" : "  NOT MET"))
        }
        row("header: 8-byte pread at offset 8", f.headerLatencyMicroseconds, "us/access")
        if let s = f.strictHeaderLatencyMicroseconds, let r = f.strictToNonStrictRatio {
            l("  " + pad("  same, mdevsim with strict on [us/access]", 48) + pad("", 22)
              + pad(String(format: "%.2f (%.2f..%.2f)", s.median, s.min, s.max), 22)
              + String(format: "strict/non-strict %.3fx", r.median))
        }
        if let s = f.swiftClientBareHeaderMicroseconds {
            l("  " + pad("  same, bare, timed by a Swift client [us]", 48) + pad(String(format: "%.2f (%.2f..%.2f)", s.median, s.min, s.max), 22)
              + "(the check of the C client's baseline)")
        }
        if let e = f.engineHeaderNanoseconds, let share = f.engineHeaderShareOfFUSELatency {
            l("  " + pad("  engine's header read alone, checker included", 48) + pad("", 22) + pad(String(format: "%.0f ns", e.median), 22)
              + String(format: "%.2f%% of the FUSE header latency (checker goal < 5%%)", share.median * 100))
        }
        row("~1 MiB pread (data_size) at 4096", f.preadGbPerSecond, "GB/s")
        row("save+resume of 1 MiB chunks via mmap", f.saveResumeGbPerSecond, "GB/s")
        row("pre-copy pass saved by 1 MiB preads", f.preadSaveGbPerSecond, "GB/s")
        row("pre-copy pass resumed by 1 MiB pwrites", f.pwriteResumeGbPerSecond, "GB/s")
        if let m = f.memcpyGbPerSecond, let b = f.bareToMemcpy, let d = f.mdevsimToMemcpy {
            l("  " + pad("  ratio to memcpy of the same 1 MiB pieces", 48) + pad(String(format: "%.4fx", b.median), 22)
              + pad(String(format: "%.4fx", d.median), 22) + String(format: "memcpy %.1f GB/s", m.median))
        }
        if let e = f.engineAloneGbPerSecond, let s = f.engineSaveMicrosecondsPerChunk, let a = f.engineSaveApplyMicrosecondsPerChunk {
            l("  " + pad("  mdevsim engine alone, same pass, no FUSE", 48) + pad("", 22) + pad(String(format: "%.2f GB/s", e.median), 22)
              + String(format: "per chunk: save %.0f us, save+copy+apply %.0f us", s.median, a.median))
        }
        if let g = f.stageAheadGain {
            let cell = { (s: Spread) in String(format: "%.2f (%.2f..%.2f)", s.median, s.min, s.max) }
            l("  mdevsim without staging ahead (--no-stage-ahead) [GB/s], and with / without:")
            for (name, off, ratio) in [("mapped save+resume", g.mappedSaveResumeOff, g.mappedSaveResumeRatio),
                                       ("pre-copy save by pread", g.preadSaveOff, g.preadSaveRatio),
                                       ("pre-copy resume by pwrite", g.pwriteResumeOff, g.pwriteResumeRatio)] {
                l("    " + pad(name, 44) + pad("", 22) + pad(cell(off), 22) + String(format: "%.3fx", ratio.median))
            }
            l("    chunks built ahead and taken: \(g.figures.taken) (finished by the data_offset read: \(g.figures.finishedAtStaging)), dropped: \(g.figures.dropped)")
        }
        for (name, copies) in [("mapped", f.mappedCopies), ("pread/pwrite", f.preadCopies)] {
            if let copies { l("  copies of each migrated byte, \(name): " + copies.description) }
        }
        if let b = f.bareSteps, let m = f.mdevsimSteps {
            l("  save+resume per chunk [us]: " + pad("", 16) + pad("bare C", 22) + "mdevsim")
            for (name, key) in TransferTiming.steps {
                l("    " + pad(name, 56) + pad(String(format: "%.1f", b.microsecondsPerChunk(key(b))), 22)
                  + String(format: "%.1f", m.microsecondsPerChunk(key(m))))
            }
            l("    " + pad("client page faults per chunk", 56) + pad(String(format: "%.2f", Double(b.clientFaults) / Double(max(1, b.chunks))), 22)
              + String(format: "%.2f", Double(m.clientFaults) / Double(max(1, m.chunks))))
            if let bf = b.daemonFaults, let mf = m.daemonFaults {
                l("    " + pad("daemon page faults per chunk", 56) + pad(String(format: "%.1f", Double(bf) / Double(max(1, b.chunks))), 22)
                  + String(format: "%.1f", Double(mf) / Double(max(1, m.chunks))))
            }
            l(String(format: "    chunk size: bare %.0f bytes, mdevsim %.0f bytes (stream records of 4 KiB pages)",
                     Double(b.bytes) / Double(max(1, b.chunks)), Double(m.bytes) / Double(max(1, m.chunks))))
        }
        l("  mdevsim save+resume runs with equal source/destination digests: \(f.digestsMatched)/\(2 * f.repeats); "
          + "checker violations on the header/read devices: \(f.violations.isEmpty ? "none" : "\(f.violations.count)")")
        for v in f.violations.prefix(5) { l("    \(v)") }
        for c in [f.concurrency, f.concurrencyRaisedBDI].compactMap({ $0 }) {
            let limit = c.bdiMaxRatio.map { "backing devices at max_ratio \($0)%" } ?? "the kernel's FUSE dirty limit (max_ratio 1%)"
            l("  concurrent pairs through one mdevsim mount (one C client per pair, \(c.repeats) repeats, \(limit)), aggregate GB/s; ratio to the smallest N (\(c.goal)):")
            for x in c.figures {
                let r = { (s: Spread?) in s.map { String(format: ", %.3fx", $0.median) } ?? "" }
                let g = { (s: Spread) in String(format: "%.2f (%.2f..%.2f)", s.median, s.min, s.max) }
                l("    " + pad("\(x.pairs) pairs x \(ByteSize.format(x.bytesPerPair))", 30)
                  + pad("mapped " + g(x.mappedGbPerSecond) + r(x.mappedRatioToSmallest)
                        + String(format: ", %.0f%% idle", x.mappedIdlePercent.median), 52)
                  + "pread/pwrite " + g(x.preadGbPerSecond) + r(x.preadRatioToSmallest)
                  + String(format: ", %.0f%% idle", x.preadIdlePercent.median))
                if let m = x.mappedDaemonCPUSecondsPerGB, let p = x.preadDaemonCPUSecondsPerGB {
                    l("    " + pad("", 30) + pad(String(format: "  daemon %.2f CPU s/GB", m.median), 52) + String(format: "  daemon %.2f CPU s/GB", p.median))
                }
                if let m = x.mappedCopies, let p = x.preadCopies {
                    l("    " + pad("  copies per migrated byte", 30) + pad("mapped " + m.description, 52) + "pread/pwrite " + p.description)
                }
                if let m = x.bareMappedGbPerSecond, let p = x.barePreadGbPerSecond {
                    l("    " + pad("  the bare C daemon", 30) + pad("mapped " + g(m) + r(x.bareMappedRatioToSmallest), 52)
                      + "pread/pwrite " + g(p) + r(x.barePreadRatioToSmallest))
                }
            }
            l("    pairs with equal digests: \(c.digestsMatched)/\(c.pairsRun)")
        }
        if let x = f.largeSparse {
            l(String(format: "  large-sparse (16 GiB of zero pages, 2 MiB pages), as `mdevsim run` runs it: %.1f s through FUSE, %.1f s in process (goal < %.0f s in the default run: %@)%@",
                     x.fuseSeconds, x.inProcessSeconds, x.goalSeconds, x.met ? "MET" : "not met",
                     x.skippedByDefault ? "; the default --max-memory skips it" : ""))
        }
        if let b = f.bigDevice {
            l(String(format: "  big device: %@ (random, dirtying a hot set) through one mount by pread/pwrite: %@ moved (%@ in stop-and-copy) in %.1f s, %.2f GB/s; "
                     + "daemon peak RSS %@ for both sides (%@ with both devices created; goal < %@ per side: %@); digests %@ (read in %.1f s, both at once)",
                     ByteSize.format(b.deviceBytes), ByteSize.format(b.bytesMoved), ByteSize.format(b.stopAndCopyBytes), b.seconds, b.gbPerSecond,
                     ByteSize.format(b.daemonPeakRSSBytes), ByteSize.format(b.daemonRSSBeforeBytes), ByteSize.format(b.goalBytesPerSide),
                     b.met ? "MET" : "NOT MET", b.digestsMatch ? "equal" : "DIFFER", b.digestSeconds))
        }
        if let m = f.inProcessMigration {
            l(String(format: "  in-process migration of %@ (no FUSE): %.2f GB/s, memcpy of the same bytes %.2f GB/s, ratio %.3fx (goal >= %.1fx: %@), digests %@",
                     ByteSize.format(m.deviceBytes), m.migrationGbPerSecond, m.memcpyGbPerSecond, m.ratioToMemcpy, m.goalRatio,
                     m.met ? "MET" : "NOT MET", m.digestsMatch ? "equal" : "DIFFER"))
        }
    }
}

/// The C client's file slots.
enum Slot {
    static let bareHeader = 0
    static let bareSource = 1
    static let bareDestination = 2
    static let bareReadSource = 3
    static let bareWriteDestination = 4
    static let mdevHeader = 5
    static let mdevReader = 6
    static let strictHeader = 7
    static let passSource = 8
    static let passDestination = 9
}

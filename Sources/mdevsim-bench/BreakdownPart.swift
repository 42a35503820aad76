// Part 3: where a migration's time goes, from micro-benchmarks of the engine's public API.
import DeviceSimulator
import Foundation
import MdevFS

struct Stage: Codable, Sendable {
    var name: String
    var what: String
    var bytes: UInt64
    var seconds: Double
    var gbPerSecond: Double
    /// Seconds per GiB of device memory, the unit the model adds up.
    var secondsPerGiB: Double
    var minorFaults: UInt64?
}

struct BreakdownFigures: Codable, Sendable {
    var deviceBytes: UInt64
    var largeDeviceBytes: UInt64
    var stages: [Stage]
    /// Save pass + resume replay - one client copy (both include it): the migration the parts predict.
    var predictedSecondsPerGiB: Double
    /// Extra cost of one staged chunk on the large device over the small one, in microseconds.
    var largeDeviceExtraMicrosecondsPerChunk: Double
    /// Bytes of one dirty bitmap of the large device (one bit per page).
    var largeDeviceBitmapBytes: UInt64
}

struct BreakdownPart {
    let size: UInt64
    let largeSize: UInt64
    let chunk: UInt64
    let out: Printer

    func run() throws -> BreakdownFigures {
        out.line()
        out.line("== 3. Breakdown: micro-benchmarks on a \(ByteSize.format(size)) device (\(ByteSize.format(chunk)) chunks)")
        let config = benchConfiguration(memory: size, chunk: chunk)
        try config.validate()
        var stages: [Stage] = []
        func add(_ name: String, _ what: String, bytes: UInt64, seconds s: Double, faults: UInt64? = nil) {
            let stage = Stage(name: name, what: what, bytes: bytes, seconds: s, gbPerSecond: gbps(bytes, s),
                              secondsPerGiB: s / (Double(bytes) / Double(1 << 30)), minorFaults: faults)
            stages.append(stage)
            out.line("  " + pad(name, 30) + String(format: " %7.2f GB/s  %6.3f s/GiB", stage.gbPerSecond, stage.secondsPerGiB)
                     + (faults.map { "  \($0) minor faults" } ?? "") + "  " + what)
        }
        let ring = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(chunk), alignment: 4096)
        defer { ring.deallocate() }
        let other = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(chunk), alignment: 4096)
        defer { other.deallocate() }
        guard let ringBase = ring.baseAddress, let otherBase = other.baseAddress else { throw BenchError("empty scratch buffer") }
        let pieces = Int(size / chunk)

        // 1. Page generation: what the source does for every untouched page it stages.
        out.progress("breakdown: page generation")
        let device = SimulatedDevice(configuration: config, identity: "bench-generate")
        let pageSize = Int(config.pageSize)
        let perRing = max(1, Int(chunk) / pageSize)
        let generate = timed {
            for p in 0..<config.pageCount { device.readPage(p, into: ringBase + Int(p % UInt64(perRing)) * pageSize) }
        }
        add("page generation", "SimulatedDevice.readPage of every page (untouched: generated from the seed)", bytes: size, seconds: generate)

        // 2. The stream checksum: computed by the source when sealing every record, again by the destination.
        out.progress("breakdown: stream checksum")
        var sink: UInt64 = 0
        let checksum = timed {
            for _ in 0..<pieces { sink ^= StreamChecksum.of(UnsafeRawBufferPointer(ring)) }
        }
        add("stream checksum (x1)", "StreamChecksum over 1 MiB, cache-resident; the stream pays it twice, each time in the pass that stages or compares the page", bytes: size, seconds: checksum)

        // 3. The client's copy of each chunk, source data section -> destination data section.
        out.progress("breakdown: client copy")
        let copy = timed {
            for _ in 0..<pieces { memcpy(otherBase, ringBase, Int(chunk)); sink ^= otherBase.load(as: UInt64.self) }
        }
        add("client chunk copy", "memcpy of one chunk between two cache-resident data sections", bytes: size, seconds: copy)

        // 4. The source alone: a pre-copy pass of the whole device, each chunk copied out by the client.
        out.progress("breakdown: save pass of \(ByteSize.format(size))")
        let source = MigrationRegion(configuration: config, identity: "bench-save", extents: benchExtents)
        try source.setState(StateBits.preCopy)
        var small = MigrationRegion.Pass()
        let save = try timed {
            small = try source.readPass(threshold: 0) { bytes in
                if let b = bytes.baseAddress { memcpy(otherBase, b, bytes.count) }
            }
        }
        add("save pass (source only)", "pre-copy pass over region accesses: staging (generation, records, checksums) + client copy",
            bytes: pageBytes(streamBytes: small.bytes, chunks: small.chunks, config), seconds: save)

        // 5. The same bytes from a much larger device: per-chunk work that grows with device size.
        out.progress("breakdown: first \(ByteSize.format(size)) of a save pass of a \(ByteSize.format(largeSize)) device")
        let largeConfig = benchConfiguration(memory: largeSize, chunk: chunk)
        try largeConfig.validate()
        let large = MigrationRegion(configuration: largeConfig, identity: "bench-save-large", extents: benchExtents)
        try large.setState(StateBits.preCopy)
        var big = MigrationRegion.Pass()
        let saveLarge = try timed {
            big = try large.readPass(threshold: 0, limit: small.bytes) { bytes in
                if let b = bytes.baseAddress { memcpy(otherBase, b, bytes.count) }
            }
        }
        add("save pass, \(ByteSize.format(largeSize)) device", "the same pass reading the first \(ByteSize.format(size)) of the larger device",
            bytes: pageBytes(streamBytes: big.bytes, chunks: big.chunks, largeConfig), seconds: saveLarge)
        let extraPerChunk = (saveLarge / Double(max(1, big.chunks)) - save / Double(max(1, small.chunks))) * 1e6

        // 6. The destination alone: a recorded stream replayed into a fresh device.
        out.progress("breakdown: recording the stream of a \(ByteSize.format(size)) device")
        let recorder = MigrationRegion(configuration: config, identity: "bench-record", extents: benchExtents)
        let stream = try RecordedStream.record(recorder)
        for attempt in 1...2 {
            out.progress("breakdown: resume replay \(attempt)/2 into a fresh \(ByteSize.format(size)) device")
            let destination = MigrationRegion(configuration: config, identity: "bench-resume-\(attempt)", extents: benchExtents)
            try destination.setState(StateBits.resuming)
            let faults0 = ProcessFigures.minorFaults
            let resume = try timed {
                for range in stream.chunks {
                    try destination.applyChunk(UnsafeRawBufferPointer(rebasing: stream.storage[range]))
                }
            }
            let faults = ProcessFigures.minorFaults - faults0
            try destination.setState(StateBits.running)
            // An untouched source's pages are its power-on pages: the destination keeps them all as references.
            let d = destination.device
            guard d.materializedPages + d.referencedPages == config.pageCount else {
                throw BenchError("resume replay holds \(d.materializedPages) stored and \(d.referencedPages) referenced of \(config.pageCount) pages")
            }
            add("resume replay #\(attempt)", "recorded chunks into a fresh destination: client copy + decode, verify checksums, compare each page with the source's power-on page (kept as a reference)",
                bytes: size, seconds: resume, faults: faults)
        }

        // 7. The floor of storing the destination's memory: memcpy into fresh pages.
        out.progress("breakdown: first-touch memcpy of \(ByteSize.format(size))")
        let fresh = try FreshMemory(count: Int(size))
        let faults0 = ProcessFigures.minorFaults
        let firstTouch = timed {
            for i in 0..<pieces { memcpy(fresh.base + i * Int(chunk), ringBase, Int(chunk)) }
        }
        let firstTouchFaults = ProcessFigures.minorFaults - faults0
        fresh.release()
        add("first-touch store", "memcpy of 1 MiB pieces into never-touched memory (page faults included)",
            bytes: size, seconds: firstTouch, faults: firstTouchFaults)

        // 8. The same with transparent huge pages asked for (madvise), as an extent allocator could:
        // one fault per 2 MiB instead of one per 4 KiB page.
        out.progress("breakdown: first-touch memcpy of \(ByteSize.format(size)) with MADV_HUGEPAGE")
        let huge = try FreshMemory(count: Int(size))
        let advised = huge.adviseHugePages()
        let hugeFaults0 = ProcessFigures.minorFaults
        let hugeTouch = timed {
            for i in 0..<pieces { memcpy(huge.base + i * Int(chunk), ringBase, Int(chunk)) }
        }
        let hugeFaults = ProcessFigures.minorFaults - hugeFaults0
        huge.release()
        add("first-touch store, THP", "the same into memory advised MADV_HUGEPAGE" + (advised ? "" : " (madvise failed: no THP here)"),
            bytes: size, seconds: hugeTouch, faults: hugeFaults)
        if sink == 42 { out.progress("") } // keeps the checksum and copy loops from being optimized away

        let perGiB = { (name: String) in stages.first { $0.name == name }?.secondsPerGiB ?? 0 }
        let resumeBest = stages.filter { $0.name.hasPrefix("resume replay") }.map(\.secondsPerGiB).min() ?? 0
        let predicted = perGiB("save pass (source only)") + resumeBest - perGiB("client chunk copy")
        let bitmapBytes = largeConfig.pageCount / 8
        let figures = BreakdownFigures(deviceBytes: size, largeDeviceBytes: largeSize, stages: stages,
                                       predictedSecondsPerGiB: predicted,
                                       largeDeviceExtraMicrosecondsPerChunk: extraPerChunk, largeDeviceBitmapBytes: bitmapBytes)
        out.line(String(format: "  model: save pass + best resume replay - one client copy = %.3f s/GiB (%.2f GB/s)",
                        predicted, predicted > 0 ? Double(1 << 30) / predicted / 1e9 : 0))
        // Each alone: the save stages and sums a page in one pass, the resume compares and sums
        // it in one, so generation and checksums overlap in the model (their sum is an upper
        // bound). First-touch stores are not in it: a destination of an untouched source keeps
        // references and stores nothing.
        let parts: [(String, Double)] = [
            ("page generation", perGiB("page generation")),
            ("stream checksum x2", 2 * perGiB("stream checksum (x1)")),
            ("client chunk copy", perGiB("client chunk copy")),
        ]
        let accounted = parts.map(\.1).reduce(0, +)
        for (name, s) in parts {
            out.line("    " + pad(name, 20) + String(format: " %6.3f s/GiB  %5.1f%% of the model", s, predicted > 0 ? s / predicted * 100 : 0))
        }
        out.line("    " + pad("the rest", 20) + String(format: " %6.3f s/GiB  %5.1f%% of the model", predicted - accounted,
                                                        predicted > 0 ? (predicted - accounted) / predicted * 100 : 0)
                 + " (record headers, bitmaps, region accesses, page-by-page bookkeeping; negative: the fused passes overlap)")
        out.line(String(format: "  large device: %+.1f us per staged chunk", extraPerChunk)
                 + " over the \(ByteSize.format(size)) device; one dirty bitmap of the \(ByteSize.format(largeSize)) device is \(ByteSize.format(bitmapBytes))")
        return figures
    }
}

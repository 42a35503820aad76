@testable import DeviceSimulator
import EngineFixtures
import MigrationProtocol
import SystemPackage
import Testing

/// Staging ahead (`StageAhead.swift`) is speed only: a migration whose source builds each next
/// chunk while the client copies the staged one answers every access exactly as one that stages
/// at `data_offset`, section bytes past the chunk included. Each test runs the same migration
/// both ways, with a pread client as QEMU 5.2-7.2's, and compares everything the client saw.
@Suite struct StageAheadTests {
    /// When the client lets the source build ahead.
    enum Ahead {
        case off
        /// Built whole between the `data_offset` read and the chunk's first read.
        case whole
        /// One page at a time, between the client's reads: the `data_offset` read finishes it.
        case interleaved
    }

    struct Run: Equatable {
        var transcript: [String] = []
        /// The whole data section after each `data_offset` read, and each chunk as read.
        var sections: [[UInt8]] = []
        var chunks: [[UInt8]] = []
        var sourceDigest = ""
        var destinationDigest = ""
        var violations: [String] = []
    }

    func migrate(_ configuration: DeviceConfiguration, ahead: Ahead, precopyPasses: Int = 3) -> (Run, StageAheadFigures) {
        let (source, destination) = devicePair(configuration)
        // A pread client: the engine sees every data access.
        source.dataSectionMapping = .none
        destination.dataSectionMapping = .none
        if ahead != .off { #expect(source.enableStagingAhead()) }
        var run = Run()
        func step(_ pages: Int) {
            guard ahead == .interleaved else { return }
            _ = source.stageAhead(pages: pages)
        }
        func note(_ what: String, _ value: Result<UInt64, Errno>) {
            switch value {
            case .success(let v): run.transcript.append("\(what)=\(v)")
            case .failure(let e): run.transcript.append("\(what) failed \(e.rawValue)")
            }
        }
        func iterate(maxChunks: Int) {
            for _ in 0..<maxChunks {
                step(1)
                let pending = source.read(.pendingBytes)
                note("pending", pending)
                guard case .success(let p) = pending, p > 0 else { return }
                step(1)
                let offset = source.read(.dataOffset)
                note("offset", offset)
                run.sections.append(Array(source.dataSection))
                if ahead == .whole { while source.stageAhead(pages: 7) {} }
                step(1)
                let size = source.read(.dataSize)
                note("size", size)
                guard case .success(let o) = offset, case .success(let s) = size, s > 0, s <= UInt64(source.dataSection.count) else { continue }
                // Read in two pieces, building ahead between them.
                var chunk = [UInt8](repeating: 0, count: Int(s))
                let half = Int(s) / 2
                chunk.withUnsafeMutableBytes { buffer in
                    for piece in [0..<half, half..<Int(s)] where !piece.isEmpty {
                        let result = source.read(at: o + UInt64(piece.lowerBound), into: UnsafeMutableRawBufferPointer(rebasing: buffer[piece]))
                        run.transcript.append("read \(piece) -> \(String(describing: result.outcome))")
                        step(2)
                    }
                }
                run.chunks.append(chunk)
                note("destination offset", destination.read(.dataOffset))
                _ = chunk.withUnsafeBytes { destination.write(at: RegionLayout.dataSectionOffset, from: $0) }
                run.transcript.append("destination data_size: \(String(describing: destination.write(.dataSize, s)))")
            }
        }
        _ = destination.set(DeviceState.resuming.bits)
        _ = source.set(DeviceState.preCopy.bits)
        for _ in 0..<precopyPasses { iterate(maxChunks: 4) }
        run.transcript.append("stop: \(String(describing: source.set(DeviceState.stopAndCopy.bits)))")
        iterate(maxChunks: 10_000)
        _ = source.set(DeviceState.stop.bits)
        run.sourceDigest = source.device.digest()
        run.transcript.append("resume end: \(String(describing: destination.set(DeviceState.running.bits)))")
        run.destinationDigest = destination.device.digest()
        run.violations = source.violations.map { "\($0.rule.rawValue): \($0.explanation)" } + destination.violations.map { "\($0.rule.rawValue): \($0.explanation)" }
        return (run, source.stagedAhead)
    }

    func expectSame(_ configuration: DeviceConfiguration, sourceComment: Comment) -> [Ahead: StageAheadFigures] {
        let (plain, none) = migrate(configuration, ahead: .off)
        #expect(none.taken == 0 && none.dropped == 0)
        var figures: [Ahead: StageAheadFigures] = [:]
        for ahead in [Ahead.whole, .interleaved] {
            let (run, f) = migrate(configuration, ahead: ahead)
            figures[ahead] = f
            #expect(run.transcript == plain.transcript, "\(ahead): \(sourceComment)")
            #expect(run.sections == plain.sections, "\(ahead): data section after each data_offset read")
            #expect(run.chunks == plain.chunks, "\(ahead): chunk bytes")
            #expect(run.sourceDigest == plain.sourceDigest && run.destinationDigest == plain.destinationDigest)
            #expect(run.violations == plain.violations)
        }
        return figures
    }

    @Test func aStoppedOrQuietDeviceTakesEveryChunkBuiltAhead() {
        let figures = expectSame(smallConfiguration(), sourceComment: "pre-copy and stop-and-copy, no dirtying")
        let whole = figures[.whole] ?? StageAheadFigures()
        // One chunk is dropped: the pre-copy chunk built ahead when the client stopped the device.
        #expect(whole.taken > 30 && whole.dropped == 1 && whole.finishedAtStaging == 0)
        let interleaved = figures[.interleaved] ?? StageAheadFigures()
        // A page or two per step: the data_offset read finishes what the steps left.
        #expect(interleaved.taken > 30 && interleaved.dropped == 1 && interleaved.finishedAtStaging > 0)
    }

    @Test func aDirtyingDeviceBuildsAheadOnceStopped() {
        let figures = expectSame(smallConfiguration(memory: 1 << 20, dirtyRate: 64 << 20), sourceComment: "pre-copy dirtying pages")
        let whole = figures[.whole] ?? StageAheadFigures()
        // Running, it would dirty pages before the next data_offset read: nothing is built.
        #expect(whole.dropped == 0)
        #expect(whole.taken > 0, "stop-and-copy: the stopped device dirties nothing")
    }

    /// A chunk built ahead from memory that changed before it was staged is dropped, and the
    /// chunk staged holds the memory as it is then.
    @Test func aChunkBuiltFromMemoryThatChangedIsDropped() throws {
        func region(ahead: Bool) -> MigrationRegion {
            let r = MigrationRegion(configuration: smallConfiguration(), identity: "s")
            r.dataSectionMapping = .none
            if ahead { #expect(r.enableStagingAhead()) }
            _ = r.set(DeviceState.stopAndCopy.bits)
            _ = r.value(.pendingBytes)
            _ = r.value(.dataOffset)
            if ahead { while r.stageAhead(pages: 4) {} }
            return r
        }
        let (plain, ahead) = (region(ahead: false), region(ahead: true))
        // The first page the next chunk carries, rewritten (as a resume or DMA would) meanwhile.
        let page = try #require(plain.saveSession?.dirty.firstSet(from: 0))
        let bytes = [UInt8](repeating: 0xA5, count: 4096)
        for r in [plain, ahead] {
            bytes.withUnsafeBytes { if let base = $0.baseAddress { #expect(r.device.writePage(page, from: base)) } }
            _ = r.value(.pendingBytes)
            _ = r.value(.dataOffset)
        }
        #expect(ahead.stagedAhead.dropped == 1 && ahead.stagedAhead.taken == 0)
        #expect(Array(ahead.dataSection) == Array(plain.dataSection))
        #expect(Array(ahead.dataSection).firstRange(of: bytes) != nil, "the rewritten page is in the chunk")
    }

    @Test func bytesPastAShortChunkAreTheSectionsOwn() {
        // A section of four chunks and a config that ends the stream in a short chunk: past each
        // chunk the section holds what earlier chunks left there, in either buffer.
        let configuration = smallConfiguration(memory: 256 << 10, chunk: 16 << 10, section: 64 << 10, configSize: 10_000)
        let figures = expectSame(configuration, sourceComment: "short chunks in a larger section")
        #expect((figures[.whole]?.taken ?? 0) > 0)
    }

    @Test func faultsActOnTheChunkStagedEitherWay() {
        let faults = [
            Fault(name: "corrupt", trigger: .chunk(phase: .stopAndCopy, index: 3), action: .corruptChunk(offset: 100, count: 8), role: .source),
            Fault(name: "short", trigger: .chunk(phase: .preCopy, index: 2), action: .shortRead(bytes: 1000), role: .source),
            Fault(name: "fail", trigger: .chunk(phase: .stopAndCopy, index: 5), action: .fail(.ioError), role: .source),
        ]
        _ = expectSame(smallConfiguration(faults: faults), sourceComment: "corrupted, short and failed chunks")
    }

    @Test func nothingIsBuiltAheadForAnInProcessSectionUser() {
        let region = MigrationRegion(configuration: smallConfiguration(), identity: "s")
        #expect(region.enableStagingAhead())
        _ = region.set(DeviceState.stopAndCopy.bits)
        _ = region.value(.pendingBytes)
        _ = region.value(.dataOffset)
        // `.direct` (the default): the user may store into the section unseen.
        #expect(region.stageAhead(pages: 100) == false)
        region.dataSectionMapping = .none
        #expect(region.stageAhead(pages: 1))
    }
}

import Conformance
import DeviceSimulator
import Foundation
import Glibc
import MdevFS
import MigrationProtocol
import SystemPackage
import Testing
import TestSupport

/// Migrations through the kernel: the region files as a VMM uses them.
@Suite struct MountMigrationTests {
    func migrateThroughMount(_ fixture: MountFixture, options: ClientOptions, map: Bool) throws -> (MigrationReport, String, String) {
        let source = try fixture.create()
        let destination = try fixture.create()
        #expect(fixture.read("devices/\(source.split(separator: "/").last ?? "")/digest") != fixture.read("devices/\(destination.split(separator: "/").last ?? "")/digest"))
        let s = try FileTransport(directory: source, name: "source", map: map)
        let d = try FileTransport(directory: destination, name: "destination", map: map)
        let report = ReferenceClient(options: options).migrate(from: s, to: d)
        return (report, source, destination)
    }

    @Test(arguments: [("pread", ClientOptions.DataAccess.pieces(1 << 20), false), ("mmap", .mapped, true), ("pread8", .pieces(8), false)])
    func migratesWithEqualDigests(_ name: String, _ access: ClientOptions.DataAccess, _ map: Bool) throws {
        // 8-byte pieces cost one FUSE round trip each: keep that device small.
        let fixture = try MountFixture(smallScenario(memory: name == "pread8" ? 128 << 10 : 2 << 20))
        defer { fixture.close() }
        if map { #expect(fixture.mount.filesystem.mmapAvailable, "FUSE_DIRECT_IO_ALLOW_MMAP should be negotiated on this kernel") }
        let (report, source, destination) = try migrateThroughMount(fixture, options: ClientOptions(precopyThreshold: 256 << 10, dataAccess: access), map: map)
        #expect(report.succeeded, "\(name): \(report.failure.map { "\($0)" } ?? "")")
        let sourceDigest = try String(contentsOfFile: "\(source)/digest", encoding: .utf8)
        let destinationDigest = try String(contentsOfFile: "\(destination)/digest", encoding: .utf8)
        #expect(sourceDigest == destinationDigest)
        #expect(sourceDigest.count == 65)
        for device in [source, destination] {
            let violations = try String(contentsOfFile: "\(device)/violations", encoding: .utf8)
            #expect(violations.isEmpty, "\(name): \(violations)")
        }
        // The copies each side counted (`CopyTally`), against the bytes the client moved.
        let (from, to) = (try stateCounts(source, "copies"), try stateCounts(destination, "copies"))
        let staged = from["staged"] ?? 0
        #expect(staged > 0, "\(name): \(from) \(to)")
        if map {
            // Whole pages, and a retrieve's pieces and writebacks may carry a page twice.
            #expect(from["page_cache_store", default: 0] >= staged, "each chunk pushed into the page cache (or faulted in)")
            #expect(to["mapping_into_section", default: 0] >= staged, "every staged byte reached the destination's section")
            #expect(from["reply_from_section"] == 0 && to["write_into_daemon"] == 0 && to["pwrite_into_section"] == 0)
            #expect(to["page_cache_into_daemon", default: 0] >= to["mapping_into_section", default: 0])
            // The first chunk's stores fault the section in; the second pre-fills it; no more.
            #expect(to["page_cache_store", default: 0] <= 2 * (256 << 10), "the destination's section is pre-filled once, not at every chunk")
        } else {
            #expect(from["reply_from_section"] == staged, "each staged byte read once")
            #expect(to["write_into_daemon"] == staged && to["pwrite_into_section"] == staged)
            #expect(from["page_cache_store"] == 0 && to["page_cache_into_daemon"] == 0)
        }
        // The destination stores only what is not its source's power-on page: here the pages
        // the running source rewrote.
        #expect(to["into_memory", default: 0] <= staged)
    }

    /// A source that dirties nothing takes every chunk it built ahead while the client copied
    /// the staged one (`StageAhead.swift`), through the pread path and the mapping alike, and the
    /// migration is the same: equal digests, each staged byte moved once.
    @Test(arguments: [("pread", ClientOptions.DataAccess.pieces(1 << 20), false), ("mmap", .mapped, true)])
    func chunksBuiltAheadAreTakenWhenNothingChanged(_ name: String, _ access: ClientOptions.DataAccess, _ map: Bool) throws {
        var scenario = smallScenario(memory: 4 << 20)
        scenario.types[0].configuration.dirtyRate = 0
        let fixture = try MountFixture(scenario)
        defer { fixture.close() }
        let (report, source, destination) = try migrateThroughMount(fixture, options: ClientOptions(precopyThreshold: 256 << 10, dataAccess: access), map: map)
        #expect(report.succeeded, "\(name): \(report.failure.map { "\($0)" } ?? "")")
        #expect(try String(contentsOfFile: "\(source)/digest", encoding: .utf8) == String(contentsOfFile: "\(destination)/digest", encoding: .utf8))
        let ahead = try stateCounts(source, "staged_ahead")
        let chunks = report.chunks.precopy + report.chunks.stopAndCopy
        // Every chunk but the first of each phase can be built ahead, unless the client asks for
        // it before the daemon's thread has begun (a loaded machine); the pre-copy chunk built
        // ahead when the client stops the device is dropped.
        #expect(ahead["taken", default: 0] * 2 >= UInt64(chunks) && ahead["dropped", default: 0] <= 1, "\(name): \(ahead), \(chunks) chunks")
        let copies = try stateCounts(source, "copies")
        if !map { #expect(copies["reply_from_section"] == copies["staged"], "\(name): \(copies)") }
    }

    /// Mapped data sections of several MiB leave many dirty pages to write back when the client
    /// unmaps; with the mount served by this same process that once deadlocked (munmap holds the
    /// mmap lock the daemon's threads need) and FileTransport now msyncs first. Several rounds,
    /// as the hang came one run in a dozen.
    @Test func largeMappedSectionsMigrate() throws {
        let fixture = try MountFixture(smallScenario(memory: 24 << 20, section: 8 << 20))
        defer { fixture.close() }
        for round in 0..<3 {
            let (report, source, destination) = try migrateThroughMount(fixture, options: ClientOptions(precopyThreshold: 8 << 20, dataAccess: .mapped), map: true)
            #expect(report.succeeded, "round \(round): \(report.failure.map { "\($0)" } ?? "")")
            #expect(try String(contentsOfFile: "\(source)/digest", encoding: .utf8) == String(contentsOfFile: "\(destination)/digest", encoding: .utf8))
            #expect(try String(contentsOfFile: "\(destination)/violations", encoding: .utf8).isEmpty)
        }
    }

    /// How a hand-written client writes one resume chunk.
    enum Way: String, Sendable {
        case pwrite, mapping
        /// The first half with pwrite, the rest through the mapping.
        case both
    }

    /// What `resumeByHand` saw.
    struct HandResume {
        var chunks = 0
        /// The errno of the first `data_size` write that failed, and its chunk.
        var failure: (chunk: Int, errno: Int32)?
        var source = "", destination = ""
    }

    /// A source in stop-and-copy moved to a destination chunk by chunk, chunk `i` written the
    /// way `way(i)` says, through a mapping of the destination's data section kept for the
    /// whole resume (so pages an earlier chunk dirtied stay in the page cache). Stops at the
    /// first refused `data_size` write; otherwise starts the destination.
    func resumeByHand(_ fixture: MountFixture, _ way: (Int) -> Way) throws -> HandResume {
        var seen = HandResume()
        seen.source = try fixture.create()
        seen.destination = try fixture.create()
        let src = open("\(seen.source)/migration", O_RDWR), dst = open("\(seen.destination)/migration", O_RDWR)
        #expect(src >= 0 && dst >= 0)
        defer { close(src); close(dst) }
        let section = 256 << 10
        guard let map = mmap(nil, section, PROT_READ | PROT_WRITE, MAP_SHARED, dst, 4096), map != MAP_FAILED else {
            Issue.record("mmap of the destination's data section failed: errno \(errno)")
            return seen
        }
        defer { msync(map, section, MS_SYNC); munmap(map, section) }
        func get(_ fd: Int32, _ offset: off_t) -> UInt64 {
            var v: UInt64 = 0
            #expect(pread(fd, &v, 8, offset) == 8)
            return v
        }
        func put(_ fd: Int32, _ offset: off_t, _ value: UInt64, width: Int = 8) -> Int32? {
            var v = value
            return pwrite(fd, &v, width, offset) == width ? nil : errno
        }
        #expect(put(dst, 0, 0b100, width: 4) == nil)
        #expect(put(src, 0, 0b010, width: 4) == nil)
        var buffer = [UInt8](repeating: 0, count: section)
        while get(src, 8) > 0, seen.chunks < 100 {
            let offset = get(src, 16), size = Int(get(src, 24))
            #expect(pread(src, &buffer, size, off_t(offset)) == size)
            let at = get(dst, 16)
            let way = way(seen.chunks)
            let pwritten = way == .pwrite ? size : way == .both ? size / 2 : 0
            if pwritten > 0 { #expect(pwrite(dst, buffer, pwritten, off_t(at)) == pwritten) }
            buffer.withUnsafeBytes { bytes in
                (map + Int(at - 4096) + pwritten).copyMemory(from: bytes.baseAddress! + pwritten, byteCount: size - pwritten)
            }
            if let e = put(dst, 24, UInt64(size)) {
                seen.failure = (seen.chunks, e)
                return seen
            }
            seen.chunks += 1
        }
        #expect(put(src, 0, 0, width: 4) == nil)
        #expect(put(dst, 0, 0b001, width: 4) == nil)
        return seen
    }

    func digest(_ device: String) throws -> String { try String(contentsOfFile: "\(device)/digest", encoding: .utf8) }
    func violations(_ device: String) throws -> [Substring] {
        try String(contentsOfFile: "\(device)/violations", encoding: .utf8).split(separator: "\n")
    }

    /// A client that writes each resume chunk half with pwrite and half through the mapping:
    /// both halves are applied (pwrites win only where both wrote), and the checker flags the mix.
    @Test func pwriteAndMappingMixedInOneChunkIsMergedAndFlagged() throws {
        let fixture = try MountFixture()
        defer { fixture.close() }
        let seen = try resumeByHand(fixture) { _ in .both }
        #expect(seen.failure == nil)
        #expect(seen.chunks > 1)
        #expect(try digest(seen.source) == digest(seen.destination))
        let violations = try violations(seen.destination)
        #expect(violations.count == seen.chunks, "\(violations)")
        #expect(violations.allSatisfy { $0.contains("mixed-data-access") }, "\(violations)")
    }

    /// The rule is per chunk: a client that writes every chunk one way only, changing the way
    /// between chunks, is never flagged, on a normal or a strict mount, although the pages the
    /// mapping dirtied in earlier chunks are still in the page cache (and written back later).
    @Test(arguments: [("map-then-pwrite", false), ("pwrite-then-map", false), ("alternating", false),
                      ("map-then-pwrite", true), ("pwrite-then-map", true), ("alternating", true)])
    func oneWayPerChunkIsNeverMixed(_ pattern: String, strict: Bool) throws {
        let fixture = try MountFixture(strict: strict)
        defer { fixture.close() }
        let seen = try resumeByHand(fixture) { chunk in
            switch pattern {
            case "map-then-pwrite": chunk == 0 ? .mapping : .pwrite
            case "pwrite-then-map": chunk == 0 ? .pwrite : .mapping
            default: chunk % 2 == 0 ? .mapping : .pwrite
            }
        }
        #expect(seen.failure == nil, "\(pattern): chunk \(seen.failure?.chunk ?? -1) refused with errno \(seen.failure?.errno ?? 0)")
        #expect(seen.chunks > 2)
        #expect(try digest(seen.source) == digest(seen.destination), "\(pattern)")
        let violations = try violations(seen.destination)
        #expect(violations.isEmpty, "\(pattern): \(violations)")
    }

    /// A strict mount refuses the first really mixed chunk, and records why.
    @Test func strictRefusesAReallyMixedChunk() throws {
        let fixture = try MountFixture(strict: true)
        defer { fixture.close() }
        let seen = try resumeByHand(fixture) { chunk in chunk == 1 ? .both : .pwrite }
        #expect(seen.failure?.chunk == 1)
        #expect(seen.failure?.errno == EINVAL)
        let violations = try violations(seen.destination)
        #expect(violations.count == 1, "\(violations)")
        #expect(violations.first?.contains("mixed-data-access") == true, "\(violations)")
    }

    @Test func destinationOfAnotherTypeRefusesTheStream() throws {
        let fixture = try MountFixture()
        defer { fixture.close() }
        let source = try fixture.create()
        let destination = try fixture.create(type: "mdevsim-test-small-section")
        _ = destination
        // Different types: the destination must refuse the stream at its first chunk.
        let s = try FileTransport(directory: source)
        let d = try FileTransport(directory: destination)
        let report = ReferenceClient().migrate(from: s, to: d)
        #expect(report.outcome == "failed")
        #expect(report.failure?.errno == "EINVAL")
        let state = try String(contentsOfFile: "\(destination)/state", encoding: .utf8)
        #expect(state.contains("incompatible stream"))
    }

    @Test func twoMigrationsRunConcurrently() async throws {
        let fixture = try MountFixture()
        defer { fixture.close() }
        let pairs = try (0..<2).map { _ in (try fixture.create(), try fixture.create()) }
        try await withThrowingTaskGroup(of: MigrationReport.self) { group in
            for (i, (source, destination)) in pairs.enumerated() {
                group.addTask {
                    let s = try FileTransport(directory: source, map: i == 0)
                    let d = try FileTransport(directory: destination, map: i == 0)
                    return ReferenceClient(options: ClientOptions(dataAccess: i == 0 ? .mapped : .pieces(4096))).migrate(from: s, to: d)
                }
            }
            for try await report in group { #expect(report.succeeded, "\(report.failure.map { "\($0)" } ?? "")") }
        }
    }
}

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

    /// A client that writes each resume chunk half with pwrite and half through the mapping:
    /// both halves are applied (pwrites win only where both wrote), and the checker flags the mix.
    @Test func pwriteAndMappingMixedInOneChunkIsMergedAndFlagged() throws {
        let fixture = try MountFixture()
        defer { fixture.close() }
        let source = try fixture.create(), destination = try fixture.create()
        let src = open("\(source)/migration", O_RDWR), dst = open("\(destination)/migration", O_RDWR)
        #expect(src >= 0 && dst >= 0)
        defer { close(src); close(dst) }
        let section = 256 << 10
        guard let map = mmap(nil, section, PROT_READ | PROT_WRITE, MAP_SHARED, dst, 4096), map != MAP_FAILED else {
            Issue.record("mmap of the destination's data section failed: errno \(errno)")
            return
        }
        defer { msync(map, section, MS_SYNC); munmap(map, section) }
        func get(_ fd: Int32, _ offset: off_t) -> UInt64 {
            var v: UInt64 = 0
            #expect(pread(fd, &v, 8, offset) == 8)
            return v
        }
        func put(_ fd: Int32, _ offset: off_t, _ value: UInt64, width: Int = 8) {
            var v = value
            #expect(pwrite(fd, &v, width, offset) == width)
        }
        put(dst, 0, 0b100, width: 4)
        put(src, 0, 0b010, width: 4)
        var buffer = [UInt8](repeating: 0, count: section)
        var chunks = 0
        while get(src, 8) > 0, chunks < 100 {
            let offset = get(src, 16), size = Int(get(src, 24))
            #expect(pread(src, &buffer, size, off_t(offset)) == size)
            let at = get(dst, 16)
            let half = size / 2
            #expect(pwrite(dst, buffer, half, off_t(at)) == half)
            buffer.withUnsafeBytes { bytes in
                (map + Int(at - 4096) + half).copyMemory(from: bytes.baseAddress! + half, byteCount: size - half)
            }
            put(dst, 24, UInt64(size))
            chunks += 1
        }
        put(src, 0, 0, width: 4)
        put(dst, 0, 0b001, width: 4)
        #expect(chunks > 1)
        #expect(try String(contentsOfFile: "\(source)/digest", encoding: .utf8) == String(contentsOfFile: "\(destination)/digest", encoding: .utf8))
        let violations = try String(contentsOfFile: "\(destination)/violations", encoding: .utf8)
        #expect(violations.split(separator: "\n").count == chunks, "\(violations)")
        #expect(violations.split(separator: "\n").allSatisfy { $0.contains("mixed-data-access") }, "\(violations)")
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

import Foundation
import Glibc
import MigrationProtocol
import Testing
import TestSupport

/// The C example of docs/vmm-guide.md (`examples/migrate_one.c`), compiled with the system's C
/// compiler and run against a real mount: what a VMM author copies must keep working.
@Suite(.serialized) struct VMMExampleTests {
    static let source = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("examples/migrate_one.c").path

    /// The first C compiler on PATH (Debian's `cc`, or the Swift toolchain's `clang`).
    static func compiler() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for name in ["cc", "gcc", "clang"] {
            for dir in path.split(separator: ":") where access("\(dir)/\(name)", X_OK) == 0 {
                return "\(dir)/\(name)"
            }
        }
        throw CompilerMissing()
    }
    struct CompilerMissing: Error, CustomStringConvertible {
        var description: String { "no C compiler (cc, gcc, clang) on PATH: install gcc" }
    }

    static let v2Source = URL(fileURLWithPath: source).deletingLastPathComponent().appendingPathComponent("migrate_v2.c").path

    /// Compiles an example warning-free into a fresh directory; returns the binary's path.
    static func build(_ file: String = source) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mdevsim-example-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        let binary = "\(dir)/" + URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent
        let (status, output) = try runTool(compiler(), ["-std=c11", "-Wall", "-Wextra", "-Werror", "-O2", "-o", binary, file])
        #expect(status == 0, "the example does not compile cleanly:\n\(output)")
        return binary
    }

    @Test(arguments: [false, true]) func exampleMigratesOneDevice(pread: Bool) throws {
        let binary = try Self.build()
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: binary).deletingLastPathComponent().path) }
        let fixture = try MountFixture()
        defer { fixture.close() }
        let (status, output) = try runTool(binary, [fixture.path, fixture.typeName] + (pread ? ["--pread"] : []))
        #expect(status == 0, "\(output)")
        #expect(output.contains("digests equal, 0 violation(s)"), "\(output)")
        #expect(output.contains(pread ? "pread/pwrite data section" : "mapped data section"), "\(output)")
        // The example removes what it created: the mount is as it found it.
        let left = try FileManager.default.contentsOfDirectory(atPath: "\(fixture.path)/devices")
        #expect(left.isEmpty, "devices left behind: \(left)")
    }

    /// The example's own checks can fail: an unknown type is refused with the cause, status 2.
    @Test func exampleReportsWhatItCannotDo() throws {
        let binary = try Self.build()
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: binary).deletingLastPathComponent().path) }
        let fixture = try MountFixture()
        defer { fixture.close() }
        let (status, output) = try runTool(binary, [fixture.path, "no-such-type"])
        #expect(status == 2)
        #expect(output.contains("no-such-type/create"), "\(output)")
    }

    /// The v2 example migrates a device of every v2 feature set through the mount's v2 files.
    @Test(arguments: [V2MigrationFeatures([.stopCopy, .p2p, .preCopy]), [.stopCopy, .preCopy], [.stopCopy]])
    func v2ExampleMigratesOneDevice(_ features: V2MigrationFeatures) throws {
        let binary = try Self.build(Self.v2Source)
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: binary).deletingLastPathComponent().path) }
        let fixture = try MountFixture(V2MountTests.scenario(features: features))
        defer { fixture.close() }
        let (status, output) = try runTool(binary, [fixture.path, "mdevsim-v2"])
        #expect(status == 0, "\(output)")
        #expect(output.contains("with v2:") && output.contains("digests equal, 0 violation(s)"), "\(output)")
        // With PRE_COPY the running source sends memory before the switchover; without, none.
        #expect(output.contains("with v2: 0 pre-copy bytes") != features.contains(.preCopy), "\(output)")
        let left = try FileManager.default.contentsOfDirectory(atPath: "\(fixture.path)/devices")
        #expect(left.isEmpty, "devices left behind: \(left)")
    }

    /// A type that speaks only v1 has no v2 files: the example says so, status 2.
    @Test func v2ExampleRefusesAV1OnlyType() throws {
        let binary = try Self.build(Self.v2Source)
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: binary).deletingLastPathComponent().path) }
        let fixture = try MountFixture()
        defer { fixture.close() }
        let (status, output) = try runTool(binary, [fixture.path, fixture.typeName])
        #expect(status == 2)
        #expect(output.contains("does not speak migration v2"), "\(output)")
    }
}

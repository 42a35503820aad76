import Conformance
import DeviceSimulator
import Foundation
import FUSEKit
import Glibc
import MdevFS
import Scenarios
import SystemPackage
import Testing

/// A real mount of a scenario at a fresh temporary directory, always unmounted and removed.
final class MountFixture {
    let mount: MdevMount
    let path: String

    init(_ scenario: Scenario = smallScenario(), strict: Bool = false, allowOther: Bool = false) throws {
        // Throws where /dev/fuse is missing: mount tests must not pass silently, CI requires them.
        path = try RunMountpoint(prefix: "/tmp/mdevsim-test.").path
        do {
            mount = try MdevMount(scenario: scenario, mountpoint: path, strict: strict, allowOther: allowOther)
            try mount.start()
        } catch {
            rmdir(path)
            throw error
        }
    }

    /// Always call (defer): unmounts, joins the loop, removes the directory.
    func close() {
        mount.stop()
        rmdir(path)
    }

    var typeName: String { mount.filesystem.types[0].name }

    /// Creates a device through the type's `create` file.
    func create(_ uuid: String = UUID().uuidString.lowercased(), type: String? = nil) throws -> String {
        try FileTransport.writeText(uuid + "\n", to: "\(path)/mdev_supported_types/\(type ?? typeName)/create")
        return "\(path)/devices/\(uuid)"
    }

    func read(_ relative: String) -> String? {
        try? String(contentsOfFile: "\(path)/\(relative)", encoding: .utf8)
    }
}

/// Two small types: enough chunks to exercise the sequence, small enough to be quick.
func smallScenario(mmap: Bool = true, faults: [Fault] = [], instances: Int = 16, memory: UInt64 = 2 << 20, section: UInt64 = 256 << 10) -> Scenario {
    let config = DeviceConfiguration(
        typeName: "mdevsim-test", memorySize: memory, pageSize: 4096, contentSeed: 3, configSize: 4096,
        dataSectionSize: section, dataSectionMmap: mmap, chunkSize: section, dirtyRate: 32 << 20,
        linkBandwidth: 1 << 30, faults: faults)
    var small = config
    small.typeName = "mdevsim-test-small-section"
    small.dataSectionSize = 64 << 10
    small.chunkSize = 64 << 10
    return Scenario(
        name: "mount-test", description: "", seed: 1,
        types: [DeviceTypeSpec(configuration: config, instances: instances), DeviceTypeSpec(configuration: small, instances: instances)],
        migration: MigrationPlan(source: "mdevsim-test"))
}

/// Runs a program to its end; returns its exit status and its stdout and stderr together.
func runTool(_ path: String, _ arguments: [String]) throws -> (Int32, String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

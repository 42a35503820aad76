import DeviceSimulator
import Foundation
import FUSEKit
import Glibc
import MdevFS
import Scenarios
import SystemPackage

/// A real mount of a scenario at a fresh temporary directory, always unmounted and removed: the
/// one mount fixture of every test target that mounts.
public final class MountFixture {
    public let mount: MdevMount
    public let path: String

    public init(_ scenario: Scenario = smallScenario(), strict: Bool = false, allowOther: Bool = false,
                prefix: String = "mdevsim-test") throws {
        // Throws where /dev/fuse is missing: mount tests must not pass silently, CI requires them.
        try MountHelpers.checkFUSEDevice()
        path = try makeTemporaryDirectory(prefix)
        do {
            mount = try MdevMount(scenario: scenario, mountpoint: path, strict: strict, allowOther: allowOther)
            try mount.start()
        } catch {
            rmdir(path)
            throw error
        }
    }

    /// Always call (defer): unmounts, joins the loop, removes the directory.
    public func close() {
        mount.stop()
        rmdir(path)
    }

    public var typeName: String { mount.filesystem.types[0].name }

    /// Creates a device through the type's `create` file; returns its directory.
    public func create(_ uuid: String = UUID().uuidString.lowercased(), type: String? = nil) throws -> String {
        try createDevice(uuid, type: type ?? typeName)
        return "\(path)/devices/\(uuid)"
    }

    /// Creates a device through the type's `create` file; returns its UUID.
    @discardableResult
    public func createDevice(_ uuid: String = UUID().uuidString.lowercased(), type: String) throws -> String {
        try Self.write(uuid + "\n", to: "\(path)/mdev_supported_types/\(type)/create")
        return uuid
    }

    public func read(_ relative: String) -> String? {
        try? String(contentsOfFile: "\(path)/\(relative)", encoding: .utf8)
    }

    /// Writes `text` to an attribute file in one `write`, as `echo text > file` does.
    public static func write(_ text: String, to path: String) throws {
        guard let handle = FileHandle(forWritingAtPath: path) else { throw Errno(rawValue: errno) }
        defer { try? handle.close() }
        try handle.write(contentsOf: Data(text.utf8))
    }
}

/// Two small types: enough chunks to exercise the sequence, small enough to be quick.
public func smallScenario(mmap: Bool = true, faults: [Fault] = [], instances: Int = 16, memory: UInt64 = 2 << 20, section: UInt64 = 256 << 10) -> Scenario {
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

/// The numbers of object `key` of the `state` file of the device at `directory` (its `copies`,
/// its `staged_ahead`), by name.
public func stateCounts(_ directory: String, _ key: String) throws -> [String: UInt64] {
    let state = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(directory)/state"))) as? [String: Any]
    return ((state?[key] as? [String: Any]) ?? [:]).compactMapValues { ($0 as? NSNumber)?.uint64Value }
}

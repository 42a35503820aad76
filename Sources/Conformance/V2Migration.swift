import DeviceSimulator
import MdevFS
import Scenarios

/// A migration of a scenario with VFIO migration v2: its source and destination types (both must
/// speak v2), the v2 reference client, in process or through a mount's v2 files.
public enum V2Migration {
    /// Why a scenario cannot be migrated with v2.
    public struct NotV2: Error, CustomStringConvertible {
        public var type: String
        public var description: String { "the type \(type) does not speak migration v2 (add protocols: [v1, v2] to it)" }
    }

    /// The source and destination types, both speaking v2.
    static func types(_ scenario: Scenario) throws -> (DeviceTypeSpec, DeviceTypeSpec) {
        guard let source = scenario.sourceType else { throw InProcessMigration.UnknownType(name: scenario.migration.source) }
        guard let destination = scenario.destinationType else { throw InProcessMigration.UnknownType(name: scenario.migration.destination) }
        for t in [source, destination] where !t.configuration.protocols.contains(.v2) { throw NotV2(type: t.name) }
        return (source, destination)
    }

    /// Both devices in this process.
    public static func inProcess(_ migration: InProcessMigration, progress: (@Sendable (String) -> Void)? = nil) throws -> MigrationReport {
        let (sourceType, destinationType) = try types(migration.scenario)
        let clock = HostClock()
        func device(_ type: DeviceTypeSpec, _ identity: String) -> V2Device {
            V2Device(device: SimulatedDevice(configuration: type.configuration, identity: identity, extents: migration.extents),
                     features: type.configuration.v2Features, wallClock: clock)
        }
        let source = device(sourceType, migration.identities.source)
        let destination = device(destinationType, migration.identities.destination)
        // The events a mount's devices report for the same migration (FUSEMigration's v2 path):
        // create both, and remove the destination, then the source; no region is opened.
        let observer = migration.observer
        if let observer {
            for (v2, type) in [(source, sourceType), (destination, destinationType)] {
                observer.deviceEvent(.create, device: v2.device.identity, type: type.name, errno: nil)
                v2.observer = observer
            }
        }
        var client = V2ReferenceClient(options: migration.options, linkBandwidth: sourceType.configuration.linkBandwidth)
        client.progress = progress
        var report = client.migrate(from: InProcessV2Transport(device: source, name: "source"),
                                    to: InProcessV2Transport(device: destination, name: "destination"))
        if let observer {
            for v2 in [destination, source] { observer.deviceEvent(.remove, device: v2.device.identity, type: nil, errno: nil) }
        }
        report.attach(v2Source: source, destination: destination)
        return report
    }
}

extension MigrationReport {
    /// What only v2 devices know: their violations, fired faults, device time.
    public mutating func attach(v2Source source: V2Device, destination: V2Device) {
        violations = source.violations.map { "source: [\($0.rule.rawValue)] \($0.explanation)" }
            + destination.violations.map { "destination: [\($0.rule.rawValue)] \($0.explanation)" }
        violationDetails = source.violations.map { ViolationDetail(role: "source", violation: $0) }
            + destination.violations.map { ViolationDetail(role: "destination", violation: $0) }
        firedFaults = source.firedFaults.map { "source: \($0)" } + destination.firedFaults.map { "destination: \($0)" }
        sourceTimeMs = Double(source.now) / 1e6
    }
}

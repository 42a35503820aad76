import DeviceSimulator
import MdevFS
import Scenarios

/// One migration of a scenario between two in-process devices: the scenario's source and
/// destination types, the reference client with the scenario's plan.
public struct InProcessMigration {
    public let scenario: Scenario
    public var options: ClientOptions
    /// Told every access and event of both devices (a trace), if set.
    public var observer: (any AccessObserver)?
    /// The devices' identities: the same as a mount's devices get, so both paths migrate the same devices.
    public var identities: DeviceIdentities
    /// Where both devices' memory extents come from (plain allocations unless a pool is given).
    public var extents: any ExtentProvider = HeapExtents.standard

    /// A scenario whose migration names types it does not define.
    public struct UnknownType: Error, CustomStringConvertible {
        public var name: String
        public var description: String { "the scenario has no device type named \(name)" }
    }

    public init(scenario: Scenario) {
        self.scenario = scenario
        options = ClientOptions(plan: scenario.migration.client)
        identities = DeviceIdentities(scenario: scenario)
    }

    /// Creates both devices, migrates, and reports, with the devices' violations and deviations.
    public func run(progress: (@Sendable (String) -> Void)? = nil) throws(UnknownType) -> (MigrationReport, source: MigrationRegion, destination: MigrationRegion) {
        guard let sourceType = scenario.sourceType else { throw UnknownType(name: scenario.migration.source) }
        guard let destinationType = scenario.destinationType else { throw UnknownType(name: scenario.migration.destination) }
        let clock = HostClock()
        let source = MigrationRegion(configuration: sourceType.configuration, identity: identities.source,
                                     wallClock: clock, extents: extents)
        let destination = MigrationRegion(configuration: destinationType.configuration, identity: identities.destination,
                                          wallClock: clock, extents: extents)
        // The events a mount's devices report for the same migration (FUSEMigration), in its
        // order: create both, open both, then release and remove the destination, then the source.
        if let observer {
            for (region, type) in [(source, sourceType), (destination, destinationType)] {
                observer.deviceEvent(.create, device: region.device.identity, type: type.name, errno: nil)
                region.observer = observer
            }
            for region in [source, destination] { observer.deviceEvent(.open, device: region.device.identity, type: nil, errno: nil) }
        }
        var client = ReferenceClient(options: options, linkBandwidth: sourceType.configuration.linkBandwidth)
        client.progress = progress
        var report = client.migrate(
            from: InProcessTransport(region: source, name: "source"),
            to: InProcessTransport(region: destination, name: "destination"))
        if let observer {
            for region in [destination, source] {
                observer.deviceEvent(.release, device: region.device.identity, type: nil, errno: nil)
                observer.deviceEvent(.remove, device: region.device.identity, type: nil, errno: nil)
            }
        }
        report.attach(source: source, destination: destination)
        return (report, source, destination)
    }
}

extension MigrationReport {
    /// Adds what only the devices know: their violations, resume deviations, device time.
    /// A stream the destination refused after a fault fired on either device is the fault's
    /// doing (a source fault corrupts what the destination then refuses), not the client's.
    public mutating func attach(source: MigrationRegion, destination: MigrationRegion) {
        let faulted = !source.firedFaults.isEmpty || !destination.firedFaults.isEmpty
        let kept = destination.violations.filter { $0.rule != .resumeTransactions && !(faulted && $0.rule == .resumeStream) }
        violations = (source.violations.map { "source: [\($0.rule.rawValue)] \($0.explanation)" }
            + kept.map { "destination: [\($0.rule.rawValue)] \($0.explanation)" })
        resumeDeviations = destination.lastResume?.deviations ?? []
        violationDetails = source.violations.map { ViolationDetail(role: "source", violation: $0) }
            + kept.map { ViolationDetail(role: "destination", violation: $0) }
        firedFaults = source.firedFaults.map { "source: \($0)" } + destination.firedFaults.map { "destination: \($0)" }
        sourceTimeMs = Double(source.now) / 1e6
    }
}

extension ClientOptions {
    /// The reference client's options for a scenario's plan.
    public init(plan: ClientPlan) {
        let access: DataAccess = switch plan.access {
        case .mmap: .mapped
        case .pread: .pieces(1 << 20)
        case .pread8: .pieces(8)
        }
        self.init(
            precopyThreshold: plan.stopThreshold, maxPrecopyIterations: plan.maxPrecopyIterations,
            dataAccess: access, pausedGuest: plan.guestPaused, cancelAfterIterations: plan.cancelInPrecopyAfter)
    }
}

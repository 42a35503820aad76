import DeviceSimulator

/// A validated scenario: the device types a mount offers, one migration to run between them and
/// what a correct VMM should see. Produced by `ScenarioLoader`; every value here already passed
/// `DeviceConfiguration.validate()` and the scenario-level checks.
public struct Scenario: Sendable, Hashable {
    /// Short name for reports, e.g. `small-converges`.
    public var name: String
    /// Free text: what the scenario exercises.
    public var description: String
    /// Scenario seed, already folded into every type's `configuration.contentSeed`.
    public var seed: UInt64
    /// The device types, in file order; names are unique.
    public var types: [DeviceTypeSpec]
    /// Which types migrate and how the reference client drives them.
    public var migration: MigrationPlan
    /// What a correct VMM should observe.
    public var expectation: Expectation
    /// The parent device of every type in the mount's sysfs-shaped tree (`MdevParent`).
    public var parent: String

    public init(
        name: String, description: String = "", seed: UInt64 = 1, types: [DeviceTypeSpec],
        migration: MigrationPlan, expectation: Expectation = Expectation(), parent: String = MdevParent.defaultName
    ) {
        self.parent = parent
        self.name = name
        self.description = description
        self.seed = seed
        self.types = types
        self.migration = migration
        self.expectation = expectation
    }

    /// The type called `name`, if the scenario has one.
    public func type(named name: String) -> DeviceTypeSpec? {
        types.first { $0.name == name }
    }

    /// The type of the migration source (validation guarantees it exists).
    public var sourceType: DeviceTypeSpec? { type(named: migration.source) }
    /// The type of the migration destination (validation guarantees it exists).
    public var destinationType: DeviceTypeSpec? { type(named: migration.destination) }

    /// The content seed a device type gets from the scenario seed and its own `content_seed`:
    /// `splitmix64(scenarioSeed ^ splitmix64(contentSeed))`. Changing either changes all memory.
    public static func combinedSeed(scenario: UInt64, content: UInt64) -> UInt64 {
        splitmix64(scenario ^ splitmix64(content))
    }

    static func splitmix64(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// One mdev type of a scenario: the engine configuration of its devices and how many a mount offers.
public struct DeviceTypeSpec: Sendable, Hashable {
    /// Everything about a device of this type; `contentSeed` is already combined with the scenario seed.
    public var configuration: DeviceConfiguration
    /// How many instances (UUIDs) a mount offers for the type (`available_instances`).
    public var instances: Int
    /// The PCI ids a device of this type shows (its `config` file).
    public var pci: PCIIdentity
    /// Guest memory the running device writes through the VMM's DMA mappings, if any.
    public var dma: DMASpec?

    public init(configuration: DeviceConfiguration, instances: Int = 16, pci: PCIIdentity = .default, dma: DMASpec? = nil) {
        self.configuration = configuration
        self.instances = instances
        self.pci = pci
        self.dma = dma
    }

    /// The mdev type name.
    public var name: String { configuration.typeName }
}

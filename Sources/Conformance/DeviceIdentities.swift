import DeviceSimulator
import Foundation
import Scenarios

/// The mdev UUIDs of the two devices a migration creates (`migrate`, `run`), in process and
/// through a mount alike.
///
/// A device's power-on memory and its dirtying sequence are seeded by its identity, so random
/// UUIDs made every run through a mount a different migration (other pages dirtied, hence other
/// `pending_bytes` from the first chunk the dirtying reached, other totals and digests). Derived
/// from the scenario's seed and name, the same scenario gives the same devices, run after run and
/// in process as through FUSE; `--uuid` gives them explicitly.
public struct DeviceIdentities: Sendable, Hashable {
    /// Lowercase 8-4-4-4-12 UUIDs, as sysfs stores them.
    public var source: String
    public var destination: String

    /// Explicit identities (`--uuid`), lowercased.
    public init(source: String, destination: String) {
        self.source = source.lowercased()
        self.destination = destination.lowercased()
    }

    /// The identities a scenario's devices get unless told otherwise.
    public init(scenario: Scenario) {
        self.init(source: Self.derived(seed: scenario.seed, scenario: scenario.name, role: "source"),
                  destination: Self.derived(seed: scenario.seed, scenario: scenario.name, role: "destination"))
    }

    /// An RFC 9562 version 8 ("custom") UUID from the seed, the scenario name and the role: two
    /// SplitMix64 draws, with the version and variant bits set, so it is a valid UUID that no
    /// random (version 4) UUID can equal.
    public static func derived(seed: UInt64, scenario: String, role: String) -> String {
        var rng = SplitMix64(seed: SplitMix64.mix(seed ^ SplitMix64.hash("mdevsim/\(scenario)/\(role)")))
        var bytes = [UInt8](repeating: 0, count: 16)
        for half in 0..<2 {
            let word = rng.next()
            for i in 0..<8 { bytes[half * 8 + i] = UInt8(truncatingIfNeeded: word >> (8 * UInt64(i))) }
        }
        bytes[6] = (bytes[6] & 0x0F) | 0x80
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        let hex = bytes.map { String(format: "%02x", $0) }.joined()
        let parts = [hex.prefix(8), hex.dropFirst(8).prefix(4), hex.dropFirst(12).prefix(4), hex.dropFirst(16).prefix(4), hex.dropFirst(20)]
        return parts.joined(separator: "-")
    }

    /// Parses `--uuid` values: none (derive), or exactly two distinct UUIDs (source, destination).
    public static func parse(_ values: [String]) throws(InvalidIdentities) -> [String]? {
        if values.isEmpty { return nil }
        guard values.count == 2 else {
            throw InvalidIdentities(description: "expected --uuid twice (source, then destination), got \(values.count)")
        }
        for value in values where value.utf8.count != 36 || UUID(uuidString: value) == nil {
            throw InvalidIdentities(description: "'\(value)' is not a UUID (8-4-4-4-12 hex digits)")
        }
        guard values[0].lowercased() != values[1].lowercased() else {
            throw InvalidIdentities(description: "source and destination need different UUIDs, got \(values[0]) twice")
        }
        return values.map { $0.lowercased() }
    }

    /// A `--uuid` list that cannot name two devices.
    public struct InvalidIdentities: Error, Sendable, CustomStringConvertible {
        public var description: String
    }
}

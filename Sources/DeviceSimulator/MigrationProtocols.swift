/// The VFIO migration protocols a device speaks.
public struct MigrationProtocols: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Migration v1: the `struct vfio_device_migration_info` region (Linux 5.8-5.17, QEMU 5.2-7.2).
    public static let v1 = MigrationProtocols(rawValue: 1 << 0)
    /// Migration v2: `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE` and a data_fd (Linux 5.18+, QEMU 8+).
    public static let v2 = MigrationProtocols(rawValue: 1 << 1)

    /// Each protocol with its name, in order.
    public static let named: [(String, MigrationProtocols)] = [("v1", .v1), ("v2", .v2)]

    /// `v1`, `v2` or `v1,v2`.
    public var description: String {
        Self.named.filter { contains($0.1) }.map(\.0).joined(separator: ",")
    }
}

/// The one protocol a migration uses (a device may speak both).
public enum MigrationProtocolVersion: String, Sendable, Hashable, CaseIterable, Codable {
    case v1
    case v2

    /// The set holding this protocol.
    public var set: MigrationProtocols { self == .v1 ? .v1 : .v2 }
}

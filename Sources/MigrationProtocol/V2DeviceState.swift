/// A migration v2 device state: `enum vfio_device_mig_state` of `<linux/vfio.h>` (Linux >= 5.18;
/// `PRE_COPY` and `PRE_COPY_P2P` since 6.2). Unlike v1's bit field, v2 states are plain numbers
/// set with `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE` and read back with its GET.
public enum V2DeviceState: UInt32, CaseIterable, Sendable, Codable, CustomStringConvertible {
    /// `VFIO_DEVICE_STATE_ERROR`: entered only by the device when an arc fails and it cannot
    /// restore a valid state; left only by `VFIO_DEVICE_RESET`. The user may never SET it.
    case error = 0
    /// `VFIO_DEVICE_STATE_STOP`: no DMA, no interrupts, internal state frozen.
    case stop = 1
    /// `VFIO_DEVICE_STATE_RUNNING`: the power-on state.
    case running = 2
    /// `VFIO_DEVICE_STATE_STOP_COPY`: stopped, the final device state streams out of the data_fd.
    case stopCopy = 3
    /// `VFIO_DEVICE_STATE_RESUMING`: stopped, loading a stream written to the data_fd.
    case resuming = 4
    /// `VFIO_DEVICE_STATE_RUNNING_P2P`: running, but initiating no peer-to-peer DMA.
    case runningP2P = 5
    /// `VFIO_DEVICE_STATE_PRE_COPY`: running while the initial state streams out (6.2+).
    case preCopy = 6
    /// `VFIO_DEVICE_STATE_PRE_COPY_P2P`: pre-copy in the P2P quiescent state (6.2+).
    case preCopyP2P = 7

    /// The kernel's spelling without the `VFIO_DEVICE_STATE_` prefix, as QEMU logs it.
    public var description: String {
        switch self {
        case .error: "ERROR"
        case .stop: "STOP"
        case .running: "RUNNING"
        case .stopCopy: "STOP_COPY"
        case .resuming: "RESUMING"
        case .runningP2P: "RUNNING_P2P"
        case .preCopy: "PRE_COPY"
        case .preCopyP2P: "PRE_COPY_P2P"
        }
    }

    /// The state named by its kernel spelling (`STOP_COPY`, `stop_copy`, `stop-copy` alike).
    public init?(name: String) {
        let key = String(name.uppercased().map { $0 == "-" ? "_" : $0 })
        guard let state = Self.allCases.first(where: { $0.description == key }) else { return nil }
        self = state
    }

    /// `PRE_COPY`, `PRE_COPY_P2P` and `STOP_COPY`: the uAPI's "saving group", which share one
    /// data transfer session; moving inside the group changes what streams, not the data_fd.
    public var isSaving: Bool { self == .preCopy || self == .preCopyP2P || self == .stopCopy }

    /// States in which the device runs (and dirties its memory); the P2P ones included, since the
    /// uAPI says they behave as fully running apart from peer-to-peer DMA.
    public var isRunning: Bool { self == .running || self == .runningP2P || self == .preCopy || self == .preCopyP2P }

    /// The migration features a device must offer for this state to exist on it
    /// (the kernel's `state_flags_table`); nil for ERROR, which is never a valid target.
    public var requiredFeatures: V2MigrationFeatures? {
        switch self {
        case .error: nil
        case .stop, .running, .stopCopy, .resuming: .stopCopy
        case .runningP2P: [.stopCopy, .p2p]
        case .preCopy: [.stopCopy, .preCopy]
        case .preCopyP2P: [.stopCopy, .p2p, .preCopy]
        }
    }

    /// Whether a device offering `features` has this state.
    public func exists(on features: V2MigrationFeatures) -> Bool {
        guard let required = requiredFeatures else { return false }
        return features.isSuperset(of: required)
    }
}

/// `struct vfio_device_feature_migration.flags`: what `VFIO_DEVICE_FEATURE_MIGRATION` GET reports.
public struct V2MigrationFeatures: OptionSet, Sendable, Hashable, Codable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// `VFIO_MIGRATION_STOP_COPY`: STOP, STOP_COPY and RESUMING exist. Mandatory.
    public static let stopCopy = V2MigrationFeatures(rawValue: 1 << 0)
    /// `VFIO_MIGRATION_P2P`: RUNNING_P2P (and with PRE_COPY, PRE_COPY_P2P) exist.
    public static let p2p = V2MigrationFeatures(rawValue: 1 << 1)
    /// `VFIO_MIGRATION_PRE_COPY` (6.2+): PRE_COPY (and with P2P, PRE_COPY_P2P) exist.
    public static let preCopy = V2MigrationFeatures(rawValue: 1 << 2)

    /// The four combinations a device may report (STOP_COPY is always set).
    public static let allValid: [V2MigrationFeatures] = [
        [.stopCopy], [.stopCopy, .p2p], [.stopCopy, .preCopy], [.stopCopy, .p2p, .preCopy],
    ]
}

import MigrationProtocol

/// A snapshot of a device's migration v2 face, for the `v2` member of its `state` file and for
/// reports. Encodes as JSON with snake_case keys.
public struct V2Status: Sendable, Hashable, Codable {
    /// `enum vfio_device_mig_state` and its uAPI name.
    public var deviceState: UInt32
    public var stateName: String
    /// The session number of the current data_fd, if a session is open.
    public var currentSession: UInt64?
    /// Whether device DMA logging is started.
    public var dmaLogging: Bool
    public var violations: Int
    /// Names of the scenario's faults that fired on this face, in order.
    public var firedFaults: [String]
    public var lastError: String?
}

extension V2Device {
    /// The v2 face as it is now.
    public var status: V2Status {
        V2Status(deviceState: state.rawValue, stateName: state.description, currentSession: currentSession,
                 dmaLogging: dmaLog.isStarted, violations: violations.count, firedFaults: firedFaults, lastError: lastError)
    }
}

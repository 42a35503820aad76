import DeviceSimulator

/// A protocol violation as a report can place it: which device, which rule, the access that
/// broke it and the state the device was in (`MigrationReport.violations` has the same as text).
public struct ViolationDetail: Sendable, Hashable, Codable {
    /// `source` or `destination`.
    public var role: String
    public var rule: String
    public var citation: String
    public var explanation: String
    /// The device's `device_state` bits when it happened.
    public var state: UInt32
    public var access: RegionAccessRecord?

    public init(role: String, rule: String, citation: String, explanation: String, state: UInt32, access: RegionAccessRecord?) {
        self.role = role
        self.rule = rule
        self.citation = citation
        self.explanation = explanation
        self.state = state
        self.access = access
    }

    public init(role: String, violation: ProtocolViolation) {
        self.role = role
        rule = violation.rule.rawValue
        citation = violation.citation
        explanation = violation.explanation
        state = violation.state
        access = violation.access
    }
}

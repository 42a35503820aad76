import DeviceSimulator

/// What a device's `state` file holds: the v1 region's summary (`RegionStatus`, its keys at the
/// top level as before) and, for a device speaking v2, a `v2` member with that face's state,
/// fired faults and last error (`V2Status`).
struct DeviceStatus: Encodable {
    var region: RegionStatus
    var v2: V2Status?

    private enum Keys: String, CodingKey { case v2 }

    func encode(to encoder: any Encoder) throws {
        // The region's keys and `v2` share one object: JSONEncoder merges keyed containers.
        try region.encode(to: encoder)
        var container = encoder.container(keyedBy: Keys.self)
        try container.encodeIfPresent(v2, forKey: .v2)
    }
}

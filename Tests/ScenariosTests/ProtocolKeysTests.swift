@testable import Scenarios
import DeviceSimulator
import MigrationProtocol
import Testing

/// The `protocols:` and `v2:` keys of a device type.
@Suite struct ProtocolKeysTests {
    @Test func defaultIsV1Only() throws {
        let c = try #require(try ScenarioLoader.parse(oneType("")).types.first).configuration
        #expect(c.protocols == [.v1])
        #expect(c.v2Features == [.stopCopy, .p2p, .preCopy])
    }

    @Test func bothProtocolsAndFeatures() throws {
        let c = try #require(try ScenarioLoader.parse(oneType("protocols: [v1, v2]\nv2: {p2p: false, pre_copy: true}")).types.first).configuration
        #expect(c.protocols == [.v1, .v2])
        #expect(c.v2Features == [.stopCopy, .preCopy])
    }

    @Test func refusals() {
        #expect(diagnose(oneType("protocols: [v1, v3]")).first?.contains("protocols: expected v1 or v2, got") == true)
        #expect(diagnose(oneType("protocols: [v2, v2]")).first?.contains("v2 is listed twice") == true)
        #expect(diagnose(oneType("protocols: []")).first?.contains("a non-empty list of v1, v2") == true)
        #expect(diagnose(oneType("v2: {p2p: false}")).first?.contains("does not speak v2") == true)
        #expect(diagnose(oneType("protocols: [v2]\nv2: {p2pp: false}")).first?.contains("did you mean 'p2p'") == true)
    }
}

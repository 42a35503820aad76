@testable import Scenarios
import Testing

/// YAML's null (`~`, `null`) where a string is required is a value left out, not a name (issue 13).
@Suite struct NullValueTests {
    @Test func aNullNameIsRefusedWithItsPosition() {
        let yaml = oneType("").replacingOccurrences(of: "name: t\n", with: "name: ~\n")
        #expect(diagnose(yaml) == ["x.yaml:1:7: error: name: expected a string, got null (~)"])
    }

    @Test func aNullTypeNameIsRefused() {
        let yaml = oneType("").replacingOccurrences(of: "type: t1", with: "type: null")
        #expect(diagnose(yaml).count == 1)
        #expect(diagnose(yaml).first?.hasPrefix("x.yaml:3:11: error: type:") == true, "\(diagnose(yaml))")
    }

    @Test func quotedTildeIsAString() throws {
        let yaml = oneType("").replacingOccurrences(of: "name: t\n", with: "name: \"~\"\n")
        #expect(try ScenarioLoader.parse(yaml).name == "~")
    }
}

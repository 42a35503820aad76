@testable import Scenarios
import Testing

/// The scenario key `parent:`: the parent device of the mount's sysfs-shaped tree.
@Suite struct ParentTests {
    @Test func defaultIsAHostBridgeAddress() throws {
        #expect(try ScenarioLoader.parse(oneType("")).parent == "0000:00:00.0")
        #expect(Scenario.builtInDefault.parent == MdevParent.defaultName)
    }

    @Test func declaredParentIsKept() throws {
        #expect(try ScenarioLoader.parse("parent: 0000:65:00.1\n" + oneType("")).parent == "0000:65:00.1")
        #expect(try ScenarioLoader.parse("parent: matrix\n" + oneType("")).parent == "matrix")
    }

    @Test func namesThatCannotBeADirectoryAreRefused() {
        for bad in ["a/b", "..", "'has space'", "'\(String(repeating: "x", count: 65))'"] {
            let d = diagnose("parent: \(bad)\n" + oneType(""))
            #expect(d.count == 1 && d[0].hasPrefix("x.yaml:1:9: error: parent: expected a parent device name"), "\(bad): \(d)")
        }
        #expect(diagnose("parent: [1]\n" + oneType("")) != ["ok"])
        #expect(diagnose("parent: ''\n" + oneType("")) != ["ok"])
    }
}

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

/// The memory model `check` applies (scenarios/README.md, "Memory").
@Suite struct MemoryModelTests {
    static let text = """
        name: m
        types:
          - type: t
            memory: 64TiB
            fill: zero
        """

    /// A dirtying source: both sides may end up storing every page.
    static let dirtying = text.replacingOccurrences(of: "fill: zero", with: "dirty: {rate: 1MiB/s}")

    @Test func aMigrationThatDoesNotFitIsRefusedAtTheSourceMemory() throws {
        let scenario = try ScenarioLoader.parse(Self.dirtying)
        let d = try #require(MemoryModel.check(scenario, text: Self.dirtying, file: "m.yaml", budget: 24 << 30, what: "24GiB here"))
        #expect(d.line == 4 && d.column == 13)
        #expect(d.message.hasPrefix("memory: the migration of this scenario needs up to "))
        #expect(d.message.contains("more than 24GiB here (24.0GiB)"))
    }

    /// Without dirtying the destination keeps references: a 64 TiB device costs its bitmaps
    /// (2^34 pages, 2^19 leaves of ~4 KiB), and the bundled 16 GiB one almost nothing.
    @Test func withoutDirtyingADeviceCostsItsBitmapsNotItsMemory() throws {
        let huge = try #require(MemoryModel.migrationBytes(try ScenarioLoader.parse(Self.text)))
        #expect(huge > 2 << 30 && huge < 3 << 30)
        let small = try ScenarioLoader.parse(Self.text.replacingOccurrences(of: "64TiB", with: "16GiB"))
        let need = try #require(MemoryModel.migrationBytes(small))
        #expect(need > MemoryModel.daemonBaseline && need < 512 << 20)
        #expect(MemoryModel.refusal(small, budget: 23 << 30, what: "x") == nil)
        #expect(MemoryModel.refusal(small, budget: 256 << 20, what: "x") != nil)
    }

    @Test func aDirtyingSourceCountsTwice() throws {
        let dirty = try ScenarioLoader.parse(Self.dirtying.replacingOccurrences(of: "64TiB", with: "1GiB"))
        let need = try #require(MemoryModel.migrationBytes(dirty))
        #expect(need > 2 << 30 && need < (2 << 30) + (512 << 20))
    }
}

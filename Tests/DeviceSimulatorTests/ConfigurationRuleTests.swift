import DeviceSimulator
import EngineFixtures
import MigrationProtocol
import SystemPackage
import Testing

/// The configuration's rules: every problem at once, each with its key.
@Suite struct ConfigurationRuleTests {
    @Test func everyProblemIsReportedWithItsKey() {
        var c = smallConfiguration()
        c.memorySize += 100
        c.configSize = 65 << 20
        c.chunkSize = c.dataSectionSize * 2
        c.linkBandwidth = 0
        let problems = c.problems()
        #expect(problems.map(\.key) == ["memory", "config_size", "chunk_size", "link_bandwidth"])
        #expect(throws: problems[0]) { try c.validate() }
        #expect(smallConfiguration().problems().isEmpty)
    }

    @Test func aBadPageSizeHidesTheRulesJudgedInPages() {
        var c = smallConfiguration()
        c.pageSize = 3000
        c.memorySize = 1
        #expect(c.problems().map(\.key) == ["page_size"])
        #expect(c.problems(size: { "\($0)B" }).first?.message == "a power of two from 512B to 2097152B, got 3000B")
    }
}

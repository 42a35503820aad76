import DeviceSimulator
import Foundation
import Scenarios
import SystemPackage
import Testing

/// Scenario files, not just configurations, give byte-identical streams for the same seed.
@Suite struct ScenarioDeterminismTests {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scenarios").path

    @Test(arguments: ["default.yaml", "hot-set.yaml", "sequential-dirty.yaml"])
    func sameScenarioSameStream(_ file: String) throws {
        let scenario = try ScenarioLoader.load(contentsOf: FilePath("\(Self.directory)/\(file)"))
        var config = try #require(scenario.sourceType?.configuration)
        // A smaller memory keeps the debug build quick; the dirtying, seed and shape are the file's.
        config.memorySize = min(config.memorySize, 8 << 20)
        let first = DeterminismTests.streamHash(config), second = DeterminismTests.streamHash(config)
        #expect(first.0 == second.0)
        #expect(first.1 == second.1)
        #expect(first.1.count > 2)
    }

    @Test func theScenarioSeedChangesTheStream() throws {
        let text = Scenario.builtInDefaultText
        let a = try ScenarioLoader.parse(text)
        let b = try ScenarioLoader.parse(text.replacingOccurrences(of: "\nseed: 1\n", with: "\nseed: 99\n"))
        var ca = try #require(a.sourceType?.configuration), cb = try #require(b.sourceType?.configuration)
        ca.memorySize = 1 << 20
        cb.memorySize = 1 << 20
        #expect(DeterminismTests.streamHash(ca).0 != DeterminismTests.streamHash(cb).0)
    }
}

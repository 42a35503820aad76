import DeviceSimulator
import Foundation
@testable import Scenarios
import SystemPackage
import Testing

/// The `scenarios/` directory of the repository, found from this file.
let scenariosDirectory: String = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("scenarios").path

func libraryFiles() throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: scenariosDirectory)
        .filter { $0.hasSuffix(".yaml") }
        .sorted()
}

func loadLibrary() throws -> [String: Scenario] {
    var result: [String: Scenario] = [:]
    for file in try libraryFiles() {
        result[file] = try ScenarioLoader.load(contentsOf: FilePath(scenariosDirectory + "/" + file))
    }
    return result
}

@Suite struct LibraryTests {
    @Test func everyScenarioValidates() throws {
        let files = try libraryFiles()
        #expect(files.count >= 21)
        for file in files {
            let diagnostics = ScenarioLoader.check(contentsOf: FilePath(scenariosDirectory + "/" + file))
            #expect(diagnostics.isEmpty, "\(file): \(diagnostics.map(\.description).joined(separator: "\n"))")
        }
    }

    @Test func everyScenarioStartsWithAComment() throws {
        for file in try libraryFiles() {
            let text = try String(contentsOfFile: scenariosDirectory + "/" + file, encoding: .utf8)
            #expect(text.hasPrefix("# "), "\(file) must start with a comment saying what it exercises")
        }
    }

    @Test func readmeListsEveryScenario() throws {
        let readme = try String(contentsOfFile: scenariosDirectory + "/README.md", encoding: .utf8)
        for file in try libraryFiles() {
            #expect(readme.contains("| `\(file)` |"), "scenarios/README.md does not list \(file)")
        }
    }

    @Test func defaultFileEqualsBuiltIn() throws {
        let text = try String(contentsOfFile: scenariosDirectory + "/default.yaml", encoding: .utf8)
        #expect(text == Scenario.builtInDefaultText)
        let parsed = try ScenarioLoader.parse(Scenario.builtInDefaultText)
        #expect(parsed == Scenario.builtInDefault)
        #expect(parsed == Scenario.builtInDefaultInCode)
        let type = try #require(parsed.types.first)
        #expect(type.name == "mdevsim-default")
        #expect(type.instances == 16)
        #expect(type.configuration.memorySize == 64 << 20)
        #expect(type.configuration.dirtyRate == 8 << 20)
    }

    @Test func libraryCoversEveryFaultActionAndTrigger() throws {
        let faults = try loadLibrary().values.flatMap { $0.types.flatMap(\.configuration.faults) }
        var actions = Set<String>(), triggers = Set<String>()
        for fault in faults {
            actions.insert(String(describing: fault.action).prefix { $0 != "(" }.description)
            triggers.insert(String(describing: fault.trigger).prefix { $0 != "(" }.description)
        }
        #expect(actions == [
            "fail", "failToErrorState", "stall", "corruptChunk", "oversizeDataSize", "misalignedDataOffset",
            "overlappingDataOffset", "pendingNeverZero", "pendingGrows", "shortRead",
        ])
        #expect(triggers == ["access", "enterState", "transition", "chunk", "bytes"])
    }

    @Test func libraryCoversTheRequiredCases() throws {
        let library = try loadLibrary()
        let all = Array(library.values)
        let configurations = all.flatMap { $0.types.map(\.configuration) }
        #expect(configurations.contains { $0.memorySize >= 16 << 30 })
        #expect(configurations.contains { !$0.precopyData })
        #expect(configurations.contains { $0.dirtyRate > $0.linkBandwidth })
        #expect(configurations.contains { if case .hotSet = $0.dirtyPattern { true } else { false } })
        #expect(configurations.contains { $0.dataSectionMmap } && configurations.contains { !$0.dataSectionMmap })
        #expect(configurations.contains { $0.pageCount > 1000 && $0.chunkSize < 64 << 10 })
        #expect(all.contains { $0.migration.source != $0.migration.destination })
        #expect(all.contains { $0.expectation.cancelled })
        #expect(all.contains { $0.expectation.outcome == .errorState(recoversByReset: true) })
        #expect(all.contains { $0.expectation.converges == false })
        #expect(Set(all.map(\.migration.client.access)) == Set(DataAccessMode.allCases))
        // Only the large sparse device is big, so a whole-library run stays fast.
        #expect(configurations.filter { $0.memorySize > 64 << 20 }.count == 1)
    }
}

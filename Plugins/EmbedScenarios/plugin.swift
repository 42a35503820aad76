import Foundation
import PackagePlugin

/// Embeds the bundled scenario library (`scenarios/*.yaml`) in the target it is applied to, as
/// generated Swift source (`Scenario.bundledLibrary`), so that `mdevsim run` needs no file at run
/// time and works from any directory. Regenerated whenever a scenario file changes.
@main
struct EmbedScenarios: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let directory = context.package.directoryURL.appending(path: "scenarios")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }
            .sorted()
        let inputs = names.map { directory.appending(path: $0) }
        let output = context.pluginWorkDirectoryURL.appending(path: "BundledScenarios.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(inputs.count) bundled scenarios",
                executable: try context.tool(named: "mdevsim-embed-scenarios").url,
                arguments: [output.path] + inputs.map(\.path),
                inputFiles: inputs,
                outputFiles: [output]),
        ]
    }
}

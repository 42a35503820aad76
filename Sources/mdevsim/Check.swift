import ArgumentParser
import Foundation
import Scenarios
import SystemPackage

/// `mdevsim check FILE...`: validates scenario files without running anything.
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate scenario files.",
        discussion: """
            Prints 'ok FILE' for each valid file and 'FILE:LINE:COLUMN: error: ...' on stderr for \
            each problem. A directory stands for every *.yaml file directly in it. Exits non-zero \
            if any file is invalid, or if this machine cannot serve its migration (the memory model \
            of scenarios/README.md against this machine's memory, or ulimit -v). The format is \
            described in scenarios/README.md.
            """
    )

    @Argument(help: "Scenario files, or directories whose *.yaml files are checked.")
    var paths: [String]

    @Flag(name: .shortAndLong, help: "Print only the diagnostics, not the 'ok FILE' lines.")
    var quiet = false

    func run() throws {
        var files: [String] = []
        var failed = false
        for path in paths {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
                let yaml = names.filter { $0.hasSuffix(".yaml") }.sorted()
                if yaml.isEmpty {
                    printError("\(path): error: no *.yaml files in the directory")
                    failed = true
                }
                files += yaml.map { path.hasSuffix("/") ? path + $0 : path + "/" + $0 }
            } else {
                files.append(path)
            }
        }
        for file in files {
            let diagnostics = ScenarioLoader.check(contentsOf: FilePath(file), memoryBudget: MachineMemory.budget())
            if diagnostics.isEmpty {
                if !quiet { print("ok \(file)") }
            } else {
                failed = true
                for diagnostic in diagnostics { printError(diagnostic.description) }
            }
        }
        if failed { throw ExitCode.failure }
    }

    private func printError(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}

import ArgumentParser
import Conformance
import Foundation
import Scenarios
import SystemPackage

/// `mdevsim check FILE...`: validates scenario files without running anything.
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate scenario files.",
        discussion: """
            Prints 'ok FILE' for each valid file and, on stderr, every problem of every file in \
            one pass, each once, in file and position order: 'FILE:LINE:COLUMN: error: ...' \
            (--format github: '::error file=FILE,line=LINE,col=COLUMN::...', the default when \
            GITHUB_ACTIONS=true). A directory stands for every *.yaml and *.yml file directly in \
            it. Two files whose scenarios share a name are refused with both files. A file whose \
            migration this machine cannot serve (the memory model of scenarios/README.md against \
            this machine's memory, or ulimit -v) is refused at its memory: line. The format is \
            described in scenarios/README.md.

            \(ExitStatus.help([.success, .failed, .badInput, .emptySelection, .usage]))
            """
    )

    @Argument(help: "Scenario files, or directories whose *.yaml and *.yml files are checked.")
    var paths: [String]

    @Flag(name: .shortAndLong, help: "Print only the diagnostics, not the 'ok FILE' lines.")
    var quiet = false

    @Option(name: .long, help: ArgumentHelp("Diagnostics as 'text' (FILE:LINE:COLUMN: error: ...) or 'github' (workflow commands). Default: github when GITHUB_ACTIONS=true, else text.", valueName: "format"))
    var format: DiagnosticFormat?

    @OptionGroup var logging: LoggingOptions

    func run() throws {
        logging.bootstrap()
        let files: [String]
        do {
            files = try ScenarioCatalog.files(paths)
        } catch {
            if error.isEmptyDirectory { throw CommandError("no scenario selected", cause: "\(error)", status: .emptySelection) }
            throw CommandError("cannot read \(error.path)", cause: error.reason, status: .badInput)
        }
        let style = format ?? .automatic
        var failed = false
        var entries: [ScenarioEntry] = []
        for file in files {
            let entry = ScenarioEntry(file: file, scenario: Result { () throws(ScenarioError) in try ScenarioLoader.load(contentsOf: FilePath(file)) })
            entries.append(entry)
            switch entry.scenario {
            case .success:
                // Valid, and servable here: the memory model against this machine.
                let memory = ScenarioLoader.check(contentsOf: FilePath(file), memoryBudget: MachineMemory.budget())
                if memory.isEmpty {
                    if !quiet { print("ok \(file)") }
                } else {
                    failed = true
                    for diagnostic in memory { CommandError.printLine(style.render(diagnostic)) }
                }
            case .failure(let error):
                failed = true
                for diagnostic in error.diagnostics { CommandError.printLine(style.render(diagnostic)) }
            }
        }
        let duplicates = ScenarioCatalog.duplicateNames(entries)
        if !duplicates.isEmpty {
            throw CommandError("duplicate scenario names", cause: duplicates.map(\.description).joined(separator: "; "),
                               fix: "give each scenario its own name", status: .badInput)
        }
        if failed { throw ExitStatus.failed.code }
    }
}

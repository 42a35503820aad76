import ArgumentParser
import Conformance
import Foundation
import Scenarios

/// `mdevsim scenarios`: the bundled library built into the executable.
struct ScenariosCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scenarios",
        abstract: "List the bundled scenarios built into the executable.",
        discussion: """
            Prints one line per bundled scenario: its name, its expected outcome and its \
            description. `mdevsim run` (no argument, or --builtin) runs them, from any \
            directory; `--show NAME` prints one scenario's file.

            \(ExitStatus.help([.success, .badInput, .usage]))
            """
    )

    @Option(name: .long, help: ArgumentHelp("Print this bundled scenario's file (by name) instead of the list.", valueName: "name"))
    var show: String?

    @OptionGroup var logging: LoggingOptions

    func run() throws {
        logging.bootstrap()
        if let show {
            guard let (_, text) = Scenario.bundledLibrary.first(where: { file, text in
                (try? ScenarioLoader.parse(text, file: file))?.name == show
            }) else {
                throw CommandError("no bundled scenario named \(show)", fix: "mdevsim scenarios lists them", status: .badInput)
            }
            print(text, terminator: "")
            return
        }
        let entries = ScenarioCatalog.bundled()
        let width = entries.map(\.name.count).max() ?? 0
        for entry in entries {
            let name = entry.name.padding(toLength: width, withPad: " ", startingAt: 0)
            switch entry.scenario {
            case .success(let s): print("\(name)  \(Self.outcome(s.expectation))  \(s.description)")
            case .failure(let e): print("\(name)  invalid: \(e.diagnostics.first?.description ?? "")")
            }
        }
    }

    static func outcome(_ e: Expectation) -> String {
        switch e.outcome {
        case .success: e.cancelled ? "cancel " : "success"
        case .failure: "failure"
        case .errorState: "error  "
        }
    }
}

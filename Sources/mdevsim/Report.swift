import ArgumentParser
import Conformance
import Foundation
import Report

/// `mdevsim report`: the HTML page of a trace or of a run's JSON report, after the fact.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Draw a trace or a run's JSON report as one self-contained HTML page.",
        discussion: """
            INPUT is a trace (`mdevsim mount --trace`, `mdevsim run --trace DIR`) or the JSON \
            report of `mdevsim run --json`. The page is the one `run --html` writes: a summary, \
            a row per scenario (failures first) that opens to its device_state timeline, the \
            convergence of pending_bytes, the chunks and, for a failure, the expected and \
            observed step and the last accesses before it. A JSON report holds the accesses the \
            charts need only when its run had --html too; a trace holds no verdict. Inline CSS \
            and SVG: it opens from file:// with no network. Prints the page's path.

            \(ExitStatus.help([.success, .badInput, .usage]))

            Examples:
              mdevsim report traces/mmap-on.trace.jsonl -o mmap-on.html
              mdevsim run --json run.json --html run.html && mdevsim report run.json -o again.html
            """
    )

    @Argument(help: ArgumentHelp("A trace (.jsonl) or the JSON report of mdevsim run.", valueName: "input"))
    var input: String

    @Option(name: [.customShort("o"), .long], help: ArgumentHelp("The HTML file to write.", valueName: "file.html"))
    var output: String

    func run() throws {
        let page: ReportPage
        do {
            page = try ReportInput.page(path: input, generator: HTMLOutput.generator)
        } catch {
            throw CommandError("cannot draw \(input)", cause: "\(error)", status: .badInput)
        }
        guard HTMLOutput.write(page, to: output, command: "report") else { throw ExitStatus.badInput.code }
    }
}

/// Writing a page and saying where it is: what `run --html`, `migrate --html` and `report` share.
enum HTMLOutput {
    static var generator: String { "mdevsim \(Mdevsim.configuration.version)" }

    /// Writes the page; prints `HTML report: PATH` (to stderr when stdout carries JSON).
    @discardableResult
    static func write(_ page: ReportPage, to path: String, command: String, toStderr: Bool = false) -> Bool {
        do {
            try Data(page.html().utf8).write(to: URL(fileURLWithPath: path))
        } catch {
            CommandError.printLine(CommandError("cannot write the HTML report \(path)", cause: error.localizedDescription, status: .badInput).line(command: command))
            return false
        }
        let line = "HTML report: \(URL(fileURLWithPath: path).standardizedFileURL.path)"
        if toStderr { CommandError.printLine(line) } else { print(line) }
        return true
    }
}

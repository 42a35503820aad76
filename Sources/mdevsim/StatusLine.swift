import Foundation
import Glibc
import Synchronization

/// The progress of a long command on stderr: on a terminal one live line, rewritten at most ten
/// times a second (scenario i/N, phase, bytes moved, rate, elapsed) and cleared before a result
/// line is printed; off a terminal (a CI log) a plain line every `plainInterval` seconds, so a
/// long scenario is never silent for long; nothing with `--quiet`.
final class StatusLine: Sendable {
    private struct State {
        var started = ContinuousClock.now
        var lastDraw: ContinuousClock.Instant?
        var lastPlain = ContinuousClock.now
    }

    let terminal: Bool
    let quiet: Bool
    let plainInterval: Duration
    let command: String
    private let state = Mutex(State())

    /// `MDEVSIM_PROGRESS_INTERVAL` seconds (default 10) between plain lines off a terminal.
    static var defaultPlainInterval: Duration {
        guard let text = ProcessInfo.processInfo.environment["MDEVSIM_PROGRESS_INTERVAL"], let seconds = Double(text),
              seconds >= 0, seconds.isFinite else { return .seconds(10) }
        return .milliseconds(Int(seconds * 1000))
    }

    init(command: String, quiet: Bool, plainInterval: Duration = StatusLine.defaultPlainInterval) {
        self.command = command
        self.quiet = quiet
        self.plainInterval = plainInterval
        terminal = isatty(STDERR_FILENO) == 1
    }

    /// A new item (a scenario) starts: its clock starts.
    func begin() {
        state.withLock { $0 = State() }
    }

    /// `prefix` (`[2/30] hot-set`) is doing `step` (the client's progress line, with its
    /// `N bytes moved`).
    func update(_ prefix: String, _ step: String) {
        guard !quiet else { return }
        let now = ContinuousClock.now
        let text: String? = state.withLock { s in
            let elapsed = now - s.started
            if terminal {
                if let last = s.lastDraw, now - last < .milliseconds(100) { return nil }
                s.lastDraw = now
            } else {
                if now - s.lastPlain < plainInterval { return nil }
                s.lastPlain = now
            }
            return "\(prefix): \(Self.describe(step, elapsed: elapsed))"
        }
        guard let text else { return }
        if terminal { draw(text) } else { FileHandle.standardError.write(Data("mdevsim \(command): \(text)\n".utf8)) }
    }

    /// Clears the live line (before a result line goes to stdout).
    func clear() {
        if terminal, !quiet { draw("") }
    }

    /// `pre-copy iteration 1: 12.0 MiB moved, pending 52.0 MiB, 210.5 MiB/s, 0.1 s`.
    static func describe(_ step: String, elapsed: Duration) -> String {
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        var parts = step.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        var moved: Double?
        for i in parts.indices {
            guard let n = UInt64(parts[i].trimmingCharacters(in: CharacterSet(charactersIn: ","))) else { continue }
            if i + 1 < parts.count, parts[i + 1].hasPrefix("bytes") {
                moved = Double(n)
                parts[i] = size(Double(n))
                parts[i + 1] = String(parts[i + 1].dropFirst(5))
            } else if i > 0, parts[i - 1] == "pending" {
                parts[i] = size(Double(n))
            }
        }
        var text = parts.joined(separator: " ").replacingOccurrences(of: "  ", with: " ")
        if let moved, seconds > 0 { text += ", \(size(moved / seconds))/s" }
        return text + String(format: ", %.1f s", seconds)
    }

    static func size(_ n: Double) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = n, i = 0
        while value >= 1024, i < units.count - 1 { value /= 1024; i += 1 }
        return i == 0 ? String(format: "%.0f B", value) : String(format: "%.1f %@", value, units[i])
    }

    private func draw(_ text: String) {
        var columns = 120
        var size = winsize()
        if ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { columns = Int(size.ws_col) }
        let shown = text.count >= columns ? String(text.prefix(columns - 1)) : text
        FileHandle.standardError.write(Data("\r\u{1B}[K\(shown)".utf8))
    }
}

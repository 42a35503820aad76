import Foundation
import Synchronization

/// What a run has done so far, shared between the thread that runs the scenarios and the one
/// that handles SIGINT, SIGTERM and `--timeout`: so that whoever stops the run can still write
/// the reports of everything that ran.
public final class RunJournal: Sendable {
    private struct State {
        var results: [ScenarioResult] = []
        var running: (index: Int, started: ContinuousClock.Instant)?
        var lastStep: String?
        var closed = false
    }

    public let entries: [ScenarioEntry]
    private let state = Mutex(State())

    public init(entries: [ScenarioEntry]) {
        self.entries = entries
    }

    /// Scenario `index` starts.
    public func begin(_ index: Int) {
        state.withLock {
            $0.running = (index, ContinuousClock.now)
            $0.lastStep = "setting up the devices"
        }
    }

    /// What the running scenario's migration is doing now (its progress line).
    public func step(_ text: String) {
        state.withLock { $0.lastStep = text }
    }

    /// Records the running scenario's result; false when the run was closed meanwhile (the
    /// result is then dropped: the scenario was already reported as an error).
    @discardableResult
    public func finish(_ result: ScenarioResult) -> Bool {
        state.withLock { s in
            guard !s.closed else { return false }
            s.results.append(result)
            s.running = nil
            return true
        }
    }

    /// Seconds the running scenario has run, if one is running.
    public func runningSeconds() -> Double? {
        state.withLock { s in
            guard let running = s.running, !s.closed else { return nil }
            let d = ContinuousClock.now - running.started
            return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        }
    }

    /// The results so far (once, the first caller wins: later `finish` calls are dropped).
    public var results: [ScenarioResult] { state.withLock { $0.results } }

    /// Stops the run: the results so far, the running scenario as an error (`error`, with its
    /// last step), every scenario after it as skipped (`skipped`). Nil when already closed.
    public func close(error: String, skipped: String, reproducible: Bool = false) -> [ScenarioResult]? {
        state.withLock { s in
            guard !s.closed else { return nil }
            s.closed = true
            var results = s.results
            var next = results.count
            if let running = s.running {
                let entry = entries[running.index]
                let d = ContinuousClock.now - running.started
                let seconds = reproducible ? 0 : Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
                let reason = "\(error) while running, at: \(s.lastStep ?? "unknown")"
                var result = ScenarioResult(name: entry.name, file: entry.file, verdict: Verdict(mismatches: [reason]), report: nil,
                                            durationSeconds: seconds, error: reason, lastStep: s.lastStep)
                result.migrationProtocol = entry.migrationProtocol
                if case .success(let scenario) = entry.scenario {
                    result.seed = scenario.seed
                    result.sourceType = scenario.sourceType?.name
                }
                results.append(result)
                next = running.index + 1
            }
            for entry in entries.dropFirst(next) {
                var result = ScenarioResult(name: entry.name, file: entry.file, verdict: .pass, report: nil, durationSeconds: 0, skipped: skipped)
                result.migrationProtocol = entry.migrationProtocol
                if case .success(let scenario) = entry.scenario {
                    result.seed = scenario.seed
                    result.sourceType = scenario.sourceType?.name
                }
                results.append(result)
            }
            return results
        }
    }
}

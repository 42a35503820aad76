import DeviceSimulator
import Foundation
import MigrationProtocol
import Scenarios
import SystemPackage

/// Whether one migration report meets a scenario's expectation, and every way it does not.
public struct Verdict: Sendable, Hashable, Codable {
    /// True when there is no mismatch.
    public var passed: Bool { mismatches.isEmpty }
    /// One line per mismatch, each saying what was expected and what was seen.
    public var mismatches: [String]
    /// Parts of the expectation that could not be checked under the entry's protocol (a v1
    /// region field named by `step:` under v2), each saying so: not failures, never silent.
    public var notes: [String]

    public init(mismatches: [String] = [], notes: [String] = []) {
        self.mismatches = mismatches
        self.notes = notes
    }

    public static let pass = Verdict()

    enum CodingKeys: String, CodingKey { case passed, mismatches, notes }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        mismatches = try c.decode([String].self, forKey: .mismatches)
        notes = try c.decodeIfPresent([String].self, forKey: .notes) ?? []
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(passed, forKey: .passed)
        try c.encode(mismatches, forKey: .mismatches)
        // Only when there are some: a v1 entry's verdict reads as it did before v2.
        if !notes.isEmpty { try c.encode(notes, forKey: .notes) }
    }
}

/// Judges reports against expectations. The rules, in order:
///
/// - any protocol violation the devices recorded is a mismatch, whatever the expected outcome
///   (the reference client must never violate the protocol);
/// - `.success`: the report is `completed` with equal digests; with `cancelled`, the report is
///   `cancelled` and the source is back in `running` (digests are not compared: nothing resumed);
/// - `.failure(errno, step)`: the report is `failed`, its errno equals the expected one (when the
///   scenario names one), its step matches `step` (see `StepMatcher`), and the source is back in
///   `running` (a failed migration must leave the guest running);
/// - `.errorState(recoversByReset)`: the report is `failed`, a device was found in the error state
///   (`recoveredByReset != nil`), and the reset recovered it exactly when the scenario says so;
/// - `minPrecopyIterations`, `converges`, `cancelled`, `minSourceTimeNs`: checked when the
///   scenario gives them.
///
/// Under v2 every rule applies alike, with the v2 name of running (`RUNNING`), except `step:`:
/// a `data read|write [in STATE]` step matches the v2 client's `data_fd read|write` in that
/// phase, while a header field or a `device_state` transition names the v1 region, which a v2
/// migration has not: that step is not checked, and the verdict's `notes` say so.
public enum Judge {
    public static func judge(_ report: MigrationReport, against expectation: Expectation,
                             protocol migrationProtocol: MigrationProtocolVersion = .v1) -> Verdict {
        var m: [String] = []
        var notes: [String] = []
        let running = migrationProtocol == .v1 ? "running" : V2DeviceState.running.description
        if !report.violations.isEmpty {
            let first = report.violations[0]
            let more = report.violations.count > 1 ? " (and \(report.violations.count - 1) more)" : ""
            m.append("\(report.violations.count) protocol violation\(report.violations.count == 1 ? "" : "s") recorded: \(first)\(more)")
        }
        let seen = describeOutcome(report)
        switch expectation.outcome {
        case .success:
            if expectation.cancelled {
                if report.outcome != "cancelled" {
                    m.append("expected the migration to be cancelled in pre-copy, but it \(seen)")
                } else if report.sourceState != running {
                    m.append("expected the source back in running after the cancel, found \(report.sourceState)")
                }
            } else if report.outcome != "completed" {
                m.append("expected success, but the migration \(seen)")
            } else if !report.digestsMatch {
                m.append("expected equal digests, got source \(report.sourceDigest ?? "none") and destination \(report.destinationDigest ?? "none")")
            }
        case .failure(let errno, let step):
            if report.outcome != "failed" {
                m.append("expected a failure at '\(step)'\(errno.map { " with \(ErrnoName.name(of: $0))" } ?? ""), but the migration \(seen)")
            } else {
                let failure = report.failure
                if let errno {
                    let expected = ErrnoName.name(of: errno)
                    let got = failure?.errno
                    if got.flatMap(errnoValue(named:)) != errno {
                        m.append("expected errno \(expected) at '\(step)', got \(got ?? "no errno") at '\(failure?.step ?? "?")'")
                    }
                }
                if migrationProtocol == .v2, !StepMatcher.appliesToV2(step) {
                    notes.append("step '\(step)' names the v1 region, which a v2 migration does not use (the migration failed at '\(failure?.step ?? "?")')")
                } else if let observed = failure?.step {
                    let matched = migrationProtocol == .v2
                        ? StepMatcher.matchesV2(observed: observed, expected: step)
                        : StepMatcher.matches(observed: observed, expected: step)
                    if !matched {
                        m.append("expected the failure at '\(step)', but it failed at '\(observed)'\(failure.map { ": \($0.message)" } ?? "")")
                    }
                } else {
                    m.append("expected the failure at '\(step)', but the report names no failing step")
                }
                if report.sourceState != running {
                    m.append("expected the source back in running after the failure, found \(report.sourceState)")
                }
            }
        case .errorState(let recoversByReset):
            if report.outcome != "failed" {
                m.append("expected a device to enter the error state, but the migration \(seen)")
            } else if let recovered = report.recoveredByReset {
                if recovered != recoversByReset {
                    m.append(recoversByReset
                        ? "expected a reset to bring the device in the error state back to running, but it did not"
                        : "expected the device to stay in the error state after a reset, but the reset brought it back to running")
                }
            } else {
                m.append("expected a device to enter the error state, but none did (the migration \(seen))")
            }
        }
        if expectation.outcome != .success || !expectation.cancelled, report.outcome == "cancelled" {
            m.append("the migration was cancelled, but the scenario does not expect a cancel")
        }
        if let minimum = expectation.minPrecopyIterations, report.precopyIterations < minimum {
            m.append("expected at least \(minimum) pre-copy iteration\(minimum == 1 ? "" : "s"), got \(report.precopyIterations)")
        }
        if let converges = expectation.converges, report.converged != converges {
            m.append(converges
                ? "expected pre-copy to converge (pending_bytes at most the stop threshold), but it ran out of iterations after \(report.precopyIterations)"
                : "expected pre-copy not to converge, but pending_bytes reached the stop threshold after \(report.precopyIterations) iteration\(report.precopyIterations == 1 ? "" : "s")")
        }
        if let minimum = expectation.minSourceTimeNs, report.sourceTimeMs * 1e6 < Double(minimum) {
            m.append("expected the source's device time to reach at least \(Double(minimum) / 1e6) ms, got \(report.sourceTimeMs) ms")
        }
        return Verdict(mismatches: m, notes: notes)
    }

    /// `completed`, `was cancelled`, `failed at 'STEP' (EIO): message`.
    static func describeOutcome(_ report: MigrationReport) -> String {
        switch report.outcome {
        case "completed": return report.digestsMatch ? "completed" : "completed with different digests"
        case "cancelled": return "was cancelled"
        case "failed":
            guard let f = report.failure else { return "failed" }
            return "failed at '\(f.step)'\(f.errno.map { " (\($0))" } ?? ""): \(f.message)"
        default: return report.outcome
        }
    }

    /// `EIO` -> EIO, `errno 71` -> 71: the names both tables use, and the client's fallback form.
    static func errnoValue(named name: String) -> Errno? {
        if let e = ErrnoName.errno(named: name) { return e }
        if name.hasPrefix("errno "), let n = Int32(name.dropFirst(6)) { return Errno(rawValue: n) }
        return nil
    }
}

/// Matches the step strings the reference client writes into `MigrationReport.failure.step`
/// against a scenario's `FailureStep`.
///
/// A client step is `[source|destination] SUBJECT [in PHASE]`, where `SUBJECT` is
/// `<field> read|write`, `data read|write [at N]`, or `device_state write A -> B`, and `PHASE`
/// is the client's phase (`setup`, `pre-copy`, `stop-and-copy`, `resumed`). The rule:
///
/// - `.access(field, op, state)` matches a step on that field with that operation;
/// - `.data(op, state)` matches a data-section read or write (any offset) with that operation;
/// - `.transition(from, to)` matches `device_state write FROM -> TO` (phase ignored);
/// - the role is not part of a `FailureStep`, so it is ignored; when the expected step names a
///   state, the state the accessed device was in must equal it: a destination is `resuming`
///   throughout the stream (whatever the client's phase), a source is in the client's phase
///   (`pre-copy`, `stop-and-copy`; `stop` after the save, unknown in `setup`).
public enum StepMatcher {
    /// Whether a `step:` has a v2 counterpart: only data moves do (the data_fd's read and write).
    public static func appliesToV2(_ expected: FailureStep) -> Bool {
        if case .data = expected { return true }
        return false
    }

    /// A v2 client step (`source data_fd read in pre-copy`, `destination data_fd write`) against a
    /// `data read|write [in STATE]` step: the operation, and the state the device was in (a
    /// source's phase, `stop-copy` standing for stop-and-copy; a destination is resuming).
    public static func matchesV2(observed step: String, expected: FailureStep) -> Bool {
        guard case .data(let op, let state) = expected else { return false }
        let o = parse(step.replacingOccurrences(of: "data_fd ", with: "data ").replacingOccurrences(of: " in stop-copy", with: " in stop-and-copy"))
        guard case .data(let p) = o.subject, p == op else { return false }
        guard let state else { return true }
        return o.deviceState.map { $0 & DeviceState.mask == state & DeviceState.mask } ?? false
    }

    /// A client step, parsed.
    public struct Observed: Sendable, Hashable {
        public enum Subject: Sendable, Hashable {
            case access(HeaderField, AccessOperation)
            case data(AccessOperation)
            case transition(from: UInt32, to: UInt32)
            case other(String)
        }

        public var role: String?
        public var subject: Subject
        public var phase: String?
        /// The device_state (bits) the accessed device held, when it can be told.
        public var deviceState: UInt32? {
            switch subject {
            case .transition(let from, _): return from
            case .other: return nil
            case .access, .data:
                if role == "destination" { return phase == "resumed" ? nil : DeviceState.resumingBit }
                guard let phase else { return nil }
                if phase == "resumed" { return DeviceState.stop.bits }
                if phase == "setup" { return nil }
                return StateName.bits(of: phase)
            }
        }
    }

    public static func parse(_ step: String) -> Observed {
        var text = Substring(step)
        var role: String?
        for r in ["source", "destination"] where text.hasPrefix(r + " ") {
            role = r
            text = text.dropFirst(r.count + 1)
        }
        var phase: String?
        if let range = text.range(of: " in ", options: .backwards) {
            phase = String(text[range.upperBound...])
            text = text[..<range.lowerBound]
        }
        if let arrow = text.range(of: " -> ") {
            let head = text[..<arrow.lowerBound]
            let toName = String(text[arrow.upperBound...]).trimmingCharacters(in: .whitespaces)
            let fromName = head.split(separator: " ").last.map(String.init) ?? ""
            if let from = StateName.bits(of: fromName), let to = StateName.bits(of: toName) {
                return Observed(role: role, subject: .transition(from: from, to: to), phase: phase)
            }
            return Observed(role: role, subject: .other(String(text)), phase: phase)
        }
        let words = text.split(separator: " ")
        if words.count >= 2, let op = AccessOperation(rawValue: String(words[1])) {
            if words[0] == "data" { return Observed(role: role, subject: .data(op), phase: phase) }
            if let field = HeaderField(rawValue: String(words[0])) {
                return Observed(role: role, subject: .access(field, op), phase: phase)
            }
        }
        return Observed(role: role, subject: .other(String(text)), phase: phase)
    }

    public static func matches(observed step: String, expected: FailureStep) -> Bool {
        let o = parse(step)
        func stateMatches(_ state: UInt32?) -> Bool {
            guard let state else { return true }
            return o.deviceState.map { $0 & DeviceState.mask == state & DeviceState.mask } ?? false
        }
        switch (expected, o.subject) {
        case (.access(let field, let op, let state), .access(let f, let p)):
            return field == f && op == p && stateMatches(state)
        case (.data(let op, let state), .data(let p)):
            return op == p && stateMatches(state)
        case (.transition(let from, let to), .transition(let f, let t)):
            return from & DeviceState.mask == f & DeviceState.mask && to & DeviceState.mask == t & DeviceState.mask
        default:
            return false
        }
    }
}

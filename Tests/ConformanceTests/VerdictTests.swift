@testable import Conformance
import DeviceSimulator
import MigrationProtocol
import Scenarios
import SystemPackage
import Testing

/// The judging rules, table-driven on synthetic reports.
typealias Expect = Scenarios.Expectation

@Suite struct VerdictTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var report: MigrationReport
        var expectation: Expect
        /// Empty: the verdict passes. Otherwise each string must appear in its own mismatch line.
        var mismatches: [String]
        var testDescription: String { name }
    }

    static let eio = Errno.ioError
    static let dataOffsetInStop = FailureStep.access(field: .dataOffset, operation: .read, state: DeviceState.stopAndCopy.bits)

    static let cases: [Case] = [
        // success
        Case(name: "success passes", report: report(), expectation: Expect(), mismatches: []),
        Case(name: "success with different digests", report: report(digestsMatch: false), expectation: Expect(),
             mismatches: ["expected equal digests"]),
        Case(name: "success but failed", report: report(outcome: "failed", failure: ("source data_offset read in pre-copy", "EIO")),
             expectation: Expect(), mismatches: ["expected success, but the migration failed at 'source data_offset read in pre-copy' (EIO)"]),
        Case(name: "success with a violation", report: report(violations: ["source: [reserved-bits] x", "destination: [y] z"]),
             expectation: Expect(), mismatches: ["2 protocol violations recorded: source: [reserved-bits] x (and 1 more)"]),
        Case(name: "success but cancelled", report: report(outcome: "cancelled", sourceState: "running"), expectation: Expect(),
             mismatches: ["expected success, but the migration was cancelled", "does not expect a cancel"]),
        // cancel
        Case(name: "cancel passes", report: report(outcome: "cancelled", iterations: 3, converged: false, sourceState: "running"),
             expectation: Expect(minPrecopyIterations: 2, cancelled: true), mismatches: []),
        Case(name: "cancel expected, completed", report: report(), expectation: Expect(cancelled: true),
             mismatches: ["expected the migration to be cancelled in pre-copy, but it completed"]),
        Case(name: "cancel leaves the source stopped", report: report(outcome: "cancelled", sourceState: "stop"),
             expectation: Expect(cancelled: true), mismatches: ["expected the source back in running after the cancel, found stop"]),
        // failure
        Case(name: "failure matches", report: report(outcome: "failed", failure: ("source data_offset read in stop-and-copy", "EIO")),
             expectation: Expect(outcome: .failure(errno: eio, step: dataOffsetInStop)), mismatches: []),
        Case(name: "failure with another errno", report: report(outcome: "failed", failure: ("source data_offset read in stop-and-copy", "EBUSY")),
             expectation: Expect(outcome: .failure(errno: eio, step: dataOffsetInStop)),
             mismatches: ["expected errno EIO at 'data_offset read in stop-and-copy', got EBUSY"]),
        Case(name: "failure without errno when one is expected", report: report(outcome: "failed", failure: ("source data_offset read in stop-and-copy", nil)),
             expectation: Expect(outcome: .failure(errno: eio, step: dataOffsetInStop)), mismatches: ["got no errno"]),
        Case(name: "failure, errno not given by the scenario", report: report(outcome: "failed", failure: ("source data_offset read in stop-and-copy", "EINVAL")),
             expectation: Expect(outcome: .failure(errno: nil, step: dataOffsetInStop)), mismatches: []),
        Case(name: "failure, errno in the client's numeric form", report: report(outcome: "failed", failure: ("source data_offset read in stop-and-copy", "errno 71")),
             expectation: Expect(outcome: .failure(errno: .protocolError, step: dataOffsetInStop)), mismatches: []),
        Case(name: "failure at another step", report: report(outcome: "failed", failure: ("source data_size read in stop-and-copy", nil)),
             expectation: Expect(outcome: .failure(errno: nil, step: .access(field: .pendingBytes, operation: .read, state: 2))),
             mismatches: ["expected the failure at 'pending_bytes read in stop-and-copy', but it failed at 'source data_size read in stop-and-copy': synthetic"]),
        Case(name: "failure in another phase", report: report(outcome: "failed", failure: ("source data_offset read in pre-copy", "EIO")),
             expectation: Expect(outcome: .failure(errno: eio, step: dataOffsetInStop)), mismatches: ["but it failed at 'source data_offset read in pre-copy'"]),
        Case(name: "failure expected, completed", report: report(), expectation: Expect(outcome: .failure(errno: eio, step: dataOffsetInStop)),
             mismatches: ["expected a failure at 'data_offset read in stop-and-copy' with EIO, but the migration completed"]),
        Case(name: "failure leaves the source stopped", report: report(outcome: "failed", failure: ("source data_offset read in stop-and-copy", "EIO"), sourceState: "stop-and-copy"),
             expectation: Expect(outcome: .failure(errno: eio, step: dataOffsetInStop)), mismatches: ["expected the source back in running after the failure, found stop-and-copy"]),
        Case(name: "destination step in resuming", report: report(outcome: "failed", failure: ("destination data_size write in pre-copy", "ENOSPC")),
             expectation: Expect(outcome: .failure(errno: .noSpace, step: .access(field: .dataSize, operation: .write, state: 4))), mismatches: []),
        Case(name: "transition", report: report(outcome: "failed", failure: ("source device_state write running -> pre-copy in setup", "EBUSY")),
             expectation: Expect(outcome: .failure(errno: .resourceBusy, step: .transition(from: 1, to: 3))), mismatches: []),
        Case(name: "data read", report: report(outcome: "failed", failure: ("source data read at 4096 in stop-and-copy", "EIO")),
             expectation: Expect(outcome: .failure(errno: eio, step: .data(operation: .read, state: 2))), mismatches: []),
        // error state
        Case(name: "error state recovered", report: report(outcome: "failed", failure: ("source device_state write pre-copy -> stop-and-copy in stop-and-copy", "EIO"), recovered: true),
             expectation: Expect(outcome: .errorState(recoversByReset: true)), mismatches: []),
        Case(name: "error state not recovered", report: report(outcome: "failed", failure: ("source data_offset read in pre-copy", "EIO"), recovered: false),
             expectation: Expect(outcome: .errorState(recoversByReset: true)), mismatches: ["expected a reset to bring the device in the error state back to running, but it did not"]),
        Case(name: "error state that should persist recovered", report: report(outcome: "failed", failure: ("source data_offset read in pre-copy", "EIO"), recovered: true),
             expectation: Expect(outcome: .errorState(recoversByReset: false)), mismatches: ["expected the device to stay in the error state after a reset"]),
        Case(name: "no error state", report: report(outcome: "failed", failure: ("source data_offset read in pre-copy", "EIO")),
             expectation: Expect(outcome: .errorState(recoversByReset: true)), mismatches: ["expected a device to enter the error state, but none did"]),
        Case(name: "error state expected, completed", report: report(), expectation: Expect(outcome: .errorState(recoversByReset: true)),
             mismatches: ["expected a device to enter the error state, but the migration completed"]),
        // figures
        Case(name: "too few iterations", report: report(iterations: 1), expectation: Expect(minPrecopyIterations: 8),
             mismatches: ["expected at least 8 pre-copy iterations, got 1"]),
        Case(name: "did not converge", report: report(iterations: 16, converged: false), expectation: Expect(converges: true),
             mismatches: ["expected pre-copy to converge (pending_bytes at most the stop threshold), but it ran out of iterations after 16"]),
        Case(name: "converged unexpectedly", report: report(iterations: 2), expectation: Expect(converges: false),
             mismatches: ["expected pre-copy not to converge"]),
        Case(name: "device time reached", report: report(), expectation: Expect(minSourceTimeNs: 1_000_000), mismatches: []),
        Case(name: "device time short of the stalls", report: report(), expectation: Expect(minSourceTimeNs: 50_000_000),
             mismatches: ["expected the source's device time to reach at least 50.0 ms, got 1.0 ms"]),
        Case(name: "every mismatch is reported", report: report(iterations: 1, converged: true, violations: ["v"]),
             expectation: Expect(outcome: .failure(errno: eio, step: dataOffsetInStop), minPrecopyIterations: 2, converges: false),
             mismatches: ["1 protocol violation recorded: v", "expected a failure", "at least 2", "not to converge"]),
    ]

    @Test(arguments: cases)
    func judges(_ c: Case) {
        let verdict = Judge.judge(c.report, against: c.expectation)
        #expect(verdict.passed == c.mismatches.isEmpty, "\(verdict.mismatches)")
        #expect(verdict.mismatches.count == c.mismatches.count, "\(verdict.mismatches)")
        for (line, wanted) in zip(verdict.mismatches, c.mismatches) {
            #expect(line.contains(wanted), "'\(line)' should contain '\(wanted)'")
            #expect(!line.contains("\n"), "a mismatch is one line")
        }
    }

    @Test(arguments: [
        ("source pending_bytes read in pre-copy", "pending_bytes read in pre-copy", true),
        ("source pending_bytes read in pre-copy", "pending_bytes read", true),
        // Was "pending_bytes write": the step grammar now refuses steps the client never reports.
        ("source pending_bytes read in pre-copy", "data_offset read", false),
        ("source data_size read in stop-and-copy", "data_size read in stop-and-copy", true),
        ("source data_size read in stop-and-copy", "data_size read in pre-copy", false),
        ("destination data_size write in pre-copy", "data_size write in resuming", true),
        ("destination data_size write in stop-and-copy", "data_size write", true),
        ("destination data_offset read in pre-copy", "data_offset read in pre-copy", false),
        ("source data read at 1048576 in stop-and-copy", "data read in stop-and-copy", true),
        ("source data read in pre-copy", "data read", true),
        ("destination data write at 8200 in pre-copy", "data write in resuming", true),
        ("destination data write at 8200 in pre-copy", "data read", false),
        ("source device_state write pre-copy -> stop-and-copy in stop-and-copy", "pre-copy -> stop-and-copy", true),
        ("source device_state write pre-copy -> stop-and-copy", "pre-copy -> stop-and-copy", true),
        ("source device_state write running -> pre-copy in setup", "running -> pre-copy", true),
        ("source device_state write running -> pre-copy in setup", "running -> stop", false),
        ("destination device_state write stop -> resuming in setup", "stop -> resuming", true),
        ("source device_state read in setup", "device_state read", true),
        ("source device_state read in setup", "device_state read in running", false),
        ("setup", "data read", false),
    ])
    func matchesSteps(_ observed: String, _ expectedText: String, _ matches: Bool) throws {
        let expected = try #require(Self.parseStep(expectedText), "test table: \(expectedText)")
        #expect(StepMatcher.matches(observed: observed, expected: expected) == matches, "\(observed) vs \(expectedText)")
    }

    /// A `FailureStep` from the scenario spelling, through the loader (the one parser of it).
    static func parseStep(_ text: String) -> FailureStep? {
        let yaml = """
            name: t
            types: [{type: t, memory: 1MiB}]
            expect: {outcome: failure, step: "\(text)"}
            """
        guard let scenario = try? ScenarioLoader.parse(yaml), case .failure(_, let step) = scenario.expectation.outcome else { return nil }
        return step
    }
}

/// The steps the reference client reports are the ones the `step:` grammar accepts: one definition.
@Suite struct ReportedStepTests {
    @Test func everyFailureStepOfTheLibraryIsReportable() throws {
        let entries = try ScenarioCatalog.collect([libraryDirectory]).filter { entry in
            guard case .success(let s) = entry.scenario, case .failure = s.expectation.outcome else { return false }
            return (s.sourceType?.configuration.memorySize ?? 0) <= 64 << 20
        }
        #expect(entries.count >= 8)
        for entry in entries {
            let result = ScenarioRunner(mode: .inProcess).run(entry)
            let step = try #require(result.report?.failure?.step, "\(entry.name) failed somewhere")
            switch StepMatcher.parse(step).subject {
            case .access(let field, let op):
                #expect(FailureStep.reportableAccesses[field]?.contains(op) == true, "\(entry.name): '\(step)' is outside the grammar's set")
            case .data, .transition:
                break
            case .other(let text):
                Issue.record("\(entry.name): '\(step)' (\(text)) is no step the grammar can name")
            }
        }
    }
}

import MigrationProtocol
import Testing

/// The 8x8 transition matrix against an oracle written from the rules in words, independently of
/// the table's cells.
@Suite struct TransitionTableTests {
    static let stop: UInt32 = 0b000, running: UInt32 = 0b001, stopAndCopy: UInt32 = 0b010
    static let preCopy: UInt32 = 0b011, resuming: UInt32 = 0b100, error: UInt32 = 0b110

    /// The rules: writes of a non-VALID value (101b, 110b, 111b) fail; the error state is left only
    /// by reset; 101b and 111b are never held; the same state succeeds unchanged; saving and
    /// resuming never mix; stop-and-copy does not go back to pre-copy; everything else is allowed.
    static func oracle(from: UInt32, to: UInt32) -> TransitionDecision {
        if from == 0b101 || from == 0b111 { return .unreachable }
        if from == error { return .rejected }
        if to == 0b101 || to == 0b111 || to == error { return .rejected }
        if from == to { return .unchanged }
        let fromSaving = from & 0b010 != 0, toSaving = to & 0b010 != 0
        if fromSaving && to == resuming || from == resuming && toSaving { return .rejected }
        if from == stopAndCopy && to == preCopy { return .rejected }
        return .allowed
    }

    @Test(arguments: 0..<UInt32(8))
    func rowMatchesOracle(_ from: UInt32) {
        for to: UInt32 in 0..<8 {
            #expect(TransitionTable.decision(from: from, to: to) == Self.oracle(from: from, to: to),
                    "\(String(from, radix: 2)) -> \(String(to, radix: 2))")
            #expect(!TransitionTable.reason(from: from, to: to).isEmpty)
        }
    }

    /// Every transition the uapi text draws, and every write QEMU 5.2-7.2 performs.
    @Test func documentedAndQEMUTransitionsAreAllowed() {
        let required: [(UInt32, UInt32, String)] = [
            (Self.running, Self.stop, "uapi 1 normal shutdown"),
            (Self.running, Self.stopAndCopy, "uapi 2 save/suspend"),
            (Self.stopAndCopy, Self.stop, "uapi 2/3 end of save"),
            (Self.running, Self.preCopy, "uapi 3 live migration"),
            (Self.preCopy, Self.stopAndCopy, "uapi 3"),
            (Self.running, Self.resuming, "uapi 4 resuming"),
            (Self.resuming, Self.running, "uapi 5 resumed"),
            (Self.preCopy, Self.running, "QEMU cancel in pre-copy"),
            (Self.stopAndCopy, Self.running, "QEMU failure after stop-and-copy"),
            (Self.stop, Self.running, "QEMU restart after failure of a paused guest"),
            (Self.stop, Self.stopAndCopy, "QEMU saving a paused guest / after reset"),
        ]
        for (from, to, why) in required {
            #expect(TransitionTable.decision(from: from, to: to) == .allowed, "\(why)")
        }
        for same: UInt32 in [Self.stop, Self.running, Self.stopAndCopy, Self.preCopy, Self.resuming] {
            #expect(TransitionTable.decision(from: same, to: same) == .unchanged, "QEMU rewrites the same state")
        }
    }
}

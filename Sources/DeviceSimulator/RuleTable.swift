/// The checker's table: for every rule, its class and whether an access that breaks it is
/// refused. `docs/vmm-guide.md` lists the same table (a test compares them), and the engine's
/// `violation` consults it to decide what `--strict` refuses.
extension ProtocolViolation {
    /// What a record means for the VMM author.
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
        /// Against the uapi text: recorded, and refused by `--strict`.
        case violation
        /// Allowed by the text but worth knowing (QEMU's split chunks, its clearing of reserved
        /// bits): recorded, never refused.
        case deviation
    }

    /// When the offending access fails.
    public enum Refusal: String, Sendable, Hashable, Codable, CaseIterable {
        /// Never: a deviation.
        case never
        /// Only on a `--strict` mount; otherwise the device goes on as a real driver would.
        case strict
        /// Always: there is nothing a driver could do with the access (an invalid state, a stream
        /// it cannot apply, a second owner).
        case always
    }

    /// One row of the table.
    public struct RuleEntry: Sendable, Hashable {
        public var rule: Rule
        public var kind: Kind
        public var refusal: Refusal
        public var citation: String
        /// True for the rules of migration v2 (the guide's second table).
        public var isV2: Bool
    }

    /// Every rule, in declaration order.
    public static var table: [RuleEntry] {
        Rule.allCases.map { RuleEntry(rule: $0, kind: $0.kind, refusal: $0.refusal, citation: $0.citation, isV2: $0.isV2) }
    }
}

extension ProtocolViolation.Rule {
    /// The rule's class: only QEMU-compatible habits the text allows are deviations.
    public var kind: ProtocolViolation.Kind {
        switch self {
        // QEMU 7.2 splits a chunk larger than the destination's data section (`vfio_load_buffer`)
        // and clears bits 3-31 in a device_state write (scenarios/reserved-bits.yaml): both migrate
        // correctly with a real driver, so they are recorded and never refused.
        case .resumeTransactions, .reservedBits: .deviation
        default: .violation
        }
    }

    /// Whether the offending access fails: `.never` for deviations, `.always` where the device
    /// cannot go on, `.strict` otherwise.
    public var refusal: ProtocolViolation.Refusal {
        switch self {
        case .resumeTransactions, .reservedBits:
            .never
        case .accessWidth, .readOnlyWrite, .invalidState, .concurrentOpen, .incompleteResume, .dataSizeOutsideResume,
             .dataSizeTooLarge, .resumeStream, .resumeOrder:
            // resume-order is judged where the stale section was refused: always.
            .always
        case .dataBeforeOffset, .dataOutsideWindow, .dataSizeWithoutOffset, .stopWithPending, .mixedDataAccess,
             .emptyResumeTransaction, .chunkNotRead, .pendingNotReread, .readAfterPendingZero:
            .strict
        case .v2SetError:
            .strict
        case .v2SetInError, .v2UnsupportedState, .v2StaleDataFD, .v2DataFDDirection, .v2ResumeIncomplete, .v2PrecopyInfoState:
            .always
        // The kernel's core and the mlx5 driver refuse these arguments whatever the mount.
        case .v2DMALogStartTwice, .v2DMALogRanges, .v2DMALogPageSize, .v2DMALogReportWithoutStart:
            .always
        // A REPORT past START's ranges (only the pds driver refuses it; a wrapping range is
        // refused by the core, EOVERFLOW, in DMALog) and a STOP without START (mlx5 answers 0).
        case .v2DMALogReportRange, .v2DMALogStopWithoutStart:
            .strict
        }
    }

    /// A rule of migration v2.
    public var isV2: Bool { rawValue.hasPrefix("v2-") }

    /// Whether a device with `strict` set fails the access that broke this rule.
    public func refuses(strict: Bool) -> Bool {
        switch refusal {
        case .never: false
        case .strict: strict
        case .always: true
        }
    }
}

/// What the vendor driver does when the user writes `device_state`.
public enum TransitionDecision: Sendable, Hashable {
    /// The written state equals the current one: succeed and change nothing.
    /// QEMU 5.2-7.2 rewrites the current state (its VM-start handler writes `1 -> 1`, the end of
    /// stop-and-copy writes `2 -> 2`), so this must never fail or restart a session.
    case unchanged
    /// The transition is performed.
    case allowed
    /// The write fails with `EINVAL` and the state stays as it was.
    case rejected
    /// The current state can never be held by a device (101b, 111b), so the row is never consulted.
    case unreachable
}

/// The v1 `device_state` transition table: *data*, one row per current state, one column per
/// written state (the three state bits). Every cell is documented with where it comes from.
///
/// Sources: "uapi N" is the numbered transition of the v14 uapi text (seed 002, kept in
/// `<linux/vfio.h>`); "QEMU" is what QEMU 5.2-7.2's `hw/vfio/migration.c` writes with its
/// `(state & mask) | value` updates; the rest are this simulator's documented choices.
public enum TransitionTable {
    // Cell codes: "=" unchanged, "ok" allowed, "x" rejected, "-" unreachable row.
    //
    //                   to: 000   001   010   011   100   101   110   111
    private static let cells: [[String]] = [
        /* 000 stop          */ ["=", "ok", "ok", "ok", "ok", "x", "x", "x"],
        /* 001 running       */ ["ok", "=", "ok", "ok", "ok", "x", "x", "x"],
        /* 010 stop-and-copy */ ["ok", "ok", "=", "x", "x", "x", "x", "x"],
        /* 011 pre-copy      */ ["ok", "ok", "ok", "=", "x", "x", "x", "x"],
        /* 100 resuming      */ ["ok", "ok", "x", "x", "=", "x", "x", "x"],
        /* 101 invalid       */ ["-", "-", "-", "-", "-", "-", "-", "-"],
        /* 110 error         */ ["x", "x", "x", "x", "x", "x", "x", "x"],
        /* 111 invalid       */ ["-", "-", "-", "-", "-", "-", "-", "-"],
    ]

    /// Why each allowed or rejected cell is what it is, for logs and documentation.
    /// Keys are `from << 3 | to`.
    private static let reasons: [UInt32: String] = [
        0b000_001: "QEMU: the VM starts (cont after a pause, or rollback after a failed migration of a paused guest)",
        0b000_010: "QEMU: saving a paused guest, or saving after a reset (save_setup sets _SAVING on a stopped device)",
        0b000_011: "choice: a stopped device may start and begin a save at once (same as 000->001->011)",
        0b000_100: "choice: a stopped device may prepare to resume (QEMU's load_setup writes (state & ~MASK) | _RESUMING)",
        0b001_000: "uapi 1: normal shutdown; QEMU: the VM stops (mask ~_RUNNING)",
        0b001_010: "uapi 2: save the state or suspend",
        0b001_011: "uapi 3: live migration starts pre-copy; QEMU save_setup",
        0b001_100: "uapi 4: resuming; QEMU load_setup",
        0b010_000: "uapi 2 and 3: stop-and-copy done; QEMU save_complete (mask ~_SAVING)",
        0b010_001: "QEMU: migration cancelled or failed after stop-and-copy began, the VM runs again",
        0b010_011: "choice: rejected; the final copy has begun, restarting the device inside the same save would make it not final (QEMU goes back through 001)",
        0b010_100: "choice: rejected; a device is the source or the destination of one session, never both (uapi has no such path)",
        0b011_000: "choice: abandoning a save and stopping is allowed; the save session is dropped",
        0b011_001: "QEMU: migration cancelled or failed in pre-copy (mask ~(_SAVING|_RESUMING) | _RUNNING)",
        0b011_010: "uapi 3: pre-copy to stop-and-copy; QEMU save_complete_precopy or the VM stops",
        0b011_100: "choice: rejected; saving and resuming do not mix (uapi has no such path)",
        0b100_000: "choice: abandoning a resume leaves the device stopped with what was applied",
        0b100_001: "uapi 5: resumed; QEMU: the destination VM starts",
        0b100_010: "choice: rejected; saving and resuming do not mix (QEMU writes 110b here, itself invalid)",
        0b100_011: "choice: rejected; saving and resuming do not mix",
    ]

    /// The decision for writing the state bits `to` while the device holds `from`.
    /// Both are taken modulo `VFIO_DEVICE_STATE_MASK`.
    public static func decision(from: UInt32, to: UInt32) -> TransitionDecision {
        switch cells[Int(from & DeviceState.mask)][Int(to & DeviceState.mask)] {
        case "=": .unchanged
        case "ok": .allowed
        case "-": .unreachable
        default: .rejected
        }
    }

    /// A short sentence saying why the cell is what it is.
    public static func reason(from: UInt32, to: UInt32) -> String {
        let f = from & DeviceState.mask, t = to & DeviceState.mask
        if let reason = reasons[f << 3 | t] { return reason }
        if f == t, DeviceState(rawValue: f).isValid { return "same state written again: succeeds, changes nothing" }
        if !DeviceState(rawValue: t).isValid {
            return t == 0b110
                ? "the error state is entered only by the device; the user may not write it"
                : "\(String(t, radix: 2))b is not VALID (VFIO_DEVICE_STATE_VALID)"
        }
        if DeviceState(rawValue: f).isError { return "only a device reset leaves the error state" }
        return "the device can never be in \(String(f, radix: 2))b"
    }
}

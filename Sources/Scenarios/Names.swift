import MigrationProtocol
import SystemPackage

/// The `device_state` names scenario files use, and the raw bits 0...7.
public enum StateName {
    /// Names of the state bits, as the uapi text and `DeviceState` call them.
    public static let names: [(name: String, bits: UInt32)] = [
        ("stop", 0b000), ("running", 0b001), ("stop-and-copy", 0b010), ("pre-copy", 0b011),
        ("resuming", 0b100), ("error", 0b110),
    ]

    /// `pre-copy` -> 3; `"5"` -> 5; anything else -> nil.
    public static func bits(of text: String) -> UInt32? {
        if let entry = names.first(where: { $0.name == text }) { return entry.bits }
        if let number = UInt32(text), number <= 7 { return number }
        return nil
    }

    /// The name of the state, or `<n>b` for the two bit patterns with no name.
    public static func name(of bits: UInt32) -> String {
        names.first { $0.bits == bits & DeviceState.mask }?.name ?? "\(String(bits & DeviceState.mask, radix: 2))b"
    }

    static let expectation = "a state (stop, running, stop-and-copy, pre-copy, resuming, error, or bits 0...7)"
}

/// Errno names scenario files may use, mapped to SystemPackage's `Errno`.
public enum ErrnoName {
    /// The accepted names: what a vendor driver plausibly returns from a region access.
    public static let table: [(name: String, errno: Errno)] = [
        ("EIO", .ioError), ("EINVAL", .invalidArgument), ("EAGAIN", .resourceTemporarilyUnavailable), ("ENOMEM", .noMemory),
        ("EBUSY", .resourceBusy), ("ENOSPC", .noSpace), ("EFAULT", .badAddress), ("EPERM", .notPermitted),
        ("ENODEV", .operationNotSupportedByDevice), ("ETIMEDOUT", .timedOut), ("ENXIO", .noSuchAddressOrDevice), ("EACCES", .permissionDenied),
        ("EINTR", .interrupted), ("ENOTSUP", .notSupported), ("ENOTTY", .inappropriateIOCTLForDevice), ("ERANGE", .outOfRange),
        ("EOVERFLOW", .overflow), ("EMSGSIZE", .messageTooLong), ("EBADMSG", .badMessage),
        ("EPROTO", .protocolError), ("ECANCELED", .canceled), ("ENODATA", .noData), ("ENOENT", .noSuchFileOrDirectory),
        ("EEXIST", .fileExists), ("EPIPE", .brokenPipe), ("ENOSYS", .noFunction), ("ENOTCONN", .socketNotConnected),
    ]

    /// `EIO` -> `Errno.EIO`.
    public static func errno(named name: String) -> Errno? {
        table.first { $0.name == name }?.errno
    }

    /// `Errno.EIO` -> `EIO`; unknown values as their number.
    public static func name(of errno: Errno) -> String {
        table.first { $0.errno == errno }?.name ?? "errno \(errno.rawValue)"
    }
}

import SystemPackage

/// The symbolic names of the errno values a driver returns, for reports and messages.
public enum ErrnoNames {
    static let table: [(String, Errno)] = [
        ("EPERM", .notPermitted), ("ENOENT", .noSuchFileOrDirectory), ("EIO", .ioError),
        ("ENXIO", .noSuchAddressOrDevice), ("EBADF", .badFileDescriptor), ("EAGAIN", .resourceTemporarilyUnavailable),
        ("ENOMEM", .noMemory), ("EACCES", .permissionDenied), ("EFAULT", .badAddress), ("EBUSY", .resourceBusy),
        ("EEXIST", .fileExists), ("ENODEV", .operationNotSupportedByDevice), ("EINVAL", .invalidArgument), ("ENOSPC", .noSpace),
        ("ENOSYS", .noFunction), ("ETIMEDOUT", .timedOut), ("ENOTCONN", .socketNotConnected), ("EPROTO", .protocolError),
        ("EOVERFLOW", .overflow), ("ECANCELED", .canceled),
    ]

    /// `EIO` for `.ioError`, or `errno N` for one not in the table.
    public static func name(of errno: Errno) -> String {
        table.first { $0.1 == errno }?.0 ?? "errno \(errno.rawValue)"
    }

    /// The errno for a name such as `EIO`.
    public static func errno(named name: String) -> Errno? {
        table.first { $0.0 == name.uppercased() }?.1
    }
}

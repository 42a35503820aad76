import SystemPackage

/// A failure of the FUSE layer: what went wrong, the errno when there is one, and a message
/// meant for an operator (it names the command that fixes it, when there is one).
public struct FUSEError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        /// `/dev/fuse` does not exist (module not loaded, or not in this container).
        case deviceMissing
        /// `/dev/fuse` exists but cannot be opened.
        case deviceNotAccessible
        case mountpointMissing
        case mountpointNotADirectory
        /// Something is already mounted on the mountpoint.
        case mountpointBusy
        /// A FUSE mount whose daemon is gone ("Transport endpoint is not connected").
        case staleMount
        case invalidOption
        case sessionCreationFailed
        case mountFailed
        case unmountFailed
        case loopFailed
        /// A lifecycle method was called in the wrong state (e.g. `run` before `mount`).
        case invalidState
    }

    public var kind: Kind
    public var errno: Errno?
    public var path: String?
    public var message: String

    public init(_ kind: Kind, errno: Errno? = nil, path: String? = nil, message: String) {
        self.kind = kind
        self.errno = errno
        self.path = path
        self.message = message
    }

    public var description: String {
        var s = message
        if let errno { s += " (\(errno), errno \(errno.rawValue))" }
        return s
    }
}

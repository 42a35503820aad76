import CFuse3

/// A FUSE node id (`fuse_ino_t`, a `UInt64` on the wire).
///
/// Named `FUSEInode`, not `Inode`: swift-system 1.7 has its own `Inode` (over `ino_t`), and
/// every FUSEKit client also imports SystemPackage.
///
/// `struct stat`'s `st_ino` is `ino_t` (`UInt` in Swift); the conversions are explicit so
/// that a `UInt`/`UInt64` mix-up is a compile error rather than a silent truncation.
public struct FUSEInode: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The `fuse_ino_t` value.
    public var rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ value: UInt64) { self.rawValue = value }

    /// From a `stat`'s `st_ino` (`ino_t`).
    public init(stIno: ino_t) { self.rawValue = UInt64(stIno) }

    /// As `ino_t`, for `st_ino`. `ino_t` is 64-bit on every Linux target Swift supports.
    public var stIno: ino_t { ino_t(truncatingIfNeeded: rawValue) }

    /// The root of every FUSE mount (`FUSE_ROOT_ID`).
    public static let root = FUSEInode(UInt64(FUSE_ROOT_ID))

    public static func < (lhs: FUSEInode, rhs: FUSEInode) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "inode \(rawValue)" }
}

import SystemPackage

/// An mdev device's name: the UUID written to a type's `create`, as the kernel's mdev core takes
/// it (`mdev_type_attr_create` -> `uuid_parse`): exactly 36 characters, hex digits (any case) and
/// dashes in the 8-4-4-4-12 shape, with one optional trailing newline (`echo $uuid > create`).
/// Anything else (spaces, signs, `0x`, a missing digit, a second newline) is `EINVAL`. Devices
/// are named by the lowercase form, as the kernel's `%pUl` names them.
///
/// The one parser of the project: the mount's `create`, the command line, traces of mounts.
/// The VFIO shim (C) has its own with the same grammar (`shim_parse_uuid`), tested on the same table.
public enum MdevUUID {
    /// Positions of the dashes in the 36 characters.
    private static let dashes: Set<Int> = [8, 13, 18, 23]

    /// The lowercase UUID `bytes` name, or `EINVAL`.
    public static func parse<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> Result<String, Errno> {
        var text = Array(bytes)
        if text.last == UInt8(ascii: "\n") { text.removeLast() }
        guard text.count == 36 else { return .failure(.invalidArgument) }
        var canonical = [UInt8]()
        canonical.reserveCapacity(36)
        for (i, c) in text.enumerated() {
            if dashes.contains(i) {
                guard c == UInt8(ascii: "-") else { return .failure(.invalidArgument) }
                canonical.append(c)
            } else {
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"): canonical.append(c)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): canonical.append(c + 32)
                default: return .failure(.invalidArgument)
                }
            }
        }
        return .success(String(decoding: canonical, as: UTF8.self))
    }

    /// The lowercase UUID `text` names, or `EINVAL`.
    public static func parse(_ text: String) -> Result<String, Errno> { parse(text.utf8) }

    /// Whether `text` is a UUID exactly as the mount names devices (lowercase, no newline).
    public static func isDeviceName(_ text: String) -> Bool {
        (try? parse(text).get()) == text
    }
}

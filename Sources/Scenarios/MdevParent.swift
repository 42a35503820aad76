/// The parent device a scenario's mdev types hang under in the mount's sysfs-shaped tree
/// (`class/mdev_bus/<parent>/`), scenario key `parent:`.
public enum MdevParent {
    /// What a scenario without `parent:` gets: the PCI address of a host bridge. A host bridge
    /// is never an mdev parent on a real machine, so the name cannot collide with a real
    /// parent's when the tree is shown beside a real `/sys/class/mdev_bus` (e.g. to mdevctl).
    public static let defaultName = "0000:00:00.0"

    /// Longest name accepted (a sysfs name is one path component; real parents are short:
    /// PCI addresses, `matrix`, `0.0.0010`).
    public static let maxNameLength = 64

    /// Whether `name` can name the parent's directory: 1...64 bytes of letters, digits, ':',
    /// '.', '-' and '_', and neither "." nor "..". Every kernel mdev parent name fits (PCI,
    /// CCW and AP device names are made of these).
    public static func isValid(_ name: String) -> Bool {
        guard (1...maxNameLength).contains(name.utf8.count), name != ".", name != ".." else { return false }
        return name.unicodeScalars.allSatisfy {
            $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || ":.-_".unicodeScalars.contains($0))
        }
    }
}

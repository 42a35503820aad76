/// The calling form of mount.fuse3 (what `mount -t fuse.mdevsim SOURCE MOUNTPOINT -o OPTS` and
/// an /etc/fstab line run): `mdevsim SOURCE MOUNTPOINT -o OPTS`, whose first argument is not a
/// subcommand. SOURCE is a scenario file, or `default` for the built-in default scenario.
enum MountHelperForm {
    /// The source that stands for the built-in default scenario.
    static let defaultSource = "default"

    /// `arguments` (without argv[0]) as the `mount` subcommand's, when they are in the
    /// mount.fuse3 form; nil otherwise. The source also becomes the mount's fsname (the
    /// "device" column of /proc/mounts, as sshfs and every fstab filesystem show it), unless
    /// the options name one or it cannot be written inside an option list.
    static func mountArguments(_ arguments: [String], subcommands: [String]) -> [String]? {
        guard arguments.count >= 2, let source = arguments.first, !source.hasPrefix("-"),
              !subcommands.contains(source), !arguments[1].hasPrefix("-") else { return nil }
        var result = ["mount", arguments[1]]
        if source != defaultSource { result += ["--scenario", source] }
        if !source.contains(where: { ",\\ \t\n".contains($0) }) { result += ["-o", "fsname=\(source)"] }
        return result + arguments.dropFirst(2)
    }
}

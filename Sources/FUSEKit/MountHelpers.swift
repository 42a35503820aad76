import Glibc
import SystemPackage

/// Where a path stands as a mountpoint.
public enum MountStatus: Sendable, Hashable {
    /// The path does not exist.
    case missing
    /// Exists but is not a directory.
    case notADirectory
    /// A directory with nothing mounted on it: usable.
    case notMounted
    /// Something is mounted there (with its filesystem type from /proc/self/mountinfo).
    case mounted(fileSystemType: String)
    /// A FUSE mount whose daemon is gone: `stat` fails with ENOTCONN
    /// ("Transport endpoint is not connected"). Clear it with `MountHelpers.unmount`.
    case stale
}

/// Checks and repairs the command layer needs around a mount, with typed errors whose
/// message names the fix.
public enum MountHelpers {
    /// The FUSE device.
    public static let fuseDevicePath = "/dev/fuse"

    /// Throws unless `/dev/fuse` exists and can be opened read-write.
    public static func checkFUSEDevice(path: String = fuseDevicePath) throws(FUSEError) {
        let fd = open(path, O_RDWR | O_CLOEXEC)
        if fd >= 0 {
            close(fd)
            return
        }
        let e = Errno(rawValue: errno)
        switch e {
        case .noSuchFileOrDirectory, .noSuchAddressOrDevice, .operationNotSupportedByDevice:
            throw FUSEError(.deviceMissing, errno: e, path: path, message:
                "\(path) is missing: install FUSE and load the module "
                + "(apt-get install -y fuse3 libfuse3-dev pkg-config; modprobe fuse), "
                + "or pass --device /dev/fuse to the container")
        default:
            throw FUSEError(.deviceNotAccessible, errno: e, path: path, message:
                "\(path) cannot be opened: run as root, or make it accessible (chmod 0666 \(path)); "
                + "in a container add --device /dev/fuse --cap-add SYS_ADMIN")
        }
    }

    /// What is at `path` as a mountpoint. Never blocks on a healthy mount of another daemon
    /// beyond one `stat`.
    public static func status(of path: String) -> MountStatus {
        var st = stat()
        if stat(path, &st) != 0 {
            switch errno {
            case ENOTCONN: return .stale
            default: return .missing
            }
        }
        if st.st_mode & S_IFMT != S_IFDIR { return .notADirectory }
        if let type = mountType(at: path) { return .mounted(fileSystemType: type) }
        return .notMounted
    }

    /// True when `path` is a FUSE mount whose daemon went away (ENOTCONN on stat).
    public static func isStaleMount(_ path: String) -> Bool { status(of: path) == .stale }

    /// True when something (healthy or stale) is mounted exactly at `path`.
    public static func isMountPoint(_ path: String) -> Bool { mountType(at: path) != nil }

    /// Throws unless `path` exists, is a directory and has nothing mounted on it.
    public static func checkMountpoint(_ path: String) throws(FUSEError) {
        switch status(of: path) {
        case .notMounted:
            return
        case .missing:
            throw FUSEError(.mountpointMissing, errno: .noSuchFileOrDirectory, path: path,
                            message: "mountpoint \(path) does not exist (mkdir -p \(path))")
        case .notADirectory:
            throw FUSEError(.mountpointNotADirectory, errno: .notDirectory, path: path,
                            message: "mountpoint \(path) is not a directory")
        case .mounted(let type):
            throw FUSEError(.mountpointBusy, errno: .resourceBusy, path: path,
                            message: "\(path) is already a mount (\(type)); unmount it first (umount \(path))")
        case .stale:
            throw FUSEError(.staleMount, errno: .socketNotConnected, path: path, message:
                "\(path) is a stale FUSE mount (Transport endpoint is not connected); "
                + "clear it with: fusermount3 -u -z \(path)   (or as root: umount -l \(path))")
        }
    }

    /// Unmounts `path`: lazily by default (`umount2(path, MNT_DETACH)` when root, otherwise
    /// `fusermount3 -u -z path`; works on stale mounts), or, with `lazy: false`, as
    /// `fusermount3 -u` does: refused (`EBUSY`) while a process holds a file of the mount.
    public static func unmount(_ path: String, lazy: Bool = true) throws(FUSEError) {
        if geteuid() == 0 {
            if umount2(path, lazy ? Int32(MNT_DETACH) : 0) == 0 { return }
            let e = Errno(rawValue: errno)
            throw FUSEError(.unmountFailed, errno: e, path: path, message:
                e == .invalidArgument ? "\(path) is not a mountpoint"
                    : e == .resourceBusy ? "\(path) is busy" : "unmounting \(path) failed")
        }
        let command = lazy ? ["fusermount3", "-u", "-z", path] : ["fusermount3", "-u", path]
        let status = spawnAndWait(command)
        guard status != 0 else { return }
        throw FUSEError(.unmountFailed, errno: status < 0 ? Errno(rawValue: -status) : lazy ? nil : .resourceBusy, path: path, message:
            status < 0
                ? "fusermount3 could not be run (apt-get install -y fuse3)"
                : "\(command.joined(separator: " ")) failed with status \(status)")
    }

    /// `path` with every symbolic link and `..` resolved, for `setDirtyShare` once `path` is a
    /// mount: resolve it before mounting, since resolving a mount not yet served blocks.
    public static func resolvedPath(_ path: String) -> String { canonicalPath(path) }

    /// Sets the share of the dirty-page budget (`max_ratio`, percent) of the backing device of
    /// the FUSE mount at `resolvedPath` (from `resolvedPath(_:)`), found in /proc/self/mountinfo
    /// without touching the mount; returns the sysfs directory it wrote in. The kernel gives a
    /// FUSE mount 1%, with strictlimit: a client that dirties more mapped pages of the mount
    /// than that (many data sections at once) makes the kernel write them back to the daemon
    /// while it works. Root only; the setting goes with the mount.
    @discardableResult
    public static func setDirtyShare(percent: Int, ofMountAt resolvedPath: String) throws(FUSEError) -> String {
        guard let entry = mountEntry(atResolved: resolvedPath) else {
            throw FUSEError(.invalidState, path: resolvedPath, message: "\(resolvedPath) is not a mount (no line of /proc/self/mountinfo)")
        }
        let bdi = "/sys/class/bdi/\(entry.device.0):\(entry.device.1)"
        let fd = open(bdi + "/max_ratio", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let e = Errno(rawValue: errno)
            throw FUSEError(.invalidState, errno: e, path: bdi, message: "cannot open \(bdi)/max_ratio (\(e))\(e == .permissionDenied ? ": root only" : "")")
        }
        defer { close(fd) }
        let text = Array("\(percent)\n".utf8)
        let written = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == text.count else {
            let e = Errno(rawValue: errno)
            throw FUSEError(.invalidState, errno: e, path: bdi, message: "writing \(percent) to \(bdi)/max_ratio failed (\(e))")
        }
        return bdi
    }

    // MARK: internals

    /// The filesystem type mounted exactly at `path`, from /proc/self/mountinfo.
    static func mountType(at path: String) -> String? { mountEntry(at: path)?.fileSystemType }

    /// The top mount exactly at `path`, from /proc/self/mountinfo.
    static func mountEntry(at path: String) -> MountEntry? { mountEntry(atResolved: canonicalPath(path)) }

    /// The top mount exactly at `target`, a path already resolved (no lookup of it is made).
    static func mountEntry(atResolved target: String) -> MountEntry? {
        guard let text = readFile("/proc/self/mountinfo") else { return nil }
        var found: MountEntry?
        for line in text.split(separator: "\n") {
            // id parent major:minor root mountpoint options [optional...] - fstype source superopts
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count > 5, unescapeMountinfo(fields[4]) == target,
                  let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count,
                  let id = Int(fields[0]) else { continue }
            let device = fields[2].split(separator: ":").compactMap { UInt32($0) }
            found = MountEntry(id: id, device: device.count == 2 ? (device[0], device[1]) : (0, 0),
                               mountpoint: target, fileSystemType: String(fields[dash + 1]))  // the last (top) mount wins
        }
        return found
    }

    /// One line of /proc/self/mountinfo, the parts FUSEKit uses.
    struct MountEntry {
        /// The mount's id (`mnt_id` in /proc/PID/fdinfo).
        let id: Int
        /// The filesystem's device number (major, minor), as /proc/PID/maps shows it in hex.
        let device: (UInt32, UInt32)
        let mountpoint: String
        let fileSystemType: String
    }

    /// realpath, falling back to the parent's realpath when the path itself cannot be
    /// resolved (a stale mount fails realpath with ENOTCONN).
    static func canonicalPath(_ path: String) -> String {
        if let p = realpath(path, nil) {
            defer { free(p) }
            return string(fromCString: p)
        }
        var trimmed = path
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        guard let slash = trimmed.lastIndex(of: "/") else {
            var buf = [CChar](repeating: 0, count: Int(PATH_MAX))
            guard getcwd(&buf, buf.count) != nil else { return trimmed }
            return String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
                + "/" + trimmed
        }
        let parent = slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
        let last = String(trimmed[trimmed.index(after: slash)...])
        let resolved = canonicalPath(parent)
        return resolved == "/" ? "/" + last : resolved + "/" + last
    }

    private static func string(fromCString p: UnsafePointer<CChar>) -> String {
        let bytes = UnsafeRawBufferPointer(start: p, count: strlen(p))
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func unescapeMountinfo(_ field: Substring) -> String {
        // mountinfo escapes space, tab, newline and backslash as \ooo.
        var bytes: [UInt8] = []
        var utf8 = Array(field.utf8)[...]
        while let b = utf8.popFirst() {
            if b == UInt8(ascii: "\\"), utf8.count >= 3,
               let v = UInt8(String(decoding: utf8.prefix(3), as: UTF8.self), radix: 8) {
                bytes.append(v)
                utf8 = utf8.dropFirst(3)
            } else {
                bytes.append(b)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            data.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Runs a program from PATH; returns its exit status, or -errno if it could not run.
    static func spawnAndWait(_ argv: [String]) -> Int32 {
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
        cargs.append(nil)
        defer { for p in cargs { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, argv[0], nil, nil, cargs, environ)
        guard rc == 0 else { return -rc }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return -errno }
        }
        // WIFEXITED / WEXITSTATUS by hand: Glibc's macros do not import.
        if status & 0x7f == 0 { return (status >> 8) & 0xff }
        return 128 + (status & 0x7f)
    }
}

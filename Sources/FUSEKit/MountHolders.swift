import Glibc

/// A process that keeps a mount busy, named the way `fuser -m` names it.
public struct MountHolder: Sendable, Hashable, CustomStringConvertible {
    /// How it holds the mount (fuser's letters: f, m, c).
    public enum Use: String, Sendable, Hashable {
        case openFile = "open file"
        case mapping = "mapped file"
        case workingDirectory = "working directory"
    }

    public let pid: pid_t
    /// Its `comm` (never its cmdline: reading that takes the process's mmap lock, which blocks
    /// for good on a process stuck in a page fault of a dead FUSE mount).
    public let command: String
    public let uses: [Use]

    public var description: String { "pid \(pid) (\(command): \(uses.map(\.rawValue).joined(separator: ", ")))" }
}

extension MountHelpers {
    /// The processes holding something of the mount at `mountpoint`: an open descriptor on it
    /// (/proc/PID/fdinfo's `mnt_id`), a mapping of one of its files (/proc/PID/maps' device) or
    /// their working directory in it. Empty when nothing is mounted there. Processes of other
    /// users are seen only by root, as with fuser. Never waits on the mount's daemon.
    public static func holders(of mountpoint: String) -> [MountHolder] {
        guard let mount = mountEntry(at: mountpoint) else { return [] }
        let me = getpid()
        var holders: [MountHolder] = []
        for name in directoryEntries("/proc") {
            guard let pid = pid_t(name), pid != me else { continue }
            var uses: [MountHolder.Use] = []
            if holdsDescriptor(pid, mountID: mount.id) { uses.append(.openFile) }
            if mapsFile(pid, device: mount.device) { uses.append(.mapping) }
            if let cwd = link("/proc/\(pid)/cwd"), cwd == mount.mountpoint || cwd.hasPrefix(mount.mountpoint + "/") {
                uses.append(.workingDirectory)
            }
            guard !uses.isEmpty else { continue }
            let comm = readFile("/proc/\(pid)/comm").map { String($0.prefix { $0 != "\n" }) } ?? "?"
            holders.append(MountHolder(pid: pid, command: comm, uses: uses))
        }
        return holders.sorted { $0.pid < $1.pid }
    }

    /// Whether a descriptor of `pid` is on the mount: fdinfo names the mount of every
    /// descriptor without touching the file (a stat through /proc/PID/fd/N would ask the daemon).
    private static func holdsDescriptor(_ pid: pid_t, mountID: Int) -> Bool {
        for fd in directoryEntries("/proc/\(pid)/fdinfo") {
            guard Int(fd) != nil, let info = readFile("/proc/\(pid)/fdinfo/\(fd)") else { continue }
            for line in info.split(separator: "\n") where line.hasPrefix("mnt_id:") {
                if Int(line.dropFirst(7).drop { $0 == " " || $0 == "\t" }) == mountID { return true }
            }
        }
        return false
    }

    /// Whether `pid` maps a file of the filesystem `device`. Skipped for a process with a
    /// thread in uninterruptible sleep: reading its maps waits for its mmap lock, which a page
    /// fault stuck on an unanswered FUSE request holds.
    private static func mapsFile(_ pid: pid_t, device: (UInt32, UInt32)) -> Bool {
        if hasBlockedThread(pid) { return false }
        guard let maps = readFile("/proc/\(pid)/maps") else { return false }
        for line in maps.split(separator: "\n") {
            // address perms offset major:minor inode path (device in hex)
            let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard fields.count >= 5, fields[4] != "0" else { continue }
            let dev = fields[3].split(separator: ":").compactMap { UInt32($0, radix: 16) }
            if dev.count == 2, dev[0] == device.0, dev[1] == device.1 { return true }
        }
        return false
    }

    /// Whether a thread of `pid` is in state D (its /proc/PID/task/TID/stat, read without any
    /// lock of the process).
    private static func hasBlockedThread(_ pid: pid_t) -> Bool {
        for tid in directoryEntries("/proc/\(pid)/task") {
            guard Int(tid) != nil, let stat = readFile("/proc/\(pid)/task/\(tid)/stat"),
                  let close = stat.lastIndex(of: ")") else { continue }
            if stat[close...].dropFirst(2).first == "D" { return true }
        }
        return false
    }

    /// The names in a directory (none if it cannot be read), without "." and "..".
    static func directoryEntries(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    static func link(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

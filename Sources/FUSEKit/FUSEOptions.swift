import Glibc

/// How a `FUSESession` mounts and runs.
public struct FUSEOptions: Sendable, Hashable {
    /// `-o allow_other`: let other users (e.g. QEMU under another uid) use the mount.
    public var allowOther = false
    /// `-o default_permissions`: the kernel checks every access against the modes and owners
    /// `getattr` reports, as for a local filesystem (without it FUSE checks nothing).
    public var defaultPermissions = false
    /// `-o fsname=`: the "device" column of /proc/mounts.
    public var fsname: String?
    /// `-o subtype=`: shown as `fuse.<subtype>`.
    public var subtype: String?
    /// `conn->max_readahead` (0 makes each page fault one page-sized READ).
    public var maxReadahead: UInt32?
    /// `conn->max_write` (libfuse 3.14's buffer caps it at 1 MiB).
    public var maxWrite: UInt32?
    /// `-o max_read=` and `conn->max_read` together (the kernel fails INIT if they differ).
    public var maxRead: UInt32?
    /// libfuse's request trace on stderr (`-d`).
    public var debug = false
    /// Negotiate `FUSE_DIRECT_IO_ALLOW_MMAP` when the kernel offers it, so `mmap(MAP_SHARED)`
    /// works on `direct_io` files. See `DirectIOMmapNegotiation.swift`.
    public var allowDirectIOMmap = false
    /// Install libfuse's SIGINT/SIGTERM/SIGHUP handlers while `run` is active (they end the
    /// loop; `run` then unmounts). libfuse supports one such session per process.
    public var handleSignals = true
    /// Worker thread cap of the multi-threaded loop (libfuse's default is 10).
    public var maxThreads: UInt32 = 10
    /// Idle workers kept around; nil keeps libfuse's default.
    public var maxIdleThreads: UInt32?
    /// Signal FUSEKit sends to the thread blocked in `run` to make it notice `exit()`.
    /// FUSEKit installs a no-op handler for it if it has none. Must not be blocked on that thread.
    public var wakeSignal: Int32 = SIGUSR2
    /// Further `-o` options passed verbatim (e.g. "default_permissions").
    public var extraMountOptions: [String] = []
    /// Arguments for `fuse_session_new` as a command line left them (`FUSECommandLine`), after
    /// everything above: libfuse takes the last of a repeated option, so these win.
    public var extraArguments: [String] = []
    /// `-s`: serve with libfuse's single-threaded loop instead of the multi-threaded one.
    public var singleThreaded = false
    /// `-o clone_fd`: a /dev/fuse descriptor per worker thread.
    public var cloneFD = false

    public init() {}

    /// Whether `-o auto_unmount` is among the arguments (libfuse then mounts through
    /// fusermount3, which stays as a watchdog for the life of the mount).
    var autoUnmount: Bool {
        let args = arguments
        return args.indices.contains { i in
            let option = args[i].hasPrefix("-o") && args[i].count > 2 ? String(args[i].dropFirst(2))
                : i > 0 && args[i - 1] == "-o" ? args[i] : ""
            return option.split(separator: ",").contains("auto_unmount")
        }
    }

    /// The libfuse argument vector these options stand for (argv[0] included).
    var arguments: [String] {
        var args = ["mdevsim"]
        if debug { args.append("-d") }
        var opts: [String] = []
        if allowOther { opts.append("allow_other") }
        if defaultPermissions { opts.append("default_permissions") }
        if let fsname { opts.append("fsname=\(fsname)") }
        if let subtype { opts.append("subtype=\(subtype)") }
        if let maxRead { opts.append("max_read=\(maxRead)") }
        opts.append(contentsOf: extraMountOptions)
        for o in opts { args.append(contentsOf: ["-o", o]) }
        return args + extraArguments
    }
}

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

    public init() {}

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
        return args
    }
}

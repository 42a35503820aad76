import CFuse3
import Glibc

/// A FUSE filesystem's command line as libfuse itself parses it: `fuse_opt_parse` takes out the
/// program's own `-o` options (its templates), then `fuse_parse_cmdline` takes `-f`, `-d`,
/// `-s`, `-o clone_fd`, `-o max_idle_threads=`, `-o max_threads=` and the mountpoint. What is
/// left (`-d`, every other `-o` option: `ro`, `allow_other`, `default_permissions`, `fsname=`,
/// `subtype=`, `auto_unmount`, ...) is for `fuse_session_new`, which refuses what it does not
/// know, as every libfuse filesystem does.
public struct FUSECommandLine: Sendable, Hashable {
    /// `-f` (or `-d`, which implies it in libfuse).
    public var foreground = false
    /// `-d` / `-o debug`.
    public var debug = false
    /// `-s`: libfuse's single-threaded loop.
    public var singleThreaded = false
    /// `-o clone_fd`.
    public var cloneFD = false
    /// `-o max_idle_threads=N`; nil when not given.
    public var maxIdleThreads: UInt32?
    /// `-o max_threads=N` (libfuse's default 10 when not given).
    public var maxThreads: UInt32 = 10
    /// The mountpoint, as libfuse resolved it (realpath); nil if none was given.
    public var mountpoint: String?
    /// The program's own options that matched its templates, in order: the template that
    /// matched and the whole option as written (`scenario=x.yaml`, `strict`).
    public var ownOptions: [OwnOption] = []
    /// What is left for `fuse_session_new`, without argv[0].
    public var sessionArguments: [String] = []

    /// One of the program's own options.
    public struct OwnOption: Sendable, Hashable {
        /// The template as passed to `parse` (`scenario=` or `strict`).
        public var template: String
        /// The option as written.
        public var text: String
        /// What follows the first `=` (nil for a flag).
        public var value: String? {
            text.firstIndex(of: "=").map { String(text[text.index(after: $0)...]) }
        }
    }

    public init() {}

    /// Parses `arguments` (without argv[0]; `program` stands in for it, libfuse derives the
    /// default subtype from it). `ownTemplates` are fuse_opt templates: `name` for a flag,
    /// `name=` for an option with a value. Throws with libfuse's own message (as it printed
    /// it on stderr) when libfuse refuses the line.
    public static func parse(_ arguments: [String], program: String = "mdevsim",
                             ownTemplates: [String]) throws(FUSEError) -> FUSECommandLine {
        var args = cfuse3_args_empty()
        defer { fuse_opt_free_args(&args) }
        for a in [program] + arguments where fuse_opt_add_arg(&args, a) != 0 {
            throw FUSEError(.invalidOption, errno: .noMemory, message: "could not build the FUSE arguments")
        }
        let templates = ownTemplates.map { strdup($0) }
        defer { templates.forEach { free($0) } }
        var table = templates.enumerated().map { cfuse3_opt_key($0.element, Int32($0.offset)) }
        table.append(cfuse3_opt_end())
        let collector = Collector()
        let box = Unmanaged.passRetained(collector)
        defer { box.release() }
        let rc = fuse_opt_parse(&args, box.toOpaque(), &table) { data, arg, key, _ in
            guard let data, let arg, key >= 0 else { return 1 }  // not ours: keep it for libfuse
            Unmanaged<Collector>.fromOpaque(data).takeUnretainedValue().matches.append((Int(key), String(cString: arg)))
            return 0  // ours: take it out of the line
        }
        guard rc == 0 else {
            throw FUSEError(.invalidOption, message: "libfuse could not parse the options \(arguments.joined(separator: " "))")
        }
        var opts = fuse_cmdline_opts()
        guard fuse_parse_cmdline_312(&args, &opts) == 0 else {
            throw FUSEError(.invalidOption, message:
                "libfuse refused the command line \(arguments.joined(separator: " ")) (its message is above)")
        }
        defer { free(opts.mountpoint) }
        var line = FUSECommandLine()
        line.foreground = opts.foreground != 0
        line.debug = opts.debug != 0
        line.singleThreaded = opts.singlethread != 0
        line.cloneFD = opts.clone_fd != 0
        line.maxIdleThreads = opts.max_idle_threads == UInt32.max ? nil : opts.max_idle_threads
        line.maxThreads = opts.max_threads
        line.mountpoint = opts.mountpoint.map { String(cString: $0) }
        line.ownOptions = collector.matches.map { OwnOption(template: ownTemplates[$0.0], text: $0.1) }
        line.sessionArguments = (1..<Int(args.argc)).compactMap { i in args.argv[i].map { String(cString: $0) } }
        return line
    }

    private final class Collector {
        var matches: [(Int, String)] = []
    }
}

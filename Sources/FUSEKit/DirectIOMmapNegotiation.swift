import CFuse3
import Glibc
import Synchronization

/// Negotiates `FUSE_DIRECT_IO_ALLOW_MMAP` with the kernel behind libfuse 3.14's back.
///
/// Why this exists: on a file opened with `FOPEN_DIRECT_IO` the kernel refuses
/// `mmap(MAP_SHARED)` with `ENODEV` unless INIT negotiated `FUSE_DIRECT_IO_ALLOW_MMAP`
/// (INIT `flags2` bit 4, flag bit 36; kernels 6.6+, named `DIRECT_IO_RELAX` in 6.6/6.7).
/// libfuse only gained a capability for it in 3.17; 3.14 (Debian's) cannot ask for it.
/// 3.14 does have `fuse_session_custom_io`, so FUSEKit installs read/writev hooks on the fd
/// `fuse_session_mount` opened: the read hook notes whether the kernel's INIT request has
/// `FUSE_INIT_EXT` and offers the bit, and the writev hook sets the bit (and `FUSE_INIT_EXT`)
/// in libfuse's own INIT reply. When the kernel does not offer it, nothing is changed and the
/// session reports `directIOMmapNegotiated == false`. Remove this file once libfuse >= 3.17
/// can be required. Side effect: with custom io installed libfuse does not use splice.
final class DirectIOMmapNegotiation: Sendable {
    /// `FUSE_DIRECT_IO_ALLOW_MMAP` within `flags2` (1 << 36 overall).
    static let allowMmapFlags2Bit: UInt32 = 1 << 4
    static let initExtFlag: UInt32 = UInt32(FUSE_INIT_EXT)
    static let initOpcode: UInt32 = 26  // FUSE_INIT

    // Wire offsets, taken from the kernel's own structs in <linux/fuse.h>.
    static let inHeaderSize = MemoryLayout<fuse_in_header>.size
    static let inHeaderOpcode = MemoryLayout<fuse_in_header>.offset(of: \.opcode) ?? 4
    static let inHeaderUnique = MemoryLayout<fuse_in_header>.offset(of: \.unique) ?? 8
    static let initInFlags = MemoryLayout<fuse_init_in>.offset(of: \.flags) ?? 12
    static let initInFlags2 = MemoryLayout<fuse_init_in>.offset(of: \.flags2) ?? 16
    static let outHeaderError = MemoryLayout<fuse_out_header>.offset(of: \.error) ?? 4
    static let outHeaderUnique = MemoryLayout<fuse_out_header>.offset(of: \.unique) ?? 8
    static let initOutFlags = MemoryLayout<fuse_init_out>.offset(of: \.flags) ?? 12
    static let initOutFlags2 = MemoryLayout<fuse_init_out>.offset(of: \.flags2) ?? 32

    struct State {
        var initUnique: UInt64?
        var kernelFlags: UInt32 = 0
        var kernelFlags2: UInt32 = 0
        var offered = false
        var replyPatched = false
    }

    let enabled: Bool
    /// Fast path: once INIT is answered the hooks only pass data through.
    private let done = Atomic<Bool>(false)
    private let negotiatedFlag = Atomic<Bool>(false)
    private let settledFlag = Atomic<Bool>(false)
    private let state = Mutex(State())

    init(enabled: Bool) { self.enabled = enabled }

    /// The kernel's INIT offered the flag (false until INIT was read, and when disabled).
    var kernelOffers: Bool { state.withLock { $0.offered } }
    /// The flag was set in the INIT reply and the kernel accepted the reply.
    var negotiated: Bool { negotiatedFlag.load(ordering: .acquiring) }

    /// Installs the hooks. Must run after `fuse_session_mount` and before the loop.
    func install(on se: OpaquePointer) -> Int32 {
        var io = fuse_custom_io()
        io.read = directIOMmapReadHook
        io.writev = directIOMmapWritevHook
        return fuse_session_custom_io(se, &io, fuse_session_fd(se))
    }

    func inspectRequest(_ buf: UnsafeRawPointer, count: Int) {
        guard !done.load(ordering: .relaxed), count >= Self.inHeaderSize else { return }
        let opcode = buf.loadUnaligned(fromByteOffset: Self.inHeaderOpcode, as: UInt32.self)
        guard opcode == Self.initOpcode, count >= Self.inHeaderSize + Self.initInFlags + 4 else { return }
        let unique = buf.loadUnaligned(fromByteOffset: Self.inHeaderUnique, as: UInt64.self)
        let flags = buf.loadUnaligned(fromByteOffset: Self.inHeaderSize + Self.initInFlags, as: UInt32.self)
        var flags2: UInt32 = 0
        if flags & Self.initExtFlag != 0, count >= Self.inHeaderSize + Self.initInFlags2 + 4 {
            flags2 = buf.loadUnaligned(fromByteOffset: Self.inHeaderSize + Self.initInFlags2, as: UInt32.self)
        }
        state.withLock {
            $0.initUnique = unique
            $0.kernelFlags = flags
            $0.kernelFlags2 = flags2
            $0.offered = flags & Self.initExtFlag != 0 && flags2 & Self.allowMmapFlags2Bit != 0
        }
    }

    /// Sets the bit in libfuse's INIT reply if this is that reply and the kernel offered it.
    /// Returns true when the reply was patched.
    func patchReply(_ iov: UnsafeMutablePointer<iovec>, count: Int32) -> Bool {
        guard !done.load(ordering: .relaxed), count >= 1 else { return false }
        let header = iov[0]
        guard let hbase = header.iov_base, header.iov_len >= 16 else { return false }
        let unique = UnsafeRawPointer(hbase).loadUnaligned(fromByteOffset: Self.outHeaderUnique, as: UInt64.self)
        let error = UnsafeRawPointer(hbase).loadUnaligned(fromByteOffset: Self.outHeaderError, as: Int32.self)
        return state.withLock { st -> Bool in
            guard let initUnique = st.initUnique, initUnique == unique else { return false }
            done.store(true, ordering: .relaxed)
            guard enabled, st.offered, error == 0, count >= 2,
                  let body = iov[1].iov_base, iov[1].iov_len >= Self.initOutFlags2 + 4 else { return false }
            let flags = body.loadUnaligned(fromByteOffset: Self.initOutFlags, as: UInt32.self)
            let flags2 = body.loadUnaligned(fromByteOffset: Self.initOutFlags2, as: UInt32.self)
            body.storeBytes(of: flags | Self.initExtFlag, toByteOffset: Self.initOutFlags, as: UInt32.self)
            body.storeBytes(of: flags2 | Self.allowMmapFlags2Bit, toByteOffset: Self.initOutFlags2, as: UInt32.self)
            st.replyPatched = true
            return true
        }
    }

    func replyWritten(patched: Bool, result: Int) {
        if patched && result >= 0 { negotiatedFlag.store(true, ordering: .releasing) }
        if !settledFlag.load(ordering: .relaxed) && done.load(ordering: .acquiring) {
            settledFlag.store(true, ordering: .releasing)
        }
    }

    /// The INIT reply has been written (so `negotiated` is final).
    var settled: Bool { settledFlag.load(ordering: .acquiring) }
}

// The hooks get libfuse's session userdata: the SessionContext. They keep errno intact by
// doing no other syscall after the real read/writev.
private let directIOMmapReadHook: @convention(c) (
    Int32, UnsafeMutableRawPointer?, Int, UnsafeMutableRawPointer?
) -> Int = { fd, buf, len, userdata in
    let n = Glibc.read(fd, buf, len)
    if n > 0, let buf, let userdata {
        SessionContext.from(userdata).negotiation.inspectRequest(buf, count: n)
    }
    return n
}

private let directIOMmapWritevHook: @convention(c) (
    Int32, UnsafeMutablePointer<iovec>?, Int32, UnsafeMutableRawPointer?
) -> Int = { fd, iov, count, userdata in
    guard let iov, let userdata else { return Glibc.writev(fd, iov, count) }
    let negotiation = SessionContext.from(userdata).negotiation
    let patched = negotiation.patchReply(iov, count: count)
    let n = Glibc.writev(fd, iov, count)
    negotiation.replyWritten(patched: patched, result: n)
    return n
}

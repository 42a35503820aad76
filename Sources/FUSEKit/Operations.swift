import CFuse3
import Glibc
import SystemPackage

// The C-callable operations table. It lives in a library file (never main.swift) so the
// closures are not main-actor isolated: libfuse calls them on its worker threads. They cannot
// capture context (@convention(c)); everything per-mount comes from fuse_req_userdata.

extension SessionContext {
    /// Starts a request: its typed context and the reply core that owns the fuse_req_t.
    func begin(_ req: fuse_req_t, _ operation: String) -> (Request, ReplyCore) {
        let slot = RequestSlot(req, operation: operation, context: self)
        return (Request(req), ReplyCore(slot))
    }

    /// Starts a request of the data path (read, write): it enters the pending registry only if
    /// `body` returns without answering it (see `RequestSlot`).
    func serve(_ req: fuse_req_t, _ operation: String, _ body: (Request, ReplyCore) -> Void) {
        let slot = RequestSlot(req, operation: operation, context: self, registerNow: false)
        body(Request(req), ReplyCore(slot))
        slot.registerIfPending()
    }
}

/// Resolves the context, or fails the request with EIO (userdata is always set by
/// FUSESession; this only guards against a broken invariant without crashing).
private func context(_ req: fuse_req_t?) -> (fuse_req_t, SessionContext)? {
    guard let req else { return nil }
    guard let ctx = SessionContext.from(req) else {
        _ = fuse_reply_err(req, EIO)
        return nil
    }
    return (req, ctx)
}

private func name(_ cstr: UnsafePointer<CChar>?) -> String {
    cstr.map { String(cString: $0) } ?? ""
}

private func openFlags(_ fi: UnsafeMutablePointer<fuse_file_info>?) -> OpenFlags {
    OpenFlags(rawValue: fi?.pointee.flags ?? 0)
}

private func refuse(_ req: fuse_req_t?, _ operation: String, _ change: TreeChange) {
    guard let (req, ctx) = context(req) else { return }
    let (request, core) = ctx.begin(req, operation)
    ctx.filesystem.change(request, change, reply: RefusalReply(core))
}

func makeLowLevelOperations() -> fuse_lowlevel_ops {
    var ops = fuse_lowlevel_ops()

    ops.`init` = { userdata, conn in
        guard let userdata, let conn else { return }
        SessionContext.from(userdata).handleInit(conn)
    }
    ops.destroy = { userdata in
        guard let userdata else { return }
        SessionContext.from(userdata).filesystem.destroy()
    }
    ops.lookup = { req, parent, cname in
        guard let (req, ctx) = context(req) else { return }
        let (request, core) = ctx.begin(req, "lookup")
        ctx.filesystem.lookup(request, parent: FUSEInode(parent), name: name(cname), reply: EntryReply(core))
    }
    ops.forget = { req, ino, nlookup in
        guard let req else { return }
        if let ctx = SessionContext.from(req) {
            ctx.filesystem.forget(Request(req), inode: FUSEInode(ino), lookups: nlookup)
        }
        fuse_reply_none(req)
    }
    ops.getattr = { req, ino, fi in
        guard let (req, ctx) = context(req) else { return }
        let (request, core) = ctx.begin(req, "getattr")
        ctx.filesystem.getattr(request, inode: FUSEInode(ino), handle: fi?.pointee.fh, reply: AttrReply(core))
    }
    ops.setattr = { req, ino, attr, toSet, fi in
        guard let (req, ctx) = context(req) else { return }
        let (request, core) = ctx.begin(req, "setattr")
        let changes = attr.map { AttributeChanges(stat: $0.pointee, toSet: toSet) } ?? AttributeChanges()
        ctx.filesystem.setattr(request, inode: FUSEInode(ino), changes: changes, handle: fi?.pointee.fh,
                               reply: AttrReply(core))
    }
    ops.readlink = { req, ino in
        guard let (req, ctx) = context(req) else { return }
        let (request, core) = ctx.begin(req, "readlink")
        ctx.filesystem.readlink(request, inode: FUSEInode(ino), reply: ReadlinkReply(core))
    }
    ops.opendir = { req, ino, fi in
        guard let (req, ctx) = context(req) else { return }
        let (request, core) = ctx.begin(req, "opendir")
        ctx.filesystem.opendir(request, inode: FUSEInode(ino), flags: openFlags(fi), reply: OpenReply(core))
    }
    ops.readdir = { req, ino, size, off, fi in
        guard let (req, ctx) = context(req) else { return }
        let (request, core) = ctx.begin(req, "readdir")
        ctx.filesystem.readdir(request, inode: FUSEInode(ino), handle: fi?.pointee.fh ?? 0,
                               reply: DirectoryReply(core, offset: Int64(off), size: size))
    }
    ops.releasedir = { req, ino, fi in
        guard let (req, ctx) = context(req) else { return }
        let (request, core) = ctx.begin(req, "releasedir")
        ctx.filesystem.releasedir(request, inode: FUSEInode(ino), handle: fi?.pointee.fh ?? 0, reply: EmptyReply(core))
    }
    ops.open = { req, ino, fi in
        guard let (req, ctx) = context(req) else { return }
        let (request, core) = ctx.begin(req, "open")
        ctx.filesystem.open(request, inode: FUSEInode(ino), flags: openFlags(fi), reply: OpenReply(core))
    }
    ops.read = { req, ino, size, off, fi in
        guard let (req, ctx) = context(req) else { return }
        let read = ReadRequest(inode: FUSEInode(ino), handle: fi?.pointee.fh ?? 0, offset: Int64(off),
                               size: size, flags: openFlags(fi), lockOwner: fi?.pointee.lock_owner ?? 0)
        ctx.serve(req, "read") { request, core in ctx.filesystem.read(request, read, reply: DataReply(core)) }
    }
    ops.write = { req, ino, buf, size, off, fi in
        guard let (req, ctx) = context(req) else { return }
        let write = WriteRequest(inode: FUSEInode(ino), handle: fi?.pointee.fh ?? 0, offset: Int64(off), size: size,
                                 flags: openFlags(fi), isWritepage: cfuse3_fi_writepage(fi) != 0,
                                 lockOwner: fi?.pointee.lock_owner ?? 0)
        let data = UnsafeRawBufferPointer(start: buf, count: buf == nil ? 0 : size)
        ctx.serve(req, "write") { request, core in ctx.filesystem.write(request, write, data: data, reply: WriteReply(core)) }
    }
    ops.flush = { req, ino, fi in
        guard let (req, ctx) = context(req) else { return }
        let (request, core) = ctx.begin(req, "flush")
        ctx.filesystem.flush(request, inode: FUSEInode(ino), handle: fi?.pointee.fh ?? 0,
                             lockOwner: fi?.pointee.lock_owner ?? 0, reply: EmptyReply(core))
    }
    ops.release = { req, ino, fi in
        guard let (req, ctx) = context(req) else { return }
        let (request, core) = ctx.begin(req, "release")
        ctx.filesystem.release(request, inode: FUSEInode(ino), handle: fi?.pointee.fh ?? 0, flags: openFlags(fi),
                               reply: EmptyReply(core))
    }
    ops.fsync = { req, ino, datasync, fi in
        guard let (req, ctx) = context(req) else { return }
        let (request, core) = ctx.begin(req, "fsync")
        ctx.filesystem.fsync(request, inode: FUSEInode(ino), handle: fi?.pointee.fh ?? 0, dataOnly: datasync != 0,
                             reply: EmptyReply(core))
    }
    ops.statfs = { req, ino in
        guard let (req, ctx) = context(req) else { return }
        let (request, core) = ctx.begin(req, "statfs")
        ctx.filesystem.statfs(request, inode: FUSEInode(ino), reply: StatfsReply(core))
    }
    ops.create = { req, parent, cname, mode, _ in
        refuse(req, "create", .create(parent: FUSEInode(parent), name: name(cname), mode: UInt32(mode)))
    }
    ops.mknod = { req, parent, cname, mode, _ in
        refuse(req, "mknod", .mknod(parent: FUSEInode(parent), name: name(cname), mode: UInt32(mode)))
    }
    ops.mkdir = { req, parent, cname, mode in
        refuse(req, "mkdir", .mkdir(parent: FUSEInode(parent), name: name(cname), mode: UInt32(mode)))
    }
    ops.symlink = { req, target, parent, cname in
        refuse(req, "symlink", .symlink(parent: FUSEInode(parent), name: name(cname), target: name(target)))
    }
    ops.link = { req, ino, newParent, newName in
        refuse(req, "link", .link(inode: FUSEInode(ino), newParent: FUSEInode(newParent), newName: name(newName)))
    }
    ops.unlink = { req, parent, cname in
        refuse(req, "unlink", .unlink(parent: FUSEInode(parent), name: name(cname)))
    }
    ops.rmdir = { req, parent, cname in
        refuse(req, "rmdir", .rmdir(parent: FUSEInode(parent), name: name(cname)))
    }
    ops.rename = { req, parent, cname, newParent, newName, _ in
        refuse(req, "rename", .rename(parent: FUSEInode(parent), name: name(cname), newParent: FUSEInode(newParent), newName: name(newName)))
    }
    ops.retrieve_reply = { req, cookie, ino, offset, bufv in
        guard let req else { return }
        // The kernel's NOTIFY_REPLY takes no answer; libfuse still needs the request freed.
        defer { fuse_reply_none(req) }
        let cookieValue = UInt64(UInt(bitPattern: cookie))
        guard let ctx = SessionContext.from(req) else { return }
        ctx.deliverRetrieve(cookie: cookieValue, inode: FUSEInode(ino), offset: Int64(offset), bufv: bufv)
    }
    return ops
}

extension SessionContext {
    fileprivate func handleInit(_ conn: UnsafeMutablePointer<fuse_conn_info>) {
        // Options first, so the filesystem sees (and may override) the effective values.
        if let maxWrite = options.maxWrite { conn.pointee.max_write = maxWrite }
        // The kernel fails INIT with EPROTO unless conn->max_read equals the mount's max_read.
        if let maxRead = options.maxRead { conn.pointee.max_read = maxRead }
        if let maxReadahead = options.maxReadahead { conn.pointee.max_readahead = maxReadahead }

        let offered = negotiation.kernelOffers
        var info = ConnectionInfo(
            protocolMajor: conn.pointee.proto_major, protocolMinor: conn.pointee.proto_minor,
            capable: conn.pointee.capable, want: conn.pointee.want,
            maxWrite: conn.pointee.max_write, maxRead: conn.pointee.max_read,
            maxReadahead: conn.pointee.max_readahead, maxBackground: conn.pointee.max_background,
            timeGranularity: conn.pointee.time_gran,
            kernelOffersDirectIOMmap: offered,
            directIOMmapRequested: options.allowDirectIOMmap && offered)
        filesystem.initialize(connection: &info, notifier: Notifier(context: self))
        conn.pointee.want = info.want
        conn.pointee.max_write = info.maxWrite
        conn.pointee.max_read = info.maxRead
        conn.pointee.max_readahead = info.maxReadahead
        conn.pointee.max_background = info.maxBackground
        conn.pointee.time_gran = info.timeGranularity
        setConnection(info)
        logger.debug("FUSE INIT", metadata: [
            "proto": "\(info.protocolMajor).\(info.protocolMinor)",
            "max_write": "\(info.maxWrite)", "max_read": "\(info.maxRead)",
            "max_readahead": "\(info.maxReadahead)",
            "direct_io_allow_mmap_offered": "\(offered)",
        ])
    }

    fileprivate func deliverRetrieve(cookie: UInt64, inode: FUSEInode, offset: Int64,
                                     bufv: UnsafeMutablePointer<fuse_bufvec>?) {
        guard let bufv else {
            filesystem.retrieveReply(cookie: cookie, inode: inode, offset: offset, data: UnsafeRawBufferPointer(start: nil, count: 0))
            return
        }
        let size = fuse_buf_size(bufv)
        // One segment in memory: hand it over as is. Otherwise flatten into one buffer.
        if bufv.pointee.count == 1, bufv.pointee.idx == 0, bufv.pointee.off == 0,
           bufv.pointee.buf.flags.rawValue & FUSE_BUF_IS_FD.rawValue == 0 {
            let data = UnsafeRawBufferPointer(start: bufv.pointee.buf.mem, count: size)
            filesystem.retrieveReply(cookie: cookie, inode: inode, offset: offset, data: data)
            return
        }
        let flat = UnsafeMutableRawBufferPointer.allocate(byteCount: max(size, 1), alignment: 16)
        defer { flat.deallocate() }
        let copied = cfuse3_bufvec_copy_out(bufv, flat.baseAddress, size)
        if copied < 0 {
            logger.error("FUSE retrieve reply could not be copied", metadata: ["errno": "\(Errno(rawValue: Int32(-copied)))"])
        }
        let data = UnsafeRawBufferPointer(start: flat.baseAddress, count: max(0, copied))
        filesystem.retrieveReply(cookie: cookie, inode: inode, offset: offset, data: data)
    }
}

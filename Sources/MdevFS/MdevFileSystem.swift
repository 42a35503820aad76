import DeviceSimulator
import Foundation
import FUSEKit
import Glibc
import Logging
import MigrationProtocol
import Scenarios
import SystemPackage

/// The mount: simulated mdev devices of a scenario's types, each with a real migration region
/// file. Thread-safe: libfuse's multi-threaded loop calls it from several threads at once.
///
/// This type is the dispatch: each FUSE request goes to the tree (`MdevTree`: nodes, inode
/// numbers, listings, attributes, devices), to a device's region file (`RegionFile`: bytes to
/// and from the engine), or to the page-cache coherence of mapped data sections
/// (`PageCacheCoherence`).
public final class MdevFileSystem: FileSystem, @unchecked Sendable {
    public var types: [DeviceTypeSpec] { tree.types }
    /// With `strict`, protocol violations fail the offending access with EINVAL.
    public let strict: Bool
    /// Whether a saving device builds its next chunk while the client copies the staged one
    /// (`MigrationRegion.stageAhead`; on by default; speed only, the same bytes either way).
    public let stagesAhead: Bool
    /// Told every region access of every device and their lifecycle (a trace), if set.
    public let observer: (any AccessObserver)?
    /// The parent device of the sysfs-shaped view (`class/mdev_bus/<parent>`).
    public let parent: String
    let logger: Logger
    private let tree: MdevTree
    private let cache: PageCacheCoherence
    private let v2Files = V2Files()
    private let lock = NSLock()
    /// The mount's owner, deciding what each caller may do (`AccessControl.swift`).
    private let access = AccessControl(uid: getuid(), gid: getgid())

    // Guarded by `lock`:
    private var openRegions: [UInt64: MdevDevice] = [:]
    /// An open attribute file's content, taken at its read at offset 0 and served to the reads
    /// after it, as sysfs's seq_file does: a reader sees one consistent text, and a `digest`
    /// (all of the device's memory hashed) is computed once per read of the file, not once per
    /// read(2) of it (`cat` makes two).
    private var snapshots: [UInt64: [UInt8]?] = [:]
    private var nextHandle: UInt64 = 1
    private var mmapNegotiated = false

    public init(types: [DeviceTypeSpec], strict: Bool = false, stagesAhead: Bool = true, observer: (any AccessObserver)? = nil,
                parent: String = MdevParent.defaultName, logger: Logger = Logger(label: "mdevsim.fs")) {
        self.stagesAhead = stagesAhead
        tree = MdevTree(types: types, parent: parent)
        cache = PageCacheCoherence(logger: logger)
        self.parent = parent
        self.strict = strict
        self.observer = observer
        self.logger = logger
    }

    public convenience init(scenario: Scenario, strict: Bool = false, stagesAhead: Bool = true, observer: (any AccessObserver)? = nil,
                            logger: Logger = Logger(label: "mdevsim.fs")) {
        self.init(types: scenario.types, strict: strict, stagesAhead: stagesAhead, observer: observer, parent: scenario.parent, logger: logger)
    }

    /// Whether `mmap` of region files works on this mount (set once INIT is done).
    public var mmapAvailable: Bool { lock.withLock { mmapNegotiated } }

    /// Creates a device as a write of `uuid` to a type's `create` would.
    public func createDevice(type: Int, uuid text: String) -> Errno? {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { create(type: type, $0) }
    }

    /// The device with this UUID, for in-process inspection (tests, the runner).
    public func device(_ uuid: String) -> MigrationRegion? { tree.device(uuid)?.region }
    /// The v2 face of the device with this UUID, when its type speaks v2.
    public func v2Device(_ uuid: String) -> V2Device? { tree.device(uuid)?.v2 }

    // MARK: FileSystem

    public func initialize(connection: inout ConnectionInfo, notifier: Notifier) {
        cache.connect(notifier, maxWrite: Int(connection.maxWrite))
        lock.withLock { mmapNegotiated = connection.directIOMmapRequested && connection.kernelOffersDirectIOMmap }
        logger.info("mount ready: \(types.count) type(s), mmap of region files \(connection.kernelOffersDirectIOMmap ? "available" : "not available (kernel lacks FUSE_DIRECT_IO_ALLOW_MMAP): pread/pwrite only")")
    }

    public func lookup(_ request: Request, parent: FUSEInode, name: String, reply: EntryReply) {
        guard let attributes = tree.lookup(parent: parent, name: name) else { return reply.error(.noSuchFileOrDirectory) }
        reply.entry(attributes, attributeTimeout: 0, entryTimeout: 0)
    }

    public func getattr(_ request: Request, inode: FUSEInode, handle: UInt64?, reply: AttrReply) {
        guard let (_, attributes) = tree.attributes(inode) else { return reply.error(.noSuchFileOrDirectory) }
        reply.attr(attributes, timeout: 0)
    }

    public func setattr(_ request: Request, inode: FUSEInode, changes: AttributeChanges, handle: UInt64?, reply: AttrReply) {
        // `echo x > file` truncates first: accept a truncate to 0 of a writable attribute, and
        // time updates; refuse everything else (sysfs attributes have fixed modes and sizes).
        guard let (node, attributes) = tree.attributes(inode) else { return reply.error(.noSuchFileOrDirectory) }
        if changes.permissions != nil || changes.uid != nil || changes.gid != nil { return reply.error(.notPermitted) }
        if let size = changes.size, size != 0 || node.permissions & 0o200 == 0 || node.isRegion {
            return reply.error(.permissionDenied)
        }
        // utime(2) is refused where a truncate is: it would succeed and change nothing.
        if changes.accessTime != nil || changes.modificationTime != nil || changes.changeTime != nil,
           node.permissions & 0o200 == 0 || node.isRegion || node.kind != .regular {
            return reply.error(.permissionDenied)
        }
        reply.attr(attributes, timeout: 0)
    }

    public func readlink(_ request: Request, inode: FUSEInode, reply: ReadlinkReply) {
        guard let target = tree.linkTarget(inode) else { return reply.error(.invalidArgument) }
        reply.link(target)
    }

    public func opendir(_ request: Request, inode: FUSEInode, flags: OpenFlags, reply: OpenReply) {
        guard let node = tree.node(inode) else { return reply.error(.noSuchFileOrDirectory) }
        guard node.kind == .directory else { return reply.error(.notDirectory) }
        reply.open(handle: 0)
    }

    public func readdir(_ request: Request, inode: FUSEInode, handle: UInt64, reply: DirectoryReply) {
        guard let listing = tree.listing(inode) else { return reply.error(.notDirectory) }
        reply.directory(listing)
    }

    public func releasedir(_ request: Request, inode: FUSEInode, handle: UInt64, reply: EmptyReply) { reply.ok() }

    public func open(_ request: Request, inode: FUSEInode, flags: OpenFlags, reply: OpenReply) {
        guard let node = tree.node(inode) else { return reply.error(.noSuchFileOrDirectory) }
        if node.kind == .regular, let e = access.check(request, .init(flags), permissions: node.permissions) { return reply.error(e) }
        // O_TRUNC of a region is refused like its truncate (a region has a fixed size).
        if node.isRegion, flags.contains(.truncate) { return reply.error(.permissionDenied) }
        switch node {
        case .deviceFile(let uuid, .migration):
            guard let device = tree.device(uuid) else { return reply.error(.noSuchFileOrDirectory) }
            let handle = lock.withLock { () -> UInt64 in
                defer { nextHandle += 1 }
                return nextHandle
            }
            guard device.acquire(handle) else {
                device.withLock { device.region.recordViolation(.concurrentOpen, "a second open of the migration region while another open holds it (pid \(request.pid))") }
                observer?.deviceEvent(.open, device: uuid, type: nil, errno: .resourceBusy)
                return reply.error(.resourceBusy)
            }
            observer?.deviceEvent(.open, device: uuid, type: nil, errno: nil)
            lock.withLock { openRegions[handle] = device }
            // A new holder: pages a previous client left in the page cache must not show through.
            let stale = device.withLock { () -> Bool in
                defer {
                    device.mappingInUse = false
                    device.prefilledAt = nil
                }
                return device.mappingInUse
            }
            if stale { cache.invalidate(inode) }
            // direct_io: every pread/pwrite reaches the device with its exact offset and size.
            reply.open(handle: handle, directIO: true)
        case .deviceFile(let uuid, .migData):
            guard let device = tree.device(uuid) else { return reply.error(.noSuchFileOrDirectory) }
            v2Files.openData(device, reply: reply)
        case .deviceFile(let uuid, .migPrecopyInfo):
            guard let device = tree.device(uuid) else { return reply.error(.noSuchFileOrDirectory) }
            if flags.isWritable { return reply.error(.permissionDenied) }
            v2Files.openPrecopyInfo(device, reply: reply)
        case .typeAttribute, .deviceFile:
            let writable = node.permissions & 0o200 != 0, readable = node.permissions & 0o444 != 0
            if flags.isWritable && !writable || flags.isReadable && !readable { return reply.error(.permissionDenied) }
            guard flags.isReadable else { return reply.open(handle: 0, directIO: true) }
            let handle = lock.withLock { () -> UInt64 in
                defer { nextHandle += 1 }
                snapshots[nextHandle] = .some(nil)
                return nextHandle
            }
            reply.open(handle: handle, directIO: true)
        default:
            reply.error(.isDirectory)
        }
    }

    public func release(_ request: Request, inode: FUSEInode, handle: UInt64, flags: OpenFlags, reply: EmptyReply) {
        if handle != 0, v2Files.release(handle) { return reply.ok() }
        if handle != 0, lock.withLock({ snapshots.removeValue(forKey: handle) }) != nil { return reply.ok() }
        if handle != 0, let device = lock.withLock({ openRegions.removeValue(forKey: handle) }) {
            device.release(handle)
            observer?.deviceEvent(.release, device: device.uuid, type: nil, errno: nil)
        }
        reply.ok()
    }

    public func flush(_ request: Request, inode: FUSEInode, handle: UInt64, lockOwner: UInt64, reply: EmptyReply) { reply.ok() }
    public func fsync(_ request: Request, inode: FUSEInode, handle: UInt64, dataOnly: Bool, reply: EmptyReply) { reply.ok() }

    public func read(_ request: Request, _ read: ReadRequest, reply: DataReply) {
        guard let (node, device) = tree.nodeAndDevice(read.inode) else { return reply.error(.noSuchFileOrDirectory) }
        if case .deviceFile(_, .migration) = node {
            guard let device else { return reply.error(.operationNotSupportedByDevice) }
            return RegionFile(cache: cache, device: device, inode: read.inode, stagesAhead: stagesAhead).read(read, reply: reply)
        }
        if case .deviceFile(_, let file) = node, file.isV2Call {
            guard let device else { return reply.error(.operationNotSupportedByDevice) }
            return v2Files.read(device, file, read, reply: reply)
        }
        let kept = read.offset > 0 ? lock.withLock { snapshots[read.handle] ?? nil } : nil
        guard let content = kept ?? tree.content(node, mmapAvailable: mmapAvailable) else { return reply.error(.permissionDenied) }
        if kept == nil { lock.withLock { if snapshots[read.handle] != nil { snapshots[read.handle] = content } } }
        let start = Int(clamping: max(0, read.offset))
        guard start < content.count else { return reply.data([]) }
        reply.data(content[start..<min(content.count, start + read.size)])
    }

    public func write(_ request: Request, _ write: WriteRequest, data: UnsafeRawBufferPointer, reply: WriteReply) {
        guard let node = tree.node(write.inode) else { return reply.error(.noSuchFileOrDirectory) }
        // A control file's write acts for its caller, whoever opened the descriptor.
        if !node.isRegion, let e = access.check(request, .write, permissions: node.permissions) { return reply.error(e) }
        switch node {
        case .deviceFile(let uuid, .migration):
            guard let device = tree.device(uuid) else { return reply.error(.operationNotSupportedByDevice) }
            RegionFile(cache: cache, device: device, inode: write.inode, stagesAhead: stagesAhead).write(write, data: data, reply: reply)
        case .deviceFile(let uuid, let file) where file.isV2Call:
            guard let device = tree.device(uuid) else { return reply.error(.operationNotSupportedByDevice) }
            v2Files.write(device, file, write, data: data, reply: reply)
        case .typeAttribute(let type, .create):
            if let e = create(type: type, data) { return reply.error(e) }
            reply.write(data.count)
        case .deviceFile(let uuid, .remove):
            guard isOne(data) else { return reply.error(.invalidArgument) }
            if let e = remove(uuid) { return reply.error(e) }
            reply.write(data.count)
        case .deviceFile(let uuid, .reset):
            guard isOne(data) else { return reply.error(.invalidArgument) }
            guard let device = tree.device(uuid) else { return reply.error(.operationNotSupportedByDevice) }
            device.reset()
            reply.write(data.count)
        default:
            reply.error(.permissionDenied)
        }
    }

    public func change(_ request: Request, _ change: TreeChange, reply: RefusalReply) {
        reply.error(AccessControl.refusal(of: change))
    }

    public func statfs(_ request: Request, inode: FUSEInode, reply: StatfsReply) {
        reply.statfs(FileSystemStatistics())
    }

    public func retrieveReply(cookie: UInt64, inode: FUSEInode, offset: Int64, data: UnsafeRawBufferPointer) {
        cache.retrieved(cookie: cookie, inode: inode, offset: offset, data: data)
    }

    // MARK: Devices

    func create(type: Int, _ data: UnsafeRawBufferPointer) -> Errno? {
        let uuid: String
        switch MdevUUID.parse(data) {
        case .success(let u): uuid = u
        case .failure(let e): return e
        }
        let e = tree.create(type: type, uuid: uuid, strict: strict, observer: observer) { e in
            observer?.deviceEvent(.create, device: uuid, type: types[type].name, errno: e)
        }
        if e == .noMemory { logger.error("cannot create \(types[type].name) device \(uuid): no memory for its data section") }
        if e == nil { logger.info("created \(types[type].name) device \(uuid)") }
        return e
    }

    func remove(_ uuid: String) -> Errno? {
        let e = tree.remove(uuid) { e in observer?.deviceEvent(.remove, device: uuid, type: nil, errno: e) }
        if e == nil { logger.info("removed device \(uuid)") }
        return e
    }

    private func isOne(_ data: UnsafeRawBufferPointer) -> Bool {
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text == "1"
    }
}

extension MdevNode {
    var isRegion: Bool {
        if case .deviceFile(_, .migration) = self { return true }
        return false
    }
}

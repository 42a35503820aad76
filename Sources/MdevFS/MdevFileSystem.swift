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
public final class MdevFileSystem: FileSystem, @unchecked Sendable {
    public let types: [DeviceTypeSpec]
    /// With `strict`, protocol violations fail the offending access with EINVAL.
    public let strict: Bool
    /// Told every region access of every device and their lifecycle (a trace), if set.
    public let observer: (any AccessObserver)?
    let logger: Logger
    private let lock = NSLock()
    private let mountTime = Timestamp.now
    private let owner = (uid: getuid(), gid: getgid())
    /// The same owner, deciding what each caller may do (`AccessControl.swift`).
    private let access = AccessControl(uid: getuid(), gid: getgid())

    // Guarded by `lock`:
    private var inodes: InodeTable
    private var devices: [String: MdevDevice] = [:]
    private var deviceOrder: [String] = []
    private var openRegions: [UInt64: MdevDevice] = [:]
    private var nextHandle: UInt64 = 1
    /// IOMMU group numbers start high so they stand out from a host's real groups, and are
    /// never reused within a mount (a VMM that cached a number never reaches another device).
    private var nextIommuGroup = MdevFileSystem.firstIommuGroup
    static let firstIommuGroup = 1000
    private var notifier: Notifier?
    private var maxWrite = 1 << 20
    private var mmapNegotiated = false
    private var retrieves = RetrieveTable()

    public init(types: [DeviceTypeSpec], strict: Bool = false, observer: (any AccessObserver)? = nil,
                logger: Logger = Logger(label: "mdevsim.fs")) {
        self.types = types
        self.strict = strict
        self.observer = observer
        self.logger = logger
        inodes = InodeTable(typeCount: types.count)
    }

    public convenience init(scenario: Scenario, strict: Bool = false, observer: (any AccessObserver)? = nil,
                            logger: Logger = Logger(label: "mdevsim.fs")) {
        self.init(types: scenario.types, strict: strict, observer: observer, logger: logger)
    }

    /// Whether `mmap` of region files works on this mount (set once INIT is done).
    public var mmapAvailable: Bool { lock.withLock { mmapNegotiated } }

    /// Creates a device as a write of `uuid` to a type's `create` would.
    public func createDevice(type: Int, uuid text: String) -> Errno? {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { create(type: type, $0) }
    }

    /// The device with this UUID, for in-process inspection (tests, the runner).
    public func device(_ uuid: String) -> MigrationRegion? { lock.withLock { devices[uuid]?.region } }

    // MARK: FileSystem

    public func initialize(connection: inout ConnectionInfo, notifier: Notifier) {
        lock.withLock {
            self.notifier = notifier
            maxWrite = Int(connection.maxWrite)
            mmapNegotiated = connection.directIOMmapRequested && connection.kernelOffersDirectIOMmap
        }
        logger.info("mount ready: \(types.count) type(s), mmap of region files \(connection.kernelOffersDirectIOMmap ? "available" : "not available (kernel lacks FUSE_DIRECT_IO_ALLOW_MMAP): pread/pwrite only")")
    }

    public func lookup(_ request: Request, parent: FUSEInode, name: String, reply: EntryReply) {
        guard let attributes = lock.withLock({ () -> FileAttributes? in
            guard let node = child(of: parent, named: name), let inode = inodes.inode(node) else { return nil }
            return attributesLocked(inode, node)
        }) else { return reply.error(.noSuchFileOrDirectory) }
        reply.entry(attributes, attributeTimeout: 0, entryTimeout: 0)
    }

    public func getattr(_ request: Request, inode: FUSEInode, handle: UInt64?, reply: AttrReply) {
        guard let attributes = lock.withLock({ inodes.node(inode).map { attributesLocked(inode, $0) } }) else {
            return reply.error(.noSuchFileOrDirectory)
        }
        reply.attr(attributes, timeout: 0)
    }

    public func setattr(_ request: Request, inode: FUSEInode, changes: AttributeChanges, handle: UInt64?, reply: AttrReply) {
        // `echo x > file` truncates first: accept a truncate to 0 of a writable attribute, and
        // time updates; refuse everything else (sysfs attributes have fixed modes and sizes).
        guard let (node, attributes) = lock.withLock({ () -> (MdevNode, FileAttributes)? in
            inodes.node(inode).map { ($0, attributesLocked(inode, $0)) }
        }) else { return reply.error(.noSuchFileOrDirectory) }
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
        guard let target = lock.withLock({ () -> String? in
            guard case .deviceFile(let uuid, let file) = inodes.node(inode), let d = devices[uuid] else { return nil }
            return linkTargetLocked(d, file)
        }) else { return reply.error(.invalidArgument) }
        reply.link(target)
    }

    public func opendir(_ request: Request, inode: FUSEInode, flags: OpenFlags, reply: OpenReply) {
        guard let node = lock.withLock({ inodes.node(inode) }) else { return reply.error(.noSuchFileOrDirectory) }
        guard node.kind == .directory else { return reply.error(.notDirectory) }
        reply.open(handle: 0)
    }

    public func readdir(_ request: Request, inode: FUSEInode, handle: UInt64, reply: DirectoryReply) {
        guard let listing = lock.withLock({ listingLocked(inode) }) else { return reply.error(.notDirectory) }
        reply.directory(listing)
    }

    public func releasedir(_ request: Request, inode: FUSEInode, handle: UInt64, reply: EmptyReply) { reply.ok() }

    public func open(_ request: Request, inode: FUSEInode, flags: OpenFlags, reply: OpenReply) {
        guard let node = lock.withLock({ inodes.node(inode) }) else { return reply.error(.noSuchFileOrDirectory) }
        if node.kind == .regular, let e = access.check(request, .init(flags), permissions: node.permissions) { return reply.error(e) }
        // O_TRUNC of a region is refused like its truncate (a region has a fixed size).
        if node.isRegion, flags.contains(.truncate) { return reply.error(.permissionDenied) }
        switch node {
        case .deviceFile(let uuid, .migration):
            guard let device = lock.withLock({ devices[uuid] }) else { return reply.error(.noSuchFileOrDirectory) }
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
                defer { device.mappingInUse = false }
                return device.mappingInUse
            }
            if stale, let notifier = lock.withLock({ self.notifier }) { try? notifier.invalidateInode(inode) }
            // direct_io: every pread/pwrite reaches the device with its exact offset and size.
            reply.open(handle: handle, directIO: true)
        case .typeAttribute, .deviceFile:
            let writable = node.permissions & 0o200 != 0, readable = node.permissions & 0o444 != 0
            if flags.isWritable && !writable || flags.isReadable && !readable { return reply.error(.permissionDenied) }
            reply.open(handle: 0, directIO: true)
        default:
            reply.error(.isDirectory)
        }
    }

    public func release(_ request: Request, inode: FUSEInode, handle: UInt64, flags: OpenFlags, reply: EmptyReply) {
        if handle != 0, let device = lock.withLock({ openRegions.removeValue(forKey: handle) }) {
            device.release(handle)
            observer?.deviceEvent(.release, device: device.uuid, type: nil, errno: nil)
        }
        reply.ok()
    }

    public func flush(_ request: Request, inode: FUSEInode, handle: UInt64, lockOwner: UInt64, reply: EmptyReply) { reply.ok() }
    public func fsync(_ request: Request, inode: FUSEInode, handle: UInt64, dataOnly: Bool, reply: EmptyReply) { reply.ok() }

    public func read(_ request: Request, _ read: ReadRequest, reply: DataReply) {
        guard let node = lock.withLock({ inodes.node(read.inode) }) else { return reply.error(.noSuchFileOrDirectory) }
        if case .deviceFile(let uuid, .migration) = node {
            guard let device = lock.withLock({ devices[uuid] }) else { return reply.error(.operationNotSupportedByDevice) }
            return RegionFile(fs: self, device: device, inode: read.inode).read(read, reply: reply)
        }
        guard let content = content(node) else { return reply.error(.permissionDenied) }
        let start = Int(clamping: max(0, read.offset))
        guard start < content.count else { return reply.data([]) }
        reply.data(content[start..<min(content.count, start + read.size)])
    }

    public func write(_ request: Request, _ write: WriteRequest, data: UnsafeRawBufferPointer, reply: WriteReply) {
        guard let node = lock.withLock({ inodes.node(write.inode) }) else { return reply.error(.noSuchFileOrDirectory) }
        // A control file's write acts for its caller, whoever opened the descriptor.
        if !node.isRegion, let e = access.check(request, .write, permissions: node.permissions) { return reply.error(e) }
        switch node {
        case .deviceFile(let uuid, .migration):
            guard let device = lock.withLock({ devices[uuid] }) else { return reply.error(.operationNotSupportedByDevice) }
            RegionFile(fs: self, device: device, inode: write.inode).write(write, data: data, reply: reply)
        case .typeAttribute(let type, .create):
            if let e = create(type: type, data) { return reply.error(e) }
            reply.write(data.count)
        case .deviceFile(let uuid, .remove):
            guard isOne(data) else { return reply.error(.invalidArgument) }
            if let e = remove(uuid) { return reply.error(e) }
            reply.write(data.count)
        case .deviceFile(let uuid, .reset):
            guard isOne(data) else { return reply.error(.invalidArgument) }
            guard let device = lock.withLock({ devices[uuid] }) else { return reply.error(.operationNotSupportedByDevice) }
            device.withLock { device.region.reset() }
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
        guard let piece = lock.withLock({ retrieves.piece(cookie) }) else { return }
        let apply = piece.apply
        apply.device.withLock { apply.device.mergeRetrieved(data, at: Int(offset) - Int(RegionLayout.dataSectionOffset)) }
        // The kernel stops at the first page it does not hold. That page was either never
        // stored to (the buffer is right) or written back and dropped (its writeback already
        // reached the buffer): skip it and fetch the rest of the piece.
        let next = offset + Int64(data.count) + Int64(RegionLayout.hostPageSize)
        if offset + Int64(data.count) < piece.end, next < piece.end, let notifier = currentNotifier {
            let cookie = lock.withLock { retrieves.continuation(of: cookie) }
            do {
                try notifier.retrieve(inode: inode, size: Int(piece.end - next), offset: next, cookie: cookie)
                return
            } catch {
                logger.warning("notify_retrieve of the rest of a resume chunk failed (\(error)): applying what arrived")
            }
        }
        if lock.withLock({ retrieves.finished(cookie) }) {
            RegionFile(fs: self, device: apply.device, inode: inode).finish(apply)
        }
    }

    // MARK: Devices

    func create(type: Int, _ data: UnsafeRawBufferPointer) -> Errno? {
        let uuid: String
        switch MdevUUID.parse(data) {
        case .success(let u): uuid = u
        case .failure(let e): return e
        }
        return lock.withLock { () -> Errno? in
            // Under the tree lock, so the create record comes before any access to the device.
            let e = createLocked(type: type, uuid: uuid)
            observer?.deviceEvent(.create, device: uuid, type: types[type].name, errno: e)
            return e
        }
    }

    private func createLocked(type: Int, uuid: String) -> Errno? {
        guard devices[uuid] == nil else { return .fileExists }
        guard availableLocked(type) > 0 else { return .noSpace }
        let device: MdevDevice
        do {
            device = try MdevDevice(uuid: uuid, typeIndex: type, iommuGroup: nextIommuGroup,
                                    configuration: types[type].configuration, strict: strict, observer: observer)
        } catch {
            logger.error("cannot create \(types[type].name) device \(uuid): \(error) (no memory for its data section)")
            return error
        }
        nextIommuGroup += 1
        devices[uuid] = device
        deviceOrder.append(uuid)
        inodes.addDevice(uuid)
        logger.info("created \(types[type].name) device \(uuid)")
        return nil
    }

    func remove(_ uuid: String) -> Errno? {
        lock.withLock { () -> Errno? in
            let e = removeLocked(uuid)
            observer?.deviceEvent(.remove, device: uuid, type: nil, errno: e)
            return e
        }
    }

    private func removeLocked(_ uuid: String) -> Errno? {
        guard let device = devices[uuid] else { return .operationNotSupportedByDevice }
        // sysfs refuses to remove an mdev while a VFIO user holds it.
        if device.isOpen { return .resourceBusy }
        devices[uuid] = nil
        deviceOrder.removeAll { $0 == uuid }
        inodes.removeDevice(uuid)
        logger.info("removed device \(uuid)")
        return nil
    }

    private func availableLocked(_ type: Int) -> Int {
        types[type].instances - devices.values.filter { $0.typeIndex == type }.count
    }

    private func isOne(_ data: UnsafeRawBufferPointer) -> Bool {
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text == "1"
    }

    // MARK: Tree

    private func child(of parent: FUSEInode, named name: String) -> MdevNode? {
        switch inodes.node(parent) {
        case .root?:
            return ["mdev_supported_types": MdevNode.typesDirectory, "devices": .devicesDirectory,
                    "iommu_groups": .iommuGroupsDirectory][name]
        case .iommuGroupsDirectory?:
            return devices.values.first { String($0.iommuGroup) == name }.map { .iommuGroupDirectory(uuid: $0.uuid) }
        case .typesDirectory?:
            return types.firstIndex { $0.name == name }.map { .typeDirectory(type: $0) }
        case .typeDirectory(let t)?:
            return MdevNode.TypeAttribute(rawValue: name).map { .typeAttribute(type: t, $0) }
        case .devicesDirectory?:
            return devices[name] != nil ? .deviceDirectory(uuid: name) : nil
        case .deviceDirectory(let uuid)?:
            return MdevNode.DeviceFile(rawValue: name).map { .deviceFile(uuid: uuid, $0) }
        default:
            return nil
        }
    }

    private func listingLocked(_ inode: FUSEInode) -> [DirectoryEntry]? {
        guard let node = inodes.node(inode), node.kind == .directory else { return nil }
        var children: [(String, MdevNode)]
        switch node {
        case .root:
            children = [("mdev_supported_types", .typesDirectory), ("devices", .devicesDirectory),
                        ("iommu_groups", .iommuGroupsDirectory)]
        case .iommuGroupsDirectory:
            children = deviceOrder.compactMap { uuid in
                devices[uuid].map { (String($0.iommuGroup), .iommuGroupDirectory(uuid: uuid)) }
            }
        case .typesDirectory: children = types.indices.map { (types[$0].name, .typeDirectory(type: $0)) }
        case .typeDirectory(let t): children = MdevNode.TypeAttribute.allCases.map { ($0.rawValue, .typeAttribute(type: t, $0)) }
        case .devicesDirectory: children = deviceOrder.map { ($0, .deviceDirectory(uuid: $0)) }
        case .deviceDirectory(let uuid): children = MdevNode.DeviceFile.allCases.map { ($0.rawValue, .deviceFile(uuid: uuid, $0)) }
        default: children = []
        }
        var listing = [DirectoryEntry(inode: inode, kind: .directory, name: "."),
                       DirectoryEntry(inode: .root, kind: .directory, name: "..")]
        for (name, child) in children {
            if let i = inodes.inode(child) { listing.append(DirectoryEntry(inode: i, kind: child.kind, name: name)) }
        }
        return listing
    }

    private func attributesLocked(_ inode: FUSEInode, _ node: MdevNode) -> FileAttributes {
        var size: UInt64 = 0
        switch node {
        case .deviceFile(let uuid, .migration): size = devices[uuid]?.region.regionSize ?? 0
        case .deviceFile(let uuid, let file) where file.kind == .symlink:
            size = UInt64(devices[uuid].flatMap { linkTargetLocked($0, file) }?.utf8.count ?? 0)
        case .deviceFile(_, .config): size = UInt64(PCIConfigSpace.size)
        case .typeAttribute, .deviceFile:
            // As sysfs: a page. Files are direct-I/O, so reads always reach the live content.
            size = 4096
        default: size = 0
        }
        return FileAttributes(
            inode: inode, kind: node.kind, permissions: node.permissions, size: size,
            linkCount: node.kind == .directory ? 2 : 1, uid: owner.uid, gid: owner.gid,
            accessTime: mountTime, modificationTime: mountTime, changeTime: mountTime)
    }

    /// The bytes of a text attribute, or nil for files that cannot be read. Device files are
    /// computed without the tree lock: a digest hashes all of a device's memory (seconds for a
    /// large device), and the rest of the mount must keep answering meanwhile.
    private func content(_ node: MdevNode) -> [UInt8]? {
        func line(_ s: String) -> [UInt8] { Array((s + "\n").utf8) }
        switch node {
        case .typeAttribute(let t, let attribute):
            return lock.withLock { typeContentLocked(t, attribute) }
        case .deviceFile(let uuid, let file):
            guard let (device, mmap) = lock.withLock({ devices[uuid].map { ($0, mmapNegotiated) } }) else { return nil }
            switch file {
            case .digest: return line(device.withLock { device.region.device.digest() })
            case .state: return line(json(device.withLock { device.region.status }))
            case .violations:
                let all = device.withLock { device.region.violations }
                return Array(all.map { json($0) + "\n" }.joined().utf8)
            case .migrationInfo:
                return line(json(RegionInfo(configuration: device.region.configuration, mmapAvailable: mmap)))
            case .config: return PCIConfigSpace.bytes(types[device.typeIndex].pci)
            case .dma: return line(types[device.typeIndex].dma.map { json($0) } ?? "{}")
            default: return nil
            }
        default:
            return nil
        }
    }

    /// The target of a device's symlink, as sysfs has them (relative to the device directory).
    private func linkTargetLocked(_ d: MdevDevice, _ file: MdevNode.DeviceFile) -> String? {
        switch file {
        case .mdevType: "../../mdev_supported_types/\(types[d.typeIndex].name)"
        case .iommuGroup: "../../iommu_groups/\(d.iommuGroup)"
        default: nil
        }
    }

    private func typeContentLocked(_ t: Int, _ attribute: MdevNode.TypeAttribute) -> [UInt8]? {
        func line(_ s: String) -> [UInt8] { Array((s + "\n").utf8) }
        let c = types[t].configuration
        switch attribute {
        case .name: return line(types[t].name)
        case .description:
            return line("mdevsim simulated device: memory \(c.memorySize) bytes in \(c.pageSize)-byte pages, data section \(c.dataSectionSize) bytes\(c.dataSectionMmap ? " (mmap)" : "")")
        case .deviceAPI: return line("vfio-pci")
        case .availableInstances: return line(String(availableLocked(t)))
        case .create: return nil
        }
    }


    private func json<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    // MARK: For RegionFile

    var currentNotifier: Notifier? { lock.withLock { notifier } }
    var currentMaxWrite: Int { lock.withLock { maxWrite } }

    func registerRetrieve(_ apply: RetrieveTable.Apply, pieceEnds: [Int64]) -> [UInt64] {
        lock.withLock { retrieves.register(apply, pieceEnds: pieceEnds) }
    }

    func cancelRetrieve(_ cookies: [UInt64]) {
        lock.withLock { retrieves.cancel(cookies) }
    }
}

extension MdevNode {
    var isRegion: Bool {
        if case .deviceFile(_, .migration) = self { return true }
        return false
    }
}

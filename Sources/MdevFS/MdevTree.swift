import DeviceSimulator
import Foundation
import FUSEKit
import Glibc
import Scenarios
import SystemPackage

/// The mount's tree: its devices, their inode numbers, what each node lists and its
/// attributes, and the text of the sysfs-like files. Thread-safe (its own lock); it knows
/// nothing of FUSE requests (`MdevFileSystem` dispatches them) nor of the page cache
/// (`PageCacheCoherence`).
final class MdevTree: @unchecked Sendable {
    let types: [DeviceTypeSpec]
    /// The parent device of the sysfs-shaped view (`class/mdev_bus/<parent>`).
    let parent: String
    private let lock = NSLock()
    private let mountTime = Timestamp.now
    private let owner = (uid: getuid(), gid: getgid())
    /// What the devices' engines take from the host: wall time, and memory extents kept from
    /// device to device (a removed device's memory serves the next one).
    private let clock = HostClock()
    private let extents = ExtentPool.standard()

    // Guarded by `lock`:
    private var inodes: InodeTable
    private var devices: [String: MdevDevice] = [:]
    private var deviceOrder: [String] = []
    /// IOMMU group numbers start high so they stand out from a host's real groups, and are
    /// never reused within a mount (a VMM that cached a number never reaches another device).
    private var nextIommuGroup = MdevTree.firstIommuGroup
    static let firstIommuGroup = 1000

    init(types: [DeviceTypeSpec], parent: String = MdevParent.defaultName) {
        self.types = types
        self.parent = parent
        inodes = InodeTable(typeCount: types.count)
    }

    func node(_ inode: FUSEInode) -> MdevNode? { lock.withLock { inodes.node(inode) } }
    func device(_ uuid: String) -> MdevDevice? { lock.withLock { devices[uuid] } }
    /// The node of `inode` and, for a device's file, its device: one lock for the data path.
    func nodeAndDevice(_ inode: FUSEInode) -> (MdevNode, MdevDevice?)? {
        lock.withLock {
            guard let node = inodes.node(inode) else { return nil }
            if case .deviceFile(let uuid, _) = node { return (node, devices[uuid]) }
            return (node, nil)
        }
    }

    /// The child `name` of `parent`, with its attributes.
    func lookup(parent: FUSEInode, name: String) -> FileAttributes? {
        lock.withLock {
            guard let node = child(of: parent, named: name), let inode = inodes.inode(node) else { return nil }
            return attributesLocked(inode, node)
        }
    }

    func attributes(_ inode: FUSEInode) -> (MdevNode, FileAttributes)? {
        lock.withLock { inodes.node(inode).map { ($0, attributesLocked(inode, $0)) } }
    }

    func linkTarget(_ inode: FUSEInode) -> String? {
        lock.withLock {
            switch inodes.node(inode) {
            case .deviceFile(let uuid, let file)?: return devices[uuid].flatMap { linkTargetLocked($0, file) }
            case .sysfs(let node)?: return sysfsLocked.linkTarget(node)
            default: return nil
            }
        }
    }

    // MARK: Devices

    /// Adds a device of `type`; `report` is told the outcome under the tree lock, so that a
    /// trace's create record comes before any access to the device.
    func create(type: Int, uuid: String, strict: Bool, observer: (any AccessObserver)?, report: (Errno?) -> Void) -> Errno? {
        lock.withLock {
            let e = createLocked(type: type, uuid: uuid, strict: strict, observer: observer)
            report(e)
            return e
        }
    }

    private func createLocked(type: Int, uuid: String, strict: Bool, observer: (any AccessObserver)?) -> Errno? {
        guard devices[uuid] == nil else { return .fileExists }
        guard availableLocked(type) > 0 else { return .noSpace }
        let device: MdevDevice
        do {
            device = try MdevDevice(uuid: uuid, typeIndex: type, iommuGroup: nextIommuGroup,
                                    configuration: types[type].configuration, strict: strict, observer: observer,
                                    clock: clock, extents: extents)
        } catch {
            // No memory for its data section: this create fails, the mount and its devices go on.
            return error
        }
        nextIommuGroup += 1
        devices[uuid] = device
        deviceOrder.append(uuid)
        inodes.addDevice(uuid)
        return nil
    }

    /// Removes a device; `report` is told the outcome under the tree lock. Returns once the
    /// device's memory is given back, so that a `create` the remove made room for succeeds.
    func remove(_ uuid: String, report: (Errno?) -> Void) -> Errno? {
        var removed: MdevDevice?
        let e = lock.withLock {
            let e = removeLocked(uuid, removed: &removed)
            report(e)
            return e
        }
        Self.letGo(&removed)
        return e
    }

    private func removeLocked(_ uuid: String, removed: inout MdevDevice?) -> Errno? {
        guard let device = devices[uuid] else { return .operationNotSupportedByDevice }
        // sysfs refuses to remove an mdev while a VFIO user holds it.
        if device.isOpen { return .resourceBusy }
        removed = devices.removeValue(forKey: uuid)
        deviceOrder.removeAll { $0 == uuid }
        inodes.removeDevice(uuid)
        return nil
    }

    /// Drops the tree's reference to a removed device once it is the last one, waiting up to
    /// `bound` for requests in flight to let go of theirs. The RELEASE of the region's last
    /// descriptor clears the holder before its handler returns, and a remove then let the device
    /// (and its data section, up to 1 GiB) outlive the reply: a create right after it found no
    /// memory (seen in CI under `prlimit --as`). A reference held longer keeps the memory until
    /// it goes.
    private static func letGo(_ device: inout MdevDevice?, bound: TimeInterval = 1) {
        let deadline = Date().addingTimeInterval(bound)
        while device != nil, !isKnownUniquelyReferenced(&device), Date() < deadline { usleep(1000) }
        device = nil
    }

    private func availableLocked(_ type: Int) -> Int {
        types[type].instances - devices.values.filter { $0.typeIndex == type }.count
    }

    // MARK: Nodes

    private func child(of parent: FUSEInode, named name: String) -> MdevNode? {
        switch inodes.node(parent) {
        case .root?:
            return ["mdev_supported_types": MdevNode.typesDirectory, "devices": .devicesDirectory,
                    "iommu_groups": .iommuGroupsDirectory][name] ?? SysfsNode.rootEntries.first { $0.0 == name }?.1
        case .iommuGroupsDirectory?:
            return devices.values.first { String($0.iommuGroup) == name }.map { .iommuGroupDirectory(uuid: $0.uuid) }
        case .typesDirectory?:
            return types.firstIndex { $0.name == name }.map { .typeDirectory(type: $0) }
        case .typeDirectory(let t)?:
            return MdevNode.TypeAttribute(rawValue: name).map { .typeAttribute(type: t, $0) }
        case .devicesDirectory?:
            return devices[name] != nil ? .deviceDirectory(uuid: name) : nil
        case .deviceDirectory(let uuid)?:
            guard let file = MdevNode.DeviceFile(rawValue: name), let d = devices[uuid], d.offers(file) else { return nil }
            return .deviceFile(uuid: uuid, file)
        case .sysfs(let node)?:
            return sysfsLocked.child(of: node, named: name)
        default:
            return nil
        }
    }

    /// The entries of directory `inode`, or nil if it is none.
    func listing(_ inode: FUSEInode) -> [DirectoryEntry]? {
        lock.withLock { () -> [DirectoryEntry]? in
            guard let node = inodes.node(inode), node.kind == .directory else { return nil }
            var children: [(String, MdevNode)]
            switch node {
            case .root:
                children = [("mdev_supported_types", .typesDirectory), ("devices", .devicesDirectory),
                            ("iommu_groups", .iommuGroupsDirectory)] + SysfsNode.rootEntries
            case .iommuGroupsDirectory:
                children = deviceOrder.compactMap { uuid in
                    devices[uuid].map { (String($0.iommuGroup), .iommuGroupDirectory(uuid: uuid)) }
                }
            case .typesDirectory: children = types.indices.map { (types[$0].name, .typeDirectory(type: $0)) }
            case .typeDirectory(let t): children = MdevNode.TypeAttribute.allCases.map { ($0.rawValue, .typeAttribute(type: t, $0)) }
            case .devicesDirectory: children = deviceOrder.map { ($0, .deviceDirectory(uuid: $0)) }
            case .deviceDirectory(let uuid):
                children = MdevNode.DeviceFile.allCases.filter { devices[uuid]?.offers($0) == true }
                    .map { ($0.rawValue, .deviceFile(uuid: uuid, $0)) }
            case .sysfs(let node): children = sysfsLocked.children(of: node)
            default: children = []
            }
            var listing = [DirectoryEntry(inode: inode, kind: .directory, name: "."),
                           DirectoryEntry(inode: .root, kind: .directory, name: "..")]
            for (name, child) in children {
                if let i = inodes.inode(child) { listing.append(DirectoryEntry(inode: i, kind: child.kind, name: name)) }
            }
            return listing
        }
    }

    private func attributesLocked(_ inode: FUSEInode, _ node: MdevNode) -> FileAttributes {
        var size: UInt64 = 0
        switch node {
        case .deviceFile(let uuid, .migration): size = devices[uuid]?.region.regionSize ?? 0
        case .deviceFile(let uuid, let file) where file.kind == .symlink:
            size = UInt64(devices[uuid].flatMap { linkTargetLocked($0, file) }?.utf8.count ?? 0)
        case .sysfs(let node) where node.kind == .symlink: size = UInt64(sysfsLocked.linkTarget(node)?.utf8.count ?? 0)
        case .deviceFile(_, .config): size = UInt64(PCIConfigSpace.size)
        case .deviceFile(_, .violations), .deviceFile(_, .migStateLog):
            // Logs that grow past a page: size 0, as procfs says of generated files, so a reader
            // that trusts st_size (Foundation's String(contentsOfFile:)) reads to the end, not 4096 bytes.
            size = 0
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

    // MARK: Contents

    /// The bytes of a text attribute, or nil for files that cannot be read. Device files are
    /// computed without the tree lock: a digest hashes all of a device's memory (seconds for a
    /// large device), and the rest of the mount must keep answering meanwhile.
    func content(_ node: MdevNode, mmapAvailable: Bool) -> [UInt8]? {
        func line(_ s: String) -> [UInt8] { Array((s + "\n").utf8) }
        switch node {
        case .typeAttribute(let t, let attribute):
            return lock.withLock { typeContentLocked(t, attribute) }
        case .deviceFile(let uuid, let file):
            guard let device = device(uuid) else { return nil }
            switch file {
            case .digest: return line(device.withLock { device.region.device.digest() })
            case .state: return line(Self.json(device.withLock { DeviceStatus(region: device.region.status, v2: device.v2?.status) }))
            case .violations:
                let all = device.withLock { device.region.violations + (device.v2?.violations ?? []) }
                return Array(all.map { Self.json($0) + "\n" }.joined().utf8)
            case .migrationInfo:
                return line(Self.json(RegionInfo(configuration: device.region.configuration, mmapAvailable: mmapAvailable)))
            case .config: return PCIConfigSpace.bytes(types[device.typeIndex].pci)
            case .dma: return line(types[device.typeIndex].dma.map { Self.json($0) } ?? "{}")
            case .migStateLog:
                guard let v2 = device.v2 else { return nil }
                return line(device.withLock { v2.stateLog.map(\.description).joined(separator: " ") })
            default: return nil
            }
        default:
            return nil
        }
    }

    /// The sysfs-shaped view of the tree as it stands (under the lock).
    private var sysfsLocked: SysfsView {
        let view = { (d: MdevDevice) in
            SysfsView.Device(uuid: d.uuid, type: d.typeIndex, iommuGroup: d.iommuGroup, files: MdevNode.DeviceFile.allCases.filter(d.offers))
        }
        return SysfsView(parent: parent, typeNames: types.map(\.name),
                         devices: deviceOrder.compactMap { devices[$0].map(view) }, device: { self.devices[$0].map(view) })
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

    static func json<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}

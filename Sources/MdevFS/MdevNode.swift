import FUSEKit

/// What an inode of the mount is. The tree mirrors sysfs's mdev layout:
///
/// ```
/// MOUNT/mdev_supported_types/<type>/{name,description,device_api,available_instances,create,devices/}
/// MOUNT/devices/<uuid>/{mdev_type -> ../../mdev_supported_types/<type>, migration, migration.info,
///                      reset, remove, digest, state, violations, config, dma,
///                      iommu_group -> ../../iommu_groups/<N>}
/// MOUNT/iommu_groups/<N>/
/// ```
/// and the kernel's sysfs layout of the same devices (`SysfsNode`).
enum MdevNode: Hashable, Sendable {
    case root
    case typesDirectory
    case devicesDirectory
    case typeDirectory(type: Int)
    case typeAttribute(type: Int, TypeAttribute)
    case deviceDirectory(uuid: String)
    case deviceFile(uuid: String, DeviceFile)
    case iommuGroupsDirectory
    /// A device's IOMMU group (one device per group, as for an mdev); an empty directory.
    case iommuGroupDirectory(uuid: String)
    /// A directory or link of the sysfs-shaped view.
    case sysfs(SysfsNode)

    /// Files of an mdev type directory.
    enum TypeAttribute: String, CaseIterable, Sendable {
        case name
        case description
        case deviceAPI = "device_api"
        case availableInstances = "available_instances"
        case create

        var permissions: UInt16 { self == .create ? 0o200 : 0o444 }
    }

    /// Entries of a device directory.
    enum DeviceFile: String, CaseIterable, Sendable {
        case mdevType = "mdev_type"
        case migration
        case migrationInfo = "migration.info"
        case reset
        case remove
        case digest
        case state
        case violations
        /// 256 bytes of PCI config space (`PCIConfigSpace`).
        case config
        /// Where a VMM reads the group number from (QEMU: basename of the link's target).
        case iommuGroup = "iommu_group"
        /// The type's `dma:` spec as JSON (`{}` without one), for the VFIO shim that performs it.
        case dma
        // Migration v2, present when the type speaks it (docs/vmm-guide.md, "The v2 contract").
        // Each file is one v2 call: binary little-endian values at offset 0, of exact sizes.
        /// 8 bytes: `struct vfio_device_feature_migration.flags` (FEATURE GET `MIGRATION`).
        case migFeatures = "mig_features"
        /// 4 bytes: pread is `MIG_DEVICE_STATE` GET, pwrite is SET.
        case migState = "mig_state"
        /// The data_fd of the current data transfer session: opened after the SET that started
        /// it; `read()` on a save session, `write()` on a resume session.
        case migData = "mig_data"
        /// 16 bytes: `initial_bytes`, `dirty_bytes` (`VFIO_MIG_GET_PRECOPY_INFO`), for the session
        /// open when the file was opened (the current one if none was).
        case migPrecopyInfo = "mig_precopy_info"
        /// 8 bytes: `stop_copy_length` (FEATURE GET `MIG_DATA_SIZE`).
        case migDataSize = "mig_data_size"
        /// Device DMA logging (`VFIO_DEVICE_FEATURE_DMA_LOGGING_START`, `_STOP`, `_REPORT`): a pwrite
        /// at offset 0 of one command (`DMALogCommand`) is the call; a pread of 8 bytes is the page
        /// size the device tracks with (0 while logging is off).
        case migDMALogging = "mig_dma_logging"
        /// Text, read-only, not a v2 call: every v2 state the device entered since it was
        /// created, one per arc of each SET's walk, space-separated (for tests and reports).
        case migStateLog = "mig_state_log"

        /// Files only a device speaking v2 has.
        var isV2: Bool { isV2Call || self == .migStateLog }

        /// The files that are each one v2 call (`V2Files` serves them).
        var isV2Call: Bool {
            switch self {
            case .migFeatures, .migState, .migData, .migPrecopyInfo, .migDataSize, .migDMALogging: true
            default: false
            }
        }

        /// Region 0600 like a VFIO device node; write-only triggers 0200 and read-only
        /// attributes 0444, as sysfs has them.
        var permissions: UInt16 {
            switch self {
            case .mdevType, .iommuGroup: 0o777
            case .migration, .migState, .migData, .migDMALogging: 0o600
            case .reset, .remove: 0o200
            default: 0o444
            }
        }

        var kind: FileKind { self == .mdevType || self == .iommuGroup ? .symlink : .regular }
    }

    var kind: FileKind {
        switch self {
        case .root, .typesDirectory, .devicesDirectory, .typeDirectory, .deviceDirectory, .iommuGroupsDirectory,
             .iommuGroupDirectory: .directory
        case .typeAttribute: .regular
        case .deviceFile(_, let file): file.kind
        case .sysfs(let node): node.kind
        }
    }

    var permissions: UInt16 {
        switch self {
        case .root, .typesDirectory, .devicesDirectory, .typeDirectory, .deviceDirectory, .iommuGroupsDirectory,
             .iommuGroupDirectory: 0o755
        case .typeAttribute(_, let a): a.permissions
        case .deviceFile(_, let f): f.permissions
        case .sysfs(let node): node.permissions
        }
    }
}

/// Stable inode numbers. Static nodes are fixed; each device gets a block of numbers that is
/// never reused after `remove`, so a kernel holding an old inode can never reach a new device.
/// Block sizes follow from the nodes a block holds, and device blocks start above the last
/// type block, so no two nodes can share a number whatever the number of types or files.
struct InodeTable {
    static let typesDirectory = FUSEInode(2)
    static let devicesDirectory = FUSEInode(3)
    static let iommuGroupsDirectory = FUSEInode(4)
    private static let typeBase: UInt64 = 16
    /// A type's directory, its attributes and its nodes of the sysfs view.
    static let typeStride = blockSize(holding: 1 + MdevNode.TypeAttribute.allCases.count + SysfsNode.typeNodes(0).count)
    /// A device's directory, its files, its nodes of the sysfs view and its IOMMU group
    /// directory (the block's last number).
    static let deviceStride = blockSize(holding: 1 + MdevNode.DeviceFile.allCases.count + SysfsNode.deviceNodes("").count + 1)
    /// Where device blocks start: 2^20 unless the types need more room.
    let deviceBase: UInt64

    /// The smallest power of two, at least 16, that holds `count` numbers.
    static func blockSize(holding count: Int) -> UInt64 {
        var size: UInt64 = 16
        while size < UInt64(count) { size <<= 1 }
        return size
    }

    private var byInode: [FUSEInode: MdevNode] = [
        .root: .root, typesDirectory: .typesDirectory, devicesDirectory: .devicesDirectory,
        iommuGroupsDirectory: .iommuGroupsDirectory,
    ]
    private var byNode: [MdevNode: FUSEInode] = [
        .root: .root, .typesDirectory: typesDirectory, .devicesDirectory: devicesDirectory,
        .iommuGroupsDirectory: iommuGroupsDirectory,
    ]
    private var nextDeviceBlock: UInt64 = 0

    init(typeCount: Int) {
        let typesEnd = Self.typeBase + UInt64(typeCount) * Self.typeStride
        deviceBase = max(1 << 20, (typesEnd + Self.deviceStride - 1) / Self.deviceStride * Self.deviceStride)
        for (node, number) in SysfsNode.fixed { insert(.sysfs(node), FUSEInode(number)) }
        for t in 0..<typeCount {
            let base = Self.typeBase + UInt64(t) * Self.typeStride
            insert(.typeDirectory(type: t), FUSEInode(base))
            for (i, a) in MdevNode.TypeAttribute.allCases.enumerated() {
                insert(.typeAttribute(type: t, a), FUSEInode(base + 1 + UInt64(i)))
            }
            let after = 1 + UInt64(MdevNode.TypeAttribute.allCases.count)
            for (i, node) in SysfsNode.typeNodes(t).enumerated() { insert(.sysfs(node), FUSEInode(base + after + UInt64(i))) }
        }
    }

    private mutating func insert(_ node: MdevNode, _ inode: FUSEInode) {
        byInode[inode] = node
        byNode[node] = inode
    }

    func node(_ inode: FUSEInode) -> MdevNode? { byInode[inode] }
    func inode(_ node: MdevNode) -> FUSEInode? { byNode[node] }

    mutating func addDevice(_ uuid: String) {
        let base = deviceBase + nextDeviceBlock * Self.deviceStride
        nextDeviceBlock += 1
        insert(.deviceDirectory(uuid: uuid), FUSEInode(base))
        for (i, f) in MdevNode.DeviceFile.allCases.enumerated() {
            insert(.deviceFile(uuid: uuid, f), FUSEInode(base + 1 + UInt64(i)))
        }
        let after = 1 + UInt64(MdevNode.DeviceFile.allCases.count)
        for (i, node) in SysfsNode.deviceNodes(uuid).enumerated() { insert(.sysfs(node), FUSEInode(base + after + UInt64(i))) }
        // The last number of the block: the device's group directory.
        insert(.iommuGroupDirectory(uuid: uuid), FUSEInode(base + Self.deviceStride - 1))
    }

    mutating func removeDevice(_ uuid: String) {
        var nodes: [MdevNode] = [.deviceDirectory(uuid: uuid), .iommuGroupDirectory(uuid: uuid)]
        nodes += MdevNode.DeviceFile.allCases.map { .deviceFile(uuid: uuid, $0) }
        nodes += SysfsNode.deviceNodes(uuid).map { .sysfs($0) }
        for node in nodes {
            if let inode = byNode.removeValue(forKey: node) { byInode[inode] = nil }
        }
    }
}

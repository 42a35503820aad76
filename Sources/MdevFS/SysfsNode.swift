import FUSEKit

/// The kernel's sysfs layout of the mount's devices, beside mdevsim's own tree, so tools that
/// know sysfs (mdevctl, libvirt's node-device code, scripts) can be pointed at it:
///
/// ```
/// MOUNT/class/mdev_bus/<parent>/mdev_supported_types/<type>/{name,description,device_api,
///                                                          available_instances,create,devices/}
/// MOUNT/class/mdev_bus/<parent>/mdev_supported_types/<type>/devices/<uuid> -> ../../../<uuid>
/// MOUNT/class/mdev_bus/<parent>/<uuid>/{mdev_type -> ../mdev_supported_types/<type>,
///                                       iommu_group -> ../../../../iommu_groups/<N>,
///                                       remove, migration, migration.info, reset, digest,
///                                       state, violations, config, dma}
/// MOUNT/bus/mdev/devices/<uuid> -> ../../../class/mdev_bus/<parent>/<uuid>
/// ```
///
/// Its files are the very inodes of `MOUNT/mdev_supported_types/...` and `MOUNT/devices/...`
/// (same handlers, same content); only directories and links are its own.
///
/// Why the parent is a directory and not, as in the kernel, a link into `/sys/devices/...`:
/// tools are pointed at the tree by bind-mounting `class/mdev_bus` and `bus/mdev/devices` over
/// `/sys` (mdevctl reads those two paths), so every link must resolve inside those two
/// subtrees. mdevctl takes a device's parent from the name of the directory its
/// `bus/mdev/devices/<uuid>` link resolves into, and its type from the basename of
/// `mdev_type`'s target: both hold here as in the kernel. Relative targets keep the same
/// depth as `/sys`, so they resolve the same under the mount and under the bind mounts.
enum SysfsNode: Hashable, Sendable {
    /// `MOUNT/class`
    case classDirectory
    /// `MOUNT/class/mdev_bus`
    case mdevBusDirectory
    /// `MOUNT/class/mdev_bus/<parent>`
    case parentDirectory
    /// `<parent>/mdev_supported_types`
    case typesDirectory
    /// `<parent>/mdev_supported_types/<type>`: the type's attribute files and `devices/`.
    case typeDirectory(type: Int)
    /// `<type>/devices`: a link per device of the type.
    case typeDevicesDirectory(type: Int)
    /// `<type>/devices/<uuid> -> ../../../<uuid>`
    case typeDeviceLink(uuid: String)
    /// `<parent>/<uuid>`: the device's files and its two links.
    case deviceDirectory(uuid: String)
    /// `<parent>/<uuid>/mdev_type` or `<parent>/<uuid>/iommu_group`.
    case deviceLink(uuid: String, MdevNode.DeviceFile)
    /// `MOUNT/bus`
    case busDirectory
    /// `MOUNT/bus/mdev`
    case busMdevDirectory
    /// `MOUNT/bus/mdev/devices`
    case busDevicesDirectory
    /// `bus/mdev/devices/<uuid> -> ../../../class/mdev_bus/<parent>/<uuid>`
    case busDeviceLink(uuid: String)

    /// Entries of the mount's root that belong to this view.
    static let rootEntries: [(String, MdevNode)] = [("class", .sysfs(.classDirectory)), ("bus", .sysfs(.busDirectory))]

    /// Directories that exist once per mount, with their fixed inode numbers (below the
    /// first type's block, `InodeTable`).
    static let fixed: [(SysfsNode, UInt64)] = [
        (.classDirectory, 5), (.mdevBusDirectory, 6), (.parentDirectory, 7), (.typesDirectory, 8),
        (.busDirectory, 9), (.busMdevDirectory, 10), (.busDevicesDirectory, 11),
    ]

    /// A type's own nodes, numbered by `InodeTable` in the type's block after its attributes.
    static func typeNodes(_ type: Int) -> [SysfsNode] {
        [.typeDirectory(type: type), .typeDevicesDirectory(type: type)]
    }

    /// A device's own nodes, numbered by `InodeTable` in the device's block after its files.
    static func deviceNodes(_ uuid: String) -> [SysfsNode] {
        [.deviceDirectory(uuid: uuid), .deviceLink(uuid: uuid, .mdevType), .deviceLink(uuid: uuid, .iommuGroup),
         .typeDeviceLink(uuid: uuid), .busDeviceLink(uuid: uuid)]
    }

    var kind: FileKind {
        switch self {
        case .typeDeviceLink, .deviceLink, .busDeviceLink: .symlink
        default: .directory
        }
    }

    var permissions: UInt16 { kind == .symlink ? 0o777 : 0o755 }
}

/// Names, children and link targets of the sysfs view over one tree's state. A value made
/// under the tree's lock from what it holds; it knows nothing of files or FUSE.
struct SysfsView {
    /// A device as the view needs it.
    struct Device {
        let uuid: String
        let type: Int
        let iommuGroup: Int
        /// The device's files, as its mdevsim directory has them (the v2 ones only on a device speaking v2).
        let files: [MdevNode.DeviceFile]
    }

    let parent: String
    let typeNames: [String]
    /// Devices in creation order.
    let devices: [Device]
    /// Looks a device up by UUID (the tree's dictionary, not a scan).
    let device: (String) -> Device?

    func child(of node: SysfsNode, named name: String) -> MdevNode? {
        switch node {
        case .classDirectory: return name == "mdev_bus" ? .sysfs(.mdevBusDirectory) : nil
        case .mdevBusDirectory: return name == parent ? .sysfs(.parentDirectory) : nil
        case .parentDirectory:
            if name == "mdev_supported_types" { return .sysfs(.typesDirectory) }
            return device(name).map { .sysfs(.deviceDirectory(uuid: $0.uuid)) }
        case .typesDirectory: return typeNames.firstIndex(of: name).map { .sysfs(.typeDirectory(type: $0)) }
        case .typeDirectory(let t):
            if name == "devices" { return .sysfs(.typeDevicesDirectory(type: t)) }
            return MdevNode.TypeAttribute(rawValue: name).map { .typeAttribute(type: t, $0) }
        case .typeDevicesDirectory(let t):
            return device(name).flatMap { $0.type == t ? .sysfs(.typeDeviceLink(uuid: $0.uuid)) : nil }
        case .deviceDirectory(let uuid):
            guard let file = MdevNode.DeviceFile(rawValue: name), device(uuid)?.files.contains(file) == true else { return nil }
            return Self.deviceEntry(uuid, file)
        case .busDirectory: return name == "mdev" ? .sysfs(.busMdevDirectory) : nil
        case .busMdevDirectory: return name == "devices" ? .sysfs(.busDevicesDirectory) : nil
        case .busDevicesDirectory: return device(name).map { .sysfs(.busDeviceLink(uuid: $0.uuid)) }
        case .typeDeviceLink, .deviceLink, .busDeviceLink: return nil
        }
    }

    func children(of node: SysfsNode) -> [(String, MdevNode)] {
        switch node {
        case .classDirectory: return [("mdev_bus", .sysfs(.mdevBusDirectory))]
        case .mdevBusDirectory: return [(parent, .sysfs(.parentDirectory))]
        case .parentDirectory:
            return [("mdev_supported_types", .sysfs(.typesDirectory))]
                + devices.map { ($0.uuid, .sysfs(.deviceDirectory(uuid: $0.uuid))) }
        case .typesDirectory: return typeNames.indices.map { (typeNames[$0], .sysfs(.typeDirectory(type: $0))) }
        case .typeDirectory(let t):
            return MdevNode.TypeAttribute.allCases.map { ($0.rawValue, .typeAttribute(type: t, $0)) }
                + [("devices", .sysfs(.typeDevicesDirectory(type: t)))]
        case .typeDevicesDirectory(let t):
            return devices.filter { $0.type == t }.map { ($0.uuid, .sysfs(.typeDeviceLink(uuid: $0.uuid))) }
        case .deviceDirectory(let uuid):
            return (device(uuid)?.files ?? []).map { ($0.rawValue, Self.deviceEntry(uuid, $0)) }
        case .busDirectory: return [("mdev", .sysfs(.busMdevDirectory))]
        case .busMdevDirectory: return [("devices", .sysfs(.busDevicesDirectory))]
        case .busDevicesDirectory: return devices.map { ($0.uuid, .sysfs(.busDeviceLink(uuid: $0.uuid))) }
        case .typeDeviceLink, .deviceLink, .busDeviceLink: return []
        }
    }

    /// The target of a link, relative to the directory holding it, as sysfs has it.
    func linkTarget(_ node: SysfsNode) -> String? {
        switch node {
        case .typeDeviceLink(let uuid): return device(uuid).map { "../../../\($0.uuid)" }
        case .deviceLink(let uuid, .mdevType):
            return device(uuid).flatMap { typeNames.indices.contains($0.type) ? "../mdev_supported_types/\(typeNames[$0.type])" : nil }
        // The kernel's is ../../../../kernel/iommu_groups/<N> from /sys/bus/mdev/devices/<uuid>;
        // here the mount's own groups directory, at the same relative depth. VMMs read only the
        // basename (the group number).
        case .deviceLink(let uuid, .iommuGroup): return device(uuid).map { "../../../../iommu_groups/\($0.iommuGroup)" }
        case .busDeviceLink(let uuid): return device(uuid).map { "../../../class/mdev_bus/\(parent)/\($0.uuid)" }
        default: return nil
        }
    }

    /// A device directory's entry: its own link for the two links, else mdevsim's file itself.
    private static func deviceEntry(_ uuid: String, _ file: MdevNode.DeviceFile) -> MdevNode {
        file.kind == .symlink ? .sysfs(.deviceLink(uuid: uuid, file)) : .deviceFile(uuid: uuid, file)
    }
}

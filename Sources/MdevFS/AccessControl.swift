import FUSEKit
import Glibc
import SystemPackage

/// Who may do what on a mount, decided the way sysfs decides it.
///
/// Every node belongs to the daemon's user and group with the fixed mode `MdevNode.permissions`.
/// The kernel checks those modes on every path walk and open (the mount always has
/// `default_permissions`); the filesystem checks them again for what it decides itself (create,
/// remove, reset, opening a region, every write of a control file), so that a descriptor another
/// user got hold of, or a kernel that did not check, still cannot drive a device that is not theirs.
///
/// The caller is `fuse_req_ctx`'s uid and gid. Root passes any check a mode bit allows to someone
/// (`CAP_DAC_OVERRIDE`), but never one no bit allows (sysfs refuses writes of a 0444 attribute to
/// root too: it has no store method). Supplementary groups are not consulted: no node's group
/// bits grant more than its other bits, so group membership never changes an answer.
struct AccessControl: Sendable {
    let uid: uid_t
    let gid: gid_t

    /// What a caller wants to do with a node.
    struct Want: OptionSet, Sendable {
        let rawValue: UInt16
        static let read = Want(rawValue: 4)
        static let write = Want(rawValue: 2)

        init(rawValue: UInt16) { self.rawValue = rawValue }

        init(_ flags: OpenFlags) {
            self = []
            if flags.isReadable { insert(.read) }
            if flags.isWritable { insert(.write) }
        }
    }

    /// `nil` when `request`'s caller may do `want` with a node of mode `permissions`, else the
    /// errno sysfs answers (`EACCES`).
    func check(_ request: Request, _ want: Want, permissions: UInt16) -> Errno? {
        let bits: UInt16
        if request.uid == 0 {
            bits = (permissions >> 6 | permissions >> 3 | permissions) & 7
        } else if request.uid == uid {
            bits = permissions >> 6 & 7
        } else if request.gid == gid {
            bits = permissions >> 3 & 7
        } else {
            bits = permissions & 7
        }
        return bits & want.rawValue == want.rawValue ? nil : .permissionDenied
    }

    /// The errno sysfs gives for a change of its tree: `EACCES` for a new file (the VFS finds no
    /// `create` method), `EPERM` for the rest (kernfs answers mkdir, rmdir and rename with it, the
    /// VFS mknod, symlink, link and unlink).
    static func refusal(of change: TreeChange) -> Errno {
        if case .create = change { return .permissionDenied }
        return .notPermitted
    }
}

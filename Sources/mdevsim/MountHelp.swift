/// The text of `mdevsim mount --help`: the tree as one preformatted block (every line short
/// enough that the help's wrapping at 80 columns leaves it alone) and how to use it.
/// README.md and docs/vmm-guide.md show the same block (a test compares them).
enum MountHelp {
    static let tree = """
        MOUNT/mdev_supported_types/<type>/
            name  description  device_api  available_instances  create
        MOUNT/devices/<uuid>/
            migration  migration.info  config  dma  digest  state  violations
            reset  remove
            mdev_type -> ../../mdev_supported_types/<type>
            iommu_group -> ../../iommu_groups/<N>
        MOUNT/iommu_groups/<N>/
        MOUNT/class/mdev_bus/<parent>/mdev_supported_types/<type>/
            name  description  device_api  available_instances  create
            devices/<uuid> -> ../../../<uuid>
        MOUNT/class/mdev_bus/<parent>/<uuid>/
            migration  migration.info  config  dma  digest  state  violations
            reset  remove
            mdev_type -> ../mdev_supported_types/<type>
            iommu_group -> ../../../../iommu_groups/<N>
        MOUNT/bus/mdev/devices/<uuid> -> ../../../class/mdev_bus/<parent>/<uuid>
        """

    static let discussion = """
        Returns once the mount is ready and leaves a daemon serving it (libfuse's fuse_daemonize, \
        like sshfs), or stays attached with -f. Stop it with `mdevsim unmount MOUNTPOINT` (refused \
        while a process holds a file of the mount, unless --lazy), or SIGINT/SIGTERM to the daemon. \
        The tree (under class/ and bus/ the kernel's sysfs layout of the same devices and files; \
        <parent> is the scenario's parent:, 0000:00:00.0 by default):

        \(tree)

        Create a device, then point the VMM at its region (MOUNT/devices/$uuid/migration):

            uuid=$(cat /proc/sys/kernel/random/uuid)
            echo $uuid > MOUNT/mdev_supported_types/<type>/create
            echo 1 > MOUNT/devices/$uuid/remove

        From /etc/fstab, or `mount -t fuse.mdevsim SCENARIO MOUNTPOINT -o OPTIONS`: mount(8) \
        runs mount.fuse3, which runs `mdevsim SCENARIO MOUNTPOINT -o OPTIONS` from the PATH \
        /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin (install mdevsim there). \
        See docs/vmm-guide.md.
        """
}

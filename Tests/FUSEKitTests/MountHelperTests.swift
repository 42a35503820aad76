import FUSEKit
import Glibc
import SystemPackage
import Testing
import TestSupport

@Suite("Mount helpers", .timeLimit(.minutes(1)))
struct MountHelperTests {
    @Test func fuseDeviceIsPresent() throws {
        // CI must fail, not skip, when FUSE is unavailable; the message names the fix.
        try MountHelpers.checkFUSEDevice()
        let error = #expect(throws: FUSEError.self) {
            try MountHelpers.checkFUSEDevice(path: "/dev/fuse-does-not-exist")
        }
        #expect(error?.kind == .deviceMissing)
        #expect(error?.message.contains("apt-get install -y fuse3 libfuse3-dev pkg-config") == true)
        #expect(error?.message.contains("modprobe fuse") == true)
    }

    @Test func mountpointChecks() throws {
        let dir = try makeTemporaryDirectory("fusekit")
        defer { rmdir(dir) }
        try MountHelpers.checkMountpoint(dir)
        #expect(MountHelpers.status(of: dir) == .notMounted)

        let missing = #expect(throws: FUSEError.self) { try MountHelpers.checkMountpoint(dir + "/nope") }
        #expect(missing?.kind == .mountpointMissing)
        #expect(missing?.errno == .noSuchFileOrDirectory)

        let file = dir + "/file"
        let fd = open(file, O_CREAT | O_WRONLY, 0o600)
        close(fd)
        defer { unlink(file) }
        let notDir = #expect(throws: FUSEError.self) { try MountHelpers.checkMountpoint(file) }
        #expect(notDir?.kind == .mountpointNotADirectory)

        let session = try FUSESession(filesystem: TreeFS(), mountpoint: dir + "/nope", options: Mount.defaultOptions)
        let mountError = #expect(throws: FUSEError.self) { try session.mount() }
        #expect(mountError?.kind == .mountpointMissing)
        #expect(!session.isMounted)
        #expect(throws: FUSEError.self) { try session.run() }
    }

    @Test func unknownOptionsAreATypedError() {
        var options = FUSEOptions()
        options.extraMountOptions = ["no_such_option_xyz"]
        let error = #expect(throws: FUSEError.self) {
            _ = try FUSESession(filesystem: TreeFS(), mountpoint: "/tmp", options: options)
        }
        #expect(error?.kind == .invalidOption)
    }

    /// A FUSE mount whose daemon is gone: mount(2) on a /dev/fuse fd, then close the fd without
    /// unmounting (what a daemon killed with SIGKILL leaves behind).
    @Test func staleMountIsDetectedAndCleared() throws {
        try MountHelpers.checkFUSEDevice()
        let dir = try makeTemporaryDirectory("fusekit")
        defer {
            if MountHelpers.isMountPoint(dir) { try? MountHelpers.unmount(dir) }
            rmdir(dir)
        }
        let fd = open("/dev/fuse", O_RDWR | O_CLOEXEC)
        try #require(fd >= 0, "open /dev/fuse: errno \(errno)")
        let data = "fd=\(fd),rootmode=40000,user_id=\(geteuid()),group_id=\(getegid())"
        let rc = mount("fusekit-stale", dir, "fuse.fusekit-stale", 0, data)
        let mountErrno = errno
        close(fd)
        try #require(rc == 0, "mount(2) of a raw FUSE fd failed: errno \(mountErrno)")

        #expect(MountHelpers.status(of: dir) == .stale)
        #expect(MountHelpers.isStaleMount(dir))
        var st = stat()
        #expect(stat(dir, &st) == -1 && errno == ENOTCONN)
        let error = #expect(throws: FUSEError.self) { try MountHelpers.checkMountpoint(dir) }
        #expect(error?.kind == .staleMount)
        #expect(error?.errno == .socketNotConnected)
        #expect(error?.message.contains("fusermount3 -u -z \(dir)") == true)

        try MountHelpers.unmount(dir)
        #expect(MountHelpers.status(of: dir) == .notMounted)
        #expect(!MountHelpers.isMountPoint(dir))
        let again = #expect(throws: FUSEError.self) { try MountHelpers.unmount(dir) }
        #expect(again?.kind == .unmountFailed)
    }

    @Test func attributeChangesAndStat() {
        let a = FileAttributes(inode: FUSEInode(9), kind: .regular, permissions: 0o640, size: 1000)
        #expect(a.stat.st_mode == S_IFREG | 0o640)
        #expect(a.stat.st_ino == 9)
        #expect(a.stat.st_blocks == 2)
        #expect(FileKind(modeBits: S_IFDIR | 0o755) == .directory)
        #expect(AttributeChanges().isEmpty)
    }
}

import FUSEKit
import Glibc
import Synchronization
import SystemPackage
import Testing
import TestSupport

/// End-to-end tests against a real FUSE mount. They fail (never skip) when /dev/fuse is
/// missing: `Mount` calls `MountHelpers.checkFUSEDevice()`, whose error names the fix.
@Suite("FUSE mounts", .timeLimit(.minutes(1)))
struct MountTests {
    @Test func lookupGetattrReaddirReadlinkOfATinyTree() throws {
        let fs = TreeFS()
        try withMount(fs) { m in
            var st = stat()
            #expect(stat(m.file("hello"), &st) == 0)
            #expect(st.st_mode & S_IFMT == S_IFREG)
            #expect(st.st_size == TreeFS.helloText.count)
            #expect(FUSEInode(stIno: st.st_ino) == TreeFS.Node.hello)
            #expect(stat(m.file("sub/data"), &st) == 0)
            #expect(FUSEInode(stIno: st.st_ino) == TreeFS.Node.data)
            #expect(stat(m.file("missing"), &st) == -1 && errno == ENOENT)

            let names = try listDirectory(m.path)
            #expect(names == ["hello", "sub", "region", "mapped", "held", "link", "dropped"])
            #expect(try listDirectory(m.file("sub")) == ["data"])

            var target = [CChar](repeating: 0, count: 64)
            let n = readlink(m.file("link"), &target, target.count)
            #expect(n == 5)
            #expect(String(decoding: target.prefix(max(0, n)).map { UInt8(bitPattern: $0) }, as: UTF8.self) == "hello")

            let fd = try openFile(m.file("hello"), O_RDONLY)
            defer { close(fd) }
            var buf = [UInt8](repeating: 0, count: 64)
            let got = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
            #expect(Array(buf.prefix(max(0, got))) == TreeFS.helloText)

            let uniques = fs.state.withLock { $0.uniques }
            #expect(!uniques.isEmpty && !uniques.contains(0))
            #expect(Set(uniques).count == uniques.count, "request uniques are distinct")
            #expect(fs.state.withLock { $0.uids } == [geteuid()])
        }
    }

    @Test func directIOPassesEveryPreadAndPwriteThroughExactlyOnce() throws {
        let fs = TreeFS()
        try withMount(fs) { m in
            let fd = try openFile(m.file("region"), O_RDWR)
            defer { close(fd) }
            let accesses: [(offset: Int64, size: Int)] = [(8, 8), (0, 4), (5, 3)]
            fs.clearIO()
            for a in accesses {
                var buf = [UInt8](repeating: 0, count: a.size)
                let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, a.size, off_t(a.offset)) }
                #expect(n == a.size)
            }
            for (i, a) in accesses.enumerated() {
                let buf = [UInt8](repeating: UInt8(0xA0 + i), count: a.size)
                let n = buf.withUnsafeBytes { pwrite(fd, $0.baseAddress, a.size, off_t(a.offset)) }
                #expect(n == a.size)
            }
            let io = fs.io(of: TreeFS.Node.region)
            let expected = accesses.map { TreeFS.IO(inode: TreeFS.Node.region, isWrite: false, offset: $0.offset, size: $0.size, isWritepage: false) }
                + accesses.map { TreeFS.IO(inode: TreeFS.Node.region, isWrite: true, offset: $0.offset, size: $0.size, isWritepage: false) }
            #expect(io == expected)

            // The bytes round-trip: 0..3 = A1, 5..7 = A2, 8..15 = A0.
            var back = [UInt8](repeating: 0, count: 16)
            _ = back.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 16, 0) }
            #expect(back == [0xA1, 0xA1, 0xA1, 0xA1, 0, 0xA2, 0xA2, 0xA2] + [UInt8](repeating: 0xA0, count: 8))
        }
    }

    @Test func aHeldWriteReplyIsAnsweredLaterFromAnotherThread() throws {
        let fs = TreeFS()
        try withMount(fs) { m in
            let fd = try openFile(m.file("held"), O_RDWR)
            defer { close(fd) }
            let result = Atomic<Int>(Int.min)
            let writer = try TestThread {
                let bytes: [UInt8] = [1, 2, 3, 4]
                result.store(bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, 4, 0) }, ordering: .releasing)
            }
            defer { writer.join(timeout: .seconds(5)) }
            #expect(waitUntil(timeout: .seconds(30), interval: .milliseconds(1)) { fs.state.withLock { !$0.heldWrites.isEmpty } })
            usleep(50_000)
            #expect(!writer.isFinished, "the client's pwrite waits for the held reply")
            #expect(m.session.pendingRequestCount == 1)

            let reply = try #require(fs.state.withLock { $0.heldWrites.first })
            let answerer = try TestThread { reply.write(4) }
            #expect(answerer.join(timeout: .seconds(5)))
            #expect(writer.join(timeout: .seconds(5)))
            #expect(result.load(ordering: .acquiring) == 4)
            #expect(reply.isAnswered)
            reply.write(4)  // a second answer is ignored (and logged), never a crash
            reply.error(.ioError)
            fs.state.withLock { $0.heldWrites.removeAll() }
            #expect(m.session.pendingRequestCount == 0)
        }
    }

    @Test func aDroppedReplyAnswersEIO() throws {
        let fs = TreeFS()
        try withMount(fs) { m in
            let fd = try openFile(m.file("dropped"), O_RDWR)
            defer { close(fd) }
            let n = [UInt8](repeating: 7, count: 4).withUnsafeBytes { pwrite(fd, $0.baseAddress, 4, 0) }
            #expect(n == -1 && errno == EIO)
        }
    }

    @Test func heldRepliesAreFailedWhenTheSessionEnds() throws {
        let fs = TreeFS()
        let result = Atomic<Int>(Int.min)
        let savedErrno = Atomic<Int32>(0)
        var writer: TestThread?
        try withMount(fs) { m in
            let fd = try openFile(m.file("held"), O_RDWR)
            writer = try TestThread {
                let n = [UInt8](repeating: 1, count: 4).withUnsafeBytes { pwrite(fd, $0.baseAddress, 4, 0) }
                savedErrno.store(errno, ordering: .relaxed)
                result.store(n, ordering: .releasing)
                close(fd)
            }
            #expect(waitUntil(timeout: .seconds(30), interval: .milliseconds(1)) { fs.state.withLock { !$0.heldWrites.isEmpty } })
        }
        // withMount's shutdown ended the loop with the write still held: it was answered EIO.
        #expect(writer?.join(timeout: .seconds(5)) == true)
        #expect(result.load(ordering: .acquiring) == -1)
        #expect(savedErrno.load(ordering: .relaxed) == EIO)
    }

    @Test func mmapOfADirectIOFileWorksWhenAllowMmapWasNegotiated() throws {
        let fs = TreeFS()
        var options = Mount.defaultOptions
        options.allowDirectIOMmap = true
        try withMount(fs, options: options) { m in
            let info = try #require(m.session.connection)
            // Kernel 6.6+ offers the flag; this machine runs 6.18.
            #expect(info.kernelOffersDirectIOMmap)
            #expect(m.session.directIOMmapNegotiated)
            let fd = try openFile(m.file("mapped"), O_RDWR)
            defer { close(fd) }
            let map = mmap(nil, TreeFS.mappedSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
            #expect(map != MAP_FAILED, "mmap(MAP_SHARED) on a direct_io file: errno \(errno)")
            guard let map, map != MAP_FAILED else { return }
            defer { munmap(map, TreeFS.mappedSize) }
            let bytes = map.assumingMemoryBound(to: UInt8.self)
            #expect(bytes[4096 + 7] == UInt8((4096 + 7) % 251))
            let reads = fs.io(of: TreeFS.Node.mapped).filter { !$0.isWrite }
            #expect(!reads.isEmpty)
            #expect(reads.allSatisfy { $0.offset % 4096 == 0 && $0.size % 4096 == 0 }, "page faults are page-shaped READs")
        }
    }

    @Test func mmapOfADirectIOFileFailsWithENODEVWithoutTheOption() throws {
        let fs = TreeFS()
        try withMount(fs) { m in
            #expect(!m.session.directIOMmapNegotiated)
            #expect(m.session.connection?.directIOMmapRequested == false)
            let fd = try openFile(m.file("mapped"), O_RDWR)
            defer { close(fd) }
            let map = mmap(nil, TreeFS.mappedSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
            let err = errno
            if map != MAP_FAILED, let map { munmap(map, TreeFS.mappedSize) }
            #expect(map == MAP_FAILED)
            #expect(err == ENODEV)
        }
    }

    @Test func notifyStoreMakesBytesVisibleThroughAnExistingMapping() throws {
        let fs = TreeFS()
        var options = Mount.defaultOptions
        options.allowDirectIOMmap = true
        try withMount(fs, options: options) { m in
            let fd = try openFile(m.file("mapped"), O_RDWR)
            defer { close(fd) }
            let map = mmap(nil, TreeFS.mappedSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
            try #require(map != MAP_FAILED, "mmap failed: errno \(errno)")
            guard let map else { return }
            defer { munmap(map, TreeFS.mappedSize) }
            let bytes = map.assumingMemoryBound(to: UInt8.self)
            #expect(bytes[8192 + 100] == UInt8((8192 + 100) % 251))  // fault the page in

            let stored = Array("stored by the daemon".utf8)
            fs.clearIO()
            try m.session.notifier.store(inode: TreeFS.Node.mapped, offset: 8192 + 100, bytes: stored)
            #expect(Array(UnsafeBufferPointer(start: bytes + 8192 + 100, count: stored.count)) == stored)
            // A page not mapped before is filled by the store too, with no READ at all.
            try m.session.notifier.store(inode: TreeFS.Node.mapped, offset: 3 * 4096, bytes: [UInt8](repeating: 0x5A, count: 4096))
            #expect(bytes[3 * 4096 + 17] == 0x5A)
            #expect(fs.io(of: TreeFS.Node.mapped).isEmpty, "stores need no READ")
        }
    }

    @Test func bytesStoredThroughTheMappingComeBackByNotifyRetrieve() throws {
        let fs = TreeFS()
        var options = Mount.defaultOptions
        options.allowDirectIOMmap = true
        try withMount(fs, options: options) { m in
            let fd = try openFile(m.file("mapped"), O_RDWR)
            defer { close(fd) }
            let map = mmap(nil, TreeFS.mappedSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
            try #require(map != MAP_FAILED, "mmap failed: errno \(errno)")
            guard let map else { return }
            let bytes = map.assumingMemoryBound(to: UInt8.self)
            let pattern = (0..<8192).map { UInt8(truncatingIfNeeded: $0 * 7 + 3) }
            for (i, b) in pattern.enumerated() { bytes[i] = b }

            try m.session.notifier.retrieve(inode: TreeFS.Node.mapped, size: 8192, offset: 0, cookie: 42)
            #expect(waitUntil(timeout: .seconds(30), interval: .milliseconds(1)) { fs.state.withLock { $0.retrieved[42] != nil } })
            let got = fs.state.withLock { $0.retrieved[42] }
            #expect(got?.offset == 0)
            #expect(got?.bytes == pattern)

            // Writeback of the dirty pages arrives as WRITEs flagged as writepage.
            fs.clearIO()
            #expect(msync(map, TreeFS.mappedSize, MS_SYNC) == 0)
            munmap(map, TreeFS.mappedSize)
            let writes = fs.io(of: TreeFS.Node.mapped).filter(\.isWrite)
            #expect(!writes.isEmpty && writes.allSatisfy(\.isWritepage))
            #expect(fs.state.withLock { Array($0.mapped[0..<8192]) } == pattern)
        }
    }

    @Test func exitFromAnotherThreadEndsRunAndUnmounts() throws {
        let fs = TreeFS()
        let m = try Mount(fs)
        let path = m.path
        defer { m.shutdown() }
        var st = stat()
        #expect(stat(m.file("hello"), &st) == 0)
        let stopper = try TestThread { m.session.exit() }
        #expect(stopper.join(timeout: .seconds(5)))
        #expect(m.loop.join(timeout: .seconds(5)))
        #expect(m.outcome.outcome == .exited)
        #expect(!m.session.isMounted)
        #expect(MountHelpers.status(of: path) == .notMounted)
        #expect(throws: Errno.socketNotConnected) {
            try m.session.notifier.invalidateInode(TreeFS.Node.hello)
        }
    }

    @Test func aSignalEndsTheLoopAndUnmountsCleanly() throws {
        let fs = TreeFS()
        var options = Mount.defaultOptions
        options.handleSignals = true  // the only test that owns libfuse's signal handlers
        let m = try Mount(fs, options: options)
        defer { m.shutdown() }
        // Handlers are installed before the loop starts, and INIT completed: the loop runs.
        kill(getpid(), SIGHUP)
        #expect(m.loop.join(timeout: .seconds(5)))
        #expect(m.outcome.outcome == .signal(SIGHUP))
        #expect(MountHelpers.status(of: m.path) == .notMounted)
    }

    @Test func mountingOnABusyMountpointFailsWithATypedError() throws {
        let fs = TreeFS()
        try withMount(fs) { m in
            #expect(MountHelpers.isMountPoint(m.path))
            #expect(MountHelpers.status(of: m.path) == .mounted(fileSystemType: "fuse"))
            let second = try FUSESession(filesystem: TreeFS(), mountpoint: m.path, options: Mount.defaultOptions)
            let error = #expect(throws: FUSEError.self) { try second.mount() }
            #expect(error?.kind == .mountpointBusy)
            #expect(error?.errno == .resourceBusy)
        }
    }
}

func listDirectory(_ path: String) throws -> [String] {
    guard let dir = opendir(path) else { throw Errno(rawValue: errno) }
    defer { closedir(dir) }
    var names: [String] = []
    while let ent = readdir(dir) {
        let name = withUnsafeBytes(of: ent.pointee.d_name) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

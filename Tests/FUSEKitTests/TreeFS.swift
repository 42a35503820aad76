import FUSEKit
import Glibc
import Synchronization
import SystemPackage

/// A tiny filesystem for the tests:
/// /hello (text), /sub/data (text), /link -> hello, /region (32-byte direct_io "register
/// header"), /mapped (64 KiB direct_io data section), /held (writes are held for the test to
/// answer), /dropped (write replies are dropped unanswered).
final class TreeFS: FileSystem {
    enum Node {
        static let root = FUSEInode.root
        static let hello = FUSEInode(2)
        static let sub = FUSEInode(3)
        static let data = FUSEInode(4)
        static let region = FUSEInode(5)
        static let mapped = FUSEInode(6)
        static let held = FUSEInode(7)
        static let link = FUSEInode(8)
        static let dropped = FUSEInode(9)
    }
    static let helloText = Array("hello, fuse\n".utf8)
    static let dataText = Array("nested\n".utf8)
    static let mappedSize = 64 * 1024

    struct IO: Equatable, Sendable {
        var inode: FUSEInode
        var isWrite: Bool
        var offset: Int64
        var size: Int
        var isWritepage: Bool
    }

    struct State {
        var region = [UInt8](repeating: 0, count: 32)
        var mapped = (0..<TreeFS.mappedSize).map { UInt8(truncatingIfNeeded: $0 % 251) }
        var io: [IO] = []
        var heldWrites: [WriteReply] = []
        var retrieved: [UInt64: (offset: Int64, bytes: [UInt8])] = [:]
        var uniques: [UInt64] = []
        var uids: Set<uid_t> = []
    }
    let state = Mutex(State())
    let initialized = Atomic<Bool>(false)

    func initialize(connection: inout ConnectionInfo, notifier: Notifier) {
        initialized.store(true, ordering: .releasing)
    }

    private func note(_ request: Request) {
        state.withLock {
            $0.uniques.append(request.unique)
            $0.uids.insert(request.uid)
        }
    }

    func attributes(_ inode: FUSEInode) -> FileAttributes? {
        switch inode {
        case Node.root, Node.sub:
            return FileAttributes(inode: inode, kind: .directory, permissions: 0o755, linkCount: 2)
        case Node.hello:
            return FileAttributes(inode: inode, kind: .regular, permissions: 0o644, size: UInt64(Self.helloText.count))
        case Node.data:
            return FileAttributes(inode: inode, kind: .regular, permissions: 0o644, size: UInt64(Self.dataText.count))
        case Node.region:
            return FileAttributes(inode: inode, kind: .regular, permissions: 0o600, size: 32)
        case Node.mapped:
            return FileAttributes(inode: inode, kind: .regular, permissions: 0o600, size: UInt64(Self.mappedSize))
        case Node.held, Node.dropped:
            return FileAttributes(inode: inode, kind: .regular, permissions: 0o600, size: 4096)
        case Node.link:
            return FileAttributes(inode: inode, kind: .symlink, permissions: 0o777, size: 5)
        default:
            return nil
        }
    }

    func listing(_ dir: FUSEInode) -> [DirectoryEntry]? {
        switch dir {
        case Node.root:
            return [
                DirectoryEntry(inode: Node.root, kind: .directory, name: "."),
                DirectoryEntry(inode: Node.root, kind: .directory, name: ".."),
                DirectoryEntry(inode: Node.hello, kind: .regular, name: "hello"),
                DirectoryEntry(inode: Node.sub, kind: .directory, name: "sub"),
                DirectoryEntry(inode: Node.region, kind: .regular, name: "region"),
                DirectoryEntry(inode: Node.mapped, kind: .regular, name: "mapped"),
                DirectoryEntry(inode: Node.held, kind: .regular, name: "held"),
                DirectoryEntry(inode: Node.link, kind: .symlink, name: "link"),
                DirectoryEntry(inode: Node.dropped, kind: .regular, name: "dropped"),
            ]
        case Node.sub:
            return [
                DirectoryEntry(inode: Node.sub, kind: .directory, name: "."),
                DirectoryEntry(inode: Node.root, kind: .directory, name: ".."),
                DirectoryEntry(inode: Node.data, kind: .regular, name: "data"),
            ]
        default:
            return nil
        }
    }

    func lookup(_ request: Request, parent: FUSEInode, name: String, reply: EntryReply) {
        note(request)
        guard let entry = listing(parent)?.first(where: { $0.name == name && $0.name != "." && $0.name != ".." }),
              let attrs = attributes(entry.inode) else {
            return reply.error(.noSuchFileOrDirectory)
        }
        reply.entry(attrs)
    }

    func getattr(_ request: Request, inode: FUSEInode, handle: UInt64?, reply: AttrReply) {
        note(request)
        guard let attrs = attributes(inode) else { return reply.error(.noSuchFileOrDirectory) }
        reply.attr(attrs)
    }

    func setattr(_ request: Request, inode: FUSEInode, changes: AttributeChanges, handle: UInt64?, reply: AttrReply) {
        // Sizes are fixed; accept (and ignore) truncation to the same size and time updates.
        guard let attrs = attributes(inode) else { return reply.error(.noSuchFileOrDirectory) }
        if let size = changes.size, size != attrs.size { return reply.error(.permissionDenied) }
        reply.attr(attrs)
    }

    func readlink(_ request: Request, inode: FUSEInode, reply: ReadlinkReply) {
        inode == Node.link ? reply.link("hello") : reply.error(.invalidArgument)
    }

    func readdir(_ request: Request, inode: FUSEInode, handle: UInt64, reply: DirectoryReply) {
        guard let entries = listing(inode) else { return reply.error(.notDirectory) }
        reply.directory(entries)
    }

    func open(_ request: Request, inode: FUSEInode, flags: OpenFlags, reply: OpenReply) {
        switch inode {
        case Node.region, Node.mapped, Node.held, Node.dropped:
            reply.open(handle: inode.rawValue * 100, directIO: true)
        case Node.hello, Node.data:
            reply.open(handle: inode.rawValue * 100, keepCache: true)
        default:
            reply.error(.isDirectory)
        }
    }

    func read(_ request: Request, _ read: ReadRequest, reply: DataReply) {
        note(request)
        state.withLock {
            $0.io.append(IO(inode: read.inode, isWrite: false, offset: read.offset, size: read.size, isWritepage: false))
        }
        func slice(_ bytes: [UInt8]) -> ArraySlice<UInt8> {
            let start = min(Int(read.offset), bytes.count)
            return bytes[start..<min(start + read.size, bytes.count)]
        }
        switch read.inode {
        case Node.hello: reply.data(slice(Self.helloText))
        case Node.data: reply.data(slice(Self.dataText))
        case Node.region: reply.data(state.withLock { slice($0.region) })
        case Node.mapped: reply.data(state.withLock { Array(slice($0.mapped)) })
        default: reply.error(.invalidArgument)
        }
    }

    func write(_ request: Request, _ write: WriteRequest, data: UnsafeRawBufferPointer, reply: WriteReply) {
        note(request)
        let bytes = Array(data)
        state.withLock {
            $0.io.append(IO(inode: write.inode, isWrite: true, offset: write.offset, size: write.size,
                            isWritepage: write.isWritepage))
        }
        switch write.inode {
        case Node.region:
            state.withLock { st in
                for (i, b) in bytes.enumerated() where Int(write.offset) + i < st.region.count {
                    st.region[Int(write.offset) + i] = b
                }
            }
            reply.write(bytes.count)
        case Node.mapped:
            state.withLock { st in
                for (i, b) in bytes.enumerated() where Int(write.offset) + i < st.mapped.count {
                    st.mapped[Int(write.offset) + i] = b
                }
            }
            reply.write(bytes.count)
        case Node.held:
            state.withLock { $0.heldWrites.append(reply) }  // answered later by the test
        case Node.dropped:
            break  // dropping the reply must answer EIO
        default:
            reply.error(.invalidArgument)
        }
    }

    func flush(_ request: Request, inode: FUSEInode, handle: UInt64, lockOwner: UInt64, reply: EmptyReply) {
        reply.ok()
    }

    func retrieveReply(cookie: UInt64, inode: FUSEInode, offset: Int64, data: UnsafeRawBufferPointer) {
        let bytes = Array(data)
        state.withLock { $0.retrieved[cookie] = (offset, bytes) }
    }

    func io(of inode: FUSEInode) -> [IO] { state.withLock { $0.io.filter { $0.inode == inode } } }
    func clearIO() { state.withLock { $0.io.removeAll() } }
}

import FUSEKit
import Testing

@Test func inodeConvertsExplicitly() {
    let ino = FUSEInode(stIno: 42)
    #expect(ino.rawValue == 42)
    #expect(ino.stIno == 42)
    #expect(FUSEInode.root.rawValue == 1)
    #expect(FUSEInode(7) < FUSEInode(8))
}

import FUSEKit
import Testing

@Test func inodeConvertsExplicitly() {
    let ino = Inode(stIno: 42)
    #expect(ino.rawValue == 42)
    #expect(ino.stIno == 42)
    #expect(Inode.root.rawValue == 1)
}

import FUSEKit
@testable import MdevFS
import Testing
import TestSupport

/// Inode numbers: blocks sized by what they hold, device blocks above every type block, no
/// number ever shared.
@Suite struct InodeTableTests {
    @Test(arguments: [1, 3, 70_000])
    func noTwoNodesShareANumber(types: Int) {
        var table = InodeTable(typeCount: types)
        let uuids = (0..<50).map { "device-\($0)" }
        for uuid in uuids { table.addDevice(uuid) }
        var nodes: [MdevNode] = [.root, .typesDirectory, .devicesDirectory, .iommuGroupsDirectory]
        // The last type's block is where an overlap with the first device block would show.
        for t in Set([0, types - 1]) {
            nodes.append(.typeDirectory(type: t))
            nodes += MdevNode.TypeAttribute.allCases.map { .typeAttribute(type: t, $0) }
        }
        for uuid in uuids {
            nodes += [.deviceDirectory(uuid: uuid), .iommuGroupDirectory(uuid: uuid)]
            nodes += MdevNode.DeviceFile.allCases.map { .deviceFile(uuid: uuid, $0) }
        }
        let numbers = nodes.compactMap { table.inode($0) }
        #expect(numbers.count == nodes.count, "every node has a number")
        #expect(Set(numbers).count == numbers.count, "no number is shared")
        for (node, number) in zip(nodes, numbers) { #expect(table.node(number) == node) }
    }

    @Test func blocksHoldWhatTheyNumber() {
        #expect(InodeTable.deviceStride >= UInt64(MdevNode.DeviceFile.allCases.count + 2))
        #expect(InodeTable.typeStride >= UInt64(MdevNode.TypeAttribute.allCases.count + 1))
        #expect(InodeTable.blockSize(holding: 17) == 32)
        #expect(InodeTable(typeCount: 3).deviceBase == 1 << 20, "the numbers of today's mounts are unchanged")
    }

    @Test func aRemovedDevicesNumbersAreNeverReused() {
        var table = InodeTable(typeCount: 1)
        table.addDevice("a")
        let old = table.inode(.deviceDirectory(uuid: "a"))
        table.removeDevice("a")
        table.addDevice("a")
        #expect(old != nil && table.inode(.deviceDirectory(uuid: "a")) != old)
        #expect(old.flatMap { table.node($0) } == nil)
    }
}

import Foundation
import MigrationProtocol
import SystemPackage
import Testing

/// One row of Tests/Fixtures/mdev-uuids.json: what is written to `create`, and the device name
/// it makes (nil: `EINVAL`). The shim's C parser is tested on the same file (ShimBuildTests).
struct UUIDCase: Decodable, Sendable, CustomTestStringConvertible {
    var input: String
    var uuid: String?
    var why: String
    var testDescription: String { why }

    static let all: [UUIDCase] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/mdev-uuids.json")
        guard let data = try? Data(contentsOf: url), let rows = try? JSONDecoder().decode([UUIDCase].self, from: data) else { return [] }
        return rows
    }()
}

@Suite struct MdevUUIDTests {
    @Test func theTableIsThere() {
        #expect(UUIDCase.all.count >= 30)
        #expect(UUIDCase.all.contains { $0.uuid != nil } && UUIDCase.all.contains { $0.uuid == nil })
    }

    @Test(arguments: UUIDCase.all)
    func parsesWithTheKernelsGrammar(_ row: UUIDCase) {
        switch MdevUUID.parse(row.input) {
        case .success(let name): #expect(name == row.uuid, "\(row.why)")
        case .failure(let e): #expect(row.uuid == nil && e == .invalidArgument, "\(row.why): \(e)")
        }
    }

    @Test func deviceNamesAreTheLowercaseForm() {
        #expect(MdevUUID.isDeviceName("aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"))
        #expect(!MdevUUID.isDeviceName("AAAAAAAA-bbbb-4ccc-8ddd-eeeeeeeeeeee"))
        #expect(!MdevUUID.isDeviceName("aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee\n"))
        #expect(!MdevUUID.isDeviceName("source"))
    }
}

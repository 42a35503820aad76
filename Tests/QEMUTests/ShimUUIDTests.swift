import Foundation
import Glibc
import Testing

/// The shim's C UUID parser (`shim_parse_uuid`, uuid.c) on the table the Swift parser is tested
/// on (Tests/Fixtures/mdev-uuids.json, MdevUUIDTests): the same answer for every input.
@Suite struct ShimUUIDTests {
    struct Row: Decodable {
        var input: String
        var uuid: String?
        var why: String
    }

    typealias Parse = @convention(c) (UnsafePointer<CChar>?, Int, UnsafeMutablePointer<CChar>?) -> Int32

    static func text(_ c: [CChar]) -> String {
        String(decoding: c.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    @Test func theShimParsesTheTableAsMdevUUIDDoes() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/mdev-uuids.json")
        let rows = try JSONDecoder().decode([Row].self, from: Data(contentsOf: url))
        #expect(rows.count >= 30)
        // RTLD_LOCAL: loaded for its parser only, it interposes nothing in this process.
        let handle = try #require(dlopen(try shimLibrary(), RTLD_NOW | RTLD_LOCAL), "\(String(cString: dlerror()))")
        defer { dlclose(handle) }
        let symbol = try #require(dlsym(handle, "shim_parse_uuid"))
        let parse = unsafeBitCast(symbol, to: Parse.self)
        for row in rows {
            let bytes = Array(row.input.utf8).map { CChar(bitPattern: $0) }
            var out = [CChar](repeating: 0x7f, count: 37)
            let rc = bytes.withUnsafeBufferPointer { input in parse(input.baseAddress, input.count, &out) }
            if let expected = row.uuid {
                #expect(rc == 0 && Self.text(out) == expected, "\(row.why)")
            } else {
                #expect(rc == -1, "\(row.why): accepted \(Self.text(out))")
            }
        }
    }
}

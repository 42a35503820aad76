import Crypto
@testable import DeviceSimulator
import EngineFixtures
import MigrationProtocol
import Testing

/// The digest is a hash list: SHA-256 over each page's SHA-256, then the config. Pages known to
/// be zero take a hash computed once; these tests hold it to the definition, computed here from
/// the bytes every page reads back.
@Suite struct DigestTests {
    /// The definition, from the bytes: no shortcut.
    static func hashList(_ device: SimulatedDevice) -> String {
        var list = SHA256()
        var page = [UInt8](repeating: 0, count: device.pageSize)
        for p in 0..<device.pageCount {
            page.withUnsafeMutableBytes { device.readPage(p, into: $0.baseAddress!) }
            list.update(data: Array(SHA256.hash(data: page)))
        }
        list.update(data: device.config)
        return SimulatedDevice.hex(list.finalize())
    }

    @Test(arguments: [MemoryFill.zero, .random])
    func theDigestIsTheHashListOfThePages(_ fill: MemoryFill) {
        var c = smallConfiguration(dirtyRate: 1 << 30)
        c.fill = fill
        let s = MigrationRegion(configuration: c, identity: "source")
        #expect(s.device.digest() == Self.hashList(s.device), "power-on")
        // The running device rewrites pages (stored, not zero): a mix of both kinds of page.
        let d = ReferencePageTests.migrate(s, precopyChunks: 8)
        #expect(s.device.materializedPages > 0)
        #expect(s.device.digest() == Self.hashList(s.device), "after the source ran")
        // The destination holds the source's power-on pages as references.
        #expect(d.device.referencedPages > 0)
        #expect(d.device.digest() == Self.hashList(d.device))
        #expect(d.device.digest() == s.device.digest())
    }

    /// A zero page that is stored (written with zeros) digests as the zero page it is.
    @Test func aStoredZeroPageDigestsAsAZeroPage() {
        var c = smallConfiguration()
        c.fill = .zero
        let device = SimulatedDevice(configuration: c, identity: "a")
        let before = device.digest()
        let zeros = [UInt8](repeating: 0, count: device.pageSize)
        #expect(zeros.withUnsafeBytes { device.writePage(3, from: $0.baseAddress!) })
        #expect(device.materializedPages == 1)
        #expect(device.digest() == before)
        var one = zeros
        one[100] = 1
        #expect(one.withUnsafeBytes { device.writePage(3, from: $0.baseAddress!) })
        #expect(device.digest() != before)
        #expect(device.digest() == Self.hashList(device))
    }
}

import DeviceSimulator
@testable import Scenarios
import Testing

@Suite struct UnitsTests {
    @Test(arguments: [
        ("0", 0), ("1B", 1), ("4KiB", 4096), ("4 KiB", 4096), ("256MiB", 256 << 20), ("64GiB", 64 << 30),
        ("2TiB", 2 << 40), ("100000B", 100_000), ("16384TiB", 16384 << 40),
    ] as [(String, UInt64)])
    func sizesParse(text: String, bytes: UInt64) throws {
        #expect(try Units.parseSize(text).get() == bytes)
    }

    @Test(arguments: ["4096", "4KB", "4kib", "4 K", "KiB", "-4KiB", "1.5MiB", "0x10KiB", "", "4KiB/s", "16777216TiB", "4 KiB B"])
    func sizesReject(text: String) {
        #expect(throws: Units.ParseError.self) { try Units.parseSize(text).get() }
    }

    @Test(arguments: [("0", 0), ("32MiB/s", 32 << 20), ("1 GiB/s", 1 << 30), ("512B/s", 512)] as [(String, UInt64)])
    func ratesParse(text: String, bytesPerSecond: UInt64) throws {
        #expect(try Units.parseRate(text).get() == bytesPerSecond)
    }

    @Test(arguments: ["32MiB", "32MB/s", "32MiB/ms", "/s", "0/s", "5ms"])
    func ratesReject(text: String) {
        #expect(throws: Units.ParseError.self) { try Units.parseRate(text).get() }
    }

    @Test(arguments: [("0", 0), ("5ms", 5_000_000), ("1s", 1_000_000_000), ("250us", 250_000), ("7ns", 7)] as [(String, UInt64)])
    func durationsParse(text: String, nanoseconds: UInt64) throws {
        #expect(try Units.parseDuration(text).get() == nanoseconds)
    }

    @Test(arguments: ["5", "5 sec", "1m", "5MS", "1.5s", "µs"])
    func durationsReject(text: String) {
        #expect(throws: Units.ParseError.self) { try Units.parseDuration(text).get() }
    }

    @Test func formatting() throws {
        #expect(Units.formatSize(1 << 20) == "1MiB")
        #expect(Units.formatSize(4176) == "4176B")
        #expect(Units.formatSize(0) == "0B")
        #expect(Units.formatRate(8 << 20) == "8MiB/s")
        #expect(Units.formatDuration(250_000) == "250us")
        for bytes: UInt64 in [1, 512, 4096, 4176, 1 << 30, 3 << 40] {
            #expect(try Units.parseSize(Units.formatSize(bytes)).get() == bytes)
        }
    }

    @Test func overflowIsAnError() {
        #expect(throws: Units.ParseError(expected: "a size with a unit (B, KiB, MiB, GiB, TiB) below 2^64 bytes")) {
            try Units.parseSize("16777216TiB").get()
        }
    }

    @Test func namesMap() {
        #expect(ErrnoName.errno(named: "ETIMEDOUT") == .timedOut)
        #expect(ErrnoName.errno(named: "ENODEV") == .operationNotSupportedByDevice)
        #expect(ErrnoName.name(of: .resourceBusy) == "EBUSY")
        #expect(StateName.bits(of: "stop-and-copy") == 2)
        #expect(StateName.bits(of: "7") == 7)
        #expect(StateName.bits(of: "8") == nil)
        #expect(StateName.name(of: 5) == "101b")
    }

    @Test func streamBudgetMatchesHandCount() throws {
        // 64KiB of 4KiB pages, 16KiB chunks: (16384 - 48) / 4128 = 3 pages per chunk; the first
        // chunk also holds the 80-byte header (32 + five words + type "t1" padded to 8), which
        // still leaves room for 3 pages.
        var c = DeviceConfiguration(typeName: "t1", memorySize: 64 << 10, dataSectionSize: 16 << 10, chunkSize: 16 << 10)
        #expect(StreamBudget.preCopy(c)?.chunks == 6)
        #expect(StreamBudget.preCopy(c)?.bytes == 6 * 48 + 80 + 16 * 4128)
        // Stop-and-copy adds a 4KiB config and END, which fit the last chunk (one page in it).
        let stop = try #require(StreamBudget.stopAndCopy(c))
        #expect(stop.chunks == 6)
        #expect(stop.bytes == 6 * 48 + 80 + 16 * 4128 + 32 + 4096 + 48)
        // A 40KiB config spills: 16384 - 4176 - 32 = 12176 bytes in the leftover, then 16304 per chunk.
        c.configSize = 40 << 10
        #expect(StreamBudget.stopAndCopy(c)?.chunks == 8)
        c.dirtyRate = 1
        #expect(StreamBudget.preCopy(c) == nil)
    }
}

// The measuring client of `mdevsim-bench fuse`: Benchmarks/fuse/client.c in a child process,
// driven one command a line. Every timed loop runs in C, so the figures are the syscalls and the
// daemons', the same code against both daemons.
import Foundation
import Glibc

/// A running `region_client` (Benchmarks/fuse/client.c): open files by slot, then timed loops.
final class CRegionClient {
    private let process = Process()
    private let input: FileHandle
    private let output: Int32
    private var pending = [UInt8]()
    private var ended = false

    init(executable: String) throws {
        let stdin = Pipe(), stdout = Pipe()
        process.executableURL = URL(fileURLWithPath: executable)
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        input = stdin.fileHandleForWriting
        output = stdout.fileHandleForReading.fileDescriptor
    }

    /// Sends one command and returns the integers of its "ok" answer.
    @discardableResult
    func command(_ line: String) throws -> [UInt64] {
        guard !ended, process.isRunning else { throw BenchError("the C client has exited (command: \(line))") }
        try input.write(contentsOf: Array((line + "\n").utf8))
        let answer = try readLine()
        let words = answer.split(separator: " ")
        guard words.first == "ok" else { throw BenchError("C client: \(line): \(answer)") }
        return words.dropFirst().compactMap { UInt64($0) }
    }

    private func readLine() throws -> String {
        var chunk = [UInt8](repeating: 0, count: 512)
        while true {
            if let nl = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[..<nl], as: UTF8.self)
                pending.removeSubrange(...nl)
                return line
            }
            let n = chunk.withUnsafeMutableBytes { Glibc.read(output, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw BenchError("the C client closed its output") }
            pending.append(contentsOf: chunk[0..<n])
        }
    }

    func open(_ slot: Int, _ path: String, map: Bool) throws { try command("open \(slot) \(path) \(map ? 1 : 0)") }
    func close(_ slot: Int) throws { try command("close \(slot)") }
    func setDeviceState(_ slot: Int, _ value: UInt32) throws { try command("state \(slot) \(value)") }
    func touch(_ slot: Int) throws { try command("touch \(slot)") }
    func read8(_ slot: Int, _ offset: off_t) throws -> UInt64 { try command("get \(slot) \(offset)").first ?? 0 }

    /// Nanoseconds per 8-byte pread at offset 8.
    func headerLatency(_ slot: Int, count: Int) throws -> Double {
        Double(try command("header \(slot) \(count)").first ?? 0) / Double(count)
    }

    /// GB/s of `count` preads of `size` bytes at 4096.
    func preadThroughput(_ slot: Int, size: Int, count: Int) throws -> Double {
        let ns = try command("pread \(slot) \(size) \(count)").first ?? 0
        return ns > 0 ? Double(size) * Double(count) / Double(ns) : 0
    }

    /// The chunk loop through both mappings (`maxChunks` 0: until pending_bytes reads 0).
    func mappedLoop(source: Int, destination: Int, maxChunks: Int, daemon: Int32? = nil) throws -> TransferTiming {
        let before = daemon.flatMap { minorFaults(pid: $0) }
        let v = try command("mapped \(source) \(destination) \(maxChunks)")
        guard v.count == 9 else { throw BenchError("C client: mapped answered \(v)") }
        var t = TransferTiming()
        t.chunks = Int(v[0]); t.bytes = v[1]; t.totalNs = v[2]
        t.saveStoreNs = v[3]; t.resumePrefillNs = v[4]; t.copyNs = v[5]; t.resumeRetrieveNs = v[6]; t.otherHeaderNs = v[7]
        t.clientFaults = Int(v[8])
        if let daemon, let before, let after = minorFaults(pid: daemon) { t.daemonFaults = after - before }
        return t
    }

    /// The chunk loop with pread (save) and pwrite (resume) of the data.
    func readWriteLoop(source: Int, destination: Int, maxChunks: Int) throws -> ReadWriteTiming {
        let v = try command("rw \(source) \(destination) \(maxChunks)")
        guard v.count == 5 else { throw BenchError("C client: rw answered \(v)") }
        return ReadWriteTiming(chunks: Int(v[0]), bytes: v[1], totalNs: v[2], saveNs: v[3], resumeNs: v[4])
    }

    /// GB/s of memcpy of `count` pieces of `size` bytes between pre-faulted buffers.
    func memcpyGBps(size: Int, count: Int) throws -> Double {
        let ns = try command("memcpy \(size) \(count)").first ?? 0
        return ns > 0 ? Double(size) * Double(count) / Double(ns) : 0
    }

    /// Ends the client (closing its files); idempotent.
    func stop() {
        guard !ended else { return }
        ended = true
        try? input.write(contentsOf: Array("quit\n".utf8))
        try? input.close()
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline { usleep(5_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
    }

    deinit { stop() }
}

/// One pread/pwrite save+resume loop: source side (data_offset, data_size, pread of the chunk,
/// pending_bytes) and destination side (data_offset, pwrite of the chunk, data_size write).
struct ReadWriteTiming: Codable, Sendable {
    var chunks = 0
    var bytes: UInt64 = 0
    var totalNs: UInt64 = 0
    var saveNs: UInt64 = 0
    var resumeNs: UInt64 = 0

    var saveGBps: Double { saveNs > 0 ? Double(bytes) / Double(saveNs) : 0 }
    var resumeGBps: Double { resumeNs > 0 ? Double(bytes) / Double(resumeNs) : 0 }
}

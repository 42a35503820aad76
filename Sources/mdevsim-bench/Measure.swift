// Timing, process figures (RSS, page faults), memcpy baselines and summary statistics.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Wall-clock seconds `body` takes.
func timed(_ body: () throws -> Void) rethrows -> Double {
    let start = ContinuousClock.now
    try body()
    return seconds(ContinuousClock.now - start)
}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}

/// GB/s (10^9 bytes per second).
func gbps(_ bytes: UInt64, _ seconds: Double) -> Double {
    seconds > 0 ? Double(bytes) / seconds / 1e9 : 0
}

#if os(Linux)
private let rusageSelf = RUSAGE_SELF.rawValue
#else
private let rusageSelf = RUSAGE_SELF
#endif

/// Figures the kernel keeps about this process.
enum ProcessFigures {
    /// `getrusage(RUSAGE_SELF).ru_maxrss` in bytes.
    static var maxRSS: UInt64 {
        var usage = rusage()
        guard getrusage(rusageSelf, &usage) == 0 else { return 0 }
        #if os(Linux)
        return UInt64(max(0, usage.ru_maxrss)) * 1024 // kilobytes on Linux
        #else
        return UInt64(max(0, usage.ru_maxrss)) // bytes on Darwin
        #endif
    }

    /// Minor page faults so far (a fault that maps a fresh zero page counts here).
    static var minorFaults: UInt64 {
        var usage = rusage()
        guard getrusage(rusageSelf, &usage) == 0 else { return 0 }
        return UInt64(max(0, usage.ru_minflt))
    }

    /// A `kB` line of /proc/self/status (`VmRSS`, `VmHWM`) in bytes; nil where there is no /proc.
    static func status(_ key: String) -> UInt64? { kibLine(key, of: "/proc/self/status") }

    /// A `KEY: N kB` line of a /proc file (`/proc/PID/status`, `/proc/meminfo`), in bytes.
    static func kibLine(_ key: String, of path: String) -> UInt64? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
            let number = line.dropFirst(key.count + 1).trimmingCharacters(in: .whitespaces).split(separator: " ").first
            return number.flatMap { UInt64($0) }.map { $0 * 1024 }
        }
        return nil
    }
}

/// Anonymous private memory straight from the kernel: untouched until written, returned on `release`.
struct FreshMemory {
    let base: UnsafeMutableRawPointer
    let count: Int

    init(count: Int) throws {
        let p = mmap(nil, count, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let p, p != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw BenchError("mmap of \(ByteSize.format(UInt64(count))) failed (errno \(errno))")
        }
        base = p
        self.count = count
    }

    /// Writes every page so later accesses take no faults.
    func prefault(byte: UInt8) {
        memset(base, Int32(byte), count)
    }

    func release() { munmap(base, count) }

    /// Asks for transparent huge pages on this range; false if the kernel refused.
    func adviseHugePages() -> Bool {
        #if os(Linux)
        return madvise(base, count, MADV_HUGEPAGE) == 0
        #else
        return false
        #endif
    }
}

/// Plain memcpy of the migrated bytes, the yardstick of the throughput part.
struct MemcpyBaselines: Codable, Sendable {
    /// Pre-faulted source and destination, one memcpy call.
    var prefaultedOneCallSeconds: Double
    /// Pre-faulted source and destination, 1 MiB pieces.
    var prefaultedPiecesSeconds: Double
    /// Pre-faulted source, fresh destination (first-touch page faults timed in), 1 MiB pieces.
    var firstTouchPiecesSeconds: Double

    static func measure(bytes: UInt64, piece: Int, out: Printer) throws -> MemcpyBaselines {
        let n = Int(bytes)
        let source = try FreshMemory(count: n)
        defer { source.release() }
        out.progress("memcpy baselines: pre-faulting 2 x \(ByteSize.format(bytes))")
        source.prefault(byte: 0x5A)
        var destination = try FreshMemory(count: n)
        destination.prefault(byte: 0)
        let oneCall = timed { memcpy(destination.base, source.base, n) }
        let pieces = timed { copyInPieces(to: destination.base, from: source.base, count: n, piece: piece) }
        destination.release()
        // A fresh destination: every page faults on its first write, as device memory does on resume.
        destination = try FreshMemory(count: n)
        let firstTouch = timed { copyInPieces(to: destination.base, from: source.base, count: n, piece: piece) }
        destination.release()
        return MemcpyBaselines(prefaultedOneCallSeconds: oneCall, prefaultedPiecesSeconds: pieces, firstTouchPiecesSeconds: firstTouch)
    }

    static func copyInPieces(to destination: UnsafeMutableRawPointer, from source: UnsafeRawPointer, count: Int, piece: Int) {
        var done = 0
        while done < count {
            let m = min(piece, count - done)
            memcpy(destination + done, source + done, m)
            done += m
        }
    }
}

/// Median and spread of a few measurements.
struct Spread: Codable, Sendable {
    var median: Double
    var min: Double
    var max: Double
    /// (max - min) / median, in percent.
    var spreadPercent: Double
    var values: [Double]

    init(_ values: [Double]) {
        let sorted = values.sorted()
        let m: Double
        if sorted.isEmpty {
            m = 0
        } else if sorted.count % 2 == 1 {
            m = sorted[sorted.count / 2]
        } else {
            m = (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        }
        median = m
        min = sorted.first ?? 0
        max = sorted.last ?? 0
        spreadPercent = m > 0 ? (max - min) / m * 100 : 0
        self.values = values
    }

    func text(_ format: String = "%.2f") -> String {
        let v = values.map { String(format: format, $0) }.joined(separator: ", ")
        return String(format: "median \(format) (min \(format), max \(format), spread %.0f%%; runs: ", median, min, max, spreadPercent)
            + v + ")"
    }
}

/// Where human-readable lines and progress go, and the JSON at the end.
struct Printer: Sendable {
    let json: Bool

    /// A result line: stdout, or stderr when stdout carries JSON.
    func line(_ text: String = "") {
        emit(json ? 2 : 1, text + "\n")
    }

    /// A progress line: always stderr.
    func progress(_ text: String) {
        emit(2, "  .. " + text + "\n")
    }

    private func emit(_ fd: Int32, _ text: String) {
        var text = text
        text.withUTF8 { bytes in
            var done = 0
            while done < bytes.count {
                guard let base = bytes.baseAddress else { return }
                let n = write(fd, base + done, bytes.count - done)
                if n <= 0 { return }
                done += n
            }
        }
    }

    func header(_ m: Machine) {
        line("mdevsim-bench: \(m.cores) cores, \(ByteSize.format(m.memoryBytes)) RAM, load average \(m.loadAverage), transparent hugepages: \(m.transparentHugepages)")
    }

    func emitJSON(_ figures: Figures) throws {
        guard json else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        let data = try encoder.encode(figures)
        emit(1, String(decoding: data, as: UTF8.self) + "\n")
    }
}

/// The machine the figures come from.
struct Machine: Codable, Sendable {
    var cores: Int
    var memoryBytes: UInt64
    var loadAverage: String
    var transparentHugepages: String

    static func current() -> Machine {
        let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))
            .map { $0.split(separator: " ").prefix(3).joined(separator: " ") } ?? "unknown"
        let thp = (try? String(contentsOfFile: "/sys/kernel/mm/transparent_hugepage/enabled", encoding: .utf8))
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? "unknown"
        return Machine(cores: ProcessInfo.processInfo.activeProcessorCount,
                       memoryBytes: ProcessInfo.processInfo.physicalMemory,
                       loadAverage: load, transparentHugepages: thp)
    }
}

/// `text` left-aligned in `width` columns.
func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}

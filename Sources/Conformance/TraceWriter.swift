import Foundation
import Glibc
import Synchronization
import SystemPackage

/// A trace file being written: the header line at once, then records as JSON lines, buffered.
///
/// Thread-safe (FUSE serves several devices from several threads): records are stamped and
/// appended under one lock, so times never go backwards down the file and the records of one
/// access stay together. The buffer goes to the file when it holds 64 KiB, when a record comes
/// more than a second after the last write, on `flush()`/`close()`, and from `flushAll()` (what
/// the commands' signal handlers call before exiting). A process killed with SIGKILL loses what
/// was still buffered; a clean unmount (also one SIGTERM or SIGINT triggers) loses nothing.
public final class TraceWriter: TraceSink {
    public let path: String
    private struct State {
        var fd: Int32
        var buffer: [UInt8] = []
        var lastWrite: UInt64
        var records: UInt64 = 0
        var error: Errno?
    }

    private let state: Mutex<State>
    private let start: UInt64
    private let token: Int
    /// Writes every `time_ns` as 0 (`--reproducible`): the only field of a trace that wall time decides.
    private let reproducible: Bool

    private static let flushSize = 64 << 10
    private static let flushInterval: UInt64 = 1_000_000_000
    private static let open = Mutex<[Int: TraceWriter]>([:])
    private static let nextToken = Atomic<Int>(0)

    /// Creates (or truncates) `path` and writes `header` as its first line.
    /// - Parameter reproducible: write every `time_ns` as 0, so the same run gives the same bytes.
    public init(path: String, header: TraceHeader, reproducible: Bool = false) throws(Errno) {
        self.path = path
        self.reproducible = reproducible
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        start = Self.monotonicNow()
        token = Self.nextToken.add(1, ordering: .relaxed).newValue
        state = Mutex(State(fd: fd, lastWrite: start))
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        // A header that does not encode is a bug of ours, but must not lose the trace: write a minimal one.
        let line = (try? encoder.encode(header)) ?? Data("{\"format\":\"\(TraceHeader.formatName)\",\"format_version\":\(TraceHeader.currentVersion)}".utf8)
        state.withLock { s in
            s.buffer.append(contentsOf: line)
            s.buffer.append(UInt8(ascii: "\n"))
            Self.drain(&s)
        }
        if let e = state.withLock({ $0.error }) {
            close()
            throw e
        }
        Self.open.withLock { $0[token] = self }
    }

    deinit {
        state.withLock { s in
            if s.fd >= 0 {
                Self.drain(&s)
                Glibc.close(s.fd)
                s.fd = -1
            }
        }
    }

    public func append(_ records: [TraceRecord]) {
        // Encoded outside the lock but for the time, which must be taken under it.
        var tails: [[UInt8]] = []
        tails.reserveCapacity(records.count)
        for record in records {
            var tail: [UInt8] = []
            tail.reserveCapacity(160 + (record.data?.utf8.count ?? 0))
            record.appendJSON(afterTime: &tail)
            tail.append(UInt8(ascii: "\n"))
            tails.append(tail)
        }
        state.withLock { s in
            guard s.fd >= 0 else { return }
            let now = Self.monotonicNow()
            var stamp: [UInt8] = Array("{\"time_ns\":".utf8)
            TraceRecord.appendNumber(reproducible ? 0 : now &- start, to: &stamp)
            for tail in tails {
                s.buffer.append(contentsOf: stamp)
                s.buffer.append(contentsOf: tail)
            }
            s.records += UInt64(tails.count)
            if s.buffer.count >= Self.flushSize || now &- s.lastWrite >= Self.flushInterval {
                s.lastWrite = now
                Self.drain(&s)
            }
        }
    }

    /// Records written (or buffered) so far, header excluded.
    public var recordCount: UInt64 { state.withLock { $0.records } }

    /// Writes what is buffered.
    public func flush() {
        state.withLock { s in
            if s.fd >= 0 { Self.drain(&s) }
        }
    }

    /// Writes what is buffered and closes the file; later records are dropped. Returns the
    /// first write error, if any (the trace is then incomplete).
    @discardableResult
    public func close() -> Errno? {
        let error = state.withLock { s -> Errno? in
            if s.fd >= 0 {
                Self.drain(&s)
                if fsync(s.fd) != 0, s.error == nil, errno != EINVAL { s.error = Errno(rawValue: errno) }
                Glibc.close(s.fd)
                s.fd = -1
            }
            return s.error
        }
        _ = Self.open.withLock { $0.removeValue(forKey: token) }
        return error
    }

    /// Flushes every trace still open: for signal handlers that exit the process.
    public static func flushAll() {
        let all = open.withLock { Array($0.values) }
        for writer in all { writer.flush() }
    }

    private static func drain(_ s: inout State) {
        var done = 0
        let total = s.buffer.count
        while done < total {
            let n = s.buffer.withUnsafeBytes { Glibc.write(s.fd, $0.baseAddress.map { $0 + done }, total - done) }
            if n < 0 {
                if errno == EINTR { continue }
                if s.error == nil { s.error = Errno(rawValue: errno) }
                break
            }
            done += n
        }
        s.buffer.removeAll(keepingCapacity: true)
    }

    static func monotonicNow() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

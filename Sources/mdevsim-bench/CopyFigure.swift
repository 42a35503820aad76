import DeviceSimulator
import Foundation

/// The copies mdevsim's devices counted (`CopyTally`, read from their `state` files) over one
/// or more passes, with the bytes the passes migrated (the sources' staged bytes): copies per
/// migrated byte, which is copies per chunk.
struct CopyFigure: Codable, Sendable {
    var tally = CopyTally()
    var migratedBytes: UInt64 = 0
    /// The source's staging ahead over the same passes (`staged_ahead` of its `state`).
    var stagedAhead = StageAheadFigures()

    init() {}

    /// From the `state` JSON of a source and its destination after their migration.
    init(source: String, destination: String) {
        let (s, d) = (Self.state(source), Self.state(destination))
        tally = (s?.copies ?? CopyTally()) + (d?.copies ?? CopyTally())
        migratedBytes = s?.copies.staged ?? 0
        stagedAhead = s?.stagedAhead ?? StageAheadFigures()
    }

    private struct State: Decodable {
        var copies: CopyTally
        var stagedAhead: StageAheadFigures
    }

    private static func state(_ json: String) -> State? {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try? decoder.decode(State.self, from: Data(json.utf8))
    }

    static func + (a: CopyFigure, b: CopyFigure) -> CopyFigure {
        var s = a
        s.tally = a.tally + b.tally
        s.migratedBytes += b.migratedBytes
        s.stagedAhead = a.stagedAhead + b.stagedAhead
        return s
    }

    static func + (a: CopyFigure?, b: CopyFigure) -> CopyFigure { (a ?? CopyFigure()) + b }

    /// "4.00 (staged 1.00, reply from section 1.00, ...)": each site's bytes per migrated byte,
    /// the sites that copied nothing left out.
    var description: String {
        guard migratedBytes > 0 else { return "no bytes migrated" }
        let t = tally
        let sites: [(String, UInt64)] = [
            ("staged", t.staged), ("section tail", t.sectionTail), ("kernel: pread reply", t.replyFromSection), ("kernel: into the page cache", t.pageCacheStore),
            ("kernel: pwrite into the daemon", t.writeIntoDaemon), ("kernel: page cache into the daemon", t.pageCacheIntoDaemon),
            ("pwrite into the section", t.pwriteIntoSection), ("mapped stores into the section", t.mappingIntoSection),
            ("section into a caller", t.sectionIntoCaller), ("into device memory", t.intoMemory),
        ]
        let per = { (v: UInt64) in Double(v) / Double(migratedBytes) }
        let parts = sites.filter { $0.1 > 0 }.map { "\($0.0) " + String(format: "%.2f", per($0.1)) }
        return String(format: "%.2f", per(t.total)) + " (" + parts.joined(separator: ", ") + ")"
    }
}

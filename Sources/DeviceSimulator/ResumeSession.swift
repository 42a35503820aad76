import MigrationProtocol
import SystemPackage

/// One resume (destination) session: from entering `_RESUMING` until leaving it.
///
/// Applied data is a byte stream: QEMU splits a source chunk that does not fit the destination's
/// data section and writes `data_size` once per piece, so records may arrive in pieces. The session
/// reassembles them, verifies every checksum and sequence number, applies pages and config as they
/// complete, and notes every way the client's transactions differ from the source's chunks.
struct ResumeSession {
    /// Why a stream cannot be applied.
    struct Failure: Error, Sendable, Hashable {
        var message: String
        /// What the `data_size` write answers: `EINVAL` for a stream that cannot be applied,
        /// `ENOMEM` when the device had no memory left for a page.
        var errno: Errno = .invalidArgument
    }

    let configuration: DeviceConfiguration
    /// Bytes of an incomplete record carried over to the next write.
    private var carry: [UInt8] = []
    private var nextSequence: UInt64 = 0
    private var nextChunk: UInt64 = 0
    private(set) var headerSeen = false
    private(set) var endSeen = false
    private var config: [UInt8]
    private var configReceived: UInt64 = 0
    private(set) var pagesApplied: UInt64 = 0
    /// The device's reference source for the stream's source (from `HEAD`), if any, and its
    /// power-on pages, which page records are compared with as their checksums are verified.
    private var reference: Int?
    private var powerOn: PowerOnPages?
    /// The source chunk being received: its number, total length and bytes received so far.
    private var chunk: (number: UInt64, length: UInt64, received: UInt64)?
    private(set) var chunksApplied = 0
    private(set) var writes = 0
    private(set) var bytesApplied: UInt64 = 0
    /// How the client's transactions differed from the source's chunks (split, merged).
    private(set) var deviations: [String] = []

    init(configuration: DeviceConfiguration) {
        self.configuration = configuration
        config = [UInt8](repeating: 0, count: Int(configuration.configSize))
    }

    /// True once any byte arrived.
    var started: Bool { writes > 0 }
    /// True once the end marker was applied.
    var complete: Bool { endSeen }

    /// Applies one client transaction (`data_size` bytes written at `data_offset`).
    mutating func apply(_ bytes: UnsafeRawBufferPointer, to device: SimulatedDevice) throws(Failure) {
        writes += 1
        bytesApplied += UInt64(bytes.count)
        let chunksBefore = chunksApplied
        var offset = 0
        if !carry.isEmpty {
            // Complete the record carried over from the last transaction, copying only its bytes.
            var needed = StreamFormat.recordHeaderSize
            while offset < bytes.count {
                let take = min(max(needed - carry.count, 0), bytes.count - offset)
                carry.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + take)]))
                offset += take
                // A copy: decoding mutates the session, which must not overlap an access to `carry`.
                let record = carry
                let outcome = record.withUnsafeBytes { all in
                    Result { () throws(Failure) -> Int? in try decodeOne(all, device: device) }
                }
                if let more = try outcome.get() {
                    needed = more
                } else {
                    carry.removeAll(keepingCapacity: true)
                    break
                }
            }
        }
        if carry.isEmpty, offset < bytes.count {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
            let used = try parse(rest, device: device)
            if used < rest.count { carry = Array(rest[used...]) }
        }
        if let c = chunk, c.received < c.length {
            deviations.append("source chunk \(c.number) (\(c.length) bytes) split: transaction \(writes) ended after \(c.received) bytes of it")
        }
        if chunksApplied - chunksBefore > 1 {
            deviations.append("transaction \(writes) carried \(chunksApplied - chunksBefore) source chunks at once (merged)")
        }
    }

    private var maxPayload: Int {
        max(Int(configuration.pageSize), Int(configuration.chunkSize), 256)
    }

    /// Parses whole records from `bytes`; returns the bytes consumed.
    private mutating func parse(_ bytes: UnsafeRawBufferPointer, device: SimulatedDevice) throws(Failure) -> Int {
        var offset = 0
        while offset < bytes.count {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
            guard let record = try decode(rest) else { return offset }
            try accept(record, device: device)
            offset += record.totalLength
        }
        return offset
    }

    /// Applies the one record `bytes` holds; returns the total length it needs if incomplete.
    private mutating func decodeOne(_ bytes: UnsafeRawBufferPointer, device: SimulatedDevice) throws(Failure) -> Int? {
        let record: DecodedRecord
        do {
            record = try RecordDecoder.decode(bytes, maxPayload: maxPayload, powerOn: powerOn)
        } catch .incomplete(let needed) {
            return needed
        } catch {
            throw failure(for: error)
        }
        try accept(record, device: device)
        return nil
    }

    /// The record at the start of `bytes`, `nil` if incomplete, or the failure it shows.
    private func decode(_ bytes: UnsafeRawBufferPointer) throws(Failure) -> DecodedRecord? {
        do {
            return try RecordDecoder.decode(bytes, maxPayload: maxPayload, powerOn: powerOn)
        } catch .incomplete {
            return nil
        } catch {
            throw failure(for: error)
        }
    }

    /// Where in the source's chunks the stream broke, for the checker's record.
    private var inChunk: String {
        guard let c = chunk else { return "" }
        return c.received < c.length ? ", inside source chunk \(c.number)" : ", after source chunk \(c.number)"
    }

    private func failure(for error: RecordDecodeError) -> Failure {
        switch error {
        case .incomplete(let needed):
            Failure(message: "stream ends inside record \(nextSequence) (\(needed) bytes needed)")
        case .unknownTag(let tag):
            Failure(message: "corrupted stream: unknown record tag 0x\(String(tag, radix: 16)) at stream record \(nextSequence)")
        case .badLength(let length):
            Failure(message: "corrupted stream: record \(nextSequence) announces \(length) payload bytes")
        case .badChecksum(_, let sequence):
            Failure(message: "corrupted stream: checksum mismatch in record \(nextSequence)\(inChunk) (it claims sequence \(sequence))")
        }
    }

    private mutating func accept(_ record: DecodedRecord, device: SimulatedDevice) throws(Failure) {
        guard record.sequence == nextSequence else {
            throw Failure(message: "stream out of order: record \(record.sequence) (\(record.tag)) arrived where record \(nextSequence) was expected (sequence \(record.sequence) after \(Int64(nextSequence) - 1)\(inChunk))")
        }
        guard !endSeen else { throw Failure(message: "stream continues after its end marker (record \(record.sequence), \(record.tag))") }
        nextSequence += 1
        if record.tag != .chunk, let c = chunk { chunk?.received = c.received + UInt64(record.totalLength) }
        switch record.tag {
        case .chunk:
            guard record.payload.count == 16 else { throw Failure(message: "corrupted stream: CHNK record of \(record.payload.count) bytes") }
            guard record.argument == nextChunk else {
                throw Failure(message: "stream out of order: source chunk \(record.argument) arrived where chunk \(nextChunk) was expected")
            }
            if let c = chunk, c.received != c.length {
                throw Failure(message: "source chunk \(c.number) announced \(c.length) bytes but carried \(c.received)")
            }
            nextChunk += 1
            chunksApplied += 1
            chunk = (record.argument, record.word(0), UInt64(record.totalLength))
        case .header:
            guard record.sequence == 1, !headerSeen else { throw Failure(message: "stream header out of place (record \(record.sequence))") }
            if let seed = try checkCompatible(record) { reference = device.referenceSource(seed: seed) }
            if let r = reference, let generator = device.referenceGenerator(r) {
                powerOn = PowerOnPages(generator: generator, pageCount: configuration.pageCount, pageSize: Int(configuration.pageSize))
            }
            headerSeen = true
        case .page:
            guard headerSeen else { throw Failure(message: "stream does not start with a header") }
            guard record.argument < configuration.pageCount, record.payload.count == Int(configuration.pageSize),
                  let base = record.payload.baseAddress
            else {
                throw Failure(message: "corrupted stream: page record \(record.argument) of \(record.payload.count) bytes for a device of \(configuration.pageCount) pages of \(configuration.pageSize)")
            }
            guard device.writePage(record.argument, from: base, reference: reference, matched: record.powerOnMatch) else {
                throw Failure(message: "out of memory: no room for page \(record.argument) (\(device.materializedPages) pages held)", errno: .noMemory)
            }
            pagesApplied += 1
        case .config:
            guard headerSeen else { throw Failure(message: "stream does not start with a header") }
            let end = record.argument + UInt64(record.payload.count)
            guard record.argument == configReceived, end <= configuration.configSize else {
                throw Failure(message: "corrupted stream: config bytes \(record.argument)..<\(end) do not follow \(configReceived) of \(configuration.configSize)")
            }
            config.withUnsafeMutableBytes { dst in
                UnsafeMutableRawBufferPointer(rebasing: dst[Int(record.argument)..<Int(end)]).copyMemory(from: record.payload)
            }
            configReceived = end
        case .end:
            guard headerSeen, record.payload.count == 16 else { throw Failure(message: "stream ends before its header") }
            let pages = record.word(0), configBytes = record.word(1)
            guard configBytes == configReceived, configReceived == configuration.configSize else {
                throw Failure(message: "stream ends with \(configReceived) of \(configuration.configSize) config bytes (source sent \(configBytes))")
            }
            if pages != pagesApplied {
                throw Failure(message: "stream ends after \(pagesApplied) page records, source sent \(pages)")
            }
            device.replaceConfig(config)
            endSeen = true
        }
    }

    /// Checks the stream's header against this device; returns the source's seed when the
    /// header carries one (version 2).
    private func checkCompatible(_ record: DecodedRecord) throws(Failure) -> UInt64? {
        guard (StreamFormat.oldestReadableVersion...StreamFormat.version).contains(record.argument) else {
            throw Failure(message: "incompatible stream: format version \(record.argument), this device reads versions \(StreamFormat.oldestReadableVersion) to \(StreamFormat.version)")
        }
        let words = record.argument == 1 ? 4 : 5
        guard record.payload.count >= words * 8 else { throw Failure(message: "corrupted stream: short header record") }
        let memory = record.word(0), page = record.word(1), configSize = record.word(2), nameLength = Int(record.word(3))
        let nameStart = words * 8
        guard nameLength <= StreamFormat.maxTypeNameLength, nameStart + nameLength <= record.payload.count else {
            throw Failure(message: "corrupted stream: header names a type of \(nameLength) bytes")
        }
        let name = String(decoding: UnsafeRawBufferPointer(rebasing: record.payload[nameStart..<(nameStart + nameLength)]), as: UTF8.self)
        let c = configuration
        if name != c.typeName {
            throw Failure(message: "incompatible stream: source device type \(name), this device is \(c.typeName)")
        }
        if memory != c.memorySize || page != c.pageSize || configSize != c.configSize {
            throw Failure(message: "incompatible stream: source has \(memory) bytes of memory in \(page)-byte pages and \(configSize) config bytes, this device has \(c.memorySize), \(c.pageSize) and \(c.configSize)")
        }
        return words == 5 ? record.word(4) : nil
    }
}

/// The migration stream: opaque to the VMM, self-describing to mdevsim.
///
/// A stream is a sequence of chunks, each exactly what the source staged for one `data_offset`
/// read. A chunk is a sequence of records; a record never straddles two chunks. Every record is
///
/// ```
/// offset  size  field
///      0     4  tag       record type, four ASCII bytes
///      4     4  length    payload bytes that follow the 32-byte record header
///      8     8  argument  per type: chunk number, format version, page index, config offset
///     16     8  sequence  the record's index in the stream, from 0
///     24     8  checksum  StreamChecksum of bytes 0..<24 and the payload
/// ```
/// all little-endian. The types, in stream order:
/// - `CHNK` starts every chunk: argument = chunk number; payload = the chunk's total length (u64)
///   and its phase (u32: 1 pre-copy, 2 stop-and-copy) and 4 zero bytes. It lets the destination
///   tell when a client split, merged or reordered the source's chunks.
/// - `HEAD` once, first after the first `CHNK`: argument = format version; payload = memory size,
///   page size, config size, type-name length, the source device's content seed (u64 each) and
///   the type name, zero-padded to 8. (Version 1, still read, had no seed: the name followed the
///   length.) The seed lets a destination keep a received page that is exactly the source's
///   power-on page as a reference instead of bytes (`DeviceMemory`).
/// - `PAGE` a page: argument = page index; payload = the page's bytes.
/// - `CONF` a piece of the device-config blob: argument = offset in the blob; payload = bytes.
/// - `END!` last: argument = 0; payload = page records sent and config bytes sent (u64 each).
public enum StreamFormat {
    public static let version: UInt64 = 2
    /// The oldest version a destination reads.
    public static let oldestReadableVersion: UInt64 = 1
    public static let recordHeaderSize = 32
    public static let maxTypeNameLength = 64

    public enum Tag: UInt32, Sendable, CaseIterable, CustomStringConvertible {
        case chunk = 0x4B4E_4843 // "CHNK"
        case header = 0x4441_4548 // "HEAD"
        case page = 0x4547_4150 // "PAGE"
        case config = 0x464E_4F43 // "CONF"
        case end = 0x21444E45 // "END!"

        public var description: String {
            switch self {
            case .chunk: "CHNK"
            case .header: "HEAD"
            case .page: "PAGE"
            case .config: "CONF"
            case .end: "END!"
            }
        }
    }

    public static let chunkRecordSize = recordHeaderSize + 16
    public static let endRecordSize = recordHeaderSize + 16

    public static func headerRecordSize(typeName: String) -> Int {
        recordHeaderSize + 40 + padded(typeName.utf8.count)
    }

    public static func pageRecordSize(pageSize: UInt64) -> Int { recordHeaderSize + Int(pageSize) }

    /// The smallest chunk that can carry one page record after its `CHNK` record.
    public static func minimumChunkSize(pageSize: UInt64) -> UInt64 {
        UInt64(chunkRecordSize + recordHeaderSize) + pageSize
    }

    static func padded(_ n: Int) -> Int { (n + 7) & ~7 }

    /// Phase codes in `CHNK` records.
    public static func phaseCode(_ phase: MigrationPhase) -> UInt32 {
        switch phase {
        case .preCopy: 1
        case .stopAndCopy: 2
        case .resuming: 0
        }
    }
}

/// Writes records into a buffer (the data section).
struct RecordWriter {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    private(set) var used = 0
    private(set) var sequence: UInt64

    init(base: UnsafeMutableRawPointer, capacity: Int, firstSequence: UInt64) {
        self.base = base
        self.capacity = capacity
        sequence = firstSequence
    }

    var remaining: Int { capacity - used }

    /// Appends one record whose payload is produced by `fill` writing exactly `payloadLength` bytes.
    /// Returns the payload's offset in the buffer.
    @discardableResult
    mutating func append(
        _ tag: StreamFormat.Tag, argument: UInt64, payloadLength: Int,
        fill: (UnsafeMutableRawBufferPointer) -> Void
    ) -> Int {
        appendSumming(tag, argument: argument, payloadLength: payloadLength) { payload, sum in
            fill(payload)
            sum.update(UnsafeRawBufferPointer(payload))
        }
    }

    /// `append` whose `fill` also adds the payload's bytes to the record's checksum, exactly once
    /// and whole (`StreamChecksum.updateBlocks`, `updateZeros`): a page is staged and summed in one
    /// pass. The header's 24 bytes are already in the sum when `fill` runs.
    @discardableResult
    mutating func appendSumming(
        _ tag: StreamFormat.Tag, argument: UInt64, payloadLength: Int,
        fill: (UnsafeMutableRawBufferPointer, inout StreamChecksum) -> Void
    ) -> Int {
        let start = used
        let header = base + start
        header.storeBytes(of: tag.rawValue.littleEndian, toByteOffset: 0, as: UInt32.self)
        header.storeBytes(of: UInt32(payloadLength).littleEndian, toByteOffset: 4, as: UInt32.self)
        header.storeBytes(of: argument.littleEndian, toByteOffset: 8, as: UInt64.self)
        header.storeBytes(of: sequence.littleEndian, toByteOffset: 16, as: UInt64.self)
        let payload = UnsafeMutableRawBufferPointer(start: header + StreamFormat.recordHeaderSize, count: payloadLength)
        var sum = StreamChecksum()
        sum.update(UnsafeRawBufferPointer(start: header, count: 24))
        fill(payload, &sum)
        header.storeBytes(of: sum.finalize().littleEndian, toByteOffset: 24, as: UInt64.self)
        used += StreamFormat.recordHeaderSize + payloadLength
        sequence += 1
        return start + StreamFormat.recordHeaderSize
    }

    mutating func appendWords(_ tag: StreamFormat.Tag, argument: UInt64, words: [UInt64], trailing: [UInt8] = []) {
        let length = words.count * 8 + StreamFormat.padded(trailing.count)
        append(tag, argument: argument, payloadLength: length) { payload in
            for (i, w) in words.enumerated() {
                payload.storeBytes(of: w.littleEndian, toByteOffset: i * 8, as: UInt64.self)
            }
            let tail = UnsafeMutableRawBufferPointer(rebasing: payload[(words.count * 8)...])
            tail.initializeMemory(as: UInt8.self, repeating: 0)
            tail.copyBytes(from: trailing)
        }
    }

    /// Patches the u64 at `offset` of an already written record's payload and re-seals it.
    mutating func patchChunkLength(recordStart: Int, length: UInt64) {
        let header = base + recordStart
        header.storeBytes(of: length.littleEndian, toByteOffset: StreamFormat.recordHeaderSize, as: UInt64.self)
        let payloadLength = Int(UInt32(littleEndian: header.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
        var sum = StreamChecksum()
        sum.update(UnsafeRawBufferPointer(start: header, count: 24))
        sum.update(UnsafeRawBufferPointer(start: header + StreamFormat.recordHeaderSize, count: payloadLength))
        header.storeBytes(of: sum.finalize().littleEndian, toByteOffset: 24, as: UInt64.self)
    }
}

/// A record read back from bytes, with its checksum verified.
struct DecodedRecord {
    var tag: StreamFormat.Tag
    var argument: UInt64
    var sequence: UInt64
    var payload: UnsafeRawBufferPointer
    /// For a page record decoded with `PowerOnPages`: whether its bytes are exactly that power-on
    /// page (compared in the pass that verified the checksum); nil when not compared.
    var powerOnMatch: Bool? = nil
    /// Header plus payload.
    var totalLength: Int { StreamFormat.recordHeaderSize + payload.count }

    func word(_ index: Int) -> UInt64 {
        UInt64(littleEndian: payload.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self))
    }
}

/// Why bytes do not decode as a record.
enum RecordDecodeError: Error, Equatable {
    /// Fewer bytes than the record announces: wait for more.
    case incomplete(needed: Int)
    case unknownTag(UInt32)
    case badLength(UInt32)
    case badChecksum(tag: UInt32, sequence: UInt64)
}

/// The power-on pages a resume compares received pages with (its stream's source's generator):
/// a page record of the right index and size is compared while its checksum is verified.
struct PowerOnPages {
    let generator: PageGenerator
    let pageCount: UInt64
    let pageSize: Int
}

enum RecordDecoder {
    /// Decodes the record at the start of `bytes`; with `powerOn`, compares a page record with its
    /// power-on page in the same pass as the checksum (`DecodedRecord.powerOnMatch`). The checksum
    /// is verified before anything else is judged, either way.
    static func decode(_ bytes: UnsafeRawBufferPointer, maxPayload: Int, powerOn: PowerOnPages? = nil) throws(RecordDecodeError) -> DecodedRecord {
        guard bytes.count >= StreamFormat.recordHeaderSize, let base = bytes.baseAddress else {
            throw .incomplete(needed: StreamFormat.recordHeaderSize)
        }
        let rawTag = UInt32(littleEndian: base.loadUnaligned(as: UInt32.self))
        guard let tag = StreamFormat.Tag(rawValue: rawTag) else { throw .unknownTag(rawTag) }
        let length = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        guard Int(length) <= maxPayload else { throw .badLength(length) }
        let total = StreamFormat.recordHeaderSize + Int(length)
        guard bytes.count >= total else { throw .incomplete(needed: total) }
        let argument = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        let sequence = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        let stored = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
        let payload = UnsafeRawBufferPointer(start: base + StreamFormat.recordHeaderSize, count: Int(length))
        var sum = StreamChecksum()
        sum.update(UnsafeRawBufferPointer(start: base, count: 24))
        var match: Bool?
        if tag == .page, let powerOn, argument < powerOn.pageCount, payload.count == powerOn.pageSize,
           let first = payload.baseAddress {
            match = powerOn.generator.matches(page: argument, version: 0, bytes: first, checksum: &sum)
        } else {
            sum.update(payload)
        }
        guard sum.finalize() == stored else { throw .badChecksum(tag: rawTag, sequence: sequence) }
        return DecodedRecord(tag: tag, argument: argument, sequence: sequence, payload: payload, powerOnMatch: match)
    }
}

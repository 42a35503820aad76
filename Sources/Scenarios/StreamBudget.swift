import DeviceSimulator

/// How many chunks and bytes a device that never dirties memory can produce in a phase, so that
/// a fault waiting for a later chunk is reported as one that can never fire.
///
/// Assumes the engine packs chunks greedily (each chunk as full as whole records allow) with the
/// record layout of `StreamFormat`: a 48-byte `CHNK` record per chunk, `HEAD` once, one
/// `PAGE` record (32 bytes + a page) per page, `CONF` records (32 bytes + a piece of the config
/// blob) and a 48-byte `END!`. With a dirtying device, there is no bound.
public struct StreamBudget: Sendable, Hashable {
    /// Chunks the phase can hold at most.
    public var chunks: UInt64
    /// Bytes moved in the phase at most (records and `CHNK` records together).
    public var bytes: UInt64

    /// Pre-copy: `HEAD` and every page once. Zero when the device has no pre-copy data; `nil`
    /// when the device dirties memory (pre-copy may go on forever).
    public static func preCopy(_ configuration: DeviceConfiguration) -> StreamBudget? {
        guard configuration.dirtyRate == 0 else { return nil }
        // No pages to offer: the engine stages nothing in pre-copy, not even the header.
        guard configuration.precopyData, configuration.pageCount > 0 else { return StreamBudget(chunks: 0, bytes: 0) }
        var packer = Packer(chunkSize: configuration.chunkSize)
        packer.place(UInt64(StreamFormat.headerRecordSize(typeName: configuration.typeName)))
        packer.placeRecords(count: configuration.pageCount, size: UInt64(StreamFormat.pageRecordSize(pageSize: configuration.pageSize)))
        return packer.budget
    }

    /// Stop-and-copy in the worst case (a paused guest, or no pre-copy data): `HEAD`, every
    /// page, the config blob and `END!`. `nil` when the device dirties memory.
    public static func stopAndCopy(_ configuration: DeviceConfiguration) -> StreamBudget? {
        guard configuration.dirtyRate == 0 else { return nil }
        var packer = Packer(chunkSize: configuration.chunkSize)
        packer.place(UInt64(StreamFormat.headerRecordSize(typeName: configuration.typeName)))
        packer.placeRecords(count: configuration.pageCount, size: UInt64(StreamFormat.pageRecordSize(pageSize: configuration.pageSize)))
        packer.placeSplittable(configuration.configSize, recordHeader: UInt64(StreamFormat.recordHeaderSize))
        packer.place(UInt64(StreamFormat.endRecordSize))
        return packer.budget
    }

    /// A greedy packer of records into chunks, counting arithmetically (millions of pages).
    struct Packer {
        let chunkSize: UInt64
        let chunkRecord = UInt64(StreamFormat.chunkRecordSize)
        var chunks: UInt64 = 0
        /// Bytes used in the open chunk; 0 when none is open.
        var used: UInt64 = 0
        var bytes: UInt64 = 0

        var budget: StreamBudget { StreamBudget(chunks: chunks, bytes: bytes) }

        private mutating func open() {
            chunks += 1
            used = chunkRecord
            bytes += chunkRecord
        }

        /// One record of `size` bytes; validation guarantees a record fits an empty chunk.
        mutating func place(_ size: UInt64) {
            if used == 0 || used + size > chunkSize { open() }
            used += size
            bytes += size
        }

        mutating func placeRecords(count: UInt64, size: UInt64) {
            guard count > 0 else { return }
            bytes += count * size
            let perChunk = max(1, (chunkSize - chunkRecord) / size)
            var left = count
            if used > 0, chunkSize > used {
                let fits = min(left, (chunkSize - used) / size)
                left -= fits
                used += fits * size
            }
            guard left > 0 else { return }
            let newChunks = (left + perChunk - 1) / perChunk
            chunks += newChunks
            bytes += newChunks * chunkRecord
            used = chunkRecord + (left - (newChunks - 1) * perChunk) * size
        }

        /// A blob cut into records of a header and a piece, filling chunks.
        mutating func placeSplittable(_ length: UInt64, recordHeader: UInt64) {
            guard length > 0 else { return }
            var left = length
            if used > 0, chunkSize > used + recordHeader {
                let piece = min(left, chunkSize - used - recordHeader)
                left -= piece
                used += recordHeader + piece
                bytes += recordHeader + piece
            }
            guard left > 0 else { return }
            let perChunk = max(1, chunkSize - chunkRecord - recordHeader)
            let newChunks = (left + perChunk - 1) / perChunk
            chunks += newChunks
            bytes += newChunks * (chunkRecord + recordHeader) + left
            used = chunkRecord + recordHeader + (left - (newChunks - 1) * perChunk)
        }
    }
}

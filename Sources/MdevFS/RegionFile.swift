import DeviceSimulator
import Foundation
import FUSEKit
import MigrationProtocol
import SystemPackage

/// The `migration` file of one device: every access is the engine's, and the data section's
/// mapping is kept coherent with the engine's buffer.
///
/// Coherence (see "How the region file works" in README.md): region files are opened `direct_io`, so preads and
/// pwrites reach the engine with their exact offset and size, and the mount negotiates
/// `FUSE_DIRECT_IO_ALLOW_MMAP` so the same files can be mapped. Mapped pages live in the
/// kernel's page cache, apart from the engine's buffer:
/// - save: when a `data_offset` read stages a chunk, the chunk is pushed into the page cache
///   (`notify_store`) before the read is answered, so the mapping shows it with no fault;
/// - resume: a `data_offset` read pre-fills the cache with the data section, and a `data_size`
///   write is held while the client's stores are fetched back (`notify_retrieve`) into the
///   buffer; the engine applies the chunk only then;
/// - page-fault reads (reads of the data section without a lock owner) are answered from the buffer with
///   no side effect, and page writebacks (`writepage`) are copied into it: neither is a header
///   access or a chunk event.
/// Both only happen once the client has shown it uses a mapping (its first fault or writeback):
/// a pread/pwrite client costs nothing extra.
struct RegionFile: Sendable {
    let cache: PageCacheCoherence
    let device: MdevDevice
    let inode: FUSEInode
    /// Build each next save chunk ahead (`stageAhead()`).
    let stagesAhead: Bool

    private var region: MigrationRegion { device.region }
    private static let dataStart = RegionLayout.dataSectionOffset

    func read(_ request: ReadRequest, reply: DataReply) {
        let offset = UInt64(max(0, request.offset))
        // A page fault of the mapping (one page: MdevMount turns readahead off) carries no lock
        // owner, unlike any pread of the client, even a page-sized one, which the engine sees.
        if request.isPageCacheFill {
            return pageFault(offset: offset, size: request.size, reply: reply)
        }
        if offset >= Self.dataStart { return readData(offset: offset, size: request.size, reply: reply) }
        // A header access: a few bytes, on the stack (no heap allocation on this path).
        withUnsafeTemporaryAllocation(byteCount: max(1, request.size), alignment: 8) { buffer in
            let target = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<request.size])
            var stageRange: Range<UInt64>?
            var prefill = false
            var buildAhead = false
            let (result, section) = device.withLock { () -> (AccessResult, UnsafeMutableRawBufferPointer) in
                let r = region.read(at: offset, into: target)
                if offset == HeaderField.dataOffset.offset, r.errno == nil {
                    if region.state.isResuming {
                        // The page cache holds the section already when nothing but the client's
                        // stores (fetched back at each data_size) changed it since the last
                        // pre-fill: storing it again would copy the whole section for nothing
                        // (a fault, should a page be gone, reads the same bytes from the buffer).
                        prefill = device.mappingInUse && device.prefilledAt != region.dataSectionWrites
                        if prefill { device.prefilledAt = region.dataSectionWrites }
                    } else if region.state.isSaving {
                        if device.mappingInUse { stageRange = r.staged }
                        // The spare buffer only for a device that saves, at its first chunk.
                        if stagesAhead, !region.stagesAhead, region.enableStagingAhead() { device.adviseHugePages() }
                        buildAhead = stagesAhead && region.stagesAhead
                    }
                }
                // Staging ahead makes the two buffers trade places: the one to push is taken here.
                return (r, region.dataSection)
            }
            if let range = stageRange { cache.store(range, of: section, device: device, inode: inode) }
            if prefill { cache.store(Self.dataStart..<(Self.dataStart + UInt64(section.count)), of: section, device: device, inode: inode) }
            stall(result.stallNanoseconds)
            switch result.outcome {
            case .failure(let e): reply.error(e)
            case .success(let n): reply.data(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            }
            if buildAhead { stageAhead() }
        }
    }

    /// After answering a `data_offset` read that staged a chunk, this thread builds the next
    /// chunk in the spare buffer (`MigrationRegion.stageAhead`) while the client copies the staged
    /// one: the engine's work per chunk overlaps the client's copy instead of preceding it. The
    /// lock is taken a slice at a time (about 128 KiB of records), and waiting threads go first
    /// between slices, so the client's reads of the staged chunk and its `pending_bytes` read wait
    /// for one slice at most; the next `data_offset`
    /// read finishes what is left. Speed only: the engine takes a chunk built ahead only if it is
    /// the chunk it would build then.
    private func stageAhead() {
        let pages = max(1, (128 << 10) / max(1, Int(region.configuration.pageSize)))
        while device.withLock({ region.stageAhead(pages: pages) }) { device.letWaitersIn() }
    }

    /// A client's pread of the data section (a staged chunk, as a VMM reads it): answered from
    /// the engine's buffer itself, with no copy into a reply buffer (`fuse_reply_buf` hands the
    /// pointer to the kernel's writev). The bytes are sent after the device lock is released,
    /// as `PageCacheCoherence.store` sends them: the buffer lives as long as the region, which
    /// `device` keeps alive through this call, and its only writers are the engine staging
    /// a chunk into it (at this client's next `data_offset` read, or, building ahead, after that
    /// read made the other buffer the section) and page writebacks (which carry what the page
    /// cache already holds).
    private func readData(offset: UInt64, size: Int, reply: DataReply) {
        let (result, bytes) = device.withLock {
            let read = region.readInPlace(at: offset, count: size)
            // The kernel copies the reply out of the section.
            if case .success(let n) = read.result.outcome { region.copies.replyFromSection += UInt64(n) }
            return read
        }
        stall(result.stallNanoseconds)
        switch result.outcome {
        case .failure(let e): reply.error(e)
        case .success(let n): reply.data(UnsafeRawBufferPointer(rebasing: bytes[0..<min(n, bytes.count)]))
        }
    }

    func write(_ request: WriteRequest, data: UnsafeRawBufferPointer, reply: WriteReply) {
        let offset = UInt64(max(0, request.offset))
        if request.isWritepage {
            // A late writeback of a mapped page: the client's stores, not a protocol event.
            device.withLock {
                device.mappingInUse = true
                region.copies.pageCacheIntoDaemon += UInt64(data.count)
                region.storeThroughMapping(at: offset, data)
            }
            return reply.write(data.count)
        }
        if offset == HeaderField.dataSize.offset, data.count == 8 {
            let value = UInt64(littleEndian: data.loadUnaligned(as: UInt64.self))
            let fetch = device.withLock { () -> Bool in
                region.state.isResuming && device.mappingInUse && value > 0 && value <= UInt64(region.dataSection.count)
            }
            // Held: answered once the client's stores are back in the engine.
            if fetch, cache.retrieve(size: Int(value), of: device, inode: inode, complete: { applyDataSize(value, reply: reply) }) { return }
        }
        let result = device.withLock { () -> AccessResult in
            // A data pwrite: the kernel copied it into the request buffer.
            if offset >= Self.dataStart { region.copies.writeIntoDaemon += UInt64(data.count) }
            return region.write(at: offset, from: data)
        }
        stall(result.stallNanoseconds)
        switch result.outcome {
        case .failure(let e): reply.error(e)
        case .success(let n): reply.write(n)
        }
    }

    /// The kernel filled its page cache (a fault of the mapping): the buffer's bytes, no engine
    /// access, no checker. A readahead window can start below the data section (QEMU's
    /// MADV_HUGEPAGE advice made the kernel read a 2 MiB-aligned one): the header page reads as
    /// zeros there, since it is not mappable, and no header access happens.
    private func pageFault(offset: UInt64, size: Int, reply: DataReply) {
        device.withLock {
            device.mappingInUse = true
            let section = region.dataSection
            if offset >= Self.dataStart {
                let start = Int(offset - Self.dataStart)
                guard start < section.count else { return reply.data([]) }
                // The kernel copies the page into its page cache, as a store would.
                region.copies.pageCacheStore += UInt64(min(section.count, start + size) - start)
                return reply.data(UnsafeRawBufferPointer(rebasing: section[start..<min(section.count, start + size)]))
            }
            let end = min(Int(Self.dataStart) + section.count, Int(offset) + size)
            var window = [UInt8](repeating: 0, count: max(0, end - Int(offset)))
            let headerPart = Int(Self.dataStart - offset)
            let fromSection = window.count - headerPart
            if fromSection > 0 {
                window.withUnsafeMutableBytes { w in
                    UnsafeMutableRawBufferPointer(rebasing: w[headerPart...])
                        .copyMemory(from: UnsafeRawBufferPointer(rebasing: section[0..<fromSection]))
                }
            }
            window.withUnsafeBytes { reply.data($0) }
        }
    }

    /// Every retrieved piece is in the buffer: the engine applies the chunk, the write is answered.
    private func applyDataSize(_ value: UInt64, reply: WriteReply) {
        let result = device.withLock { () -> AccessResult in
            var le = value.littleEndian
            return withUnsafeBytes(of: &le) { region.write(at: HeaderField.dataSize.offset, from: $0) }
        }
        stall(result.stallNanoseconds)
        switch result.outcome {
        case .failure(let e): reply.error(e)
        case .success(let n): reply.write(n)
        }
    }

    /// An injected stall: the access answers late, as a slow driver would.
    private func stall(_ nanoseconds: UInt64) { hostSleep(nanoseconds: nanoseconds) }
}

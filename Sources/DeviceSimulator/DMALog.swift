import SystemPackage

/// One range of `VFIO_DEVICE_FEATURE_DMA_LOGGING_START`
/// (`struct vfio_device_feature_dma_logging_range`).
public struct DMALogRange: Sendable, Hashable {
    public var iova: UInt64
    public var length: UInt64

    public init(iova: UInt64, length: UInt64) {
        self.iova = iova
        self.length = length
    }
}

/// Device DMA logging (`VFIO_DEVICE_FEATURE_DMA_LOGGING_START`, `_REPORT`, `_STOP`) as the
/// kernel checks a VMM's calls: the core's checks in drivers/vfio/vfio_main.c
/// (`vfio_ioctl_device_feature_logging_*`) and those of a driver's `log_ops` (mlx5's page
/// tracker). It holds what START gave; the device's dirty pages themselves are logged where the
/// DMA happens (the VFIO shim). Pure: each check says what the call deserves, `V2Device` records it.
public struct DMALog: Sendable, Hashable {
    /// The device tracks its DMA in 4 KiB pages whatever START asks: the uAPI lets the driver
    /// choose and writes its choice back into `page_size` (mlx5 rounds to what it supports).
    public static let trackedPageSize: UInt64 = 4096
    /// The kernel copies at most a page of ranges (`LOG_MAX_RANGES`: 4096 / 16).
    public static let maxRanges = 256

    /// START's ranges, sorted by iova; nil while logging is off.
    public private(set) var ranges: [DMALogRange]?

    public init() {}

    public var isStarted: Bool { ranges != nil }

    /// What one call deserves.
    public enum Decision: Sendable, Hashable {
        case accept
        /// Misuse the kernel refuses in any mode: recorded, and the call fails with `errno`.
        case refuse(ProtocolViolation.Rule, Errno, String)
        /// Misuse the kernel lets pass: recorded; `--strict` fails the call with `errno`.
        case tolerate(ProtocolViolation.Rule, Errno, String)
    }

    /// START, in the kernel's order: the core's range checks, then the driver's "already on".
    public func checkStart(ranges: [DMALogRange], pageSize: UInt64) -> Decision {
        if ranges.isEmpty { return .refuse(.v2DMALogRanges, .invalidArgument, "DMA_LOGGING_START with no range") }
        if ranges.count > Self.maxRanges {
            return .refuse(.v2DMALogRanges, .argListTooLong, "DMA_LOGGING_START with \(ranges.count) ranges (at most \(Self.maxRanges))")
        }
        // The core aligns each range to page_size: a size that is no power of two aligns nothing.
        if pageSize == 0 || pageSize & (pageSize - 1) != 0 {
            return .refuse(.v2DMALogPageSize, .invalidArgument, "DMA_LOGGING_START page size \(pageSize) is not a power of two")
        }
        for (i, r) in ranges.enumerated() {
            if r.iova % pageSize != 0 || r.length % pageSize != 0 || r.length == 0 {
                return .refuse(.v2DMALogRanges, .invalidArgument, "DMA_LOGGING_START range \(i) (iova 0x\(hex(r.iova)) length 0x\(hex(r.length))) is empty or not aligned to the page size \(pageSize)")
            }
            if r.iova.addingReportingOverflow(r.length).overflow {
                return .refuse(.v2DMALogRanges, .overflow, "DMA_LOGGING_START range \(i) (iova 0x\(hex(r.iova)) length 0x\(hex(r.length))) wraps around")
            }
        }
        let sorted = ranges.sorted { $0.iova < $1.iova }
        for (a, b) in zip(sorted, sorted.dropFirst()) where b.iova < a.iova + a.length {
            return .refuse(.v2DMALogRanges, .invalidArgument, "DMA_LOGGING_START ranges overlap: iova 0x\(hex(a.iova)) length 0x\(hex(a.length)) and iova 0x\(hex(b.iova)) length 0x\(hex(b.length))")
        }
        if isStarted {
            // mlx5vf_start_page_tracker: "if (mvdev->log_active) return -EINVAL".
            return .refuse(.v2DMALogStartTwice, .invalidArgument, "DMA_LOGGING_START while logging is already started (STOP first)")
        }
        return .accept
    }

    /// Logging on with `ranges` (after `checkStart` accepted them); the page size it tracks with.
    public mutating func start(ranges: [DMALogRange]) -> UInt64 {
        self.ranges = ranges.sorted { $0.iova < $1.iova }
        return Self.trackedPageSize
    }

    /// REPORT: the core's page size and overflow checks, the driver's "logging on", and whether
    /// the range lies within what START gave.
    public func checkReport(iova: UInt64, length: UInt64, pageSize: UInt64) -> Decision {
        if pageSize < 4096 || pageSize & (pageSize - 1) != 0 {
            return .refuse(.v2DMALogPageSize, .invalidArgument, "DMA_LOGGING_REPORT page size \(pageSize): at least 4096 and a power of two")
        }
        if iova.addingReportingOverflow(length).overflow {
            return .refuse(.v2DMALogReportRange, .overflow, "DMA_LOGGING_REPORT iova 0x\(hex(iova)) length 0x\(hex(length)) wraps around")
        }
        guard let ranges else {
            // mlx5vf_tracker_read_and_clear: "if (!mvdev->log_active) return -EINVAL".
            return .refuse(.v2DMALogReportWithoutStart, .invalidArgument, "DMA_LOGGING_REPORT while logging is not started")
        }
        if !Self.covers(ranges, iova: iova, length: length) {
            // mlx5 hands the range to its firmware unchecked; pds fails a range outside its
            // regions with EINVAL. The bitmap can only say something where START logged.
            return .tolerate(.v2DMALogReportRange, .invalidArgument, "DMA_LOGGING_REPORT iova 0x\(hex(iova)) length 0x\(hex(length)) exceeds the ranges START gave")
        }
        return .accept
    }

    /// STOP: mlx5 answers 0 when logging is off (`if (!mvdev->log_active) goto end`).
    public func checkStop() -> Decision {
        isStarted ? .accept : .tolerate(.v2DMALogStopWithoutStart, .invalidArgument, "DMA_LOGGING_STOP while logging is not started")
    }

    public mutating func stop() { ranges = nil }

    /// Whether `[iova, iova + length)` lies within the union of sorted, disjoint `ranges`.
    static func covers(_ ranges: [DMALogRange], iova: UInt64, length: UInt64) -> Bool {
        var next = iova
        let end = iova + length
        for r in ranges where r.iova + r.length > next {
            if r.iova > next { return false }
            next = r.iova + r.length
            if next >= end { return true }
        }
        return next >= end
    }

    private func hex(_ v: UInt64) -> String { String(v, radix: 16) }
}

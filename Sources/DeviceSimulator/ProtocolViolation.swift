import MigrationProtocol

/// One access to the migration region, as the device saw it.
public struct RegionAccessRecord: Sendable, Hashable, Codable {
    public enum Operation: String, Sendable, Hashable, Codable {
        case read
        case write
    }
    public var operation: Operation
    public var offset: UInt64
    public var count: Int
    /// The value read or written, for header accesses of 1-8 bytes.
    public var value: UInt64?

    public init(operation: Operation, offset: UInt64, count: Int, value: UInt64? = nil) {
        self.operation = operation
        self.offset = offset
        self.count = count
        self.value = value
    }
}

/// A rule of the v1 protocol that a client broke. A real driver would misbehave silently; the
/// simulator records it (and with `strict` fails the access with `EINVAL`).
public struct ProtocolViolation: Sendable, Hashable, Codable {
    public enum Rule: String, Sendable, Hashable, Codable, CaseIterable {
        case accessWidth = "access-width"
        case readOnlyWrite = "read-only-write"
        case invalidState = "invalid-state"
        case reservedBits = "reserved-bits"
        case dataBeforeOffset = "data-before-data-offset"
        case dataOutsideWindow = "data-outside-window"
        case dataSizeWithoutOffset = "data-size-without-data-offset"
        case stopWithPending = "stop-with-pending-bytes"
        case resumeTransactions = "resume-transactions"
        case concurrentOpen = "concurrent-open"
        case mixedDataAccess = "mixed-data-access"
        case incompleteResume = "incomplete-resume"
        case dataSizeOutsideResume = "data-size-outside-resume"
        case dataSizeTooLarge = "data-size-too-large"
        case resumeStream = "resume-stream"
        case resumeOrder = "resume-order"
        case emptyResumeTransaction = "empty-resume-transaction"
        case chunkNotRead = "chunk-not-read"
        case pendingNotReread = "pending-bytes-not-reread"
        case readAfterPendingZero = "read-after-pending-zero"
        // Migration v2 (`VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE` and its data_fd). `state` of a
        // v2 violation is the `enum vfio_device_mig_state` value.
        case v2SetError = "v2-set-error"
        case v2SetInError = "v2-set-in-error"
        case v2UnsupportedState = "v2-unsupported-state"
        case v2StaleDataFD = "v2-stale-data-fd"
        case v2DataFDDirection = "v2-data-fd-direction"
        case v2ResumeIncomplete = "v2-resume-incomplete"
        case v2PrecopyInfoState = "v2-precopy-info-state"
        // Device DMA logging (`VFIO_DEVICE_FEATURE_DMA_LOGGING_*`, `DMALog`).
        case v2DMALogStartTwice = "v2-dma-log-start-twice"
        case v2DMALogRanges = "v2-dma-log-ranges"
        case v2DMALogPageSize = "v2-dma-log-page-size"
        case v2DMALogReportWithoutStart = "v2-dma-log-report-without-start"
        case v2DMALogReportRange = "v2-dma-log-report-range"
        case v2DMALogStopWithoutStart = "v2-dma-log-stop-without-start"

        /// The rule in the uapi's words (seed 002 / `<linux/vfio.h>`).
        public var citation: String {
            switch self {
            case .accessWidth:
                "uapi: \"Field accesses from this structure are only supported at their native width and alignment.\""
            case .readOnlyWrite:
                "uapi: pending_bytes and data_offset are \"(read only)\""
            case .invalidState:
                "uapi: 101b and 111b are invalid; 110b is the error state, entered only by the vendor driver; only a device reset leaves it"
            case .reservedBits:
                "uapi: \"Bits 3 - 31 are reserved for future use. To preserve them, the user application should perform a read-modify-write operation on this field\""
            case .dataBeforeOffset:
                "uapi: \"Read data_offset, indicating that the vendor driver should make data available through the data section\" before reading (or, resuming, writing) the data"
            case .dataOutsideWindow:
                "uapi: data is read from or written to (region + data_offset) for data_size bytes"
            case .dataSizeWithoutOffset:
                "uapi: read data_size after data_offset: it describes the buffer data_offset made available"
            case .stopWithPending:
                "uapi: \"The user application should iterate in _SAVING (stop-and-copy) until pending_bytes is 0.\""
            case .resumeTransactions:
                "uapi: \"The user application should write data in the same order as the data is received and the data should be of same transaction size at the source.\""
            case .concurrentOpen:
                "a VFIO device is owned by one user at a time: a second open is a second VMM on the same device"
            case .mixedDataAccess:
                "a resume chunk is written either through the region's mmap area or with pwrite: a driver whose mmap area is device memory and whose pwrite path is a staging buffer would see only one of them"
            case .incompleteResume:
                "uapi: \"After providing saved device data to the driver, the application should change the state from _RESUMING to _RUNNING.\""
            case .dataSizeOutsideResume:
                "uapi: the user application should \"write the size in bytes of the data copied in the migration region during the _RESUMING state\""
            case .dataSizeTooLarge:
                "uapi: data is written to (region + data_offset) for data_size bytes: it cannot extend beyond the data section"
            case .resumeStream:
                "uapi: \"The user application should write data in the same order as the data is received\": the destination takes only the bytes the source produced, in the source's order"
            case .resumeOrder:
                "uapi: \"b. Write migration data starting at the migration region + data_offset ... c. Write data_size, which indicates to the vendor driver that data is written in the migration region.\""
            case .emptyResumeTransaction:
                "uapi: \"the data should be of same transaction size at the source\": the source never produces a transaction of 0 bytes"
            case .chunkNotRead:
                "uapi: \"d. Read data_size bytes of data from (region + data_offset) from the migration region.\" before \"f. Read pending_bytes, which indicates that the data from the previous iteration has been read.\""
            case .pendingNotReread:
                "uapi: \"f. Read pending_bytes, which indicates that the data from the previous iteration has been read. If pending_bytes > 0, go to step b.\""
            case .readAfterPendingZero:
                "uapi: \"If pending_bytes == 0, the user application should not iterate to get data for that device.\""
            case .v2SetError:
                "uapi v2: \"ERROR cannot be specified as a device state, however any transition request can be failed with an errno return and may then move the device_state into ERROR.\""
            case .v2SetInError:
                "uapi v2: \"To recover from ERROR VFIO_DEVICE_RESET must be used to return the device_state back to RUNNING.\""
            case .v2UnsupportedState:
                "uapi v2: \"The optional states cannot be used with SET_STATE if the device does not support them.\""
            case .v2StaleDataFD:
                "uapi v2: leaving the saving group or RESUMING \"terminates a data transfer session\"; each session has its own data_fd"
            case .v2DataFDDirection:
                "uapi v2: a save session's data_fd is read, a resume session's data_fd is written"
            case .v2ResumeIncomplete:
                "uapi v2: \"If the user provided data is found to be incomplete, inconsistent, or otherwise invalid, the migration driver must fail the SET_STATE ioctl\""
            case .v2PrecopyInfoState:
                "uapi v2: VFIO_MIG_GET_PRECOPY_INFO \"is valid only in PRE_COPY states and kernel driver should return -EINVAL from any other migration state\""
            case .v2DMALogStartTwice:
                "uapi: \"A single call to start device DMA logging can be issued and a matching stop should follow at the end. Another start is not allowed in the meantime.\""
            case .v2DMALogRanges:
                "uapi: DMA_LOGGING_START takes num_ranges non-overlapping ranges aligned to page_size (the kernel: EINVAL, E2BIG above a page of ranges, EOVERFLOW when one wraps)"
            case .v2DMALogPageSize:
                "kernel: a page_size that is no power of two (or, for DMA_LOGGING_REPORT, below 4096) is refused with EINVAL"
            case .v2DMALogReportWithoutStart:
                "uapi: DMA_LOGGING_REPORT \"If DMA logging is not enabled, an error will be returned.\""
            case .v2DMALogReportRange:
                "uapi: \"When DMA logging is started a range of IOVAs to monitor is provided\": a REPORT outside those ranges asks for a log that was never kept"
            case .v2DMALogStopWithoutStart:
                "uapi: \"Upon VFIO_DEVICE_FEATURE_SET stop device DMA logging that was started by VFIO_DEVICE_FEATURE_DMA_LOGGING_START\""
            }
        }
    }

    /// Index of the violation among this device's records of its protocol, from 0: v1 and v2
    /// violations are counted apart (the `violations` file lists v1's, then v2's).
    public var index: Int
    public var rule: Rule
    /// The device state when it happened.
    public var state: UInt32
    public var access: RegionAccessRecord?
    public var explanation: String

    public var citation: String { rule.citation }
}

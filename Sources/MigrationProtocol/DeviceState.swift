/// The v1 `device_state` register: three state bits and 29 reserved bits.
///
/// ```
///  +------- _RESUMING
///  |+------ _SAVING
///  ||+----- _RUNNING
///  000b  stopped                 100b  resuming
///  001b  running (default)       101b  invalid
///  010b  stop-and-copy           110b  error
///  011b  pre-copy                111b  invalid
/// ```
public struct DeviceState: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `VFIO_DEVICE_STATE_V1_STOP`.
    public static let stopBits: UInt32 = 0
    /// `VFIO_DEVICE_STATE_V1_RUNNING`.
    public static let runningBit: UInt32 = 1 << 0
    /// `VFIO_DEVICE_STATE_V1_SAVING`.
    public static let savingBit: UInt32 = 1 << 1
    /// `VFIO_DEVICE_STATE_V1_RESUMING`.
    public static let resumingBit: UInt32 = 1 << 2
    /// `VFIO_DEVICE_STATE_MASK`.
    public static let mask: UInt32 = runningBit | savingBit | resumingBit

    public static let stop = DeviceState(rawValue: 0b000)
    public static let running = DeviceState(rawValue: 0b001)
    public static let stopAndCopy = DeviceState(rawValue: 0b010)
    public static let preCopy = DeviceState(rawValue: 0b011)
    public static let resuming = DeviceState(rawValue: 0b100)
    public static let error = DeviceState(rawValue: 0b110)

    /// The three state bits, as a value 0...7.
    public var bits: UInt32 { rawValue & Self.mask }
    /// Bits 3-31, which the user must preserve with a read-modify-write.
    public var reservedBits: UInt32 { rawValue & ~Self.mask }

    public var isRunning: Bool { rawValue & Self.runningBit != 0 }
    public var isSaving: Bool { rawValue & Self.savingBit != 0 && !isError }
    public var isResuming: Bool { bits == Self.resumingBit }

    /// `VFIO_DEVICE_STATE_VALID(state)`: if `_RESUMING` is set, no other state bit may be.
    /// 101b, 110b and 111b are not valid; 110b is the error state.
    public var isValid: Bool {
        rawValue & Self.resumingBit != 0 ? bits == Self.resumingBit : true
    }

    /// `VFIO_DEVICE_STATE_IS_ERROR(state)`.
    public var isError: Bool { bits == Self.savingBit | Self.resumingBit }

    /// `VFIO_DEVICE_STATE_SET_ERROR(state)`: keeps the reserved bits.
    public var settingError: DeviceState {
        DeviceState(rawValue: (rawValue & ~Self.mask) | Self.savingBit | Self.resumingBit)
    }

    /// The same reserved bits with other state bits.
    public func with(bits: UInt32) -> DeviceState {
        DeviceState(rawValue: (rawValue & ~Self.mask) | (bits & Self.mask))
    }

    /// The state's name as the uapi text calls it.
    public var name: String { Self.name(ofBits: bits) }

    public static func name(ofBits bits: UInt32) -> String {
        switch bits & mask {
        case 0b000: "stop"
        case 0b001: "running"
        case 0b010: "stop-and-copy"
        case 0b011: "pre-copy"
        case 0b100: "resuming"
        case 0b110: "error"
        default: "invalid"
        }
    }

    public var description: String {
        let low = String(bits, radix: 2)
        let padded = String(repeating: "0", count: 3 - low.count) + low
        return reservedBits == 0 ? "\(name) (\(padded)b)" : "\(name) (\(padded)b, reserved 0x\(String(reservedBits, radix: 16)))"
    }
}

import CVFIOHeader
import MigrationProtocol
import Testing

/// The Swift layout against the C compiler's reading of the system's `<linux/vfio.h>`.
@Suite struct HeaderLayoutTests {
    let c = cvfio_header_layout()

    @Test func structSizeAndOffsetsMatchTheSystemHeader() {
        #expect(RegionLayout.headerSize == c.struct_size)
        let expected: [(HeaderField, UInt64, UInt64)] = [
            (.deviceState, c.off_device_state, c.size_device_state),
            (.reserved, c.off_reserved, c.size_reserved),
            (.pendingBytes, c.off_pending_bytes, c.size_pending_bytes),
            (.dataOffset, c.off_data_offset, c.size_data_offset),
            (.dataSize, c.off_data_size, c.size_data_size),
        ]
        for (field, offset, size) in expected {
            #expect(field.offset == offset, "\(field.rawValue) offset")
            #expect(UInt64(field.width) == size, "\(field.rawValue) width")
        }
        #expect(HeaderField.allCases.count == expected.count)
    }

    @Test func stateBitsAndRegionConstantsMatchTheSystemHeader() {
        #expect(DeviceState.stopBits == c.state_stop)
        #expect(DeviceState.runningBit == c.state_running)
        #expect(DeviceState.savingBit == c.state_saving)
        #expect(DeviceState.resumingBit == c.state_resuming)
        #expect(DeviceState.mask == c.state_mask)
        #expect(RegionLayout.regionType == c.region_type_migration)
        #expect(RegionLayout.regionSubtype == c.region_subtype_migration)
        #expect(RegionLayout.regionFlagRead == c.flag_read)
        #expect(RegionLayout.regionFlagWrite == c.flag_write)
        #expect(RegionLayout.regionFlagMmap == c.flag_mmap)
        #expect(RegionLayout.regionIndex == Int(c.migration_region_index), "VFIO_PCI_NUM_REGIONS")
    }

    /// VALID, IS_ERROR and SET_ERROR evaluated by the header's own macros, over every low
    /// 3-bit value and with reserved bits set, against the Swift properties.
    @Test func stateMacrosAgreeWithTheHeader() {
        for high: UInt32 in [0, 0x8, 0xF0, 0xFFFF_FFF8] {
            for bits: UInt32 in 0..<8 {
                let raw = high | bits
                let s = DeviceState(rawValue: raw)
                #expect(s.isValid == (cvfio_state_valid(raw) != 0), "VALID(\(raw))")
                #expect(s.isError == (cvfio_state_is_error(raw) != 0), "IS_ERROR(\(raw))")
                #expect(s.settingError.rawValue == cvfio_state_set_error(raw), "SET_ERROR(\(raw))")
                #expect(s.reservedBits == high)
            }
        }
    }

    @Test func fieldLookupAcceptsOnlyNativeWidthAndAlignment() {
        for offset: UInt64 in 0..<40 {
            for width in [1, 2, 3, 4, 8, 16] {
                let field = HeaderField.at(offset: offset, width: width)
                let expected = HeaderField.allCases.first { $0.offset == offset && $0.width == width }
                #expect(field == expected)
            }
        }
        #expect(HeaderField.at(offset: 0, width: 4) == .deviceState)
        #expect(HeaderField.at(offset: 0, width: 8) == nil)
        #expect(HeaderField.at(offset: 12, width: 4) == nil, "upper half of pending_bytes")
        #expect(HeaderField.at(offset: 24, width: 8) == .dataSize)
    }
}

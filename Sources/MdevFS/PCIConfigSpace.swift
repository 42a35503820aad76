import Scenarios

/// The 256 bytes of conventional PCI config space a device's `config` file holds: what
/// `VFIO_DEVICE_GET_REGION_INFO`'s config region would read on a real mdev.
///
/// A type-0 header of a function with no BARs, no expansion ROM, no capabilities (status bit 4
/// clear, pointer 0) and no interrupt pin, so a VMM maps nothing and wires no interrupt for it;
/// only the ids come from the scenario. Multi-byte fields are little-endian, as PCI defines.
enum PCIConfigSpace {
    static let size = 256

    static func bytes(_ id: PCIIdentity) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: size)
        func put16(_ offset: Int, _ v: UInt16) {
            b[offset] = UInt8(v & 0xff)
            b[offset + 1] = UInt8(v >> 8)
        }
        put16(0x00, id.vendorID)
        put16(0x02, id.deviceID)
        // 0x04 command, 0x06 status: 0 (decodes nothing until the guest enables it; no capability list).
        b[0x08] = id.revision
        b[0x09] = UInt8(id.classCode & 0xff)         // programming interface
        b[0x0a] = UInt8((id.classCode >> 8) & 0xff)  // subclass
        b[0x0b] = UInt8((id.classCode >> 16) & 0xff) // base class
        b[0x0e] = 0x00 // header type 0, single function
        // 0x10-0x27 BARs, 0x30 ROM, 0x34 capabilities pointer, 0x3d interrupt pin: all 0.
        put16(0x2c, id.subsystemVendorID)
        put16(0x2e, id.subsystemID)
        return b
    }
}

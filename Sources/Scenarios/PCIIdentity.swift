/// The PCI identity a device type declares (scenario key `pci:`), which the mount shows in each
/// device's `config` file and a VMM shows its guest.
///
/// Defaults: vendor 0x1b36 (Red Hat, the vendor ID QEMU uses for its own emulated devices) with
/// device 0x7a00, which QEMU's `docs/specs/pci-ids.rst` does not assign, so no VMM or guest
/// driver claims it; class 0xff0000 ("does not fit any defined class") so nothing treats it as a
/// known kind of device; subsystem = vendor/device; revision 1.
public struct PCIIdentity: Sendable, Hashable {
    public var vendorID: UInt16
    public var deviceID: UInt16
    public var subsystemVendorID: UInt16
    public var subsystemID: UInt16
    /// Base class, subclass and programming interface, as the 24-bit value at config offset 9.
    public var classCode: UInt32
    public var revision: UInt8

    public init(vendorID: UInt16 = 0x1b36, deviceID: UInt16 = 0x7a00, subsystemVendorID: UInt16? = nil,
                subsystemID: UInt16? = nil, classCode: UInt32 = 0xff0000, revision: UInt8 = 1) {
        self.vendorID = vendorID
        self.deviceID = deviceID
        self.subsystemVendorID = subsystemVendorID ?? vendorID
        self.subsystemID = subsystemID ?? deviceID
        self.classCode = classCode
        self.revision = revision
    }

    /// What a type without a `pci:` key gets.
    public static let `default` = PCIIdentity()

    /// Keys of the scenario's `pci:` mapping.
    static let keys = ["vendor_id", "device_id", "subsystem_vendor_id", "subsystem_id", "class_code", "revision"]
}

// libmdevsim-vfio: an LD_PRELOAD library that presents the devices of a mounted mdevsim to an
// unmodified VMM as VFIO devices: with a migration v1 region (QEMU 7.2), or, for a device whose
// type speaks v2, with VFIO migration v2 (QEMU 10.0).
//
// Load it with LD_PRELOAD and set, in the VMM's environment:
//   MDEVSIM_VFIO_MOUNT   the mdevsim mountpoint (required; without it every call passes through)
//   MDEVSIM_VFIO_LOG     a file to append a line per emulated call to (optional)
//   MDEVSIM_VFIO_BOUNCE  "1": never map the mount's data section, use the bounce buffer (optional)
//   MDEVSIM_VFIO_PROTOCOL "v1": serve a device speaking v1 and v2 as v1, for a v1-only VMM (optional)
//   MDEVSIM_VFIO_DMA_LOGGING "0": a v2 device offers no device DMA logging (optional)
//
// The VMM's device argument is `sysfsdev=MOUNT/devices/<uuid>` (QEMU: -device vfio-pci,...).
#ifndef MDEVSIM_VFIO_H
#define MDEVSIM_VFIO_H

/// The library's version string, so a loader can tell it is present (dlsym) and which it is.
const char *mdevsim_vfio_version(void);

#endif

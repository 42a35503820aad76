// The migration v2 uAPI that Debian bookworm's <linux/vfio.h> (Linux 6.1) lacks: PRE_COPY and
// MIG_DATA_SIZE, both added after 6.1. Values as in the uAPI; each only if missing, so a newer
// header's own definitions win.
#ifndef MDEVSIM_VFIO_V2_COMPAT_H
#define MDEVSIM_VFIO_V2_COMPAT_H

#include <linux/types.h>
#include <linux/vfio.h>

// PRE_COPY came with its two states in one release (6.2): an enumerator cannot be tested with
// #ifndef, the feature flag can, and it tells whether the states are there too.
#ifndef VFIO_MIGRATION_PRE_COPY
#define VFIO_MIGRATION_PRE_COPY (1 << 2)
#define VFIO_DEVICE_STATE_PRE_COPY 6
#define VFIO_DEVICE_STATE_PRE_COPY_P2P 7
#endif

#ifndef VFIO_MIG_GET_PRECOPY_INFO
struct vfio_precopy_info {
    __u32 argsz;
    __u32 flags;
    __aligned_u64 initial_bytes;
    __aligned_u64 dirty_bytes;
};
#define VFIO_MIG_GET_PRECOPY_INFO _IO(VFIO_TYPE, VFIO_BASE + 21)
#endif

#ifndef VFIO_DEVICE_FEATURE_MIG_DATA_SIZE
struct vfio_device_feature_mig_data_size {
    __aligned_u64 stop_copy_length;
};
#define VFIO_DEVICE_FEATURE_MIG_DATA_SIZE 9
#endif

#endif

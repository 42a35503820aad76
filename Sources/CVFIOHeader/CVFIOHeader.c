#include "CVFIOHeader.h"
#include <stddef.h>
#include <linux/vfio.h>

#define FIELD(f) offsetof(struct vfio_device_migration_info, f), sizeof(((struct vfio_device_migration_info *)0)->f)

cvfio_layout cvfio_header_layout(void) {
    cvfio_layout l = {
        sizeof(struct vfio_device_migration_info),
        FIELD(device_state), FIELD(reserved), FIELD(pending_bytes), FIELD(data_offset), FIELD(data_size),
        VFIO_DEVICE_STATE_V1_STOP, VFIO_DEVICE_STATE_V1_RUNNING, VFIO_DEVICE_STATE_V1_SAVING,
        VFIO_DEVICE_STATE_V1_RESUMING, VFIO_DEVICE_STATE_MASK,
        VFIO_REGION_TYPE_MIGRATION_DEPRECATED, VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED,
        VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE, VFIO_REGION_INFO_FLAG_MMAP,
        VFIO_PCI_NUM_REGIONS,
    };
    return l;
}
int cvfio_state_valid(uint32_t state) { return VFIO_DEVICE_STATE_VALID(state) ? 1 : 0; }
int cvfio_state_is_error(uint32_t state) { return VFIO_DEVICE_STATE_IS_ERROR(state) ? 1 : 0; }
uint32_t cvfio_state_set_error(uint32_t state) { return VFIO_DEVICE_STATE_SET_ERROR(state); }

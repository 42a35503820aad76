// The C compiler's view of the v1 migration header in the system's <linux/vfio.h>
// (Debian linux-libc-dev). Tests compare these numbers with the Swift layout so it can never drift.
#ifndef CVFIOHEADER_H
#define CVFIOHEADER_H
#include <stdint.h>

typedef struct {
    uint64_t struct_size;
    uint64_t off_device_state, size_device_state;
    uint64_t off_reserved, size_reserved;
    uint64_t off_pending_bytes, size_pending_bytes;
    uint64_t off_data_offset, size_data_offset;
    uint64_t off_data_size, size_data_size;
    uint32_t state_stop, state_running, state_saving, state_resuming, state_mask;
    uint32_t region_type_migration, region_subtype_migration;
    uint32_t flag_read, flag_write, flag_mmap;
    uint32_t migration_region_index;
} cvfio_layout;

cvfio_layout cvfio_header_layout(void);
int cvfio_state_valid(uint32_t state);
int cvfio_state_is_error(uint32_t state);
uint32_t cvfio_state_set_error(uint32_t state);
#endif

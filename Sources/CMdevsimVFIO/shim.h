// Internal declarations shared by the shim's files.
#ifndef MDEVSIM_VFIO_SHIM_H
#define MDEVSIM_VFIO_SHIM_H

#include <pthread.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <linux/vfio.h>

// --- the glibc functions we wrap (resolved with dlsym(RTLD_NEXT)) ---
struct real_calls {
    int (*open)(const char *, int, ...);
    int (*open64)(const char *, int, ...);
    int (*openat)(int, const char *, int, ...);
    int (*openat64)(int, const char *, int, ...);
    int (*close)(int);
    int (*dup)(int);
    int (*dup2)(int, int);
    int (*dup3)(int, int, int);
    int (*fcntl)(int, int, ...);
    int (*ioctl)(int, unsigned long, ...);
    ssize_t (*pread)(int, void *, size_t, off_t);
    ssize_t (*pread64)(int, void *, size_t, off_t);
    ssize_t (*pwrite)(int, const void *, size_t, off_t);
    ssize_t (*pwrite64)(int, const void *, size_t, off_t);
    void *(*mmap)(void *, size_t, int, int, int, off_t);
    void *(*mmap64)(void *, size_t, int, int, int, off_t);
    int (*munmap)(void *, size_t);
    int (*madvise)(void *, size_t, int);
};
extern struct real_calls real;
void shim_resolve(void);

// --- configuration and logging (config.c) ---
/// The mount from MDEVSIM_VFIO_MOUNT, or NULL: then the shim emulates nothing.
const char *shim_mount(void);
/// MDEVSIM_VFIO_BOUNCE=1: serve the data section from a bounce buffer even if the mount maps.
int shim_force_bounce(void);
/// MDEVSIM_VFIO_PROTOCOL=v1: serve a device speaking v1 and v2 as v1 (region 9, no v2 features).
int shim_protocol_v1(void);
/// MDEVSIM_VFIO_DMA_LOGGING=0: a v2 device offers no device DMA logging (DMA_LOGGING_* ENOTTY),
/// so the VMM tracks its DMA through the container's VFIO_IOMMU_DIRTY_PAGES.
int shim_dma_logging(void);
void shim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/// Finds the device whose `iommu_group` link ends in `group`; writes its uuid (37 bytes).
int shim_find_group_device(int group, char uuid[64]);
/// The lowercase form of an mdev UUID (`len` bytes of `text`, one trailing newline allowed) in
/// `out`: 0, or -1 for anything that is not one (uuid.c; the grammar of MdevUUID.parse).
int shim_parse_uuid(const char *text, size_t len, char out[37]);
/// Reads a small text/binary file of the mount into buf; returns bytes read or -1 (errno set).
ssize_t shim_read_file(const char *path, void *buf, size_t size);
/// An unsigned number of a top-level key of a flat JSON object; 0 if found.
int shim_json_u64(const char *json, const char *key, uint64_t *value);
/// The first `mmap_areas` entry of migration.info; 0 if there is one.
int shim_json_first_area(const char *json, uint64_t *offset, uint64_t *size);

// --- emulated objects ---
// FD_DATA: a migration v2 data_fd the shim handed out (a real open of the mount's mig_data);
// its object is the device, with a reference.
enum fd_kind { FD_NONE = 0, FD_CONTAINER, FD_GROUP, FD_DEVICE, FD_DATA };

struct dma_mapping {
    uint64_t iova, size, vaddr;
};

#define SHIM_MAX_DMA_DEVICES 16

struct container {
    int refs;
    int iommu_set;          // VFIO_SET_IOMMU done
    int groups;             // groups attached
    int dirty_tracking;     // VFIO_IOMMU_DIRTY_PAGES_FLAG_START seen, not stopped
    struct dma_mapping *maps;
    size_t nmaps, capmaps;
    struct device *dma_devices[SHIM_MAX_DMA_DEVICES]; // devices that write guest memory
};

struct group {
    int refs;
    int number;
    char uuid[64];
    struct container *container;
};

struct device {
    int refs;
    char uuid[64];
    char dir[4096];         // MOUNT/devices/<uuid>
    int mig_fd;             // the mount's migration region file, O_RDWR; -1 on a v2 device
    int v2;                 // the device speaks migration v2 (its directory has mig_state)
    int v2_state_fd, v2_features_fd, v2_size_fd, v2_precopy_fd, v2_dmalog_fd; // its v2 files (migration_v2.c)
    uint8_t config[256];    // PCI config space shadow (from the mount's config file)
    uint64_t region_size, data_offset, data_size;
    int mount_maps;         // migration.info lists an mmap area (the mount can map it)
    pthread_mutex_t lock;   // guards the bounce bookkeeping below
    uint8_t *bounce;        // bounce buffer handed to the VMM instead of the mount's pages
    size_t bounce_len;
    uint64_t bounce_region_off; // region offset the bounce buffer stands for
    uint64_t last_data_offset;  // from the VMM's last data_offset read

    // Device DMA into guest memory (dma.c). Guarded by shim_lock().
    struct container *container;   // the container of the device's group (a reference)
    uint32_t device_state;         // last device_state the VMM read or wrote successfully
    int dma_armed;                 // the VMM has set RUNNING itself (a guest that runs)
    int dma_enabled, dma_thread, dma_stop, dma_unreported;
    uint64_t dma_address, dma_size, dma_rate, dma_seed;
    uint64_t dma_cursor, dma_generation;
    uint64_t *dma_dirty;           // one bit per page of the range, written since last reported
    int dma_logging;               // VFIO_DEVICE_FEATURE_DMA_LOGGING_START done, not stopped
};

/// Table access (interpose.c). Lookups return the object with a reference taken; drop it with
/// shim_put_*. Everything about containers and groups runs under shim_lock().
void shim_lock(void);
void shim_unlock(void);
enum fd_kind shim_fd_kind(int fd);
void *shim_fd_object(int fd, enum fd_kind kind);     // under shim_lock
int shim_fd_install(int fd, enum fd_kind kind, void *obj); // takes a reference; under shim_lock
// A descriptor the entry owns beside it (a data_fd's own open of mig_precopy_info), closed when
// `fd` is; -1 for none, and for dup'd copies. Under shim_lock.
void shim_fd_set_aux(int fd, int aux);
int shim_fd_aux(int fd);
/// A fresh real descriptor to stand for an emulated one (unique number, cheap, close-able).
int shim_backing_fd(void);

// --- containers and groups (container.c) ---
struct container *container_new(void);
struct group *group_new(int number, const char *uuid);
void container_put(struct container *c);  // under shim_lock
void group_put(struct group *g);          // under shim_lock
int container_ioctl(struct container *c, unsigned long request, void *arg);
int group_ioctl(struct group *g, unsigned long request, void *arg);

// --- devices (device.c) ---
struct device *device_open(const char *uuid, struct container *container); // under shim_lock
void device_put(struct device *d);        // under shim_lock
int device_ioctl(struct device *d, unsigned long request, void *arg);
ssize_t device_pread(struct device *d, void *buf, size_t n, off_t off);
ssize_t device_pwrite(struct device *d, const void *buf, size_t n, off_t off);
void *device_mmap(struct device *d, void *addr, size_t len, int prot, int flags, off_t off);
/// Called for every munmap: forgets a mapping (and a bounce buffer) that is going away.
void device_forget_mapping(void *addr, size_t len);
/// Whether [addr, addr+len) overlaps a data-section mapping the shim handed out.
int device_mapping_overlaps(const void *addr, size_t len);

// --- device DMA (dma.c); all under shim_lock ---
/// Reads the device's `dma` file; starts its DMA thread if the scenario gives the type one.
void dma_setup(struct device *d);
/// A device_state value the VMM read or wrote (the DMA runs only while it says RUNNING).
void dma_note_state(struct device *d, uint32_t state, int written);
/// Moves the DMA-dirtied pages of [iova, iova+size) into a VFIO bitmap (pgsize 4KiB) and
/// forgets them; returns how many.
uint64_t dma_collect_dirty(struct container *c, uint64_t iova, uint64_t size, uint64_t *bitmap);
/// The device goes away: unregisters it from its container.
void dma_release(struct device *d);
/// Like dma_collect_dirty for one device's DMA, in units of `pgsize` (a power of two); under
/// shim_lock. For VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT.
uint64_t dma_collect_device(struct device *d, uint64_t iova, uint64_t size, uint64_t pgsize, uint64_t *bitmap);
/// A v2 state: whether it is a running one, and whether the VMM itself just set RUNNING.
void dma_note_running(struct device *d, int running, int vmm_set_running);

// --- migration v2 (migration_v2.c) ---
struct vfio_device_feature;
/// Opens the device's v2 files when its directory has them: 1 (v2), 0 (v1 only), -1 (errno).
int v2_open(struct device *d);
void v2_close(struct device *d);
/// VFIO_DEVICE_FEATURE on the device fd (every feature ENOTTY on a v1 device).
int v2_feature(struct device *d, struct vfio_device_feature *f);
/// An ioctl on one of the data_fds (FD_DATA) the shim handed out.
int v2_data_ioctl(struct device *d, int fd, unsigned long request, void *arg);
/// After VFIO_DEVICE_RESET: a v2 device is RUNNING again.
void v2_note_reset(struct device *d);

// The kernel's vfio-pci places region N at offset N << 40 of the device fd.
#define SHIM_REGION_SHIFT 40
#define SHIM_REGION_INDEX(off) ((uint64_t)(off) >> SHIM_REGION_SHIFT)
#define SHIM_REGION_OFFSET(off) ((uint64_t)(off) & ((1ULL << SHIM_REGION_SHIFT) - 1))
// The first device-specific region index, as <linux/vfio.h> numbers it (Swift:
// RegionLayout.regionIndex, proven equal by MigrationProtocolTests).
#define SHIM_MIGRATION_REGION VFIO_PCI_NUM_REGIONS

#endif

// The emulated VFIO device descriptor of one mdevsim device: a PCI function with no BARs, a
// 256-byte config space read from the mount's `config` file, and the migration v1 region
// (index 9) forwarded to the mount's `migration` file, or, for a device speaking v2, no region 9
// and migration v2 (migration_v2.c).
#define _GNU_SOURCE
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CONFIG_SIZE 256
#define NUM_REGIONS (VFIO_PCI_NUM_REGIONS + 1) // the 9 standard ones + the migration region
#define MAX_LIVE 256

// Every data-section mapping handed out (of the mount, or a bounce buffer), so munmap can
// tell when a bounce buffer goes away and madvise can tell which advice to keep from the kernel.
struct handed_mapping {
    void *addr;
    size_t len;
    struct device *bounce_of; // the device whose bounce buffer this is, or NULL
};
static struct handed_mapping handed[MAX_LIVE];
static int handed_count; // atomic: the fast path of munmap/madvise when there is none

static int fail(int e) {
    errno = e;
    return -1;
}

static uint64_t region_base(unsigned index) { return (uint64_t)index << SHIM_REGION_SHIFT; }

static int open_region(struct device *d);

struct device *device_open(const char *uuid, struct container *container) {
    const char *mount = shim_mount();
    if (!mount) return errno = ENODEV, NULL;
    struct device *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    snprintf(d->uuid, sizeof d->uuid, "%s", uuid);
    snprintf(d->dir, sizeof d->dir, "%s/devices/%s", mount, uuid);
    pthread_mutex_init(&d->lock, NULL);

    d->mig_fd = -1;
    char path[4200];
    snprintf(path, sizeof path, "%s/config", d->dir);
    ssize_t n = shim_read_file(path, d->config, sizeof d->config);
    if (n != CONFIG_SIZE) {
        shim_log("device %s: cannot read %s (%zd bytes): ENODEV", uuid, path, n);
        free(d);
        return errno = ENODEV, NULL;
    }
    int v2 = v2_open(d);
    if (v2 < 0 || (v2 == 0 && open_region(d) != 0)) {
        int saved = errno;
        free(d);
        return errno = saved, NULL;
    }
    // A v2 device offers no region 9: QEMU 10 would take one for v1.
    if (v2) shim_log("device %s: migration v2", uuid);
    // After reset a v1 device is running (the uapi's default state).
    d->device_state = VFIO_DEVICE_STATE_V1_RUNNING;
    d->container = container;
    container->refs++;
    dma_setup(d);
    return d;
}

/// The v1 migration region: its layout from migration.info, and the `migration` file open.
static int open_region(struct device *d) {
    const char *uuid = d->uuid;
    char path[4200];
    ssize_t n;
    char info[4096];
    snprintf(path, sizeof path, "%s/migration.info", d->dir);
    n = shim_read_file(path, info, sizeof info - 1);
    if (n <= 0) {
        shim_log("device %s: cannot read %s: ENODEV", uuid, path);
        return fail(ENODEV);
    }
    info[n] = '\0';
    uint64_t area_offset = 0, area_size = 0;
    if (shim_json_u64(info, "size", &d->region_size) != 0 || shim_json_u64(info, "data_offset", &d->data_offset) != 0 ||
        shim_json_u64(info, "data_size", &d->data_size) != 0 || d->data_offset + d->data_size > d->region_size) {
        shim_log("device %s: migration.info not understood: %s", uuid, info);
        return fail(ENODEV);
    }
    d->mount_maps = shim_json_first_area(info, &area_offset, &area_size) == 0;

    snprintf(path, sizeof path, "%s/migration", d->dir);
    d->mig_fd = real.open(path, O_RDWR | O_CLOEXEC);
    if (d->mig_fd < 0) {
        int saved = errno;
        shim_log("device %s: open %s: %s", uuid, path, strerror(saved));
        return fail(saved);
    }
    shim_log("device %s: region size %llu, data section %llu+%llu, mount %s", uuid,
             (unsigned long long)d->region_size, (unsigned long long)d->data_offset,
             (unsigned long long)d->data_size, d->mount_maps ? "maps it" : "cannot map it");
    return 0;
}

void device_put(struct device *d) {
    if (--d->refs > 0) {
        // Only the DMA thread still holds it: the VMM closed the device; let the thread end.
        if (d->refs == 1 && d->dma_thread) d->dma_stop = 1;
        return;
    }
    dma_release(d);
    for (int i = 0; i < MAX_LIVE; i++)
        if (handed[i].bounce_of == d) handed[i].bounce_of = NULL;
    if (d->mig_fd >= 0) real.close(d->mig_fd);
    v2_close(d);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

/// Records a mapping handed to the VMM. Under shim_lock.
static int remember_mapping(void *addr, size_t len, struct device *bounce_of) {
    for (int i = 0; i < MAX_LIVE; i++) {
        if (!handed[i].addr) {
            handed[i] = (struct handed_mapping){.addr = addr, .len = len, .bounce_of = bounce_of};
            __atomic_add_fetch(&handed_count, 1, __ATOMIC_RELEASE);
            return 0;
        }
    }
    return -1;
}

void device_forget_mapping(void *addr, size_t len) {
    if (__atomic_load_n(&handed_count, __ATOMIC_ACQUIRE) == 0) return;
    (void)len;
    shim_lock();
    for (int i = 0; i < MAX_LIVE; i++) {
        if (handed[i].addr != addr) continue;
        struct device *d = handed[i].bounce_of;
        if (d) {
            pthread_mutex_lock(&d->lock);
            if ((void *)d->bounce == addr) {
                d->bounce = NULL;
                d->bounce_len = 0;
            }
            pthread_mutex_unlock(&d->lock);
        }
        handed[i] = (struct handed_mapping){0};
        __atomic_sub_fetch(&handed_count, 1, __ATOMIC_RELEASE);
    }
    shim_unlock();
}

int device_mapping_overlaps(const void *addr, size_t len) {
    if (__atomic_load_n(&handed_count, __ATOMIC_ACQUIRE) == 0) return 0;
    int found = 0;
    shim_lock();
    for (int i = 0; i < MAX_LIVE && !found; i++) {
        const char *a = handed[i].addr;
        found = a && (const char *)addr < a + handed[i].len && a < (const char *)addr + len;
    }
    shim_unlock();
    return found;
}

// --- ioctls ---

/// VFIO_DEVICE_GET_REGION_INFO. BARs, ROM and VGA are absent (size 0): QEMU then registers
/// no BAR and sizes no ROM. Config is 256 bytes (conventional PCI, so QEMU drops the
/// express capability). The migration region carries a sparse-mmap capability for the data
/// section (so QEMU maps it and never takes its 8-byte access path) and its type capability.
static uint32_t num_regions(const struct device *d) { return d->v2 ? VFIO_PCI_NUM_REGIONS : NUM_REGIONS; }

static int region_info(struct device *d, struct vfio_region_info *info) {
    if (info->argsz < sizeof *info) return fail(EINVAL);
    uint32_t index = info->index;
    if (index >= num_regions(d)) return fail(EINVAL);
    info->offset = region_base(index);
    info->cap_offset = 0;
    info->flags = 0;
    info->size = 0;
    if (index == VFIO_PCI_CONFIG_REGION_INDEX) {
        info->size = CONFIG_SIZE;
        info->flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
        return 0;
    }
    if (index != SHIM_MIGRATION_REGION) return 0;

    info->size = d->region_size;
    info->flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP |
                  VFIO_REGION_INFO_FLAG_CAPS;
    struct vfio_region_info_cap_sparse_mmap sparse;
    struct vfio_region_sparse_mmap_area area;
    struct vfio_region_info_cap_type type;
    memset(&sparse, 0, sizeof sparse);
    memset(&type, 0, sizeof type);
    const uint32_t base = (uint32_t)sizeof *info;
    const uint32_t type_at = (uint32_t)(sizeof sparse + sizeof area);
    uint8_t caps[sizeof sparse + sizeof area + sizeof type];
    sparse.header.id = VFIO_REGION_INFO_CAP_SPARSE_MMAP;
    sparse.header.version = 1;
    sparse.header.next = base + type_at; // offsets count from the start of the info struct
    sparse.nr_areas = 1;
    area.offset = d->data_offset;
    area.size = d->data_size;
    type.header.id = VFIO_REGION_INFO_CAP_TYPE;
    type.header.version = 1;
    type.header.next = 0;
    type.type = VFIO_REGION_TYPE_MIGRATION_DEPRECATED;
    type.subtype = VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED;
    memcpy(caps, &sparse, sizeof sparse);
    memcpy(caps + sizeof sparse, &area, sizeof area);
    memcpy(caps + type_at, &type, sizeof type);
    uint32_t need = base + (uint32_t)sizeof caps;
    if (info->argsz < need) {
        // QEMU retries with the size we ask for.
        info->argsz = need;
        return 0;
    }
    memcpy((char *)info + base, caps, sizeof caps);
    info->cap_offset = base;
    info->argsz = need;
    return 0;
}

/// VFIO_DEVICE_GET_IRQ_INFO. The simulated device raises no interrupt: INTx is listed (as
/// vfio-pci always does) but the config space's interrupt pin is 0 so QEMU never wires it;
/// no MSI/MSI-X vectors; the error index is EINVAL as for a conventional PCI device (QEMU
/// then skips AER without a warning); no request interrupt (the device never asks back).
static int irq_info(struct vfio_irq_info *info) {
    if (info->argsz < sizeof *info) return fail(EINVAL);
    switch (info->index) {
    case VFIO_PCI_INTX_IRQ_INDEX:
        info->flags = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED;
        info->count = 1;
        return 0;
    case VFIO_PCI_MSI_IRQ_INDEX:
    case VFIO_PCI_MSIX_IRQ_INDEX:
        info->flags = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE;
        info->count = 0;
        return 0;
    case VFIO_PCI_REQ_IRQ_INDEX:
        info->flags = VFIO_IRQ_INFO_EVENTFD;
        info->count = 0;
        return 0;
    default:
        return fail(EINVAL);
    }
}

static int device_reset(struct device *d) {
    char path[4200];
    snprintf(path, sizeof path, "%s/reset", d->dir);
    int fd = real.open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = write(fd, "1", 1);
    int saved = errno;
    real.close(fd);
    shim_log("device %s RESET -> %s", d->uuid, n == 1 ? "ok" : strerror(saved));
    if (n != 1) return fail(saved ? saved : EIO);
    if (d->v2) v2_note_reset(d);
    return 0;
}

int device_ioctl(struct device *d, unsigned long request, void *arg) {
    switch (request) {
    case VFIO_DEVICE_GET_INFO: {
        struct vfio_device_info *info = arg;
        if (!info) return fail(EFAULT);
        if (info->argsz < offsetof(struct vfio_device_info, cap_offset)) return fail(EINVAL);
        // A PCI function that can be reset; no device capabilities.
        info->flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET;
        info->num_regions = num_regions(d);
        info->num_irqs = VFIO_PCI_NUM_IRQS;
        if (info->argsz >= sizeof *info) info->cap_offset = 0;
        return 0;
    }
    case VFIO_DEVICE_GET_REGION_INFO:
        return arg ? region_info(d, arg) : fail(EFAULT);
    case VFIO_DEVICE_GET_IRQ_INFO:
        return arg ? irq_info(arg) : fail(EFAULT);
    case VFIO_DEVICE_SET_IRQS: {
        // Accepted and ignored: with no interrupt source there is nothing to wire. Only the
        // header is checked; QEMU only disables INTx here (on reset).
        struct vfio_irq_set *s = arg;
        if (!s) return fail(EFAULT);
        if (s->argsz < sizeof *s || s->index >= VFIO_PCI_NUM_IRQS) return fail(EINVAL);
        shim_log("device %s SET_IRQS index %u flags 0x%x count %u", d->uuid, s->index, s->flags, s->count);
        return 0;
    }
    case VFIO_DEVICE_RESET:
        return device_reset(d);
    case VFIO_DEVICE_FEATURE:
        return v2_feature(d, arg);
    default:
        // Includes VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: an mdev has no hot reset.
        shim_log("device %s ioctl 0x%lx: ENOTTY", d->uuid, request);
        return fail(ENOTTY);
    }
}

// --- region access ---

// Config bytes the guest/QEMU may change: command register, cache line size, latency timer,
// interrupt line. Everything else (ids, BARs, ROM, status) is read-only, as on a device with
// no BARs: in particular a ROM-sizing write of all ones reads back 0, so QEMU finds no ROM.
static int config_writable(uint64_t offset) {
    return offset == 0x04 || offset == 0x05 || offset == 0x0c || offset == 0x0d || offset == 0x3c;
}

static ssize_t full_io(int fd, void *buf, size_t n, uint64_t off, int write_it) {
    size_t done = 0;
    while (done < n) {
        ssize_t r = write_it ? real.pwrite64(fd, (char *)buf + done, n - done, (off_t)(off + done))
                             : real.pread64(fd, (char *)buf + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) return fail(EIO);
        done += (size_t)r;
    }
    return (ssize_t)done;
}

/// Moves one chunk between the bounce buffer and the region at the last data_offset read.
/// Save (`drain` 0, "fill"): called right after the VMM read data_size, before it reads the
/// chunk from "the mapping". Resume (`drain` 1): the chunk the VMM stored into the bounce buffer,
/// written to the region before its data_size write is forwarded (which applies the chunk).
static int bounce_move(struct device *d, uint64_t size, int drain) {
    pthread_mutex_lock(&d->lock);
    int rc = 0;
    uint64_t at = d->last_data_offset;
    if (d->bounce && size > 0) {
        if (at < d->bounce_region_off || at + size > d->bounce_region_off + d->bounce_len) {
            rc = fail(EINVAL);
        } else if (full_io(d->mig_fd, d->bounce + (at - d->bounce_region_off), size, at, drain) < 0) {
            rc = -1;
        }
        shim_log("device %s bounce %s %llu@%llu -> %s", d->uuid, drain ? "drain" : "fill",
                 (unsigned long long)size, (unsigned long long)at, rc == 0 ? "ok" : strerror(errno));
    }
    pthread_mutex_unlock(&d->lock);
    return rc;
}

// Header field offsets, from <linux/vfio.h> as the kernel has them (never written down here).
#define FIELD_OFFSET(f) offsetof(struct vfio_device_migration_info, f)
#define OFF_DEVICE_STATE FIELD_OFFSET(device_state)
#define OFF_DATA_OFFSET FIELD_OFFSET(data_offset)
#define OFF_DATA_SIZE FIELD_OFFSET(data_size)

static const char *field_name(uint64_t roff) {
    if (roff == OFF_DEVICE_STATE) return "device_state";
    if (roff == FIELD_OFFSET(reserved)) return "reserved";
    if (roff == FIELD_OFFSET(pending_bytes)) return "pending_bytes";
    if (roff == OFF_DATA_OFFSET) return "data_offset";
    if (roff == OFF_DATA_SIZE) return "data_size";
    return "data";
}

static uint64_t value_of(const void *buf, size_t n) {
    uint64_t v = 0;
    memcpy(&v, buf, n < sizeof v ? n : sizeof v);
    return v;
}

ssize_t device_pread(struct device *d, void *buf, size_t n, off_t off) {
    uint64_t index = SHIM_REGION_INDEX(off), roff = SHIM_REGION_OFFSET(off);
    if (index == VFIO_PCI_CONFIG_REGION_INDEX) {
        if (roff >= CONFIG_SIZE) return 0;
        size_t count = n < CONFIG_SIZE - roff ? n : (size_t)(CONFIG_SIZE - roff);
        pthread_mutex_lock(&d->lock);
        memcpy(buf, d->config + roff, count);
        pthread_mutex_unlock(&d->lock);
        return (ssize_t)count;
    }
    if (index != SHIM_MIGRATION_REGION || d->mig_fd < 0) return fail(EINVAL);
    // One to one: same offset within the region, same size.
    ssize_t r = real.pread64(d->mig_fd, buf, n, (off_t)roff);
    int saved = errno;
    // Every access the VMM makes is logged (the bounce buffer's own transfers are not: they do
    // not come through here); a data-section access means the VMM is on its slow path.
    shim_log("device %s read %s (%zu@%llu) -> %s 0x%llx", d->uuid, field_name(roff), n, (unsigned long long)roff,
                 r < 0 ? strerror(saved) : "ok", r < 0 ? 0ULL : (unsigned long long)value_of(buf, (size_t)r));
    errno = saved;
    if (r == 4 && roff == OFF_DEVICE_STATE) {
        shim_lock();
        dma_note_state(d, (uint32_t)value_of(buf, 4), 0);
        shim_unlock();
    } else if (r == 8 && roff == OFF_DATA_OFFSET) {
        pthread_mutex_lock(&d->lock);
        d->last_data_offset = value_of(buf, 8);
        pthread_mutex_unlock(&d->lock);
    } else if (r == 8 && roff == OFF_DATA_SIZE && bounce_move(d, value_of(buf, 8), 0) != 0) {
        return -1;
    }
    return r;
}

ssize_t device_pwrite(struct device *d, const void *buf, size_t n, off_t off) {
    uint64_t index = SHIM_REGION_INDEX(off), roff = SHIM_REGION_OFFSET(off);
    if (index == VFIO_PCI_CONFIG_REGION_INDEX) {
        if (roff >= CONFIG_SIZE) return fail(EINVAL);
        size_t count = n < CONFIG_SIZE - roff ? n : (size_t)(CONFIG_SIZE - roff);
        pthread_mutex_lock(&d->lock);
        for (size_t i = 0; i < count; i++)
            if (config_writable(roff + i)) d->config[roff + i] = ((const uint8_t *)buf)[i];
        pthread_mutex_unlock(&d->lock);
        return (ssize_t)count;
    }
    if (index != SHIM_MIGRATION_REGION || d->mig_fd < 0) return fail(EINVAL);
    if (n == 8 && roff == OFF_DATA_SIZE && bounce_move(d, value_of(buf, 8), 1) != 0) return -1;
    ssize_t r = real.pwrite64(d->mig_fd, buf, n, (off_t)roff);
    int saved = errno;
    if (r == 4 && roff == OFF_DEVICE_STATE) {
        // Under the table lock, so a DMA burst is either wholly before the new state (and its
        // pages are in the next bitmap) or does not happen.
        shim_lock();
        dma_note_state(d, (uint32_t)value_of(buf, 4), 1);
        shim_unlock();
    }
    shim_log("device %s write %s (%zu@%llu) 0x%llx -> %s", d->uuid, field_name(roff), n, (unsigned long long)roff,
                 (unsigned long long)value_of(buf, n), r < 0 ? strerror(saved) : "ok");
    errno = saved;
    return r;
}

void *device_mmap(struct device *d, void *addr, size_t len, int prot, int flags, off_t off) {
    uint64_t index = SHIM_REGION_INDEX(off), roff = SHIM_REGION_OFFSET(off);
    if (index != SHIM_MIGRATION_REGION || d->mig_fd < 0 || roff < d->data_offset || roff + len > d->region_size) {
        errno = EINVAL;
        return MAP_FAILED;
    }
    if (d->mount_maps && !shim_force_bounce()) {
        void *p = real.mmap(addr, len, prot, flags, d->mig_fd, (off_t)roff);
        shim_log("device %s mmap %zu@%llu of the mount -> %s", d->uuid, len, (unsigned long long)roff,
                 p == MAP_FAILED ? strerror(errno) : "mapped");
        if (p != MAP_FAILED) {
            shim_lock();
            int rc = remember_mapping(p, len, NULL);
            shim_unlock();
            if (rc == 0) return p;
            real.munmap(p, len);
            errno = ENOMEM;
            return MAP_FAILED;
        }
    }
    // The bounce buffer: anonymous shared memory the VMM uses as if it were the data section;
    // the shim moves each chunk with one large pread (save) or pwrite (resume).
    void *p = real.mmap(addr, len, prot, MAP_SHARED | MAP_ANONYMOUS | (flags & MAP_FIXED), -1, 0);
    if (p == MAP_FAILED) return p;
    shim_lock();
    if (remember_mapping(p, len, d) != 0) {
        shim_unlock();
        real.munmap(p, len);
        errno = ENOMEM;
        return MAP_FAILED;
    }
    pthread_mutex_lock(&d->lock);
    d->bounce = p;
    d->bounce_len = len;
    d->bounce_region_off = roff;
    pthread_mutex_unlock(&d->lock);
    shim_unlock();
    shim_log("device %s mmap %zu@%llu -> bounce buffer", d->uuid, len, (unsigned long long)roff);
    return p;
}

// The emulated VFIO container (/dev/vfio/vfio) and group (/dev/vfio/<N>) descriptors.
// Every function here runs under shim_lock().
#define _GNU_SOURCE
#include "shim.h"

#include <errno.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Page sizes the emulated IOMMU maps and tracks: 4 KiB (QEMU needs its host page size among
// the dirty-tracking sizes, or it disables migration), plus 2 MiB and 1 GiB for mappings.
#define SHIM_IOVA_PGSIZES ((1ULL << 12) | (1ULL << 21) | (1ULL << 30))
#define SHIM_DIRTY_PGSIZE (1ULL << 12)
// Largest bitmap one DIRTY_PAGES call may ask for: the kernel's 256 MiB (covers 8 TiB of 4K pages).
#define SHIM_MAX_DIRTY_BITMAP (256ULL << 20)

struct container *container_new(void) { return calloc(1, sizeof(struct container)); }

struct group *group_new(int number, const char *uuid) {
    struct group *g = calloc(1, sizeof(struct group));
    if (!g) return NULL;
    g->number = number;
    snprintf(g->uuid, sizeof g->uuid, "%s", uuid);
    return g;
}

void container_put(struct container *c) {
    if (--c->refs > 0) return;
    free(c->maps);
    free(c);
}

static void group_detach(struct group *g) {
    if (!g->container) return;
    struct container *c = g->container;
    g->container = NULL;
    // The kernel drops the IOMMU (and its mappings) when the last group leaves.
    if (--c->groups == 0) {
        c->iommu_set = 0;
        c->nmaps = 0;
        c->dirty_tracking = 0;
    }
    container_put(c);
}

void group_put(struct group *g) {
    if (--g->refs > 0) return;
    group_detach(g);
    free(g);
}

static int fail(int e) {
    errno = e;
    return -1;
}

// --- DMA mappings ---

static int map_dma(struct container *c, struct vfio_iommu_type1_dma_map *m) {
    if (m->argsz < sizeof *m) return fail(EINVAL);
    if (!c->iommu_set) return fail(EINVAL);
    if (m->size == 0 || (m->iova | m->size | m->vaddr) & (SHIM_DIRTY_PGSIZE - 1)) return fail(EINVAL);
    // Overlapping an existing mapping is EEXIST in the kernel's type1 driver.
    for (size_t i = 0; i < c->nmaps; i++) {
        const struct dma_mapping *x = &c->maps[i];
        if (m->iova < x->iova + x->size && x->iova < m->iova + m->size) return fail(EEXIST);
    }
    if (c->nmaps == c->capmaps) {
        size_t cap = c->capmaps ? c->capmaps * 2 : 32;
        struct dma_mapping *maps = realloc(c->maps, cap * sizeof *maps);
        if (!maps) return fail(ENOMEM);
        c->maps = maps;
        c->capmaps = cap;
    }
    c->maps[c->nmaps++] = (struct dma_mapping){.iova = m->iova, .size = m->size, .vaddr = m->vaddr};
    shim_log("MAP_DMA iova 0x%llx size 0x%llx vaddr 0x%llx", (unsigned long long)m->iova,
             (unsigned long long)m->size, (unsigned long long)m->vaddr);
    return 0;
}

/// Fills a dirty bitmap for [iova, iova+size): the pages the devices' DMA wrote since the last
/// report (emulating the kernel's pinned-page scope: only what a device touched is dirty). The
/// caller's buffer is written in full, as the kernel does.
static int fill_bitmap(struct container *c, uint64_t iova, uint64_t size, struct vfio_bitmap *b) {
    if (b->pgsize != SHIM_DIRTY_PGSIZE) return fail(EINVAL);
    uint64_t pages = size / b->pgsize;
    uint64_t need = ((pages + 63) / 64) * 8;
    if (b->size < need || !b->data) return fail(EINVAL);
    memset(b->data, 0, need);
    uint64_t dirty = dma_collect_dirty(c, iova, size, (uint64_t *)b->data);
    if (dirty)
        shim_log("dirty bitmap iova 0x%llx size 0x%llx: %llu pages dirty (device DMA)", (unsigned long long)iova,
                 (unsigned long long)size, (unsigned long long)dirty);
    return 0;
}

static int unmap_dma(struct container *c, struct vfio_iommu_type1_dma_unmap *u) {
    if (u->argsz < sizeof *u) return fail(EINVAL);
    if (u->flags & ~(uint32_t)VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) return fail(EINVAL);
    uint64_t start = u->iova, end = u->iova + u->size, unmapped = 0;
    // Unmapping removes whole mappings inside the range; the kernel refuses to split one
    // (type1v2), so a mapping that straddles the range's edge is EINVAL.
    for (size_t i = 0; i < c->nmaps; i++) {
        const struct dma_mapping *x = &c->maps[i];
        int overlaps = x->iova < end && start < x->iova + x->size;
        if (overlaps && (x->iova < start || x->iova + x->size > end)) return fail(EINVAL);
    }
    if (u->flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) {
        if (u->argsz < sizeof *u + sizeof(struct vfio_bitmap) || !c->dirty_tracking) return fail(EINVAL);
        if (fill_bitmap(c, u->iova, u->size, (struct vfio_bitmap *)u->data) != 0) return -1;
    }
    size_t kept = 0;
    for (size_t i = 0; i < c->nmaps; i++) {
        const struct dma_mapping x = c->maps[i];
        if (x.iova >= start && x.iova + x.size <= end) {
            unmapped += x.size;
        } else {
            c->maps[kept++] = x;
        }
    }
    c->nmaps = kept;
    shim_log("UNMAP_DMA iova 0x%llx size 0x%llx -> 0x%llx", (unsigned long long)u->iova,
             (unsigned long long)u->size, (unsigned long long)unmapped);
    u->size = unmapped;
    return 0;
}

static int dirty_pages(struct container *c, struct vfio_iommu_type1_dirty_bitmap *d) {
    if (d->argsz < sizeof *d) return fail(EINVAL);
    uint32_t op = d->flags & (VFIO_IOMMU_DIRTY_PAGES_FLAG_START | VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP |
                              VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP);
    // Exactly one operation per call, as the kernel demands.
    if (op != d->flags || __builtin_popcount(op) != 1) return fail(EINVAL);
    if (!c->iommu_set) return fail(EINVAL);
    if (op == VFIO_IOMMU_DIRTY_PAGES_FLAG_START) {
        c->dirty_tracking = 1;
        shim_log("DIRTY_PAGES start");
        return 0;
    }
    if (op == VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP) {
        c->dirty_tracking = 0;
        shim_log("DIRTY_PAGES stop");
        return 0;
    }
    if (d->argsz < sizeof *d + sizeof(struct vfio_iommu_type1_dirty_bitmap_get)) return fail(EINVAL);
    if (!c->dirty_tracking) return fail(EINVAL);
    struct vfio_iommu_type1_dirty_bitmap_get *r = (struct vfio_iommu_type1_dirty_bitmap_get *)d->data;
    // The kernel answers only for ranges that are exactly covered by mappings.
    uint64_t covered = 0;
    for (size_t i = 0; i < c->nmaps; i++) {
        const struct dma_mapping *x = &c->maps[i];
        uint64_t lo = x->iova > r->iova ? x->iova : r->iova;
        uint64_t hi = (x->iova + x->size) < (r->iova + r->size) ? x->iova + x->size : r->iova + r->size;
        if (lo < hi) covered += hi - lo;
    }
    if (r->size == 0 || covered != r->size) return fail(EINVAL);
    return fill_bitmap(c, r->iova, r->size, &r->bitmap);
}

/// VFIO_IOMMU_GET_INFO: page sizes and a capability chain of one IOVA range (all of the
/// 64-bit space but the last page) and the migration capability, which is what makes QEMU
/// consider dirty tracking supported (and so allow migrating a VFIO device at all).
static int iommu_info(struct container *c, struct vfio_iommu_type1_info *info) {
    if (info->argsz < offsetof(struct vfio_iommu_type1_info, cap_offset)) return fail(EINVAL);
    if (!c->iommu_set) return fail(EINVAL);
    // The chain, laid out as the kernel does: each capability's `next` is an offset from
    // the start of the info struct.
    struct vfio_iommu_type1_info_cap_iova_range iova;
    struct vfio_iova_range range;
    struct vfio_iommu_type1_info_cap_migration mig;
    memset(&iova, 0, sizeof iova);
    memset(&mig, 0, sizeof mig);
    const size_t base = sizeof(struct vfio_iommu_type1_info);
    const size_t mig_at = sizeof iova + sizeof range;
    uint8_t caps[sizeof iova + sizeof range + sizeof mig];
    iova.header.id = VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE;
    iova.header.version = 1;
    iova.header.next = (uint32_t)(base + mig_at);
    iova.nr_iovas = 1;
    range.start = 0;
    range.end = ~0ULL - SHIM_DIRTY_PGSIZE; // all of the 64-bit space but its last page
    mig.header.id = VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION;
    mig.header.version = 1;
    mig.header.next = 0;
    mig.flags = 0;
    mig.pgsize_bitmap = SHIM_DIRTY_PGSIZE;
    mig.max_dirty_bitmap_size = SHIM_MAX_DIRTY_BITMAP;
    memcpy(caps, &iova, sizeof iova);
    memcpy(caps + sizeof iova, &range, sizeof range);
    memcpy(caps + mig_at, &mig, sizeof mig);

    uint32_t argsz = info->argsz;
    info->flags = VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS;
    info->iova_pgsizes = SHIM_IOVA_PGSIZES;
    if (argsz < sizeof *info) {
        // An old caller without cap_offset: no chain.
        info->flags = VFIO_IOMMU_INFO_PGSIZES;
        return 0;
    }
    if (argsz < base + sizeof caps) {
        // Too small for the chain: say how much is needed, as the kernel does.
        info->argsz = (uint32_t)(base + sizeof caps);
        info->cap_offset = 0;
        return 0;
    }
    memcpy((char *)info + base, caps, sizeof caps);
    info->cap_offset = (uint32_t)base;
    info->argsz = (uint32_t)(base + sizeof caps);
    return 0;
}

int container_ioctl(struct container *c, unsigned long request, void *arg) {
    switch (request) {
    case VFIO_GET_API_VERSION:
        return VFIO_API_VERSION;
    case VFIO_CHECK_EXTENSION: {
        // Type1 and type1v2 only; no no-iommu, no sPAPR, no vaddr update.
        unsigned long ext = (unsigned long)arg;
        return ext == VFIO_TYPE1_IOMMU || ext == VFIO_TYPE1v2_IOMMU;
    }
    case VFIO_SET_IOMMU: {
        unsigned long type = (unsigned long)arg;
        // The kernel needs a group in the container first, and sets the IOMMU once.
        if (c->groups == 0 || c->iommu_set) return fail(EINVAL);
        if (type != VFIO_TYPE1_IOMMU && type != VFIO_TYPE1v2_IOMMU) return fail(ENODEV);
        c->iommu_set = 1;
        shim_log("SET_IOMMU %lu", type);
        return 0;
    }
    case VFIO_IOMMU_GET_INFO:
        return arg ? iommu_info(c, arg) : fail(EFAULT);
    case VFIO_IOMMU_MAP_DMA:
        return arg ? map_dma(c, arg) : fail(EFAULT);
    case VFIO_IOMMU_UNMAP_DMA:
        return arg ? unmap_dma(c, arg) : fail(EFAULT);
    case VFIO_IOMMU_DIRTY_PAGES:
        return arg ? dirty_pages(c, arg) : fail(EFAULT);
    default:
        shim_log("container ioctl 0x%lx: ENOTTY", request);
        return fail(ENOTTY);
    }
}

int group_ioctl(struct group *g, unsigned long request, void *arg) {
    switch (request) {
    case VFIO_GROUP_GET_STATUS: {
        struct vfio_group_status *s = arg;
        if (!s) return fail(EFAULT);
        if (s->argsz < sizeof *s) return fail(EINVAL);
        // Every emulated group is one mdev device: always viable.
        s->flags = VFIO_GROUP_FLAGS_VIABLE | (g->container ? VFIO_GROUP_FLAGS_CONTAINER_SET : 0);
        return 0;
    }
    case VFIO_GROUP_SET_CONTAINER: {
        if (!arg) return fail(EFAULT);
        int fd = *(const int *)arg;
        struct container *c = shim_fd_object(fd, FD_CONTAINER);
        if (!c) return fail(EBADF);
        if (g->container) return fail(EINVAL);
        g->container = c;
        c->refs++;
        c->groups++;
        shim_log("group %d SET_CONTAINER fd %d", g->number, fd);
        return 0;
    }
    case VFIO_GROUP_UNSET_CONTAINER:
        if (!g->container) return fail(EINVAL);
        group_detach(g);
        shim_log("group %d UNSET_CONTAINER", g->number);
        return 0;
    case VFIO_GROUP_GET_DEVICE_FD: {
        const char *name = arg;
        if (!name) return fail(EFAULT);
        // The kernel wants the group in a container with an IOMMU before handing out devices.
        if (!g->container || !g->container->iommu_set) return fail(EINVAL);
        if (strcmp(name, g->uuid) != 0) return fail(ENODEV);
        struct device *d = device_open(g->uuid, g->container);
        if (!d) return -1;
        int fd = shim_backing_fd();
        if (fd < 0 || shim_fd_install(fd, FD_DEVICE, d) != 0) {
            int saved = errno;
            if (fd >= 0) real.close(fd);
            // Drop the device: take the reference the table would have held, then put it (a
            // DMA thread, if one started, holds its own and ends).
            d->refs++;
            device_put(d);
            errno = saved;
            return -1;
        }
        shim_log("group %d GET_DEVICE_FD %s -> fd %d", g->number, name, fd);
        return fd;
    }
    default:
        shim_log("group ioctl 0x%lx: ENOTTY", request);
        return fail(ENOTTY);
    }
}

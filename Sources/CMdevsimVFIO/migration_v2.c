// VFIO migration v2 on the emulated device fd, one to one onto the mount's v2 files
// (docs/vmm-guide.md, "The v2 contract"): VFIO_DEVICE_FEATURE GET MIGRATION is a pread of
// mig_features, MIG_DEVICE_STATE GET/SET a pread/pwrite of mig_state, MIG_DATA_SIZE a pread of
// mig_data_size; a SET that starts a session returns an open of mig_data as the data_fd, and
// VFIO_MIG_GET_PRECOPY_INFO on that fd is a pread of mig_precopy_info. Every decision (which
// arcs, which errno, what the stream holds) is the mount's; the shim only moves values. Device
// DMA logging START/STOP/REPORT are pwrites of one command each to mig_dma_logging, which
// checks and records them; a REPORT it allows is answered from the DMA the shim itself
// performs for the device (dma.c).
#define _GNU_SOURCE
#include "shim.h"
#include "vfio_v2_compat.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fail(int e) {
    errno = e;
    return -1;
}

static int open_file(struct device *d, const char *name, int flags) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", d->dir, name);
    return real.open(path, flags | O_CLOEXEC);
}

int v2_open(struct device *d) {
    d->v2_state_fd = d->v2_features_fd = d->v2_size_fd = d->v2_precopy_fd = d->v2_dmalog_fd = -1;
    char path[4200];
    snprintf(path, sizeof path, "%s/mig_state", d->dir);
    // The mount gives mig_state only to a device whose type speaks v2: without it, v1 alone.
    // A device speaking both is v2, as under a kernel of 5.18 or later, unless the VMM is one
    // that only knows v1 (QEMU 7.2: `mdevsim qemu-args` then sets MDEVSIM_VFIO_PROTOCOL=v1).
    if (access(path, F_OK) != 0 || shim_protocol_v1()) return 0;
    d->v2_state_fd = open_file(d, "mig_state", O_RDWR);
    d->v2_features_fd = open_file(d, "mig_features", O_RDONLY);
    d->v2_size_fd = open_file(d, "mig_data_size", O_RDONLY);
    d->v2_precopy_fd = open_file(d, "mig_precopy_info", O_RDONLY);
    d->v2_dmalog_fd = open_file(d, "mig_dma_logging", O_RDWR);
    if (d->v2_state_fd < 0 || d->v2_features_fd < 0 || d->v2_size_fd < 0 || d->v2_precopy_fd < 0 || d->v2_dmalog_fd < 0) {
        int saved = errno;
        shim_log("device %s: cannot open its v2 files: %s", d->uuid, strerror(saved));
        v2_close(d);
        return fail(saved);
    }
    d->v2 = 1;
    return 1;
}

void v2_close(struct device *d) {
    int *fds[] = {&d->v2_state_fd, &d->v2_features_fd, &d->v2_size_fd, &d->v2_precopy_fd, &d->v2_dmalog_fd};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
        if (*fds[i] >= 0) real.close(*fds[i]);
        *fds[i] = -1;
    }
}

/// One whole value of a v2 file at offset 0 (the mount refuses partial reads).
static int read_value(int fd, void *value, size_t size) {
    ssize_t n;
    do n = real.pread64(fd, value, size, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) return -1;
    return (size_t)n == size ? 0 : fail(EIO);
}

static const char *state_name(uint32_t s) {
    static const char *names[] = {"ERROR", "STOP", "RUNNING", "STOP_COPY", "RESUMING", "RUNNING_P2P", "PRE_COPY", "PRE_COPY_P2P"};
    return s < sizeof names / sizeof names[0] ? names[s] : "?";
}

static int is_saving(uint32_t s) {
    return s == VFIO_DEVICE_STATE_PRE_COPY || s == VFIO_DEVICE_STATE_PRE_COPY_P2P || s == VFIO_DEVICE_STATE_STOP_COPY;
}

/// The uAPI's running states (RUNNING_P2P only gives up peer-to-peer DMA): the device's DMA
/// into guest memory runs in these and stops in the others.
static int is_running(uint32_t s) {
    return s == VFIO_DEVICE_STATE_RUNNING || s == VFIO_DEVICE_STATE_RUNNING_P2P || s == VFIO_DEVICE_STATE_PRE_COPY ||
           s == VFIO_DEVICE_STATE_PRE_COPY_P2P;
}

/// Tells the DMA (dma.c) the state the device is in. As for v1, the VMM's own SET of RUNNING
/// arms it: a paused source or a destination before `cont` never ran its guest.
static void note_state(struct device *d, uint32_t s, int vmm_set) {
    shim_lock();
    dma_note_running(d, is_running(s), vmm_set && s == VFIO_DEVICE_STATE_RUNNING);
    shim_unlock();
}

void v2_note_reset(struct device *d) { note_state(d, VFIO_DEVICE_STATE_RUNNING, 0); }

/// The kernel's vfio_check_feature: 1 to go on, 0 for an answered PROBE, -1 with errno.
static int check_feature(uint32_t flags, size_t argsz, uint32_t supported_ops, size_t minsz) {
    if ((flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET)) & ~supported_ops) return fail(EINVAL);
    if (flags & VFIO_DEVICE_FEATURE_PROBE) return 0;
    // Without PROBE one of GET or SET must be asked.
    if (!(flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET))) return fail(EINVAL);
    if (argsz < minsz) return fail(EINVAL);
    return 1;
}

/// The data_fd of a new session: an open of mig_data, in the descriptor table as FD_DATA so
/// PRECOPY_INFO reaches us and close forgets it. O_CLOEXEC as the kernel's anon fd.
static int open_data_fd(struct device *d, uint32_t target) {
    int fd = open_file(d, "mig_data", target == VFIO_DEVICE_STATE_RESUMING ? O_WRONLY : O_RDONLY);
    if (fd < 0) return -1;
    // A save session's data_fd answers PRECOPY_INFO for its own session: an open of
    // mig_precopy_info made now is bound to it, so a stale data_fd's query reaches the mount
    // as stale (ENODEV, recorded). Without it, the device's open answers for the current one.
    int precopy = target == VFIO_DEVICE_STATE_RESUMING ? -1 : open_file(d, "mig_precopy_info", O_RDONLY);
    shim_lock();
    int rc = shim_fd_install(fd, FD_DATA, d);
    if (rc == 0 && precopy >= 0) shim_fd_set_aux(fd, precopy);
    shim_unlock();
    if (rc < 0 && precopy >= 0) real.close(precopy);
    if (rc < 0) {
        int saved = errno;
        real.close(fd);
        return fail(saved);
    }
    return fd;
}

static int mig_device_state(struct device *d, uint32_t flags, struct vfio_device_feature_mig_state *arg) {
    struct vfio_device_feature_mig_state mig;
    memcpy(&mig, arg, sizeof mig);
    if (flags & VFIO_DEVICE_FEATURE_GET) {
        uint32_t raw;
        int rc = read_value(d->v2_state_fd, &raw, sizeof raw);
        int saved = errno;
        shim_log("device %s v2 GET state -> %s", d->uuid, rc == 0 ? state_name(raw) : strerror(saved));
        if (rc != 0) return fail(saved);
        mig.device_state = raw;
        mig.data_fd = -1;
        memcpy(arg, &mig, sizeof mig);
        return 0;
    }
    // The contract's rule (FileV2Transport has the same): a SET starts a session when its walk
    // enters the saving states from outside them, or enters RESUMING.
    uint32_t before = 0, target = mig.device_state;
    if (read_value(d->v2_state_fd, &before, sizeof before) != 0) return -1;
    ssize_t n;
    do n = real.pwrite64(d->v2_state_fd, &target, sizeof target, 0);
    while (n < 0 && errno == EINTR);
    int saved = errno;
    // QEMU zero-fills the struct: a data_fd left at 0 would be adopted as stdin.
    mig.data_fd = -1;
    if (n != (ssize_t)sizeof target) {
        if (n >= 0) saved = EIO;
        // A failed walk may have stopped part way: the DMA follows where the device is now.
        uint32_t now = before;
        if (read_value(d->v2_state_fd, &now, sizeof now) == 0) note_state(d, now, 0);
        shim_log("device %s v2 SET %s from %s -> %s (now %s)", d->uuid, state_name(target), state_name(before),
                 strerror(saved), state_name(now));
        memcpy(arg, &mig, sizeof mig);
        return fail(saved);
    }
    note_state(d, target, 1);
    int starts = (is_saving(target) && !is_saving(before)) ||
                 (target == VFIO_DEVICE_STATE_RESUMING && before != VFIO_DEVICE_STATE_RESUMING);
    if (starts) {
        mig.data_fd = open_data_fd(d, target);
        if (mig.data_fd < 0) {
            saved = errno;
            shim_log("device %s v2 SET %s from %s -> ok, but mig_data: %s", d->uuid, state_name(target), state_name(before),
                     strerror(saved));
            memcpy(arg, &mig, sizeof mig);
            return fail(saved);
        }
    }
    shim_log("device %s v2 SET %s from %s -> ok data_fd %d", d->uuid, state_name(target), state_name(before), mig.data_fd);
    memcpy(arg, &mig, sizeof mig);
    return 0;
}

static const char *feature_name(uint32_t feature) {
    switch (feature) {
    case VFIO_DEVICE_FEATURE_MIGRATION: return "MIGRATION";
    case VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE: return "MIG_DEVICE_STATE";
    case VFIO_DEVICE_FEATURE_MIG_DATA_SIZE: return "MIG_DATA_SIZE";
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_START: return "DMA_LOGGING_START";
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP: return "DMA_LOGGING_STOP";
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT: return "DMA_LOGGING_REPORT";
    default: return "other";
    }
}

// MIGRATION's flags and MIG_DATA_SIZE's stop_copy_length: each struct is one u64.
_Static_assert(sizeof(struct vfio_device_feature_migration) == 8, "one u64");
_Static_assert(sizeof(struct vfio_device_feature_mig_data_size) == 8, "one u64");

/// A GET-only feature whose data is the one u64 of a v2 file.
static int get_u64(uint32_t flags, size_t argsz, int fd, struct vfio_device_feature *f) {
    int rc = check_feature(flags, argsz, VFIO_DEVICE_FEATURE_GET, sizeof(uint64_t));
    if (rc != 1) return rc;
    uint64_t value;
    if (read_value(fd, &value, sizeof value) != 0) return -1;
    memcpy(f->data, &value, sizeof value);
    return 0;
}

// Device DMA logging. The device logs its DMA (dma.c) in 4 KiB pages; whether a call is
// allowed, and with which errno it fails, is the mount's (mig_dma_logging, the checker's rules).
#define LOG_MAX_RANGES 256 // the kernel guarantees at least a page of ranges: 4096 / 16
#define LOG_OP_START 1
#define LOG_OP_STOP 2
#define LOG_OP_REPORT 3

/// One mig_dma_logging command: header (op, count, page size) and `count` (iova, length) pairs.
/// 0, or -1 with the mount's errno.
static int logging_command(struct device *d, uint32_t op, uint64_t page_size,
                           const struct vfio_device_feature_dma_logging_range *ranges, uint32_t count) {
    size_t size = 16 + (size_t)count * 16;
    uint8_t *record = malloc(size);
    if (!record) return fail(ENOMEM);
    memcpy(record, &op, 4);
    memcpy(record + 4, &count, 4);
    memcpy(record + 8, &page_size, 8);
    for (uint32_t i = 0; i < count; i++) {
        memcpy(record + 16 + (size_t)i * 16, &ranges[i].iova, 8);
        memcpy(record + 24 + (size_t)i * 16, &ranges[i].length, 8);
    }
    ssize_t n;
    do n = real.pwrite64(d->v2_dmalog_fd, record, size, 0);
    while (n < 0 && errno == EINTR);
    int saved = n < 0 ? errno : EIO;
    free(record);
    return n == (ssize_t)size ? 0 : fail(saved);
}

static int logging_start(struct device *d, struct vfio_device_feature_dma_logging_control *arg) {
    struct vfio_device_feature_dma_logging_control control;
    memcpy(&control, arg, sizeof control);
    // E2BIG before touching the ranges, as the kernel (it bounds what it copies); the rest is the mount's.
    if (control.num_ranges > LOG_MAX_RANGES) return fail(E2BIG);
    const struct vfio_device_feature_dma_logging_range *ranges = (const void *)(uintptr_t)control.ranges;
    if (!ranges && control.num_ranges > 0) return fail(EFAULT);
    uint64_t asked = control.page_size;
    if (logging_command(d, LOG_OP_START, asked, ranges, control.num_ranges) != 0) {
        int saved = errno;
        shim_log("device %s DMA_LOGGING_START %u ranges, page size %llu -> %s", d->uuid, control.num_ranges,
                 (unsigned long long)asked, strerror(saved));
        return fail(saved);
    }
    uint64_t tracked = 0;
    if (read_value(d->v2_dmalog_fd, &tracked, sizeof tracked) != 0) return -1;
    shim_lock();
    // Logging starts now: what the device wrote before is not in the log.
    if (d->dma_dirty) memset(d->dma_dirty, 0, (d->dma_size / 4096 + 63) / 64 * sizeof(uint64_t));
    d->dma_logging = 1;
    shim_unlock();
    // The page size the device tracks with, as the uAPI's output.
    control.page_size = tracked;
    memcpy(arg, &control, sizeof control);
    shim_log("device %s DMA_LOGGING_START %u ranges, page size %llu (asked %llu)", d->uuid, control.num_ranges,
             (unsigned long long)tracked, (unsigned long long)asked);
    return 0;
}

static int logging_report(struct device *d, struct vfio_device_feature_dma_logging_report *arg) {
    struct vfio_device_feature_dma_logging_report report;
    memcpy(&report, arg, sizeof report);
    struct vfio_device_feature_dma_logging_range range = {.iova = report.iova, .length = report.length};
    if (logging_command(d, LOG_OP_REPORT, report.page_size, &range, 1) != 0) {
        int saved = errno;
        shim_log("device %s DMA_LOGGING_REPORT iova 0x%llx length 0x%llx page size %llu -> %s", d->uuid,
                 (unsigned long long)report.iova, (unsigned long long)report.length,
                 (unsigned long long)report.page_size, strerror(saved));
        return fail(saved);
    }
    uint64_t *bitmap = (uint64_t *)(uintptr_t)report.bitmap;
    if (!bitmap) return fail(EFAULT);
    shim_lock();
    // Allowed by the mount (even a tolerated misuse): only what the device logged is reported.
    uint64_t dirty = d->dma_logging ? dma_collect_device(d, report.iova, report.length, report.page_size, bitmap) : 0;
    shim_unlock();
    if (dirty)
        shim_log("device %s DMA_LOGGING_REPORT iova 0x%llx length 0x%llx: %llu pages dirty (device DMA)", d->uuid,
                 (unsigned long long)report.iova, (unsigned long long)report.length, (unsigned long long)dirty);
    return 0;
}

static int logging_stop(struct device *d) {
    if (logging_command(d, LOG_OP_STOP, 0, NULL, 0) != 0) return -1;
    shim_lock();
    d->dma_logging = 0;
    shim_unlock();
    return 0;
}

/// VFIO_DEVICE_FEATURE, with the header checks of the kernel's vfio_ioctl_device_feature.
int v2_feature(struct device *d, struct vfio_device_feature *f) {
    if (!f) return fail(EFAULT);
    const size_t minsz = sizeof *f; // offsetofend(flags): data[] is a flexible array
    if (f->argsz < minsz) return fail(EINVAL);
    uint32_t flags = f->flags, feature = flags & VFIO_DEVICE_FEATURE_MASK;
    if (flags & ~(VFIO_DEVICE_FEATURE_MASK | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_PROBE))
        return fail(EINVAL);
    // GET and SET exclude each other, except in a PROBE.
    if (!(flags & VFIO_DEVICE_FEATURE_PROBE) && (flags & VFIO_DEVICE_FEATURE_SET) && (flags & VFIO_DEVICE_FEATURE_GET))
        return fail(EINVAL);
    size_t argsz = f->argsz - minsz;
    int logging_feature = feature == VFIO_DEVICE_FEATURE_DMA_LOGGING_START ||
                          feature == VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP || feature == VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT;
    // With MDEVSIM_VFIO_DMA_LOGGING=0 the three logging features are unknown, as without log_ops.
    int offered = d->v2 && (!logging_feature || shim_dma_logging());
    int rc;
    switch (offered ? feature : ~0u) {
    case VFIO_DEVICE_FEATURE_MIGRATION:
        rc = get_u64(flags, argsz, d->v2_features_fd, f);
        break;
    case VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE:
        rc = check_feature(flags, argsz, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET,
                           sizeof(struct vfio_device_feature_mig_state));
        if (rc == 1) return mig_device_state(d, flags, (void *)f->data);
        break;
    case VFIO_DEVICE_FEATURE_MIG_DATA_SIZE:
        rc = get_u64(flags, argsz, d->v2_size_fd, f);
        break;
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_START:
        rc = check_feature(flags, argsz, VFIO_DEVICE_FEATURE_SET, sizeof(struct vfio_device_feature_dma_logging_control));
        if (rc == 1) rc = logging_start(d, (void *)f->data);
        break;
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP:
        rc = check_feature(flags, argsz, VFIO_DEVICE_FEATURE_SET, 0);
        if (rc == 1) rc = logging_stop(d);
        break;
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT:
        rc = check_feature(flags, argsz, VFIO_DEVICE_FEATURE_GET, sizeof(struct vfio_device_feature_dma_logging_report));
        // Per RAM section at every bitmap sync: returned before the log line below.
        if (rc == 1) return logging_report(d, (void *)f->data);
        break;
    default:
        // A v1 device has no migration v2 (the kernel: no mig_ops) nor DMA logging (no
        // log_ops); nothing else vfio-pci knows is offered: all "unknown feature".
        rc = fail(ENOTTY);
        break;
    }
    int saved = errno;
    shim_log("device %s FEATURE %s%s%s%s -> %s", d->uuid, feature_name(feature),
             flags & VFIO_DEVICE_FEATURE_PROBE ? " PROBE" : "", flags & VFIO_DEVICE_FEATURE_GET ? " GET" : "",
             flags & VFIO_DEVICE_FEATURE_SET ? " SET" : "", rc < 0 ? strerror(saved) : "ok");
    errno = saved;
    return rc < 0 ? -1 : 0;
}

/// An ioctl on a data_fd the shim handed out: VFIO_MIG_GET_PRECOPY_INFO, checked as the drivers
/// do (argsz); whether the state allows it is the mount's answer (EINVAL outside PRE_COPY*).
int v2_data_ioctl(struct device *d, int fd, unsigned long request, void *arg) {
    if (request != VFIO_MIG_GET_PRECOPY_INFO) return fail(ENOTTY);
    struct vfio_precopy_info *info = arg;
    if (!info) return fail(EFAULT);
    if (info->argsz < sizeof *info) return fail(EINVAL);
    shim_lock();
    int own = shim_fd_aux(fd);
    shim_unlock();
    uint64_t values[2];
    int rc = read_value(own >= 0 ? own : d->v2_precopy_fd, values, sizeof values);
    int saved = errno;
    if (rc == 0) {
        info->initial_bytes = values[0];
        info->dirty_bytes = values[1];
    }
    shim_log("device %s PRECOPY_INFO on data_fd %d -> %s initial %llu dirty %llu", d->uuid, fd,
             rc == 0 ? "ok" : strerror(saved), rc == 0 ? (unsigned long long)values[0] : 0ULL,
             rc == 0 ? (unsigned long long)values[1] : 0ULL);
    errno = saved;
    return rc;
}

// The glibc entry points the shim wraps, and the table of emulated file descriptors.
//
// Every emulated descriptor is backed by a real one (an open of /dev/null), so its number is
// unique, survives fork/exec rules like any other, and close/dup work on it for real. The table
// says what stands behind each number. One mutex guards the table and the container/group
// objects: QEMU calls from its main thread, vCPU threads and the migration thread.
#define _GNU_SOURCE
#include "shim.h"
#include "mdevsim_vfio.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_FDS 65536

struct fd_entry {
    int kind;   // enum fd_kind, read atomically for the fast path of non-emulated fds
    void *obj;
    int aux;    // a descriptor owned with it, plus one (0: none), so the zeroed table means none
};

static struct fd_entry table[MAX_FDS];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t resolve_once = PTHREAD_ONCE_INIT;
struct real_calls real;

const char *mdevsim_vfio_version(void) { return "mdevsim-vfio 1"; }

static void *next_symbol(const char *name) {
    void *p = dlsym(RTLD_NEXT, name);
    if (!p) {
        // Without the real call nothing can work; say which one and fail loudly, once.
        fprintf(stderr, "libmdevsim-vfio: dlsym(RTLD_NEXT, %s) failed: %s\n", name, dlerror());
        abort();
    }
    return p;
}

static void resolve_all(void) {
    real.open = next_symbol("open");
    real.open64 = next_symbol("open64");
    real.openat = next_symbol("openat");
    real.openat64 = next_symbol("openat64");
    real.close = next_symbol("close");
    real.dup = next_symbol("dup");
    real.dup2 = next_symbol("dup2");
    real.dup3 = next_symbol("dup3");
    real.fcntl = next_symbol("fcntl");
    real.ioctl = next_symbol("ioctl");
    real.pread = next_symbol("pread");
    real.pread64 = next_symbol("pread64");
    real.pwrite = next_symbol("pwrite");
    real.pwrite64 = next_symbol("pwrite64");
    real.mmap = next_symbol("mmap");
    real.mmap64 = next_symbol("mmap64");
    real.munmap = next_symbol("munmap");
    real.madvise = next_symbol("madvise");
}

void shim_resolve(void) { pthread_once(&resolve_once, resolve_all); }

__attribute__((constructor)) static void shim_init(void) {
    shim_resolve();
    if (shim_mount())
        shim_log("loaded: mount %s%s", shim_mount(), shim_force_bounce() ? ", bounce buffer forced" : "");
}

void shim_lock(void) { pthread_mutex_lock(&table_lock); }
void shim_unlock(void) { pthread_mutex_unlock(&table_lock); }

enum fd_kind shim_fd_kind(int fd) {
    if (fd < 0 || fd >= MAX_FDS) return FD_NONE;
    return (enum fd_kind)__atomic_load_n(&table[fd].kind, __ATOMIC_ACQUIRE);
}

void *shim_fd_object(int fd, enum fd_kind kind) {
    if (fd < 0 || fd >= MAX_FDS || table[fd].kind != (int)kind) return NULL;
    return table[fd].obj;
}

static void take_ref(enum fd_kind kind, void *obj) {
    switch (kind) {
    case FD_CONTAINER: ((struct container *)obj)->refs++; break;
    case FD_GROUP: ((struct group *)obj)->refs++; break;
    case FD_DEVICE:
    case FD_DATA: ((struct device *)obj)->refs++; break;
    case FD_NONE: break;
    }
}

static void drop_ref(enum fd_kind kind, void *obj) {
    switch (kind) {
    case FD_CONTAINER: container_put(obj); break;
    case FD_GROUP: group_put(obj); break;
    case FD_DEVICE:
    case FD_DATA: device_put(obj); break;
    case FD_NONE: break;
    }
}

int shim_fd_install(int fd, enum fd_kind kind, void *obj) {
    if (fd < 0 || fd >= MAX_FDS) {
        errno = EMFILE;
        return -1;
    }
    take_ref(kind, obj);
    table[fd].obj = obj;
    table[fd].aux = 0;
    __atomic_store_n(&table[fd].kind, (int)kind, __ATOMIC_RELEASE);
    return 0;
}

void shim_fd_set_aux(int fd, int aux) {
    if (fd >= 0 && fd < MAX_FDS && table[fd].kind != FD_NONE) table[fd].aux = aux + 1;
}

int shim_fd_aux(int fd) { return fd >= 0 && fd < MAX_FDS && table[fd].kind != FD_NONE ? table[fd].aux - 1 : -1; }

/// Forgets what stood behind `fd` (it was closed, or replaced by dup2). Under the lock.
static void forget_fd_locked(int fd) {
    if (fd < 0 || fd >= MAX_FDS || table[fd].kind == FD_NONE) return;
    enum fd_kind kind = (enum fd_kind)table[fd].kind;
    void *obj = table[fd].obj;
    int aux = table[fd].aux - 1;
    __atomic_store_n(&table[fd].kind, FD_NONE, __ATOMIC_RELEASE);
    table[fd].obj = NULL;
    table[fd].aux = 0;
    if (aux >= 0) real.close(aux);
    drop_ref(kind, obj);
}

/// `copy` is a new number for the same open file as `fd` (dup): it stands for the same object.
static void copy_fd(int fd, int copy) {
    if (copy < 0 || copy == fd) return;
    shim_lock();
    forget_fd_locked(copy);
    if (fd >= 0 && fd < MAX_FDS && table[fd].kind != FD_NONE)
        shim_fd_install(copy, (enum fd_kind)table[fd].kind, table[fd].obj);
    shim_unlock();
}

int shim_backing_fd(void) {
    shim_resolve();
    return real.open("/dev/null", O_RDWR | O_CLOEXEC);
}

// --- open ---

/// "/dev/vfio/vfio" -> container; "/dev/vfio/<N>" of a group of the mount -> group.
/// Returns -2 when the path is not ours (pass through).
static int open_emulated(const char *path) {
    if (!path || !shim_mount() || strncmp(path, "/dev/vfio/", 10) != 0) return -2;
    const char *rest = path + 10;
    if (strcmp(rest, "vfio") == 0) {
        struct container *c = container_new();
        if (!c) return -1;
        int fd = shim_backing_fd();
        if (fd < 0) {
            free(c);
            return -1;
        }
        shim_lock();
        int rc = shim_fd_install(fd, FD_CONTAINER, c);
        shim_unlock();
        if (rc < 0) {
            free(c);
            real.close(fd);
            return -1;
        }
        shim_log("open %s -> container fd %d", path, fd);
        return fd;
    }
    char *end = NULL;
    errno = 0;
    long number = strtol(rest, &end, 10);
    if (end == rest || *end != '\0' || errno || number < 0 || number > 0x7fffffff) return -2;
    char uuid[64];
    if (shim_find_group_device((int)number, uuid) != 0) {
        // Not a group of the mount: maybe a real VFIO group of this host.
        return -2;
    }
    struct group *g = group_new((int)number, uuid);
    if (!g) return -1;
    int fd = shim_backing_fd();
    if (fd < 0) {
        free(g);
        return -1;
    }
    shim_lock();
    int rc = shim_fd_install(fd, FD_GROUP, g);
    shim_unlock();
    if (rc < 0) {
        free(g);
        real.close(fd);
        return -1;
    }
    shim_log("open %s -> group %ld (device %s) fd %d", path, number, uuid, fd);
    return fd;
}

/// openat with a relative path cannot name /dev/vfio (dirfd-relative): pass those through.
static int is_absolute(const char *path) { return path && path[0] == '/'; }

static mode_t mode_arg(int flags, va_list ap) {
    // The mode is only passed (and may only be read) with O_CREAT or O_TMPFILE.
    if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) return (mode_t)va_arg(ap, int);
    return 0;
}

int open(const char *path, int flags, ...) {
    shim_resolve();
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    int fd = open_emulated(path);
    return fd != -2 ? fd : real.open(path, flags, mode);
}

int open64(const char *path, int flags, ...) {
    shim_resolve();
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    int fd = open_emulated(path);
    return fd != -2 ? fd : real.open64(path, flags, mode);
}

// _FORTIFY_SOURCE turns some opens into these.
int __open_2(const char *path, int flags);
int __open_2(const char *path, int flags) { return open(path, flags); }
int __open64_2(const char *path, int flags);
int __open64_2(const char *path, int flags) { return open64(path, flags); }

int openat(int dirfd, const char *path, int flags, ...) {
    shim_resolve();
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    int fd = is_absolute(path) ? open_emulated(path) : -2;
    return fd != -2 ? fd : real.openat(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...) {
    shim_resolve();
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    int fd = is_absolute(path) ? open_emulated(path) : -2;
    return fd != -2 ? fd : real.openat64(dirfd, path, flags, mode);
}

// --- close, dup ---

int close(int fd) {
    shim_resolve();
    if (shim_fd_kind(fd) != FD_NONE) {
        shim_lock();
        forget_fd_locked(fd);
        shim_unlock();
        shim_log("close fd %d", fd);
    }
    return real.close(fd);
}

int dup(int fd) {
    shim_resolve();
    int copy = real.dup(fd);
    if (copy >= 0 && shim_fd_kind(fd) != FD_NONE) copy_fd(fd, copy);
    return copy;
}

int dup2(int fd, int target) {
    shim_resolve();
    int copy = real.dup2(fd, target);
    if (copy >= 0 && (shim_fd_kind(fd) != FD_NONE || shim_fd_kind(copy) != FD_NONE)) copy_fd(fd, copy);
    return copy;
}

int dup3(int fd, int target, int flags) {
    shim_resolve();
    int copy = real.dup3(fd, target, flags);
    if (copy >= 0 && (shim_fd_kind(fd) != FD_NONE || shim_fd_kind(copy) != FD_NONE)) copy_fd(fd, copy);
    return copy;
}

static int fcntl_common(int fd, int cmd, va_list ap) {
    shim_resolve();
    if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) {
        int low = va_arg(ap, int);
        int copy = real.fcntl(fd, cmd, low);
        if (copy >= 0 && shim_fd_kind(fd) != FD_NONE) copy_fd(fd, copy);
        return copy;
    }
    // Every other command takes at most one argument, which glibc itself reads as a pointer.
    void *arg = va_arg(ap, void *);
    return real.fcntl(fd, cmd, arg);
}

int fcntl(int fd, int cmd, ...) {
    va_list ap;
    va_start(ap, cmd);
    int rc = fcntl_common(fd, cmd, ap);
    va_end(ap);
    return rc;
}

// With _FILE_OFFSET_BITS=64 (QEMU's build) callers bind to fcntl64.
int fcntl64(int fd, int cmd, ...);
int fcntl64(int fd, int cmd, ...) {
    va_list ap;
    va_start(ap, cmd);
    int rc = fcntl_common(fd, cmd, ap);
    va_end(ap);
    return rc;
}

// --- ioctl ---

int ioctl(int fd, unsigned long request, ...) {
    shim_resolve();
    va_list ap;
    va_start(ap, request);
    // Integer arguments (VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU) arrive in the same slot.
    void *arg = va_arg(ap, void *);
    va_end(ap);
    enum fd_kind kind = shim_fd_kind(fd);
    if (kind == FD_NONE) return real.ioctl(fd, request, arg);

    // Dispatch by what the descriptor is: request numbers collide across kinds
    // (VFIO_IOMMU_GET_INFO == VFIO_DEVICE_GET_PCI_HOT_RESET_INFO).
    shim_lock();
    void *obj = shim_fd_object(fd, kind);
    if (!obj) {
        shim_unlock();
        return real.ioctl(fd, request, arg);
    }
    int rc;
    switch (kind) {
    case FD_CONTAINER:
        rc = container_ioctl(obj, request, arg);
        shim_unlock();
        return rc;
    case FD_GROUP:
        rc = group_ioctl(obj, request, arg);
        shim_unlock();
        return rc;
    case FD_DEVICE:
    case FD_DATA: {
        // Device ioctls may do file I/O on the mount (reset): not under the table lock.
        struct device *d = obj;
        d->refs++;
        shim_unlock();
        rc = kind == FD_DATA ? v2_data_ioctl(d, fd, request, arg) : device_ioctl(d, request, arg);
        int saved = errno;
        shim_lock();
        device_put(d);
        shim_unlock();
        errno = saved;
        return rc;
    }
    case FD_NONE:
        break;
    }
    shim_unlock();
    return real.ioctl(fd, request, arg);
}

// --- pread/pwrite ---

/// The device behind `fd` with a reference taken, or NULL.
static struct device *device_ref(int fd) {
    if (shim_fd_kind(fd) != FD_DEVICE) return NULL;
    shim_lock();
    struct device *d = shim_fd_object(fd, FD_DEVICE);
    if (d) d->refs++;
    shim_unlock();
    return d;
}

static void device_unref(struct device *d) {
    int saved = errno;
    shim_lock();
    device_put(d);
    shim_unlock();
    errno = saved;
}

// Each entry point and its 64-bit twin share one body; `fallback` points at the field of
// `real` to call for a descriptor that is not an emulated device (read after shim_resolve).
static ssize_t pread_via(ssize_t (**fallback)(int, void *, size_t, off_t), int fd, void *buf, size_t n, off_t off) {
    shim_resolve();
    struct device *d = device_ref(fd);
    if (!d) return (*fallback)(fd, buf, n, off);
    ssize_t rc = device_pread(d, buf, n, off);
    device_unref(d);
    return rc;
}

static ssize_t pwrite_via(ssize_t (**fallback)(int, const void *, size_t, off_t), int fd, const void *buf, size_t n, off_t off) {
    shim_resolve();
    struct device *d = device_ref(fd);
    if (!d) return (*fallback)(fd, buf, n, off);
    ssize_t rc = device_pwrite(d, buf, n, off);
    device_unref(d);
    return rc;
}

ssize_t pread64(int fd, void *buf, size_t n, off_t off) { return pread_via(&real.pread64, fd, buf, n, off); }
ssize_t pread(int fd, void *buf, size_t n, off_t off) { return pread_via(&real.pread, fd, buf, n, off); }
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) { return pwrite_via(&real.pwrite64, fd, buf, n, off); }
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) { return pwrite_via(&real.pwrite, fd, buf, n, off); }

// _FORTIFY_SOURCE turns preads with a known buffer size into these.
ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen);
ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen) {
    if (n > buflen) abort(); // what glibc's checker does (__chk_fail)
    return pread(fd, buf, n, off);
}
ssize_t __pread64_chk(int fd, void *buf, size_t n, off_t off, size_t buflen);
ssize_t __pread64_chk(int fd, void *buf, size_t n, off_t off, size_t buflen) {
    if (n > buflen) abort();
    return pread64(fd, buf, n, off);
}

// --- mmap ---

static void *mmap_via(void *(**fallback)(void *, size_t, int, int, int, off_t),
                      void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    shim_resolve();
    struct device *d = (flags & MAP_ANONYMOUS) ? NULL : device_ref(fd);
    if (!d) return (*fallback)(addr, len, prot, flags, fd, off);
    void *p = device_mmap(d, addr, len, prot, flags, off);
    device_unref(d);
    return p;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    return mmap_via(&real.mmap, addr, len, prot, flags, fd, off);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    return mmap_via(&real.mmap64, addr, len, prot, flags, fd, off);
}

int munmap(void *addr, size_t len) {
    shim_resolve();
    device_forget_mapping(addr, len);
    return real.munmap(addr, len);
}

/// QEMU advises MADV_HUGEPAGE on every RAM block, the mapped migration region included. On a
/// real VFIO region (PFN-mapped device memory) that advice does nothing; on the mount's file it
/// makes the kernel read ahead a huge-page-aligned window on the first fault: a 1 MiB read at
/// region offset 0, over the trapped header, which the device rightly refuses. Keep the real
/// region's behaviour: accept the advice and drop it.
int madvise(void *addr, size_t len, int advice) {
    shim_resolve();
    if (advice == MADV_HUGEPAGE && device_mapping_overlaps(addr, len)) {
        shim_log("madvise(MADV_HUGEPAGE) on a data-section mapping: ignored");
        return 0;
    }
    return real.madvise(addr, len, advice);
}

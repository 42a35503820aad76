/*
 * migrate_v2.c: migrate one simulated device to another through an mdevsim mount with VFIO
 * migration v2, using only open/read/write/pread/pwrite/close on the files of the mount: what a
 * VMM's v2 code does with a device fd and its data_fd, each ioctl replaced by one file call.
 *
 *   cc -Wall -Wextra -O2 -o migrate_v2 examples/migrate_v2.c
 *   ./migrate_v2 MOUNT TYPE
 *
 * TYPE must speak v2 (`protocols: [v1, v2]` or `[v2]` in its scenario). The example creates a
 * source and a destination device, saves the source (PRE_COPY while running when the device
 * offers it, then STOP_COPY), feeds the stream to the destination in 32 KiB writes (QEMU's
 * piece size), starts the destination, and compares the two devices' digests. Exit status 0
 * when they are equal and the checker recorded no violation.
 *
 * The v2 calls (linux/vfio.h) and their files in MOUNT/devices/<uuid>/ (docs/vmm-guide.md):
 *   VFIO_DEVICE_FEATURE GET MIGRATION        pread  mig_features,     8 bytes: flags
 *   VFIO_DEVICE_FEATURE GET MIG_DEVICE_STATE pread  mig_state,        4 bytes: the state
 *   VFIO_DEVICE_FEATURE SET MIG_DEVICE_STATE pwrite mig_state,        4 bytes; a SET that starts
 *                                            a session is followed by open(mig_data): the data_fd
 *   VFIO_DEVICE_FEATURE GET MIG_DATA_SIZE    pread  mig_data_size,    8 bytes: stop_copy_length
 *   VFIO_MIG_GET_PRECOPY_INFO (data_fd)      pread  mig_precopy_info, 16 bytes: initial, dirty
 *   read()/write() on the data_fd            read/write mig_data (ENOMSG: no more for now)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* enum vfio_device_mig_state (PRE_COPY states since Linux 6.2, not in every <linux/vfio.h>). */
enum { STATE_STOP = 1, STATE_RUNNING = 2, STATE_STOP_COPY = 3, STATE_RESUMING = 4,
       STATE_RUNNING_P2P = 5, STATE_PRE_COPY = 6, STATE_PRE_COPY_P2P = 7 };
/* struct vfio_device_feature_migration.flags */
enum { MIGRATION_STOP_COPY = 1u << 0, MIGRATION_P2P = 1u << 1, MIGRATION_PRE_COPY = 1u << 2 };

#define READ_SIZE (1 << 20)   /* QEMU's VFIO_MIG_DEFAULT_DATA_BUFFER_SIZE */
#define WRITE_PIECE (32 << 10) /* QEMU's destination writes at most this much at a time */
#define PRECOPY_MAX_READS 256  /* a VMM stops pre-copy once the rest fits its downtime budget */

struct device {
    const char *name;
    char dir[4096];
    char uuid[64];
    int state_fd; /* mig_state, O_RDWR */
    int data_fd;  /* mig_data of the current session, or -1 */
};

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "migrate_v2: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(2);
}

static void die_errno(const char *what, const struct device *d)
{
    fprintf(stderr, "migrate_v2: %s on %s: %s\n", what, d->name, strerror(errno));
    exit(2);
}

static void path_of(char *out, size_t cap, const char *dir, const char *file)
{
    if ((size_t)snprintf(out, cap, "%s/%s", dir, file) >= cap) die("path too long", dir);
}

static void read_text(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die(path, strerror(errno));
    ssize_t n = read(fd, buf, cap - 1);
    if (n < 0) die(path, strerror(errno));
    buf[n] = '\0';
    close(fd);
}

static void write_text(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) die(path, strerror(errno));
    if (write(fd, text, strlen(text)) != (ssize_t)strlen(text)) die(path, strerror(errno));
    close(fd);
}

/* One little-endian value of a v2 file, read whole at offset 0 (x86 is little-endian). */
static void read_value(const struct device *d, const char *file, void *value, size_t size)
{
    char path[4200];
    path_of(path, sizeof path, d->dir, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die_errno(file, d);
    if (pread(fd, value, size, 0) != (ssize_t)size) die_errno(file, d);
    close(fd);
}

static uint32_t get_state(const struct device *d)
{
    uint32_t state;
    if (pread(d->state_fd, &state, sizeof state, 0) != (ssize_t)sizeof state) die_errno("GET mig_state", d);
    return state;
}

static int is_saving(uint32_t s) { return s == STATE_PRE_COPY || s == STATE_PRE_COPY_P2P || s == STATE_STOP_COPY; }

/* SET; when the walk starts a data transfer session (entering the saving group from outside,
 * or RESUMING), open that session's data_fd as the ioctl would return it. */
static void set_state(struct device *d, uint32_t state)
{
    uint32_t before = get_state(d);
    if (pwrite(d->state_fd, &state, sizeof state, 0) != (ssize_t)sizeof state) die_errno("SET mig_state", d);
    int starts = (is_saving(state) && !is_saving(before)) || (state == STATE_RESUMING && before != STATE_RESUMING);
    if (!starts) return;
    if (d->data_fd >= 0) close(d->data_fd);
    char path[4200];
    path_of(path, sizeof path, d->dir, "mig_data");
    d->data_fd = open(path, (state == STATE_RESUMING ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
    if (d->data_fd < 0) die_errno("open mig_data", d);
}

static void create_device(struct device *d, const char *mount, const char *type, const char *name)
{
    char path[4200];
    d->name = name;
    read_text("/proc/sys/kernel/random/uuid", d->uuid, sizeof d->uuid);
    d->uuid[strcspn(d->uuid, "\n")] = '\0';
    if ((size_t)snprintf(path, sizeof path, "%s/mdev_supported_types/%s/create", mount, type) >= sizeof path)
        die("path too long", mount);
    write_text(path, d->uuid);
    if ((size_t)snprintf(d->dir, sizeof d->dir, "%s/devices/%s", mount, d->uuid) >= sizeof d->dir)
        die("path too long", mount);
    path_of(path, sizeof path, d->dir, "mig_state");
    d->state_fd = open(path, O_RDWR | O_CLOEXEC);
    if (d->state_fd < 0) die(path, errno == ENOENT ? "the type does not speak migration v2" : strerror(errno));
    d->data_fd = -1;
}

static void remove_device(struct device *d)
{
    char path[4200];
    if (d->data_fd >= 0) close(d->data_fd);
    close(d->state_fd);
    path_of(path, sizeof path, d->dir, "remove");
    write_text(path, "1");
}

/* Writes n bytes to the destination's data_fd in QEMU's pieces. */
static void deliver(struct device *dst, const unsigned char *buf, size_t n)
{
    for (size_t off = 0; off < n;) {
        size_t piece = n - off < WRITE_PIECE ? n - off : WRITE_PIECE;
        ssize_t w = write(dst->data_fd, buf + off, piece);
        if (w <= 0) die_errno("write data_fd", dst);
        off += (size_t)w;
    }
}

/* Prints the device's violations file and returns how many lines it has. */
static int violations(const struct device *d)
{
    char path[4200], text[16384];
    path_of(path, sizeof path, d->dir, "violations");
    read_text(path, text, sizeof text);
    int lines = 0;
    for (const char *p = text; *p; p++) lines += *p == '\n';
    if (lines) fprintf(stderr, "migrate_v2: violations of %s:\n%s", d->name, text);
    return lines;
}

int main(int argc, char **argv)
{
    if (argc != 3) die("usage", "migrate_v2 MOUNT TYPE");
    struct device src, dst;
    create_device(&src, argv[1], argv[2], "source");
    create_device(&dst, argv[1], argv[2], "destination");

    uint64_t flags, stop_copy_length;
    read_value(&src, "mig_features", &flags, sizeof flags);
    if (!(flags & MIGRATION_STOP_COPY)) die("the device does not offer VFIO_MIGRATION_STOP_COPY", NULL);
    read_value(&src, "mig_data_size", &stop_copy_length, sizeof stop_copy_length);
    int p2p = (flags & MIGRATION_P2P) != 0;

    unsigned char *buf = malloc(READ_SIZE);
    if (!buf) die("out of memory", NULL);
    uint64_t precopy = 0, stopcopy = 0;

    set_state(&dst, STATE_RESUMING); /* one SET: the device walks RUNNING -> ... -> RESUMING */
    if (flags & MIGRATION_PRE_COPY) {
        set_state(&src, STATE_PRE_COPY);
        for (int reads = 0; reads < PRECOPY_MAX_READS; reads++) {
            uint64_t info[2]; /* initial_bytes, dirty_bytes */
            read_value(&src, "mig_precopy_info", info, sizeof info);
            if (info[0] == 0 && info[1] <= READ_SIZE) break; /* the rest fits the downtime */
            ssize_t n = read(src.data_fd, buf, READ_SIZE);
            if (n < 0 && errno == ENOMSG) continue; /* no more data for now */
            if (n < 0) die_errno("read data_fd in PRE_COPY", &src);
            deliver(&dst, buf, (size_t)n);
            precopy += (uint64_t)n;
        }
        if (p2p) set_state(&src, STATE_PRE_COPY_P2P);
        set_state(&src, STATE_STOP_COPY); /* the same data_fd streams the final state */
    } else {
        if (p2p) set_state(&src, STATE_RUNNING_P2P);
        set_state(&src, STATE_STOP);
        set_state(&src, STATE_STOP_COPY); /* a new session: a new data_fd */
    }
    for (;;) {
        ssize_t n = read(src.data_fd, buf, READ_SIZE);
        if (n < 0) die_errno("read data_fd in STOP_COPY", &src);
        if (n == 0) break; /* end of stream */
        deliver(&dst, buf, (size_t)n);
        stopcopy += (uint64_t)n;
    }
    set_state(&src, STATE_STOP);
    /* Leaving RESUMING makes the destination judge the whole stream: a SET that fails here
     * means the stream was incomplete or corrupted. */
    if (p2p) set_state(&dst, STATE_RUNNING_P2P);
    set_state(&dst, STATE_RUNNING);
    free(buf);

    char src_digest[128], dst_digest[128], path[4200];
    path_of(path, sizeof path, src.dir, "digest");
    read_text(path, src_digest, sizeof src_digest);
    path_of(path, sizeof path, dst.dir, "digest");
    read_text(path, dst_digest, sizeof dst_digest);
    int broken = violations(&src) + violations(&dst);
    int equal = strcmp(src_digest, dst_digest) == 0 && src_digest[0] != '\0';
    printf("migrated %s -> %s with v2: %llu pre-copy bytes, %llu stop-copy bytes (MIG_DATA_SIZE said %llu), "
           "digests %s, %d violation(s)\n",
           src.uuid, dst.uuid, (unsigned long long)precopy, (unsigned long long)stopcopy,
           (unsigned long long)stop_copy_length, equal ? "equal" : "DIFFER", broken);
    remove_device(&src);
    remove_device(&dst);
    return equal && broken == 0 ? 0 : 1;
}

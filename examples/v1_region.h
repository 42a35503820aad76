/*
 * v1_region.h: what a VFIO migration v1 client of an mdevsim mount needs besides its migration
 * loop: the header's field offsets and device_state bits, a region's files (migration.info,
 * migration, its mmap area), header and data-section accesses, creating and removing devices,
 * and the small text files of the mount. Shared by examples/migrate_one.c and the checker's
 * catalogue (Tests/Fixtures/catalogue/deviant.c), so each helper exists once.
 *
 * The including file defines, before the #include:
 *   PROGRAM                 the name its messages start with ("migrate_one: ...")
 * and, anywhere after it:
 *   static void access_failed(const char *what, const struct region *r);
 *                           what to do when a header or data access of r failed (errno set):
 *                           the example exits, the catalogue stops the migration and cleans up.
 * Set-up failures (a file of the mount that cannot be opened, read or written) exit with status 2.
 */
#ifndef MDEVSIM_V1_REGION_H
#define MDEVSIM_V1_REGION_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Offsets of the header fields (struct vfio_device_migration_info). */
enum { DEVICE_STATE = 0, PENDING_BYTES = 8, DATA_OFFSET = 16, DATA_SIZE = 24 };
/* device_state bits (VFIO_DEVICE_STATE_V1_*); bits 3-31 are reserved and must be kept. */
enum { RUNNING = 1u << 0, SAVING = 1u << 1, RESUMING = 1u << 2, STATE_MASK = 7u };

struct region {
    const char *name;
    int fd;
    uint64_t section_offset; /* the data section, from migration.info */
    uint64_t section_size;
    uint64_t map_offset;   /* the mmap area: the data section, page aligned */
    uint64_t map_size;
    unsigned char *map;    /* NULL: pread/pwrite */
};

static void access_failed(const char *what, const struct region *r);

/* `static inline`: an includer that leaves a helper unused still compiles with -Werror. */
static inline void die(const char *what, const char *detail)
{
    fprintf(stderr, PROGRAM ": %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(2);
}

static inline void die_errno(const char *what, const struct region *r)
{
    fprintf(stderr, PROGRAM ": %s on %s: %s\n", what, r->name, strerror(errno));
    exit(2);
}

static inline uint32_t read32(const struct region *r, off_t offset)
{
    uint32_t value;
    if (pread(r->fd, &value, 4, offset) != 4)
        access_failed("4-byte header read", r);
    return value;
}

static inline uint64_t read64(const struct region *r, off_t offset)
{
    uint64_t value;
    if (pread(r->fd, &value, 8, offset) != 8)
        access_failed("8-byte header read", r);
    return value;
}

static inline void write32(const struct region *r, off_t offset, uint32_t value)
{
    if (pwrite(r->fd, &value, 4, offset) != 4)
        access_failed("4-byte header write", r);
}

static inline void write64(const struct region *r, off_t offset, uint64_t value)
{
    if (pwrite(r->fd, &value, 8, offset) != 8)
        access_failed("8-byte header write", r);
}

/* Read-modify-write of device_state that keeps the reserved bits, as the uapi asks. */
static inline void set_state(const struct region *r, uint32_t state)
{
    uint32_t old = read32(r, DEVICE_STATE);
    write32(r, DEVICE_STATE, (old & ~STATE_MASK) | state);
}

/* dir/name into path, refusing a path that does not fit. */
static inline void path_of(char *path, size_t cap, const char *dir, const char *name)
{
    if ((size_t)snprintf(path, cap, "%s/%s", dir, name) >= cap)
        die("path too long", dir);
}

/* Reads a whole small file of the mount into buf (NUL terminated). */
static inline void read_text(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        fprintf(stderr, PROGRAM ": open %s: %s\n", path, strerror(errno));
        exit(2);
    }
    size_t used = 0;
    ssize_t n;
    while (used + 1 < cap && (n = read(fd, buf + used, cap - 1 - used)) > 0)
        used += (size_t)n;
    buf[used] = '\0';
    close(fd);
}

static inline void write_text(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
        fprintf(stderr, PROGRAM ": write %s: %s\n", path, strerror(errno));
        exit(2);
    }
    close(fd);
}

/* The number after "key": in a JSON text, searching from `from`; 0 when absent. Enough for
 * migration.info: its top-level keys are unique, and the mmap area's are searched from
 * "mmap_areas" on. */
static inline uint64_t json_number(const char *from, const char *key)
{
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\"", key);
    const char *at = strstr(from, pattern);
    if (!at)
        return 0;
    at = strchr(at + strlen(pattern), ':');
    return at ? strtoull(at + 1, NULL, 10) : 0;
}

/* Opens the device's migration region; maps its data section when use_mmap is set and
 * migration.info lists an mmap area (r->map stays NULL otherwise). */
static inline void open_region(struct region *r, const char *device_dir, int use_mmap)
{
    char path[4096], info[4096];
    path_of(path, sizeof path, device_dir, "migration.info");
    read_text(path, info, sizeof info);
    r->section_offset = json_number(info, "data_offset");
    r->section_size = json_number(info, "data_size");
    if (r->section_size == 0)
        die("migration.info gives no data section", device_dir);
    const char *areas = strstr(info, "\"mmap_areas\"");
    r->map_offset = areas ? json_number(areas, "offset") : 0;
    r->map_size = areas ? json_number(areas, "size") : 0;

    path_of(path, sizeof path, device_dir, "migration");
    r->fd = open(path, O_RDWR);
    if (r->fd < 0)
        die_errno("open", r);
    r->map = NULL;
    if (use_mmap && r->map_size > 0) {
        void *map = mmap(NULL, r->map_size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, (off_t)r->map_offset);
        if (map == MAP_FAILED)
            die_errno("mmap of the data section", r);
        r->map = map;
    }
}

static inline void close_region(struct region *r)
{
    if (r->map)
        munmap(r->map, r->map_size);
    close(r->fd);
}

/* Where the bytes at region offset `offset` (count bytes) are in the mapping, or NULL when
 * they are not inside it and must go through pread/pwrite. */
static inline unsigned char *mapped(const struct region *r, uint64_t offset, uint64_t count)
{
    if (!r->map || offset < r->map_offset || offset + count > r->map_offset + r->map_size)
        return NULL;
    return r->map + (offset - r->map_offset);
}

static inline void read_data(const struct region *r, uint64_t offset, unsigned char *buf, uint64_t count)
{
    unsigned char *in_map = mapped(r, offset, count);
    if (in_map) {
        memcpy(buf, in_map, count);
        return;
    }
    for (uint64_t done = 0; done < count;) {
        ssize_t n = pread(r->fd, buf + done, count - done, (off_t)(offset + done));
        if (n <= 0)
            access_failed("data read", r);
        done += (uint64_t)n;
    }
}

/* The bytes with pwrite, whether or not the region is mapped. */
static inline void pwrite_data(const struct region *r, uint64_t offset, const unsigned char *buf, uint64_t count)
{
    for (uint64_t done = 0; done < count;) {
        ssize_t n = pwrite(r->fd, buf + done, count - done, (off_t)(offset + done));
        if (n <= 0)
            access_failed("data write", r);
        done += (uint64_t)n;
    }
}

/* The bytes through the mapping when they are inside it, else with pwrite. */
static inline void write_data(const struct region *r, uint64_t offset, const unsigned char *buf, uint64_t count)
{
    unsigned char *in_map = mapped(r, offset, count);
    if (in_map)
        memcpy(in_map, buf, count);
    else
        pwrite_data(r, offset, buf, count);
}

/* Creates a device of `type` with a fresh UUID: its UUID into uuid, its directory into dir. */
static inline void create_device(const char *mount, const char *type, char *uuid, size_t cap, char *dir, size_t dir_cap)
{
    char path[4096], line[64];
    read_text("/proc/sys/kernel/random/uuid", line, sizeof line);
    line[strcspn(line, "\n")] = '\0';
    snprintf(uuid, cap, "%s", line);
    snprintf(path, sizeof path, "%s/mdev_supported_types/%s/create", mount, type);
    write_text(path, uuid);
    snprintf(dir, dir_cap, "%s/devices/%s", mount, uuid);
}

static inline void remove_device(const char *dir)
{
    char path[4096];
    path_of(path, sizeof path, dir, "remove");
    write_text(path, "1");
}

#endif

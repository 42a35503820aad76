/*
 * migrate_one.c: migrate one simulated device to another through an mdevsim mount, using only
 * open/pread/pwrite/mmap on the files of the mount: what a VMM's VFIO migration v1 code does
 * with a device fd, minus the ioctls.
 *
 *   cc -Wall -Wextra -O2 -o migrate_one examples/migrate_one.c
 *   ./migrate_one MOUNT [TYPE] [--pread]
 *
 * It creates a source and a destination device of TYPE (default: mdevsim-default), saves the
 * source (pre-copy while running, then stop-and-copy), resumes the destination chunk by chunk,
 * starts it, and compares the two devices' digests. The data section is used through mmap
 * when migration.info lists an mmap area, and with pread/pwrite otherwise (or with --pread).
 * Exit status 0 when the digests are equal and the checker recorded no violation.
 *
 * The protocol (linux/vfio.h, struct vfio_device_migration_info, v1):
 *   save:   loop { read pending_bytes; if 0 stop; read data_offset; read data_size;
 *                  read data_size bytes at data_offset }
 *   resume: per chunk { read data_offset; write the bytes there; write data_size }
 */
#define _GNU_SOURCE
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

/* How many pre-copy chunks to send before stopping the device: a VMM would stop once the
 * remaining bytes fit its downtime budget; a running device keeps dirtying memory. */
#define PRECOPY_MAX_CHUNKS 64

struct region {
    const char *name;
    int fd;
    uint64_t section_offset; /* the data section, from migration.info */
    uint64_t section_size;
    uint64_t map_offset;   /* the mmap area: the data section, page aligned */
    uint64_t map_size;
    unsigned char *map;    /* NULL: pread/pwrite */
};

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "migrate_one: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(2);
}

static void die_errno(const char *what, const struct region *r)
{
    fprintf(stderr, "migrate_one: %s on %s: %s\n", what, r->name, strerror(errno));
    exit(2);
}

static uint32_t read32(const struct region *r, off_t offset)
{
    uint32_t value;
    if (pread(r->fd, &value, 4, offset) != 4)
        die_errno("4-byte header read", r);
    return value;
}

static uint64_t read64(const struct region *r, off_t offset)
{
    uint64_t value;
    if (pread(r->fd, &value, 8, offset) != 8)
        die_errno("8-byte header read", r);
    return value;
}

static void write32(const struct region *r, off_t offset, uint32_t value)
{
    if (pwrite(r->fd, &value, 4, offset) != 4)
        die_errno("4-byte header write", r);
}

static void write64(const struct region *r, off_t offset, uint64_t value)
{
    if (pwrite(r->fd, &value, 8, offset) != 8)
        die_errno("8-byte header write", r);
}

/* Read-modify-write of device_state that keeps the reserved bits, as the uapi asks. */
static void set_state(const struct region *r, uint32_t state)
{
    uint32_t old = read32(r, DEVICE_STATE);
    write32(r, DEVICE_STATE, (old & ~STATE_MASK) | state);
}

/* dir/name into path, refusing a path that does not fit. */
static void path_of(char *path, size_t cap, const char *dir, const char *name)
{
    if ((size_t)snprintf(path, cap, "%s/%s", dir, name) >= cap)
        die("path too long", dir);
}

/* Reads a whole small file of the mount into buf (NUL terminated). */
static void read_text(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        fprintf(stderr, "migrate_one: open %s: %s\n", path, strerror(errno));
        exit(2);
    }
    size_t used = 0;
    ssize_t n;
    while (used + 1 < cap && (n = read(fd, buf + used, cap - 1 - used)) > 0)
        used += (size_t)n;
    buf[used] = '\0';
    close(fd);
}

static void write_text(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
        fprintf(stderr, "migrate_one: write %s: %s\n", path, strerror(errno));
        exit(2);
    }
    close(fd);
}

/* The number after "key": in a JSON text, searching from `from`; 0 when absent. Enough for
 * migration.info: its top-level keys are unique, and the mmap area's are searched from
 * "mmap_areas" on. */
static uint64_t json_number(const char *from, const char *key)
{
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\"", key);
    const char *at = strstr(from, pattern);
    if (!at)
        return 0;
    at = strchr(at + strlen(pattern), ':');
    return at ? strtoull(at + 1, NULL, 10) : 0;
}

static void open_region(struct region *r, const char *device_dir, int use_mmap)
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

static void close_region(struct region *r)
{
    if (r->map)
        munmap(r->map, r->map_size);
    close(r->fd);
}

/* Where the bytes at region offset `offset` (count bytes) are in the mapping, or NULL when
 * they are not inside it and must go through pread/pwrite. */
static unsigned char *mapped(const struct region *r, uint64_t offset, uint64_t count)
{
    if (!r->map || offset < r->map_offset || offset + count > r->map_offset + r->map_size)
        return NULL;
    return r->map + (offset - r->map_offset);
}

static void read_data(const struct region *r, uint64_t offset, unsigned char *buf, uint64_t count)
{
    unsigned char *in_map = mapped(r, offset, count);
    if (in_map) {
        memcpy(buf, in_map, count);
        return;
    }
    for (uint64_t done = 0; done < count;) {
        ssize_t n = pread(r->fd, buf + done, count - done, (off_t)(offset + done));
        if (n <= 0)
            die_errno("data read", r);
        done += (uint64_t)n;
    }
}

static void write_data(const struct region *r, uint64_t offset, const unsigned char *buf, uint64_t count)
{
    unsigned char *in_map = mapped(r, offset, count);
    if (in_map) {
        memcpy(in_map, buf, count);
        return;
    }
    for (uint64_t done = 0; done < count;) {
        ssize_t n = pwrite(r->fd, buf + done, count - done, (off_t)(offset + done));
        if (n <= 0)
            die_errno("data write", r);
        done += (uint64_t)n;
    }
}

/* Moves one chunk from src to dst; returns 0 when src had nothing pending. */
static int move_chunk(const struct region *src, const struct region *dst, unsigned char *buf, uint64_t *moved)
{
    if (read64(src, PENDING_BYTES) == 0)
        return 0;
    uint64_t offset = read64(src, DATA_OFFSET);
    uint64_t size = read64(src, DATA_SIZE);
    if (offset < src->section_offset || size > src->section_offset + src->section_size - offset)
        die("the source reported a chunk outside its data section", src->name);
    read_data(src, offset, buf, size);

    /* The destination may have a smaller data section: hand it the chunk in pieces, each
     * written at its data_offset and committed with a data_size write (what QEMU does). */
    for (uint64_t done = 0; done < size;) {
        uint64_t at = read64(dst, DATA_OFFSET);
        uint64_t room = dst->section_offset + dst->section_size - at;
        uint64_t piece = size - done < room ? size - done : room;
        if (at < dst->section_offset || room == 0)
            die("the destination reported a data_offset outside its data section", dst->name);
        write_data(dst, at, buf + done, piece);
        write64(dst, DATA_SIZE, piece);
        done += piece;
    }
    *moved += size;
    return 1;
}

static void create_device(const char *mount, const char *type, char *uuid, size_t cap, char *dir, size_t dir_cap)
{
    char path[4096], line[64];
    read_text("/proc/sys/kernel/random/uuid", line, sizeof line);
    line[strcspn(line, "\n")] = '\0';
    snprintf(uuid, cap, "%s", line);
    snprintf(path, sizeof path, "%s/mdev_supported_types/%s/create", mount, type);
    write_text(path, uuid);
    snprintf(dir, dir_cap, "%s/devices/%s", mount, uuid);
}

static void remove_device(const char *dir)
{
    char path[4096];
    path_of(path, sizeof path, dir, "remove");
    write_text(path, "1");
}

/* Prints the device's violations file and returns how many lines it has. */
static int violations(const char *dir)
{
    char path[4096], text[1 << 16];
    path_of(path, sizeof path, dir, "violations");
    read_text(path, text, sizeof text);
    int lines = 0;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    if (lines)
        fprintf(stderr, "migrate_one: violations of %s:\n%s", dir, text);
    return lines;
}

int main(int argc, char **argv)
{
    const char *mount = NULL, *type = "mdevsim-default";
    int use_mmap = 1, positional = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--pread") == 0)
            use_mmap = 0;
        else if (positional == 0 && ++positional)
            mount = argv[i];
        else if (positional == 1 && ++positional)
            type = argv[i];
        else
            die("usage: migrate_one MOUNT [TYPE] [--pread]", NULL);
    }
    if (!mount)
        die("usage: migrate_one MOUNT [TYPE] [--pread]", NULL);

    char src_uuid[64], dst_uuid[64], src_dir[4096], dst_dir[4096];
    create_device(mount, type, src_uuid, sizeof src_uuid, src_dir, sizeof src_dir);
    create_device(mount, type, dst_uuid, sizeof dst_uuid, dst_dir, sizeof dst_dir);

    struct region src = { .name = "source" }, dst = { .name = "destination" };
    open_region(&src, src_dir, use_mmap);
    open_region(&dst, dst_dir, use_mmap);
    unsigned char *buf = malloc(src.section_size);
    if (!buf)
        die("out of memory", NULL);

    uint64_t moved = 0;
    unsigned chunks = 0;
    set_state(&dst, RESUMING);
    set_state(&src, RUNNING | SAVING);                      /* pre-copy */
    while (chunks < PRECOPY_MAX_CHUNKS && move_chunk(&src, &dst, buf, &moved))
        chunks++;
    set_state(&src, SAVING);                                /* stop-and-copy */
    while (move_chunk(&src, &dst, buf, &moved))
        chunks++;
    set_state(&src, 0);                                     /* stopped: the source's state is final */
    set_state(&dst, RUNNING);                               /* resume done: run the destination */

    char src_digest[128], dst_digest[128], path[4096];
    path_of(path, sizeof path, src_dir, "digest");
    read_text(path, src_digest, sizeof src_digest);
    path_of(path, sizeof path, dst_dir, "digest");
    read_text(path, dst_digest, sizeof dst_digest);
    src_digest[strcspn(src_digest, "\n")] = '\0';
    dst_digest[strcspn(dst_digest, "\n")] = '\0';

    const char *mode = src.map ? "mapped" : "pread/pwrite";
    free(buf);
    close_region(&src);
    close_region(&dst);
    int broken = violations(src_dir) + violations(dst_dir);
    remove_device(src_dir);
    remove_device(dst_dir);
    int equal = strcmp(src_digest, dst_digest) == 0 && src_digest[0] != '\0';
    printf("migrated %s -> %s: %u chunks, %llu bytes, %s data section, digests %s, %d violation(s)\n",
           src_uuid, dst_uuid, chunks, (unsigned long long)moved, mode,
           equal ? "equal" : "DIFFER", broken);
    return equal && broken == 0 ? 0 : 1;
}

/*
 * migrate_one.c: migrate one simulated device to another through an mdevsim mount, using only
 * open/pread/pwrite/mmap on the files of the mount: what a VMM's VFIO migration v1 code does
 * with a device fd, minus the ioctls.
 *
 *   cc -Wall -Wextra -O2 -o migrate_one examples/migrate_one.c    (includes examples/v1_region.h)
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
#define PROGRAM "migrate_one"
/* The header offsets and state bits, struct region, header and data accesses, device files. */
#include "v1_region.h"

/* How many pre-copy chunks to send before stopping the device: a VMM would stop once the
 * remaining bytes fit its downtime budget; a running device keeps dirtying memory. */
#define PRECOPY_MAX_CHUNKS 64

/* A header or data access the device refused: this example gives up (status 2). */
static void access_failed(const char *what, const struct region *r)
{
    die_errno(what, r);
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

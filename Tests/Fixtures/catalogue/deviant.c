/*
 * The checker's catalogue: a correct VFIO migration v1 client (the sequence of
 * examples/migrate_one.c, pread/pwrite unless --mmap) with at most one deliberate deviation.
 *
 *   deviant MOUNT TYPE --deviation NAME [--mmap]
 *
 * NAME is a rule of the checker (docs/vmm-guide.md, "What the checker flags") or a control:
 * `none` (a correct client), `map-then-pwrite` (resume chunk 0 through the mapping, every later
 * one with pwrite: correct, as the rule is per chunk). It prints one line per record of the two
 * devices' `violations` files ("source: {json}" / "destination: {json}"), then
 * "result: ok" or "result: failed: STEP: ERRNO", and removes its devices. Status 0 when the run
 * was as described, 2 when the client itself could not run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

enum { DEVICE_STATE = 0, PENDING_BYTES = 8, DATA_OFFSET = 16, DATA_SIZE = 24 };
enum { RUNNING = 1u << 0, SAVING = 1u << 1, RESUMING = 1u << 2, STATE_MASK = 7u };
#define PRECOPY_MAX_CHUNKS 16

struct region {
    const char *name;
    int fd;
    uint64_t section_offset, section_size, map_offset, map_size;
    unsigned char *map;
};

static const char *deviation = "none";
static jmp_buf failed_step;
static char failure[256];
static unsigned chunk_index; /* source chunks moved so far */

static int is(const char *name) { return strcmp(deviation, name) == 0; }

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "deviant: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(2);
}

/* A step the device refused: the migration stops there (the devices are still cleaned up). */
static void fail(const char *step, const struct region *r)
{
    snprintf(failure, sizeof failure, "%s on %s: %s", step, r->name, strerror(errno));
    longjmp(failed_step, 1);
}

static uint32_t read32(const struct region *r, off_t offset)
{
    uint32_t v;
    if (pread(r->fd, &v, 4, offset) != 4)
        fail("4-byte header read", r);
    return v;
}

static uint64_t read64(const struct region *r, off_t offset)
{
    uint64_t v;
    if (pread(r->fd, &v, 8, offset) != 8)
        fail("8-byte header read", r);
    return v;
}

static void write32(const struct region *r, off_t offset, uint32_t v)
{
    if (pwrite(r->fd, &v, 4, offset) != 4)
        fail("device_state write", r);
}

static void write64(const struct region *r, off_t offset, uint64_t v)
{
    if (pwrite(r->fd, &v, 8, offset) != 8)
        fail("8-byte header write", r);
}

/* The deviation's own access: its answer does not matter, the correct sequence goes on. */
static void try_pread(const struct region *r, void *buf, size_t n, off_t offset) { (void)!pread(r->fd, buf, n, offset); }
static void try_pwrite(const struct region *r, const void *buf, size_t n, off_t offset) { (void)!pwrite(r->fd, buf, n, offset); }

static void set_state(const struct region *r, uint32_t state)
{
    uint32_t old = read32(r, DEVICE_STATE);
    write32(r, DEVICE_STATE, (old & ~STATE_MASK) | state);
}

static void read_text(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        die("open", path);
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
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        die("write", path);
    close(fd);
}

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

static void open_region(struct region *r, const char *dir, int use_mmap)
{
    char path[4200], info[4096];
    snprintf(path, sizeof path, "%s/migration.info", dir);
    read_text(path, info, sizeof info);
    r->section_offset = json_number(info, "data_offset");
    r->section_size = json_number(info, "data_size");
    const char *areas = strstr(info, "\"mmap_areas\"");
    r->map_offset = areas ? json_number(areas, "offset") : 0;
    r->map_size = areas ? json_number(areas, "size") : 0;
    snprintf(path, sizeof path, "%s/migration", dir);
    r->fd = open(path, O_RDWR);
    if (r->fd < 0)
        die("open", path);
    r->map = NULL;
    if (use_mmap) {
        if (r->map_size == 0)
            die("the type offers no mmap area", dir);
        void *map = mmap(NULL, r->map_size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, (off_t)r->map_offset);
        if (map == MAP_FAILED)
            die("mmap of the data section", strerror(errno));
        r->map = map;
    }
}

static void read_data(const struct region *r, uint64_t offset, unsigned char *buf, uint64_t count)
{
    if (r->map) {
        memcpy(buf, r->map + (offset - r->map_offset), count);
        return;
    }
    for (uint64_t done = 0; done < count;) {
        ssize_t n = pread(r->fd, buf + done, count - done, (off_t)(offset + done));
        if (n <= 0)
            fail("data read", r);
        done += (uint64_t)n;
    }
}

static void pwrite_data(const struct region *r, uint64_t offset, const unsigned char *buf, uint64_t count)
{
    for (uint64_t done = 0; done < count;) {
        ssize_t n = pwrite(r->fd, buf + done, count - done, (off_t)(offset + done));
        if (n <= 0)
            fail("data write", r);
        done += (uint64_t)n;
    }
}

static void write_data(const struct region *r, uint64_t offset, const unsigned char *buf, uint64_t count)
{
    int through_map = r->map != NULL;
    if (is("map-then-pwrite"))
        through_map = chunk_index == 0;
    if (through_map)
        memcpy(r->map + (offset - r->map_offset), buf, count);
    else
        pwrite_data(r, offset, buf, count);
}

/* One resume transaction: data_offset, the data, data_size (the deviations change this). */
static void transaction(const struct region *dst, const unsigned char *buf, uint64_t size)
{
    if (is("data-before-data-offset") && chunk_index == 1)
        try_pwrite(dst, buf, size, (off_t)dst->section_offset);
    uint64_t at = read64(dst, DATA_OFFSET);
    if (is("data-outside-window") && chunk_index == 1) {
        unsigned char probe[8];
        try_pread(dst, probe, sizeof probe, (off_t)at);
    }
    if (is("data-size-too-large") && chunk_index == 1) {
        uint64_t too_large = dst->section_size + 1;
        try_pwrite(dst, &too_large, 8, DATA_SIZE);
    }
    if (is("resume-order") && chunk_index == 1) {
        write64(dst, DATA_SIZE, size); /* before the data: refused */
        write_data(dst, at, buf, size);
        return;
    }
    if (is("resume-stream") && chunk_index == 1) {
        write_data(dst, at + 64, buf, size - 64); /* the data at a wrong offset */
        write64(dst, DATA_SIZE, size);
        return;
    }
    if (is("mixed-data-access") && chunk_index == 1) {
        memcpy(dst->map + (at - dst->map_offset), buf, size / 2);
        pwrite_data(dst, at + size / 2, buf + size / 2, size - size / 2);
    } else {
        write_data(dst, at, buf, size);
    }
    write64(dst, DATA_SIZE, size);
}

/* Moves one chunk from src to dst; returns 0 when src had nothing pending. */
static int move_chunk(const struct region *src, const struct region *dst, unsigned char *buf)
{
    if (is("access-width") && chunk_index == 1) {
        uint32_t half;
        try_pread(src, &half, 4, PENDING_BYTES);
    }
    if (is("read-only-write") && chunk_index == 1) {
        uint64_t zero = 0;
        try_pwrite(src, &zero, 8, PENDING_BYTES);
    }
    uint64_t pending = read64(src, PENDING_BYTES);
    if (pending == 0)
        return 0;
    if (is("data-size-without-data-offset") && chunk_index == 1) {
        uint64_t early; /* before data_offset staged the chunk */
        try_pread(src, &early, 8, DATA_SIZE);
    }
    uint64_t offset = read64(src, DATA_OFFSET);
    uint64_t size = read64(src, DATA_SIZE);
    if (offset < src->section_offset || size > src->section_offset + src->section_size - offset)
        die("the source reported a chunk outside its data section", src->name);
    if (is("chunk-not-read") && chunk_index == 1) {
        /* The data is not read: the buffer still holds the last chunk. Strict refuses the
         * pending_bytes read; the client then reads the data, as it should have. */
        uint64_t p;
        if (pread(src->fd, &p, 8, PENDING_BYTES) == 8)
            goto deliver;
        if (errno != EINVAL)
            fail("pending_bytes read", src);
    }
    read_data(src, offset, buf, size);
    if (is("pending-bytes-not-reread") && chunk_index == 1) {
        /* data_offset again without pending_bytes: the same chunk, delivered twice, unless strict refuses. */
        uint64_t again;
        if (pread(src->fd, &again, 8, DATA_OFFSET) == 8) {
            transaction(dst, buf, size);
            chunk_index++;
        } else if (errno != EINVAL) {
            fail("data_offset read", src);
        }
    }
deliver:
    if (is("resume-transactions") && size > 1) {
        /* Each chunk in two transactions, as QEMU does for a smaller destination section. */
        transaction(dst, buf, size / 2);
        transaction(dst, buf + size / 2, size - size / 2);
    } else {
        transaction(dst, buf, size);
    }
    if (is("empty-resume-transaction") && chunk_index == 1) {
        (void)read64(dst, DATA_OFFSET);
        uint64_t zero = 0;
        try_pwrite(dst, &zero, 8, DATA_SIZE);
    }
    if (is("data-size-outside-resume") && chunk_index == 1)
        try_pwrite(src, &size, 8, DATA_SIZE);
    if (is("incomplete-resume") && chunk_index == 1) {
        uint32_t running = (read32(dst, DEVICE_STATE) & ~STATE_MASK) | RUNNING;
        try_pwrite(dst, &running, 4, DEVICE_STATE);
    }
    chunk_index++;
    return 1;
}

static void create_device(const char *mount, const char *type, char *dir, size_t cap)
{
    char path[4200], uuid[64];
    read_text("/proc/sys/kernel/random/uuid", uuid, sizeof uuid);
    uuid[strcspn(uuid, "\n")] = '\0';
    snprintf(path, sizeof path, "%s/mdev_supported_types/%s/create", mount, type);
    write_text(path, uuid);
    snprintf(dir, cap, "%s/devices/%s", mount, uuid);
}

static void print_violations(const char *role, const char *dir)
{
    char path[4200];
    static char text[1 << 18];
    snprintf(path, sizeof path, "%s/violations", dir);
    read_text(path, text, sizeof text);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        printf("%s: %s\n", role, line);
}

int main(int argc, char **argv)
{
    const char *mount = NULL, *type = NULL;
    int use_mmap = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mmap") == 0)
            use_mmap = 1;
        else if (strcmp(argv[i], "--deviation") == 0 && i + 1 < argc)
            deviation = argv[++i];
        else if (!mount)
            mount = argv[i];
        else if (!type)
            type = argv[i];
        else
            die("usage: deviant MOUNT TYPE --deviation NAME [--mmap]", NULL);
    }
    if (!mount || !type)
        die("usage: deviant MOUNT TYPE --deviation NAME [--mmap]", NULL);
    if (is("mixed-data-access") || is("map-then-pwrite"))
        use_mmap = 1;

    char src_dir[4096], dst_dir[4096];
    create_device(mount, type, src_dir, sizeof src_dir);
    create_device(mount, type, dst_dir, sizeof dst_dir);
    struct region src = { .name = "source" }, dst = { .name = "destination" };
    open_region(&src, src_dir, use_mmap && !is("mixed-data-access") && !is("map-then-pwrite"));
    open_region(&dst, dst_dir, use_mmap);
    unsigned char *buf = calloc(1, src.section_size);
    if (!buf)
        die("out of memory", NULL);

    if (setjmp(failed_step) == 0) {
        if (is("concurrent-open")) {
            char path[4200];
            snprintf(path, sizeof path, "%s/migration", src_dir);
            int second = open(path, O_RDWR);
            if (second >= 0)
                close(second);
        }
        if (is("invalid-state")) {
            uint32_t bad = (read32(&dst, DEVICE_STATE) & ~STATE_MASK) | RESUMING | RUNNING;
            try_pwrite(&dst, &bad, 4, DEVICE_STATE);
        }
        set_state(&dst, RESUMING);
        if (is("reserved-bits"))
            write32(&src, DEVICE_STATE, (read32(&src, DEVICE_STATE) & STATE_MASK) | RUNNING | SAVING | (1u << 8));
        else
            set_state(&src, RUNNING | SAVING);
        while (chunk_index < PRECOPY_MAX_CHUNKS && move_chunk(&src, &dst, buf))
            ;
        set_state(&src, SAVING);
        if (is("stop-with-pending-bytes")) {
            /* Stop with bytes pending: strict refuses it and the client goes on; otherwise the
             * source stopped and the stream is lost. */
            uint32_t stop = read32(&src, DEVICE_STATE) & ~STATE_MASK;
            if (pwrite(src.fd, &stop, 4, DEVICE_STATE) == 4) {
                errno = ECANCELED;
                fail("stop-and-copy -> stop with bytes pending", &src);
            }
        }
        while (move_chunk(&src, &dst, buf))
            ;
        if (is("read-after-pending-zero")) {
            uint64_t v;
            try_pread(&src, &v, 8, DATA_OFFSET);
            try_pread(&src, &v, 8, DATA_SIZE);
        }
        set_state(&src, 0);
        set_state(&dst, RUNNING);
        printf("result: ok\n");
    } else {
        printf("result: failed: %s\n", failure);
    }
    free(buf);
    if (src.map)
        munmap(src.map, src.map_size);
    if (dst.map)
        munmap(dst.map, dst.map_size);
    close(src.fd);
    close(dst.fd);
    print_violations("source", src_dir);
    print_violations("destination", dst_dir);
    char path[4200];
    snprintf(path, sizeof path, "%s/remove", src_dir);
    write_text(path, "1");
    snprintf(path, sizeof path, "%s/remove", dst_dir);
    write_text(path, "1");
    return 0;
}

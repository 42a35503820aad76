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
#include <setjmp.h>
#define PROGRAM "deviant"
/* The helpers the example shares (header offsets and state bits, struct region, header and
 * data accesses, device files): each exists once, in the example's header. */
#include "../../../examples/v1_region.h"

#define PRECOPY_MAX_CHUNKS 16

static const char *deviation = "none";
static jmp_buf failed_step;
static char failure[256];
static unsigned chunk_index; /* source chunks moved so far */

static int is(const char *name) { return strcmp(deviation, name) == 0; }

/* A step the device refused: the migration stops there (the devices are still cleaned up).
 * Only called once the migration runs: setjmp has set failed_step. */
static void access_failed(const char *step, const struct region *r)
{
    snprintf(failure, sizeof failure, "%s on %s: %s", step, r->name, strerror(errno));
    longjmp(failed_step, 1);
}

/* The deviation's own access: its answer does not matter, the correct sequence goes on. */
static void try_pread(const struct region *r, void *buf, size_t n, off_t offset) { (void)!pread(r->fd, buf, n, offset); }
static void try_pwrite(const struct region *r, const void *buf, size_t n, off_t offset) { (void)!pwrite(r->fd, buf, n, offset); }

/* Opens a region, mapped when asked; a catalogue case that asks for the mapping needs one. */
static void open_case_region(struct region *r, const char *dir, int use_mmap)
{
    open_region(r, dir, use_mmap);
    if (use_mmap && !r->map)
        die("the type offers no mmap area", dir);
}

/* A resume chunk's data: through the mapping when the destination has one, else with pwrite
 * (map-then-pwrite: chunk 0 through the mapping, every later one with pwrite). */
static void deliver_data(const struct region *r, uint64_t offset, const unsigned char *buf, uint64_t count)
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
        deliver_data(dst, at, buf, size);
        return;
    }
    if (is("resume-stream") && chunk_index == 1) {
        deliver_data(dst, at + 64, buf, size - 64); /* the data at a wrong offset */
        write64(dst, DATA_SIZE, size);
        return;
    }
    if (is("mixed-data-access") && chunk_index == 1) {
        memcpy(dst->map + (at - dst->map_offset), buf, size / 2);
        pwrite_data(dst, at + size / 2, buf + size / 2, size - size / 2);
    } else {
        deliver_data(dst, at, buf, size);
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
            access_failed("pending_bytes read", src);
    }
    read_data(src, offset, buf, size);
    if (is("pending-bytes-not-reread") && chunk_index == 1) {
        /* data_offset again without pending_bytes: the same chunk, delivered twice, unless strict refuses. */
        uint64_t again;
        if (pread(src->fd, &again, 8, DATA_OFFSET) == 8) {
            transaction(dst, buf, size);
            chunk_index++;
        } else if (errno != EINVAL) {
            access_failed("data_offset read", src);
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

static void print_violations(const char *role, const char *dir)
{
    char path[4096];
    static char text[1 << 18];
    path_of(path, sizeof path, dir, "violations");
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

    char src_uuid[64], dst_uuid[64], src_dir[4096], dst_dir[4096];
    create_device(mount, type, src_uuid, sizeof src_uuid, src_dir, sizeof src_dir);
    create_device(mount, type, dst_uuid, sizeof dst_uuid, dst_dir, sizeof dst_dir);
    struct region src = { .name = "source" }, dst = { .name = "destination" };
    open_case_region(&src, src_dir, use_mmap && !is("mixed-data-access") && !is("map-then-pwrite"));
    open_case_region(&dst, dst_dir, use_mmap);
    unsigned char *buf = calloc(1, src.section_size);
    if (!buf)
        die("out of memory", NULL);

    if (setjmp(failed_step) == 0) {
        if (is("concurrent-open")) {
            char path[4096];
            path_of(path, sizeof path, src_dir, "migration");
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
                access_failed("stop-and-copy -> stop with bytes pending", &src);
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
    close_region(&src);
    close_region(&dst);
    print_violations("source", src_dir);
    print_violations("destination", dst_dir);
    remove_device(src_dir);
    remove_device(dst_dir);
    return 0;
}

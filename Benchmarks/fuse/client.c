// region_client: the measuring client of `scripts/bench-fuse.sh`, in C so that what is timed is
// the syscalls and the daemons, not the client's language runtime. The same binary and the same
// loops measure the bare C daemon (bare_region.c) and mdevsim, interleaved in one run.
//
// It is driven over stdin/stdout by `mdevsim-bench fuse`, one command a line, one answer a line
// ("ok ..." with integers, or "error MESSAGE"), so that its files stay open across the repeats:
//
//   open ID PATH MAP          open PATH O_RDWR as slot ID (0..15); MAP 1 maps the data section
//   close ID
//   state ID VALUE            4-byte write of device_state
//   get ID OFFSET             8-byte pread at OFFSET                     -> ok VALUE
//   touch ID                  read one byte of the mapping (a page fault: the daemon then knows
//                             the client uses the mapping and keeps the page cache coherent)
//   header ID COUNT           COUNT x pread(8 bytes @ 8)                 -> ok NS
//   pread ID SIZE COUNT       COUNT x pread(SIZE bytes @ 4096)           -> ok NS
//   mapped SRC DST MAX        the VMM's chunk loop through the mappings  -> ok CHUNKS BYTES TOTAL
//                             STORE PREFILL COPY RETRIEVE OTHER CLIENT_FAULTS
//   rw SRC DST MAX            the same loop with pread / pwrite of the data -> ok CHUNKS BYTES
//                             TOTAL SAVE RESUME (SAVE: source data_offset, data_size, pread,
//                             pending_bytes; RESUME: destination data_offset, pwrite, data_size)
//   memcpy SIZE COUNT         memcpy of SIZE-byte pieces between pre-faulted buffers -> ok NS
//   quit
//
// All times are CLOCK_MONOTONIC nanoseconds. Loops stop when pending_bytes reads 0 or after MAX
// chunks (MAX 0: no limit).
//
// Build: cc -O2 -Wall -Wextra -Werror -o region_client client.c
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define HEADER_PAGE 4096
#define SECTION (1u << 20)
#define SLOTS 16
#define OFF_STATE 0
#define OFF_PENDING 8
#define OFF_DATA_OFFSET 16
#define OFF_DATA_SIZE 24

struct slot {
    int fd;
    unsigned char *map;
};

static struct slot slots[SLOTS];
static unsigned char *buffer; // pre-faulted, for preads and pwrites

static inline uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static long minor_faults(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_minflt;
}

static char error_text[512];

static int fail(const char *what, long got) {
    snprintf(error_text, sizeof error_text, "%s returned %ld (errno %d, %s)", what, got, errno, strerror(errno));
    return -1;
}

static int read8(int fd, off_t off, uint64_t *value) {
    ssize_t n = pread(fd, value, 8, off);
    if (n != 8) return fail("pread of 8 header bytes", (long)n);
    return 0;
}

static int write8(int fd, off_t off, uint64_t value) {
    ssize_t n = pwrite(fd, &value, 8, off);
    if (n != 8) return fail("pwrite of 8 header bytes", (long)n);
    return 0;
}

static struct slot *slot_of(long id) {
    if (id < 0 || id >= SLOTS || slots[id].fd < 0) {
        snprintf(error_text, sizeof error_text, "slot %ld is not open", id);
        return NULL;
    }
    return &slots[id];
}

static int cmd_open(long id, const char *path, long map) {
    if (id < 0 || id >= SLOTS) return fail("slot number", id);
    if (slots[id].fd >= 0) { close(slots[id].fd); slots[id].fd = -1; }
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return fail("open", fd);
    slots[id].fd = fd;
    slots[id].map = NULL;
    if (map) {
        void *p = mmap(NULL, SECTION, PROT_READ | PROT_WRITE, MAP_SHARED, fd, HEADER_PAGE);
        if (p == MAP_FAILED) return fail("mmap(MAP_SHARED) of the data section", -1);
        slots[id].map = p;
    }
    return 0;
}

static void cmd_close(long id) {
    if (id < 0 || id >= SLOTS || slots[id].fd < 0) return;
    if (slots[id].map) munmap(slots[id].map, SECTION);
    close(slots[id].fd);
    slots[id].fd = -1;
    slots[id].map = NULL;
}

/// The VMM's chunk loop through the mappings (what QEMU 7.2 does with a mappable data section).
static int cmd_mapped(struct slot *s, struct slot *d, long max, char *answer, size_t len) {
    if (!s->map || !d->map) { snprintf(error_text, sizeof error_text, "mapped needs both data sections mapped"); return -1; }
    uint64_t chunks = 0, bytes = 0, store = 0, prefill = 0, copy = 0, retrieve = 0, other = 0;
    long faults = minor_faults();
    uint64_t start = now_ns(), a = start, b, pending, offset, size, doff;
    if (read8(s->fd, OFF_PENDING, &pending)) return -1;
    b = now_ns(); other += b - a;
    while (pending > 0 && (max == 0 || chunks < (uint64_t)max)) {
        a = b;
        if (read8(s->fd, OFF_DATA_OFFSET, &offset)) return -1;
        b = now_ns(); store += b - a; a = b;
        if (read8(s->fd, OFF_DATA_SIZE, &size)) return -1;
        b = now_ns(); other += b - a; a = b;
        if (size == 0) break;
        if (read8(d->fd, OFF_DATA_OFFSET, &doff)) return -1;
        b = now_ns(); prefill += b - a; a = b;
        if (offset < HEADER_PAGE || doff < HEADER_PAGE || offset - HEADER_PAGE + size > SECTION || doff - HEADER_PAGE + size > SECTION) {
            snprintf(error_text, sizeof error_text, "data_offset %" PRIu64 "/%" PRIu64 " size %" PRIu64 " outside the section", offset, doff, size);
            return -1;
        }
        memcpy(d->map + (doff - HEADER_PAGE), s->map + (offset - HEADER_PAGE), size);
        b = now_ns(); copy += b - a; a = b;
        if (write8(d->fd, OFF_DATA_SIZE, size)) return -1;
        b = now_ns(); retrieve += b - a; a = b;
        if (read8(s->fd, OFF_PENDING, &pending)) return -1;
        b = now_ns(); other += b - a;
        chunks++;
        bytes += size;
    }
    snprintf(answer, len, "ok %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %ld",
             chunks, bytes, b - start, store, prefill, copy, retrieve, other, minor_faults() - faults);
    return 0;
}

/// The same loop with the data moved by pread and pwrite (a VMM that does not map the section).
static int cmd_rw(struct slot *s, struct slot *d, long max, char *answer, size_t len) {
    uint64_t chunks = 0, bytes = 0, save = 0, resume = 0, pending, offset, size, doff;
    uint64_t start = now_ns(), a = start, b;
    if (read8(s->fd, OFF_PENDING, &pending)) return -1;
    b = now_ns(); save += b - a;
    while (pending > 0 && (max == 0 || chunks < (uint64_t)max)) {
        a = b;
        if (read8(s->fd, OFF_DATA_OFFSET, &offset)) return -1;
        if (read8(s->fd, OFF_DATA_SIZE, &size)) return -1;
        if (size == 0) break;
        if (size > SECTION) { snprintf(error_text, sizeof error_text, "data_size %" PRIu64 " > 1 MiB", size); return -1; }
        ssize_t n = pread(s->fd, buffer, size, (off_t)offset);
        if (n != (ssize_t)size) return fail("pread of the chunk", (long)n);
        b = now_ns(); save += b - a; a = b;
        if (read8(d->fd, OFF_DATA_OFFSET, &doff)) return -1;
        n = pwrite(d->fd, buffer, size, (off_t)doff);
        if (n != (ssize_t)size) return fail("pwrite of the chunk", (long)n);
        if (write8(d->fd, OFF_DATA_SIZE, size)) return -1;
        b = now_ns(); resume += b - a; a = b;
        if (read8(s->fd, OFF_PENDING, &pending)) return -1;
        b = now_ns(); save += b - a;
        chunks++;
        bytes += size;
    }
    snprintf(answer, len, "ok %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64, chunks, bytes, b - start, save, resume);
    return 0;
}

static int cmd_memcpy(long size, long count, char *answer, size_t len) {
    if (size <= 0 || size > (long)SECTION) return fail("memcpy size", size);
    unsigned char *src = buffer, *dst = aligned_alloc(4096, SECTION);
    if (!dst) return fail("aligned_alloc", 0);
    memset(dst, 0, SECTION);
    unsigned check = 0;
    uint64_t start = now_ns();
    for (long i = 0; i < count; i++) {
        src[(i * 4099) % size] = (unsigned char)i; // each piece differs, and is observed
        memcpy(dst, src, (size_t)size);
        __asm__ volatile("" : : "r"(dst) : "memory");
        check += dst[(i * 4099) % size];
    }
    uint64_t ns = now_ns() - start;
    free(dst);
    snprintf(answer, len, "ok %" PRIu64 " %u", ns, check);
    return 0;
}

int main(void) {
    for (int i = 0; i < SLOTS; i++) slots[i].fd = -1;
    buffer = aligned_alloc(4096, SECTION);
    if (!buffer) return 1;
    memset(buffer, 0x33, SECTION);
    setvbuf(stdout, NULL, _IOLBF, 0);
    char line[4200], path[4097], answer[512];
    while (fgets(line, sizeof line, stdin)) {
        long x = 0, y = 0, z = 0;
        int rc = 0;
        error_text[0] = 0;
        snprintf(answer, sizeof answer, "ok");
        if (sscanf(line, "open %ld %4096s %ld", &x, path, &y) == 3) {
            rc = cmd_open(x, path, y);
        } else if (sscanf(line, "close %ld", &x) == 1) {
            cmd_close(x);
        } else if (sscanf(line, "state %ld %ld", &x, &y) == 2) {
            struct slot *s = slot_of(x);
            uint32_t v = (uint32_t)y;
            if (!s) rc = -1;
            else if (pwrite(s->fd, &v, 4, OFF_STATE) != 4) rc = fail("device_state write", y);
        } else if (sscanf(line, "get %ld %ld", &x, &y) == 2) {
            struct slot *s = slot_of(x);
            uint64_t v = 0;
            if (!s) rc = -1;
            else if ((rc = read8(s->fd, (off_t)y, &v)) == 0) snprintf(answer, sizeof answer, "ok %" PRIu64, v);
        } else if (sscanf(line, "touch %ld", &x) == 1) {
            struct slot *s = slot_of(x);
            if (!s || !s->map) rc = s ? fail("touch of an unmapped slot", x) : -1;
            else { volatile unsigned char c = s->map[0]; (void)c; }
        } else if (sscanf(line, "header %ld %ld", &x, &y) == 2) {
            struct slot *s = slot_of(x);
            uint64_t v;
            if (!s) rc = -1;
            else {
                uint64_t start = now_ns();
                for (long i = 0; i < y && rc == 0; i++) rc = read8(s->fd, OFF_PENDING, &v);
                snprintf(answer, sizeof answer, "ok %" PRIu64, now_ns() - start);
            }
        } else if (sscanf(line, "pread %ld %ld %ld", &x, &y, &z) == 3) {
            struct slot *s = slot_of(x);
            if (!s) rc = -1;
            else if (y <= 0 || y > (long)SECTION) rc = fail("pread size", y);
            else {
                uint64_t start = now_ns();
                for (long i = 0; i < z && rc == 0; i++) {
                    ssize_t n = pread(s->fd, buffer, (size_t)y, HEADER_PAGE);
                    if (n != y) rc = fail("pread of the data section", (long)n);
                }
                snprintf(answer, sizeof answer, "ok %" PRIu64, now_ns() - start);
            }
        } else if (sscanf(line, "mapped %ld %ld %ld", &x, &y, &z) == 3) {
            struct slot *s = slot_of(x), *d = slot_of(y);
            rc = s && d ? cmd_mapped(s, d, z, answer, sizeof answer) : -1;
        } else if (sscanf(line, "rw %ld %ld %ld", &x, &y, &z) == 3) {
            struct slot *s = slot_of(x), *d = slot_of(y);
            rc = s && d ? cmd_rw(s, d, z, answer, sizeof answer) : -1;
        } else if (sscanf(line, "memcpy %ld %ld", &x, &y) == 2) {
            rc = cmd_memcpy(x, y, answer, sizeof answer);
        } else if (strncmp(line, "quit", 4) == 0) {
            break;
        } else {
            rc = -1;
            snprintf(error_text, sizeof error_text, "unknown command");
        }
        if (rc) printf("error %s\n", error_text[0] ? error_text : "failed");
        else printf("%s\n", answer);
    }
    for (int i = 0; i < SLOTS; i++) cmd_close(i);
    free(buffer);
    return 0;
}

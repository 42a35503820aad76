// bare_region: the baseline of `scripts/bench-fuse.sh`. A bare libfuse 3.14 low-level daemon that
// does, with no migration engine, what mdevsim's region file does over FUSE:
//
//   - an 8-byte read at offset 8 ("pending_bytes") answers a counter;
//   - other reads answer from an in-memory buffer (the 1 MiB "data section" at offset 4096;
//     zeros for the rest of the header page), straight from the buffer (no copy);
//   - an 8-byte read at offset 16 ("data_offset") first pushes the whole 1 MiB buffer into the
//     kernel's page cache with fuse_lowlevel_notify_store, then answers 4096 (mdevsim: the save
//     side stores the staged chunk; the resume side pre-fills the mapping the same way);
//   - an 8-byte read at offset 24 ("data_size") answers 1 MiB;
//   - an 8-byte write at offset 24 ("data_size") is held while fuse_lowlevel_notify_retrieve
//     fetches the client's stores (up to the written value) back from the page cache; the
//     retrieve_reply callback copies them into the buffer and answers the held write;
//   - writeback WRITEs (fi->writepage) are copied into the buffer; other writes too;
//   - the store and the retrieve happen only once the file's mapping was seen in use (a page
//     fault: a read without lock owner, or a writeback), as mdevsim's RegionFile does, so a
//     pread/pwrite client pays for neither.
//
// Set-up identical to mdevsim's (Sources/MdevFS/MdevMount.swift, Sources/FUSEKit, Sources/CFuse3):
// FUSE_USE_VERSION 35, options `-o fsname=...,subtype=...` only, conn->max_write = 1 MiB,
// conn->max_readahead = 0, every open answered with direct_io, FUSE_DIRECT_IO_ALLOW_MMAP (INIT
// flags2 bit 4) negotiated by patching libfuse's INIT reply through fuse_session_custom_io
// (the read hook notes the kernel's offer, the writev hook sets the bit), and the multi-threaded
// loop fuse_session_loop_mt_312 with clone_fd 0, max_threads 10, libfuse's default idle threads.
//
// Files: /region0 .. /regionN-1 (N = 4 unless told), each 4096 + 1 MiB bytes with its own buffer
// (save on one, resume on another, as mdevsim's two devices): region0/1 for the mapped loop,
// region2/3 for the pread/pwrite loop (never mapped, so never stored to or retrieved from); the
// concurrency baseline gives each of its pairs four more (4i..4i+3, the same two roles).
//
// Usage: bare_region MOUNTPOINT [N]  (foreground; SIGTERM/SIGINT/SIGHUP unmount and exit)
// Build: cc -O2 -Wall -Wextra -Werror -o bare_region bare_region.c $(pkg-config --cflags --libs fuse3) -lpthread
#define FUSE_USE_VERSION 35
#define _GNU_SOURCE
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

// Declared by <fuse_lowlevel.h> only at FUSE_USE_VERSION >= 312; exported by libfuse >= 3.12.
// Same choice as Sources/CFuse3/shim.h.
int fuse_session_loop_mt_312(struct fuse_session *se, struct fuse_loop_config *config);

#define HEADER_PAGE 4096u
#define SECTION (1u << 20)
#define REGION_SIZE (HEADER_PAGE + SECTION)
#define MAX_REGIONS 1024
#define ALLOW_MMAP_FLAGS2_BIT (1u << 4) // FUSE_DIRECT_IO_ALLOW_MMAP >> 32
#define OPCODE_INIT 26u

struct region {
    fuse_ino_t ino;
    const char *name;
    unsigned char *data; // the data section
    atomic_uint_fast64_t counter;
    // Set by the first page fault (a read without lock owner) or writeback: as mdevsim
    // (RegionFile: "a pread/pwrite client costs nothing extra"), the page cache is kept coherent
    // (store on data_offset, retrieve on data_size) only once the client uses the mapping.
    atomic_bool mapped;
};

// Region i is inode i + 2, named "region<i>".
static struct region *regions;
static int nregions = 4;
static struct fuse_session *session;
static time_t mount_time;

// ---- FUSE_DIRECT_IO_ALLOW_MMAP negotiation (custom io) ----------------------------------------

static pthread_mutex_t negotiation_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool negotiation_done;
static uint64_t init_unique;
static bool init_seen, kernel_offers, patched;

static ssize_t hook_read(int fd, void *buf, size_t len, void *userdata) {
    (void)userdata;
    ssize_t n = read(fd, buf, len);
    const size_t hdr = sizeof(struct fuse_in_header);
    if (n > 0 && !atomic_load_explicit(&negotiation_done, memory_order_relaxed)
        && (size_t)n >= hdr + offsetof(struct fuse_init_in, flags) + 4) {
        const struct fuse_in_header *in = buf;
        if (in->opcode == OPCODE_INIT) {
            const struct fuse_init_in *init = (const void *)((const char *)buf + hdr);
            uint32_t flags2 = 0;
            if ((init->flags & FUSE_INIT_EXT) && (size_t)n >= hdr + offsetof(struct fuse_init_in, flags2) + 4)
                flags2 = init->flags2;
            pthread_mutex_lock(&negotiation_lock);
            init_seen = true;
            init_unique = in->unique;
            kernel_offers = (init->flags & FUSE_INIT_EXT) && (flags2 & ALLOW_MMAP_FLAGS2_BIT);
            pthread_mutex_unlock(&negotiation_lock);
        }
    }
    return n;
}

static ssize_t hook_writev(int fd, struct iovec *iov, int count, void *userdata) {
    (void)userdata;
    if (!atomic_load_explicit(&negotiation_done, memory_order_relaxed) && count >= 2
        && iov[0].iov_len >= sizeof(struct fuse_out_header)) {
        struct fuse_out_header *out = iov[0].iov_base;
        pthread_mutex_lock(&negotiation_lock);
        if (init_seen && out->unique == init_unique) {
            atomic_store(&negotiation_done, true);
            if (kernel_offers && out->error == 0 && iov[1].iov_len >= offsetof(struct fuse_init_out, flags2) + 4) {
                struct fuse_init_out *body = iov[1].iov_base;
                body->flags |= FUSE_INIT_EXT;
                body->flags2 |= ALLOW_MMAP_FLAGS2_BIT;
                patched = true;
            }
        }
        pthread_mutex_unlock(&negotiation_lock);
    }
    return writev(fd, iov, count);
}

// ---- file system ----------------------------------------------------------------------------

static struct region *region_of(fuse_ino_t ino) {
    return ino >= 2 && ino < (fuse_ino_t)nregions + 2 ? &regions[ino - 2] : NULL;
}

static void fill_stat(fuse_ino_t ino, struct stat *st) {
    memset(st, 0, sizeof *st);
    st->st_ino = ino;
    st->st_uid = getuid();
    st->st_gid = getgid();
    st->st_atime = st->st_mtime = st->st_ctime = mount_time;
    if (ino == FUSE_ROOT_ID) {
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = 2;
    } else {
        st->st_mode = S_IFREG | 0600;
        st->st_nlink = 1;
        st->st_size = REGION_SIZE;
    }
}

static void op_init(void *userdata, struct fuse_conn_info *conn) {
    (void)userdata;
    conn->max_write = SECTION;
    conn->max_readahead = 0;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
    if (parent != FUSE_ROOT_ID) { fuse_reply_err(req, ENOENT); return; }
    for (int i = 0; i < nregions; i++) {
        if (strcmp(name, regions[i].name) == 0) {
            struct fuse_entry_param e;
            memset(&e, 0, sizeof e);
            e.ino = regions[i].ino;
            fill_stat(e.ino, &e.attr);
            fuse_reply_entry(req, &e); // timeouts 0, as mdevsim
            return;
        }
    }
    fuse_reply_err(req, ENOENT);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    (void)fi;
    if (ino != FUSE_ROOT_ID && !region_of(ino)) { fuse_reply_err(req, ENOENT); return; }
    struct stat st;
    fill_stat(ino, &st);
    fuse_reply_attr(req, &st, 0);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    if (ino != FUSE_ROOT_ID) { fuse_reply_err(req, ENOTDIR); return; }
    fi->fh = 0;
    fuse_reply_open(req, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
    (void)fi;
    if (ino != FUSE_ROOT_ID) { fuse_reply_err(req, ENOTDIR); return; }
    char buf[1024];
    size_t used = 0;
    for (off_t i = off; i < nregions + 2; i++) {
        const char *name = i == 0 ? "." : i == 1 ? ".." : regions[i - 2].name;
        fuse_ino_t ino = i < 2 ? FUSE_ROOT_ID : regions[i - 2].ino;
        struct stat st;
        fill_stat(ino, &st);
        size_t need = fuse_add_direntry(req, NULL, 0, name, NULL, 0);
        if (used + need > size || used + need > sizeof buf) break;
        fuse_add_direntry(req, buf + used, sizeof buf - used, name, &st, i + 1);
        used += need;
    }
    fuse_reply_buf(req, buf, used);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    if (!region_of(ino)) { fuse_reply_err(req, ino == FUSE_ROOT_ID ? EISDIR : ENOENT); return; }
    fi->direct_io = 1; // every pread/pwrite reaches the daemon with its exact offset and size
    fuse_reply_open(req, fi);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    (void)ino; (void)fi;
    fuse_reply_err(req, 0);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    (void)ino; (void)fi;
    fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
    (void)ino; (void)datasync; (void)fi;
    fuse_reply_err(req, 0);
}

static void reply_u64(fuse_req_t req, uint64_t value) {
    fuse_reply_buf(req, (const char *)&value, 8); // little-endian host
}

/// Pushes the whole data section into the page cache (mdevsim: RegionFile.store).
static void store_section(struct region *r) {
    struct fuse_bufvec bufv = FUSE_BUFVEC_INIT(SECTION);
    bufv.buf[0].mem = r->data;
    int rc = fuse_lowlevel_notify_store(session, r->ino, HEADER_PAGE, &bufv, FUSE_BUF_NO_SPLICE);
    if (rc != 0) fprintf(stderr, "bare_region: notify_store: %s\n", strerror(-rc));
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
    struct region *r = region_of(ino);
    if (!r) { fuse_reply_err(req, EISDIR); return; }
    if (fi->lock_owner == 0) atomic_store_explicit(&r->mapped, true, memory_order_relaxed);
    if (off >= (off_t)HEADER_PAGE) {
        // Data section: page faults and direct reads alike, straight from the buffer.
        size_t start = (size_t)off - HEADER_PAGE;
        if (start >= SECTION) { fuse_reply_buf(req, NULL, 0); return; }
        size_t n = size < SECTION - start ? size : SECTION - start;
        fuse_reply_buf(req, (const char *)r->data + start, n);
        return;
    }
    if (size == 8 && off == 8) { // "pending_bytes"
        reply_u64(req, atomic_fetch_add_explicit(&r->counter, 1, memory_order_relaxed) + 1);
        return;
    }
    if (size == 8 && off == 16) { // "data_offset": the bytes reach the page cache before the answer
        if (atomic_load_explicit(&r->mapped, memory_order_relaxed)) store_section(r);
        reply_u64(req, HEADER_PAGE);
        return;
    }
    if (size == 8 && off == 24) { // "data_size"
        reply_u64(req, SECTION);
        return;
    }
    // Elsewhere in the header page: zeros.
    static const char zeros[HEADER_PAGE];
    size_t n = (size_t)off + size <= HEADER_PAGE ? size : HEADER_PAGE - (size_t)off;
    fuse_reply_buf(req, zeros, n);
}

static void copy_into_section(struct region *r, off_t off, const void *buf, size_t size) {
    if (off < (off_t)HEADER_PAGE) return;
    size_t start = (size_t)off - HEADER_PAGE;
    if (start >= SECTION) return;
    size_t n = size < SECTION - start ? size : SECTION - start;
    memcpy(r->data + start, buf, n);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi) {
    struct region *r = region_of(ino);
    if (!r) { fuse_reply_err(req, EISDIR); return; }
    if (fi->writepage) { // a late writeback of a mapped page
        atomic_store_explicit(&r->mapped, true, memory_order_relaxed);
        copy_into_section(r, off, buf, size);
        fuse_reply_write(req, size);
        return;
    }
    if (off == 24 && size == 8) { // "data_size": hold the write, fetch the client's stores back
        uint64_t value;
        memcpy(&value, buf, 8);
        if (value > 0 && value <= SECTION && atomic_load_explicit(&r->mapped, memory_order_relaxed)) {
            int rc = fuse_lowlevel_notify_retrieve(session, ino, value, HEADER_PAGE, req);
            if (rc == 0) return; // answered by op_retrieve_reply
            fprintf(stderr, "bare_region: notify_retrieve: %s\n", strerror(-rc));
        }
        fuse_reply_write(req, size);
        return;
    }
    copy_into_section(r, off, buf, size);
    fuse_reply_write(req, size);
}

static void op_retrieve_reply(fuse_req_t req, void *cookie, fuse_ino_t ino, off_t offset, struct fuse_bufvec *bufv) {
    struct region *r = region_of(ino);
    fuse_req_t held = cookie;
    if (r && offset >= (off_t)HEADER_PAGE) {
        size_t start = (size_t)offset - HEADER_PAGE;
        size_t size = fuse_buf_size(bufv);
        if (start < SECTION) {
            size_t n = size < SECTION - start ? size : SECTION - start;
            struct fuse_bufvec dst = FUSE_BUFVEC_INIT(n);
            dst.buf[0].mem = r->data + start;
            ssize_t copied = fuse_buf_copy(&dst, bufv, FUSE_BUF_NO_SPLICE);
            if (copied < 0) fprintf(stderr, "bare_region: retrieve copy: %s\n", strerror((int)-copied));
        }
    }
    fuse_reply_none(req);
    fuse_reply_write(held, 8);
}

static const struct fuse_lowlevel_ops ops = {
    .init = op_init,
    .lookup = op_lookup,
    .getattr = op_getattr,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .open = op_open,
    .release = op_release,
    .flush = op_flush,
    .fsync = op_fsync,
    .read = op_read,
    .write = op_write,
    .retrieve_reply = op_retrieve_reply,
};

int main(int argc, char *argv[]) {
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: %s MOUNTPOINT [REGIONS]\n", argv[0]);
        return 2;
    }
    if (argc == 3) {
        char *end;
        long n = strtol(argv[2], &end, 10);
        if (*end || n < 4 || n > MAX_REGIONS) {
            fprintf(stderr, "bare_region: REGIONS must be 4..%d, got '%s'\n", MAX_REGIONS, argv[2]);
            return 2;
        }
        nregions = (int)n;
    }
    mount_time = time(NULL);
    regions = calloc((size_t)nregions, sizeof *regions);
    if (!regions) return 1;
    for (int i = 0; i < nregions; i++) {
        regions[i].ino = (fuse_ino_t)i + 2;
        char name[32];
        snprintf(name, sizeof name, "region%d", i);
        regions[i].name = strdup(name);
        if (!regions[i].name || posix_memalign((void **)&regions[i].data, 4096, SECTION) != 0) return 1;
        memset(regions[i].data, 0x5a + i, SECTION);
    }
    char *args_v[] = { argv[0], "-o", "fsname=bare_region", "-o", "subtype=bare_region" };
    struct fuse_args args = FUSE_ARGS_INIT(5, args_v);
    session = fuse_session_new(&args, &ops, sizeof ops, NULL);
    if (!session) return 1;
    int rc = 1;
    if (fuse_set_signal_handlers(session) != 0) goto destroy;
    if (fuse_session_mount(session, argv[1]) != 0) goto signals;
    struct fuse_custom_io io = { .writev = hook_writev, .read = hook_read };
    if (fuse_session_custom_io(session, &io, fuse_session_fd(session)) != 0) {
        fprintf(stderr, "bare_region: fuse_session_custom_io failed\n");
        goto unmount;
    }
    struct fuse_loop_config *config = fuse_loop_cfg_create();
    if (!config) goto unmount;
    fuse_loop_cfg_set_clone_fd(config, 0);
    fuse_loop_cfg_set_max_threads(config, 10);
    rc = fuse_session_loop_mt_312(session, config) < 0 ? 1 : 0;
    fuse_loop_cfg_destroy(config);
    pthread_mutex_lock(&negotiation_lock);
    if (!patched) fprintf(stderr, "bare_region: FUSE_DIRECT_IO_ALLOW_MMAP was %s\n",
                          kernel_offers ? "offered but not set" : "not offered by the kernel");
    pthread_mutex_unlock(&negotiation_lock);
unmount:
    fuse_session_unmount(session);
signals:
    fuse_remove_signal_handlers(session);
destroy:
    fuse_session_destroy(session);
    return rc;
}

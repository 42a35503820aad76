// libfuse 3.14 low-level API, pinned to the 3.5 API level the Swift layer is written against.
//
// Why this shim exists: a few things FUSEKit needs are macros, version-gated declarations or
// private layout that Swift's C importer cannot reach. Each helper is a tiny static inline
// function prefixed `cfuse3_`, so it compiles into FUSEKit and needs no extra C target.
#ifndef MDEVSIM_CFUSE3_SHIM_H
#define MDEVSIM_CFUSE3_SHIM_H
#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

// At FUSE_USE_VERSION 35 the header only declares the `_32` loop, whose config struct cannot
// set a thread cap. The 3.12 entry point exists in every libfuse >= 3.12 (checked: 3.14 exports
// fuse_session_loop_mt_312@@FUSE_3.12). The config object is opaque to us: it is only ever
// created, set and destroyed through the fuse_loop_cfg_* functions.
int fuse_session_loop_mt_312(struct fuse_session *se, struct fuse_loop_config *config);

/// Runs libfuse's multi-threaded loop (the `fuse_session_loop_mt` macro at API level >= 3.12).
/// Returns 0, a negative errno, a positive signal number, or -ENOMEM if the config could not be made.
/// `max_idle_threads < 0` keeps libfuse's default.
static inline int cfuse3_session_loop_mt(struct fuse_session *se, unsigned int max_threads,
                                         int max_idle_threads, int clone_fd) {
    struct fuse_loop_config *config = fuse_loop_cfg_create();
    if (config == NULL) return -ENOMEM;
    fuse_loop_cfg_set_clone_fd(config, clone_fd ? 1 : 0);
    if (max_threads > 0) fuse_loop_cfg_set_max_threads(config, max_threads);
    if (max_idle_threads >= 0) fuse_loop_cfg_set_idle_threads(config, (unsigned int)max_idle_threads);
    int rc = fuse_session_loop_mt_312(se, config);
    fuse_loop_cfg_destroy(config);
    return rc;
}

// The 3.12 command-line parser (the `fuse_parse_cmdline` macro at API level >= 3.12): it also
// fills `max_threads`, and leaves `max_idle_threads` at UINT_MAX unless -o max_idle_threads=
// was given. Exported by every libfuse >= 3.12 (3.14: fuse_parse_cmdline@@FUSE_3.12).
int fuse_parse_cmdline_312(struct fuse_args *args, struct fuse_cmdline_opts *opts);

/// FUSE_OPT_KEY(templ, key): a template whose match calls the option processor with `key`.
static inline struct fuse_opt cfuse3_opt_key(const char *templ, int key) {
    struct fuse_opt opt = FUSE_OPT_KEY(templ, key);
    return opt;
}

/// FUSE_OPT_END: the terminator of an option table.
static inline struct fuse_opt cfuse3_opt_end(void) {
    struct fuse_opt opt = FUSE_OPT_END;
    return opt;
}

/// FUSE_OPT_KEY_KEEP / FUSE_OPT_KEY_OPT / FUSE_OPT_KEY_NONOPT as values.
static inline int cfuse3_opt_key_opt(void) { return FUSE_OPT_KEY_OPT; }
static inline int cfuse3_opt_key_nonopt(void) { return FUSE_OPT_KEY_NONOPT; }

/// FUSE_ARGS_INIT(0, NULL): an empty argument vector that fuse_opt_add_arg grows (and owns).
static inline struct fuse_args cfuse3_args_empty(void) {
    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
    return args;
}

/// FUSE_BUFVEC_INIT(size) over one memory buffer.
static inline struct fuse_bufvec cfuse3_bufvec_mem(void *mem, size_t size) {
    struct fuse_bufvec bufv = FUSE_BUFVEC_INIT(size);
    bufv.buf[0].mem = mem;
    return bufv;
}

/// Copies a request's (possibly fd-backed, possibly multi-segment) bufvec into `dst`.
/// Returns the number of bytes copied or a negative errno.
static inline ssize_t cfuse3_bufvec_copy_out(struct fuse_bufvec *src, void *dst, size_t size) {
    struct fuse_bufvec out = FUSE_BUFVEC_INIT(size);
    out.buf[0].mem = dst;
    return fuse_buf_copy(&out, src, FUSE_BUF_NO_SPLICE);
}

/// The kernel's `unique` of a request. libfuse 3.x has no accessor for it, but every 3.x
/// release (3.0 through 3.17) starts `struct fuse_req` with `struct fuse_session *se;
/// uint64_t unique;`. Only this prefix is mirrored; used for logging and correlation only.
struct cfuse3_req_prefix {
    struct fuse_session *se;
    uint64_t unique;
};
static inline uint64_t cfuse3_req_unique(fuse_req_t req) {
    return req == NULL ? 0 : ((const struct cfuse3_req_prefix *)(const void *)req)->unique;
}

// Bitfield setters/getters of fuse_file_info. Swift does import bitfields as properties, but
// going through C keeps the width/signedness of each field out of the Swift code.
static inline void cfuse3_fi_set_open_flags(struct fuse_file_info *fi, uint64_t fh, int direct_io,
                                            int keep_cache, int nonseekable, int cache_readdir) {
    fi->fh = fh;
    fi->direct_io = direct_io ? 1 : 0;
    fi->keep_cache = keep_cache ? 1 : 0;
    fi->nonseekable = nonseekable ? 1 : 0;
    fi->cache_readdir = cache_readdir ? 1 : 0;
}
static inline int cfuse3_fi_writepage(const struct fuse_file_info *fi) {
    return fi == NULL ? 0 : (int)fi->writepage;
}
static inline int cfuse3_fi_flush(const struct fuse_file_info *fi) {
    return fi == NULL ? 0 : (int)fi->flush;
}

/// errno after a libc call, for callers that cannot read the thread-local directly.
static inline int cfuse3_errno(void) { return errno; }

#endif

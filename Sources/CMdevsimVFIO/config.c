// Configuration (environment), the optional log, and what the shim reads from the mount.
#define _GNU_SOURCE
#include "shim.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *shim_mount(void) {
    const char *m = getenv("MDEVSIM_VFIO_MOUNT");
    return (m && m[0]) ? m : NULL;
}

int shim_force_bounce(void) {
    const char *b = getenv("MDEVSIM_VFIO_BOUNCE");
    return b && strcmp(b, "1") == 0;
}

int shim_protocol_v1(void) {
    const char *p = getenv("MDEVSIM_VFIO_PROTOCOL");
    return p && strcmp(p, "v1") == 0;
}

int shim_dma_logging(void) {
    const char *p = getenv("MDEVSIM_VFIO_DMA_LOGGING");
    return !(p && strcmp(p, "0") == 0);
}

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int log_fd = -2; // -2: not opened yet, -1: no log

void shim_log(const char *fmt, ...) {
    pthread_mutex_lock(&log_lock);
    if (log_fd == -2) {
        const char *path = getenv("MDEVSIM_VFIO_LOG");
        shim_resolve();
        log_fd = (path && path[0]) ? real.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644) : -1;
    }
    if (log_fd >= 0) {
        char line[1024];
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int n = snprintf(line, sizeof line, "%ld.%06ld [%d] ", (long)ts.tv_sec, ts.tv_nsec / 1000, (int)getpid());
        va_list ap;
        va_start(ap, fmt);
        if (n > 0 && (size_t)n < sizeof line) n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
        va_end(ap);
        if (n >= (int)sizeof line) n = (int)sizeof line - 1;
        if (n > 0) {
            line[n++] = '\n';
            // One write per line so the lines of several threads never interleave.
            ssize_t w = write(log_fd, line, (size_t)n);
            (void)w;
        }
    }
    pthread_mutex_unlock(&log_lock);
}

int shim_find_group_device(int group, char uuid[64]) {
    const char *mount = shim_mount();
    if (!mount) return -1;
    char path[4096];
    snprintf(path, sizeof path, "%s/devices", mount);
    DIR *dir = opendir(path);
    if (!dir) return -1;
    int found = -1;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        // Only device directories (UUIDs, as the mount names them) are candidates.
        char name[37];
        if (shim_parse_uuid(e->d_name, strlen(e->d_name), name) != 0 || strcmp(name, e->d_name) != 0) continue;
        char link[4096], target[4096];
        snprintf(link, sizeof link, "%s/devices/%s/iommu_group", mount, e->d_name);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n <= 0) continue;
        target[n] = '\0';
        // The group number is the link target's last component, as QEMU reads it.
        const char *base = strrchr(target, '/');
        base = base ? base + 1 : target;
        char *end = NULL;
        long number = strtol(base, &end, 10);
        if (end != base && *end == '\0' && number == group) {
            snprintf(uuid, 64, "%s", e->d_name);
            found = 0;
            break;
        }
    }
    closedir(dir);
    if (found != 0) errno = ENOENT;
    return found;
}

ssize_t shim_read_file(const char *path, void *buf, size_t size) {
    shim_resolve();
    int fd = real.open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t got = 0;
    while (got < size) {
        ssize_t n = real.pread(fd, (char *)buf + got, size - got, (off_t)got);
        if (n < 0) {
            if (errno == EINTR) continue;
            int saved = errno;
            real.close(fd);
            errno = saved;
            return -1;
        }
        if (n == 0) break;
        got += (size_t)n;
    }
    real.close(fd);
    return (ssize_t)got;
}

/// Points at the value of `key` among the top-level members of a JSON object, or NULL.
/// migration.info is flat but for `flags` (an object) and `mmap_areas` (an array of objects),
/// whose members must not be mistaken for top-level ones: track the nesting depth.
static const char *json_member(const char *json, const char *key) {
    size_t klen = strlen(key);
    int depth = 0;
    for (const char *p = json; *p; p++) {
        if (*p == '"') {
            const char *start = p + 1;
            const char *q = start;
            while (*q && *q != '"') q += (*q == '\\' && q[1]) ? 2 : 1;
            if (!*q) return NULL;
            if (depth == 1 && (size_t)(q - start) == klen && strncmp(start, key, klen) == 0) {
                const char *v = q + 1;
                while (*v == ' ') v++;
                if (*v == ':') return v + 1;
            }
            p = q;
        } else if (*p == '{' || *p == '[') {
            depth++;
        } else if (*p == '}' || *p == ']') {
            depth--;
        }
    }
    return NULL;
}

int shim_json_u64(const char *json, const char *key, uint64_t *value) {
    const char *v = json_member(json, key);
    if (!v) return -1;
    while (*v == ' ') v++;
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (end == v || errno) return -1;
    *value = n;
    return 0;
}

int shim_json_first_area(const char *json, uint64_t *offset, uint64_t *size) {
    const char *v = json_member(json, "mmap_areas");
    if (!v) return -1;
    while (*v == ' ') v++;
    if (*v != '[') return -1;
    const char *close = strchr(v, ']');
    const char *open = strchr(v, '{');
    if (!open || !close || open > close) return -1; // an empty list: the mount cannot map
    // The entry is itself a flat object: reuse the member lookup on it.
    size_t len = (size_t)(strchr(open, '}') ? strchr(open, '}') - open + 1 : 0);
    if (len == 0 || len > 256) return -1;
    char entry[257];
    memcpy(entry, open, len);
    entry[len] = '\0';
    if (shim_json_u64(entry, "offset", offset) != 0 || shim_json_u64(entry, "size", size) != 0) return -1;
    return 0;
}

// Device DMA into guest memory: while its device runs, a thread writes a pattern into the
// guest-physical range the scenario's `dma:` gives, through the DMA mappings QEMU registered
// (MAP_DMA's vaddr is an address of this very process), and remembers each page it wrote so
// that VFIO_IOMMU_DIRTY_PAGES reports it and QEMU sends it again. This is what a real mdev does
// with the pages it pins; without the report the destination would miss the device's writes.
#define _GNU_SOURCE
#include "shim.h"

#include <errno.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PAGE 4096ULL
#define TICK_NS 5000000L // 5 ms between bursts

static uint64_t mix(uint64_t x) {
    // splitmix64's finalizer: a cheap, well-spread pattern.
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/// The host address of guest-physical page `gpa` through the container's mappings, or NULL.
static uint8_t *host_page(struct container *c, uint64_t gpa) {
    for (size_t i = 0; i < c->nmaps; i++) {
        const struct dma_mapping *m = &c->maps[i];
        if (gpa >= m->iova && gpa + PAGE <= m->iova + m->size) return (uint8_t *)(uintptr_t)(m->vaddr + (gpa - m->iova));
    }
    return NULL;
}

/// One burst: `pages` pages, round-robin over the range. Under shim_lock.
static void write_pages(struct device *d, uint64_t pages) {
    uint64_t count = d->dma_size / PAGE;
    for (uint64_t n = 0; n < pages; n++) {
        uint64_t index = d->dma_cursor;
        uint8_t *host = d->container ? host_page(d->container, d->dma_address + index * PAGE) : NULL;
        if (host) {
            uint64_t words[PAGE / 8];
            uint64_t base = mix(d->dma_seed ^ (index << 24) ^ d->dma_generation);
            for (size_t w = 0; w < PAGE / 8; w++) words[w] = mix(base + w);
            memcpy(host, words, sizeof words);
            if ((d->container->dirty_tracking || d->dma_logging) && !d->dma_unreported)
                d->dma_dirty[index / 64] |= 1ULL << (index % 64);
        }
        if (++d->dma_cursor == count) {
            d->dma_cursor = 0;
            d->dma_generation++;
        }
    }
}

static void *dma_thread(void *arg) {
    struct device *d = arg;
    double owed = 0; // pages due but not written yet (the rate is rarely a whole number per tick)
    struct timespec last;
    clock_gettime(CLOCK_MONOTONIC, &last);
    for (;;) {
        struct timespec tick = {.tv_sec = 0, .tv_nsec = TICK_NS}, now;
        nanosleep(&tick, NULL);
        clock_gettime(CLOCK_MONOTONIC, &now);
        double elapsed = (double)(now.tv_sec - last.tv_sec) + (double)(now.tv_nsec - last.tv_nsec) / 1e9;
        last = now;
        shim_lock();
        if (d->dma_stop) break;
        // Only while the VMM lets the device run (running, or running while saving in
        // pre-copy); not before its guest first ran (a paused source, a destination still
        // waiting), and never once stopped.
        if (d->dma_armed && (d->device_state & VFIO_DEVICE_STATE_V1_RUNNING)) {
            owed += elapsed * (double)d->dma_rate / (double)PAGE;
            uint64_t pages = (uint64_t)owed;
            owed -= (double)pages;
            write_pages(d, pages);
        } else {
            owed = 0;
        }
        shim_unlock();
    }
    d->dma_thread = 0;
    device_put(d); // the thread's reference; frees the device
    shim_unlock();
    return NULL;
}

void dma_setup(struct device *d) {
    char path[4200], text[512];
    snprintf(path, sizeof path, "%s/dma", d->dir);
    ssize_t n = shim_read_file(path, text, sizeof text - 1);
    if (n <= 0) return; // an older mount without the file: no DMA
    text[n] = '\0';
    if (shim_json_u64(text, "address", &d->dma_address) != 0) return; // "{}": the type has none
    if (shim_json_u64(text, "size", &d->dma_size) != 0 || shim_json_u64(text, "rate", &d->dma_rate) != 0 ||
        shim_json_u64(text, "seed", &d->dma_seed) != 0 || d->dma_size == 0 || d->dma_size % PAGE != 0) {
        shim_log("device %s: dma not understood: %s", d->uuid, text);
        return;
    }
    struct container *c = d->container;
    int slot = -1;
    for (int i = 0; i < SHIM_MAX_DMA_DEVICES && slot < 0; i++)
        if (!c->dma_devices[i]) slot = i;
    d->dma_dirty = calloc((d->dma_size / PAGE + 63) / 64, sizeof(uint64_t));
    if (slot < 0 || !d->dma_dirty) {
        shim_log("device %s: no room for its dma", d->uuid);
        free(d->dma_dirty);
        d->dma_dirty = NULL;
        return;
    }
    const char *unreported = getenv("MDEVSIM_VFIO_DMA_UNREPORTED");
    d->dma_unreported = unreported && strcmp(unreported, "1") == 0;
    c->dma_devices[slot] = d;
    d->dma_enabled = 1;
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    d->refs++; // the thread's reference
    d->dma_thread = 1;
    if (pthread_create(&thread, &attr, dma_thread, d) != 0) {
        d->refs--;
        d->dma_thread = 0;
        shim_log("device %s: cannot start its dma thread", d->uuid);
    } else {
        shim_log("device %s: dma of %llu bytes at guest 0x%llx, %llu bytes/s%s", d->uuid,
                 (unsigned long long)d->dma_size, (unsigned long long)d->dma_address,
                 (unsigned long long)d->dma_rate, d->dma_unreported ? ", NOT reported as dirty" : "");
    }
    pthread_attr_destroy(&attr);
}

void dma_note_state(struct device *d, uint32_t state, int written) {
    d->device_state = state;
    if (written && (state & VFIO_DEVICE_STATE_MASK) == VFIO_DEVICE_STATE_V1_RUNNING) d->dma_armed = 1;
}

void dma_note_running(struct device *d, int running, int vmm_set_running) {
    // The thread reads v1's bits: a v2 running state is v1's RUNNING, any other v1's STOP.
    d->device_state = running ? VFIO_DEVICE_STATE_V1_RUNNING : VFIO_DEVICE_STATE_V1_STOP;
    if (vmm_set_running) d->dma_armed = 1;
}

uint64_t dma_collect_device(struct device *d, uint64_t iova, uint64_t size, uint64_t pgsize, uint64_t *bitmap) {
    if (!d->dma_dirty) return 0;
    uint64_t reported = 0, count = d->dma_size / PAGE;
    for (uint64_t p = 0; p < count; p++) {
        if (!(d->dma_dirty[p / 64] & (1ULL << (p % 64)))) continue;
        uint64_t gpa = d->dma_address + p * PAGE;
        if (gpa < iova || gpa + PAGE > iova + size) continue;
        // Every reporting unit the 4 KiB page touches: one bit, or several for a smaller unit.
        for (uint64_t bit = (gpa - iova) / pgsize; bit <= (gpa + PAGE - 1 - iova) / pgsize; bit++)
            bitmap[bit / 64] |= 1ULL << (bit % 64);
        d->dma_dirty[p / 64] &= ~(1ULL << (p % 64));
        reported++;
    }
    return reported;
}

uint64_t dma_collect_dirty(struct container *c, uint64_t iova, uint64_t size, uint64_t *bitmap) {
    uint64_t reported = 0;
    for (int i = 0; i < SHIM_MAX_DMA_DEVICES; i++)
        if (c->dma_devices[i]) reported += dma_collect_device(c->dma_devices[i], iova, size, PAGE, bitmap);
    return reported;
}

void dma_release(struct device *d) {
    if (d->container) {
        for (int i = 0; i < SHIM_MAX_DMA_DEVICES; i++)
            if (d->container->dma_devices[i] == d) d->container->dma_devices[i] = NULL;
        container_put(d->container);
        d->container = NULL;
    }
    free(d->dma_dirty);
    d->dma_dirty = NULL;
}

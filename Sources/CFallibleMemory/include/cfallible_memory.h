// Allocation that answers NULL instead of ending the process, for the engine (DeviceSimulator),
// which imports no Glibc: Swift's own allocation traps when memory runs out, and a device's
// memory, data section or extents are sized by a scenario or a client (issue 13).
#ifndef CFALLIBLE_MEMORY_H
#define CFALLIBLE_MEMORY_H

#include <stddef.h>
#include <stdlib.h>
#include <sys/mman.h>

/// `size` bytes aligned to `alignment` (a power of two, at least a pointer), or NULL.
static inline void *cfallible_allocate(size_t size, size_t alignment) {
    void *memory = NULL;
    if (alignment < sizeof(void *)) alignment = sizeof(void *);
    if (posix_memalign(&memory, alignment, size ? size : 1) != 0) return NULL;
    return memory;
}

/// Gives back what `cfallible_allocate` returned.
static inline void cfallible_free(void *memory) { free(memory); }

/// `size` bytes of fresh zero pages, page aligned, or NULL. Anonymous memory reads as zero
/// without being touched: a 1 GiB data section costs no page until it is written (zeroing
/// a posix_memalign block instead took 2.5 s and 1 GiB resident at `create`).
static inline void *cfallible_allocate_zero_pages(size_t size) {
    void *memory = mmap(NULL, size ? size : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return memory == MAP_FAILED ? NULL : memory;
}

/// Gives back what `cfallible_allocate_zero_pages(size)` returned.
static inline void cfallible_free_zero_pages(void *memory, size_t size) { munmap(memory, size ? size : 1); }

#endif

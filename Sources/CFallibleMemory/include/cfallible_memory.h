// Allocation that answers NULL instead of ending the process, for the engine (DeviceSimulator),
// which imports no Glibc: Swift's own allocation traps when memory runs out, and a device's
// memory, data section or extents are sized by a scenario or a client (issue 13).
#ifndef CFALLIBLE_MEMORY_H
#define CFALLIBLE_MEMORY_H

#include <stddef.h>
#include <stdlib.h>

/// `size` bytes aligned to `alignment` (a power of two, at least a pointer), or NULL.
static inline void *cfallible_allocate(size_t size, size_t alignment) {
    void *memory = NULL;
    if (alignment < sizeof(void *)) alignment = sizeof(void *);
    if (posix_memalign(&memory, alignment, size ? size : 1) != 0) return NULL;
    return memory;
}

/// Gives back what `cfallible_allocate` returned.
static inline void cfallible_free(void *memory) { free(memory); }

#endif

/*
 * mbuckets: reads the Go runtime's own heap-profile records (the runtime.mbuckets list) out of a
 * live process, so a profile taken after attaching late still shows what was allocated before.
 */
#ifndef HEAPSPY_MBUCKETS_H
#define HEAPSPY_MBUCKETS_H

#include <stddef.h>
#include <stdint.h>

#include "heapagg.h"
#include "target.h"

/*
 * Walks the list at link-time address mbuckets_vaddr and adds every memory bucket to a as read at
 * heap-profile cycle now. The process should be stopped so the list and cycle agree. Returns the
 * number of records read, or -errno with err set.
 */
long mbuckets_read(const struct target *t, uint64_t mbuckets_vaddr, int64_t now, struct heapagg *a,
		   char *err, size_t errlen);

/*
 * Of the candidate addresses found in a stripped binary's code, the one that holds the runtime's
 * list of memory-profile buckets in the live process (its first bucket has the memory type), or 0.
 */
uint64_t mbuckets_confirm(const struct target *t, const uint64_t *candidates, int n);

#endif

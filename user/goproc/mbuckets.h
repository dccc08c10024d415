/*
 * mbuckets: reads the Go runtime's own heap-profile records (the runtime.mbuckets list) out of a
 * live process: what was allocated before heapspy attached, and what the self-check compares with.
 */
#ifndef HEAPSPY_MBUCKETS_H
#define HEAPSPY_MBUCKETS_H

#include <stddef.h>
#include <stdint.h>

#include "heapagg.h"
#include "target.h"

/* One memory bucket as read, its counts widened to struct go_mem_record whatever the release. */
struct go_bucket_record {
	uint64_t addr;	     /* the runtime's *bucket */
	const uint64_t *pcs; /* as runtime.callers gave them: one more per inlined call */
	uint32_t nframes;
	uint64_t size;
	struct go_mem_record r;
};

/*
 * Calls fn for every memory bucket of the list at link-time address mbuckets_vaddr, whose
 * memRecordCycles have record_words words (struct heap_layout). fn returns 0 to go on. Returns the
 * number of buckets read, or -errno with err set.
 */
long mbuckets_walk(const struct target *t, uint64_t mbuckets_vaddr, unsigned record_words,
		   int (*fn)(void *ctx, const struct go_bucket_record *b), void *ctx, char *err,
		   size_t errlen);

/*
 * mbuckets_walk at one published heap-profile cycle: runtime.mProfCycle (at link-time address
 * mprof_cycle) must be flushed, and the same after the walk as before, so that no bucket's
 * published record (memRecord.active) changed under it. Returns what mbuckets_walk returns, with
 * *cycle set, or -EAGAIN when the cycle was not published yet or moved.
 */
long mbuckets_walk_published(const struct target *t, uint64_t mbuckets_vaddr, uint64_t mprof_cycle,
			     unsigned record_words,
			     int (*fn)(void *ctx, const struct go_bucket_record *b), void *ctx,
			     int64_t *cycle, char *err, size_t errlen);

/*
 * Adds every memory bucket to a as read at heap-profile cycle now. The process should be stopped
 * so the list and cycle agree. Returns the number of records read, or -errno with err set.
 */
long mbuckets_read(const struct target *t, uint64_t mbuckets_vaddr, unsigned record_words,
		   int64_t now, struct heapagg *a, char *err, size_t errlen);

/* A bucket read by mbuckets_walk into a recording made of the records alone (heapagg_record). */
int mbuckets_record(const struct target *t, struct heapagg *a, const struct go_bucket_record *b);

/*
 * Of the candidate addresses found in a stripped binary's code, the one that holds the runtime's
 * list of memory-profile buckets in the live process (its first bucket has the memory type), or 0.
 */
uint64_t mbuckets_confirm(const struct target *t, const uint64_t *candidates, int n);

#endif

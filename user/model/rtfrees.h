/*
 * rtfrees: frees from the runtime's own records, for a recording that attaches no free probe (one
 * probe hit per sample instead of two). runtime.mbuckets keeps, per bucket, the objects freed as of
 * the last GC (memRecord.active), which is exactly what runtime/pprof reports. A bucket is the
 * runtime's (stack, size) and a heapspy site the probes' (stack, size): their stacks start at
 * different depths of the allocator (and the runtime's carry a PC per inlined call), but show as
 * the same stack in the profile (gostack_shown). So frees are matched to sites by what the profile
 * shows, (shown stack, size): the one sample heapprof makes of them all.
 *
 * A snapshot is a walk of the records at one published cycle (mbuckets_walk_published): the
 * self-check's walk when it takes one (selfcheck's also), else rtfrees_read's at each cycle the
 * runtime publishes, at most one a tick, and never more than a tenth of heapspy's time (a large
 * heap's thousands of buckets take milliseconds to read). It is applied to heapagg as soon as the
 * allocations from before it have left the ring buffer: heapagg keeps what every site published
 * then, so the profile at that cycle is the runtime's at that moment, never much older than the end
 * of the recording.
 */
#ifndef HEAPSPY_RTFREES_H
#define HEAPSPY_RTFREES_H

#include <stddef.h>
#include <stdint.h>

#include "heapagg.h"
#include "mbuckets.h"
#include "target.h"
#include "u64map.h"

struct rtfrees_group {
	uint64_t size;
	uint64_t *pcs; /* the stack shown, owned */
	uint32_t n;
	uint64_t walk;	 /* frees the last walk read */
	uint64_t origin; /* frees the records held when heapspy began: not of its objects */
	uint32_t *sites; /* heapagg's sites that show as this group */
	size_t nsites, sites_cap;
};

struct rtfrees {
	const struct target *t;
	struct u64map index;   /* content hash of (size, shown stack) -> group */
	struct u64map buckets; /* the runtime's *bucket -> group: a bucket's stack never changes */
	struct rtfrees_group *groups;
	size_t ngroups, groups_cap;
	size_t sites_seen; /* heapagg's sites [0, sites_seen) are in their groups */
	uint64_t *buf;	   /* scratch for stacks */
	size_t buf_cap;
	int64_t applied; /* cycle of the last snapshot applied, or HEAPAGG_UNKNOWN_CYCLE */
	uint64_t walk_ns, walk_end_ns; /* how long rtfrees_read's last walk took, when it ended */
};

void rtfrees_init(struct rtfrees *r, const struct target *t);
void rtfrees_free(struct rtfrees *r);

/* Before a walk of the runtime's records that may become a snapshot: forgets the last walk's. */
void rtfrees_begin(struct rtfrees *r);
/* mbuckets_walk's fn (ctx: the rtfrees): a bucket's published frees into the walk. */
int rtfrees_bucket(void *ctx, const struct go_bucket_record *b);
/*
 * A walk of its own when the runtime has published a cycle since the last snapshot applied (each
 * bucket to fn: rtfrees_bucket, with r as ctx, for rtfrees_apply): 0 with the cycle and the time
 * it began (CLOCK_MONOTONIC, the probes' clock), -EAGAIN when there is nothing new or the cycle
 * moved while it read, or -errno.
 */
int rtfrees_read(struct rtfrees *r, uint64_t mbuckets, uint64_t mprof_cycle, unsigned record_words,
		 int (*fn)(void *ctx, const struct go_bucket_record *b), void *ctx, int64_t *cycle,
		 uint64_t *ts);
/*
 * mbuckets_walk's fn at attach, where the records are not read as heapspy's baseline (the runtime
 * was not sampling): every free they hold, published or not, is of an object heapspy never saw.
 */
int rtfrees_origin(void *ctx, const struct go_bucket_record *b);
/* The records were read as the baseline after all: every free in them counts. */
void rtfrees_forget_origin(struct rtfrees *r);
/*
 * The walk since rtfrees_begin was consistent at heap-profile cycle, started at time ts, and a
 * holds every event from before it: shares its frees out over a's sites (heapagg_runtime_frees).
 * 0 or -ENOMEM.
 */
int rtfrees_apply(struct rtfrees *r, struct heapagg *a, int64_t cycle, uint64_t ts);

#endif

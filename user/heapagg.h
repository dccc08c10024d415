/*
 * heapagg: turns the stream of sampled allocations and frees into per-site counts with the Go
 * runtime's own accounting, so that heapspy's profile means what runtime/pprof's means.
 *
 * A site is (stack, object size), the runtime's bucket key. The runtime publishes its heap profile
 * "as of the last completed GC": allocations count once two heap-profile cycles have passed since
 * them, sweep frees once one has (runtime/mprof.go, the memRecord comment). Every event carries the
 * cycle it happened in, so heapagg can publish the same snapshot for any final cycle.
 */
#ifndef HEAPSPY_HEAPAGG_H
#define HEAPSPY_HEAPAGG_H

#include <linux/types.h>
#include <stdbool.h>
#include <stdint.h>

#include "heapspy.h"
#include "u64map.h"

#define HEAPAGG_UNKNOWN_CYCLE INT64_MIN

struct heap_counts {
	uint64_t allocs, frees, alloc_bytes, free_bytes;
};

/* The counts of one heap-profile cycle that is not yet settled. */
struct heap_cycle_counts {
	int64_t cycle;
	struct heap_counts c;
};

struct heap_site {
	uint32_t stack;
	uint64_t size;
	/* Counts old enough to be published whatever cycle the profile is taken at. */
	struct heap_counts settled;
	/* Allocations and frees of the last cycles, by cycle % 4 (an allocation waits two cycles). */
	struct heap_cycle_counts allocs[4];
	struct heap_cycle_counts frees[4];
	/* Objects from before attach (the runtime's records) that no free has matched yet. */
	uint64_t pre_objects;
};

struct heap_stack {
	uint32_t nframes;
	uint64_t *pcs; /* runtime addresses, innermost first */
};

struct heap_object {
	uint32_t site;
	int64_t cycle;
	uint64_t ts;
};

/* What a site amounts to at a given cycle, before unsampling. */
struct heap_totals {
	uint64_t allocs, alloc_bytes, inuse_objects, inuse_bytes;
};

struct heapagg {
	struct heap_stack *stacks;
	size_t nstacks, stacks_cap;
	struct u64map stack_index; /* content hash (probed on collision) -> stack */

	struct heap_site *sites;
	size_t nsites, sites_cap;
	struct u64map site_index; /* (stack, size) hash -> site */

	struct heap_object *objects; /* live sampled objects; a free list threads the holes */
	size_t nobjects, objects_cap;
	uint64_t free_object;        /* 1 + index of the first hole, 0 when none */
	struct u64map live;          /* address -> object index << 32 | its site */
	struct u64map buckets;       /* the runtime's *bucket -> site, for objects from before attach */
	struct u64map last_event;    /* thread -> its previous event, to drop repeated probe hits */

	int64_t last_cycle;    /* newest heap-profile cycle seen, HEAPAGG_UNKNOWN_CYCLE if none */
	uint64_t baseline_ts;  /* frees of pre-attach objects before this are in the baseline already */

	uint64_t samples;         /* allocation events */
	uint64_t frees;           /* free events */
	uint64_t unmatched_frees; /* frees of objects heapspy never saw allocated nor had a bucket for */
	uint64_t repeated;        /* probe hits the kernel delivered twice for one call */
	uint64_t baseline_records;
};

void heapagg_init(struct heapagg *a);
void heapagg_free(struct heapagg *a);

int heapagg_alloc(struct heapagg *a, const struct hs_alloc_event *e);
int heapagg_free_event(struct heapagg *a, const struct hs_free_event *e);
/*
 * One ring-buffer record, as bpf/heap.bpf.c emits it: the one consumer path heapspy and
 * tools/pipebench share. Records of another type or too short are ignored.
 */
int heapagg_event(struct heapagg *a, const void *data, size_t len);

/*
 * Adds one of the runtime's own records (a bucket of runtime.mbuckets read at heap-profile cycle
 * now, as struct memRecord: active then future[3]) for what was allocated before heapspy attached.
 */
struct go_mem_record {
	struct heap_counts active; /* memRecordCycle has heap_counts' layout */
	struct heap_counts future[3];
};
int heapagg_baseline(struct heapagg *a, uint64_t bucket, const uint64_t *pcs, uint32_t nframes,
		     uint64_t size, const struct go_mem_record *r, int64_t now);

/*
 * A site's published counts for a profile taken at heap-profile cycle now; with an unknown cycle
 * every event counts (the profile is then "as of now" rather than "as of the last GC").
 */
void heapagg_totals(const struct heapagg *a, const struct heap_site *s, int64_t now,
		    struct heap_totals *t);

/* Calls fn for every live sampled object heapspy saw allocated, in no particular order. */
void heapagg_each_live(const struct heapagg *a, void (*fn)(void *ctx, const struct heap_object *o),
		       void *ctx);

/* runtime/pprof's unsampling: scale by 1/(1-exp(-avg/rate)) where avg is bytes per object. */
void heap_unsample(uint64_t count, uint64_t bytes, int64_t rate, int64_t *out_count,
		   int64_t *out_bytes);

#endif

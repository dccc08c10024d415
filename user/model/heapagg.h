/*
 * heapagg: turns the stream of sampled allocations and frees into per-site counts with the Go
 * runtime's own accounting, so that heapspy's profile means what runtime/pprof's means.
 *
 * A site is (stack, object size), the runtime's bucket key, split by the allocating goroutine's
 * pprof labels where it had any. The runtime publishes its heap profile
 * "as of the last completed GC" (runtime/mprof.go, the memRecord comment): an allocation made in
 * heap-profile cycle c goes to future[(c+2)%3], a sweep free to future[(c+1)%3], and mark
 * termination's mProf_NextCycle + mProf_Flush publish future[c%3] when cycle c begins, so an
 * allocation counts from cycle c+2 on and a free from c+1 on. runtime.GC() and
 * debug.FreeOSMemory add one rule: once the sweep is done, mProf_PostSweep publishes
 * future[(c+1)%3] early, without a new cycle: the allocations of cycle c-1 and the frees of cycle c
 * so far. (runtime.MemProfile flushes future[c%3] itself, so the flushed bit of mProfCycle never
 * changes what a reader sees.) Every event carries the cycle it happened in and every PostSweep is
 * an event, so heapagg publishes the runtime's snapshot at the newest cycle seen.
 *
 * Each sample also carries the rate the runtime took it at (a program may change MemProfileRate at
 * any time) and is unsampled at that rate: runtime/pprof's formula, applied per sample.
 */
#ifndef HEAPSPY_HEAPAGG_H
#define HEAPSPY_HEAPAGG_H

#include <linux/types.h>
#include <stdbool.h>
#include <stdint.h>

#include "golabels.h"
#include "heapspy.h"
#include "u64map.h"

#define HEAPAGG_UNKNOWN_CYCLE INT64_MIN
#define HEAPAGG_RUNS	      4

struct heap_counts {
	uint64_t allocs, frees, alloc_bytes, free_bytes;
};

/* Counts as the runtime keeps them, and the objects they stand for, each sample unsampled. */
struct heap_tally {
	struct heap_counts n;
	double est_allocs, est_frees;
};

/* The counts of one heap-profile cycle that is not yet published. */
struct heap_cycle_counts {
	int64_t cycle;
	struct heap_tally t;
};

struct heap_site {
	uint32_t stack;
	uint32_t labels; /* golabels id, 0: none */
	uint64_t size;
	/* Counts published at the newest cycle seen, and at every later one. */
	struct heap_tally settled;
	/* Allocations and frees of the last cycles, by cycle % 4 (an allocation waits 2 cycles). */
	struct heap_cycle_counts allocs[4];
	struct heap_cycle_counts frees[4];
	/* Objects from before attach (the runtime's records) that no free has matched yet. */
	uint64_t pre_objects;
	/* runtime/pprof's scale for this site's size at scale_rate, the last rate seen. */
	int64_t scale_rate;
	double scale;
	/*
	 * Where frees come from the runtime's records (runtime_frees): this site's share of them,
	 * and what it published at their cycle (rt_cycle) as they were read.
	 */
	uint64_t rt_frees;
	struct heap_tally rt_published;
	/*
	 * The weights of its allocations in the order they came, as runs of one weight (one per
	 * MemProfileRate; the last run takes in any beyond HEAPAGG_RUNS at their mean): the
	 * runtime's frees, which do not say whose, weigh the oldest first.
	 */
	struct {
		double weight;
		uint64_t n;
	} runs[HEAPAGG_RUNS];
	uint32_t nruns;
};

struct heap_stack {
	uint32_t nframes;
	uint64_t *pcs; /* runtime addresses, innermost first */
};

struct heap_object {
	uint32_t site;
	int64_t cycle;
	uint64_t ts;
	double weight; /* objects this sample stands for, at the rate it was taken at */
};

/* What a site amounts to at a given cycle: samples, and the objects they stand for. */
struct heap_totals {
	uint64_t allocs, alloc_bytes, inuse_objects, inuse_bytes;
	double est_allocs, est_inuse;
};

/* A stretch of samples taken at one MemProfileRate. */
struct heap_rate_period {
	int64_t rate;
	uint64_t ts; /* its first sample's */
	uint64_t samples;
};

#define HEAPAGG_RATE_PERIODS 8

struct heapagg {
	struct heap_stack *stacks;
	size_t nstacks, stacks_cap;
	struct u64map stack_index; /* content hash (probed on collision) -> stack */

	struct heap_site *sites;
	size_t nsites, sites_cap;
	struct u64map site_index; /* (stack, size) hash -> site */

	struct heap_object *objects; /* live sampled objects; a free list threads the holes */
	size_t nobjects, objects_cap;
	uint64_t free_object;  /* 1 + index of the first hole, 0 when none */
	struct u64map live;    /* address -> object index << 32 | its site */
	struct u64map buckets; /* the runtime's *bucket -> site, for objects from before attach */
	struct u64map last_event; /* thread -> its previous event, to drop repeated probe hits */
	struct golabels *labels;  /* decodes events' label pointers; NULL: no labels */

	int64_t last_cycle; /* newest heap-profile cycle seen, HEAPAGG_UNKNOWN_CYCLE if none */
	/* Frees of pre-attach objects before this are in the baseline already. */
	uint64_t baseline_ts;
	/*
	 * The MemProfileRate assumed where a sample does not say its own: the runtime's records
	 * from before attach, events from a binary whose MemProfileRate heapspy could not locate.
	 */
	int64_t rate;
	/* The rates samples came at, in order: the first HEAPAGG_RATE_PERIODS stretches. */
	struct heap_rate_period periods[HEAPAGG_RATE_PERIODS];
	size_t nperiods;
	uint64_t rate_changes;
	uint64_t post_sweeps; /* mProf_PostSweep calls (forced GCs) seen */
	/* runtime.GC()'s publications of the last cycles, by cycle % 4: which, and when. */
	struct {
		int64_t cycle;
		uint64_t ts;
	} swept[4];

	/*
	 * No free probe: each object is not followed to its free, and frees come from the runtime's
	 * own records instead (heapagg_runtime_frees), one probe hit per sample. No live objects
	 * are kept then (heapagg_each_live sees none).
	 */
	bool runtime_frees;
	int64_t rt_cycle; /* of the last heapagg_runtime_frees, HEAPAGG_UNKNOWN_CYCLE before */
	/*
	 * No probe at all: every site's counts are the runtime's records as last read at a
	 * published cycle (heapagg_record), what runtime/pprof would write then; samples and frees
	 * are theirs. No probe hit costs the target anything.
	 */
	bool records_only;
	/* What the baseline's records held: records_only counts samples and frees from there. */
	struct heap_counts baseline_held;

	/*
	 * At most this many sites, 0 for no limit: a program whose stacks or label sets never stop
	 * growing must not grow a long-running heapspy without bound. A sample of a new site past
	 * it (or of a new label set past golabels' max_sets) is left out and counted in
	 * capped_samples (with the records of a bucket read so).
	 */
	size_t max_sites;
	uint64_t capped_samples;
	uint64_t samples; /* allocation events */
	uint64_t frees;	  /* free events, or frees the runtime's records gave (runtime_frees) */
	/* Frees of objects heapspy never saw allocated nor had a bucket for. */
	uint64_t unmatched_frees;
	uint64_t repeated; /* probe hits the kernel delivered twice for one call */
	uint64_t baseline_records;
};

/* Frees, or everything, come from the runtime's records, read at the cycles it publishes. */
static inline bool heapagg_reads_records(const struct heapagg *a)
{
	return a->runtime_frees || a->records_only;
}

/* Each sampled object is followed to its free (the free probe): leak candidates can be judged. */
static inline bool heapagg_follows_objects(const struct heapagg *a)
{
	return !heapagg_reads_records(a);
}

void heapagg_init(struct heapagg *a);
void heapagg_free(struct heapagg *a);

int heapagg_alloc(struct heapagg *a, const struct hs_alloc_event *e);
int heapagg_free_event(struct heapagg *a, const struct hs_free_event *e);
/* runtime.mProf_PostSweep in heap-profile cycle e->cycle. */
void heapagg_post_sweep(struct heapagg *a, const struct hs_event_header *e);
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
/* Everything a record holds, published (active) or not (future). */
struct heap_counts heapagg_held(const struct go_mem_record *r);
/*
 * For records_only: one of the runtime's records read at a published cycle, its site's counts from
 * now on exactly what it published (active), as runtime/pprof reads them; unsampled at a->rate, as
 * runtime/pprof scales them. 0, or -ENOMEM.
 */
int heapagg_record(struct heapagg *a, uint64_t bucket, const uint64_t *pcs, uint32_t nframes,
		   uint64_t size, const struct go_mem_record *r);
/*
 * For records_only, after a walk applied every record: what they hold in all, and in
 * *inconsistent how many sites cannot hold objects of one size (bytes are not counts times the
 * size, or more frees than allocations: a layout is wrong).
 */
struct heap_counts heapagg_records_total(const struct heapagg *a, uint64_t *inconsistent);

/*
 * For runtime_frees: frees objects of one group of sites (a site as the profile shows it: stack
 * and size) were freed as of heap-profile cycle, as the runtime's records said at time ts, once
 * every event from before then has been consumed. They are shared out over the group's sites in
 * order, each taking at most the allocations it had published, so no site frees more than it
 * allocated and the group's in-use is exact; the oldest allocations are taken to go first. Each
 * site keeps what it published then: a profile at cycle is the runtime's at ts, however many
 * cycles later it is made. Returns the frees no site could take (objects heapspy never saw
 * allocated).
 */
uint64_t heapagg_runtime_frees(struct heapagg *a, const uint32_t *sites, size_t n, uint64_t frees,
			       int64_t cycle, uint64_t ts);

/*
 * A site's published counts for a profile taken at heap-profile cycle now (the newest cycle seen
 * or later); with an unknown cycle every event counts (the profile is then "as of now" rather
 * than "as of the last GC").
 */
void heapagg_totals(const struct heapagg *a, const struct heap_site *s, int64_t now,
		    struct heap_totals *t);
/*
 * The same, as a reader of the runtime's records at time ts (bpf_ktime_get_ns' clock) saw them:
 * runtime.GC()'s early publication of cycle now counts if it came before ts.
 */
void heapagg_totals_before(const struct heapagg *a, const struct heap_site *s, int64_t now,
			   uint64_t ts, struct heap_totals *t);

/*
 * The cycle a profile taken at cycle now publishes: now, or HEAPAGG_UNKNOWN_CYCLE (every event)
 * when nothing at all is published yet, as runtime.MemProfile publishes everything before the
 * first GC completes.
 */
int64_t heapagg_profile_cycle(const struct heapagg *a, int64_t now);

/* The MemProfileRate of the last sample, a->rate if none carried one. */
int64_t heapagg_last_rate(const struct heapagg *a);

/* Calls fn for every live sampled object heapspy saw allocated, in no particular order. */
void heapagg_each_live(const struct heapagg *a, void (*fn)(void *ctx, const struct heap_object *o),
		       void *ctx);

/* runtime/pprof's scale for samples of size bytes taken at rate: 1/(1-exp(-size/rate)). */
double heap_scale(double size, int64_t rate);

#endif

/*
 * selfcheck: heapspy checks its own accounting against the runtime's while it records. The runtime
 * keeps, per bucket (stack, object size), the allocations and frees it has published "as of the
 * last GC" (memRecord.active in runtime.mbuckets); heapspy's per-site totals at the same
 * heap-profile cycle must say the same when every layout fact it relies on is right. A wrong one
 * shows: a wrong special kind loses every free, and short-lived garbage stays "in use".
 *
 * The records are read from /proc/PID/mem without stopping the process. A snapshot counts only if
 * the runtime's cycle is the same, and published (flushed), before and after the walk: active then
 * cannot change under the reader (mProf_Flush runs once per cycle, mProf_PostSweep only after
 * runtime.GC, which heapagg models). It is compared with heapspy's totals a tick later, once the
 * events from before the snapshot have left the ring buffer.
 */
#ifndef HEAPSPY_SELFCHECK_H
#define HEAPSPY_SELFCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "heapagg.h"
#include "mbuckets.h"
#include "target.h"
#include "u64map.h"

/*
 * In-use objects may differ by this share of the runtime's, or by SELFCHECK_SLACK objects: an
 * event lost or repeated, or one that fell on the other side of a cycle's boundary (the probe reads
 * mProfCycle a few instructions before the runtime does, and a stop of the world can come between;
 * the leaks tests' growing programs showed 4 objects over 117 apart, two each way, in 2 of 8
 * checks). A wrong layout is far beyond it: a wrong special kind kept 150-260% apart.
 */
#define SELFCHECK_TOLERANCE_PCT 5.0
#define SELFCHECK_SLACK		4

struct selfcheck_result {
	int64_t cycle;			       /* heap-profile cycle both sides are taken at */
	size_t sites;			       /* allocation sites compared */
	uint64_t runtime_inuse, heapspy_inuse; /* sampled objects in use */
	uint64_t apart;			       /* sum over the sites of |heapspy - runtime| */
};

/* One site's objects in use, on each side. */
struct selfcheck_site {
	int64_t runtime, heapspy;
};

struct selfcheck {
	/* Sites by (object size, first frame the profile shows). */
	struct u64map index;
	struct selfcheck_site *sites;
	size_t nsites, sites_cap;
	uint64_t *shown; /* gostack_shown's output, reused */
	size_t shown_cap;
	/*
	 * Site -> objects the runtime's records held when heapspy began, where it did not read
	 * them as its own baseline (the runtime was not sampling: only what the runtime sampled
	 * while it started, say m0's first allocation). Counted out of the runtime's side.
	 */
	struct u64map origin;
	int64_t pending;       /* cycle of a snapshot not yet compared, or HEAPAGG_UNKNOWN_CYCLE */
	uint64_t pending_ns;   /* when it was taken (CLOCK_MONOTONIC, the probes' clock) */
	int64_t last_snapshot; /* cycle of the last snapshot */
	int checks, failures;  /* failures: checks beyond the tolerance */
	struct selfcheck_result last, worst; /* worst: the failed check furthest apart */
	int error; /* why the runtime's records could not be read (-errno) */
	/* records_only: sites whose records cannot hold objects of one size, as last read */
	uint64_t inconsistent;
	/*
	 * Also called for each bucket of every snapshot's walk, when set: what a walk of the
	 * records does for the recording (rtfrees_bucket, or records_only's apply), between
	 * snapshots too.
	 */
	int (*also)(void *ctx, const struct go_bucket_record *b);
	void *also_ctx;
};

void selfcheck_init(struct selfcheck *c);
void selfcheck_free(struct selfcheck *c);

/*
 * While recording, snapshots are at least this far apart: each reads every bucket of the
 * runtime's records (three reads of /proc/PID/mem a bucket), and a program can run hundreds of
 * GC cycles a second.
 */
#define SELFCHECK_INTERVAL_NS 1000000000ull

/*
 * Takes a snapshot of the runtime's records if the runtime published at least every cycles since
 * the last one, and SELFCHECK_INTERVAL_NS passed (every 0: whatever the cycle, at once). mbuckets
 * and mprof_cycle are link-time addresses. Returns 0 when a snapshot is pending.
 */
int selfcheck_snapshot(struct selfcheck *c, const struct target *t, uint64_t mbuckets,
		       uint64_t mprof_cycle, unsigned record_words, int64_t every);
/*
 * Notes what one of the runtime's records holds before heapspy's probes see anything, for a
 * recording that does not read them as its baseline (each bucket of one mbuckets_walk). 0 or
 * -ENOMEM.
 */
int selfcheck_origin_bucket(struct selfcheck *c, const struct target *t,
			    const struct go_bucket_record *b);
/* Forgets that origin: the recording read the runtime's records as its baseline after all. */
void selfcheck_forget_origin(struct selfcheck *c);
/* Compares a pending snapshot with heapspy's totals at its cycle. */
void selfcheck_compare(struct selfcheck *c, const struct target *t, const struct heapagg *a);

/* The last check is beyond the tolerance, or most of them were: a layout is wrong. */
bool selfcheck_failed(const struct selfcheck *c);
/*
 * One line for summaries and profile comments: "self-check: 7 sites, in-use objects within 0.0%
 * of the runtime's own records at cycle 12 (3 checks)", or what disagreed, or why no check ran.
 */
void selfcheck_line(const struct selfcheck *c, char *buf, size_t len);

#endif

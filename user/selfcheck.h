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
#include "target.h"
#include "u64map.h"

/*
 * In-use objects may differ by this share of the runtime's, or by SELFCHECK_SLACK objects: an
 * event lost or repeated, or a sample the runtime dropped where heapspy cannot tell (a binary
 * whose m.profStack heapspy could not locate).
 */
#define SELFCHECK_TOLERANCE_PCT 2.0
#define SELFCHECK_SLACK		2

struct selfcheck_result {
	int64_t cycle;			       /* heap-profile cycle both sides are taken at */
	size_t sites;			       /* allocation sites compared */
	uint64_t runtime_inuse, heapspy_inuse; /* sampled objects in use */
	uint64_t apart;			       /* sum over the sites of |heapspy - runtime| */
};

struct selfcheck_site {
	uint64_t size, pc;
	int64_t runtime, heapspy; /* objects in use */
};

struct selfcheck {
	/* Sites by (object size, first return address outside the runtime). */
	struct u64map index;
	struct selfcheck_site *sites;
	size_t nsites, sites_cap;
	struct u64map runtime_pc; /* return address -> 1 in the runtime's own code, 2 not */
	int64_t pending;       /* cycle of a snapshot not yet compared, or HEAPAGG_UNKNOWN_CYCLE */
	uint64_t pending_ns;   /* when it was taken (CLOCK_MONOTONIC, the probes' clock) */
	int64_t last_snapshot; /* cycle of the last snapshot */
	int checks, failures;
	struct selfcheck_result last, worst; /* worst: the failed check furthest apart */
	int error; /* why the runtime's records could not be read (-errno) */
};

void selfcheck_init(struct selfcheck *c);
void selfcheck_free(struct selfcheck *c);

/*
 * Takes a snapshot of the runtime's records if the runtime published at least every cycles since
 * the last one (0: whatever the cycle). mbuckets and mprof_cycle are link-time addresses.
 * Returns 0 when a snapshot is pending.
 */
int selfcheck_snapshot(struct selfcheck *c, const struct target *t, uint64_t mbuckets,
		       uint64_t mprof_cycle, unsigned record_words, int64_t every);
/* Compares a pending snapshot with heapspy's totals at its cycle. */
void selfcheck_compare(struct selfcheck *c, const struct target *t, const struct heapagg *a);

bool selfcheck_failed(const struct selfcheck *c);
/*
 * One line for summaries and profile comments: "self-check: 7 sites, in-use objects within 0.0%
 * of the runtime's own records at cycle 12 (3 checks)", or what disagreed, or why no check ran.
 */
void selfcheck_line(const struct selfcheck *c, char *buf, size_t len);

#endif

/*
 * gcstats: a run's garbage collection in a few figures: cycles per second, the GC's pauses
 * (p50/p90/p99/max, total, share of wall time), the other stop-the-worlds apart, and how the heap
 * grew.
 */
#ifndef HEAPSPY_GCSTATS_H
#define HEAPSPY_GCSTATS_H

#include <stddef.h>
#include <stdint.h>

#include "gcdecode.h"

struct gc_summary {
	double secs;
	size_t cycles, forced;
	double cycles_per_sec;
	size_t pauses; /* GC pauses with a known length: two per cycle */
	int64_t pause_p50, pause_p90, pause_p99, pause_max; /* GC_UNKNOWN without pauses */
	int64_t stw_ns;					    /* all GC pauses */
	double stw_share;				    /* of secs */
	size_t other_stws;
	int64_t other_stw_ns;
	int64_t live_first, live_last; /* live heap after the first and the last cycle */
	int64_t goal_first, goal_last;
	uint64_t grown_bytes; /* taken from the OS */
	int64_t probe_ns;     /* heapspy's own probe time removed from the GC's pauses */
};

/* Summarizes d over secs of wall time. 0 or -ENOMEM. */
int gcstats_summarize(const struct gcdecode *d, double secs, struct gc_summary *s);
/* The nearest-rank percentile p (0 < p <= 100) of n sorted values; GC_UNKNOWN when n is 0. */
int64_t gcstats_percentile(const int64_t *sorted, size_t n, double p);

#endif

/*
 * gctune: what other GOGC and GOMEMLIMIT settings would do, predicted from the cycles observed,
 * after the Go GC guide's model (go.dev/doc/gc-guide) and the runtime's pacer (mgcpacer.go, the
 * same in this from Go 1.19 to 1.27). A cycle's heap goal is
 *     live + (live + stacks + globals) * GOGC / 100, at least 4 MiB * GOGC / 100,
 * live being the heap the cycle before marked. The pacer starts the cycle its lead (bytes it
 * expects allocated while marking) before the goal, between 45/64 and 61/64 of the runway
 * (goal - live); what is allocated while marking is marked live too. So each cycle allocates
 * trigger + allocated-while-marking bytes, the heap peaks there, and marking costs the same per
 * cycle while the live heap stays. The observation gives live, stacks and globals (from each goal
 * at the observed GOGC), the lead, the allocation while marking and the GC's CPU; GOGC=off with a
 * GOMEMLIMIT puts the peak near the limit, less the runtime's other memory.
 *
 * Assumed: the allocation rate and what survives stay as observed. Not modelled: the pacer's
 * lead where the observation held the trigger at its earliest (it is then a range, in the
 * uncertainty), assists beyond those observed, memory the runtime holds beside the heap.
 */
#ifndef HEAPSPY_GCTUNE_H
#define HEAPSPY_GCTUNE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gcdecode.h"

/* The process's settings; GC_UNKNOWN where unread. */
struct gc_settings {
	int64_t gogc;	    /* GOGC; GCTUNE_OFF when off */
	int64_t gomemlimit; /* GOMEMLIMIT in bytes; GCTUNE_NO_LIMIT when unset */
	int64_t gomaxprocs;
	int64_t memory_limit; /* the cgroup's; GCTUNE_NO_LIMIT when none */
	/* The runtime's memory beside the heap (mappedReady - heapFree - heap in use), as the
	 * memory limit's heap goal counts it. */
	int64_t nonheap;
	/* The runtime's own CPU accounting (work.cpuStats: GC CPU, and GOMAXPROCS x wall), ns, at
	 * the first and the last read; GC_UNKNOWN where unread. */
	int64_t gc_cpu_ns[2], cpu_ns[2];
};

#define GCTUNE_OFF	(-2)
#define GCTUNE_NO_LIMIT (-3)
#define GCTUNE_OPTIONS	6
/* The share of the memory limit a suggested GOMEMLIMIT leaves free. */
#define GCTUNE_HEADROOM 0.10
/* Without a memory limit, no advice grows the peak beyond this many times the observed one. */
#define GCTUNE_MAX_GROWTH 4.0

struct gc_option {
	int64_t gogc;	    /* GCTUNE_OFF for off */
	int64_t gomemlimit; /* GCTUNE_NO_LIMIT for none */
	double cycles_per_gib, peak_heap, gc_cpu;
	double goal; /* the heap goal it would set, bytes */
	/* Relative uncertainties (one standard deviation, as a fraction of the value). */
	double cycles_unc, peak_unc, cpu_unc;
	bool fits; /* the peak, with its uncertainty, stays under the limit less the headroom */
};

struct gc_tuning {
	bool predicted; /* else why says what was missing */
	char why[160];
	size_t steady; /* the cycles the model was fitted on */
	/* Observed over the steady cycles. */
	double cycles_per_gib, peak_heap, live_heap, roots, gc_cpu;
	bool gc_cpu_measured; /* from the runtime's accounting, else the estimate from the cycles */
	/* Allocated while marking (all of it marked live), and its share of the runway. */
	double mark_alloc, mark_share;
	/* Where in its runway a cycle started: the pacer's trigger, as a share. */
	double trigger;
	double lead; /* goal - heap at the cycle's start: the pacer's lead, bytes */
	/* The smaller of the cgroup's limit and GOMEMLIMIT; GCTUNE_NO_LIMIT when neither. */
	int64_t limit;
	int64_t nonheap; /* as in the settings */
	struct gc_option options[GCTUNE_OPTIONS];
	size_t noptions;
	char advice[256];
	int advised; /* the option the advice names (the current one to keep it); -1 for none */
};

/* Predicts from the cycles observed with the settings they ran under. Pure: the unit tests feed it.
 */
void gctune_predict(const struct gc_cycle *cycles, size_t n, const struct gc_settings *s,
		    struct gc_tuning *t);

/* "GOGC=200", "GOGC=off GOMEMLIMIT=460MiB": an option as the environment would set it. */
void gctune_setting(char *buf, size_t len, const struct gc_option *o);

#endif

/*
 * gcdecode: turns the GC probes' events into garbage-collection cycles and the other
 * stop-the-world pauses, with heapspy's own probe time taken out of every pause.
 *
 * Where the runtime's words are readable, each cycle is what GODEBUG=gctrace=1 prints, from the
 * same fields (work.tSweepTerm ... tEnd, heap0/1/2, memstats.numgc, copied by a probe once the
 * cycle has ended), and the other stops come from their own callers' probes. Elsewhere (no field
 * offsets for the release, or the variables not found) cycles are put together from the probes'
 * own timestamps: every stop, its reason, and gcMarkTermination.
 *
 * Both the probes' timestamps and the runtime's nanotime() are CLOCK_MONOTONIC, so heapspy can tell
 * which of its own probe hits fell inside a pause, and how much of the pause they were.
 */
#ifndef HEAPSPY_GCDECODE_H
#define HEAPSPY_GCDECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gcruntime.h"
#include "heapspy.h"
#include "u64map.h"

#define GC_UNKNOWN    (-1)
#define GC_REASON_MAX 40
/* Recent probe hits kept to find those inside a cycle's pauses; a cycle makes a handful. */
#define GCDECODE_HITS 1024

struct gc_cycle {
	int64_t cycle;	  /* the runtime's own number, gctrace's "gc N"; GC_UNKNOWN */
	int64_t start_ns; /* CLOCK_MONOTONIC when sweep termination began */
	int forced;	  /* runtime.GC() (or debug.FreeOSMemory) started it; GC_UNKNOWN */
	/* The program's pauses and concurrent mark, heapspy's probe time removed; GC_UNKNOWN. */
	int64_t sweep_term_ns;
	int64_t mark_ns;
	int64_t mark_term_ns;
	int64_t probe_ns; /* heapspy's own probe time that was inside the two pauses */
	/* Bytes: heap at GC start, at mark termination, marked live; the cycle's goal. */
	int64_t heap0, heap1, heap2, heap_goal;
};

/* A stop-the-world that was not the GC's (ReadMemStats, goroutine profiles, GOMAXPROCS ...). */
struct gc_stw {
	int64_t start_ns;
	int64_t duration_ns; /* heapspy's probe time removed */
	char reason[GC_REASON_MAX];
};

/* Memory the heap took from the OS: runtime.(*mheap).grow. */
struct gc_grow {
	int64_t ts;
	uint64_t bytes;
};

struct gcdecode_config {
	bool mark_term_probe; /* gcMarkTermination is probed: a mark restart is told from an end */
	uint32_t words_known; /* bit per enum gc_word read by the probe */
	unsigned word_size[GCW_COUNT];
	bool stop_reason_arg; /* Go 1.21+: the stop's RAX is its stwReason */
	/* The resume probe is on startTheWorldWithSema's return: RAX holds the runtime's now. */
	bool resume_returns_now;
	/* Go 1.19: runtime.systemstack's runtime addresses, [lo, hi). */
	uint64_t systemstack_lo, systemstack_hi;
	int64_t numgc_base;  /* cycles completed before the probes were in place; GC_UNKNOWN */
	int64_t forced_base; /* of which forced (memstats.numforcedgc); GC_UNKNOWN */
	/* heapspy's cost of one hit of each probe, in ns, by event type - HS_GC_EV_CYCLE. */
	double hit_ns[HS_GC_EV_END - HS_GC_EV_CYCLE];
};

struct gcdecode {
	struct gcdecode_config cfg;
	struct gc_cycle *cycles;
	size_t ncycles, cycles_cap;
	struct gc_stw *stws;
	size_t nstws, stws_cap;
	struct gc_grow *grows;
	size_t ngrows, grows_cap;
	uint64_t grown_bytes;
	uint64_t dropped;   /* cycles, other stops and growths gcdecode_keep let go */
	uint64_t repeated;  /* the same probe hit delivered twice (a signal interrupted its step) */
	uint64_t missed;    /* cycles the runtime completed that no event showed (lost events) */
	uint64_t attaching; /* cycles that ended while the probes were going in */
	double probe_ns; /* heapspy's probe time, all hits (the program's time, on its threads) */

	/* Private to gcdecode.c. */
	struct u64map last; /* tid << 1 -> its last event's content hash, tid << 1 | 1 -> its ts */
	uint64_t hit_ts[GCDECODE_HITS];
	double hit_cost[GCDECODE_HITS];
	uint64_t nhits;
	struct {
		bool valid;
		int kind; /* enum stop_kind in gcdecode.c */
		uint64_t ts;
		uint32_t tid;
		double cost; /* of its probe hit */
		char reason[GC_REASON_MAX];
	} stop;
	int64_t last_numgc, last_forced;
	bool seen_cycle;
	/* Probe-timing mode: the cycle being put together. */
	bool in_cycle, saw_mark_term;
	struct gc_cycle open;
	uint64_t mark_start;
	int64_t seq;
	struct {
		uint32_t tid;
		uint64_t ts;
		int kind;
	} starts[8]; /* the last gcStart calls, a ring */
	unsigned nstarts;
	uint64_t cycle_end_ts;
};

void gcdecode_init(struct gcdecode *d, const struct gcdecode_config *cfg);
/* Decodes one event; 0, or -ENOMEM. New cycles are appended to d->cycles. */
int gcdecode_event(struct gcdecode *d, const struct hs_gc_event *e);
/*
 * Keeps only the newest max cycles, other stops and heap growths (a recording that runs for
 * weeks); counted in d->dropped. Call between events: indices into the arrays move.
 */
void gcdecode_keep(struct gcdecode *d, size_t max);
void gcdecode_free(struct gcdecode *d);

#endif

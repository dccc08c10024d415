/*
 * gcruntime: what the garbage collector looks like in a given Go binary: where the GC probes go,
 * how each release passes their arguments, and where the runtime keeps the words gctrace prints
 * (work.tSweepTerm ..., memstats.numgc, gcController.lastHeapGoal). Field offsets come from the
 * binary's DWARF, or from per-release tables (checked against that DWARF) keyed on the exact
 * release and experiments when it was built without (-ldflags=-w). Everything version-dependent
 * about the GC is decided here.
 */
#ifndef HEAPSPY_GCRUNTIME_H
#define HEAPSPY_GCRUNTIME_H

#include <stdbool.h>
#include <stdint.h>

#include "heapspy.h"
#include "probes.h"
#include "target.h"

/* The runtime words read at the end of each cycle, in the order of the probe's reads. */
enum gc_word {
	GCW_NUMGC,	/* memstats.numgc: completed cycles, gctrace's "gc N" */
	GCW_NUM_FORCED, /* memstats.numforcedgc: of which runtime.GC() started, counted in the pause
			 */
	GCW_USER_FORCED, /* work.userForced: what gctrace prints as "(forced)" */
	GCW_T_SWEEP_TERM,
	GCW_T_MARK,
	GCW_T_MARK_TERM,
	GCW_T_END,
	GCW_HEAP0, /* heap at GC start */
	GCW_HEAP1, /* heap at mark termination */
	GCW_HEAP2, /* marked (live) heap */
	GCW_HEAP_GOAL,
	GCW_COUNT,
};

_Static_assert(GCW_COUNT <= HS_GC_MAX_READS, "the probe reads at most HS_GC_MAX_READS words");

enum gc_offsets_source { GC_OFFSETS_NONE, GC_OFFSETS_DWARF, GC_OFFSETS_TABLE, GC_OFFSETS_CODE };

struct gc_runtime {
	/* With the runtime's records: a cycle's end, the non-GC stops' begin and end. */
	struct probe_point cycle, other_stop, other_resume;
	/* Without: every stop, timed by the probes. */
	struct probe_point gc_start, stop, resume, mark_term;
	struct probe_point grow;
	/* Go 1.19: the GC's own stops come through runtime.systemstack; link-time range. */
	uint64_t systemstack, systemstack_end;
	uint64_t words[GCW_COUNT]; /* link-time address of each word, 0 when unknown */
	unsigned word_size[GCW_COUNT];
	uint64_t numgc;		    /* &memstats.numgc, 0 when unknown */
	uint64_t num_forced;	    /* &memstats.numforcedgc, 0 when unknown */
	uint64_t runtime_init_time; /* &runtime.runtimeInitTime: gctrace's "@" counts from it */
	/* The settings: &gcController.gcPercent (GOGC), .memoryLimit (GOMEMLIMIT), &gomaxprocs. */
	uint64_t gc_percent, memory_limit, gomaxprocs;
	/* &gcController.heapFree, then totalAlloc, totalFree, mappedReady; 0 without DWARF. */
	uint64_t heap_free;
	/* &work.cpuStats' GC total, its idle-time marking, and all CPU (Go 1.20+, DWARF); 0 when
	 * unknown. */
	uint64_t gc_cpu_time, gc_idle_time, cpu_time;
	bool stop_reason_arg;	 /* 1.21+: stopTheWorldWithSema(reason stwReason) */
	bool resume_returns_now; /* resume is on startTheWorldWithSema's return: RAX = now */
	enum gc_offsets_source offsets;
	bool from_code;	      /* stripped: the variables were found in the code that uses them */
	int table_mismatches; /* fields where the table and the binary's DWARF disagree */
	struct hs_gc_config cfg;
};

/* Resolves the GC probes; errors name what is missing. */
int gcruntime_resolve(const struct target *t, struct gc_runtime *r, char *err, size_t errlen);
/*
 * True when the runtime's own figures can be read: every word a cycle's timing needs is known,
 * and the probes that read them and see the non-GC stops are there.
 */
bool gcruntime_has_state(const struct gc_runtime *r);
/* A build the per-release tables describe: go1.<minor>.<patch>, experiments as after "X:". */
struct gcruntime_build {
	int minor, patch;
	const char *experiments;
};
/* The i-th build with a table, NULL past the last: for the tests that check every table. */
const struct gcruntime_build *gcruntime_table_build(size_t i);
/* The name of a Go 1.21+ stwReason, as the runtime spells it; NULL when unknown. */
const char *gcruntime_stw_reason(unsigned reason);
/* stwReason values of the GC's own stops (Go 1.21+). */
enum { GC_STW_MARK_TERM = 1, GC_STW_SWEEP_TERM = 2 };

#endif

/*
 * gctrace: the garbage collector's probes as a probe set for the session: resolves them for the
 * target's Go release, loads bpf/gc.bpf.c, measures what one probe hit costs on this machine (so
 * pauses can be reported without heapspy's share), attaches, and feeds the events to gcdecode.
 */
#ifndef HEAPSPY_GCTRACE_H
#define HEAPSPY_GCTRACE_H

#include <stdbool.h>
#include <stdint.h>

#include "gcdecode.h"
#include "gcruntime.h"
#include "gctune.h"
#include "session.h"

struct gc_bpf;
struct probe_link;

enum {
	GCT_CYCLE,
	GCT_OTHER_STOP,
	GCT_OTHER_RESUME,
	GCT_STOP,
	GCT_RESUME,
	GCT_START,
	GCT_MARK_TERM,
	GCT_GROW,
	GCT_CALIBRATE_JUMP, /* on heapspy's own calibration points */
	GCT_CALIBRATE_STEP,
	GCT_LINKS,
};

struct gctrace {
	struct gc_runtime rt;
	struct gcdecode dec;
	struct gc_bpf *skel;
	struct probe_link *links[GCT_LINKS];
	struct probe_set set;
	const char *btf;      /* --btf, or NULL */
	unsigned ringbuf_kib; /* 0: the default */
	bool verbose;
	bool state;	 /* the runtime's records are read; else the probes time the pauses */
	bool calibrated; /* the per-hit costs were measured */
	/* ns a hit costs: a probe on the jump after a stack-bound check, one stepped out of line */
	double jump_hit_ns, step_hit_ns;
	int64_t time_base; /* runtime.runtimeInitTime (CLOCK_MONOTONIC ns); 0 when unknown */
	struct gc_settings settings; /* as the probes went in */
	uint64_t counters[HS_GC_CNT_MAX];
	const struct target *target; /* as attached, to read what the probes could not */
	uint64_t unread_reasons;     /* stop reasons neither the probe nor heapspy could read */
	int error;		     /* first error from decoding */
	/* Called for each cycle as it completes (from the event loop), or NULL. */
	void (*on_cycle)(void *ctx, const struct gc_cycle *c);
	void *on_cycle_ctx;
};

/* Prepares g; pass gctrace_probes(g) as session_opts.extra. */
void gctrace_init(struct gctrace *g, const struct cli_target *tgt);
struct probe_set *gctrace_probes(struct gctrace *g);
/*
 * Reads the target's settings (GOGC, GOMEMLIMIT, GOMAXPROCS, its cgroup's memory limit) again, as
 * they are now; done once as the probes go in. A process gone keeps those.
 */
void gctrace_read_settings(struct gctrace *g, const struct target *t);
/* Reads the probes' counters: at any time, and after session_stop for the final ones. */
void gctrace_finish(struct gctrace *g);
void gctrace_free(struct gctrace *g);

/*
 * Where the offsets of the runtime's records came from, for the summary: "DWARF", "table", or
 * "none" when the records are not read (the probes time the pauses).
 */
const char *gctrace_offsets_source(const struct gctrace *g);

#endif

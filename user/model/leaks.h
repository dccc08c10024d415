/*
 * leaks: which allocation sites leak, from the ages of sampled objects across GC cycles.
 *
 * A heap profile shows what is big; a leak is what keeps growing. heapspy follows every sampled
 * object from its allocation (time and heap-profile cycle) to the sweep that frees it, and after
 * each garbage collection records, per allocation site (a stack as the profile shows it, all
 * object sizes together), the bytes still in use: the runtime's own "as of the last GC"
 * accounting, which counts objects from before attach too. A cycle's survivors are final only once
 * the sweep after it is done, which the runtime guarantees by the next cycle, so the point for
 * cycle N is taken when cycle N+2 begins. Everything is unsampled with runtime/pprof's formula, and
 * every number carries its sampling error: an object of size s stands for s/p bytes, p = 1 -
 * exp(-s/rate) at the rate it was sampled at, with variance s^2 (1-p) / p^2.
 *
 * The rule. Over the timeline of a site (points 0..n-1, bytes B_i at time t_i):
 *
 *   growth   G = B_last - B_0 > 0, and it is a trend, not a swing: the least-squares growth over
 *            the window is at least 2 standard deviations of the points around the line, and at
 *            least 3 intervals between points grew.
 *   kept     old objects pile up: take the first point i* where the site had grown half of G.
 *            Of the growth up to i*, at least half is still in use at the end, counting objects
 *            allocated up to i* that are still live, plus, for a site whose objects grow (its
 *            largest object never shrank from i* on and ended at least 1.25 times the largest
 *            at the start: a slice grown by append, a map's bucket array), its largest object,
 *            which carries the old contents in a new copy. A bounded cache fails here: what it
 *            held at i* has been replaced by the end. So does temporary garbage, which dies
 *            within 1-2 cycles.
 *   evidence the timeline spans at least 3 GC cycles, and G is at least 3 times its sampling
 *            error (the error of the objects that came and went between the two ends).
 *   still    the growth rate over the last half of the window is at least half the rate over
 *            the whole window, and the last half's growth is at least 2 sampling errors.
 *
 * A site meeting growth, kept, evidence and still is a leak candidate. One meeting growth, kept
 * and evidence but not still "stopped growing" (a leak that stopped, or a cache that filled and
 * never evicts); it is reported apart and is not a candidate. One meeting growth, kept and the
 * rate test of still but not evidence has thin evidence: reported as such (when its growth is at
 * least 1.5 sampling errors), never as a candidate.
 *
 * With fewer than 3 GC cycles or 30 samples in the window, finding no candidate proves nothing:
 * the report then says the evidence is thin rather than that nothing leaks.
 *
 * Confidence, from 0 to 1, is the product of (1 - exp(-z^2/18)) for the growth's z-score (0.39 at
 * z = 3, 0.86 at z = 6), min(1, kept), min(1, recent/overall rate) and (1 - exp(-n/4)) for the n
 * points. Candidates are ranked by growth per second times confidence.
 *
 * Sampling switched on at attach makes objects from before invisible: a site that replaces them
 * with new ones (a cache that was full before attach) then looks like it grows, until all of the
 * old ones have been replaced. Launching the program, or a runtime that was already sampling,
 * has no such blind spot.
 */
#ifndef HEAPSPY_LEAKS_H
#define HEAPSPY_LEAKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "heapagg.h"

/* The thresholds of the rule above. */
#define LEAKS_MIN_POINTS   4 /* points: 3 GC cycles */
#define LEAKS_MIN_SAMPLES  30
#define LEAKS_MIN_STEPS	   3
#define LEAKS_TREND_MIN	   2.0
#define LEAKS_KEPT_MIN	   0.5
#define LEAKS_COPY_GROWTH  1.25
#define LEAKS_Z_MIN	   3.0
#define LEAKS_RECENT_MIN   0.5
#define LEAKS_RECENT_Z_MIN 2.0
#define LEAKS_THIN_Z_MIN   1.5

/* Points kept; a longer recording keeps every other one, then every fourth, and so on. */
#define LEAKS_MAX_POINTS 128
/* Live bytes by age in cycles: 0-1, 2-3, 4-7, 8-15, 16-31, 32-63, 64+, and from before attach. */
#define LEAKS_AGE_BUCKETS   8
#define LEAKS_AGE_PREATTACH (LEAKS_AGE_BUCKETS - 1)

enum leak_kind {
	LEAK_NONE,
	LEAK_GROWING, /* a leak candidate */
	LEAK_STOPPED, /* grew and kept its objects, but no longer grows */
	LEAK_THIN,    /* looks like growth, too few samples or cycles to tell */
};

/* One site's timeline as the rule reads it; point i is the state after a GC cycle. */
struct leak_timeline {
	size_t n;
	const int64_t *cycle; /* the heap-profile cycle whose survivors point i counts */
	const double *secs;   /* when that cycle's GC ended, seconds since the start */
	const double *bytes;  /* in use after that GC (unsampled) */
	const double *var;    /* the sampling variance of bytes */
	const double *maxobj; /* the size of the largest object in use */
	const double
	    *new_bytes; /* bytes in use at the last point that were allocated after point i */
	const double *new_var; /* their sampling variance */
};

struct leak_verdict {
	enum leak_kind kind;
	double growth;	  /* bytes, last point minus first */
	double z;	  /* growth / its sampling error */
	double per_sec;	  /* least-squares slope of bytes over seconds */
	double per_cycle; /* and over cycles */
	double trend;  /* least-squares growth / standard deviation of the points around the line */
	int steps;     /* intervals between points that grew */
	double kept;   /* share of the growth up to the half-growth point still in use at the end */
	double recent; /* growth rate over the last half / over the whole window */
	double recent_z;
	double confidence;
};

/* The rule, on numbers only. */
void leaks_judge(const struct leak_timeline *t, struct leak_verdict *v);

/*
 * The frames of a stack that the profile shows, written to out (room for s->nframes); returns how
 * many. Stacks that show the same frames are one site: the runtime's own records (read when
 * attaching late) lack the allocator's frames and the wrappers the probes see.
 */
typedef uint32_t (*leaks_shown_fn)(void *ctx, const struct heap_stack *s, uint64_t *out);

struct leaks_series {
	uint32_t stack;	 /* a stack of the site */
	uint32_t labels; /* its pprof label set (golabels id) */
	uint64_t *shown; /* the frames it shows, owned */
	uint32_t nshown;
	/* LEAKS_MAX_POINTS + 1 each; NULL until the site holds bytes */
	double *bytes;
	double *var;
	double *maxobj;
	uint64_t allocs0, allocs; /* sampled allocations published at the first and newest point */
};

/* Timelines of every site, fed from heapagg as the runtime's heap-profile cycle advances. */
struct leaks {
	leaks_shown_fn shown; /* NULL: every stack is its own site */
	void *shown_ctx;
	int64_t cycle[LEAKS_MAX_POINTS + 1];
	double secs[LEAKS_MAX_POINTS + 1];
	size_t npoints; /* committed points */
	bool tail;	/* point npoints holds the newest observation, between committed ones */
	uint64_t nobs;	/* observations so far; every stride-th is committed */
	uint64_t stride;
	uint32_t *site;		     /* by heapagg site: its leak site */
	size_t nassigned;	     /* heapagg sites given a leak site so far */
	struct u64map site_index;    /* hash of the frames shown and the labels -> site */
	struct leaks_series *series; /* by site */
	size_t nseries;
	int64_t start_cycle, seen; /* first and newest heap-profile cycle seen */
	double seen_secs[4];	   /* when cycle c was first seen, at c % 4 */
};

void leaks_init(struct leaks *l, leaks_shown_fn shown, void *shown_ctx);
void leaks_free(struct leaks *l);
/*
 * Call on every tick, after the events so far are in a, with the runtime's current heap-profile
 * cycle and the seconds since the start; adds a point when a cycle's survivors became final.
 * 0 or -ENOMEM.
 */
int leaks_observe(struct leaks *l, const struct heapagg *a, int64_t cycle, double secs);
/* Points of the timeline (committed ones and the newest). */
size_t leaks_points(const struct leaks *l);

struct leak_site {
	uint32_t stack;	 /* a heapagg stack of the site */
	uint32_t labels; /* the pprof labels its goroutines had (golabels id), 0: none */
	uint32_t series; /* its timeline: leaks.series[series] */
	struct leak_verdict v;
	double inuse_bytes;	   /* at the last point */
	uint64_t samples;	   /* sampled allocations at the site during the window */
	int64_t oldest_age_cycles; /* of its live objects; -1 when it has none heapspy saw */
	double oldest_age_secs;
	bool before_attach; /* objects from before attach are live: older than the ages say */
	double age_bytes[LEAKS_AGE_BUCKETS];
	double score; /* per_sec * confidence: the rank */
};

struct leak_report {
	struct leak_site *sites; /* candidates, most suspicious first; then stopped; then thin */
	size_t nsites, ngrowing, nstopped, nthin;
	size_t npoints;
	int64_t cycles;	  /* heap-profile cycles the timeline spans */
	double secs;	  /* and seconds */
	uint64_t samples; /* sampled allocations during the window, all sites */
	bool thin;	  /* fewer than LEAKS_MIN_POINTS points or LEAKS_MIN_SAMPLES samples */
};

struct leaks_now {
	int64_t cycle; /* the runtime's heap-profile cycle */
	uint64_t ns;   /* CLOCK_MONOTONIC, the clock of the events' timestamps */
	double secs;   /* since the start */
};

int leaks_analyze(const struct leaks *l, const struct heapagg *a, const struct leaks_now *now,
		  struct leak_report *r);
void leaks_report_free(struct leak_report *r);

#endif

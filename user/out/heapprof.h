/*
 * heapprof: turns heapspy's per-site counts into what users read: a pprof heap profile with
 * runtime/pprof's sample types, unsampling and frame trimming (gostack), one sample per site (its
 * pprof labels, as the allocating goroutine had them, as sample labels), and the top sites for the
 * summary.
 */
#ifndef HEAPSPY_HEAPPROF_H
#define HEAPSPY_HEAPPROF_H

#include <stdbool.h>
#include <stdint.h>

#include "heapagg.h"
#include "pprof.h"
#include "target.h"

/* What each site had allocated at a moment, for a profile of what was allocated since. */
struct heapprof_base {
	struct heap_totals *sites; /* by heapagg site; sites added since count from zero */
	size_t nsites;
	int64_t time_ns; /* wall clock */
};

struct heapprof_meta {
	int64_t rate;	 /* the period: MemProfileRate at the end, as in runtime/pprof */
	int64_t cycle;	 /* heap-profile cycle to publish at, or HEAPAGG_UNKNOWN_CYCLE */
	int64_t time_ns; /* wall-clock start of the recording */
	int64_t duration_ns;
	/*
	 * > 0: a profile of old objects only, those in use now and allocated at least min_age
	 * heap-profile cycles before cycle (objects from before attach count as allocated at
	 * attach_cycle). Their alloc_* values equal their inuse_* values.
	 */
	int64_t min_age;
	int64_t attach_cycle;
	/* Or NULL; else alloc values are less what base holds (in-use values stay absolute). */
	const struct heapprof_base *base;
	/* A pprof label key: rows are per (value of that label, function). NULL: per function. */
	const char *by_label;
};

/* One allocation site as the summary shows it: the first frame that is not the runtime's. */
struct heap_row {
	const char *group; /* the by_label label's value, NULL where it had none or no by_label */
	const char *function;
	const char *file;
	uint32_t line;
	int64_t inuse_bytes, inuse_objects, alloc_bytes, alloc_objects; /* unsampled */
};

struct heapprof {
	const struct target *t;
	const struct heapagg *agg;
	struct u64map syms;	 /* return address -> where its frames are: index << 32 | count */
	struct hs_frame *frames; /* the frames of every address in syms, innermost first */
	size_t nframes, frames_cap;
	struct pprof *p;
	uint64_t mapping;
	struct heap_row *rows; /* merged by function, biggest in-use first */
	size_t nrows;
	struct heap_row total;
};

/* Builds the profile (comments are the caller's to add through h->p before writing). */
int heapprof_build(struct heapprof *h, const struct target *t, const struct heapagg *agg,
		   const struct heapprof_meta *m);
void heapprof_free(struct heapprof *h);
/* Every site's counts as a profile at cycle now shows them, at wall-clock time_ns. -ENOMEM. */
int heapprof_base_take(struct heapprof_base *b, const struct heapagg *agg, int64_t now,
		       int64_t time_ns);
void heapprof_base_free(struct heapprof_base *b);

#endif

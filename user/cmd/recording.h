/*
 * recording: a heap recording as `heapspy record` and `heapspy serve` keep one: the session, the
 * GC trace and the leak timeline beside it, and the heap profile built from them, with the
 * comments that say what it covers, at the end or at any moment while it runs.
 */
#ifndef HEAPSPY_RECORDING_H
#define HEAPSPY_RECORDING_H

#include "gctrace.h"
#include "heapprof.h"
#include "leaks.h"
#include "session.h"

struct recording {
	const char *command; /* "record", "serve": named in the profile's comments */
	struct session s;
	struct gctrace gc;
	struct leaks leaks;
	const char *by_label; /* the profile's summary rows by this pprof label's values, or NULL */
};

/*
 * Attaches (or launches) with the GC probes beside the heap's; o->extra is set here. On failure
 * err holds a one-line reason; recording_close releases r either way.
 */
int recording_start(struct recording *r, const char *command, struct session_opts *o, char *err,
		    size_t errlen);
/* What every tick keeps fresh: the leak timeline and the GC settings. */
void recording_tick(struct recording *r, double elapsed);
/* session_stop, then the GC probes' counters. */
void recording_stop(struct recording *r, enum evloop_end end);
/*
 * The heap profile as of now (or the end, after recording_stop), with its comments. With base
 * (heapprof_alloc_base, taken earlier), alloc values are what was allocated since.
 */
int recording_profile(struct recording *r, const struct heapprof_base *base, struct heapprof *h,
		      char *err, size_t errlen);
void recording_close(struct recording *r);

#endif

/*
 * gc: `heapspy gc`, every GC cycle, stop-the-world pause and the heap's growth of a running or
 * launched Go program; and the GC summary `heapspy record` carries.
 */
#ifndef HEAPSPY_GC_H
#define HEAPSPY_GC_H

#include <stdio.h>

#include "gctrace.h"
#include "pprof.h"
#include "session.h"

int cmd_gc(int argc, char **argv);

/* For heapspy record: the GC summary as comments in its profile. */
void gc_pprof_comments(const struct gctrace *g, const struct session *s, struct pprof *p);
/* For heapspy serve: the --json document of the cycles so far (malloc'd), NULL if out of memory. */
char *gc_json_text(const struct gctrace *g, const struct session *s);
/*
 * For heapspy record: the GC summary lines on out, and every cycle (the heap's timeline) as JSON
 * beside the profile, in PROFILE.gc.json.
 */
void gc_record_summary(const struct gctrace *g, const struct session *s, FILE *out,
		       const char *profile);

#endif

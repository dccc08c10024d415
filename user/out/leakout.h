/*
 * leakout: leak candidates as people and programs read them: text with stacks, a few lines for the
 * end of `heapspy record`, and JSON. Stacks are shown the way the heap profile shows them (leading
 * runtime frames trimmed, inlined calls expanded), through the profile's own trimming.
 */
#ifndef HEAPSPY_LEAKOUT_H
#define HEAPSPY_LEAKOUT_H

#include <stdio.h>

#include "heapprof.h"
#include "leaks.h"

struct leakout_info {
	int pid;
	const char *program, *go_version;
	double secs;	     /* recording time */
	int64_t rate;	     /* MemProfileRate */
	int64_t min_age;     /* of the objects in the old-objects profile */
	const char *profile; /* where that profile went, or NULL */
};

/* h symbolizes (its agg must be the one the report came from). top limits the candidates shown. */
void leakout_text(FILE *f, const struct leak_report *r, struct heapprof *h, int top);
/* A few lines: the top candidates, one per line, or why there are none. */
void leakout_brief(FILE *f, const struct leak_report *r, struct heapprof *h, int top);
/* {"candidates": [...], "stopped": [...], "thin": [...], ...}, malloc'd; NULL if out of memory. */
char *leakout_json_text(const struct leak_report *r, const struct leaks *l, struct heapprof *h,
			const struct leakout_info *info);
/* The same, written to path; 0 or -errno with err set. */
int leakout_json(const char *path, const struct leak_report *r, const struct leaks *l,
		 struct heapprof *h, const struct leakout_info *info, char *err, size_t errlen);

#endif

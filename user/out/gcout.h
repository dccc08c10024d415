/*
 * gcout: what heapspy gc (and record) show of the garbage collector: a line per cycle in the form
 * of GODEBUG=gctrace=1, a summary, a JSON document and an SVG picture of the heap over time.
 */
#ifndef HEAPSPY_GCOUT_H
#define HEAPSPY_GCOUT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "gcdecode.h"
#include "gcstats.h"
#include "gctune.h"

struct gc_report {
	const struct gcdecode *d;
	const struct gc_summary *sum;
	/* Times are shown from here (CLOCK_MONOTONIC ns): the program's start, as gctrace's "@",
	 * when the runtime's is known, else the recording's. */
	int64_t time_base;
	bool time_base_is_program;
	int pid;
	const char *program;
	const char *go_version;
	const char *offsets; /* where the runtime's field offsets came from */
	bool cost_measured;
	double jump_hit_ns, step_hit_ns; /* a probe hit's cost: see struct gctrace */
	uint64_t hits, lost, read_errors;
	/* What other settings would do; NULL to leave it out. */
	const struct gc_settings *settings;
	const struct gc_tuning *tune;
};

/* "gc 12 @1.234s: 0.045+2.1+0.012 ms clock, 4->5->2 MB, 5 MB goal (forced)" */
void gcout_cycle(FILE *f, const struct gc_cycle *c, int64_t time_base);
/* The stop-the-worlds that were not the GC's, one a line, at most max of them. */
void gcout_other_stws(FILE *f, const struct gc_report *r, size_t max);
/* The summary, one line per call of line() (no newline), shared by the text and pprof comments. */
void gcout_summary(const struct gc_report *r, void (*line)(void *ctx, const char *s), void *ctx);
/* The JSON document (malloc'd, the caller frees it), or NULL when out of memory. */
char *gcout_json_text(const struct gc_report *r);
/* 0, or -errno with err set. */
int gcout_json(const struct gc_report *r, const char *path, char *err, size_t errlen);
int gcout_svg(const struct gc_report *r, const char *path, char *err, size_t errlen);
/* Go's fmtNSAsMS: milliseconds with two significant digits, as gctrace prints them. */
void gcout_ms(char *buf, size_t len, int64_t ns);

#endif

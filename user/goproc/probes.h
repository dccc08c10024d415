/*
 * probes: where heapspy's probes go in a given Go binary, and what the runtime looks like there.
 * Function entries come from .gopclntab (present even in stripped binaries); the runtime variables
 * heapspy reads or writes come from the ELF symbol table, or from the code that uses them; the
 * layouts of the runtime's heap-profiling structures come from heaplayout.
 */
#ifndef HEAPSPY_PROBES_H
#define HEAPSPY_PROBES_H

#include <linux/types.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "heapspy.h"
#include "heaplayout.h"
#include "target.h"

struct probe_point {
	const char *name;
	uint64_t vaddr;	 /* link-time address probed, 0 when the binary lacks the function */
	uint64_t offset; /* file offset, what a uprobe attaches to */
};

struct heap_probes {
	struct probe_point mprof_malloc;
	struct probe_point free_special;
	struct probe_point
	    gcenable; /* launch mode stops here: runtime ready, no package init yet */
	/* runtime.GC's early publication; absent where nothing calls runtime.GC */
	struct probe_point mprof_postsweep;
	/*
	 * Link-time addresses of runtime variables, 0 when unknown. A stripped binary has no symbol
	 * table; they are then found in the code of the runtime functions that use them, and
	 * runtime.mbuckets only as candidates that the live process must confirm.
	 */
	uint64_t mem_profile_rate;
	uint64_t mbuckets;
	uint64_t mprof_cycle;
	uint64_t mbuckets_candidates[16];
	int nmbuckets_candidates;
	bool from_code; /* the variables came from code, not from a symbol table */
	/* MemProfileRate from code: the second function that agrees on it, NULL otherwise */
	const char *rate_confirmed_by;
	struct heap_layout layout; /* the BPF side's configuration, and what heapspy reads */
	bool has_layout;	   /* resolved: the command samples the heap */
};

/* Resolves a function's entry and file offset. 0 or -ENOENT. */
int probes_resolve(const struct target *t, const char *name, struct probe_point *p);
/*
 * Resolves a probe on the function's return: its only RET instruction, where RAX holds what it
 * returns (uretprobes would crash Go). -ENOENT when it has none or several.
 */
int probes_resolve_return(const struct target *t, const char *name, struct probe_point *p);
/*
 * Resolves the heap-sampling probes and, with layout, the runtime's heap-profiling layouts, which
 * only the commands that sample the heap need (gc does not); errors name what is missing.
 */
int probes_resolve_heap(const struct target *t, struct heap_probes *hp, bool layout, char *err,
			size_t errlen);

/* Says where each probe and variable was found, for --verbose. */
void probes_describe(const struct target *t, const struct heap_probes *hp, FILE *f);

#endif

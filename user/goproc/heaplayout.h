/*
 * heaplayout: what heapspy must know of the runtime's heap-profiling structures in one Go binary,
 * and where each fact came from. The binary itself is asked first: its DWARF (this very build),
 * else the runtime's own code (freeSpecial's switch on the special's kind, in a stripped binary);
 * a per-release table only as the last resort. A release newer than heapspy knows gets the newest
 * table's guess for what its binary cannot tell, said as such: the self-check judges it.
 *
 * HEAPSPY_TEST_PROFILE_KIND=N replaces _KindSpecialProfile, HEAPSPY_TEST_RECORD_WORDS=N the
 * words of a memRecordCycle. They exist for the tests only, which use them to show that the
 * self-check catches a wrong layout; they have no other use.
 */
#ifndef HEAPSPY_HEAPLAYOUT_H
#define HEAPSPY_HEAPLAYOUT_H

#include <stdio.h>

#include "heapspy.h"
#include "target.h"

/* LAYOUT_NEWEST: a release newer than heapspy knows, where only the newest table could say. */
enum layout_source {
	LAYOUT_UNKNOWN,
	LAYOUT_DWARF,
	LAYOUT_CODE,
	LAYOUT_TABLE,
	LAYOUT_NEWEST,
	LAYOUT_TEST,
};

enum layout_fact {
	LF_KIND_OFFSET,	  /* special.kind */
	LF_PROFILE_KIND,  /* _KindSpecialProfile */
	LF_BUCKET_OFFSET, /* specialprofile.b */
	LF_MALLOC_ARGS,	  /* where mProf_Malloc's p is among its parameters */
	LF_RECORD_WORDS,  /* words of a memRecordCycle */
	LF_PROFSTACK,	  /* m.profStack, which mProf_Malloc checks since Go 1.23; 0: no check */
	/* Where an allocating goroutine's pprof labels are; without them, no labels (not an error).
	 */
	LF_G_LABELS, /* g.labels */
	LF_G_M,	     /* g.m */
	LF_M_CURG,   /* m.curg */
	LF_COUNT,
};

/* Whether the probe reads the allocating goroutine's labels. */
enum labels_state {
	LABELS_NOT_LINKED, /* nothing in the binary can set labels: the linker dropped the setter */
	LABELS_UNKNOWN,	   /* it can, but where g keeps them is not established: said, not read */
	LABELS_READ,
};

struct heap_layout {
	struct hs_heap_config cfg; /* g_labels_offset only where labels is LABELS_READ */
	/*
	 * memRecordCycle: {allocs, frees, alloc_bytes, free_bytes}, 4 words; since Go 1.27
	 * {allocs, frees}, 2 words, and bytes are the count times the bucket's object size.
	 */
	unsigned record_words;
	/* g.labels, g.m and m.curg as established, 0 where not, whether or not labels are read */
	unsigned g_labels, g_m, m_curg;
	enum labels_state labels;
	/*
	 * What g.labels points to: a runtime/pprof labelMap, from Go 1.24 a struct holding a slice
	 * of key/value strings, before that a map[string]string.
	 */
	bool labels_slice;
	enum layout_source src[LF_COUNT];
};

/* A release's facts as the per-release table has them (-1: only the binary can say). */
struct heaplayout_row {
	int minor, patch;
	int64_t v[LF_COUNT];
};

/* The table's i-th row, NULL past the last: for the tests, which check each against its DWARF. */
const struct heaplayout_row *heaplayout_table_row(size_t i);

/* Establishes every fact or says, in one line, which one it could not. 0 or -ENOTSUP. */
int heaplayout_resolve(const struct target *t, struct heap_layout *l, char *err, size_t errlen);
/* Fact i (enum layout_fact) as resolved into l. */
unsigned heaplayout_fact(const struct heap_layout *l, int i);
/* Each fact and where it came from, for -v. */
void heaplayout_describe(const struct heap_layout *l, FILE *f);

#endif

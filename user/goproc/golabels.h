/*
 * golabels: the pprof label sets (runtime/pprof.Do, SetGoroutineLabels) that allocating goroutines
 * carried, decoded from the target's memory and interned: a sample keeps a small set id.
 *
 * The probe reads only g.labels, a pointer to runtime/pprof's labelMap: from Go 1.24 a struct
 * holding a slice of {key, value string} sorted by key, before that a map[string]string (the
 * runtime's classic hash map; heapspy reads its buckets, old and new while it grows). A set is
 * never changed once a goroutine carries it, so it is decoded once per distinct pointer. But its
 * memory can be freed and reused for another set after a GC (seen: a tenant's allocations shown
 * under another tenant's labels): a pointer names one set only within one heap-profile cycle. A
 * set reachable when the probe fired is not swept before the mark that ends the cycle (objects
 * are freed only by the sweep after a mark that found them unreachable, and one allocated since
 * the last mark is not swept before the next), but may be right after it. So the cache is keyed
 * by pointer and cycle, and a decode counts only if the target was still in the sample's cycle
 * when its last byte was read; otherwise the sample goes without labels and is counted as
 * unread.
 */
#ifndef HEAPSPY_GOLABELS_H
#define HEAPSPY_GOLABELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "u64map.h"

struct label_pair {
	char *key, *value;
};

/* Sorted by key; keys are unique. */
struct label_set {
	struct label_pair *pairs;
	size_t n;
};

/* Reads len bytes of the target at addr: 0 or -errno. */
typedef int (*golabels_read_fn)(void *ctx, uint64_t addr, void *buf, size_t len);
/* The target's heap-profile cycle now, or INT64_MIN when unknown. */
typedef int64_t (*golabels_cycle_fn)(void *ctx);

struct golabels {
	bool slice; /* Go 1.24+: a slice of pairs; before, a map[string]string */
	golabels_read_fn read;
	golabels_cycle_fn cycle;
	void *ctx;
	struct label_set *sets; /* sets[0] is the empty set: no labels */
	size_t nsets, sets_cap;
	struct u64map by_content; /* content hash (probed on collision) -> set */
	struct u64map by_ptr;	  /* g.labels -> cycle << 32 | set, this cycle's */
	int64_t ptr_cycle;	  /* the cycle by_ptr holds */
	uint64_t decoded;	  /* sets read from the target */
	uint64_t unread;	  /* samples whose labels could not be read, or not in time */
	size_t max_sets;	  /* new sets past this many are refused (-ENOSPC); 0: no limit */
};

/* A reader with no target (pipebench, tests of the rest) gets NULL functions: every set empty. */
void golabels_init(struct golabels *l, bool slice, golabels_read_fn read, golabels_cycle_fn cycle,
		   void *ctx);
void golabels_free(struct golabels *l);

/*
 * The id of the set g.labels pointed to at an allocation in heap-profile cycle `cycle` (INT64_MIN:
 * unknown, then nothing is cached): 0 for no labels or unreadable ones, -ENOSPC for a new set
 * past max_sets, or -ENOMEM.
 */
int64_t golabels_id(struct golabels *l, uint64_t ptr, int64_t cycle);

/* Set id's label set; id 0 (and any unknown id) is the empty set. */
const struct label_set *golabels_set(const struct golabels *l, uint32_t id);
/* The value of key in set id, or NULL. */
const char *golabels_value(const struct golabels *l, uint32_t id, const char *key);

/*
 * Decodes the set at ptr into *out (sorted, owned by the caller: label_set_free). 0, -EIO when the
 * target's memory does not hold a set of that shape, or -ENOMEM. For the tests.
 */
int golabels_decode(const struct golabels *l, uint64_t ptr, struct label_set *out);
void label_set_free(struct label_set *s);

#endif

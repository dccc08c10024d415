/*
 * u64map: an open-addressing hash map from 64-bit keys to 64-bit values (linear probing,
 * backward-shift deletion, so lookups never wade through tombstones). Every table heapspy keeps
 * (live objects by address, sites, stacks, runtime buckets) is one of these.
 */
#ifndef HEAPSPY_U64MAP_H
#define HEAPSPY_U64MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Key and value side by side: a lookup in a table bigger than the caches misses once, not twice. */
struct u64map_slot {
	uint64_t key, val;
};

struct u64map {
	struct u64map_slot *slots;
	uint8_t *used;
	size_t cap; /* a power of two, or 0 before the first insert */
	size_t len;
};

void u64map_free(struct u64map *m);
/* Returns a pointer to the value, or NULL. Valid until the next insert or delete. */
uint64_t *u64map_get(const struct u64map *m, uint64_t key);
/* Inserts or overwrites. Returns 0, or -ENOMEM. */
int u64map_put(struct u64map *m, uint64_t key, uint64_t val);
bool u64map_del(struct u64map *m, uint64_t key);
/*
 * Interning by content: a content hash can collide, so content whose hash key is taken by other
 * content lives under hash+1, hash+2, ... Finds the value whose content is the same (same(ctx,
 * value)) and returns true, or returns false with *key set to the free key the content belongs
 * under.
 */
typedef bool (*u64map_same_fn)(const void *ctx, uint64_t val);
bool u64map_find(const struct u64map *m, uint64_t hash, u64map_same_fn same, const void *ctx,
		 uint64_t *val, uint64_t *key);
/* A well-mixed 64-bit hash, for keys built from several words. */
uint64_t u64_mix(uint64_t h, uint64_t v);

#endif

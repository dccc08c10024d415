#include "golabels.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"

/* Bounds on what a label set can be: anything beyond is not one. */
#define MAX_PAIRS  4096
#define MAX_STRING (64u << 10)
/* 4096 pairs fill 2^10 buckets at most (load factor 6.5); a bucket array with overflow chains. */
#define MAX_BUCKETS_LOG2 10
#define MAX_BUCKET_READS (4u << MAX_BUCKETS_LOG2)

void golabels_init(struct golabels *l, bool slice, golabels_read_fn read, golabels_cycle_fn cycle,
		   void *ctx)
{
	memset(l, 0, sizeof(*l));
	l->slice = slice;
	l->read = read;
	l->cycle = cycle;
	l->ctx = ctx;
}

void label_set_free(struct label_set *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->pairs[i].key);
		free(s->pairs[i].value);
	}
	free(s->pairs);
	s->pairs = NULL;
	s->n = 0;
}

void golabels_free(struct golabels *l)
{
	for (size_t i = 0; i < l->nsets; i++)
		label_set_free(&l->sets[i]);
	free(l->sets);
	u64map_free(&l->by_content);
	u64map_free(&l->by_ptr);
	memset(l, 0, sizeof(*l));
}

static int read_string(const struct golabels *l, uint64_t addr, uint64_t len, char **out)
{
	char *s;

	if (len > MAX_STRING || (len && !addr))
		return -EIO;
	s = malloc(len + 1);
	if (!s)
		return -ENOMEM;
	if (len && l->read(l->ctx, addr, s, len) != 0) {
		free(s);
		return -EIO;
	}
	s[len] = 0;
	*out = s;
	return 0;
}

/* A Go string header {ptr, len} of the key and of the value, as both layouts keep them. */
static int add_pair(const struct golabels *l, struct label_set *s, size_t *cap,
		    const uint64_t kv[4])
{
	struct label_pair *p;
	int rc;

	if (s->n >= MAX_PAIRS)
		return -EIO;
	if (array_reserve((void **)&s->pairs, cap, s->n, sizeof(*s->pairs)))
		return -ENOMEM;
	p = &s->pairs[s->n];
	p->key = p->value = NULL;
	if ((rc = read_string(l, kv[0], kv[1], &p->key)) != 0)
		return rc;
	if ((rc = read_string(l, kv[2], kv[3], &p->value)) != 0) {
		free(p->key);
		return rc;
	}
	s->n++;
	return 0;
}

/* Go 1.24+: labelMap{LabelSet{list []label}}, label{key, value string}: the pairs in one read. */
static int decode_slice(const struct golabels *l, uint64_t ptr, struct label_set *s, size_t *cap)
{
	uint64_t hdr[2], (*kv)[4];
	int rc = 0;

	if (l->read(l->ctx, ptr, hdr, sizeof(hdr)) != 0 || hdr[1] > MAX_PAIRS ||
	    (hdr[1] && !hdr[0]))
		return -EIO;
	if (!hdr[1])
		return 0;
	if (!(kv = malloc(hdr[1] * sizeof(*kv))))
		return -ENOMEM;
	if (l->read(l->ctx, hdr[0], kv, hdr[1] * sizeof(*kv)) != 0)
		rc = -EIO;
	for (uint64_t i = 0; !rc && i < hdr[1]; i++)
		rc = add_pair(l, s, cap, kv[i]);
	free(kv);
	return rc;
}

/*
 * Before Go 1.24: *labelMap is a map[string]string, the runtime's hmap (runtime/map.go):
 * {count int; flags, B uint8; noverflow uint16; hash0 uint32; buckets, oldbuckets unsafe.Pointer;
 * ...}, each bucket {tophash [8]uint8; keys [8]string; elems [8]string; overflow *bucket}. A cell
 * is live where its tophash is at least minTopHash (5). A map that grew and has not been written
 * since keeps some of its cells in the old array: a bucket of it is either wholly moved (every
 * cell then marked evacuated, 2 to 4) or wholly still there, so the live cells of both arrays are
 * the map, each once. count says how many there must be.
 */
#define BUCKET_CELLS   8
#define MIN_TOPHASH    5
#define SAME_SIZE_GROW 8

struct go_bucket {
	uint8_t tophash[BUCKET_CELLS];
	uint64_t keys[BUCKET_CELLS][2];
	uint64_t elems[BUCKET_CELLS][2];
	uint64_t overflow;
};

static int decode_buckets(const struct golabels *l, uint64_t array, uint64_t nbuckets,
			  struct label_set *s, size_t *cap, unsigned *reads)
{
	struct go_bucket b;
	int rc;

	for (uint64_t i = 0; array && i < nbuckets; i++) {
		uint64_t at = array + i * sizeof(b);

		for (; at; at = b.overflow) {
			if (++*reads > MAX_BUCKET_READS || l->read(l->ctx, at, &b, sizeof(b)) != 0)
				return -EIO;
			for (int c = 0; c < BUCKET_CELLS; c++) {
				uint64_t kv[4] = {b.keys[c][0], b.keys[c][1], b.elems[c][0],
						  b.elems[c][1]};

				if (b.tophash[c] < MIN_TOPHASH)
					continue;
				if ((rc = add_pair(l, s, cap, kv)) != 0)
					return rc;
			}
		}
	}
	return 0;
}

static int decode_map(const struct golabels *l, uint64_t ptr, struct label_set *s, size_t *cap)
{
	struct {
		uint64_t count;
		uint8_t flags, b;
		uint16_t noverflow;
		uint32_t hash0;
		uint64_t buckets, oldbuckets;
	} h;
	uint64_t hmap, n, old;
	unsigned reads = 0;
	int rc;

	_Static_assert(sizeof(struct go_bucket) == 272, "map[string]string's bucket");
	if (l->read(l->ctx, ptr, &hmap, sizeof(hmap)) != 0)
		return -EIO;
	if (!hmap)
		return 0;
	if (l->read(l->ctx, hmap, &h, sizeof(h)) != 0 || h.count > MAX_PAIRS ||
	    h.b > MAX_BUCKETS_LOG2)
		return -EIO;
	n = 1ull << h.b;
	old = h.flags & SAME_SIZE_GROW ? n : n >> 1;
	if ((rc = decode_buckets(l, h.buckets, n, s, cap, &reads)) != 0 ||
	    (rc = decode_buckets(l, h.oldbuckets, old, s, cap, &reads)) != 0)
		return rc;
	return s->n == h.count ? 0 : -EIO;
}

static int by_key(const void *a, const void *b)
{
	return strcmp(((const struct label_pair *)a)->key, ((const struct label_pair *)b)->key);
}

int golabels_decode(const struct golabels *l, uint64_t ptr, struct label_set *out)
{
	size_t cap = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = l->slice ? decode_slice(l, ptr, out, &cap) : decode_map(l, ptr, out, &cap);
	if (rc == 0 && out->n) {
		qsort(out->pairs, out->n, sizeof(*out->pairs), by_key);
		for (size_t i = 1; i < out->n; i++)
			if (strcmp(out->pairs[i - 1].key, out->pairs[i].key) == 0)
				rc = -EIO;
	}
	if (rc)
		label_set_free(out);
	return rc;
}

static uint64_t str_hash(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
	return u64_mix(h, 0xff);
}

static uint64_t set_hash(const struct label_set *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < s->n; i++)
		h = str_hash(str_hash(h, s->pairs[i].key), s->pairs[i].value);
	return h;
}

struct content_key {
	const struct golabels *l;
	const struct label_set *s;
};

static bool same_set(const void *ctx, uint64_t idx)
{
	const struct content_key *k = ctx;
	const struct label_set *a = &k->l->sets[idx], *b = k->s;

	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->pairs[i].key, b->pairs[i].key) ||
		    strcmp(a->pairs[i].value, b->pairs[i].value))
			return false;
	return true;
}

/* The id of s's content, taking s over if it is new (else freeing it). */
static int64_t intern(struct golabels *l, struct label_set *s)
{
	struct content_key k = {l, s};
	uint64_t idx, key;

	if (!l->nsets) {
		if (array_reserve((void **)&l->sets, &l->sets_cap, 0, sizeof(*l->sets)))
			return -ENOMEM;
		memset(&l->sets[0], 0, sizeof(l->sets[0]));
		l->nsets = 1;
	}
	if (!s->n)
		return 0;
	if (u64map_find(&l->by_content, set_hash(s), same_set, &k, &idx, &key)) {
		label_set_free(s);
		return (int64_t)idx;
	}
	if (l->max_sets && l->nsets >= l->max_sets) {
		label_set_free(s);
		return -ENOSPC;
	}
	if (l->nsets >= UINT32_MAX ||
	    array_reserve((void **)&l->sets, &l->sets_cap, l->nsets, sizeof(*l->sets)) ||
	    u64map_put(&l->by_content, key, l->nsets)) {
		label_set_free(s);
		return -ENOMEM;
	}
	l->sets[l->nsets] = *s;
	return (int64_t)l->nsets++;
}

int64_t golabels_id(struct golabels *l, uint64_t ptr, int64_t cycle)
{
	bool cached = cycle != INT64_MIN && cycle >= 0;
	uint64_t *hit, stamp = (uint64_t)cycle << 32;
	struct label_set s;
	int64_t id, now;
	int rc;

	if (!ptr || !l->read)
		return 0;
	/* Entries of past cycles name nothing any more: a long recording keeps one cycle's. */
	if (cached && cycle > l->ptr_cycle) {
		u64map_free(&l->by_ptr);
		l->ptr_cycle = cycle;
	}
	if (cached && (hit = u64map_get(&l->by_ptr, ptr)) && (*hit >> 32) == (stamp >> 32))
		return (int64_t)(*hit & 0xffffffffu);
	rc = golabels_decode(l, ptr, &s);
	if (rc == -ENOMEM)
		return rc;
	now = l->cycle ? l->cycle(l->ctx) : INT64_MIN;
	/*
	 * The set may have become unreachable right after the probe fired, before the next mark
	 * began: swept, and its memory reused, as soon as that mark ends the cycle.
	 */
	if (rc || !cached || now != cycle) {
		if (rc == 0)
			label_set_free(&s);
		l->unread++;
		return 0;
	}
	l->decoded++;
	if ((id = intern(l, &s)) < 0)
		return id;
	if (u64map_put(&l->by_ptr, ptr, stamp | (uint64_t)id))
		return -ENOMEM;
	return id;
}

const struct label_set *golabels_set(const struct golabels *l, uint32_t id)
{
	static const struct label_set empty;

	return id < l->nsets ? &l->sets[id] : &empty;
}

const char *golabels_value(const struct golabels *l, uint32_t id, const char *key)
{
	const struct label_set *s = golabels_set(l, id);

	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->pairs[i].key, key) == 0)
			return s->pairs[i].value;
	return NULL;
}

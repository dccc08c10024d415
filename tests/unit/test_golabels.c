/*
 * golabels against label sets laid out in a fake target's memory as runtime/pprof lays them out:
 * Go 1.24+'s slice of pairs, and before that a map[string]string caught half-way through growing
 * (cells in the old bucket array and the new one, an overflow bucket), which the real programs of
 * tests/test_labels.py reach only by chance of hashing. Plus the cache's rule: a pointer names one
 * set only within a heap-profile cycle, and a set read after its cycle ended is not trusted.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "golabels.h"

#define BASE 0x1000u
static uint8_t mem[1 << 16];
static int64_t target_cycle;
static int reads;

static int fake_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
	(void)ctx;
	reads++;
	if (addr < BASE || addr - BASE + len > sizeof(mem))
		return -5;
	memcpy(buf, mem + (addr - BASE), len);
	return 0;
}

static int64_t fake_cycle(void *ctx)
{
	(void)ctx;
	return target_cycle;
}

static uint64_t brk_ = BASE;

static uint64_t put(const void *p, size_t len)
{
	uint64_t at = brk_;

	memcpy(mem + (at - BASE), p, len);
	brk_ += (len + 7) & ~(size_t)7;
	return at;
}

static uint64_t put_str(const char *s, uint64_t hdr[2])
{
	hdr[0] = put(s, strlen(s));
	hdr[1] = strlen(s);
	return hdr[0];
}

/* labelMap{list []label}: its address. */
static uint64_t slice_set(const char *const *kv, size_t n)
{
	uint64_t pairs[16][4], hdr[3];

	for (size_t i = 0; i < n; i++) {
		put_str(kv[2 * i], &pairs[i][0]);
		put_str(kv[2 * i + 1], &pairs[i][2]);
	}
	hdr[0] = put(pairs, n * sizeof(pairs[0]));
	hdr[1] = hdr[2] = n;
	return put(hdr, sizeof(hdr));
}

struct bucket {
	uint8_t tophash[8];
	uint64_t keys[8][2], elems[8][2];
	uint64_t overflow;
};

static void cell(struct bucket *b, int c, uint8_t top, const char *k, const char *v)
{
	b->tophash[c] = top;
	put_str(k, b->keys[c]);
	put_str(v, b->elems[c]);
}

/*
 * A map that grew from 2 buckets to 4: old bucket 0 was moved (its cells marked evacuated, their
 * stale keys left in place), old bucket 1 was not; new bucket 2 has an overflow bucket.
 */
static uint64_t growing_map(void)
{
	struct bucket old[2] = {0}, nb[4] = {0}, ovf = {0};
	struct {
		uint64_t count;
		uint8_t flags, b;
		uint16_t noverflow;
		uint32_t hash0;
		uint64_t buckets, oldbuckets, nevacuate, extra;
	} h = {.count = 6, .b = 2, .nevacuate = 1};
	uint64_t hmap;

	cell(&old[0], 0, 2, "stale", "x");  /* evacuatedX: now in a new bucket */
	cell(&old[0], 1, 3, "stale2", "y"); /* evacuatedY */
	old[0].tophash[2] = 4;		    /* evacuatedEmpty */
	cell(&old[1], 0, 200, "tenant", "gamma");
	cell(&old[1], 1, 1, "deleted", "z"); /* emptyOne */
	cell(&old[1], 3, 77, "k07", "7");
	cell(&nb[0], 0, 9, "endpoint", "/store");
	cell(&nb[2], 5, 250, "k01", "1");
	for (int c = 0; c < 8; c++)
		cell(&ovf, c, c == 2 ? 31 : 0, c == 2 ? "k02" : "nothing", "2");
	cell(&nb[3], 7, 5, "k00", "0");
	nb[2].overflow = put(&ovf, sizeof(ovf));
	h.oldbuckets = put(old, sizeof(old));
	h.buckets = put(nb, sizeof(nb));
	hmap = put(&h, sizeof(h));
	return put(&hmap, sizeof(hmap));
}

static void test_slice(void)
{
	static const char *const kv[] = {"tenant", "alpha", "endpoint", "/store"};
	struct golabels l;
	uint64_t p = slice_set(kv, 2);
	const struct label_set *s;
	int64_t id;

	golabels_init(&l, true, fake_read, fake_cycle, NULL);
	target_cycle = 3;
	id = golabels_id(&l, p, 3);
	CHECK(id == 1);
	s = golabels_set(&l, (uint32_t)id);
	CHECK(s->n == 2 && !strcmp(s->pairs[0].key, "endpoint") &&
	      !strcmp(s->pairs[1].value, "alpha"));
	CHECK(!strcmp(golabels_value(&l, (uint32_t)id, "tenant"), "alpha"));
	CHECK(golabels_value(&l, (uint32_t)id, "nope") == NULL);
	CHECK(golabels_id(&l, 0, 3) == 0 && golabels_set(&l, 0)->n == 0);
	/* Cached within the cycle: no read. */
	reads = 0;
	CHECK(golabels_id(&l, p, 3) == id && reads == 0);
	/* The same content at another address is the same set. */
	CHECK(golabels_id(&l, slice_set(kv, 2), 3) == id && l.nsets == 2);
	golabels_free(&l);
}

static void test_growing_map(void)
{
	struct golabels l;
	struct label_set s;
	static const char *const want[][2] = {{"endpoint", "/store"}, {"k00", "0"},
					      {"k01", "1"},	      {"k02", "2"},
					      {"k07", "7"},	      {"tenant", "gamma"}};

	golabels_init(&l, false, fake_read, fake_cycle, NULL);
	CHECK(golabels_decode(&l, growing_map(), &s) == 0);
	CHECK(s.n == 6);
	for (size_t i = 0; i < s.n && i < 6; i++)
		CHECK(!strcmp(s.pairs[i].key, want[i][0]) && !strcmp(s.pairs[i].value, want[i][1]));
	label_set_free(&s);
	golabels_free(&l);
}

/* A count that disagrees with the live cells is not a label set: no labels, counted. */
static void test_map_count_mismatch(void)
{
	struct golabels l;
	uint64_t p = growing_map(), hmap;
	struct label_set s;

	memcpy(&hmap, mem + (p - BASE), 8);
	mem[hmap - BASE] = 7;
	golabels_init(&l, false, fake_read, fake_cycle, NULL);
	CHECK(golabels_decode(&l, p, &s) != 0);
	target_cycle = 1;
	CHECK(golabels_id(&l, p, 1) == 0 && l.unread == 1);
	golabels_free(&l);
}

/*
 * A pointer names one set per cycle: in a later cycle its memory may hold another set. A set read
 * once the target has left the sample's cycle is not trusted.
 */
static void test_cycles(void)
{
	static const char *const a[] = {"tenant", "alpha"}, *const b[] = {"tenant", "beta"};
	struct golabels l;
	uint64_t p = slice_set(a, 1), q;
	int64_t ida, idb;

	golabels_init(&l, true, fake_read, fake_cycle, NULL);
	target_cycle = 5;
	ida = golabels_id(&l, p, 5);
	CHECK(ida > 0);
	/* The GC freed alpha's set; beta's now sits at the same address. */
	q = slice_set(b, 1);
	memcpy(mem + (p - BASE), mem + (q - BASE), 24);
	target_cycle = 6;
	idb = golabels_id(&l, p, 6);
	CHECK(idb > 0 && idb != ida &&
	      !strcmp(golabels_value(&l, (uint32_t)idb, "tenant"), "beta"));
	/* A sample of cycle 6 decoded once the target is in cycle 7: unread. */
	target_cycle = 7;
	CHECK(golabels_id(&l, q, 6) == 0 && l.unread == 1);
	/* A new cycle drops the last one's entries: a long recording's cache stays one cycle's. */
	CHECK(l.by_ptr.len == 1 && l.ptr_cycle == 6);
	/* Unknown cycle: nothing can be trusted. */
	CHECK(golabels_id(&l, q, INT64_MIN) == 0 && l.unread == 2);
	golabels_free(&l);
}

int main(void)
{
	int failures = 0;

	RUN(test_slice);
	RUN(test_growing_map);
	RUN(test_map_count_mismatch);
	RUN(test_cycles);
	return failures;
}

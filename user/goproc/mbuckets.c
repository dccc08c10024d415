#include "mbuckets.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gostack.h"
#include "procmem.h"

/* runtime/mprof.go: type bucket struct { next, allnext *bucket; typ bucketType; hash, size, nstk
 * uintptr } */
struct go_bucket {
	uint64_t next, allnext, typ, hash, size, nstk;
};

#define GO_MEM_PROFILE 1       /* bucketType memProfile */
#define GO_MAX_STACK   1024    /* maxProfStackDepth: a longer stack means we read garbage */
#define GO_MAX_BUCKETS 4000000 /* a list this long is a cycle, not a heap profile */

static int read_bucket(const struct target *t, uint64_t addr, struct go_bucket *b)
{
	int rc = procmem_read(t->mem_fd, addr, b, sizeof(*b));

	if (!rc && (b->typ != GO_MEM_PROFILE || b->nstk > GO_MAX_STACK))
		rc = -EPROTO;
	return rc;
}

uint64_t mbuckets_confirm(const struct target *t, const uint64_t *candidates, int n)
{
	for (int i = 0; i < n; i++) {
		struct go_bucket b;
		uint64_t head;

		if (target_read(t, candidates[i], &head, sizeof(head)) == 0 && head &&
		    read_bucket(t, head, &b) == 0)
			return candidates[i];
	}
	return 0;
}

/* A memRecordCycle of either shape, as heap_counts. */
static void widen(const uint64_t *w, unsigned words, uint64_t size, struct heap_counts *c)
{
	c->allocs = w[0];
	c->frees = w[1];
	/* Go 1.27 keeps counts only: every object of a bucket has the bucket's size. */
	c->alloc_bytes = words == 4 ? w[2] : w[0] * size;
	c->free_bytes = words == 4 ? w[3] : w[1] * size;
}

long mbuckets_walk(const struct target *t, uint64_t mbuckets_vaddr, unsigned record_words,
		   int (*fn)(void *ctx, const struct go_bucket_record *b), void *ctx, char *err,
		   size_t errlen)
{
	static uint64_t pcs[GO_MAX_STACK];
	struct go_bucket_record rec = {.pcs = pcs};
	uint64_t words[4 * 4]; /* active, future[3] */
	struct go_bucket b;
	uint64_t addr;
	long n = 0;
	int rc;

	rc = target_read(t, mbuckets_vaddr, &addr, sizeof(addr));
	for (; rc == 0 && addr; addr = b.allnext, n++) {
		if (n >= GO_MAX_BUCKETS) {
			rc = -ELOOP;
			break;
		}
		rc = read_bucket(t, addr, &b);
		if (rc)
			break;
		rc = procmem_read(t->mem_fd, addr + sizeof(b), pcs, b.nstk * sizeof(pcs[0]));
		if (!rc)
			rc = procmem_read(t->mem_fd, addr + sizeof(b) + b.nstk * sizeof(pcs[0]),
					  words, 4 * record_words * sizeof(words[0]));
		if (rc)
			break;
		rec.addr = addr;
		rec.nframes = (uint32_t)b.nstk;
		rec.size = b.size;
		widen(words, record_words, b.size, &rec.r.active);
		for (int j = 0; j < 3; j++)
			widen(words + (j + 1) * record_words, record_words, b.size,
			      &rec.r.future[j]);
		rc = fn(ctx, &rec);
	}
	if (rc) {
		snprintf(err, errlen,
			 "cannot read the runtime's heap records (runtime.mbuckets): %s",
			 rc == -EPROTO ? "unexpected layout" : strerror(-rc));
		return rc;
	}
	return n;
}

long mbuckets_walk_published(const struct target *t, uint64_t mbuckets_vaddr, uint64_t mprof_cycle,
			     unsigned record_words,
			     int (*fn)(void *ctx, const struct go_bucket_record *b), void *ctx,
			     int64_t *cycle, char *err, size_t errlen)
{
	uint32_t before, after;
	long n;
	int rc = target_read(t, mprof_cycle, &before, sizeof(before));

	if (rc) {
		snprintf(err, errlen, "cannot read runtime.mProfCycle: %s", strerror(-rc));
		return rc;
	}
	/* mProfCycle holds the cycle above a flag bit, set once the cycle is published. */
	if (!(before & 1))
		return -EAGAIN;
	n = mbuckets_walk(t, mbuckets_vaddr, record_words, fn, ctx, err, errlen);
	if (n < 0)
		return n;
	if (target_read(t, mprof_cycle, &after, sizeof(after)) != 0 || after != before)
		return -EAGAIN;
	*cycle = before >> 1;
	return n;
}

struct baseline_ctx {
	const struct target *t;
	struct heapagg *a;
	int64_t now;
};

/* The same frame list as the probes' for the same site (gostack), into pcs; returns its length. */
static uint32_t physical(const struct target *t, const struct go_bucket_record *b, uint64_t *pcs)
{
	memcpy(pcs, b->pcs, b->nframes * sizeof(*pcs));
	return gostack_physical(t, pcs, b->nframes);
}

static int add_baseline(void *ctx, const struct go_bucket_record *b)
{
	struct baseline_ctx *c = ctx;
	uint64_t pcs[GO_MAX_STACK];
	uint32_t n = physical(c->t, b, pcs);

	return heapagg_baseline(c->a, b->addr, pcs, n, b->size, &b->r, c->now);
}

int mbuckets_record(const struct target *t, struct heapagg *a, const struct go_bucket_record *b)
{
	uint64_t pcs[GO_MAX_STACK];
	uint32_t n = physical(t, b, pcs);

	return heapagg_record(a, b->addr, pcs, n, b->size, &b->r);
}

long mbuckets_read(const struct target *t, uint64_t mbuckets_vaddr, unsigned record_words,
		   int64_t now, struct heapagg *a, char *err, size_t errlen)
{
	struct baseline_ctx c = {t, a, now};

	return mbuckets_walk(t, mbuckets_vaddr, record_words, add_baseline, &c, err, errlen);
}

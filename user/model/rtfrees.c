#include "rtfrees.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "evloop.h"
#include "gostack.h"

void rtfrees_init(struct rtfrees *r, const struct target *t)
{
	memset(r, 0, sizeof(*r));
	r->t = t;
	r->applied = HEAPAGG_UNKNOWN_CYCLE;
}

void rtfrees_free(struct rtfrees *r)
{
	for (size_t i = 0; i < r->ngroups; i++) {
		free(r->groups[i].pcs);
		free(r->groups[i].sites);
	}
	free(r->groups);
	free(r->buf);
	u64map_free(&r->index);
	u64map_free(&r->buckets);
	memset(r, 0, sizeof(*r));
}

/* Room for two stacks of n frames in r->buf: one as read, one as shown. */
static int reserve(struct rtfrees *r, uint32_t n)
{
	size_t want = 2 * (size_t)n + 2;
	uint64_t *p;

	if (want <= r->buf_cap)
		return 0;
	p = realloc(r->buf, want * sizeof(*p));
	if (!p)
		return -ENOMEM;
	r->buf = p;
	r->buf_cap = want;
	return 0;
}

struct group_key {
	const struct rtfrees *r;
	const uint64_t *pcs;
	uint32_t n;
	uint64_t size;
};

static bool same_group(const void *ctx, uint64_t idx)
{
	const struct group_key *k = ctx;
	const struct rtfrees_group *g = &k->r->groups[idx];

	return g->size == k->size && g->n == k->n &&
	       memcmp(g->pcs, k->pcs, k->n * sizeof(*k->pcs)) == 0;
}

/* The group of a stack of physical return addresses (r->buf, n frames) and size, or -ENOMEM. */
static int64_t group_of(struct rtfrees *r, uint32_t n, uint64_t size)
{
	struct group_key k = {r, r->buf + n, 0, size};
	struct rtfrees_group *g;
	uint64_t h, idx, key;

	k.n = gostack_shown(r->t, r->buf, n, r->buf + n);
	h = u64_mix(k.n, size);
	for (uint32_t i = 0; i < k.n; i++)
		h = u64_mix(h, k.pcs[i]);
	if (u64map_find(&r->index, h, same_group, &k, &idx, &key))
		return (int64_t)idx;
	if (array_reserve((void **)&r->groups, &r->groups_cap, r->ngroups, sizeof(*r->groups)))
		return -ENOMEM;
	g = &r->groups[r->ngroups];
	memset(g, 0, sizeof(*g));
	g->size = size;
	g->n = k.n;
	g->pcs = malloc((k.n ? k.n : 1) * sizeof(*g->pcs));
	if (!g->pcs || u64map_put(&r->index, key, r->ngroups)) {
		free(g->pcs);
		return -ENOMEM;
	}
	memcpy(g->pcs, k.pcs, k.n * sizeof(*k.pcs));
	return (int64_t)r->ngroups++;
}

/* A bucket's group, found once: its stack as the probes would have it, then as shown. */
static int64_t bucket_group(struct rtfrees *r, const struct go_bucket_record *b)
{
	uint64_t *known = u64map_get(&r->buckets, b->addr);
	int64_t g;
	uint32_t n;

	if (known)
		return (int64_t)*known;
	if (reserve(r, b->nframes))
		return -ENOMEM;
	memcpy(r->buf, b->pcs, b->nframes * sizeof(*b->pcs));
	n = gostack_physical(r->t, r->buf, b->nframes);
	g = group_of(r, n, b->size);
	if (g >= 0 && u64map_put(&r->buckets, b->addr, (uint64_t)g))
		return -ENOMEM;
	return g;
}

void rtfrees_begin(struct rtfrees *r)
{
	for (size_t i = 0; i < r->ngroups; i++)
		r->groups[i].walk = 0;
}

int rtfrees_bucket(void *ctx, const struct go_bucket_record *b)
{
	struct rtfrees *r = ctx;
	int64_t g = bucket_group(r, b);

	if (g < 0)
		return (int)g;
	r->groups[g].walk += b->r.active.frees;
	return 0;
}

int rtfrees_read(struct rtfrees *r, uint64_t mbuckets, uint64_t mprof_cycle, unsigned record_words,
		 int (*fn)(void *ctx, const struct go_bucket_record *b), void *ctx, int64_t *cycle,
		 uint64_t *ts)
{
	uint32_t now;
	char err[256];
	long n;

	if (!mbuckets || !mprof_cycle || target_read(r->t, mprof_cycle, &now, sizeof(now)) != 0)
		return -ENOENT;
	if (r->applied != HEAPAGG_UNKNOWN_CYCLE && (int64_t)(now >> 1) <= r->applied)
		return -EAGAIN;
	*ts = evloop_now_ns();
	if (*ts - r->walk_end_ns < 9 * r->walk_ns)
		return -EAGAIN;
	rtfrees_begin(r);
	n = mbuckets_walk_published(r->t, mbuckets, mprof_cycle, record_words, fn, ctx, cycle, err,
				    sizeof(err));
	r->walk_end_ns = evloop_now_ns();
	r->walk_ns = r->walk_end_ns - *ts;
	return n < 0 ? (int)n : 0;
}

int rtfrees_origin(void *ctx, const struct go_bucket_record *b)
{
	struct rtfrees *r = ctx;
	int64_t g = bucket_group(r, b);

	if (g < 0)
		return (int)g;
	r->groups[g].origin += heapagg_held(&b->r).frees;
	return 0;
}

void rtfrees_forget_origin(struct rtfrees *r)
{
	for (size_t i = 0; i < r->ngroups; i++)
		r->groups[i].origin = 0;
}

/* Puts heapagg's sites that are new since the last call into their groups. */
static int place_sites(struct rtfrees *r, const struct heapagg *a)
{
	for (; r->sites_seen < a->nsites; r->sites_seen++) {
		const struct heap_site *s = &a->sites[r->sites_seen];
		const struct heap_stack *st = &a->stacks[s->stack];
		struct rtfrees_group *g;
		int64_t gi;

		if (reserve(r, st->nframes))
			return -ENOMEM;
		memcpy(r->buf, st->pcs, st->nframes * sizeof(*st->pcs));
		gi = group_of(r, st->nframes, s->size);
		if (gi < 0)
			return (int)gi;
		g = &r->groups[gi];
		if (array_reserve((void **)&g->sites, &g->sites_cap, g->nsites, sizeof(*g->sites)))
			return -ENOMEM;
		g->sites[g->nsites++] = (uint32_t)r->sites_seen;
	}
	return 0;
}

int rtfrees_apply(struct rtfrees *r, struct heapagg *a, int64_t cycle, uint64_t ts)
{
	int rc = place_sites(r, a);

	if (rc)
		return rc;
	/* Frees no site can take are of objects heapspy never saw allocated: left out. */
	for (size_t i = 0; i < r->ngroups; i++) {
		const struct rtfrees_group *g = &r->groups[i];

		heapagg_runtime_frees(a, g->sites, g->nsites,
				      g->walk > g->origin ? g->walk - g->origin : 0, cycle, ts);
	}
	r->applied = cycle;
	return 0;
}

#include "selfcheck.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "evloop.h"
#include "gostack.h"
#include "mbuckets.h"

void selfcheck_init(struct selfcheck *c)
{
	memset(c, 0, sizeof(*c));
	c->pending = c->last_snapshot = HEAPAGG_UNKNOWN_CYCLE;
}

static void forget_sites(struct selfcheck *c)
{
	u64map_free(&c->index);
	memset(&c->index, 0, sizeof(c->index));
	c->nsites = 0;
}

void selfcheck_free(struct selfcheck *c)
{
	forget_sites(c);
	free(c->sites);
	free(c->shown);
	u64map_free(&c->origin);
	memset(c, 0, sizeof(*c));
}

/*
 * A site's first frame as the profile shows it (gostack_shown): a probe's stack cut where the
 * runtime's callers starts its record, leading runtime frames hidden. 0 when it shows none.
 */
static uint64_t first_shown(struct selfcheck *c, const struct target *t, const uint64_t *pcs,
			    uint32_t n)
{
	if (n > c->shown_cap) {
		uint64_t *p = realloc(c->shown, n * sizeof(*p));

		if (!p)
			return 0;
		c->shown = p;
		c->shown_cap = n;
	}
	return n && gostack_shown(t, pcs, n, c->shown) ? c->shown[0] : 0;
}

static uint64_t site_key(struct selfcheck *c, const struct target *t, uint64_t size,
			 const uint64_t *pcs, uint32_t n)
{
	/* Two sites sharing a key would only be compared as one, on both sides alike. */
	return u64_mix(size, first_shown(c, t, pcs, n));
}

/*
 * A site as both sides can name it: the object size and the first frame the profile shows. The
 * runtime's stacks and heapspy's begin at different depths in the allocator (and the runtime's
 * carry extra PCs for inlined calls), but from there on they are the same: the runtime's record
 * starts past a fixed count of allocator frames, which on a short path (a buffer from
 * internal/bytealg.MakeNoZero) is already past a frame of the program.
 */
static struct selfcheck_site *site(struct selfcheck *c, const struct target *t, uint64_t size,
				   const uint64_t *pcs, uint32_t n)
{
	uint64_t key = site_key(c, t, size, pcs, n), *idx, *before;
	struct selfcheck_site *s;

	idx = u64map_get(&c->index, key);
	if (idx)
		return &c->sites[*idx];
	if (array_reserve((void **)&c->sites, &c->sites_cap, c->nsites, sizeof(*c->sites)) ||
	    u64map_put(&c->index, key, c->nsites))
		return NULL;
	s = &c->sites[c->nsites++];
	before = u64map_get(&c->origin, key);
	*s = (struct selfcheck_site){.runtime = before ? -(int64_t)*before : 0};
	return s;
}

struct walk_ctx {
	struct selfcheck *c;
	const struct target *t;
};

static int add_runtime(void *ctx, const struct go_bucket_record *b)
{
	struct walk_ctx *w = ctx;
	struct selfcheck_site *s = site(w->c, w->t, b->size, b->pcs, b->nframes);

	if (!s)
		return -ENOMEM;
	s->runtime += (int64_t)b->r.active.allocs - (int64_t)b->r.active.frees;
	return w->c->also ? w->c->also(w->c->also_ctx, b) : 0;
}

/* Everything a bucket holds, published or not: all of it predates heapspy. */
int selfcheck_origin_bucket(struct selfcheck *c, const struct target *t,
			    const struct go_bucket_record *b)
{
	uint64_t key = site_key(c, t, b->size, b->pcs, b->nframes), *n;
	struct heap_counts all = heapagg_held(&b->r);

	if (all.allocs <= all.frees)
		return 0;
	n = u64map_get(&c->origin, key);
	if (n)
		*n += all.allocs - all.frees;
	return n ? 0 : u64map_put(&c->origin, key, all.allocs - all.frees);
}

void selfcheck_forget_origin(struct selfcheck *c)
{
	u64map_free(&c->origin);
}

int selfcheck_snapshot(struct selfcheck *c, const struct target *t, uint64_t mbuckets,
		       uint64_t mprof_cycle, unsigned record_words, int64_t every)
{
	struct walk_ctx w = {c, t};
	uint32_t now;
	uint64_t t0;
	char err[256];
	int64_t cycle;
	long n;
	int rc;

	if (c->pending != HEAPAGG_UNKNOWN_CYCLE)
		return 0;
	if (!mbuckets || !mprof_cycle) {
		c->error = -ENOENT;
		return -ENOENT;
	}
	t0 = evloop_now_ns();
	rc = target_read(t, mprof_cycle, &now, sizeof(now));
	if (rc) {
		c->error = rc;
		return rc;
	}
	/* mProfCycle holds the cycle above a "published" flag bit. */
	cycle = now >> 1;
	if (c->last_snapshot != HEAPAGG_UNKNOWN_CYCLE &&
	    (cycle < c->last_snapshot + every ||
	     (every && t0 - c->pending_ns < SELFCHECK_INTERVAL_NS)))
		return -EAGAIN;
	forget_sites(c);
	n = mbuckets_walk_published(t, mbuckets, mprof_cycle, record_words, add_runtime, &w, &cycle,
				    err, sizeof(err));
	if (n == -EAGAIN)
		return -EAGAIN;
	if (n < 0) {
		c->error = (int)n;
		return (int)n;
	}
	c->pending = c->last_snapshot = cycle;
	c->pending_ns = t0;
	c->error = 0;
	return 0;
}

static bool agrees(const struct selfcheck_result *r)
{
	return (double)r->apart <= SELFCHECK_TOLERANCE_PCT / 100.0 * (double)r->runtime_inuse ||
	       r->apart <= SELFCHECK_SLACK;
}

void selfcheck_compare(struct selfcheck *c, const struct target *t, const struct heapagg *a)
{
	struct selfcheck_result r = {.cycle = c->pending};

	if (c->pending == HEAPAGG_UNKNOWN_CYCLE)
		return;
	c->pending = HEAPAGG_UNKNOWN_CYCLE;
	/* heapagg keeps four cycles apart: past that, its totals at r.cycle hold later events. */
	if (a->last_cycle > r.cycle + 2)
		return;
	for (size_t i = 0; i < a->nsites; i++) {
		const struct heap_site *hs = &a->sites[i];
		const struct heap_stack *st = &a->stacks[hs->stack];
		struct selfcheck_site *s;
		struct heap_totals tot;

		/* runtime.GC() publishes a cycle early: the snapshot saw that if it came first. */
		heapagg_totals_before(a, hs, r.cycle, c->pending_ns, &tot);
		if (!tot.inuse_objects)
			continue;
		s = site(c, t, hs->size, st->pcs, st->nframes);
		if (!s)
			return;
		s->heapspy += (int64_t)tot.inuse_objects;
	}
	for (size_t i = 0; i < c->nsites; i++) {
		const struct selfcheck_site *s = &c->sites[i];

		/*
		 * Below zero, the runtime freed objects that predate heapspy, which heapspy never
		 * saw: none of them is heapspy's to account for.
		 */
		int64_t runtime = s->runtime > 0 ? s->runtime : 0;

		if (!runtime && !s->heapspy)
			continue;
		r.sites++;
		r.runtime_inuse += (uint64_t)runtime;
		r.heapspy_inuse += (uint64_t)s->heapspy;
		r.apart +=
		    (uint64_t)(s->heapspy > runtime ? s->heapspy - runtime : runtime - s->heapspy);
	}
	c->checks++;
	c->last = r;
	if (!agrees(&r)) {
		c->failures++;
		if (c->failures == 1 || r.apart > c->worst.apart)
			c->worst = r;
	}
}

bool selfcheck_failed(const struct selfcheck *c)
{
	return c->inconsistent || (c->checks && (!agrees(&c->last) || 2 * c->failures > c->checks));
}

static double percent(uint64_t part, uint64_t whole)
{
	return whole ? 100.0 * (double)part / (double)whole : part ? 100.0 : 0.0;
}

void selfcheck_line(const struct selfcheck *c, char *buf, size_t len)
{
	const struct selfcheck_result *w = agrees(&c->last) ? &c->worst : &c->last, *l = &c->last;

	if (c->inconsistent)
		snprintf(buf, len,
			 "self-check FAILED: %" PRIu64
			 " of the runtime's records do not hold objects "
			 "of one size (bytes are not counts times the size): heapspy misreads this "
			 "runtime, do not trust this profile",
			 c->inconsistent);
	else if (selfcheck_failed(c))
		snprintf(
		    buf, len,
		    "self-check FAILED: %" PRIu64 " sampled objects in use, the runtime's own "
		    "records say %" PRIu64 " at cycle %" PRId64
		    " (%.1f%% apart over %zu sites, tolerance %.0f%%; %d of %d checks failed): "
		    "heapspy misreads this runtime, do not trust this profile",
		    w->heapspy_inuse, w->runtime_inuse, w->cycle,
		    percent(w->apart, w->runtime_inuse), w->sites, SELFCHECK_TOLERANCE_PCT,
		    c->failures, c->checks);
	else if (c->checks)
		snprintf(buf, len,
			 "self-check: %zu sites, in-use objects within %.1f%% of the runtime's own "
			 "records at cycle %" PRId64 " (%d check%s, %d beyond %.0f%%)",
			 l->sites, percent(l->apart, l->runtime_inuse), l->cycle, c->checks,
			 c->checks == 1 ? "" : "s", c->failures, SELFCHECK_TOLERANCE_PCT);
	else if (c->error)
		snprintf(buf, len,
			 "self-check: not made: the runtime's own records (runtime.mbuckets, "
			 "runtime.mProfCycle) could not be read: %s",
			 strerror(-c->error));
	else
		snprintf(buf, len,
			 "self-check: not made: the runtime published no heap-profile "
			 "cycle heapspy could compare with");
}

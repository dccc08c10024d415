#include "heapagg.h"

#include "array.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EMPTY_CYCLE INT64_MIN

void heapagg_init(struct heapagg *a)
{
	memset(a, 0, sizeof(*a));
	a->last_cycle = a->rt_cycle = HEAPAGG_UNKNOWN_CYCLE;
	a->rate = 512 * 1024;
	for (int i = 0; i < 4; i++)
		a->swept[i].cycle = EMPTY_CYCLE;
}

void heapagg_free(struct heapagg *a)
{
	for (size_t i = 0; i < a->nstacks; i++)
		free(a->stacks[i].pcs);
	free(a->stacks);
	free(a->sites);
	free(a->objects);
	u64map_free(&a->stack_index);
	u64map_free(&a->site_index);
	u64map_free(&a->live);
	u64map_free(&a->buckets);
	u64map_free(&a->last_event);
	memset(a, 0, sizeof(*a));
}

struct stack_key {
	const struct heapagg *a;
	const uint64_t *pcs;
	uint32_t n;
};

static bool same_stack(const void *ctx, uint64_t idx)
{
	const struct stack_key *k = ctx;
	const struct heap_stack *s = &k->a->stacks[idx];

	return s->nframes == k->n && memcmp(s->pcs, k->pcs, k->n * sizeof(*k->pcs)) == 0;
}

/*
 * Every allocation event hashes its whole stack: two multiply lanes, finished by one u64_mix, make
 * a dependency chain several times shorter than a u64_mix per frame. u64map mixes the result again.
 */
static uint64_t stack_hash(const uint64_t *pcs, uint32_t n)
{
	uint64_t h0 = n, h1 = 0;
	uint32_t i;

	for (i = 0; i + 1 < n; i += 2) {
		h0 = (h0 ^ pcs[i]) * 0x9e3779b97f4a7c15ull;
		h1 = (h1 ^ pcs[i + 1]) * 0xc2b2ae3d27d4eb4full;
	}
	if (i < n)
		h0 = (h0 ^ pcs[i]) * 0x9e3779b97f4a7c15ull;
	return u64_mix(h0, h1);
}

/* The stack's index, added unless full (then -ENOSPC when it is new), or -ENOMEM. */
static int64_t intern_stack(struct heapagg *a, const uint64_t *pcs, uint32_t n, bool full)
{
	struct stack_key k = {a, pcs, n};
	uint64_t idx, key;
	struct heap_stack *s;

	if (u64map_find(&a->stack_index, stack_hash(pcs, n), same_stack, &k, &idx, &key))
		return (int64_t)idx;
	if (full)
		return -ENOSPC;
	if (array_reserve((void **)&a->stacks, &a->stacks_cap, a->nstacks, sizeof(*a->stacks)))
		return -ENOMEM;
	s = &a->stacks[a->nstacks];
	s->nframes = n;
	s->pcs = malloc((n ? n : 1) * sizeof(*pcs));
	if (!s->pcs || u64map_put(&a->stack_index, key, a->nstacks)) {
		free(s->pcs);
		return -ENOMEM;
	}
	memcpy(s->pcs, pcs, n * sizeof(*pcs));
	return (int64_t)a->nstacks++;
}

struct site_key {
	const struct heapagg *a;
	uint32_t stack, labels;
	uint64_t size;
};

static bool same_site(const void *ctx, uint64_t idx)
{
	const struct site_key *k = ctx;

	return k->a->sites[idx].stack == k->stack && k->a->sites[idx].size == k->size &&
	       k->a->sites[idx].labels == k->labels;
}

/* The site's index, added while there is room (else -ENOSPC when it is new), or -ENOMEM. */
static int64_t intern_site(struct heapagg *a, const uint64_t *pcs, uint32_t n, uint64_t size,
			   uint32_t labels)
{
	bool full = a->max_sites && a->nsites >= a->max_sites;
	int64_t stack = intern_stack(a, pcs, n, full);
	struct site_key k = {a, (uint32_t)stack, labels, size};
	uint64_t idx, key;
	struct heap_site *s;

	if (stack < 0)
		return stack;
	if (u64map_find(&a->site_index, u64_mix(u64_mix((uint64_t)stack, size), labels), same_site,
			&k, &idx, &key))
		return (int64_t)idx;
	if (full)
		return -ENOSPC;
	if (array_reserve((void **)&a->sites, &a->sites_cap, a->nsites, sizeof(*a->sites)) ||
	    u64map_put(&a->site_index, key, a->nsites))
		return -ENOMEM;
	s = &a->sites[a->nsites];
	memset(s, 0, sizeof(*s));
	s->stack = (uint32_t)stack;
	s->size = size;
	s->labels = labels;
	s->scale_rate = -1;
	for (int i = 0; i < 4; i++)
		s->allocs[i].cycle = s->frees[i].cycle = EMPTY_CYCLE;
	return (int64_t)a->nsites++;
}

static void add_counts(struct heap_counts *to, const struct heap_counts *c)
{
	to->allocs += c->allocs;
	to->frees += c->frees;
	to->alloc_bytes += c->alloc_bytes;
	to->free_bytes += c->free_bytes;
}

struct heap_counts heapagg_held(const struct go_mem_record *r)
{
	struct heap_counts all = r->active;

	for (int j = 0; j < 3; j++)
		add_counts(&all, &r->future[j]);
	return all;
}

static void add_tally(struct heap_tally *to, const struct heap_tally *t)
{
	add_counts(&to->n, &t->n);
	to->est_allocs += t->est_allocs;
	to->est_frees += t->est_frees;
}

/*
 * Accounts t to cycle in ring (allocs or frees). A slot still holding an older cycle is at least
 * four cycles old, past any publication delay, so it folds into the settled counts.
 */
static void account(struct heap_site *s, struct heap_cycle_counts *ring, int64_t cycle,
		    const struct heap_tally *t)
{
	struct heap_cycle_counts *slot;

	if (cycle == HEAPAGG_UNKNOWN_CYCLE) {
		add_tally(&s->settled, t);
		return;
	}
	slot = &ring[cycle & 3];
	if (slot->cycle != cycle) {
		add_tally(&s->settled, &slot->t);
		memset(&slot->t, 0, sizeof(slot->t));
		slot->cycle = cycle;
	}
	add_tally(&slot->t, t);
}

double heap_scale(double size, int64_t rate)
{
	if (rate <= 1)
		return 1;
	return 1 / (1 - exp(-size / (double)rate));
}

/* The objects one sample of site s stands for; a sample taken at rate -1 is at a->rate. */
static double sample_weight(const struct heapagg *a, struct heap_site *s, int64_t rate)
{
	if (rate < 0)
		rate = a->rate;
	if (rate != s->scale_rate) {
		s->scale = heap_scale((double)s->size, rate);
		s->scale_rate = rate;
	}
	return s->scale;
}

/* Appends n allocations of weight w to s's runs. */
static void add_run(struct heap_site *s, double w, uint64_t n)
{
	uint32_t last = s->nruns - 1;

	if (!n)
		return;
	if (s->nruns && s->runs[last].weight == w) {
		s->runs[last].n += n;
	} else if (s->nruns < HEAPAGG_RUNS) {
		s->runs[s->nruns].weight = w;
		s->runs[s->nruns++].n = n;
	} else {
		double all = (double)(s->runs[last].n + n);

		s->runs[last].weight =
		    (s->runs[last].weight * (double)s->runs[last].n + w * (double)n) / all;
		s->runs[last].n += n;
	}
}

/* The objects the n oldest allocations of s stand for. */
static double oldest_weight(const struct heap_site *s, uint64_t n)
{
	double est = 0;

	for (uint32_t i = 0; i < s->nruns && n; i++) {
		uint64_t take = n < s->runs[i].n ? n : s->runs[i].n;

		est += s->runs[i].weight * (double)take;
		n -= take;
	}
	return est;
}

/* Follows the rate samples come at: the summary and the profile say when it changed. */
static void note_rate(struct heapagg *a, int64_t rate, uint64_t ts)
{
	struct heap_rate_period *p = a->nperiods ? &a->periods[a->nperiods - 1] : NULL;

	if (rate < 0)
		rate = a->rate;
	if (p && p->rate == rate) {
		p->samples++;
		return;
	}
	if (p)
		a->rate_changes++;
	if (a->nperiods == HEAPAGG_RATE_PERIODS)
		return;
	a->periods[a->nperiods++] = (struct heap_rate_period){.rate = rate, .ts = ts, .samples = 1};
}

int64_t heapagg_last_rate(const struct heapagg *a)
{
	return a->nperiods ? a->periods[a->nperiods - 1].rate : a->rate;
}

static int64_t event_cycle(struct heapagg *a, __u32 cycle)
{
	if (cycle == ~0u)
		return HEAPAGG_UNKNOWN_CYCLE;
	if ((int64_t)cycle > a->last_cycle)
		a->last_cycle = cycle;
	return cycle;
}

static int64_t new_object(struct heapagg *a)
{
	int64_t i;

	if (a->free_object) {
		i = (int64_t)a->free_object - 1;
		a->free_object = a->objects[i].ts;
		return i;
	}
	if (array_reserve((void **)&a->objects, &a->objects_cap, a->nobjects, sizeof(*a->objects)))
		return -ENOMEM;
	return (int64_t)a->nobjects++;
}

/* A hole in objects keeps the next hole's 1-based index in ts. */
static void drop_object(struct heapagg *a, uint64_t i)
{
	a->objects[i].ts = a->free_object;
	a->free_object = i + 1;
}

/*
 * A uprobe whose single-step is interrupted by a signal (Go preempts goroutines with SIGURG) runs
 * its handler again when the instruction restarts: the same call arrives twice, back to back on
 * its thread. The repeat is the thread's previous event again, with the object still live (an
 * allocation) or still gone (a free); a real second event at that address needs a free or an
 * allocation in between, which heapagg would have seen.
 */
static bool repeated(struct heapagg *a, const struct hs_event_header *h, uint64_t addr, bool live)
{
	uint64_t key = (uint64_t)h->type << 62 | (addr & ((1ull << 62) - 1));
	uint64_t *prev = u64map_get(&a->last_event, h->tid);

	if (prev && *prev == key && live == (h->type == HS_EV_ALLOC)) {
		a->repeated++;
		return true;
	}
	if (prev)
		*prev = key;
	else
		u64map_put(&a->last_event, h->tid, key);
	return false;
}

/*
 * A live object's map value is its index and its site: a free then finds the site in the slot it
 * has just read, not in objects[], which a table of 100k objects keeps out of the caches. (2^32
 * live objects would take 96 GiB of objects[] first.)
 */
static uint64_t live_val(uint64_t obj, int64_t site)
{
	return obj << 32 | (uint32_t)site;
}

int heapagg_alloc(struct heapagg *a, const struct hs_alloc_event *e)
{
	struct heap_tally t = {.n = {.allocs = 1, .alloc_bytes = e->size}};
	int64_t cycle = event_cycle(a, e->hdr.cycle);
	int64_t labels = a->labels ? golabels_id(a->labels, e->labels, cycle) : 0;
	int64_t site, obj;
	uint64_t *prev;

	if (labels == -ENOSPC) {
		a->capped_samples++;
		return 0;
	}
	if (labels < 0)
		return (int)labels;
	site = intern_site(a, (const uint64_t *)e->pcs, e->nframes, e->size, (uint32_t)labels);
	if (site == -ENOSPC) {
		a->capped_samples++;
		return 0;
	}
	if (site < 0)
		return (int)site;
	/*
	 * Without frees, a repeat is the thread's previous allocation again in the same cycle: a
	 * real second one at that address needs the first swept, which a new cycle comes before.
	 */
	prev = a->runtime_frees ? NULL : u64map_get(&a->live, e->addr);
	if (repeated(a, &e->hdr, a->runtime_frees ? u64_mix(e->addr, e->hdr.cycle) : e->addr,
		     a->runtime_frees || prev != NULL))
		return 0;
	a->samples++;
	note_rate(a, e->rate, e->hdr.ts);
	t.est_allocs = sample_weight(a, &a->sites[site], e->rate);
	account(&a->sites[site], a->sites[site].allocs, cycle, &t);
	if (a->runtime_frees) {
		add_run(&a->sites[site], t.est_allocs, 1);
		return 0;
	}

	/* An address still live here was freed while an event was lost: the new object wins. */
	if (prev) {
		obj = (int64_t)(*prev >> 32);
		*prev = live_val((uint64_t)obj, site);
	} else {
		obj = new_object(a);
		if (obj < 0 || u64map_put(&a->live, e->addr, live_val((uint64_t)obj, site)))
			return -ENOMEM;
	}
	a->objects[obj] = (struct heap_object){
	    .site = (uint32_t)site, .cycle = cycle, .ts = e->hdr.ts, .weight = t.est_allocs};
	return 0;
}

int heapagg_free_event(struct heapagg *a, const struct hs_free_event *e)
{
	struct heap_tally t = {.n = {.frees = 1, .free_bytes = e->size}};
	int64_t cycle = event_cycle(a, e->hdr.cycle);
	uint64_t *obj = u64map_get(&a->live, e->addr), *site;

	if (repeated(a, &e->hdr, e->addr, obj != NULL))
		return 0;
	a->frees++;
	if (obj) {
		uint64_t i = *obj >> 32;
		struct heap_site *s = &a->sites[(uint32_t)*obj];

		/* A free weighs what its allocation weighed, whatever the rate is now. */
		t.est_frees = a->objects[i].weight;
		account(s, s->frees, cycle, &t);
		u64map_del(&a->live, e->addr);
		drop_object(a, i);
		return 0;
	}
	site = e->bucket ? u64map_get(&a->buckets, e->bucket) : NULL;
	if (!site) {
		a->unmatched_frees++;
		return 0;
	}
	t.est_frees = sample_weight(a, &a->sites[*site], a->rate);
	account(&a->sites[*site], a->sites[*site].frees, cycle, &t);
	if (a->sites[*site].pre_objects)
		a->sites[*site].pre_objects--;
	return 0;
}

/*
 * mProf_PostSweep in cycle C flushes future[(C+1)%3] into the published profile: the allocations
 * of cycle C-1 and the frees of cycle C, all of them (runtime.GC calls it once the sweep is done,
 * and frees come only from the sweep). Remembered by cycle and time, so that a profile at C, or a
 * reader of the runtime's records at C, counts them from then on.
 */
void heapagg_post_sweep(struct heapagg *a, const struct hs_event_header *e)
{
	int64_t cycle = event_cycle(a, e->cycle);

	if (cycle == HEAPAGG_UNKNOWN_CYCLE)
		return;
	a->post_sweeps++;
	if (a->swept[cycle & 3].cycle != cycle) {
		a->swept[cycle & 3].cycle = cycle;
		a->swept[cycle & 3].ts = e->ts;
	}
}

int heapagg_event(struct heapagg *a, const void *data, size_t len)
{
	const struct hs_event_header *h = data;

	const struct hs_alloc_event *al = data;

	/* An allocation event carries only its frames. */
	if (len >= HS_ALLOC_EVENT_BYTES(0) && h->type == HS_EV_ALLOC &&
	    al->nframes <= HS_MAX_FRAMES && len >= HS_ALLOC_EVENT_BYTES(al->nframes))
		return heapagg_alloc(a, data);
	if (len >= sizeof(struct hs_free_event) && h->type == HS_EV_FREE)
		return heapagg_free_event(a, data);
	if (len >= sizeof(*h) && h->type == HS_EV_POSTSWEEP)
		heapagg_post_sweep(a, h);
	return 0;
}

static int64_t mod3(int64_t v)
{
	return ((v % 3) + 3) % 3;
}

int heapagg_baseline(struct heapagg *a, uint64_t bucket, const uint64_t *pcs, uint32_t nframes,
		     uint64_t size, const struct go_mem_record *r, int64_t now)
{
	int64_t site = intern_site(a, pcs, nframes, size, 0);
	struct heap_counts all;
	struct heap_site *s;
	double w;

	if (site == -ENOSPC) {
		a->capped_samples += heapagg_held(r).allocs;
		return 0;
	}
	if (site < 0 || u64map_put(&a->buckets, bucket, (uint64_t)site))
		return -ENOMEM;
	s = &a->sites[site];
	w = sample_weight(a, s, a->rate);
	a->baseline_records++;
	add_tally(&s->settled, &(struct heap_tally){.n = r->active,
						    .est_allocs = w * (double)r->active.allocs,
						    .est_frees = w * (double)r->active.frees});
	all = heapagg_held(r);
	add_counts(&a->baseline_held, &all);
	s->pre_objects += all.allocs > all.frees ? all.allocs - all.frees : 0;
	add_run(s, w, all.allocs);
	/*
	 * future[j] holds the allocations of the cycle c with (c+2)%3 == j and the frees of the
	 * cycle with (c+1)%3 == j; at cycle now those are now-2..now and now-1..now+1.
	 */
	for (int64_t c = now - 2; c <= now; c++) {
		const struct heap_counts *f = &r->future[mod3(c + 2)];
		struct heap_tally ac = {.n = {.allocs = f->allocs, .alloc_bytes = f->alloc_bytes},
					.est_allocs = w * (double)f->allocs};

		account(s, s->allocs, c, &ac);
	}
	for (int64_t c = now - 1; c <= now + 1; c++) {
		const struct heap_counts *f = &r->future[mod3(c + 1)];
		struct heap_tally fc = {.n = {.frees = f->frees, .free_bytes = f->free_bytes},
					.est_frees = w * (double)f->frees};

		account(s, s->frees, c, &fc);
	}
	if (now > a->last_cycle)
		a->last_cycle = now;
	return 0;
}

int heapagg_record(struct heapagg *a, uint64_t bucket, const uint64_t *pcs, uint32_t nframes,
		   uint64_t size, const struct go_mem_record *r)
{
	const uint64_t *known = u64map_get(&a->buckets, bucket);
	int64_t site = known ? (int64_t)*known : intern_site(a, pcs, nframes, size, 0);
	const struct heap_counts *c = &r->active;
	struct heap_site *s;
	double w;

	if (site == -ENOSPC)
		return 0;
	if (site < 0 || (!known && u64map_put(&a->buckets, bucket, (uint64_t)site)))
		return -ENOMEM;
	s = &a->sites[site];
	w = sample_weight(a, s, a->rate);
	s->settled = (struct heap_tally){
	    .n = *c, .est_allocs = w * (double)c->allocs, .est_frees = w * (double)c->frees};
	for (int i = 0; i < 4; i++) {
		memset(&s->allocs[i], 0, sizeof(s->allocs[i]));
		memset(&s->frees[i], 0, sizeof(s->frees[i]));
		s->allocs[i].cycle = s->frees[i].cycle = EMPTY_CYCLE;
	}
	s->pre_objects = 0;
	return 0;
}

struct heap_counts heapagg_records_total(const struct heapagg *a, uint64_t *inconsistent)
{
	struct heap_counts all = {0};

	*inconsistent = 0;
	for (size_t i = 0; i < a->nsites; i++) {
		const struct heap_counts *c = &a->sites[i].settled.n;
		uint64_t size = a->sites[i].size;

		*inconsistent += c->alloc_bytes != c->allocs * size ||
				 c->free_bytes != c->frees * size || c->frees > c->allocs;
		add_counts(&all, c);
	}
	return all;
}

/*
 * What runtime.MemProfile would read of site s at cycle now, at time ts: active after the flush
 * of now, and after runtime.GC()'s early one if that came before ts.
 */
static void published(const struct heapagg *a, const struct heap_site *s, int64_t now, uint64_t ts,
		      struct heap_tally *sum)
{
	bool all = now == HEAPAGG_UNKNOWN_CYCLE;
	bool early = !all && a->swept[now & 3].cycle == now && a->swept[now & 3].ts < ts;
	/* The newest cycle whose allocations are published; frees are a cycle ahead. */
	int64_t allocs_to = all ? 0 : early ? now - 1 : now - 2;

	if (a->runtime_frees && now == a->rt_cycle && !all) {
		*sum = s->rt_published;
		return;
	}
	*sum = s->settled;
	for (int i = 0; i < 4; i++) {
		const struct heap_cycle_counts *al = &s->allocs[i], *fr = &s->frees[i];

		if (al->cycle != EMPTY_CYCLE && (all || al->cycle <= allocs_to))
			add_tally(sum, &al->t);
		if (fr->cycle != EMPTY_CYCLE && (all || fr->cycle <= allocs_to + 1))
			add_tally(sum, &fr->t);
	}
	if (a->runtime_frees) {
		sum->n.frees = s->rt_frees;
		sum->n.free_bytes = s->rt_frees * s->size;
		sum->est_frees = oldest_weight(s, s->rt_frees);
	}
}

void heapagg_totals(const struct heapagg *a, const struct heap_site *s, int64_t now,
		    struct heap_totals *t)
{
	heapagg_totals_before(a, s, now, UINT64_MAX, t);
}

void heapagg_totals_before(const struct heapagg *a, const struct heap_site *s, int64_t now,
			   uint64_t ts, struct heap_totals *t)
{
	struct heap_tally sum;

	published(a, s, now, ts, &sum);
	t->allocs = sum.n.allocs;
	t->alloc_bytes = sum.n.alloc_bytes;
	t->inuse_objects = sum.n.allocs > sum.n.frees ? sum.n.allocs - sum.n.frees : 0;
	t->inuse_bytes =
	    sum.n.alloc_bytes > sum.n.free_bytes ? sum.n.alloc_bytes - sum.n.free_bytes : 0;
	t->est_allocs = sum.est_allocs;
	t->est_inuse =
	    t->inuse_objects && sum.est_allocs > sum.est_frees ? sum.est_allocs - sum.est_frees : 0;
}

uint64_t heapagg_runtime_frees(struct heapagg *a, const uint32_t *sites, size_t n, uint64_t frees,
			       int64_t cycle, uint64_t ts)
{
	/* Not the stored counts of an earlier call at this cycle: the events since count. */
	a->rt_cycle = HEAPAGG_UNKNOWN_CYCLE;
	for (size_t i = 0; i < n; i++) {
		struct heap_site *s = &a->sites[sites[i]];
		struct heap_tally *p = &s->rt_published;
		uint64_t take;

		published(a, s, cycle, ts, p);
		take = frees < p->n.allocs ? frees : p->n.allocs;
		a->frees = a->frees - s->rt_frees + take;
		s->rt_frees = p->n.frees = take;
		p->n.free_bytes = take * s->size;
		p->est_frees = oldest_weight(s, take);
		frees -= take;
	}
	a->rt_cycle = cycle;
	return frees;
}

int64_t heapagg_profile_cycle(const struct heapagg *a, int64_t now)
{
	struct heap_tally sum;

	if (now == HEAPAGG_UNKNOWN_CYCLE)
		return now;
	for (size_t i = 0; i < a->nsites; i++) {
		published(a, &a->sites[i], now, UINT64_MAX, &sum);
		if (sum.n.allocs || sum.n.frees)
			return now;
	}
	return HEAPAGG_UNKNOWN_CYCLE;
}

void heapagg_each_live(const struct heapagg *a, void (*fn)(void *ctx, const struct heap_object *o),
		       void *ctx)
{
	for (size_t i = 0; i < a->live.cap; i++)
		if (a->live.used[i])
			fn(ctx, &a->objects[a->live.slots[i].val >> 32]);
}

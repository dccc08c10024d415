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
	a->last_cycle = HEAPAGG_UNKNOWN_CYCLE;
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

static int64_t intern_stack(struct heapagg *a, const uint64_t *pcs, uint32_t n)
{
	struct stack_key k = {a, pcs, n};
	uint64_t idx, key;
	struct heap_stack *s;

	if (u64map_find(&a->stack_index, stack_hash(pcs, n), same_stack, &k, &idx, &key))
		return (int64_t)idx;
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
	uint32_t stack;
	uint64_t size;
};

static bool same_site(const void *ctx, uint64_t idx)
{
	const struct site_key *k = ctx;

	return k->a->sites[idx].stack == k->stack && k->a->sites[idx].size == k->size;
}

static int64_t intern_site(struct heapagg *a, const uint64_t *pcs, uint32_t n, uint64_t size)
{
	int64_t stack = intern_stack(a, pcs, n);
	struct site_key k = {a, (uint32_t)stack, size};
	uint64_t idx, key;
	struct heap_site *s;

	if (stack < 0)
		return stack;
	if (u64map_find(&a->site_index, u64_mix((uint64_t)stack, size), same_site, &k, &idx, &key))
		return (int64_t)idx;
	if (array_reserve((void **)&a->sites, &a->sites_cap, a->nsites, sizeof(*a->sites)) ||
	    u64map_put(&a->site_index, key, a->nsites))
		return -ENOMEM;
	s = &a->sites[a->nsites];
	memset(s, 0, sizeof(*s));
	s->stack = (uint32_t)stack;
	s->size = size;
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

/*
 * Accounts c to cycle in ring (allocs or frees). A slot still holding an older cycle is at least
 * four cycles old, past any publication delay, so it folds into the settled counts.
 */
static void account(struct heap_site *s, struct heap_cycle_counts *ring, int64_t cycle,
		    const struct heap_counts *c)
{
	struct heap_cycle_counts *slot;

	if (cycle == HEAPAGG_UNKNOWN_CYCLE) {
		add_counts(&s->settled, c);
		return;
	}
	slot = &ring[cycle & 3];
	if (slot->cycle != cycle) {
		add_counts(&s->settled, &slot->c);
		memset(&slot->c, 0, sizeof(slot->c));
		slot->cycle = cycle;
	}
	add_counts(&slot->c, c);
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
	struct heap_counts c = {.allocs = 1, .alloc_bytes = e->size};
	int64_t cycle = event_cycle(a, e->hdr.cycle);
	uint32_t n = e->nframes < HS_MAX_FRAMES ? e->nframes : HS_MAX_FRAMES;
	int64_t site = intern_site(a, (const uint64_t *)e->pcs, n, e->size), obj;
	uint64_t *prev;

	if (site < 0)
		return (int)site;
	prev = u64map_get(&a->live, e->addr);
	if (repeated(a, &e->hdr, e->addr, prev != NULL))
		return 0;
	a->samples++;
	account(&a->sites[site], a->sites[site].allocs, cycle, &c);

	/* An address still live here was freed while an event was lost: the new object wins. */
	if (prev) {
		obj = (int64_t)(*prev >> 32);
		*prev = live_val((uint64_t)obj, site);
	} else {
		obj = new_object(a);
		if (obj < 0 || u64map_put(&a->live, e->addr, live_val((uint64_t)obj, site)))
			return -ENOMEM;
	}
	a->objects[obj] = (struct heap_object){.site = (uint32_t)site, .cycle = cycle, .ts = e->hdr.ts};
	return 0;
}

int heapagg_free_event(struct heapagg *a, const struct hs_free_event *e)
{
	struct heap_counts c = {.frees = 1, .free_bytes = e->size};
	int64_t cycle = event_cycle(a, e->hdr.cycle);
	uint64_t *obj = u64map_get(&a->live, e->addr), *site;

	if (repeated(a, &e->hdr, e->addr, obj != NULL))
		return 0;
	a->frees++;
	if (obj) {
		uint64_t i = *obj >> 32;
		struct heap_site *s = &a->sites[(uint32_t)*obj];

		account(s, s->frees, cycle, &c);
		u64map_del(&a->live, e->addr);
		drop_object(a, i);
		return 0;
	}
	site = e->bucket ? u64map_get(&a->buckets, e->bucket) : NULL;
	if (!site) {
		a->unmatched_frees++;
		return 0;
	}
	account(&a->sites[*site], a->sites[*site].frees, cycle, &c);
	if (a->sites[*site].pre_objects)
		a->sites[*site].pre_objects--;
	return 0;
}

int heapagg_event(struct heapagg *a, const void *data, size_t len)
{
	const struct hs_event_header *h = data;

	if (len >= sizeof(struct hs_alloc_event) && h->type == HS_EV_ALLOC)
		return heapagg_alloc(a, data);
	if (len >= sizeof(struct hs_free_event) && h->type == HS_EV_FREE)
		return heapagg_free_event(a, data);
	return 0;
}

static int64_t mod3(int64_t v)
{
	return ((v % 3) + 3) % 3;
}

int heapagg_baseline(struct heapagg *a, uint64_t bucket, const uint64_t *pcs, uint32_t nframes,
		     uint64_t size, const struct go_mem_record *r, int64_t now)
{
	int64_t site = intern_site(a, pcs, nframes, size);
	struct heap_counts all;
	struct heap_site *s;

	if (site < 0 || u64map_put(&a->buckets, bucket, (uint64_t)site))
		return -ENOMEM;
	s = &a->sites[site];
	a->baseline_records++;
	add_counts(&s->settled, &r->active);
	all = r->active;
	for (int j = 0; j < 3; j++)
		add_counts(&all, &r->future[j]);
	s->pre_objects += all.allocs > all.frees ? all.allocs - all.frees : 0;
	/*
	 * future[j] holds the allocations of the cycle c with (c+2)%3 == j and the frees of the cycle
	 * with (c+1)%3 == j; at cycle now those are now-2..now and now-1..now+1.
	 */
	for (int64_t c = now - 2; c <= now; c++) {
		const struct heap_counts *f = &r->future[mod3(c + 2)];
		struct heap_counts ac = {.allocs = f->allocs, .alloc_bytes = f->alloc_bytes};

		account(s, s->allocs, c, &ac);
	}
	for (int64_t c = now - 1; c <= now + 1; c++) {
		const struct heap_counts *f = &r->future[mod3(c + 1)];
		struct heap_counts fc = {.frees = f->frees, .free_bytes = f->free_bytes};

		account(s, s->frees, c, &fc);
	}
	if (now > a->last_cycle)
		a->last_cycle = now;
	return 0;
}

void heapagg_totals(const struct heapagg *a, const struct heap_site *s, int64_t now,
		    struct heap_totals *t)
{
	struct heap_counts sum = s->settled;

	(void)a;
	for (int i = 0; i < 4; i++) {
		const struct heap_cycle_counts *al = &s->allocs[i], *fr = &s->frees[i];

		if (al->cycle != EMPTY_CYCLE && (now == HEAPAGG_UNKNOWN_CYCLE || al->cycle <= now - 2))
			add_counts(&sum, &al->c);
		if (fr->cycle != EMPTY_CYCLE && (now == HEAPAGG_UNKNOWN_CYCLE || fr->cycle <= now - 1))
			add_counts(&sum, &fr->c);
	}
	t->allocs = sum.allocs;
	t->alloc_bytes = sum.alloc_bytes;
	t->inuse_objects = sum.allocs > sum.frees ? sum.allocs - sum.frees : 0;
	t->inuse_bytes = sum.alloc_bytes > sum.free_bytes ? sum.alloc_bytes - sum.free_bytes : 0;
}

void heapagg_each_live(const struct heapagg *a, void (*fn)(void *ctx, const struct heap_object *o),
		       void *ctx)
{
	for (size_t i = 0; i < a->live.cap; i++)
		if (a->live.used[i])
			fn(ctx, &a->objects[a->live.slots[i].val >> 32]);
}

void heap_unsample(uint64_t count, uint64_t bytes, int64_t rate, int64_t *out_count,
		   int64_t *out_bytes)
{
	double avg, scale;

	if (count == 0 || bytes == 0) {
		*out_count = *out_bytes = 0;
		return;
	}
	if (rate <= 1) {
		*out_count = (int64_t)count;
		*out_bytes = (int64_t)bytes;
		return;
	}
	avg = (double)bytes / (double)count;
	scale = 1 / (1 - exp(-avg / (double)rate));
	*out_count = (int64_t)((double)count * scale);
	*out_bytes = (int64_t)((double)bytes * scale);
}

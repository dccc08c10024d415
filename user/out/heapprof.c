#include "heapprof.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "gostack.h"

#define MAX_INLINE 16

/* The source frames of the call that return address pc returns from, MAX_INLINE at most. */
static int lookup(const struct target *t, uint64_t pc, struct hs_frame *frames)
{
	return gostack_frames(t, pc, frames, MAX_INLINE);
}

/*
 * lookup, once per address: trimming, the summary's leaf and the locations all need the frames
 * of the same addresses. Without memory to keep them, an address is looked up again next time.
 */
static int symbols(struct heapprof *h, uint64_t pc, struct hs_frame *frames)
{
	const uint64_t *known = u64map_get(&h->syms, pc);
	size_t at = h->nframes;
	int n, rc = 0;

	if (known) {
		n = (int)(uint32_t)*known;
		for (int i = 0; i < n; i++)
			frames[i] = h->frames[(*known >> 32) + (size_t)i];
		return n;
	}
	n = lookup(h->t, pc, frames);
	for (int i = 0; i < n && !rc; i++) {
		rc = array_reserve((void **)&h->frames, &h->frames_cap, h->nframes,
				   sizeof(*h->frames));
		if (!rc)
			h->frames[h->nframes++] = frames[i];
	}
	if (rc || u64map_put(&h->syms, pc, (uint64_t)at << 32 | (uint32_t)n))
		h->nframes = at;
	return n;
}

/* Only frames a sample keeps become locations: runtime/pprof writes none for trimmed ones. */
static uint64_t location(struct heapprof *h, uint64_t pc)
{
	struct hs_frame frames[MAX_INLINE];
	int n = symbols(h, pc, frames);

	/* runtime/pprof gives a location the address of the call, as runtime.Frame.PC does. */
	return pprof_location(h->p, h->mapping, pc - 1, frames, n);
}

static void leaf(struct heapprof *h, const uint64_t *pcs, uint32_t npcs, struct heap_row *row)
{
	struct hs_frame f[MAX_INLINE];
	int n = npcs ? symbols(h, pcs[0], f) : 0;

	row->function = n > 0 ? f[0].function : "?";
	row->file = n > 0 ? f[0].file : "";
	row->line = n > 0 ? f[0].line : 0;
}

/* Rows without the grouping label come last. */
static int by_group(const char *a, const char *b)
{
	if (!a || !b)
		return (a == NULL) - (b == NULL);
	return strcmp(a, b);
}

static int by_function(const void *a, const void *b)
{
	const struct heap_row *x = a, *y = b;
	int c = by_group(x->group, y->group);

	return c ? c : strcmp(x->function, y->function);
}

static int by_inuse_desc(const void *a, const void *b)
{
	const struct heap_row *x = a, *y = b;

	if (x->inuse_bytes != y->inuse_bytes)
		return x->inuse_bytes < y->inuse_bytes ? 1 : -1;
	return x->alloc_bytes < y->alloc_bytes ? 1 : (x->alloc_bytes > y->alloc_bytes ? -1 : 0);
}

/*
 * Merges rows of the same function, and of the same value of the grouping label where there is
 * one (the summary reads like `go tool pprof -top`, or `-tagroot` of that label).
 */
static void merge_rows(struct heapprof *h)
{
	size_t out = 0;

	qsort(h->rows, h->nrows, sizeof(*h->rows), by_function);
	for (size_t i = 0; i < h->nrows; i++) {
		struct heap_row *r = &h->rows[i];

		if (out && by_function(&h->rows[out - 1], r) == 0) {
			struct heap_row *m = &h->rows[out - 1];

			m->inuse_bytes += r->inuse_bytes;
			m->inuse_objects += r->inuse_objects;
			m->alloc_bytes += r->alloc_bytes;
			m->alloc_objects += r->alloc_objects;
		} else {
			h->rows[out++] = *r;
		}
	}
	h->nrows = out;
	qsort(h->rows, h->nrows, sizeof(*h->rows), by_inuse_desc);
}

struct old_ctx {
	const struct heapagg *agg;
	const struct heapprof_meta *m;
	struct heap_totals *t;
};

static void add_old(void *ctx, const struct heap_object *o)
{
	struct old_ctx *c = ctx;
	struct heap_totals *t = &c->t[o->site];

	if (o->cycle == HEAPAGG_UNKNOWN_CYCLE || c->m->cycle - o->cycle < c->m->min_age)
		return;
	t->allocs = ++t->inuse_objects;
	t->alloc_bytes = t->inuse_bytes += c->agg->sites[o->site].size;
	t->est_allocs = t->est_inuse += o->weight;
}

/* Per site, the objects at least m->min_age cycles old: the live ones heapspy saw allocated. */
static struct heap_totals *old_totals(const struct heapagg *agg, const struct heapprof_meta *m)
{
	struct old_ctx c = {agg, m, calloc(agg->nsites ? agg->nsites : 1, sizeof(*c.t))};

	if (!c.t)
		return NULL;
	heapagg_each_live(agg, add_old, &c);
	if (m->cycle - m->attach_cycle >= m->min_age) {
		for (size_t i = 0; i < agg->nsites; i++) {
			const struct heap_site *s = &agg->sites[i];

			c.t[i].allocs = c.t[i].inuse_objects += s->pre_objects;
			c.t[i].alloc_bytes = c.t[i].inuse_bytes += s->pre_objects * s->size;
			c.t[i].est_allocs = c.t[i].est_inuse +=
			    (double)s->pre_objects * heap_scale((double)s->size, agg->rate);
		}
	}
	return c.t;
}

/*
 * One sample per site as the profile shows it: the runtime keeps one bucket per (stack, size),
 * while heapspy may hold the same one twice, from the runtime's records and from its probes, whose
 * stacks differ only in the frames the profile hides.
 */
struct shown_site {
	uint32_t site; /* the first of heapagg's sites that show as this one */
	uint64_t *pcs; /* the frames shown (gostack_shown), owned */
	uint32_t n;
	struct heap_totals tot;
};

struct shown_key {
	const struct heapagg *agg;
	const struct shown_site *shown;
	const uint64_t *pcs;
	uint32_t n;
	uint64_t size;
	uint32_t labels;
};

static bool same_shown(const void *ctx, uint64_t idx)
{
	const struct shown_key *k = ctx;
	const struct shown_site *o = &k->shown[idx];
	const struct heap_site *s = &k->agg->sites[o->site];

	return s->size == k->size && s->labels == k->labels && o->n == k->n &&
	       memcmp(o->pcs, k->pcs, k->n * sizeof(*k->pcs)) == 0;
}

/* shown holds one entry per heapagg site, zeroed where group_sites made none. */
static void free_shown(struct shown_site *shown, const struct heapagg *agg)
{
	for (size_t i = 0; shown && i < agg->nsites; i++)
		free(shown[i].pcs);
	free(shown);
}

static void add_totals(struct heap_totals *to, const struct heap_totals *t)
{
	to->allocs += t->allocs;
	to->alloc_bytes += t->alloc_bytes;
	to->inuse_objects += t->inuse_objects;
	to->inuse_bytes += t->inuse_bytes;
	to->est_allocs += t->est_allocs;
	to->est_inuse += t->est_inuse;
}

/*
 * Groups heapagg's sites with something to show by what they show. Returns the count, or -1;
 * either way free_shown releases what it made.
 */
static long group_sites(const struct target *t, const struct heapagg *agg,
			const struct heapprof_meta *m, const struct heap_totals *old,
			struct shown_site *shown)
{
	struct u64map index = {0};
	size_t n = 0;

	for (size_t i = 0; i < agg->nsites; i++) {
		const struct heap_site *s = &agg->sites[i];
		const struct heap_stack *st = &agg->stacks[s->stack];
		struct shown_site cur = {.site = (uint32_t)i};
		uint64_t h, idx, key;

		if (old)
			cur.tot = old[i];
		else
			heapagg_totals(agg, s, m->cycle, &cur.tot);
		if (m->base && i < m->base->nsites) {
			const struct heap_totals *b = &m->base->sites[i];

			cur.tot.allocs -= b->allocs < cur.tot.allocs ? b->allocs : cur.tot.allocs;
			cur.tot.alloc_bytes -= b->alloc_bytes < cur.tot.alloc_bytes
						   ? b->alloc_bytes
						   : cur.tot.alloc_bytes;
			cur.tot.est_allocs -= b->est_allocs;
			if (cur.tot.est_allocs < 0)
				cur.tot.est_allocs = 0;
		}
		if (!cur.tot.allocs && !cur.tot.inuse_objects)
			continue;
		cur.pcs = malloc((st->nframes ? st->nframes : 1) * sizeof(*cur.pcs));
		if (!cur.pcs) {
			u64map_free(&index);
			return -1;
		}
		cur.n = gostack_shown(t, st->pcs, st->nframes, cur.pcs);
		struct shown_key k = {agg, shown, cur.pcs, cur.n, s->size, s->labels};
		h = u64_mix(u64_mix(k.n, s->size), s->labels);
		for (uint32_t j = 0; j < k.n; j++)
			h = u64_mix(h, k.pcs[j]);
		if (u64map_find(&index, h, same_shown, &k, &idx, &key)) {
			add_totals(&shown[idx].tot, &cur.tot);
			free(cur.pcs);
			continue;
		}
		if (u64map_put(&index, key, n)) {
			free(cur.pcs);
			u64map_free(&index);
			return -1;
		}
		shown[n++] = cur;
	}
	u64map_free(&index);
	return (long)n;
}

int heapprof_build(struct heapprof *h, const struct target *t, const struct heapagg *agg,
		   const struct heapprof_meta *m)
{
	struct pprof_label *labels;
	size_t most_labels = 0;
	uint32_t deepest = 1;
	struct heap_totals *old;
	struct shown_site *shown;
	uint64_t *locs;
	long nshown;

	/* The runtime's own records (read when attaching late) keep deeper stacks than the probes.
	 */
	for (size_t i = 0; i < agg->nstacks; i++)
		if (agg->stacks[i].nframes > deepest)
			deepest = agg->stacks[i].nframes;
	locs = malloc(deepest * sizeof(*locs));
	for (size_t i = 0; agg->labels && i < agg->labels->nsets; i++)
		if (agg->labels->sets[i].n > most_labels)
			most_labels = agg->labels->sets[i].n;
	labels = malloc((1 + most_labels) * sizeof(*labels));
	old = m->min_age > 0 ? old_totals(agg, m) : NULL;
	shown = calloc(agg->nsites ? agg->nsites : 1, sizeof(*shown));

	memset(h, 0, sizeof(*h));
	h->t = t;
	h->agg = agg;
	h->p = pprof_new();
	h->rows = calloc(agg->nsites ? agg->nsites : 1, sizeof(*h->rows));
	nshown = shown && (m->min_age <= 0 || old) ? group_sites(t, agg, m, old, shown) : -1;
	free(old);
	if (!h->p || !h->rows || !locs || !labels || nshown < 0) {
		free(locs);
		free(labels);
		free_shown(shown, agg);
		return -ENOMEM;
	}
	pprof_sample_type(h->p, "alloc_objects", "count");
	pprof_sample_type(h->p, "alloc_space", "bytes");
	pprof_sample_type(h->p, "inuse_objects", "count");
	pprof_sample_type(h->p, "inuse_space", "bytes");
	pprof_period(h->p, "space", "bytes", m->rate);
	pprof_default_sample_type(h->p, "inuse_space");
	pprof_time(h->p, m->time_ns, m->duration_ns);
	h->mapping =
	    pprof_mapping(h->p, t->map_start, t->map_limit, t->map_offset, t->display, t->build_id);

	for (long i = 0; i < nshown; i++) {
		const struct shown_site *ss = &shown[i];
		const struct heap_site *s = &agg->sites[ss->site];
		const struct heap_totals tot = ss->tot;
		const struct label_set *set =
		    agg->labels ? golabels_set(agg->labels, s->labels) : NULL;
		size_t nlabels = 1;
		int64_t v[4];
		uint32_t n = 0;
		struct heap_row *row;

		/* Each sample counts at its own rate: runtime/pprof's int64(count * scale). */
		v[0] = (int64_t)tot.est_allocs;
		v[1] = (int64_t)(tot.est_allocs * (double)s->size);
		v[2] = (int64_t)tot.est_inuse;
		v[3] = (int64_t)(tot.est_inuse * (double)s->size);
		for (uint32_t k = 0; k < ss->n; k++)
			locs[n++] = location(h, ss->pcs[k]);
		/* runtime/pprof's "bytes" label, then the goroutine's labels as it allocated. */
		labels[0] = (struct pprof_label){
		    .key = "bytes", .num = (int64_t)s->size, .num_unit = "bytes"};
		for (size_t k = 0; set && k < set->n; k++)
			labels[nlabels++] = (struct pprof_label){.key = set->pairs[k].key,
								 .str = set->pairs[k].value};
		pprof_sample(h->p, locs, n, v, labels, nlabels);

		row = &h->rows[h->nrows++];
		leaf(h, ss->pcs, ss->n, row);
		row->group = m->by_label && agg->labels
				 ? golabels_value(agg->labels, s->labels, m->by_label)
				 : NULL;
		row->alloc_objects = v[0];
		row->alloc_bytes = v[1];
		row->inuse_objects = v[2];
		row->inuse_bytes = v[3];
		h->total.alloc_objects += v[0];
		h->total.alloc_bytes += v[1];
		h->total.inuse_objects += v[2];
		h->total.inuse_bytes += v[3];
	}
	free(locs);
	free(labels);
	free_shown(shown, agg);
	merge_rows(h);
	return 0;
}

void heapprof_free(struct heapprof *h)
{
	pprof_free(h->p);
	u64map_free(&h->syms);
	free(h->frames);
	free(h->rows);
	memset(h, 0, sizeof(*h));
}

int heapprof_base_take(struct heapprof_base *b, const struct heapagg *agg, int64_t now,
		       int64_t time_ns)
{
	b->nsites = agg->nsites;
	b->time_ns = time_ns;
	b->sites = calloc(agg->nsites ? agg->nsites : 1, sizeof(*b->sites));
	if (!b->sites)
		return -ENOMEM;
	for (size_t i = 0; i < agg->nsites; i++)
		heapagg_totals(agg, &agg->sites[i], now, &b->sites[i]);
	return 0;
}

void heapprof_base_free(struct heapprof_base *b)
{
	free(b->sites);
	memset(b, 0, sizeof(*b));
}

#include "leaks.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Least-squares slope of y over x, and the standard deviation of the points around the line. */
static void fit(const double *x, const double *y, size_t n, double *slope, double *resid_sd)
{
	double mx = 0, my = 0, sxx = 0, sxy = 0, ss = 0;

	for (size_t i = 0; i < n; i++) {
		mx += x[i] / (double)n;
		my += y[i] / (double)n;
	}
	for (size_t i = 0; i < n; i++) {
		sxx += (x[i] - mx) * (x[i] - mx);
		sxy += (x[i] - mx) * (y[i] - my);
	}
	*slope = sxx > 0 ? sxy / sxx : 0;
	for (size_t i = 0; i < n; i++) {
		double r = y[i] - my - *slope * (x[i] - mx);

		ss += r * r;
	}
	*resid_sd = n > 2 ? sqrt(ss / (double)(n - 2)) : 0;
}

/*
 * The sampling error of the growth from point i to the last: the objects live at i but not at
 * the end, and those live at the end but not at i. var is additive over objects, so the first
 * are var[i] - (var[last] - new_var[i]).
 */
static double z_score(const struct leak_timeline *t, size_t i, double growth)
{
	double nv = t->new_var[i], v = t->var[i] - t->var[t->n - 1] + 2 * nv;

	if (growth <= 0)
		return 0;
	if (v < nv)
		v = nv;
	return v > 0 ? growth / sqrt(v) : INFINITY;
}

static double kept(const struct leak_timeline *t, double growth)
{
	size_t last = t->n - 1, half = 1;
	double grown, stayed, copy = 0;

	while (half < last && t->bytes[half] < t->bytes[0] + growth / 2)
		half++;
	grown = t->bytes[half] - t->bytes[0];
	if (grown <= 0)
		return 0;
	stayed = t->new_bytes[0] - t->new_bytes[half];
	/*
	 * A container grown by copying: its newest copy holds what the older ones held. Early small
	 * copies may go unsampled, so the copies need only grow from the half-growth point on.
	 */
	if (t->maxobj[last] >= LEAKS_COPY_GROWTH * t->maxobj[0]) {
		copy = t->maxobj[last];
		for (size_t i = half + 1; i < t->n; i++)
			if (t->maxobj[i] < t->maxobj[i - 1])
				copy = 0;
	}
	return fmin(1.0, (stayed + copy) / grown);
}

void leaks_judge(const struct leak_timeline *t, struct leak_verdict *v)
{
	size_t n = t->n, last = n - 1, mid = 0;
	double cycles[LEAKS_MAX_POINTS + 1], span, rate_all, resid, need_steps;
	bool shape, enough, still;

	memset(v, 0, sizeof(*v));
	if (n < 2 || n > LEAKS_MAX_POINTS + 1)
		return;
	span = t->secs[last] - t->secs[0];
	if (span <= 0)
		return;
	for (size_t i = 0; i < n; i++) {
		cycles[i] = (double)t->cycle[i];
		if (i && t->bytes[i] > t->bytes[i - 1])
			v->steps++;
	}
	v->growth = t->bytes[last] - t->bytes[0];
	fit(cycles, t->bytes, n, &v->per_cycle, &resid);
	fit(t->secs, t->bytes, n, &v->per_sec, &resid);
	if (v->per_sec > 0)
		v->trend = resid > 0 ? v->per_sec * span / resid : INFINITY;
	v->z = z_score(t, 0, v->growth);
	if (v->growth <= 0)
		return;
	v->kept = kept(t, v->growth);

	while (mid < n - 2 && t->secs[mid] < t->secs[0] + span / 2)
		mid++;
	rate_all = v->growth / span;
	if (t->secs[last] > t->secs[mid])
		v->recent =
		    (t->bytes[last] - t->bytes[mid]) / (t->secs[last] - t->secs[mid]) / rate_all;
	v->recent_z = z_score(t, mid, t->bytes[last] - t->bytes[mid]);

	v->confidence = (1 - exp(-v->z * v->z / 18)) * fmin(1.0, v->kept) *
			fmin(1.0, fmax(0.0, v->recent)) * (1 - exp(-(double)n / 4));

	need_steps = last < LEAKS_MIN_STEPS ? (double)last : LEAKS_MIN_STEPS;
	shape = v->trend >= LEAKS_TREND_MIN && v->steps >= need_steps && v->kept >= LEAKS_KEPT_MIN;
	enough = n >= LEAKS_MIN_POINTS && v->z >= LEAKS_Z_MIN;
	still = v->recent >= LEAKS_RECENT_MIN && v->recent_z >= LEAKS_RECENT_Z_MIN;
	if (!shape)
		v->kind = LEAK_NONE;
	else if (enough)
		v->kind = still ? LEAK_GROWING : LEAK_STOPPED;
	else if (v->z >= LEAKS_THIN_Z_MIN && v->recent >= LEAKS_RECENT_MIN)
		v->kind = LEAK_THIN;
}

void leaks_init(struct leaks *l, leaks_shown_fn shown, void *shown_ctx)
{
	memset(l, 0, sizeof(*l));
	l->shown = shown;
	l->shown_ctx = shown_ctx;
	l->stride = 1;
	l->start_cycle = l->seen = HEAPAGG_UNKNOWN_CYCLE;
}

void leaks_free(struct leaks *l)
{
	for (size_t i = 0; i < l->nseries; i++) {
		free(l->series[i].bytes);
		free(l->series[i].var);
		free(l->series[i].maxobj);
		free(l->series[i].shown);
	}
	free(l->series);
	free(l->site);
	u64map_free(&l->site_index);
	memset(l, 0, sizeof(*l));
}

size_t leaks_points(const struct leaks *l)
{
	return l->npoints + l->tail;
}

/*
 * Unsampled bytes per sampled object of a size, scale objects each (heap_scale at the rate it was
 * sampled at), and their sampling variance.
 */
static void weight(uint64_t size, double scale, double *w, double *var)
{
	*w = scale * (double)size;
	*var = *w * (*w - (double)size);
	if (*var < 0)
		*var = 0;
}

struct shown {
	const struct leaks *l;
	const uint64_t *pcs;
	uint32_t n;
	uint32_t labels;
};

static bool same_shown(const void *ctx, uint64_t site)
{
	const struct shown *k = ctx;
	const struct leaks_series *s = &k->l->series[site];

	return s->nshown == k->n && s->labels == k->labels &&
	       memcmp(s->shown, k->pcs, k->n * sizeof(*k->pcs)) == 0;
}

/*
 * Gives every site heapagg made since the last call its leak site: the frames it shows, and the
 * pprof labels its goroutines had (a site is then judged per label set: per tenant, say).
 */
static int assign_sites(struct leaks *l, const struct heapagg *a)
{
	uint32_t *site = realloc(l->site, (a->nsites ? a->nsites : 1) * sizeof(*site));

	if (!site)
		return -ENOMEM;
	l->site = site;
	for (; l->nassigned < a->nsites; l->nassigned++) {
		const struct heap_site *hs = &a->sites[l->nassigned];
		const struct heap_stack *st = &a->stacks[hs->stack];
		uint64_t *pcs = malloc((st->nframes ? st->nframes : 1) * sizeof(*pcs));
		struct shown k = {l, pcs, 0, hs->labels};
		struct leaks_series *n;
		uint64_t h, found, key;

		if (!pcs)
			return -ENOMEM;
		if (l->shown) {
			k.n = l->shown(l->shown_ctx, st, pcs);
		} else {
			memcpy(pcs, st->pcs, st->nframes * sizeof(*pcs));
			k.n = st->nframes;
		}
		h = u64_mix(k.n, k.labels);
		for (uint32_t i = 0; i < k.n; i++)
			h = u64_mix(h, pcs[i]);
		if (u64map_find(&l->site_index, h, same_shown, &k, &found, &key)) {
			site[l->nassigned] = (uint32_t)found;
			free(pcs);
			continue;
		}
		n = realloc(l->series, (l->nseries + 1) * sizeof(*n));
		if (!n || u64map_put(&l->site_index, key, l->nseries)) {
			free(pcs);
			if (n)
				l->series = n;
			return -ENOMEM;
		}
		l->series = n;
		n[l->nseries] = (struct leaks_series){
		    .stack = hs->stack, .labels = hs->labels, .shown = pcs, .nshown = k.n};
		site[l->nassigned] = (uint32_t)l->nseries++;
	}
	return 0;
}

static int start_series(struct leaks_series *s)
{
	size_t len = LEAKS_MAX_POINTS + 1;

	s->bytes = calloc(len, sizeof(double));
	s->var = calloc(len, sizeof(double));
	s->maxobj = calloc(len, sizeof(double));
	return s->bytes && s->var && s->maxobj ? 0 : -ENOMEM;
}

/* Keeps every other point, so that a long recording fits. */
static void halve(struct leaks *l)
{
	for (size_t i = 0; i < LEAKS_MAX_POINTS / 2; i++) {
		l->cycle[i] = l->cycle[2 * i];
		l->secs[i] = l->secs[2 * i];
		for (size_t k = 0; k < l->nseries; k++) {
			struct leaks_series *s = &l->series[k];

			if (!s->bytes)
				continue;
			s->bytes[i] = s->bytes[2 * i];
			s->var[i] = s->var[2 * i];
			s->maxobj[i] = s->maxobj[2 * i];
		}
	}
	l->npoints = LEAKS_MAX_POINTS / 2;
	l->stride *= 2;
}

/* Point for the survivors of heap-profile cycle now-2: what the runtime publishes at now. */
static int add_point(struct leaks *l, const struct heapagg *a, int64_t now, double secs)
{
	size_t p = l->npoints;

	if (assign_sites(l, a))
		return -ENOMEM;
	l->cycle[p] = now - 2;
	l->secs[p] = secs;
	for (size_t k = 0; k < l->nseries; k++) {
		struct leaks_series *s = &l->series[k];

		s->allocs = 0;
		if (s->bytes)
			s->bytes[p] = s->var[p] = s->maxobj[p] = 0;
	}
	for (size_t i = 0; i < a->nsites; i++) {
		const struct heap_site *site = &a->sites[i];
		struct leaks_series *s = &l->series[l->site[i]];
		struct heap_totals t;
		double w, var;

		heapagg_totals(a, site, now, &t);
		s->allocs += t.allocs;
		if (!t.inuse_objects)
			continue;
		if (!s->bytes && start_series(s))
			return -ENOMEM;
		/* Their mean scale: each sample counts at the rate it was taken at. */
		weight(site->size, t.est_inuse / (double)t.inuse_objects, &w, &var);
		s->bytes[p] += w * (double)t.inuse_objects;
		s->var[p] += var * (double)t.inuse_objects;
		s->maxobj[p] = fmax(s->maxobj[p], (double)site->size);
	}
	if (l->nobs == 0)
		for (size_t k = 0; k < l->nseries; k++)
			l->series[k].allocs0 = l->series[k].allocs;
	l->tail = l->nobs++ % l->stride != 0;
	if (!l->tail && ++l->npoints == LEAKS_MAX_POINTS)
		halve(l);
	return 0;
}

int leaks_observe(struct leaks *l, const struct heapagg *a, int64_t cycle, double secs)
{
	if (cycle == HEAPAGG_UNKNOWN_CYCLE)
		return 0;
	if (l->seen == HEAPAGG_UNKNOWN_CYCLE) {
		/* The recording started during this cycle. */
		l->start_cycle = l->seen = cycle;
		l->seen_secs[cycle & 3] = 0;
		return 0;
	}
	if (cycle <= l->seen)
		return 0;
	for (int64_t c = l->seen + 1; c <= cycle; c++)
		l->seen_secs[c & 3] = secs;
	l->seen = cycle;
	/* Cycle now-2's GC ended when cycle now-1 began. */
	return add_point(l, a, cycle, l->seen_secs[(cycle - 1) & 3]);
}

static size_t age_bucket(int64_t age)
{
	size_t b = 0;

	while (age >= 2 && b < LEAKS_AGE_PREATTACH - 1) {
		age >>= 1;
		b++;
	}
	return b;
}

/* What one walk over the live objects gathers per site with a timeline. */
struct walk {
	const struct leaks *l;
	const struct heapagg *a;
	const struct leaks_now *now;
	size_t n;
	int64_t *slot;	     /* by site: index into the arrays below, or -1 */
	double *nb, *nv;     /* per slot, n each: bytes live at the end allocated by point j */
	struct leak_site *s; /* per slot */
	int64_t *oldest;     /* per slot: the oldest allocation cycle */
	uint64_t *oldest_ts;
};

static void walk_object(void *ctx, const struct heap_object *o)
{
	struct walk *w = ctx;
	const struct heap_site *site = &w->a->sites[o->site];
	int64_t k = o->site < w->l->nassigned ? w->slot[w->l->site[o->site]] : -1;
	double weight_, var;
	size_t lo = 0, hi = w->n - 1;

	if (k < 0 || o->cycle == HEAPAGG_UNKNOWN_CYCLE)
		return;
	weight(site->size, o->weight, &weight_, &var);
	w->s[k].age_bytes[age_bucket(w->now->cycle - o->cycle)] += weight_;
	if (o->cycle < w->oldest[k] || (o->cycle == w->oldest[k] && o->ts < w->oldest_ts[k])) {
		w->oldest[k] = o->cycle;
		w->oldest_ts[k] = o->ts;
	}
	/* Only what the last point counts: allocated by its cycle. */
	if (o->cycle > w->l->cycle[w->n - 1])
		return;
	while (lo < hi) {
		size_t m = (lo + hi) / 2;

		if (w->l->cycle[m] >= o->cycle)
			hi = m;
		else
			lo = m + 1;
	}
	w->nb[(size_t)k * w->n + lo] += weight_;
	w->nv[(size_t)k * w->n + lo] += var;
}

static int kind_rank(enum leak_kind k)
{
	return k == LEAK_GROWING ? 0 : k == LEAK_STOPPED ? 1 : 2;
}

static int by_suspicion(const void *x, const void *y)
{
	const struct leak_site *a = x, *b = y;
	double ka, kb;

	if (a->v.kind != b->v.kind)
		return kind_rank(a->v.kind) - kind_rank(b->v.kind);
	ka = a->v.kind == LEAK_GROWING	 ? a->score
	     : a->v.kind == LEAK_STOPPED ? a->v.growth
					 : a->v.z;
	kb = b->v.kind == LEAK_GROWING	 ? b->score
	     : b->v.kind == LEAK_STOPPED ? b->v.growth
					 : b->v.z;
	return ka < kb ? 1 : ka > kb ? -1 : (a->stack > b->stack) - (a->stack < b->stack);
}

/* Objects from before attach that are still live: older than the whole recording. */
static void add_preattach(struct walk *w)
{
	for (size_t i = 0; i < w->a->nsites; i++) {
		const struct heap_site *site = &w->a->sites[i];
		int64_t k = i < w->l->nassigned ? w->slot[w->l->site[i]] : -1;
		double wt, var;

		if (k < 0 || !site->pre_objects)
			continue;
		weight(site->size, heap_scale((double)site->size, w->a->rate), &wt, &var);
		w->s[k].age_bytes[LEAKS_AGE_PREATTACH] += wt * (double)site->pre_objects;
		w->s[k].before_attach = true;
	}
}

static void judge_site(struct walk *w, int64_t k, uint32_t site)
{
	const struct leaks_series *ser = &w->l->series[site];
	struct leak_site *s = &w->s[k];
	double *nb = &w->nb[(size_t)k * w->n], *nv = &w->nv[(size_t)k * w->n];
	struct leak_timeline t = {w->n,	    w->l->cycle, w->l->secs, ser->bytes,
				  ser->var, ser->maxobj, nb,	     nv};

	/* nb[j] holds objects first counted at point j; new_bytes[i] wants those after i. */
	for (size_t j = w->n - 1; j > 0; j--) {
		nb[j - 1] += nb[j];
		nv[j - 1] += nv[j];
	}
	for (size_t j = 0; j + 1 < w->n; j++) {
		nb[j] = nb[j + 1];
		nv[j] = nv[j + 1];
	}
	nb[w->n - 1] = nv[w->n - 1] = 0;

	s->stack = ser->stack;
	s->labels = ser->labels;
	s->series = site;
	leaks_judge(&t, &s->v);
	s->inuse_bytes = ser->bytes[w->n - 1];
	s->samples = ser->allocs - ser->allocs0;
	s->score = s->v.per_sec * s->v.confidence;
	s->oldest_age_cycles = w->oldest[k] == INT64_MAX ? -1 : w->now->cycle - w->oldest[k];
	s->oldest_age_secs =
	    w->oldest[k] == INT64_MAX ? 0 : (double)(w->now->ns - w->oldest_ts[k]) / 1e9;
	if (s->before_attach) {
		s->oldest_age_cycles = w->now->cycle - w->l->start_cycle;
		s->oldest_age_secs = w->now->secs;
	}
}

int leaks_analyze(const struct leaks *l, const struct heapagg *a, const struct leaks_now *now,
		  struct leak_report *r)
{
	struct walk w = {.l = l, .a = a, .now = now, .n = leaks_points(l)};
	size_t nslots = 0, out = 0;
	int rc = -ENOMEM;

	memset(r, 0, sizeof(*r));
	r->npoints = w.n;
	if (w.n) {
		r->cycles = l->cycle[w.n - 1] - l->cycle[0];
		r->secs = l->secs[w.n - 1] - l->secs[0];
	}
	for (size_t k = 0; k < l->nseries; k++)
		r->samples += l->series[k].allocs - l->series[k].allocs0;
	r->thin = w.n < LEAKS_MIN_POINTS || r->samples < LEAKS_MIN_SAMPLES;
	if (w.n < 2)
		return 0;

	w.slot = malloc((l->nseries ? l->nseries : 1) * sizeof(*w.slot));
	if (!w.slot)
		return -ENOMEM;
	for (size_t k = 0; k < l->nseries; k++)
		w.slot[k] = l->series[k].bytes ? (int64_t)nslots++ : -1;
	w.nb = calloc(nslots * w.n + 1, sizeof(double));
	w.nv = calloc(nslots * w.n + 1, sizeof(double));
	w.s = calloc(nslots + 1, sizeof(*w.s));
	w.oldest = malloc((nslots + 1) * sizeof(*w.oldest));
	w.oldest_ts = calloc(nslots + 1, sizeof(*w.oldest_ts));
	if (!w.nb || !w.nv || !w.s || !w.oldest || !w.oldest_ts)
		goto out;
	for (size_t k = 0; k < nslots; k++)
		w.oldest[k] = INT64_MAX;

	heapagg_each_live(a, walk_object, &w);
	add_preattach(&w);
	for (size_t k = 0; k < l->nseries; k++) {
		if (w.slot[k] < 0)
			continue;
		judge_site(&w, w.slot[k], (uint32_t)k);
		if (w.s[w.slot[k]].v.kind != LEAK_NONE)
			w.s[out++] = w.s[w.slot[k]];
	}
	qsort(w.s, out, sizeof(*w.s), by_suspicion);
	for (size_t i = 0; i < out; i++) {
		r->ngrowing += w.s[i].v.kind == LEAK_GROWING;
		r->nstopped += w.s[i].v.kind == LEAK_STOPPED;
		r->nthin += w.s[i].v.kind == LEAK_THIN;
	}
	r->sites = w.s;
	r->nsites = out;
	w.s = NULL;
	rc = 0;
out:
	free(w.slot);
	free(w.nb);
	free(w.nv);
	free(w.s);
	free(w.oldest);
	free(w.oldest_ts);
	return rc;
}

void leaks_report_free(struct leak_report *r)
{
	free(r->sites);
	memset(r, 0, sizeof(*r));
}

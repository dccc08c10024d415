#include "gcstats.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int64_t gcstats_percentile(const int64_t *sorted, size_t n, double p)
{
	size_t rank;

	if (!n)
		return GC_UNKNOWN;
	rank = (size_t)ceil(p / 100.0 * (double)n);
	if (rank < 1)
		rank = 1;
	return sorted[(rank > n ? n : rank) - 1];
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* The first and last known values of a per-cycle field. */
static void ends(const struct gcdecode *d, size_t field, int64_t *first, int64_t *last)
{
	*first = *last = GC_UNKNOWN;
	for (size_t i = 0; i < d->ncycles; i++) {
		int64_t v;

		memcpy(&v, (const char *)&d->cycles[i] + field, sizeof(v));
		if (v == GC_UNKNOWN)
			continue;
		if (*first == GC_UNKNOWN)
			*first = v;
		*last = v;
	}
}

int gcstats_summarize(const struct gcdecode *d, double secs, struct gc_summary *s)
{
	int64_t *p = malloc((2 * d->ncycles + 1) * sizeof(*p));

	if (!p)
		return -ENOMEM;
	memset(s, 0, sizeof(*s));
	s->secs = secs;
	s->cycles = d->ncycles;
	for (size_t i = 0; i < d->ncycles; i++) {
		const struct gc_cycle *c = &d->cycles[i];

		s->forced += c->forced == 1;
		s->probe_ns += c->probe_ns;
		if (c->sweep_term_ns != GC_UNKNOWN)
			p[s->pauses++] = c->sweep_term_ns;
		if (c->mark_term_ns != GC_UNKNOWN)
			p[s->pauses++] = c->mark_term_ns;
	}
	qsort(p, s->pauses, sizeof(*p), cmp_i64);
	for (size_t i = 0; i < s->pauses; i++)
		s->stw_ns += p[i];
	s->pause_p50 = gcstats_percentile(p, s->pauses, 50);
	s->pause_p90 = gcstats_percentile(p, s->pauses, 90);
	s->pause_p99 = gcstats_percentile(p, s->pauses, 99);
	s->pause_max = gcstats_percentile(p, s->pauses, 100);
	free(p);
	s->cycles_per_sec = secs > 0 ? (double)s->cycles / secs : 0;
	s->stw_share = secs > 0 ? (double)s->stw_ns / (secs * 1e9) : 0;
	s->other_stws = d->nstws;
	for (size_t i = 0; i < d->nstws; i++)
		s->other_stw_ns += d->stws[i].duration_ns;
	ends(d, offsetof(struct gc_cycle, heap2), &s->live_first, &s->live_last);
	ends(d, offsetof(struct gc_cycle, heap_goal), &s->goal_first, &s->goal_last);
	s->grown_bytes = d->grown_bytes;
	return 0;
}

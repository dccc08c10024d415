#include "gctune.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define MIB	   1048576.0
#define GIB	   1073741824.0
#define MIN_HEAP   (4 * MIB) /* the pacer's defaultHeapMinimum, scaled by GOGC / 100 */
#define MIN_STEADY 4
/* Beyond these the cycles do not repeat closely enough for the model. */
#define MAX_LIVE_CV  0.25
#define MAX_ALLOC_CV 0.5
/* The pacer's earliest and latest trigger, as shares of the runway (mgcpacer.go, 1.19 to 1.27). */
#define MIN_TRIGGER (45.0 / 64)
#define MAX_TRIGGER (61.0 / 64)
/* A trigger this close to the earliest was held there. */
#define TRIGGER_SLACK 0.03
/* Beyond this, assists held the allocation while marking back: what it would be is unknown. */
#define MAX_MARK_SHARE 0.5
/*
 * The model's own error, per doubling of GOGC away from the one observed (how the trigger and
 * the allocation during marking shift); and that of a limit-driven goal, whose distance below the
 * limit is the runtime's memory beside the heap, which the cycles do not show.
 */
#define MODEL_UNC_PER_DOUBLING 0.05
#define LIMIT_UNC	       0.15
#define LIMIT_GOAL_HEADROOM    0.03
/*
 * GC CPU is counted as gctrace's floor: the dedicated mark workers' quarter of GOMAXPROCS while
 * marking, and every P during the pauses; assists and idle-time marking come on top.
 */
#define MARK_SHARE 0.25
#define CPU_UNC	   0.25
/* A change worth advising saves this much of the CPU. */
#define WORTH_CPU 0.01

static const int64_t gogcs[] = {50, 100, 200, 400, 800};

/* Per-cycle figures, summarized by their medians: a cycle that ran long or a start-up transient
 * does not move them. */
struct series {
	double *v;
	size_t n;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double quantile(struct series *s, double q)
{
	if (!s->n)
		return 0;
	qsort(s->v, s->n, sizeof(*s->v), cmp_double);
	return s->v[(size_t)(q * (double)(s->n - 1) + 0.5)];
}

static double median(struct series *s)
{
	return quantile(s, 0.5);
}

/* The spread: the interquartile range as a standard deviation (/1.35), relative to the median. */
static double spread(struct series *s)
{
	double m = median(s);

	return m > 0 ? (quantile(s, 0.75) - quantile(s, 0.25)) / 1.35 / m : 0;
}

static bool known(const struct gc_cycle *c)
{
	return c->heap1 != GC_UNKNOWN && c->heap2 != GC_UNKNOWN && c->heap_goal != GC_UNKNOWN &&
	       c->mark_ns != GC_UNKNOWN && c->start_ns != GC_UNKNOWN;
}

static int64_t cycle_end(const struct gc_cycle *c)
{
	return c->start_ns + (c->sweep_term_ns > 0 ? c->sweep_term_ns : 0) + c->mark_ns +
	       (c->mark_term_ns > 0 ? c->mark_term_ns : 0);
}

static void why(struct gc_tuning *t, const char *text)
{
	t->predicted = false;
	snprintf(t->why, sizeof(t->why), "%s", text);
}

static double goal_at(const struct gc_tuning *t, double live, double gogc)
{
	double goal = live + (live + t->roots) * gogc / 100;

	return goal > MIN_HEAP * gogc / 100 ? goal : MIN_HEAP * gogc / 100;
}

enum { S_LIVE, S_ALLOC, S_PEAK, S_MARK_ALLOC, S_MARK_SHARE, S_TRIGGER, S_LEAD, S_ROOTS, S_COUNT };

/* The cycles each heap-triggered, after a cycle whose live heap is known; their figures. */
static void fit(const struct gc_cycle *c, size_t n, double gogc, struct gc_tuning *t,
		struct series *s)
{
	double cpu_ns = 0;
	int64_t first_end = 0, last_end = 0;

	for (size_t i = 1; i < n; i++) {
		double prev, runway;

		if (c[i].forced == 1 || !known(&c[i]) || !known(&c[i - 1]))
			continue;
		prev = (double)c[i - 1].heap2;
		runway = (double)c[i].heap_goal - prev;
		if (runway <= 0)
			continue;
		if (!first_end)
			first_end = cycle_end(&c[i - 1]);
		last_end = cycle_end(&c[i]);
		s[S_LIVE].v[s[S_LIVE].n++] = (double)c[i].heap2;
		s[S_ALLOC].v[s[S_ALLOC].n++] = (double)c[i].heap1 - prev;
		s[S_PEAK].v[s[S_PEAK].n++] = (double)c[i].heap1;
		s[S_MARK_ALLOC].v[s[S_MARK_ALLOC].n++] = (double)(c[i].heap1 - c[i].heap0);
		s[S_MARK_SHARE].v[s[S_MARK_SHARE].n++] = (double)(c[i].heap1 - c[i].heap0) / runway;
		s[S_TRIGGER].v[s[S_TRIGGER].n++] = ((double)c[i].heap0 - prev) / runway;
		s[S_LEAD].v[s[S_LEAD].n++] = (double)(c[i].heap_goal - c[i].heap0);
		s[S_ROOTS].v[s[S_ROOTS].n++] = runway * 100 / gogc - prev;
		cpu_ns += MARK_SHARE * (double)c[i].mark_ns +
			  (double)(c[i].sweep_term_ns > 0 ? c[i].sweep_term_ns : 0) +
			  (double)(c[i].mark_term_ns > 0 ? c[i].mark_term_ns : 0);
	}
	t->steady = s[S_LIVE].n;
	t->live_heap = median(&s[S_LIVE]);
	t->peak_heap = median(&s[S_PEAK]);
	t->mark_alloc = median(&s[S_MARK_ALLOC]);
	t->mark_share = median(&s[S_MARK_SHARE]);
	t->trigger = median(&s[S_TRIGGER]);
	t->lead = median(&s[S_LEAD]);
	/* A goal held up by the 4 MiB floor says nothing of the roots: none are assumed. */
	t->roots = median(&s[S_ROOTS]) > 0 ? median(&s[S_ROOTS]) : 0;
	t->cycles_per_gib = median(&s[S_ALLOC]) > 0 ? GIB / median(&s[S_ALLOC]) : 0;
	/* Over the time the steady cycles span, from the end of the one before the first. */
	t->gc_cpu = last_end > first_end ? cpu_ns / (double)(last_end - first_end) : 0;
}

/*
 * What is allocated while marking is marked too: the live heap is what survives plus that. It
 * stays as observed, unless the runway left after the trigger is shorter: assists then hold the
 * allocation to it. The two depend on each other; a few rounds settle them.
 */
static double clamp_trigger(double share)
{
	return share < MIN_TRIGGER ? MIN_TRIGGER : share > MAX_TRIGGER ? MAX_TRIGGER : share;
}

/*
 * Where the pacer starts a cycle in a runway: its lead (goal - trigger, in bytes, from how fast it
 * saw marking go against allocation; the same at any GOGC), within 45/64 to 61/64 of the runway.
 * Where the observed cycles started at 45/64, the lead was larger than they show: the trigger
 * then lies between that bound and what the lead seen gives, and half that range is its
 * uncertainty.
 */
static double trigger_at(const struct gc_tuning *t, double runway, double *spread)
{
	double hi = clamp_trigger(runway > 0 ? 1 - t->lead / runway : MIN_TRIGGER);
	double lo = t->trigger <= MIN_TRIGGER + TRIGGER_SLACK ? MIN_TRIGGER : hi;

	*spread = (hi - lo) / 2 * runway;
	return (lo + hi) / 2;
}

static double live_at(const struct gc_tuning *t, double gogc, double limit_goal, double *runway,
		      double *marking, double *trigger, double *spread)
{
	double survives = t->live_heap > t->mark_alloc ? t->live_heap - t->mark_alloc : 0;
	double live = t->live_heap;

	for (int i = 0; i < 16; i++) {
		*runway = (limit_goal > 0 ? limit_goal : goal_at(t, live, gogc)) - live;
		*trigger = trigger_at(t, *runway, spread);
		*marking = (1 - *trigger) * *runway;
		if (*marking > t->mark_alloc)
			*marking = t->mark_alloc;
		live = survives + *marking;
	}
	return live;
}

static void option(struct gc_tuning *t, struct gc_option *o, double gogc_now, double alloc_cv)
{
	double alloc, live = t->live_heap, stat = alloc_cv / sqrt((double)t->steady), model;
	double spread = 0;

	double runway, marking, trigger, limit_goal = 0;

	if (o->gogc == GCTUNE_OFF) {
		/*
		 * GOMEMLIMIT bounds all the runtime's memory: the heap's goal is what the memory
		 * beside it leaves, less 3% (at least 1 MiB) for the pacer's errors (mgcpacer.go's
		 * memoryLimitHeapGoal). Unread, that memory is taken as a tenth of the limit.
		 */
		double room = (double)o->gomemlimit -
			      (t->nonheap >= 0 ? (double)t->nonheap : (double)o->gomemlimit / 10);

		limit_goal =
		    room - (room * LIMIT_GOAL_HEADROOM > MIB ? room * LIMIT_GOAL_HEADROOM : MIB);
		model = t->nonheap >= 0 ? MODEL_UNC_PER_DOUBLING * 2 : LIMIT_UNC;
	} else {
		model = MODEL_UNC_PER_DOUBLING * (1 + fabs(log2((double)o->gogc / gogc_now)));
	}
	live = live_at(t, (double)o->gogc, limit_goal, &runway, &marking, &trigger, &spread);
	o->peak_heap = live + trigger * runway + marking;
	o->goal = live + runway;
	alloc = o->peak_heap - live;
	o->cycles_per_gib = alloc > 0 ? GIB / alloc : INFINITY;
	spread = alloc > 0 ? spread / alloc : 0;
	o->cycles_unc = sqrt(stat * stat + model * model + spread * spread);
	o->peak_unc = o->cycles_unc * (alloc > 0 ? alloc / o->peak_heap : 1);
	o->gc_cpu = t->gc_cpu * o->cycles_per_gib / t->cycles_per_gib;
	o->cpu_unc = sqrt(o->cycles_unc * o->cycles_unc + CPU_UNC * CPU_UNC);
	if (o->gogc == GCTUNE_OFF)
		/* The runtime holds the peak under the limit itself; the live heap needs room. */
		o->fits = 2 * t->live_heap <= (double)o->gomemlimit;
	else if (t->limit == GCTUNE_NO_LIMIT)
		o->fits = alloc > 0 && o->peak_heap <= GCTUNE_MAX_GROWTH * t->peak_heap;
	else
		o->fits = alloc > 0 && o->peak_heap * (1 + o->peak_unc) <=
					   (double)t->limit * (1 - GCTUNE_HEADROOM);
}

void gctune_setting(char *buf, size_t len, const struct gc_option *o)
{
	if (o->gogc == GCTUNE_OFF)
		snprintf(buf, len, "GOGC=off GOMEMLIMIT=%.0fMiB", (double)o->gomemlimit / MIB);
	else
		snprintf(buf, len, "GOGC=%lld", (long long)o->gogc);
}

static void advise(struct gc_tuning *t, int64_t gogc_now)
{
	const struct gc_option *now = NULL, *best = NULL;
	char a[64], bound[96];

	for (size_t i = 0; i < t->noptions; i++) {
		const struct gc_option *o = &t->options[i];

		if (o->gogc == gogc_now && o->gomemlimit == GCTUNE_NO_LIMIT)
			now = o;
		if (o->fits && (!best || o->gc_cpu < best->gc_cpu))
			best = o;
	}
	if (t->limit == GCTUNE_NO_LIMIT)
		snprintf(bound, sizeof(bound), "no memory limit known: at most %.0fx today's peak",
			 GCTUNE_MAX_GROWTH);
	else
		snprintf(bound, sizeof(bound), "under the %.0f MiB limit less %.0f%% headroom",
			 (double)t->limit / MIB, 100 * GCTUNE_HEADROOM);
	if (!best) {
		snprintf(t->advice, sizeof(t->advice),
			 "no setting keeps the peak heap %s: lower GOGC or the live heap", bound);
		return;
	}
	t->advised = (int)(best - t->options);
	if (now && now->fits && now->gc_cpu - best->gc_cpu < WORTH_CPU) {
		t->advised = (int)(now - t->options);
		snprintf(t->advice, sizeof(t->advice),
			 "keep GOGC=%lld: GC CPU %.1f%%, no setting %s saves %.0f%% of the CPU",
			 (long long)gogc_now, 100 * now->gc_cpu, bound, 100 * WORTH_CPU);
		return;
	}
	gctune_setting(a, sizeof(a), best);
	snprintf(t->advice, sizeof(t->advice),
		 "%s: GC CPU %.1f%% -> %.1f%%, peak heap %.0f -> %.0f MiB (%s)", a, 100 * t->gc_cpu,
		 100 * best->gc_cpu, t->peak_heap / MIB, best->peak_heap / MIB, bound);
}

static void predict(const struct gc_cycle *cycles, size_t n, const struct gc_settings *s,
		    struct gc_tuning *t, struct series *ser)
{
	double live_spread, alloc_spread;

	fit(cycles, n, (double)s->gogc, t, ser);
	if (t->steady < MIN_STEADY) {
		snprintf(t->why, sizeof(t->why),
			 "%zu heap-triggered cycles with known heaps, %d needed: observe longer",
			 t->steady, MIN_STEADY);
		return;
	}
	if (t->mark_share > MAX_MARK_SHARE) {
		snprintf(
		    t->why, sizeof(t->why),
		    "%.0f%% of each runway is allocated while marking: assists hold that back, "
		    "and what it would be with more runway is not in these cycles",
		    100 * t->mark_share);
		return;
	}
	live_spread = spread(&ser[S_LIVE]);
	alloc_spread = spread(&ser[S_ALLOC]);
	if (live_spread > MAX_LIVE_CV || alloc_spread > MAX_ALLOC_CV) {
		snprintf(
		    t->why, sizeof(t->why),
		    "too irregular: the live heap varies by %.0f%%, the allocation per cycle by "
		    "%.0f%% (at most %.0f%% and %.0f%%)",
		    100 * live_spread, 100 * alloc_spread, 100 * MAX_LIVE_CV, 100 * MAX_ALLOC_CV);
		return;
	}
	/* The runtime's own account, where read at both ends of the observation, is exact. */
	if (s->gc_cpu_ns[0] >= 0 && s->cpu_ns[0] >= 0 && s->cpu_ns[1] > s->cpu_ns[0] &&
	    s->gc_cpu_ns[1] >= s->gc_cpu_ns[0]) {
		t->gc_cpu = (double)(s->gc_cpu_ns[1] - s->gc_cpu_ns[0]) /
			    (double)(s->cpu_ns[1] - s->cpu_ns[0]);
		t->gc_cpu_measured = true;
	}
	t->predicted = true;
	for (size_t i = 0; i < sizeof(gogcs) / sizeof(gogcs[0]); i++)
		t->options[t->noptions++] =
		    (struct gc_option){.gogc = gogcs[i], .gomemlimit = GCTUNE_NO_LIMIT};
	if (t->limit != GCTUNE_NO_LIMIT)
		t->options[t->noptions++] = (struct gc_option){
		    .gogc = GCTUNE_OFF,
		    .gomemlimit = (int64_t)((double)t->limit * (1 - GCTUNE_HEADROOM))};
	for (size_t i = 0; i < t->noptions; i++)
		option(t, &t->options[i], (double)s->gogc, alloc_spread);
	advise(t, s->gogc);
}

void gctune_predict(const struct gc_cycle *cycles, size_t n, const struct gc_settings *s,
		    struct gc_tuning *t)
{
	struct series ser[S_COUNT] = {{0}};
	double *buf;

	memset(t, 0, sizeof(*t));
	t->advised = -1;
	t->limit = GCTUNE_NO_LIMIT;
	if (s->memory_limit >= 0)
		t->limit = s->memory_limit;
	if (s->gomemlimit >= 0 && (t->limit < 0 || s->gomemlimit < t->limit))
		t->limit = s->gomemlimit;
	t->nonheap = s->nonheap;
	if (s->gogc == GC_UNKNOWN) {
		why(t, "GOGC unread: the cycles cannot be compared with other settings");
		return;
	}
	if (s->gogc <= 0) {
		why(t, "GOGC is off: the cycles say nothing of what GOGC would do");
		return;
	}
	buf = malloc((n ? n : 1) * S_COUNT * sizeof(*buf));
	if (!buf) {
		why(t, "out of memory");
		return;
	}
	for (int i = 0; i < S_COUNT; i++)
		ser[i].v = buf + (size_t)i * n;
	predict(cycles, n, s, t, ser);
	free(buf);
}

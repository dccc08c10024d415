#include "gcdecode.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"

/* What a stop-the-world is for, as far as its probe can tell. */
enum stop_kind {
	STOP_OTHER,
	STOP_GC,       /* the GC's, phase unknown (Go 1.19: only the caller tells) */
	STOP_GC_SWEEP, /* sweep termination */
	STOP_GC_MARK,  /* mark termination */
};

/* A repeated hit comes back within the signal's handling; a real second call takes longer. */
#define REPEAT_WINDOW_NS 10000000ull
/* gcTrigger kind of runtime.GC() (gcTriggerCycle), which gctrace marks "(forced)". */
#define TRIGGER_CYCLE 2
/* runtime.(*mheap).grow takes whole palloc chunks: 512 pages of 8 KiB. */
#define PALLOC_CHUNK_PAGES 512
#define PAGE_SIZE_GO	   8192

void gcdecode_init(struct gcdecode *d, const struct gcdecode_config *cfg)
{
	memset(d, 0, sizeof(*d));
	d->cfg = *cfg;
	d->last_numgc = cfg->numgc_base;
	d->last_forced = cfg->forced_base;
	d->seq = cfg->numgc_base;
}

/* Moves the newest max of n elements of size bytes to the front; returns how many went. */
static size_t keep_newest(void *array, size_t *n, size_t size, size_t max)
{
	size_t gone;

	if (*n <= max)
		return 0;
	gone = *n - max;
	memmove(array, (char *)array + gone * size, max * size);
	*n = max;
	return gone;
}

void gcdecode_keep(struct gcdecode *d, size_t max)
{
	d->dropped += keep_newest(d->cycles, &d->ncycles, sizeof(*d->cycles), max);
	d->dropped += keep_newest(d->stws, &d->nstws, sizeof(*d->stws), max);
	d->dropped += keep_newest(d->grows, &d->ngrows, sizeof(*d->grows), max);
}

void gcdecode_free(struct gcdecode *d)
{
	free(d->cycles);
	free(d->stws);
	free(d->grows);
	u64map_free(&d->last);
	memset(d, 0, sizeof(*d));
}

static int push_cycle(struct gcdecode *d, const struct gc_cycle *c)
{
	if (array_reserve((void **)&d->cycles, &d->cycles_cap, d->ncycles, sizeof(*c)))
		return -ENOMEM;
	d->cycles[d->ncycles++] = *c;
	return 0;
}

static uint64_t content_hash(const struct hs_gc_event *e)
{
	uint64_t h = u64_mix(e->type, e->args[0]), chunk;

	h = u64_mix(h, e->args[1]);
	h = u64_mix(h, e->caller);
	h = u64_mix(h, (uint64_t)e->read_ok << 32 | e->reason_len);
	for (int i = 0; i < HS_GC_MAX_READS; i++)
		h = u64_mix(h, e->vals[i]);
	for (size_t i = 0; i < sizeof(e->reason); i += sizeof(chunk)) {
		memcpy(&chunk, e->reason + i, sizeof(chunk));
		h = u64_mix(h, chunk);
	}
	return h;
}

/*
 * A uprobe whose single-step is interrupted by a signal (Go preempts with SIGURG) runs its handler
 * again when the instruction restarts: the same event twice in a row on one thread. The runtime
 * functions probed here are never preempted asynchronously, so the repeat stays on that thread.
 * gcStart and mheap.grow are left alone: a goroutine may well call them again at once with the
 * same arguments (gcStart while the runtime declines to start a cycle, grow while a burst of
 * large allocations takes chunk after chunk), and a repeat costs little there: a trigger seen
 * twice, or rarely a chunk counted twice. The stops and the cycle's end never come twice.
 * 1 for a repeat, 0 for a new event, -ENOMEM.
 */
static int repeated(struct gcdecode *d, const struct hs_gc_event *e)
{
	uint64_t h = content_hash(e), key = (uint64_t)e->tid << 1;
	uint64_t *prev = u64map_get(&d->last, key), *prev_ts = u64map_get(&d->last, key | 1);

	if (prev && prev_ts && *prev == h && e->ts - *prev_ts < REPEAT_WINDOW_NS) {
		d->repeated++;
		return 1;
	}
	if (u64map_put(&d->last, key, h) || u64map_put(&d->last, key | 1, e->ts))
		return -ENOMEM;
	return 0;
}

static double cost_of(const struct gcdecode *d, uint32_t type)
{
	return type >= HS_GC_EV_CYCLE && type < HS_GC_EV_END ? d->cfg.hit_ns[type - HS_GC_EV_CYCLE]
							     : 0;
}

/* Every hit costs the program, repeats included: remembered to find those inside pauses. */
static void note_hit(struct gcdecode *d, const struct hs_gc_event *e)
{
	size_t i = d->nhits++ % GCDECODE_HITS;

	d->hit_ts[i] = e->ts;
	d->hit_cost[i] = cost_of(d, e->type);
	d->probe_ns += d->hit_cost[i];
}

/* heapspy's probe time from hits stamped within [lo, hi]. */
static int64_t probe_time(const struct gcdecode *d, uint64_t lo, uint64_t hi)
{
	size_t n = d->nhits < GCDECODE_HITS ? d->nhits : GCDECODE_HITS;
	double sum = 0;

	for (size_t i = 0; i < n; i++)
		if (d->hit_ts[i] >= lo && d->hit_ts[i] <= hi)
			sum += d->hit_cost[i];
	return (int64_t)(sum + 0.5);
}

static int64_t less_probes(int64_t raw, int64_t probes)
{
	return raw > probes ? raw - probes : 0;
}

/*
 * Where a stop-the-world ended: the probe on startTheWorldWithSema's return finds in RAX the
 * runtime's own timestamp of it (nanotime(), the clock the probes use): gctrace's tMark, tEnd.
 * Its hit then lies outside the pause. A probe on the entry stamps its hit midway through.
 */
struct pause_end {
	uint64_t ts;
	double inside; /* the end hit's time inside the pause */
};

static struct pause_end pause_end(const struct gcdecode *d, const struct hs_gc_event *resume)
{
	uint64_t now = resume->args[0];

	if (d->cfg.resume_returns_now && resume->type == HS_GC_EV_RESUME && now > d->stop.ts &&
	    now <= resume->ts)
		return (struct pause_end){now, 0};
	return (struct pause_end){resume->ts, 0.5 * cost_of(d, resume->type)};
}

/*
 * A pause seen from its own two probes: the stop's hit is stamped midway through its trap, so
 * half of it lies inside; every hit between lies wholly inside.
 */
static int64_t probe_pause(const struct gcdecode *d, struct pause_end end)
{
	double ends = 0.5 * d->stop.cost + end.inside;
	int64_t probes = probe_time(d, d->stop.ts, end.ts) - (int64_t)(ends + 0.5);

	return less_probes((int64_t)(end.ts - d->stop.ts), probes > 0 ? probes : 0);
}

static bool word(const struct gcdecode *d, const struct hs_gc_event *e, enum gc_word w, uint64_t *v)
{
	unsigned size = d->cfg.word_size[w];

	if (!(d->cfg.words_known & e->read_ok & (1u << w)))
		return false;
	*v = size >= 8 ? e->vals[w] : e->vals[w] & ((1ull << (size * 8)) - 1);
	return true;
}

static int64_t word_or_unknown(const struct gcdecode *d, const struct hs_gc_event *e,
			       enum gc_word w)
{
	uint64_t v;

	return word(d, e, w, &v) ? (int64_t)v : GC_UNKNOWN;
}

/*
 * The runtime's words describe the cycle that just ended; it is new when memstats.numgc moved
 * (the runtime's synchronous sweep mode passes the probe once more, inside the cycle).
 */
static int cycle_from_state(struct gcdecode *d, const struct hs_gc_event *e)
{
	struct gc_cycle c = {.forced = GC_UNKNOWN};
	uint64_t numgc, t0, t1, t2, t3, forced, gap;
	bool timed;

	if (!word(d, e, GCW_NUMGC, &numgc))
		return 0;
	timed = word(d, e, GCW_T_SWEEP_TERM, &t0) && word(d, e, GCW_T_MARK, &t1) &&
		word(d, e, GCW_T_MARK_TERM, &t2) && word(d, e, GCW_T_END, &t3) && t0 <= t1 &&
		t1 <= t2 && t2 <= t3;
	if (d->last_numgc != GC_UNKNOWN && (int64_t)numgc <= d->last_numgc)
		return 0;
	gap = d->last_numgc == GC_UNKNOWN ? 0 : (uint64_t)((int64_t)numgc - d->last_numgc - 1);
	/* Before the first event, the gap is the cycles that ended while the probes went in. */
	if (d->seen_cycle)
		d->missed += gap;
	else
		d->attaching += gap;
	d->seen_cycle = true;
	d->last_numgc = (int64_t)numgc;

	c.cycle = (int64_t)numgc;
	c.start_ns = c.sweep_term_ns = c.mark_ns = c.mark_term_ns = GC_UNKNOWN;
	if (timed) {
		int64_t pa = probe_time(d, t0, t1), pc = probe_time(d, t2, t3);

		c.start_ns = (int64_t)t0;
		c.sweep_term_ns = less_probes((int64_t)(t1 - t0), pa);
		c.mark_ns = (int64_t)(t2 - t1);
		c.mark_term_ns = less_probes((int64_t)(t3 - t2), pc);
		c.probe_ns = pa + pc;
	}
	/*
	 * memstats.numforcedgc counts the cycle inside its pause; work.userForced, which gctrace
	 * prints, can be overwritten by the next runtime.GC() before it is printed on Go 1.19.
	 */
	if (word(d, e, GCW_NUM_FORCED, &forced) && d->last_forced != GC_UNKNOWN && !gap)
		c.forced = (int64_t)forced > d->last_forced;
	else if (word(d, e, GCW_USER_FORCED, &forced))
		c.forced = forced != 0;
	if (word(d, e, GCW_NUM_FORCED, &forced))
		d->last_forced = (int64_t)forced;
	c.heap0 = word_or_unknown(d, e, GCW_HEAP0);
	c.heap1 = word_or_unknown(d, e, GCW_HEAP1);
	c.heap2 = word_or_unknown(d, e, GCW_HEAP2);
	c.heap_goal = word_or_unknown(d, e, GCW_HEAP_GOAL);
	return push_cycle(d, &c);
}

/*
 * Which gcStart started the cycle: the goroutine that wins goes on to stop the world, normally on
 * the same thread; failing that, the latest call since the last cycle ended.
 */
static int trigger_forced(const struct gcdecode *d, uint32_t tid)
{
	int any = GC_UNKNOWN;

	for (unsigned k = 0; k < d->nstarts && k < 8; k++) {
		unsigned i = (d->nstarts - 1 - k) % 8;

		if (d->starts[i].ts < d->cycle_end_ts)
			break;
		if (d->starts[i].tid == tid)
			return d->starts[i].kind == TRIGGER_CYCLE;
		if (any == GC_UNKNOWN)
			any = d->starts[i].kind == TRIGGER_CYCLE;
	}
	return any;
}

/* No readable records: the cycle's phases from the stops, gcMarkTermination and the clock. */
static int cycle_from_probes(struct gcdecode *d, struct pause_end at)
{
	int kind = d->stop.kind;
	bool end = d->saw_mark_term || (!d->cfg.mark_term_probe &&
					(kind == STOP_GC_MARK || (kind == STOP_GC && d->in_cycle)));
	int rc = 0;

	if (end) {
		if (d->in_cycle) {
			d->open.mark_ns = (int64_t)(d->stop.ts - d->mark_start);
			d->open.mark_term_ns = probe_pause(d, at);
			d->open.probe_ns += (int64_t)(at.ts - d->stop.ts) - d->open.mark_term_ns;
			if (d->seq != GC_UNKNOWN)
				d->open.cycle = ++d->seq;
			rc = push_cycle(d, &d->open);
		}
		d->in_cycle = false;
		d->cycle_end_ts = at.ts;
	} else if (kind == STOP_GC_SWEEP || (kind == STOP_GC && !d->in_cycle)) {
		struct gc_cycle c = {
		    .cycle = GC_UNKNOWN,
		    .start_ns = (int64_t)d->stop.ts,
		    .forced = trigger_forced(d, d->stop.tid),
		    .sweep_term_ns = probe_pause(d, at),
		    .heap0 = GC_UNKNOWN,
		    .heap1 = GC_UNKNOWN,
		    .heap2 = GC_UNKNOWN,
		    .heap_goal = GC_UNKNOWN,
		};

		c.probe_ns = (int64_t)(at.ts - d->stop.ts) - c.sweep_term_ns;
		d->open = c;
		d->in_cycle = true;
		d->mark_start = at.ts;
	}
	/* Else mark termination found more work and marking resumed: the cycle goes on. */
	d->saw_mark_term = false;
	return rc;
}

static void copy_reason(char *dst, const char *src, size_t len)
{
	if (len >= GC_REASON_MAX)
		len = GC_REASON_MAX - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
}

/* stopTheWorld names the stop in m.preemptoff, which the probe copied. */
static void reason_of(const struct hs_gc_event *e, char *reason)
{
	if (e->reason_len)
		copy_reason(reason, e->reason, e->reason_len);
	else
		strcpy(reason, "unknown");
}

static int classify_stop(const struct gcdecode *d, const struct hs_gc_event *e, char *reason)
{
	const char *name;

	if (d->cfg.stop_reason_arg) {
		unsigned r = (unsigned)(e->args[0] & 0xff); /* stwReason is a uint8 */

		if (r == GC_STW_SWEEP_TERM)
			return STOP_GC_SWEEP;
		if (r == GC_STW_MARK_TERM)
			return STOP_GC_MARK;
		name = gcruntime_stw_reason(r);
		if (!name)
			name = "unknown";
		copy_reason(reason, name, strlen(name));
		return STOP_OTHER;
	}
	/* Go 1.19: the GC calls systemstack(stopTheWorldWithSema); stopTheWorld calls it itself. */
	if (e->caller >= d->cfg.systemstack_lo && e->caller < d->cfg.systemstack_hi)
		return STOP_GC;
	reason_of(e, reason);
	return STOP_OTHER;
}

static int other_stw(struct gcdecode *d, struct pause_end end)
{
	struct gc_stw *s;

	if (array_reserve((void **)&d->stws, &d->stws_cap, d->nstws, sizeof(*s)))
		return -ENOMEM;
	s = &d->stws[d->nstws++];
	s->start_ns = (int64_t)d->stop.ts;
	s->duration_ns = probe_pause(d, end);
	memcpy(s->reason, d->stop.reason, sizeof(s->reason));
	return 0;
}

static int on_resume(struct gcdecode *d, const struct hs_gc_event *e)
{
	int rc = 0;

	if (d->stop.valid && d->stop.kind == STOP_OTHER)
		rc = other_stw(d, pause_end(d, e));
	else if (d->stop.valid)
		rc = cycle_from_probes(d, pause_end(d, e));
	d->stop.valid = false;
	return rc;
}

static void on_stop(struct gcdecode *d, const struct hs_gc_event *e, int kind)
{
	d->stop.valid = true;
	d->stop.ts = e->ts;
	d->stop.tid = e->tid;
	d->stop.cost = cost_of(d, e->type);
	d->stop.kind = kind;
	d->saw_mark_term = false;
}

static int on_grow(struct gcdecode *d, const struct hs_gc_event *e)
{
	uint64_t npage = e->args[1]; /* grow(h *mheap, npage uintptr): the receiver is first */
	uint64_t chunks = (npage + PALLOC_CHUNK_PAGES - 1) / PALLOC_CHUNK_PAGES;
	struct gc_grow *g;

	if (array_reserve((void **)&d->grows, &d->grows_cap, d->ngrows, sizeof(*g)))
		return -ENOMEM;
	g = &d->grows[d->ngrows++];
	g->ts = (int64_t)e->ts;
	g->bytes = chunks * PALLOC_CHUNK_PAGES * PAGE_SIZE_GO;
	d->grown_bytes += g->bytes;
	return 0;
}

int gcdecode_event(struct gcdecode *d, const struct hs_gc_event *e)
{
	int rc;

	note_hit(d, e);
	rc = e->type == HS_GC_EV_START || e->type == HS_GC_EV_GROW ? 0 : repeated(d, e);
	if (rc)
		return rc < 0 ? rc : 0;
	switch (e->type) {
	case HS_GC_EV_START: {
		unsigned i = d->nstarts++ % 8;

		d->starts[i].tid = e->tid;
		d->starts[i].ts = e->ts;
		d->starts[i].kind = (int)e->args[0]; /* gcTrigger{kind, now, n}: kind in RAX */
		return 0;
	}
	case HS_GC_EV_CYCLE:
		return cycle_from_state(d, e);
	case HS_GC_EV_OTHER_STOP:
		reason_of(e, d->stop.reason);
		on_stop(d, e, STOP_OTHER);
		return 0;
	case HS_GC_EV_STOP:
		on_stop(d, e, classify_stop(d, e, d->stop.reason));
		return 0;
	case HS_GC_EV_MARK_TERM:
		d->saw_mark_term = true;
		return 0;
	case HS_GC_EV_RESUME:
	case HS_GC_EV_OTHER_RESUME:
		return on_resume(d, e);
	case HS_GC_EV_GROW:
		return on_grow(d, e);
	default:
		return 0;
	}
}

#include "servetarget.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "gc.h"
#include "leakscmd.h"

static int64_t wall_ns(void)
{
	struct timespec wall;

	clock_gettime(CLOCK_REALTIME, &wall);
	return (int64_t)wall.tv_sec * 1000000000 + wall.tv_nsec;
}

static void answer_profile(struct serve_target *st, struct serve_req *q)
{
	struct heapprof h;
	char err[512];

	session_read_counters(&st->r.s);
	q->rc = recording_profile(&st->r, q->base, &h, err, sizeof(err));
	if (q->rc)
		return;
	if (q->default_type)
		pprof_default_sample_type(h.p, q->default_type);
	q->rc = pprof_encode(h.p, &q->body, &q->len);
	heapprof_free(&h);
}

static void answer_metrics(struct serve_target *st, struct prom_target *m)
{
	struct session *s = &st->r.s;
	const struct heapagg *a = &s->agg;
	int64_t now = heapagg_profile_cycle(a, session_cycle(s));
	double alloc_bytes = 0, allocs = 0, inuse_bytes = 0, inuse = 0;

	for (size_t i = 0; i < a->nsites; i++) {
		struct heap_totals t;

		heapagg_totals(a, &a->sites[i], now, &t);
		allocs += t.est_allocs;
		alloc_bytes += t.est_allocs * (double)a->sites[i].size;
		inuse += t.est_inuse;
		inuse_bytes += t.est_inuse * (double)a->sites[i].size;
	}
	session_read_counters(s);
	gctrace_finish(&st->r.gc);
	*m = st->gc;
	m->pid = (int)s->t.pid;
	m->exe = s->t.display;
	m->go_version = s->t.go_version;
	m->alloc_bytes = (int64_t)alloc_bytes;
	m->alloc_objects = (int64_t)allocs;
	m->inuse_bytes = (int64_t)inuse_bytes;
	m->inuse_objects = (int64_t)inuse;
	m->sample_rate = session_period(s);
	m->samples = a->samples;
	m->frees = a->frees;
	m->lost = s->counters[HS_CNT_LOST];
	m->capped = a->capped_samples;
	m->gc_probe_hits = st->r.gc.counters[HS_GC_CNT_HITS];
	m->gc_lost = st->r.gc.counters[HS_GC_CNT_LOST];
	m->grown_bytes = st->r.gc.dec.grown_bytes;
	m->gc_records_dropped = st->r.gc.dec.dropped;
}

/*
 * Each push holds what was allocated since the one before (Pyroscope adds them up), in use as
 * now. The base is taken at the cycle the profile is built at: no allocation falls between two.
 */
static void answer_push(struct serve_target *st, struct serve_req *q)
{
	struct session *s = &st->r.s;
	int64_t now = wall_ns(), cycle = heapagg_profile_cycle(&s->agg, session_cycle(s));
	struct heapprof_base next;

	/*
	 * Before the first GC publishes anything every event counts, as runtime/pprof counts them;
	 * from then on only what the cycles published: a base from before is no base for after.
	 */
	if (cycle == HEAPAGG_UNKNOWN_CYCLE) {
		q->rc = -EAGAIN;
		return;
	}
	q->from = (st->push_base.time_ns ? st->push_base.time_ns : s->start_wall_ns) / 1000000000;
	q->until = now / 1000000000;
	q->base = st->push_base.time_ns ? &st->push_base : NULL;
	q->rc = heapprof_base_take(&next, &s->agg, cycle, now);
	if (!q->rc)
		answer_profile(st, q);
	q->base = NULL;
	if (q->rc) {
		heapprof_base_free(&next);
		return;
	}
	heapprof_base_free(&st->push_base);
	st->push_base = next;
}

static void answer(struct serve_target *st, struct serve_req *q)
{
	struct session *s = &st->r.s;
	int64_t cycle;

	switch (q->ask) {
	case SERVE_ASK_PROFILE:
		answer_profile(st, q);
		break;
	case SERVE_ASK_BASE:
		/* As for pushes: a base from before the first published cycle is none after it. */
		cycle = heapagg_profile_cycle(&s->agg, session_cycle(s));
		q->rc = cycle == HEAPAGG_UNKNOWN_CYCLE
			    ? -EAGAIN
			    : heapprof_base_take(q->base, &s->agg, cycle, wall_ns());
		break;
	case SERVE_ASK_GC:
		q->body = (uint8_t *)gc_json_text(&st->r.gc, s);
		q->len = q->body ? strlen((char *)q->body) : 0;
		q->rc = q->body ? 0 : -ENOMEM;
		break;
	case SERVE_ASK_LEAKS:
		/* Without the free probe there is no object's lifetime to judge. */
		if (!s->o->frees) {
			q->rc = -ENOTSUP;
			break;
		}
		q->body = (uint8_t *)leaks_json_text(&st->r.leaks, s);
		q->len = q->body ? strlen((char *)q->body) : 0;
		q->rc = q->body ? 0 : -ENOMEM;
		break;
	case SERVE_ASK_METRICS:
		answer_metrics(st, q->metrics);
		break;
	case SERVE_ASK_PUSH:
		answer_push(st, q);
		break;
	}
}

/* Finishes every request taken, under mu; wakes their askers. */
static void finish(struct serve_target *st, struct serve_req *q, int rc)
{
	for (; q; q = q->next) {
		if (rc)
			q->rc = rc;
		q->done = true;
	}
	pthread_cond_broadcast(&st->cv);
}

/* In the loop's thread: answers what is waiting; a nonzero return ends the loop. */
static int on_wake(void *ctx)
{
	struct serve_target *st = ctx;
	struct serve_req *q;
	uint64_t n;
	bool stop;

	if (read(st->wakefd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return 1;
	pthread_mutex_lock(&st->mu);
	q = st->queue;
	st->queue = NULL;
	stop = st->stop;
	pthread_mutex_unlock(&st->mu);
	for (struct serve_req *i = q; i; i = i->next)
		answer(st, i);
	pthread_mutex_lock(&st->mu);
	finish(st, q, 0);
	pthread_mutex_unlock(&st->mu);
	return stop;
}

/* In the loop's thread, as each GC cycle ends. */
static void on_cycle(void *ctx, const struct gc_cycle *c)
{
	struct serve_target *st = ctx;

	st->gc.gc_cycles++;
	if (c->forced == 1)
		st->gc.gc_forced++;
	if (c->cycle != GC_UNKNOWN)
		st->gc.gc_last_cycle = c->cycle;
	if (c->sweep_term_ns != GC_UNKNOWN)
		promtext_add_pause(&st->gc.pauses, c->sweep_term_ns);
	if (c->mark_term_ns != GC_UNKNOWN)
		promtext_add_pause(&st->gc.pauses, c->mark_term_ns);
	st->gc.heap_live = c->heap2 != GC_UNKNOWN ? c->heap2 : -1;
	st->gc.heap_goal = c->heap_goal != GC_UNKNOWN ? c->heap_goal : -1;
}

static void on_tick(void *ctx, double elapsed)
{
	struct serve_target *st = ctx;
	recording_tick(&st->r, elapsed);
	/* Weeks of cycles: /debug/gc shows the recent ones; /metrics counts them all as they end.
	 */
	gcdecode_keep(&st->r.gc.dec, SERVE_GC_RECORDS);
}

static void *run(void *arg)
{
	struct serve_target *st = arg;
	enum evloop_end end = session_run(&st->r.s, on_tick, st);

	recording_stop(&st->r, end);
	if (end != EVLOOP_STOPPED)
		fprintf(stderr, "heapspy: pid %d (%s): %s; no longer served\n", (int)st->r.s.t.pid,
			st->r.s.t.display, evloop_end_str(end, 0));
	pthread_mutex_lock(&st->mu);
	st->ended = true;
	finish(st, st->queue, -ESRCH);
	st->queue = NULL;
	pthread_mutex_unlock(&st->mu);
	if (st->on_end)
		st->on_end(st->on_end_ctx);
	return NULL;
}

int serve_target_start(struct serve_target *st, pid_t pid, const struct session_opts *o,
		       void (*on_end)(void *ctx), void *ctx, char *err, size_t errlen)
{
	int rc;

	memset(st, 0, sizeof(*st));
	st->so = *o;
	st->so.tgt.pid = pid;
	st->so.tgt.duration = 0; /* the main thread ends everything at once */
	st->so.no_signals = true;
	st->so.max_sites = SERVE_MAX_SITES;
	st->on_end = on_end;
	st->on_end_ctx = ctx;
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->cv, NULL);
	st->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (st->wakefd < 0) {
		snprintf(err, errlen, "cannot make an eventfd: %s", strerror(errno));
		return -errno;
	}
	st->gc.gc_last_cycle = st->gc.heap_live = st->gc.heap_goal = -1;
	rc = recording_start(&st->r, "serve", &st->so, err, errlen);
	st->r.gc.on_cycle = on_cycle;
	st->r.gc.on_cycle_ctx = st;
	if (!rc)
		rc = evloop_add_wake(&st->r.s.loop, st->wakefd, on_wake, st);
	if (!rc) {
		rc = -pthread_create(&st->thread, NULL, run, st);
		st->thread_started = rc == 0;
	}
	if (rc && !err[0])
		snprintf(err, errlen, "pid %d: cannot start: %s", (int)pid, strerror(-rc));
	return rc;
}

static void wake(struct serve_target *st)
{
	uint64_t one = 1;

	if (write(st->wakefd, &one, sizeof(one)) < 0)
		return; /* the counter is full: a wake-up is pending anyway */
}

int serve_target_ask(struct serve_target *st, struct serve_req *q)
{
	q->done = false;
	q->rc = 0;
	pthread_mutex_lock(&st->mu);
	if (st->ended || st->stop) {
		pthread_mutex_unlock(&st->mu);
		return q->rc = -ESRCH;
	}
	q->next = st->queue;
	st->queue = q;
	pthread_mutex_unlock(&st->mu);
	wake(st);
	pthread_mutex_lock(&st->mu);
	while (!q->done)
		pthread_cond_wait(&st->cv, &st->mu);
	pthread_mutex_unlock(&st->mu);
	return q->rc;
}

bool serve_target_ended(struct serve_target *st)
{
	bool ended;

	pthread_mutex_lock(&st->mu);
	ended = st->ended;
	pthread_mutex_unlock(&st->mu);
	return ended;
}

void serve_target_close(struct serve_target *st)
{
	if (st->thread_started) {
		pthread_mutex_lock(&st->mu);
		st->stop = true;
		pthread_mutex_unlock(&st->mu);
		wake(st);
		pthread_join(st->thread, NULL);
		st->thread_started = false;
	}
	recording_close(&st->r);
	heapprof_base_free(&st->push_base);
	if (st->wakefd >= 0)
		close(st->wakefd);
	st->wakefd = -1;
	pthread_cond_destroy(&st->cv);
	pthread_mutex_destroy(&st->mu);
}

#include "servetarget.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "gc.h"

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

static void answer(struct serve_target *st, struct serve_req *q)
{
	struct session *s = &st->r.s;
	struct timespec wall;

	switch (q->ask) {
	case SERVE_ASK_PROFILE:
		answer_profile(st, q);
		break;
	case SERVE_ASK_BASE:
		clock_gettime(CLOCK_REALTIME, &wall);
		q->rc = heapprof_base_take(q->base, &s->agg,
					   heapagg_profile_cycle(&s->agg, session_cycle(s)),
					   (int64_t)wall.tv_sec * 1000000000 + wall.tv_nsec);
		break;
	case SERVE_ASK_GC:
		q->body = (uint8_t *)gc_json_text(&st->r.gc, s);
		q->len = q->body ? strlen((char *)q->body) : 0;
		q->rc = q->body ? 0 : -ENOMEM;
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

static void on_tick(void *ctx, double elapsed)
{
	struct serve_target *st = ctx;

	recording_tick(&st->r, elapsed);
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
	st->on_end = on_end;
	st->on_end_ctx = ctx;
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->cv, NULL);
	st->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (st->wakefd < 0) {
		snprintf(err, errlen, "cannot make an eventfd: %s", strerror(errno));
		return -errno;
	}
	rc = recording_start(&st->r, "serve", &st->so, err, errlen);
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
	if (st->wakefd >= 0)
		close(st->wakefd);
	st->wakefd = -1;
	pthread_cond_destroy(&st->cv);
	pthread_mutex_destroy(&st->mu);
}

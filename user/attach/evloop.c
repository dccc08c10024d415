#include "evloop.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

enum { TAG_SIG = 1, TAG_PID, TAG_TIMER, TAG_WAKE, TAG_RB /* + the ring buffer's index */ };

/*
 * Events one wake-up may consume before the loop looks at its other sources again. A producer that
 * refills a ring buffer as fast as it is read would otherwise keep ring_buffer__consume from
 * returning, and Ctrl-C, --duration and the other ring buffer would wait for it.
 */
#define DRAIN_BUDGET 65536

uint64_t evloop_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int watch(struct evloop *l, int fd, uint64_t tag)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};

	return epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

/* What ends a recording. SIGPIPE is not among them: output to a closed pipe is no reason to stop.
 */
static void ending_signals(sigset_t *mask)
{
	sigemptyset(mask);
	sigaddset(mask, SIGINT);
	sigaddset(mask, SIGTERM);
	sigaddset(mask, SIGHUP);
	sigaddset(mask, SIGQUIT);
}

int evloop_block_signals(void)
{
	sigset_t mask;

	ending_signals(&mask);
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR || sigprocmask(SIG_BLOCK, &mask, NULL))
		return -errno;
	return 0;
}

int evloop_init(struct evloop *l, int pidfd, double duration_s, unsigned tick_ms, bool signals)
{
	struct itimerspec tick = {
	    .it_interval = {.tv_sec = tick_ms / 1000, .tv_nsec = (tick_ms % 1000) * 1000000L},
	};
	sigset_t mask;

	memset(l, 0, sizeof(*l));
	l->sigfd = l->pidfd = l->timerfd = l->wakefd = -1;
	l->duration_s = duration_s;
	l->drains_per_tick = 1;
	l->start_ns = evloop_now_ns();
	tick.it_value = tick.it_interval;

	ending_signals(&mask);
	if (evloop_block_signals())
		return -errno;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (signals)
		l->sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
	l->pidfd = fcntl(pidfd, F_DUPFD_CLOEXEC, 0);
	l->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	if (l->epfd < 0 || (signals && l->sigfd < 0) || l->pidfd < 0 || l->timerfd < 0)
		return -errno;
	if (timerfd_settime(l->timerfd, 0, &tick, NULL))
		return -errno;
	if ((signals && watch(l, l->sigfd, TAG_SIG)) || watch(l, l->pidfd, TAG_PID) ||
	    watch(l, l->timerfd, TAG_TIMER))
		return -errno;
	return 0;
}

int evloop_add_wake(struct evloop *l, int fd, int (*wake)(void *ctx), void *ctx)
{
	l->wakefd = fd;
	l->wake = wake;
	l->wake_ctx = ctx;
	return watch(l, fd, TAG_WAKE);
}

int evloop_drain_every(struct evloop *l, unsigned tick_ms, unsigned drain_ms)
{
	struct itimerspec t = {
	    .it_interval = {.tv_sec = drain_ms / 1000, .tv_nsec = (drain_ms % 1000) * 1000000L},
	};

	if (!drain_ms || tick_ms % drain_ms)
		return -EINVAL;
	t.it_value = t.it_interval;
	l->drains_per_tick = tick_ms / drain_ms;
	return timerfd_settime(l->timerfd, 0, &t, NULL) ? -errno : 0;
}

/* Stops ring_buffer__consume once the budget is spent; libbpf has consumed the record already. */
static int take(void *ctx, void *data, size_t len)
{
	struct evloop_ringbuf *r = ctx;
	int rc = r->fn(r->ctx, data, len);

	if (rc < 0)
		return rc;
	return r->budget && --r->budget == 0 ? -EAGAIN : 0;
}

int evloop_add_ringbuf(struct evloop *l, int map_fd, ring_buffer_sample_fn fn, void *ctx)
{
	struct evloop_ringbuf *r;

	if (l->nrbs == EVLOOP_MAX_RINGBUFS)
		return -ENOSPC;
	r = &l->rbs[l->nrbs];
	r->fn = fn;
	r->ctx = ctx;
	r->rb = ring_buffer__new(map_fd, take, r, NULL);
	if (!r->rb)
		return -errno;
	return watch(l, ring_buffer__epoll_fd(r->rb), TAG_RB + l->nrbs++);
}

/* An unfinished drain leaves the buffer readable: the next epoll_wait comes straight back. */
static void drain_some(struct evloop_ringbuf *r)
{
	r->budget = DRAIN_BUDGET;
	ring_buffer__consume(r->rb);
}

void evloop_catch_up(struct evloop *l)
{
	for (size_t i = 0; i < l->nrbs; i++)
		drain_some(&l->rbs[i]);
}

void evloop_drain(struct evloop *l)
{
	for (size_t i = 0; i < l->nrbs; i++) {
		l->rbs[i].budget = 0;
		ring_buffer__consume(l->rbs[i].rb);
	}
}

enum evloop_end evloop_run(struct evloop *l, void (*on_tick)(void *ctx, double elapsed), void *ctx)
{
	struct epoll_event evs[4 + EVLOOP_MAX_RINGBUFS];

	for (;;) {
		int n = epoll_wait(l->epfd, evs, sizeof(evs) / sizeof(evs[0]), -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return EVLOOP_ERROR;
		for (int i = 0; i < n; i++) {
			struct signalfd_siginfo si;
			uint64_t expirations;
			double elapsed;

			switch (evs[i].data.u64) {
			case TAG_SIG:
				if (read(l->sigfd, &si, sizeof(si)) == sizeof(si))
					l->signal = (int)si.ssi_signo;
				return EVLOOP_SIGNAL;
			case TAG_PID:
				return EVLOOP_TARGET_EXIT;
			case TAG_WAKE:
				if (l->wake(l->wake_ctx))
					return EVLOOP_STOPPED;
				break;
			case TAG_TIMER:
				if (read(l->timerfd, &expirations, sizeof(expirations)) < 0)
					break;
				/* Wake-ups are batched in BPF: the tick keeps the buffers low. */
				evloop_catch_up(l);
				l->drains += (unsigned)expirations;
				if (l->drains < l->drains_per_tick)
					break;
				l->drains = 0;
				elapsed = (double)(evloop_now_ns() - l->start_ns) / 1e9;
				if (on_tick)
					on_tick(ctx, elapsed);
				if (l->duration_s > 0 && elapsed >= l->duration_s)
					return EVLOOP_DURATION;
				break;
			default:
				drain_some(&l->rbs[evs[i].data.u64 - TAG_RB]);
				break;
			}
		}
	}
}

void evloop_close(struct evloop *l)
{
	for (size_t i = 0; i < l->nrbs; i++)
		ring_buffer__free(l->rbs[i].rb);
	l->nrbs = 0;
	int fds[] = {l->epfd, l->sigfd, l->pidfd, l->timerfd};

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

const char *evloop_end_str(enum evloop_end e, int signal)
{
	switch (e) {
	case EVLOOP_DURATION:
		return "duration elapsed";
	case EVLOOP_SIGNAL:
		switch (signal) {
		case SIGINT:
			return "interrupted";
		case SIGHUP:
			return "SIGHUP (hangup)";
		case SIGQUIT:
			return "SIGQUIT";
		default:
			return "SIGTERM";
		}
	case EVLOOP_TARGET_EXIT:
		return "target exited";
	case EVLOOP_STOPPED:
		return "heapspy stopping";
	default:
		return "error";
	}
}

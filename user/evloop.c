#include "evloop.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

enum { TAG_RB = 1, TAG_SIG, TAG_PID, TAG_TIMER };

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

int evloop_init(struct evloop *l, pid_t pid, double duration_s, unsigned tick_ms)
{
	struct itimerspec tick = {
	    .it_interval = {.tv_sec = tick_ms / 1000, .tv_nsec = (tick_ms % 1000) * 1000000L},
	};
	sigset_t mask;

	memset(l, 0, sizeof(*l));
	l->sigfd = l->pidfd = l->timerfd = -1;
	l->duration_s = duration_s;
	l->start_ns = evloop_now_ns();
	tick.it_value = tick.it_interval;

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &mask, NULL))
		return -errno;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
	l->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	l->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	if (l->epfd < 0 || l->sigfd < 0 || l->pidfd < 0 || l->timerfd < 0)
		return -errno;
	if (timerfd_settime(l->timerfd, 0, &tick, NULL))
		return -errno;
	if (watch(l, l->sigfd, TAG_SIG) || watch(l, l->pidfd, TAG_PID) ||
	    watch(l, l->timerfd, TAG_TIMER))
		return -errno;
	return 0;
}

int evloop_add_ringbuf(struct evloop *l, int map_fd, ring_buffer_sample_fn fn, void *ctx)
{
	if (!l->rb) {
		l->rb = ring_buffer__new(map_fd, fn, ctx, NULL);
		if (!l->rb)
			return -errno;
		return watch(l, ring_buffer__epoll_fd(l->rb), TAG_RB);
	}
	return ring_buffer__add(l->rb, map_fd, fn, ctx) ? -errno : 0;
}

void evloop_drain(struct evloop *l)
{
	if (l->rb)
		ring_buffer__consume(l->rb);
}

enum evloop_end evloop_run(struct evloop *l, void (*on_tick)(void *ctx, double elapsed), void *ctx)
{
	struct epoll_event evs[4];

	for (;;) {
		int n = epoll_wait(l->epfd, evs, 4, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return EVLOOP_ERROR;
		for (int i = 0; i < n; i++) {
			struct signalfd_siginfo si;
			uint64_t expirations;
			double elapsed;

			switch (evs[i].data.u64) {
			case TAG_RB:
				evloop_drain(l);
				break;
			case TAG_SIG:
				if (read(l->sigfd, &si, sizeof(si)) == sizeof(si))
					l->signal = (int)si.ssi_signo;
				return EVLOOP_SIGNAL;
			case TAG_PID:
				return EVLOOP_TARGET_EXIT;
			case TAG_TIMER:
				if (read(l->timerfd, &expirations, sizeof(expirations)) < 0)
					break;
				/* Wake-ups are batched in BPF: the tick keeps the buffer low. */
				evloop_drain(l);
				elapsed = (double)(evloop_now_ns() - l->start_ns) / 1e9;
				if (on_tick)
					on_tick(ctx, elapsed);
				if (l->duration_s > 0 && elapsed >= l->duration_s)
					return EVLOOP_DURATION;
				break;
			}
		}
	}
}

void evloop_close(struct evloop *l)
{
	ring_buffer__free(l->rb);
	l->rb = NULL;
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
		return signal == SIGTERM ? "SIGTERM" : "interrupted";
	case EVLOOP_TARGET_EXIT:
		return "target exited";
	default:
		return "error";
	}
}

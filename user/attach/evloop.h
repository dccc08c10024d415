/*
 * evloop: the one loop every recording command runs. It waits on the probes' ring buffers, on
 * SIGINT/SIGTERM/SIGHUP/SIGQUIT, on the target's exit (a pidfd) and on a periodic tick, and tells
 * why it stopped.
 */
#ifndef HEAPSPY_EVLOOP_H
#define HEAPSPY_EVLOOP_H

#include <bpf/libbpf.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum evloop_end {
	EVLOOP_DURATION = 1, /* --duration elapsed */
	EVLOOP_SIGNAL,	     /* SIGINT, SIGTERM, SIGHUP or SIGQUIT */
	EVLOOP_TARGET_EXIT,  /* the target process is gone */
	EVLOOP_STOPPED,	     /* another thread asked (evloop_add_wake) */
	EVLOOP_ERROR,
};

#define EVLOOP_MAX_RINGBUFS 2

/* One ring buffer and its consumer. Each is a libbpf ring_buffer of its own, drained apart. */
struct evloop_ringbuf {
	struct ring_buffer *rb;
	ring_buffer_sample_fn fn;
	void *ctx;
	uint64_t budget; /* events this drain may still take; 0: no limit */
};

struct evloop {
	int epfd, sigfd, pidfd, timerfd;
	/* Another thread's wake-ups (an eventfd, say): wake runs in the loop's thread. */
	int wakefd;
	int (*wake)(void *ctx);
	void *wake_ctx;
	struct evloop_ringbuf rbs[EVLOOP_MAX_RINGBUFS];
	size_t nrbs;
	uint64_t start_ns;
	double duration_s;		  /* 0: until a signal or the target's exit */
	unsigned drains_per_tick, drains; /* timer expiries: the ring buffers drained at each */
	int signal;			  /* the signal that ended the loop */
};

/*
 * Blocks the signals that end a recording (INT, TERM, HUP, QUIT) and ignores SIGPIPE. Called first
 * thing in main: a signal that arrives while heapspy holds the target still or has switched its
 * sampling on then waits for the event loop, which ends the recording the normal way and undoes
 * everything; none can end heapspy between a change to the target and its undo.
 */
int evloop_block_signals(void);
/*
 * Reads those signals through a signalfd (unless signals is false: where several loops run, one
 * per thread, only the main thread may take them) and watches the exit of the process behind
 * pidfd (the loop keeps a copy): the very process heapspy first looked at, whoever has its pid
 * since.
 */
int evloop_init(struct evloop *l, int pidfd, double duration_s, unsigned tick_ms, bool signals);
/*
 * Watches fd (readable when another thread wants the loop): wake(ctx) runs in the loop's thread,
 * and the loop ends (EVLOOP_STOPPED) when it returns nonzero. The caller owns fd.
 */
int evloop_add_wake(struct evloop *l, int fd, int (*wake)(void *ctx), void *ctx);
/*
 * Drains the ring buffers every drain_ms (a divisor of the tick) instead of every tick, the tick's
 * callback unchanged: for consumers that must read the target soon after an event. 0 or -errno.
 */
int evloop_drain_every(struct evloop *l, unsigned tick_ms, unsigned drain_ms);
int evloop_add_ringbuf(struct evloop *l, int map_fd, ring_buffer_sample_fn fn, void *ctx);
/* Runs until one of enum evloop_end; on_tick gets the seconds since evloop_init. */
enum evloop_end evloop_run(struct evloop *l, void (*on_tick)(void *ctx, double elapsed), void *ctx);
/*
 * Consumes whatever the ring buffers still hold, without a budget: call it once nothing produces
 * any more (the probes detached), or it may never end under load.
 */
void evloop_drain(struct evloop *l);
/* Consumes what the ring buffers hold, up to the budget of one turn of the loop each. */
void evloop_catch_up(struct evloop *l);
void evloop_close(struct evloop *l);
uint64_t evloop_now_ns(void);
const char *evloop_end_str(enum evloop_end e, int signal);

#endif

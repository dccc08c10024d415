/*
 * servetarget: one process `heapspy serve` watches. A recording (recording.h) whose event loop runs
 * in a thread of its own; other threads ask it for answers (a heap profile, the GC cycles) and the
 * loop's thread builds them between events, so the recording's state has one thread only. The
 * target's exit ends this recording alone.
 */
#ifndef HEAPSPY_SERVETARGET_H
#define HEAPSPY_SERVETARGET_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "heapprof.h"
#include "promtext.h"
#include "recording.h"

/* GC cycles (and other stops, heap growths) a target keeps for /debug/gc: a day at 1 a minute. */
#define SERVE_GC_RECORDS 2048
/*
 * Sites (stack, size, label set) kept per process: tens of megabytes at most, where a real
 * service has hundreds; a program whose label values never repeat would otherwise grow heapspy
 * for as long as it runs. Samples of new sites past it are counted in /metrics.
 */
#define SERVE_MAX_SITES 100000

enum serve_ask {
	SERVE_ASK_PROFILE, /* the gzipped heap profile, less base's alloc values if base is set */
	SERVE_ASK_BASE,	   /* fills base: each site's allocations so far; -EAGAIN before a GC */
	SERVE_ASK_GC,	   /* heapspy gc's JSON of the cycles so far */
	SERVE_ASK_LEAKS,   /* heapspy leaks' JSON of the candidates as of now */
	SERVE_ASK_METRICS, /* fills metrics (its exe and go_version stay the target's) */
	SERVE_ASK_PUSH,	   /* the profile since the last push (alloc values), and its span */
};

struct serve_req {
	enum serve_ask ask;
	const char *default_type; /* the profile's default sample type, or NULL */
	struct heapprof_base *base;
	struct prom_target *metrics;
	uint8_t *body; /* the answer, malloc'd: the asker frees it */
	size_t len;
	int64_t from, until; /* SERVE_ASK_PUSH: what the profile covers, seconds since the epoch */
	int rc;		     /* 0, -ESRCH when the target is gone, or another -errno */
	bool done;
	struct serve_req *next;
};

struct serve_target {
	struct session_opts so;
	struct recording r;
	pthread_t thread;
	bool thread_started;
	int wakefd; /* an eventfd the loop watches: requests are waiting, or stop */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct serve_req *queue; /* under mu */
	bool stop;		 /* under mu: the loop ends at its next wake-up */
	bool ended;		 /* under mu: the loop has ended; nothing is answered any more */
	/* What /metrics shows, kept by the loop's thread as cycles end. */
	struct prom_target gc;
	/* What was allocated as of the last push (nsites 0 before the first: all of it). */
	struct heapprof_base push_base;
	/* Called from the target's thread once its loop has ended (to wake whoever joins it). */
	void (*on_end)(void *ctx);
	void *on_end_ctx;
};

/*
 * Attaches to pid (in the calling thread: the errors come back in err, one line) with the options
 * of o, then runs the loop in a thread of its own. st is the caller's, zeroed or not.
 */
int serve_target_start(struct serve_target *st, pid_t pid, const struct session_opts *o,
		       void (*on_end)(void *ctx), void *ctx, char *err, size_t errlen);
/* Asks the target's thread and waits for the answer: q->rc. */
int serve_target_ask(struct serve_target *st, struct serve_req *q);
/* Whether its loop has ended (the target exited). */
bool serve_target_ended(struct serve_target *st);
/* Ends the recording (if it runs), waits for the thread, detaches and frees everything. */
void serve_target_close(struct serve_target *st);

#endif

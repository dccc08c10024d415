/*
 * push: `heapspy serve --push URL`: profiles sent to a Grafana Pyroscope server's ingest API
 * (POST /ingest?name=...&from=...&until=...&format=pprof, the profile as the multipart field
 * "profile") by libcurl, from a thread per server through a bounded queue. A server down or slow
 * is retried with backoff and never holds up the recordings; what does not fit the queue is
 * dropped, oldest first, and counted.
 */
#ifndef HEAPSPY_PUSH_H
#define HEAPSPY_PUSH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Profiles waiting per server: at the default 15 s interval, some minutes of one target's. */
#define PUSH_QUEUE 64
/* Backoff after a failure: 1 s, doubled each time, at most this. */
#define PUSH_MAX_BACKOFF_S 60

struct push_item;

struct pusher {
	const char *url; /* the server's base URL: /ingest is added */
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct push_item *head, *tail; /* under mu */
	size_t n;
	bool quit;
	uint64_t sent, failed,
	    dropped; /* under mu: pushes answered 2xx, attempts that failed, lost */
};

/* Starts p's thread (curl_global_init must have run). 0, or -errno with err set. */
int pusher_start(struct pusher *p, const char *url, char *err, size_t errlen);
/*
 * Queues a copy of the gzipped profile body for Pyroscope's application name (name{labels})
 * covering [from, until] (seconds since the epoch). Never blocks on the network.
 */
void pusher_enqueue(struct pusher *p, const char *name, int64_t from, int64_t until,
		    const uint8_t *body, size_t len);
/* sent, failed and dropped so far (a consistent snapshot). */
void pusher_counts(struct pusher *p, uint64_t *sent, uint64_t *failed, uint64_t *dropped);
/* Ends the thread at once; what is still queued is dropped (and counted). */
void pusher_stop(struct pusher *p);

#endif

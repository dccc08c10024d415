/*
 * serveroute: what a `heapspy serve` request asks for, read from its path and query alone (no I/O):
 * the endpoint, the process (from /pid/N/..., or none for the root forms) and net/http/pprof's
 * `seconds` parameter.
 */
#ifndef HEAPSPY_SERVEROUTE_H
#define HEAPSPY_SERVEROUTE_H

#include <sys/types.h>

enum serve_endpoint {
	SERVE_UNKNOWN,
	SERVE_INDEX,   /* "/": what is served */
	SERVE_HEAP,    /* debug/pprof/heap */
	SERVE_ALLOCS,  /* debug/pprof/allocs: the same profile, alloc_space by default */
	SERVE_GC,      /* debug/gc: heapspy gc's JSON of the cycles so far */
	SERVE_LEAKS,   /* debug/leaks: heapspy leaks' JSON of the candidates as of now */
	SERVE_METRICS, /* metrics: for Prometheus; at the root, every target's */
	SERVE_TARGETS, /* /targets: Prometheus' HTTP service discovery (root only) */
};

struct serve_route {
	enum serve_endpoint ep;
	pid_t pid; /* 0: the root form, for the one target served (every one for metrics) */
};

/* Reads a request's path (without its query); SERVE_UNKNOWN for any other path. */
struct serve_route serve_route(const char *path);
/*
 * net/http/pprof's `seconds`: a positive decimal integer, at most max. 0 with *secs set, or -1
 * (the request gets 400 and net/http/pprof's one line).
 */
int serve_seconds(const char *arg, long max, long *secs);

#endif

/*
 * promtext: what `heapspy serve` shows Prometheus at /metrics, in its text exposition format
 * (version 0.0.4): per target (labels pid, exe, go_version) the GC's cycles, stop-the-world
 * pauses as a histogram, heap live and goal, bytes taken from the OS, bytes and objects
 * allocated, heapspy's own event counters; and heapspy's process itself. No I/O but the FILE.
 */
#ifndef HEAPSPY_PROMTEXT_H
#define HEAPSPY_PROMTEXT_H

#include <stdint.h>
#include <stdio.h>

#define PROM_PAUSE_BUCKETS 12

/* Upper bounds of the pause histogram's buckets, in seconds (+Inf beyond the last). */
extern const double promtext_pause_bounds[PROM_PAUSE_BUCKETS];

/* Stop-the-world pauses, as a Prometheus histogram counts them. */
struct prom_pauses {
	uint64_t buckets[PROM_PAUSE_BUCKETS]; /* not cumulative: each pause in its own bucket */
	uint64_t count;
	double sum_s;
};

void promtext_add_pause(struct prom_pauses *p, int64_t ns);

struct prom_target {
	int pid;
	const char *exe, *go_version;
	uint64_t gc_cycles, gc_forced; /* seen since heapspy attached */
	int64_t gc_last_cycle;	       /* the runtime's number, gctrace's "gc N"; < 0 unknown */
	struct prom_pauses pauses;
	int64_t heap_live, heap_goal; /* after the last cycle, bytes; < 0 unknown */
	uint64_t grown_bytes;	      /* taken from the OS since attach */
	/* Unsampled, as the heap profile publishes them (at the last GC) */
	int64_t alloc_bytes, alloc_objects, inuse_bytes, inuse_objects;
	int64_t sample_rate;
	uint64_t samples, frees, lost, gc_probe_hits, gc_lost;
	uint64_t capped;	     /* samples of sites past the cap on sites, left out */
	uint64_t gc_records_dropped; /* cycles and stops no longer kept for /debug/gc */
};

struct prom_self {
	double rss_bytes, cpu_seconds, start_time_seconds;
	uint64_t push_sent, push_failed, push_dropped; /* --push, all servers */
};

/* Every family once, each with a sample per target. */
void promtext_write(FILE *f, const struct prom_target *t, size_t n, const struct prom_self *self);

#endif

#include "promtext.h"

#include <inttypes.h>
#include <stdbool.h>

const double promtext_pause_bounds[PROM_PAUSE_BUCKETS] = {
    10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3,
};

void promtext_add_pause(struct prom_pauses *p, int64_t ns)
{
	double s = (double)ns / 1e9;
	size_t i = 0;

	if (ns < 0)
		return;
	while (i < PROM_PAUSE_BUCKETS && s > promtext_pause_bounds[i])
		i++;
	if (i < PROM_PAUSE_BUCKETS)
		p->buckets[i]++;
	p->count++;
	p->sum_s += s;
}

/* A label value: backslash, double quote and newline escaped, as the format wants. */
static void label_value(FILE *f, const char *v)
{
	for (; v && *v; v++) {
		if (*v == '\\' || *v == '"')
			fprintf(f, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

static void labels(FILE *f, const struct prom_target *t)
{
	fprintf(f, "{pid=\"%d\",exe=\"", t->pid);
	label_value(f, t->exe);
	fputs("\",go_version=\"", f);
	label_value(f, t->go_version);
	fputc('"', f);
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

enum field {
	F_CYCLES,
	F_FORCED,
	F_LAST,
	F_LIVE,
	F_GOAL,
	F_GROWN,
	F_ALLOC_BYTES,
	F_ALLOC_OBJECTS,
	F_INUSE_BYTES,
	F_INUSE_OBJECTS,
	F_RATE,
	F_SAMPLES,
	F_FREES,
	F_LOST,
	F_CAPPED,
	F_GC_HITS,
	F_GC_LOST,
	F_GC_DROPPED,
};

static const struct {
	enum field field;
	const char *name, *type, *help;
} families[] = {
    {F_CYCLES, "heapspy_go_gc_cycles_total", "counter",
     "GC cycles completed since heapspy attached"},
    {F_FORCED, "heapspy_go_gc_forced_cycles_total", "counter",
     "GC cycles forced by runtime.GC or debug.FreeOSMemory since heapspy attached"},
    {F_LAST, "heapspy_go_gc_last_cycle", "gauge",
     "The runtime's number of the last GC cycle completed (gctrace's gc N)"},
    {F_LIVE, "heapspy_go_heap_live_bytes", "gauge", "Heap marked live by the last GC cycle"},
    {F_GOAL, "heapspy_go_heap_goal_bytes", "gauge", "Heap goal of the last GC cycle"},
    {F_GROWN, "heapspy_go_heap_grown_bytes_total", "counter",
     "Bytes the heap took from the OS since heapspy attached"},
    {F_ALLOC_BYTES, "heapspy_go_alloc_bytes_total", "counter",
     "Bytes allocated, unsampled from the heap profile (published at each GC)"},
    {F_ALLOC_OBJECTS, "heapspy_go_alloc_objects_total", "counter",
     "Objects allocated, unsampled from the heap profile (published at each GC)"},
    {F_INUSE_BYTES, "heapspy_go_heap_inuse_bytes", "gauge",
     "Bytes in use as of the last GC, unsampled from the heap profile"},
    {F_INUSE_OBJECTS, "heapspy_go_heap_inuse_objects", "gauge",
     "Objects in use as of the last GC, unsampled from the heap profile"},
    {F_RATE, "heapspy_go_mem_profile_rate_bytes", "gauge",
     "runtime.MemProfileRate: one allocation sampled per this many bytes"},
    {F_SAMPLES, "heapspy_heap_samples_total", "counter",
     "Sampled allocations heapspy's probes reported"},
    {F_FREES, "heapspy_heap_frees_total", "counter",
     "Frees of sampled objects heapspy's probes reported"},
    {F_LOST, "heapspy_heap_events_lost_total", "counter",
     "Heap events lost because the ring buffer was full"},
    {F_CAPPED, "heapspy_heap_samples_capped_total", "counter",
     "Samples left out: their site was new past the cap on sites per process"},
    {F_GC_HITS, "heapspy_gc_probe_hits_total", "counter", "Hits of heapspy's GC probes"},
    {F_GC_LOST, "heapspy_gc_events_lost_total", "counter",
     "GC events lost because the ring buffer was full"},
    {F_GC_DROPPED, "heapspy_gc_records_dropped_total", "counter",
     "Old GC cycles, stops and heap growths no longer kept for /debug/gc (counted here still)"},
};

/* The value of one field; false where it is unknown (no sample is written). */
static bool value(const struct prom_target *t, enum field fl, double *v)
{
	switch (fl) {
	case F_CYCLES:
		*v = (double)t->gc_cycles;
		return true;
	case F_FORCED:
		*v = (double)t->gc_forced;
		return true;
	case F_LAST:
		*v = (double)t->gc_last_cycle;
		return t->gc_last_cycle >= 0;
	case F_LIVE:
		*v = (double)t->heap_live;
		return t->heap_live >= 0;
	case F_GOAL:
		*v = (double)t->heap_goal;
		return t->heap_goal >= 0;
	case F_GROWN:
		*v = (double)t->grown_bytes;
		return true;
	case F_ALLOC_BYTES:
		*v = (double)t->alloc_bytes;
		return true;
	case F_ALLOC_OBJECTS:
		*v = (double)t->alloc_objects;
		return true;
	case F_INUSE_BYTES:
		*v = (double)t->inuse_bytes;
		return true;
	case F_INUSE_OBJECTS:
		*v = (double)t->inuse_objects;
		return true;
	case F_RATE:
		*v = (double)t->sample_rate;
		return true;
	case F_SAMPLES:
		*v = (double)t->samples;
		return true;
	case F_FREES:
		*v = (double)t->frees;
		return true;
	case F_LOST:
		*v = (double)t->lost;
		return true;
	case F_CAPPED:
		*v = (double)t->capped;
		return true;
	case F_GC_HITS:
		*v = (double)t->gc_probe_hits;
		return true;
	case F_GC_LOST:
		*v = (double)t->gc_lost;
		return true;
	case F_GC_DROPPED:
		*v = (double)t->gc_records_dropped;
		return true;
	}
	return false;
}

static void pauses(FILE *f, const struct prom_target *t, size_t n)
{
	const char *name = "heapspy_go_gc_pause_seconds";

	family(f, name, "histogram",
	       "Stop-the-world pauses of the GC (two per cycle), heapspy's own probe time removed");
	for (size_t i = 0; i < n; i++) {
		const struct prom_pauses *p = &t[i].pauses;
		uint64_t cum = 0;

		for (size_t b = 0; b < PROM_PAUSE_BUCKETS; b++) {
			cum += p->buckets[b];
			fprintf(f, "%s_bucket", name);
			labels(f, &t[i]);
			fprintf(f, ",le=\"%g\"} %" PRIu64 "\n", promtext_pause_bounds[b], cum);
		}
		fprintf(f, "%s_bucket", name);
		labels(f, &t[i]);
		fprintf(f, ",le=\"+Inf\"} %" PRIu64 "\n", p->count);
		fprintf(f, "%s_sum", name);
		labels(f, &t[i]);
		fprintf(f, "} %.9g\n", p->sum_s);
		fprintf(f, "%s_count", name);
		labels(f, &t[i]);
		fprintf(f, "} %" PRIu64 "\n", p->count);
	}
}

void promtext_write(FILE *f, const struct prom_target *t, size_t n, const struct prom_self *self)
{
	family(f, "heapspy_targets", "gauge", "Go processes heapspy serves");
	fprintf(f, "heapspy_targets %zu\n", n);
	for (size_t k = 0; k < sizeof(families) / sizeof(families[0]); k++) {
		family(f, families[k].name, families[k].type, families[k].help);
		for (size_t i = 0; i < n; i++) {
			double v;

			if (!value(&t[i], families[k].field, &v))
				continue;
			fputs(families[k].name, f);
			labels(f, &t[i]);
			fprintf(f, "} %.17g\n", v);
		}
	}
	pauses(f, t, n);
	family(f, "heapspy_push_sent_total", "counter",
	       "Profiles a Pyroscope server took (--push)");
	fprintf(f, "heapspy_push_sent_total %" PRIu64 "\n", self->push_sent);
	family(f, "heapspy_push_failed_total", "counter",
	       "Pushes that failed (each is tried again with backoff unless refused for good)");
	fprintf(f, "heapspy_push_failed_total %" PRIu64 "\n", self->push_failed);
	family(
	    f, "heapspy_push_dropped_total", "counter",
	    "Profiles never sent: the queue was full, heapspy stopped, or the server refused them");
	fprintf(f, "heapspy_push_dropped_total %" PRIu64 "\n", self->push_dropped);
	/* heapspy's own process, under the names every Prometheus client library uses. */
	family(f, "process_resident_memory_bytes", "gauge", "heapspy's resident memory in bytes");
	fprintf(f, "process_resident_memory_bytes %.17g\n", self->rss_bytes);
	family(f, "process_cpu_seconds_total", "counter",
	       "heapspy's user and system CPU time in seconds");
	fprintf(f, "process_cpu_seconds_total %.9g\n", self->cpu_seconds);
	family(f, "process_start_time_seconds", "gauge",
	       "When heapspy started, in seconds since the epoch");
	fprintf(f, "process_start_time_seconds %.17g\n", self->start_time_seconds);
}

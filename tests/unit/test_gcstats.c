/* gcstats: nearest-rank percentiles, pause totals and shares, heap growth with unknowns. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "gcstats.h"

static void test_percentiles(void)
{
	int64_t v[100];

	for (int i = 0; i < 100; i++)
		v[i] = i + 1;
	CHECK(gcstats_percentile(v, 100, 50) == 50);
	CHECK(gcstats_percentile(v, 100, 90) == 90);
	CHECK(gcstats_percentile(v, 100, 99) == 99);
	CHECK(gcstats_percentile(v, 100, 100) == 100);
	CHECK(gcstats_percentile(v, 1, 99) == 1);
	CHECK(gcstats_percentile(v, 3, 50) == 2);
	CHECK(gcstats_percentile(v, 0, 50) == GC_UNKNOWN);
}

static struct gc_cycle cycle(int64_t n, int forced, int64_t a, int64_t c, int64_t live,
			     int64_t goal)
{
	struct gc_cycle x = {
	    .cycle = n,
	    .start_ns = n * 1000000,
	    .forced = forced,
	    .sweep_term_ns = a,
	    .mark_ns = 500000,
	    .mark_term_ns = c,
	    .probe_ns = 1000,
	    .heap0 = live * 2,
	    .heap1 = live * 2,
	    .heap2 = live,
	    .heap_goal = goal,
	};

	return x;
}

static void test_summary(void)
{
	struct gc_cycle cycles[4] = {
	    cycle(1, 0, 100000, 10000, GC_UNKNOWN, GC_UNKNOWN),
	    cycle(2, 1, 200000, 20000, 1 << 20, 4 << 20),
	    cycle(3, 0, GC_UNKNOWN, GC_UNKNOWN, 2 << 20, 4 << 20),
	    cycle(4, 0, 300000, 30000, 3 << 20, 8 << 20),
	};
	struct gc_stw stws[2] = {{.start_ns = 1, .duration_ns = 5000},
				 {.start_ns = 2, .duration_ns = 7000}};
	struct gcdecode d;
	struct gc_summary s;

	memset(&d, 0, sizeof(d));
	d.cycles = cycles;
	d.ncycles = 4;
	d.stws = stws;
	d.nstws = 2;
	d.grown_bytes = 8 << 20;
	CHECK(gcstats_summarize(&d, 2.0, &s) == 0);
	CHECK(s.cycles == 4 && s.forced == 1 && s.cycles_per_sec == 2.0);
	/* Two pauses for each of the three timed cycles. */
	CHECK(s.pauses == 6);
	CHECK(s.pause_p50 == 30000 && s.pause_max == 300000 && s.pause_p99 == 300000);
	CHECK(s.stw_ns == 660000);
	CHECK(s.stw_share > 0.000329 && s.stw_share < 0.000331);
	/* The other stops stay out of the GC's figures. */
	CHECK(s.other_stws == 2 && s.other_stw_ns == 12000);
	CHECK(s.live_first == 1 << 20 && s.live_last == 3 << 20);
	CHECK(s.goal_first == 4 << 20 && s.goal_last == 8 << 20);
	CHECK(s.grown_bytes == 8 << 20 && s.probe_ns == 4000);
}

static void test_empty(void)
{
	struct gcdecode d;
	struct gc_summary s;

	memset(&d, 0, sizeof(d));
	CHECK(gcstats_summarize(&d, 0, &s) == 0);
	CHECK(s.cycles == 0 && s.pauses == 0 && s.pause_p50 == GC_UNKNOWN);
	CHECK(s.cycles_per_sec == 0 && s.stw_share == 0);
	CHECK(s.live_first == GC_UNKNOWN && s.goal_last == GC_UNKNOWN);
}

int main(void)
{
	int failures = 0;

	RUN(test_percentiles);
	RUN(test_summary);
	RUN(test_empty);
	return failures;
}

/* Unit tests of the aggregation: the runtime's cycle semantics, repeats, baseline, unsampling. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "heapagg.h"
#include "u64map.h"

static void test_u64map_matches_reference(void)
{
	enum { N = 20000 };
	static uint64_t ref[N];
	static unsigned char present[N];
	struct u64map m = {0};
	unsigned seed = 1;

	/* Keys share low bits, as addresses do; deletions exercise the backward shift. */
	for (int round = 0; round < 200000; round++) {
		int k;
		uint64_t key, *v;

		seed = seed * 1103515245u + 12345u;
		k = (int)((seed >> 8) % N);
		key = 0xc000000000ull + (uint64_t)k * 4096;
		if ((seed >> 4) % 3 == 0) {
			CHECK(u64map_del(&m, key) == (bool)present[k]);
			present[k] = 0;
		} else {
			CHECK(u64map_put(&m, key, (uint64_t)round) == 0);
			ref[k] = (uint64_t)round;
			present[k] = 1;
		}
		v = u64map_get(&m, key);
		CHECK((v != NULL) == (bool)present[k]);
	}
	size_t live = 0;
	for (int k = 0; k < N; k++) {
		uint64_t *v = u64map_get(&m, 0xc000000000ull + (uint64_t)k * 4096);

		live += present[k];
		CHECK((v != NULL) == (bool)present[k]);
		if (v && present[k])
			CHECK(*v == ref[k]);
	}
	CHECK(m.len == live);
	u64map_free(&m);
}

static struct hs_alloc_event alloc_ev(uint32_t tid, uint64_t addr, uint64_t size, uint32_t cycle,
				      uint64_t pc)
{
	struct hs_alloc_event e;

	memset(&e, 0, sizeof(e));
	e.hdr.type = HS_EV_ALLOC;
	e.hdr.tid = tid;
	e.hdr.cycle = cycle;
	e.addr = addr;
	e.size = size;
	e.nframes = 2;
	e.pcs[0] = pc;
	e.pcs[1] = 0x401000;
	return e;
}

static struct hs_free_event free_ev(uint32_t tid, uint64_t addr, uint64_t size, uint32_t cycle,
				    uint64_t bucket)
{
	struct hs_free_event e;

	memset(&e, 0, sizeof(e));
	e.hdr.type = HS_EV_FREE;
	e.hdr.tid = tid;
	e.hdr.cycle = cycle;
	e.addr = addr;
	e.size = size;
	e.bucket = bucket;
	return e;
}

static struct heap_totals totals_at(struct heapagg *a, size_t site, int64_t cycle)
{
	struct heap_totals t;

	heapagg_totals(a, &a->sites[site], cycle, &t);
	return t;
}

/* runtime/mprof.go: allocations are published two cycles later, sweep frees one cycle later. */
static void test_publication_delay(void)
{
	struct heapagg a;
	struct hs_alloc_event al = alloc_ev(1, 0x1000, 64, 5, 0x402000);
	struct hs_free_event fr = free_ev(2, 0x1000, 64, 7, 0);

	heapagg_init(&a);
	CHECK(heapagg_alloc(&a, &al) == 0);
	CHECK(a.nsites == 1);
	CHECK(totals_at(&a, 0, 5).allocs == 0);
	CHECK(totals_at(&a, 0, 6).allocs == 0);
	CHECK(totals_at(&a, 0, 7).allocs == 1);
	CHECK(totals_at(&a, 0, 7).inuse_bytes == 64);
	CHECK(heapagg_free_event(&a, &fr) == 0);
	CHECK(totals_at(&a, 0, 7).inuse_objects == 1);
	CHECK(totals_at(&a, 0, 8).inuse_objects == 0);
	CHECK(totals_at(&a, 0, 8).allocs == 1);
	CHECK(totals_at(&a, 0, 8).alloc_bytes == 64);
	/* Slots older than four cycles fold into the settled counts without changing totals. */
	for (uint32_t c = 8; c < 20; c++) {
		struct hs_alloc_event e = alloc_ev(1, 0x2000 + c * 64, 64, c, 0x402000);

		CHECK(heapagg_alloc(&a, &e) == 0);
	}
	CHECK(totals_at(&a, 0, 21).allocs == 13);
	CHECK(totals_at(&a, 0, 21).inuse_objects == 12);
	CHECK(a.last_cycle == 19);
	heapagg_free(&a);
}

/*
 * Five samples: 64 and 128 bytes at one stack, 64 at another, 64 at the first again (the first
 * sample's site), 256 at the first (its stack, a new size).
 */
static void add_five(struct heapagg *a)
{
	const struct hs_alloc_event e[] = {
	    alloc_ev(1, 0x1000, 64, 1, 0x402000),  alloc_ev(1, 0x2000, 128, 1, 0x402000),
	    alloc_ev(1, 0x3000, 64, 1, 0x403000),  alloc_ev(1, 0x4000, 64, 1, 0x402000),
	    alloc_ev(1, 0x5000, 256, 1, 0x402000),
	};

	for (size_t i = 0; i < sizeof(e) / sizeof(e[0]); i++)
		CHECK(heapagg_alloc(a, &e[i]) == 0);
}

static void test_sites_are_stack_and_size(void)
{
	struct heapagg a;

	heapagg_init(&a);
	add_five(&a);
	CHECK(a.nsites == 4);
	CHECK(a.nstacks == 2);
	CHECK(totals_at(&a, 0, 3).allocs == 2);
	heapagg_free(&a);
}

/* Past max_sites a new site's samples are counted and left out; known sites go on counting. */
static void test_sites_capped(void)
{
	struct heapagg a;

	heapagg_init(&a);
	a.max_sites = 2;
	add_five(&a); /* the third (a new stack) and the fifth (a new size) are past the cap */
	CHECK(a.nsites == 2);
	CHECK(a.nstacks == 1);
	CHECK(a.capped_samples == 2);
	CHECK(a.samples == 3);
	CHECK(totals_at(&a, 0, 3).allocs == 2);
	heapagg_free(&a);
}

/* A uprobe handler re-run after a signal delivers the same call twice on one thread. */
static void test_repeated_probe_hits_dropped(void)
{
	struct heapagg a;
	struct hs_alloc_event al = alloc_ev(7, 0x1000, 64, 3, 0x402000);
	struct hs_free_event fr = free_ev(9, 0x1000, 64, 4, 0);
	struct hs_alloc_event again = alloc_ev(7, 0x1000, 64, 5, 0x402000);

	heapagg_init(&a);
	heapagg_alloc(&a, &al);
	heapagg_alloc(&a, &al);
	CHECK(a.samples == 1 && a.repeated == 1);
	heapagg_free_event(&a, &fr);
	heapagg_free_event(&a, &fr);
	CHECK(a.frees == 1 && a.repeated == 2);
	CHECK(a.unmatched_frees == 0);
	/* The same thread allocating the freed address again is a new object, not a repeat. */
	heapagg_alloc(&a, &again);
	CHECK(a.samples == 2 && a.repeated == 2);
	CHECK(totals_at(&a, 0, 10).allocs == 2);
	CHECK(totals_at(&a, 0, 10).inuse_objects == 1);
	heapagg_free(&a);
}

/* The runtime's record at cycle now: active is published; future[] by cycle. */
static void test_baseline_record(void)
{
	struct heapagg a;
	struct go_mem_record r;
	uint64_t pcs[2] = {0x402000, 0x401000};
	int64_t now = 10;
	struct hs_free_event fr = free_ev(3, 0xdead000, 1024, 11, 0xb0c4e7);

	memset(&r, 0, sizeof(r));
	r.active = (struct heap_counts){
	    .allocs = 100, .frees = 40, .alloc_bytes = 102400, .free_bytes = 40960};
	/* Allocations of cycle 10 sit in future[(10+2)%3 = 0], of cycle 9 in future[2]. */
	r.future[0].allocs = 5;
	r.future[0].alloc_bytes = 5120;
	r.future[2].allocs = 3;
	r.future[2].alloc_bytes = 3072;
	/* Sweep frees of cycle 10 sit in future[(10+1)%3 = 2]. */
	r.future[2].frees = 2;
	r.future[2].free_bytes = 2048;

	heapagg_init(&a);
	CHECK(heapagg_baseline(&a, 0xb0c4e7, pcs, 2, 1024, &r, now) == 0);
	CHECK(totals_at(&a, 0, 10).allocs == 100);
	CHECK(totals_at(&a, 0, 10).inuse_objects == 60);
	CHECK(totals_at(&a, 0, 11).allocs == 103);
	CHECK(totals_at(&a, 0, 11).inuse_objects == 61);
	CHECK(totals_at(&a, 0, 12).allocs == 108);
	CHECK(totals_at(&a, 0, 12).inuse_objects == 66);
	/* A pre-attach object's free is found through its bucket. */
	heapagg_free_event(&a, &fr);
	CHECK(a.unmatched_frees == 0);
	CHECK(totals_at(&a, 0, 12).inuse_objects == 65);
	heapagg_free(&a);
}

static void test_unknown_cycle_counts_everything(void)
{
	struct heapagg a;
	struct hs_alloc_event al = alloc_ev(1, 0x1000, 64, ~0u, 0x402000);

	heapagg_init(&a);
	heapagg_alloc(&a, &al);
	CHECK(totals_at(&a, 0, HEAPAGG_UNKNOWN_CYCLE).inuse_bytes == 64);
	CHECK(a.last_cycle == HEAPAGG_UNKNOWN_CYCLE);
	heapagg_free(&a);
}

static void count_live(void *ctx, const struct heap_object *o)
{
	((size_t *)ctx)[o->site]++;
}

/*
 * Records as the ring buffer delivers them; an address allocated again without a free between
 * (its free was lost) is one live object, of the new site, and its free is that site's. An
 * allocation record carries its frames only, and one shorter than they are is ignored.
 */
static void test_events_and_reallocated_address(void)
{
	struct heapagg a;
	struct hs_alloc_event x = alloc_ev(1, 0x1000, 64, 1, 0x402000);
	struct hs_alloc_event y = alloc_ev(2, 0x1000, 64, 1, 0x403000);
	struct hs_free_event fr = free_ev(3, 0x1000, 64, 1, 0);
	size_t live[2] = {0, 0};

	heapagg_init(&a);
	CHECK(heapagg_event(&a, &x, sizeof(x.hdr)) == 0 && a.samples == 0);
	fr.hdr.type = 99;
	CHECK(heapagg_event(&a, &fr, sizeof(fr)) == 0 && a.frees == 0);
	fr.hdr.type = HS_EV_FREE;
	CHECK(heapagg_event(&a, &x, HS_ALLOC_EVENT_BYTES(x.nframes) - 1) == 0 && a.samples == 0);
	CHECK(heapagg_event(&a, &x, HS_ALLOC_EVENT_BYTES(x.nframes)) == 0);
	CHECK(heapagg_event(&a, &y, sizeof(y)) == 0);
	CHECK(a.samples == 2 && a.nsites == 2 && a.live.len == 1);
	heapagg_each_live(&a, count_live, live);
	CHECK(live[0] == 0 && live[1] == 1);
	CHECK(heapagg_event(&a, &fr, sizeof(fr)) == 0);
	CHECK(a.frees == 1 && a.unmatched_frees == 0 && a.live.len == 0);
	CHECK(totals_at(&a, 0, 5).inuse_objects == 1);
	CHECK(totals_at(&a, 1, 5).inuse_objects == 0);
	heapagg_free(&a);
}

/*
 * runtime.GC()'s mProf_PostSweep in cycle C publishes future[(C+1)%3]: the allocations of C-1 and
 * the frees of C, without a new cycle. A reader of the runtime's records before it saw none of it.
 */
static void test_post_sweep_publishes_early(void)
{
	struct heapagg a;
	struct hs_alloc_event old = alloc_ev(1, 0x1000, 64, 4, 0x402000);
	struct hs_alloc_event prev = alloc_ev(1, 0x2000, 64, 5, 0x402000);
	struct hs_alloc_event cur = alloc_ev(1, 0x3000, 64, 6, 0x402000);
	struct hs_free_event fr_old = free_ev(2, 0x1000, 64, 6, 0);
	struct hs_event_header ps = {.type = HS_EV_POSTSWEEP, .cycle = 6, .ts = 1000};
	struct heap_totals t;

	heapagg_init(&a);
	heapagg_alloc(&a, &old);
	heapagg_alloc(&a, &prev);
	heapagg_free_event(&a, &fr_old);
	heapagg_alloc(&a, &cur);
	/* Before: at cycle 6 the allocation of 4 is published, not that of 5 nor the free of 6. */
	CHECK(totals_at(&a, 0, 6).allocs == 1 && totals_at(&a, 0, 6).inuse_objects == 1);
	CHECK(heapagg_event(&a, &ps, sizeof(ps)) == 0);
	CHECK(a.post_sweeps == 1 && a.last_cycle == 6);
	/* After: the allocation of 5 and the free of 6 count; the allocation of 6 does not. */
	CHECK(totals_at(&a, 0, 6).allocs == 2);
	CHECK(totals_at(&a, 0, 6).inuse_objects == 1);
	CHECK(totals_at(&a, 0, 6).inuse_bytes == 64);
	/* As the runtime's records read before the PostSweep showed them. */
	heapagg_totals_before(&a, &a.sites[0], 6, 999, &t);
	CHECK(t.allocs == 1 && t.inuse_objects == 1);
	heapagg_totals_before(&a, &a.sites[0], 6, 1001, &t);
	CHECK(t.allocs == 2 && t.inuse_objects == 1);
	/* The next cycle publishes the same plus nothing new; the one after, cycle 6's allocation.
	 */
	CHECK(totals_at(&a, 0, 7).allocs == 2 && totals_at(&a, 0, 7).inuse_objects == 1);
	CHECK(totals_at(&a, 0, 8).allocs == 3 && totals_at(&a, 0, 8).inuse_objects == 2);
	/* A PostSweep in an unknown cycle changes nothing; a repeat keeps the first one's time. */
	ps.cycle = ~0u;
	heapagg_post_sweep(&a, &ps);
	ps.cycle = 6;
	ps.ts = 5000;
	heapagg_post_sweep(&a, &ps);
	CHECK(a.post_sweeps == 2);
	heapagg_totals_before(&a, &a.sites[0], 6, 1001, &t);
	CHECK(t.allocs == 2);
	/* Four cycles on, its slot belongs to cycle 10. */
	ps.cycle = 10;
	heapagg_post_sweep(&a, &ps);
	CHECK(totals_at(&a, 0, 6).allocs == 1);
	heapagg_free(&a);
}

/* The PostSweep also publishes what the runtime's records held before attach. */
static void test_post_sweep_after_baseline(void)
{
	struct heapagg a;
	struct go_mem_record r;
	uint64_t pcs[2] = {0x402000, 0x401000};
	struct hs_event_header ps = {.type = HS_EV_POSTSWEEP, .cycle = 10};

	memset(&r, 0, sizeof(r));
	/* At cycle 10: allocations of cycle 9 in future[(9+2)%3 = 2], frees of 10 in future[2]. */
	r.future[2] =
	    (struct heap_counts){.allocs = 4, .alloc_bytes = 4096, .frees = 1, .free_bytes = 1024};
	heapagg_init(&a);
	CHECK(heapagg_baseline(&a, 0xb0c4e7, pcs, 2, 1024, &r, 10) == 0);
	CHECK(totals_at(&a, 0, 10).allocs == 0);
	heapagg_post_sweep(&a, &ps);
	CHECK(totals_at(&a, 0, 10).allocs == 4 && totals_at(&a, 0, 10).inuse_objects == 3);
	heapagg_free(&a);
}

/* runtime.MemProfile publishes every sample while nothing at all is published. */
static void test_profile_cycle_before_first_gc(void)
{
	struct heapagg a;
	struct hs_alloc_event al = alloc_ev(1, 0x1000, 64, 3, 0x402000);

	heapagg_init(&a);
	CHECK(heapagg_profile_cycle(&a, 3) == HEAPAGG_UNKNOWN_CYCLE);
	heapagg_alloc(&a, &al);
	CHECK(heapagg_profile_cycle(&a, 4) == HEAPAGG_UNKNOWN_CYCLE);
	CHECK(totals_at(&a, 0, HEAPAGG_UNKNOWN_CYCLE).inuse_objects == 1);
	CHECK(heapagg_profile_cycle(&a, 5) == 5);
	CHECK(heapagg_profile_cycle(&a, HEAPAGG_UNKNOWN_CYCLE) == HEAPAGG_UNKNOWN_CYCLE);
	heapagg_free(&a);
}

/*
 * Each sample counts at the rate it was taken at, its free at its allocation's; samples that do
 * not carry a rate (and the runtime's records) count at a->rate. The rate's stretches are kept.
 */
static void test_samples_unsampled_at_their_rate(void)
{
	struct heapagg a;
	struct hs_alloc_event x = alloc_ev(1, 0x1000, 8192, 1, 0x402000);
	struct hs_alloc_event y = alloc_ev(1, 0x3000, 8192, 1, 0x402000);
	struct hs_alloc_event z = alloc_ev(1, 0x5000, 8192, 1, 0x402000);
	struct hs_free_event fx = free_ev(2, 0x1000, 8192, 2, 0);
	double slow = heap_scale(8192, 524288), fast = heap_scale(8192, 4096);
	struct heap_totals t;

	heapagg_init(&a);
	a.rate = 16384;
	x.rate = 524288;
	x.hdr.ts = 100;
	y.rate = 4096;
	y.hdr.ts = 200;
	z.rate = -1;
	z.hdr.ts = 300;
	heapagg_alloc(&a, &x);
	heapagg_alloc(&a, &y);
	heapagg_alloc(&a, &z);
	heapagg_free_event(&a, &fx);
	heapagg_totals(&a, &a.sites[0], 10, &t);
	CHECK(t.allocs == 3 && t.inuse_objects == 2);
	CHECK(fabs(t.est_allocs - (slow + fast + heap_scale(8192, 16384))) < 1e-9);
	/* The free took back what x stood for at 512 KiB, not at the rate of the moment. */
	CHECK(fabs(t.est_inuse - (fast + heap_scale(8192, 16384))) < 1e-9);
	CHECK(a.nperiods == 3 && a.rate_changes == 2);
	CHECK(a.periods[0].rate == 524288 && a.periods[0].ts == 100);
	CHECK(a.periods[1].rate == 4096 && a.periods[1].ts == 200 && a.periods[1].samples == 1);
	CHECK(a.periods[2].rate == 16384);
	CHECK(heapagg_last_rate(&a) == 16384);
	heapagg_free(&a);
}

/* runtime/pprof's scaleHeapSample, and heapprof's int64(count * scale). */
static void test_scale_matches_runtime_pprof(void)
{
	double scale = 1 / (1 - exp(-8192.0 / 16384.0));

	CHECK(heap_scale(8192, 16384) == scale);
	CHECK((int64_t)(8192 * heap_scale(8192, 16384)) == 20819);
	CHECK(heap_scale(64, 1) == 1 && heap_scale(64, 0) == 1);
}

/*
 * Without the free probe, a group of sites (the same stack shown, the probes' and the baseline's)
 * takes the runtime's frees: shared out by what each site published, never more than it
 * allocated, each weighing its site's mean allocation; the rest is returned.
 */
static void test_runtime_frees_shared_out(void)
{
	struct heapagg a;
	uint32_t group[2] = {0, 1};
	struct hs_alloc_event e;

	heapagg_init(&a);
	a.runtime_frees = true;
	a.rate = 4096;
	for (uint32_t i = 0; i < 3; i++) {
		e = alloc_ev(1, 0x1000 + i * 64, 64, 5, 0x402000);
		e.rate = 4096;
		CHECK(heapagg_alloc(&a, &e) == 0);
	}
	e = alloc_ev(2, 0x9000, 64, 5, 0x403000);
	e.rate = 1;
	CHECK(heapagg_alloc(&a, &e) == 0);
	/* Published at cycle 7 only: cycle 8's allocation takes no free of cycle 7's snapshot. */
	e = alloc_ev(2, 0xa000, 64, 8, 0x403000);
	e.rate = 4096;
	CHECK(heapagg_alloc(&a, &e) == 0);
	CHECK(a.nsites == 2 && a.live.len == 0);
	CHECK(heapagg_runtime_frees(&a, group, 2, 5, 7, UINT64_MAX) == 1);
	CHECK(a.frees == 4);
	CHECK(totals_at(&a, 0, 7).inuse_objects == 0);
	CHECK(totals_at(&a, 1, 7).inuse_objects == 0);
	CHECK(totals_at(&a, 1, 10).inuse_objects == 1);
	CHECK(totals_at(&a, 1, 10).inuse_bytes == 64);
	/* Site 1's objects weigh 1 (rate 1), then 64/4096's scale: the older goes first. */
	CHECK(fabs(totals_at(&a, 1, 10).est_inuse - heap_scale(64, 4096)) < 1e-9);
	/* A later snapshot replaces the last: frees are the runtime's totals, not increments. */
	CHECK(heapagg_runtime_frees(&a, group, 2, 2, 10, UINT64_MAX) == 0);
	CHECK(a.frees == 2);
	CHECK(totals_at(&a, 0, 10).inuse_objects == 1);
	CHECK(totals_at(&a, 1, 10).inuse_objects == 2);
	/* Cycle 10 stays as read, however many cycles later the profile is made. */
	for (uint32_t c = 11; c < 20; c++) {
		e = alloc_ev(4, 0x10000 + c * 64, 64, c, 0x402000);
		CHECK(heapagg_alloc(&a, &e) == 0);
	}
	CHECK(totals_at(&a, 0, 10).allocs == 3 && totals_at(&a, 0, 10).inuse_objects == 1);
	CHECK(totals_at(&a, 0, 21).allocs == 12);
	/* The same address in the same cycle on one thread is the probe's repeat, not a sample. */
	e = alloc_ev(3, 0xb000, 64, 9, 0x402000);
	CHECK(heapagg_alloc(&a, &e) == 0);
	CHECK(heapagg_alloc(&a, &e) == 0);
	e.hdr.cycle = 10;
	CHECK(heapagg_alloc(&a, &e) == 0);
	CHECK(a.samples == 16 && a.repeated == 1);
	heapagg_free(&a);
}

int main(void)
{
	int failures = 0;

	RUN(test_u64map_matches_reference);
	RUN(test_publication_delay);
	RUN(test_sites_are_stack_and_size);
	RUN(test_sites_capped);
	RUN(test_repeated_probe_hits_dropped);
	RUN(test_baseline_record);
	RUN(test_unknown_cycle_counts_everything);
	RUN(test_events_and_reallocated_address);
	RUN(test_scale_matches_runtime_pprof);
	RUN(test_post_sweep_publishes_early);
	RUN(test_post_sweep_after_baseline);
	RUN(test_profile_cycle_before_first_gc);
	RUN(test_samples_unsampled_at_their_rate);
	RUN(test_runtime_frees_shared_out);
	return failures;
}

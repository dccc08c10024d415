/*
 * gcdecode: cycles from the runtime's words, the other stops, repeated probe hits, lost and
 * attach-time cycles, heapspy's own probe time, and cycles put together from the probes' timing
 * (stripped binaries), with events built by hand the way bpf/gc.bpf.c fills them.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gcdecode.h"

#define US 1000ull
#define MS 1000000ull

/* Every probe hit costs 10 us, but gcMarkTermination's, stepped out of line, costs 30. */
static void costs(struct gcdecode_config *c)
{
	for (int i = 0; i < HS_GC_EV_END - HS_GC_EV_CYCLE; i++)
		c->hit_ns[i] = 10 * US;
	c->hit_ns[HS_GC_EV_MARK_TERM - HS_GC_EV_CYCLE] = 30 * US;
}

static struct gcdecode_config state_config(void)
{
	struct gcdecode_config c = {.numgc_base = 10, .forced_base = 2};

	costs(&c);

	for (int i = 0; i < GCW_COUNT; i++) {
		c.words_known |= 1u << i;
		c.word_size[i] = 8;
	}
	c.word_size[GCW_NUMGC] = c.word_size[GCW_NUM_FORCED] = 4;
	c.word_size[GCW_USER_FORCED] = 1;
	return c;
}

static struct hs_gc_event event(uint32_t type, uint32_t tid, uint64_t ts)
{
	struct hs_gc_event e;

	memset(&e, 0, sizeof(e));
	e.type = type;
	e.tid = tid;
	e.ts = ts;
	return e;
}

/* A cycle that began at t (ns): 100 us sweep termination, 2 ms marking, 50 us mark termination. */
static struct hs_gc_event cycle_event(uint32_t numgc, uint32_t forced, uint64_t t)
{
	struct hs_gc_event e = event(HS_GC_EV_CYCLE, 7, t + 3 * MS);
	uint64_t vals[GCW_COUNT] = {
	    [GCW_NUMGC] = numgc,
	    [GCW_NUM_FORCED] = forced,
	    [GCW_USER_FORCED] = 0xab00, /* a byte: the bits above it are the next field's */
	    [GCW_T_SWEEP_TERM] = t,
	    [GCW_T_MARK] = t + 100 * US,
	    [GCW_T_MARK_TERM] = t + 2100 * US,
	    [GCW_T_END] = t + 2150 * US,
	    [GCW_HEAP0] = 4 << 20,
	    [GCW_HEAP1] = 5 << 20,
	    [GCW_HEAP2] = 2 << 20,
	    [GCW_HEAP_GOAL] = 6 << 20,
	};

	memcpy(e.vals, vals, sizeof(vals));
	e.read_ok = (1u << GCW_COUNT) - 1;
	return e;
}

static void test_cycle_from_runtime_words(void)
{
	struct gcdecode_config cfg = state_config();
	struct gcdecode d;
	struct hs_gc_event e;

	gcdecode_init(&d, &cfg);
	e = cycle_event(11, 2, 100 * MS);
	CHECK(gcdecode_event(&d, &e) == 0);
	e = cycle_event(12, 3, 200 * MS);
	CHECK(gcdecode_event(&d, &e) == 0);
	CHECK(d.ncycles == 2);
	CHECK(d.cycles[0].cycle == 11 && d.cycles[1].cycle == 12);
	CHECK(d.cycles[0].start_ns == 100 * MS);
	CHECK(d.cycles[0].sweep_term_ns == 100 * US && d.cycles[0].mark_ns == 2 * MS &&
	      d.cycles[0].mark_term_ns == 50 * US);
	CHECK(d.cycles[0].probe_ns == 0);
	/* numforcedgc did not move for 11, moved for 12; userForced's stray byte is ignored. */
	CHECK(d.cycles[0].forced == 0 && d.cycles[1].forced == 1);
	CHECK(d.cycles[0].heap0 == 4 << 20 && d.cycles[0].heap1 == 5 << 20 &&
	      d.cycles[0].heap2 == 2 << 20 && d.cycles[0].heap_goal == 6 << 20);
	CHECK(d.missed == 0 && d.attaching == 0);
	gcdecode_free(&d);
}

static void test_cycle_seen_twice_or_skipped(void)
{
	struct gcdecode_config cfg = state_config();
	struct gcdecode d;
	struct hs_gc_event e;

	gcdecode_init(&d, &cfg);
	/* Two cycles ended while the probes went in: not lost, and no forced count to trust. */
	e = cycle_event(13, 3, 100 * MS);
	CHECK(gcdecode_event(&d, &e) == 0);
	CHECK(d.attaching == 2 && d.missed == 0 && d.ncycles == 1);
	CHECK(d.cycles[0].forced == 0); /* from userForced: 0x00 in its low byte */
	/* The synchronous sweep mode passes the probe again inside the next cycle. */
	e = cycle_event(13, 3, 150 * MS);
	e.tid = 8;
	CHECK(gcdecode_event(&d, &e) == 0);
	CHECK(d.ncycles == 1);
	/* A lost event: cycle 14 never arrives. */
	e = cycle_event(15, 4, 200 * MS);
	CHECK(gcdecode_event(&d, &e) == 0);
	CHECK(d.ncycles == 2 && d.missed == 1 && d.cycles[1].cycle == 15);
	gcdecode_free(&d);
}

static void test_unknown_words(void)
{
	struct gcdecode_config cfg = state_config();
	struct gcdecode d;
	struct hs_gc_event e = cycle_event(11, 2, 100 * MS);

	cfg.words_known &= ~(1u << GCW_HEAP_GOAL);
	e.read_ok &= ~(1u << GCW_HEAP1 | 1u << GCW_T_END);
	gcdecode_init(&d, &cfg);
	CHECK(gcdecode_event(&d, &e) == 0);
	CHECK(d.ncycles == 1);
	CHECK(d.cycles[0].heap_goal == GC_UNKNOWN && d.cycles[0].heap1 == GC_UNKNOWN);
	CHECK(d.cycles[0].start_ns == GC_UNKNOWN && d.cycles[0].mark_term_ns == GC_UNKNOWN);
	CHECK(d.cycles[0].heap2 == 2 << 20);
	gcdecode_free(&d);
}

/* A hit of heapspy's inside a pause is heapspy's time, not the program's. */
static void test_probe_time_removed(void)
{
	struct gcdecode_config cfg = state_config();
	struct gcdecode d;
	struct hs_gc_event e;

	gcdecode_init(&d, &cfg);
	e = event(HS_GC_EV_GROW, 9, 100 * MS + 50 * US); /* inside sweep termination */
	e.args[1] = 1;
	CHECK(gcdecode_event(&d, &e) == 0);
	e = cycle_event(11, 2, 100 * MS);
	CHECK(gcdecode_event(&d, &e) == 0);
	CHECK(d.cycles[0].sweep_term_ns == 90 * US && d.cycles[0].probe_ns == 10 * US);
	CHECK(d.cycles[0].mark_term_ns == 50 * US);
	gcdecode_free(&d);
}

static void test_other_stops_and_repeats(void)
{
	struct gcdecode_config cfg = state_config();
	struct gcdecode d;
	struct hs_gc_event stop = event(HS_GC_EV_OTHER_STOP, 5, 10 * MS);
	struct hs_gc_event resume = event(HS_GC_EV_OTHER_RESUME, 5, 10 * MS + 200 * US);

	memcpy(stop.reason, "read mem stats", 14);
	stop.reason_len = 14;
	gcdecode_init(&d, &cfg);
	CHECK(gcdecode_event(&d, &stop) == 0);
	/* The same hit again (a signal interrupted its single-step): dropped, but it cost. */
	stop.ts += 15 * US;
	CHECK(gcdecode_event(&d, &stop) == 0);
	CHECK(d.repeated == 1);
	CHECK(gcdecode_event(&d, &resume) == 0);
	CHECK(d.nstws == 1);
	CHECK(!strcmp(d.stws[0].reason, "read mem stats"));
	CHECK(d.stws[0].start_ns == 10 * MS);
	/* 200 us between the probes: half of each end hit and the repeat inside are heapspy's. */
	CHECK(d.stws[0].duration_ns == 200 * US - 20 * US);
	/* The same content on another thread, or much later, is a new event. */
	stop.tid = 6;
	CHECK(gcdecode_event(&d, &stop) == 0);
	stop.tid = 5;
	stop.ts += 50 * MS;
	CHECK(gcdecode_event(&d, &stop) == 0);
	CHECK(d.repeated == 1);
	/* A reason the runtime did not leave. */
	stop.reason_len = 0;
	stop.ts += 50 * MS;
	CHECK(gcdecode_event(&d, &stop) == 0);
	resume.ts = stop.ts + 30 * US;
	CHECK(gcdecode_event(&d, &resume) == 0);
	CHECK(d.nstws == 2 && !strcmp(d.stws[1].reason, "unknown"));
	gcdecode_free(&d);
}

static void test_heap_growth(void)
{
	struct gcdecode_config cfg = state_config();
	struct gcdecode d;
	struct hs_gc_event e = event(HS_GC_EV_GROW, 1, MS);

	gcdecode_init(&d, &cfg);
	e.args[1] = 1; /* one page: the heap grows by a whole 4 MiB chunk */
	CHECK(gcdecode_event(&d, &e) == 0);
	e.args[1] = 513;
	e.ts += MS;
	CHECK(gcdecode_event(&d, &e) == 0);
	CHECK(d.ngrows == 2 && d.grows[0].bytes == 4 << 20 && d.grows[1].bytes == 8 << 20);
	/* A burst of large allocations grows the heap again at once: no repeat, a new chunk. */
	e.ts += 20 * US;
	CHECK(gcdecode_event(&d, &e) == 0);
	CHECK(d.ngrows == 3 && d.repeated == 0);
	CHECK(d.grown_bytes == 20 << 20);
	gcdecode_free(&d);
}

static struct gcdecode_config timing_config(bool reason_arg)
{
	struct gcdecode_config c = {
	    .mark_term_probe = true,
	    .stop_reason_arg = reason_arg,
	    .systemstack_lo = 0x1000,
	    .systemstack_hi = 0x1100,
	    .numgc_base = 0,
	    .forced_base = 0,
	};

	costs(&c);
	return c;
}

/* One stop and its resume; reason is the stwReason, or (Go 1.19) -1 for the GC's own. */
static void stw(struct gcdecode *d, int reason, uint64_t at, uint64_t len, bool mark_term)
{
	struct hs_gc_event stop = event(HS_GC_EV_STOP, 3, at), resume;

	if (reason >= 0)
		stop.args[0] = 0xffffff00u | (unsigned)reason; /* only the low byte is the reason */
	else
		stop.caller = 0x1050;
	CHECK(gcdecode_event(d, &stop) == 0);
	if (mark_term) {
		struct hs_gc_event mt = event(HS_GC_EV_MARK_TERM, 3, at + len / 2);

		CHECK(gcdecode_event(d, &mt) == 0);
	}
	resume = event(HS_GC_EV_RESUME, 3, at + len);
	CHECK(gcdecode_event(d, &resume) == 0);
}

static void test_cycles_from_probe_timing(void)
{
	struct gcdecode_config cfg = timing_config(true);
	struct gcdecode d;
	struct hs_gc_event start = event(HS_GC_EV_START, 3, 9 * MS);

	gcdecode_init(&d, &cfg);
	start.args[0] = 2; /* runtime.GC() */
	CHECK(gcdecode_event(&d, &start) == 0);
	stw(&d, GC_STW_SWEEP_TERM, 10 * MS, 100 * US, false);
	/* Mark termination found work and went back to marking: the cycle goes on. */
	stw(&d, GC_STW_MARK_TERM, 12 * MS, 40 * US, false);
	CHECK(d.ncycles == 0);
	stw(&d, 7, 12500 * US, 30 * US, false); /* ReadMemStats, meanwhile */
	stw(&d, GC_STW_MARK_TERM, 13 * MS, 60 * US, true);
	CHECK(d.ncycles == 1 && d.nstws == 1);
	CHECK(!strcmp(d.stws[0].reason, "read mem stats"));
	CHECK(d.cycles[0].cycle == 1 && d.cycles[0].forced == 1);
	CHECK(d.cycles[0].start_ns == 10 * MS);
	CHECK(d.cycles[0].sweep_term_ns == 90 * US);
	CHECK(d.cycles[0].mark_ns == 13 * MS - 10100 * US);
	/* The gcMarkTermination hit inside is heapspy's too. */
	CHECK(d.cycles[0].mark_term_ns == 20 * US);
	CHECK(d.cycles[0].heap2 == GC_UNKNOWN);
	/* A heap-triggered cycle on another thread. */
	start = event(HS_GC_EV_START, 4, 20 * MS);
	CHECK(gcdecode_event(&d, &start) == 0);
	stw(&d, GC_STW_SWEEP_TERM, 21 * MS, 100 * US, false);
	stw(&d, GC_STW_MARK_TERM, 22 * MS, 100 * US, true);
	CHECK(d.ncycles == 2 && d.cycles[1].cycle == 2 && d.cycles[1].forced == 0);
	gcdecode_free(&d);
}

/* Go 1.19 passes no reason: the GC's stops come through systemstack, the phase from the order. */
static void test_go119_stops(void)
{
	struct gcdecode_config cfg = timing_config(false);
	struct gcdecode d;
	struct hs_gc_event stop = event(HS_GC_EV_STOP, 3, 5 * MS), resume;

	cfg.numgc_base = GC_UNKNOWN; /* attached: the runtime's count is unknown */
	gcdecode_init(&d, &cfg);
	/* Attached mid-mark: the first GC stop is a mark termination, the cycle is partial. */
	stw(&d, -1, 1 * MS, 50 * US, true);
	CHECK(d.ncycles == 0);
	memcpy(stop.reason, "GOMAXPROCS", 10);
	stop.reason_len = 10;
	stop.caller = 0x2000;
	CHECK(gcdecode_event(&d, &stop) == 0);
	resume = event(HS_GC_EV_RESUME, 3, 5 * MS + 100 * US);
	CHECK(gcdecode_event(&d, &resume) == 0);
	CHECK(d.nstws == 1 && !strcmp(d.stws[0].reason, "GOMAXPROCS"));
	stw(&d, -1, 10 * MS, 100 * US, false);
	stw(&d, -1, 12 * MS, 100 * US, true);
	CHECK(d.ncycles == 1 && d.cycles[0].cycle == GC_UNKNOWN);
	CHECK(d.cycles[0].sweep_term_ns == 90 * US && d.cycles[0].mark_term_ns == 60 * US);
	CHECK(d.cycles[0].forced == GC_UNKNOWN);
	gcdecode_free(&d);
}

/* A recording of weeks keeps the newest cycles, stops and growths only, and counts the rest. */
static void test_keep_newest(void)
{
	struct gcdecode_config cfg = {0};
	struct gcdecode d;

	gcdecode_init(&d, &cfg);
	d.cycles = calloc(10, sizeof(*d.cycles));
	d.stws = calloc(3, sizeof(*d.stws));
	for (int i = 0; i < 10; i++)
		d.cycles[i].cycle = i + 1;
	d.ncycles = d.cycles_cap = 10;
	d.nstws = d.stws_cap = 3;
	gcdecode_keep(&d, 4);
	CHECK(d.ncycles == 4 && d.cycles[0].cycle == 7 && d.cycles[3].cycle == 10);
	CHECK(d.nstws == 3 && d.ngrows == 0);
	CHECK(d.dropped == 6);
	gcdecode_keep(&d, 4);
	CHECK(d.dropped == 6 && d.ncycles == 4);
	gcdecode_free(&d);
}

int main(void)
{
	int failures = 0;

	RUN(test_cycle_from_runtime_words);
	RUN(test_cycle_seen_twice_or_skipped);
	RUN(test_unknown_words);
	RUN(test_probe_time_removed);
	RUN(test_other_stops_and_repeats);
	RUN(test_heap_growth);
	RUN(test_cycles_from_probe_timing);
	RUN(test_go119_stops);
	RUN(test_keep_newest);
	return failures;
}

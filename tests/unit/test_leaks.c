/*
 * The leak rule on synthetic timelines built from sampled objects (each born at one point, dead
 * at another or never), then the whole path from heapagg events through leaks_observe to the
 * ranked report.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "leaks.h"

#define RATE  (512 * 1024)
#define NEVER INT_MAX
#define MAXP  64

struct obj {
	int born, dies; /* live at points born <= i < dies */
	double size;
};

struct tl {
	int64_t cycle[MAXP];
	double secs[MAXP], bytes[MAXP], var[MAXP], maxobj[MAXP], new_bytes[MAXP], new_var[MAXP];
	struct leak_timeline t;
};

static void weight(double size, double *w, double *var)
{
	double p = 1 - exp(-size / RATE);

	*w = size / p;
	*var = size * size * (1 - p) / (p * p);
}

/* The timeline the rule sees for these sampled objects, one point per second and cycle. */
static const struct leak_timeline *build(struct tl *tl, const struct obj *o, size_t nobj, int n)
{
	memset(tl, 0, sizeof(*tl));
	for (int i = 0; i < n; i++) {
		tl->cycle[i] = 10 + i;
		tl->secs[i] = i;
		for (size_t k = 0; k < nobj; k++) {
			double w, var;

			if (o[k].born > i || o[k].dies <= i)
				continue;
			weight(o[k].size, &w, &var);
			tl->bytes[i] += w;
			tl->var[i] += var;
			tl->maxobj[i] = fmax(tl->maxobj[i], o[k].size);
			if (i == n - 1)
				for (int j = 0; j < o[k].born; j++) {
					tl->new_bytes[j] += w;
					tl->new_var[j] += var;
				}
		}
	}
	tl->t = (struct leak_timeline){(size_t)n, tl->cycle,  tl->secs,	     tl->bytes,
				       tl->var,	  tl->maxobj, tl->new_bytes, tl->new_var};
	return &tl->t;
}

static struct obj objs[8192];
static size_t nobjs;

static void add(int born, int dies, double size)
{
	if (nobjs < sizeof(objs) / sizeof(objs[0]))
		objs[nobjs++] = (struct obj){born, dies, size};
}

static enum leak_kind judge(int n, struct leak_verdict *v)
{
	struct tl tl;

	leaks_judge(build(&tl, objs, nobjs, n), v);
	nobjs = 0;
	return v->kind;
}

/* A deterministic stand-in for randomness: the same numbers on every run. */
static unsigned seed = 12345;
static double uniform(void)
{
	seed = seed * 1103515245u + 12345u;
	return ((seed >> 8) & 0xffffff) / (double)0x1000000;
}

static void test_steady_leak_is_a_candidate(void)
{
	struct leak_verdict v;

	/* 8 samples of 32 KiB objects per cycle, none ever freed: 4 MiB/s at 512 KiB sampling. */
	for (int i = 1; i < 15; i++)
		for (int k = 0; k < 8; k++)
			add(i, NEVER, 32768);
	CHECK(judge(15, &v) == LEAK_GROWING);
	CHECK(v.z > 9 && v.kept > 0.99 && v.recent > 0.8);
	CHECK(v.per_sec > 3.5 * 1048576 && v.per_sec < 4.5 * 1048576);
	CHECK(v.per_cycle == v.per_sec);
	CHECK(v.confidence > 0.9 && v.confidence <= 1);
}

static void test_fifo_cache_is_not(void)
{
	struct leak_verdict v;

	/* Fills in three cycles, then every entry is replaced three cycles after it came. */
	for (int i = 1; i < 15; i++)
		for (int k = 0; k < 8; k++)
			add(i, i + 3, 8192);
	CHECK(judge(15, &v) == LEAK_NONE);
	CHECK(v.kept < 0.1);
}

static void test_random_replacement_cache_is_not(void)
{
	struct leak_verdict v;

	/* Entries replaced at random, two cycles on average: fills, then sampling noise only. */
	for (int round = 0; round < 50; round++) {
		for (int i = 1; i < 15; i++)
			for (int k = 0; k < 16; k++)
				add(i, i + 1 + (int)(-2 * log(1 - uniform())), 8192);
		CHECK(judge(15, &v) != LEAK_GROWING);
		CHECK(v.kind == LEAK_NONE || v.kind == LEAK_THIN);
	}
}

static void test_garbage_is_not(void)
{
	struct leak_verdict v;

	/* Dies at the next cycle; now and then an object allocated during marking lives one more.
	 */
	for (int i = 0; i < 15; i++)
		for (int k = 0; k < 40; k++)
			add(i, i + 1 + (k % 7 == 0), 4096);
	CHECK(judge(15, &v) == LEAK_NONE);
}

static void test_leak_that_stops(void)
{
	struct leak_verdict v;

	for (int i = 1; i < 6; i++)
		for (int k = 0; k < 10; k++)
			add(i, NEVER, 32768);
	CHECK(judge(15, &v) == LEAK_STOPPED);
	CHECK(v.kept > 0.99 && v.recent < 0.1);
}

static void test_leak_that_starts_late(void)
{
	struct leak_verdict v;

	/* Nothing for the first 60% of the window, then a steady leak on top of a stable base. */
	for (int k = 0; k < 20; k++)
		add(0, NEVER, 32768);
	for (int i = 9; i < 15; i++)
		for (int k = 0; k < 8; k++)
			add(i, NEVER, 32768);
	CHECK(judge(15, &v) == LEAK_GROWING);
	CHECK(v.recent > 1.5);
}

static void test_slice_grown_by_append(void)
{
	struct leak_verdict v;
	double size = 4 << 20;

	/* One backing array at a time, each 1.25 times the last; the old one dies at the next GC.
	 */
	for (int i = 0; i < 15; i++, size *= 1.25)
		add(i, i + 1, size);
	CHECK(judge(15, &v) == LEAK_GROWING);
	CHECK(v.kept > 0.99);

	/* Small early copies go unsampled now and then, and an old copy may outlive a GC. */
	size = 256 << 10;
	for (int i = 0; i < 15; i++, size *= 1.3) {
		if (i != 2 && i != 4)
			add(i, i + 1 + (i % 5 == 0), size);
	}
	CHECK(judge(15, &v) == LEAK_GROWING);
}

static void test_map_buckets_doubling(void)
{
	struct leak_verdict v;

	/* Bucket arrays double every few cycles; overflow buckets come and go in between. */
	for (int i = 0; i < 15; i++) {
		double array = (double)(1 << 20) * (1 << (i / 4));

		add(i, i + 1, array);
		for (int k = 0; k < 2 + i % 4 * 2; k++)
			add(i, i + 1, 8192);
	}
	CHECK(judge(15, &v) == LEAK_GROWING);
}

static void test_one_allocation_is_not(void)
{
	struct leak_verdict v;

	/* One 64 MiB buffer allocated late and kept: a step, not growth across cycles. */
	add(11, NEVER, 64 << 20);
	CHECK(judge(15, &v) == LEAK_NONE);
	CHECK(v.steps == 1);
}

static void test_stable_base_with_swings_is_not(void)
{
	struct leak_verdict v;

	/* Long-lived objects, and big temporary buffers whose number swings from cycle to cycle. */
	for (int k = 0; k < 30; k++)
		add(0, NEVER, 1 << 20);
	for (int i = 0; i < 15; i++)
		for (int k = 0; k < (i * 7) % 5 + (i > 10 ? 3 : 0); k++)
			add(i, i + 1, 4 << 20);
	CHECK(judge(15, &v) == LEAK_NONE);
}

static void test_thin_evidence(void)
{
	struct leak_verdict v;

	/* Four samples in 15 cycles: growth, but within what sampling alone could show. */
	for (int i = 2; i < 15; i += 3)
		add(i, NEVER, 4096);
	CHECK(judge(15, &v) == LEAK_THIN);
	CHECK(v.z < LEAKS_Z_MIN);

	/* A real leak seen over too few cycles. */
	for (int i = 1; i < 3; i++)
		for (int k = 0; k < 8; k++)
			add(i, NEVER, 32768);
	CHECK(judge(3, &v) == LEAK_THIN);
}

static void test_degenerate_timelines(void)
{
	struct leak_verdict v;

	CHECK(judge(1, &v) == LEAK_NONE);
	CHECK(judge(10, &v) == LEAK_NONE);
	CHECK(v.growth == 0 && v.z == 0 && v.confidence == 0);
	/* Every allocation sampled (rate 1 is modelled by huge objects): no sampling error. */
	for (int i = 1; i < 10; i++)
		add(i, NEVER, 1 << 30);
	CHECK(judge(10, &v) == LEAK_GROWING);
	CHECK(isinf(v.z) && v.confidence > 0.8 && v.confidence <= 1);
}

/* ---- through heapagg ---- */

static struct hs_alloc_event ae;
static struct hs_free_event fe;
static uint32_t tid;
/* When set, a frame of "the allocator" on top of every stack the probes see. */
static uint64_t allocator_pc;
/* The MemProfileRate the probes read with each sample. */
static int64_t sample_rate = RATE;

static void alloc_at(struct heapagg *a, uint64_t pc, uint64_t addr, uint64_t size, int cycle,
		     double secs)
{
	memset(&ae, 0, sizeof(ae));
	ae.hdr = (struct hs_event_header){HS_EV_ALLOC, (uint32_t)cycle, (uint64_t)(secs * 1e9),
					  ++tid, 0};
	ae.addr = addr;
	ae.size = size;
	ae.rate = sample_rate;
	ae.nframes = allocator_pc ? 3 : 2;
	ae.pcs[0] = allocator_pc ? allocator_pc : pc;
	ae.pcs[ae.nframes - 2] = pc;
	ae.pcs[ae.nframes - 1] = 0x401000;
	CHECK(heapagg_alloc(a, &ae) == 0);
}

static void free_at(struct heapagg *a, uint64_t addr, uint64_t size, int cycle, double secs)
{
	memset(&fe, 0, sizeof(fe));
	fe.hdr =
	    (struct hs_event_header){HS_EV_FREE, (uint32_t)cycle, (uint64_t)(secs * 1e9), ++tid, 0};
	fe.addr = addr;
	fe.size = size;
	CHECK(heapagg_free_event(a, &fe) == 0);
}

enum { LEAK_PC = 0x1000, CACHE_PC = 0x2000, GARBAGE_PC = 0x3000 };

static uint32_t stack_of(const struct heapagg *a, uint64_t pc)
{
	for (size_t i = 0; i < a->nstacks; i++)
		if (a->stacks[i].pcs[a->stacks[i].nframes - 2] == pc)
			return (uint32_t)i;
	return UINT32_MAX;
}

/* The allocator's frames are those below 0x1000: the rest is shown. */
static uint32_t trim_allocator(void *ctx, const struct heap_stack *s, uint64_t *out)
{
	uint32_t i = 0;

	(void)ctx;
	while (i < s->nframes && s->pcs[i] < 0x1000)
		i++;
	if (i == s->nframes)
		i = 0;
	memcpy(out, s->pcs + i, (s->nframes - i) * sizeof(*out));
	return s->nframes - i;
}

/*
 * A program with a leak (8 samples a cycle, kept), a cache (fills over 3 cycles, then replaces
 * its oldest entries) and garbage (freed by the next cycle's sweep), one cycle a second.
 */
static void run_program(struct heapagg *a, struct leaks *l, int cycles, bool leak)
{
	uint64_t next = 0x10000;
	uint64_t cache[4][8] = {{0}};

	for (int c = 0; c < cycles; c++) {
		double t = c + 0.5;

		for (int k = 0; leak && k < 8; k++)
			alloc_at(a, LEAK_PC, next += 0x8000, 32768, c, t);
		for (int k = 0; k < 8; k++) {
			if (cache[c % 4][k])
				free_at(a, cache[c % 4][k], 8192, c, t);
			alloc_at(a, CACHE_PC, cache[c % 4][k] = next += 0x8000, 8192, c, t);
		}
		for (int k = 0; k < 20; k++) {
			alloc_at(a, GARBAGE_PC, next += 0x8000, 4096, c, t);
			free_at(a, next, 4096, c + 1, t + 0.6);
		}
		/* The tick sees the cycle advance a little after its GC. */
		CHECK(leaks_observe(l, a, c + 1, c + 1.05) == 0);
	}
}

static void test_report_from_events(void)
{
	struct leaks_now now = {.cycle = 20, .ns = (uint64_t)(21e9), .secs = 21};
	struct leak_report r;
	struct heapagg a;
	struct leaks l;

	heapagg_init(&a);
	leaks_init(&l, NULL, NULL);
	CHECK(leaks_observe(&l, &a, 0, 0.1) == 0);
	run_program(&a, &l, 20, true);
	CHECK(leaks_points(&l) == 20);
	CHECK(leaks_analyze(&l, &a, &now, &r) == 0);
	CHECK(!r.thin && r.npoints == 20 && r.cycles == 19);
	CHECK(r.samples > 8 * 17 * 3);
	CHECK(r.ngrowing == 1 && r.nsites == 1);
	if (r.nsites) {
		const struct leak_site *s = &r.sites[0];
		double aged = 0;

		CHECK(s->stack == stack_of(&a, LEAK_PC));
		CHECK(s->v.kind == LEAK_GROWING && s->v.confidence > 0.8);
		CHECK(s->samples == 8 * 19);
		CHECK(s->oldest_age_cycles == 20 && !s->before_attach);
		CHECK(fabs(s->oldest_age_secs - 20.5) < 1e-6);
		for (int b = 3; b < LEAKS_AGE_BUCKETS; b++)
			aged += s->age_bytes[b];
		CHECK(aged > 0.5 * s->inuse_bytes);
	}
	leaks_report_free(&r);
	leaks_free(&l);
	heapagg_free(&a);
}

/* Bytes count each sample at the rate it was taken at, not at one rate for the recording. */
static double leak_bytes_at(int64_t rate)
{
	struct leaks_now now = {.cycle = 20, .ns = (uint64_t)(21e9), .secs = 21};
	struct leak_report r;
	struct heapagg a;
	struct leaks l;
	double bytes = 0;

	sample_rate = rate;
	heapagg_init(&a);
	leaks_init(&l, NULL, NULL);
	CHECK(leaks_observe(&l, &a, 0, 0.1) == 0);
	run_program(&a, &l, 20, true);
	CHECK(leaks_analyze(&l, &a, &now, &r) == 0);
	CHECK(r.nsites == 1);
	if (r.nsites)
		bytes = r.sites[0].inuse_bytes;
	leaks_report_free(&r);
	leaks_free(&l);
	heapagg_free(&a);
	sample_rate = RATE;
	return bytes;
}

static void test_bytes_at_each_sample_rate(void)
{
	double slow = leak_bytes_at(RATE), fast = leak_bytes_at(4096);
	double want = heap_scale(32768, 4096) / heap_scale(32768, RATE);

	CHECK(slow > 0 && fabs(fast / slow - want) < 1e-9 * want);
}

static void test_no_leak_no_candidates(void)
{
	struct leaks_now now = {.cycle = 20, .ns = (uint64_t)(21e9), .secs = 21};
	struct leak_report r;
	struct heapagg a;
	struct leaks l;

	heapagg_init(&a);
	leaks_init(&l, NULL, NULL);
	CHECK(leaks_observe(&l, &a, 0, 0.1) == 0);
	run_program(&a, &l, 20, false);
	CHECK(leaks_analyze(&l, &a, &now, &r) == 0);
	CHECK(r.nsites == 0 && !r.thin);
	leaks_report_free(&r);
	leaks_free(&l);
	heapagg_free(&a);
}

static void test_too_few_cycles_is_thin(void)
{
	struct leaks_now now = {.cycle = 3, .ns = (uint64_t)(3e9), .secs = 3};
	struct leak_report r;
	struct heapagg a;
	struct leaks l;

	heapagg_init(&a);
	leaks_init(&l, NULL, NULL);
	CHECK(leaks_observe(&l, &a, 0, 0.1) == 0);
	run_program(&a, &l, 3, true);
	CHECK(leaks_analyze(&l, &a, &now, &r) == 0);
	CHECK(r.thin && r.npoints == 3 && r.ngrowing == 0);
	leaks_report_free(&r);
	leaks_free(&l);
	heapagg_free(&a);
}

static void test_few_samples_is_thin(void)
{
	struct leaks_now now = {.cycle = 20, .ns = (uint64_t)(21e9), .secs = 21};
	struct leak_report r;
	struct heapagg a;
	struct leaks l;

	/* Many cycles, but a sample every third one: not enough to tell anything either way. */
	heapagg_init(&a);
	leaks_init(&l, NULL, NULL);
	CHECK(leaks_observe(&l, &a, 0, 0.1) == 0);
	for (int c = 0; c < 20; c++) {
		if (c % 3 == 0)
			alloc_at(&a, LEAK_PC, 0x10000 + (uint64_t)c * 0x8000, 32768, c, c + 0.5);
		CHECK(leaks_observe(&l, &a, c + 1, c + 1.05) == 0);
	}
	CHECK(leaks_analyze(&l, &a, &now, &r) == 0);
	CHECK(r.thin && r.npoints == 20 && r.samples == 7 && r.ngrowing == 0);
	leaks_report_free(&r);
	leaks_free(&l);
	heapagg_free(&a);
}

static void test_long_recording_keeps_the_shape(void)
{
	struct leaks_now now = {.cycle = 1000, .ns = (uint64_t)(1001e9), .secs = 1001};
	struct leak_report r;
	struct heapagg a;
	struct leaks l;

	heapagg_init(&a);
	leaks_init(&l, NULL, NULL);
	CHECK(leaks_observe(&l, &a, 0, 0.1) == 0);
	run_program(&a, &l, 1000, true);
	CHECK(leaks_points(&l) <= LEAKS_MAX_POINTS + 1 && leaks_points(&l) > LEAKS_MAX_POINTS / 2);
	/* The first point stays, the newest is always there. */
	CHECK(l.cycle[0] == -1 && l.cycle[leaks_points(&l) - 1] == 998);
	for (size_t i = 1; i < leaks_points(&l); i++)
		CHECK(l.cycle[i] > l.cycle[i - 1] && l.secs[i] > l.secs[i - 1]);
	CHECK(leaks_analyze(&l, &a, &now, &r) == 0);
	CHECK(r.ngrowing == 1 && r.nsites == 1);
	leaks_report_free(&r);
	leaks_free(&l);
	heapagg_free(&a);
}

static void test_objects_from_before_attach(void)
{
	struct leaks_now now = {.cycle = 20, .ns = (uint64_t)(21e9), .secs = 21};
	struct go_mem_record rec = {
	    .active = {
		.allocs = 50, .frees = 10, .alloc_bytes = 50 * 32768, .free_bytes = 10 * 32768}};
	uint64_t pcs[2] = {LEAK_PC, 0x401000};
	struct leak_report r;
	struct heapagg a;
	struct leaks l;

	/* The runtime's records lack the allocator's frames; the probes' stacks have them. */
	heapagg_init(&a);
	leaks_init(&l, trim_allocator, NULL);
	allocator_pc = 0x500;
	CHECK(heapagg_baseline(&a, 0xb0c4e7, pcs, 2, 32768, &rec, 0) == 0);
	CHECK(a.sites[0].pre_objects == 40);
	/* One of them is freed: matched through its bucket. */
	fe = (struct hs_free_event){
	    .hdr = {HS_EV_FREE, 0, 1, 99, 0}, .addr = 0x77, .size = 32768, .bucket = 0xb0c4e7};
	CHECK(heapagg_free_event(&a, &fe) == 0);
	CHECK(a.sites[0].pre_objects == 39);
	CHECK(leaks_observe(&l, &a, 0, 0.1) == 0);
	run_program(&a, &l, 20, true);
	allocator_pc = 0;
	CHECK(a.nstacks == 4 && l.nseries == 3);
	CHECK(leaks_analyze(&l, &a, &now, &r) == 0);
	CHECK(r.ngrowing == 1 && r.nsites == 1);
	if (r.nsites) {
		CHECK(r.sites[0].before_attach && r.sites[0].oldest_age_cycles == 20);
		CHECK(r.sites[0].age_bytes[LEAKS_AGE_PREATTACH] > 39 * 32768);
	}
	leaks_report_free(&r);
	leaks_free(&l);
	heapagg_free(&a);
}

int main(void)
{
	int failures = 0;

	RUN(test_steady_leak_is_a_candidate);
	RUN(test_fifo_cache_is_not);
	RUN(test_random_replacement_cache_is_not);
	RUN(test_garbage_is_not);
	RUN(test_leak_that_stops);
	RUN(test_leak_that_starts_late);
	RUN(test_slice_grown_by_append);
	RUN(test_map_buckets_doubling);
	RUN(test_one_allocation_is_not);
	RUN(test_stable_base_with_swings_is_not);
	RUN(test_thin_evidence);
	RUN(test_degenerate_timelines);
	RUN(test_report_from_events);
	RUN(test_bytes_at_each_sample_rate);
	RUN(test_no_leak_no_candidates);
	RUN(test_too_few_cycles_is_thin);
	RUN(test_few_samples_is_thin);
	RUN(test_long_recording_keeps_the_shape);
	RUN(test_objects_from_before_attach);
	return failures;
}

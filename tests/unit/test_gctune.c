/*
 * gctune: the model against cycles made to its own assumptions (a steady live heap, a steady
 * allocation), the cases it must refuse, and the memory limit it must keep advice under; cgroup:
 * the limit read from v1 and v2 hierarchies laid out in a temporary directory.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"
#include "check.h"
#include "gctune.h"

#define MIB (1 << 20)
#define N   40

/*
 * Cycles at GOGC=100 of a program with live bytes surviving, roots of stacks and globals, that
 * allocates marking bytes while each cycle marks and whose pacer leads the goal by lead bytes.
 */
static void steady(struct gc_cycle *c, size_t n, int64_t survives, int64_t roots, int64_t marking,
		   int64_t lead, int64_t jitter)
{
	int64_t live = survives + marking;

	for (size_t i = 0; i < n; i++) {
		int64_t goal = live + (live + roots), j = (int64_t)(i % 3) * jitter;

		c[i] = (struct gc_cycle){.cycle = (int64_t)i + 1,
					 .start_ns = (int64_t)i * 100000000,
					 .forced = 0,
					 .sweep_term_ns = 100000,
					 .mark_ns = 4000000,
					 .mark_term_ns = 100000,
					 .heap0 = goal - lead + j,
					 .heap1 = goal - lead + marking + j,
					 .heap2 = live,
					 .heap_goal = goal};
	}
}

static const struct gc_settings gogc100 = {.gogc = 100,
					   .gomemlimit = GCTUNE_NO_LIMIT,
					   .gomaxprocs = 4,
					   .memory_limit = GCTUNE_NO_LIMIT,
					   .nonheap = GC_UNKNOWN,
					   .gc_cpu_ns = {GC_UNKNOWN, GC_UNKNOWN},
					   .cpu_ns = {GC_UNKNOWN, GC_UNKNOWN}};

static const struct gc_option *option(const struct gc_tuning *t, int64_t gogc)
{
	for (size_t i = 0; i < t->noptions; i++)
		if (t->options[i].gogc == gogc)
			return &t->options[i];
	return NULL;
}

static bool near(double a, double b, double tol)
{
	return fabs(a / b - 1) <= tol;
}

static void test_model(void)
{
	struct gc_cycle c[N];
	struct gc_tuning t;
	const struct gc_option *o100, *o400;

	/* 100 MiB survives, 10 MiB of roots, 2 MiB allocated while marking, a 25 MiB lead. */
	steady(c, N, 100 * MIB, 10 * MIB, 2 * MIB, 25 * MIB, 0);
	gctune_predict(c, N, &gogc100, &t);
	CHECK(t.predicted);
	CHECK(t.steady == N - 1);
	CHECK(near(t.live_heap, 102 * MIB, 1e-9));
	CHECK(near(t.roots, 10 * MIB, 1e-9));
	CHECK(near(t.lead, 25 * MIB, 1e-9));
	/* Observed: 112 MiB of runway, started 25 MiB early, 2 MiB more while marking. */
	CHECK(near(t.peak_heap, (102 + 112 - 25 + 2) * (double)MIB, 1e-9));
	CHECK(near(t.cycles_per_gib, 1024.0 / (112 - 25 + 2), 1e-9));
	CHECK(t.noptions == 5 && option(&t, 50) && option(&t, 800));
	CHECK(!option(&t, GCTUNE_OFF));
	/* The setting observed predicts what was observed. */
	o100 = option(&t, 100);
	CHECK(o100 && near(o100->peak_heap, t.peak_heap, 1e-6));
	CHECK(near(o100->cycles_per_gib, t.cycles_per_gib, 1e-6));
	CHECK(near(o100->gc_cpu, t.gc_cpu, 1e-6));
	/* GOGC=400: 448 MiB of runway, the same 25 MiB lead, the same marking. */
	o400 = option(&t, 400);
	CHECK(o400 && near(o400->peak_heap, (102 + 448 - 25 + 2) * (double)MIB, 1e-6));
	CHECK(near(o400->cycles_per_gib, 1024.0 / (448 - 25 + 2), 1e-6));
	CHECK(near(o400->gc_cpu, t.gc_cpu * (112 - 25 + 2) / (448 - 25 + 2), 1e-6));
	/* Further from what was seen, less certain. */
	CHECK(o400->cycles_unc > o100->cycles_unc);
	CHECK(option(&t, 800)->cycles_unc > o400->cycles_unc);
	/* GC CPU: a quarter of the 4 ms mark and the 0.2 ms of pauses, every 100 ms. */
	CHECK(near(t.gc_cpu, (0.25 * 4 + 0.2) / 100, 1e-3));
	CHECK(strstr(t.advice, "GOGC="));
	CHECK(!t.gc_cpu_measured);
	/* The runtime's own account, read at both ends, replaces the estimate; scaled the same. */
	{
		struct gc_settings s = gogc100;

		s.gc_cpu_ns[0] = 1000, s.gc_cpu_ns[1] = 61000;
		s.cpu_ns[0] = 5000, s.cpu_ns[1] = 1005000;
		gctune_predict(c, N, &s, &t);
		CHECK(t.gc_cpu_measured && near(t.gc_cpu, 0.06, 1e-9));
		CHECK(near(option(&t, 400)->gc_cpu, 0.06 * (112 - 25 + 2) / (448 - 25 + 2), 1e-6));
	}
}

/* A trigger held at the pacer's earliest: the lead is a range, and so is the prediction. */
static void test_earliest_trigger(void)
{
	struct gc_cycle c[N];
	struct gc_tuning t;
	const struct gc_option *o;

	/* A lead of 40% of the 112 MiB runway: the pacer starts at 45/64 instead. */
	steady(c, N, 100 * MIB, 10 * MIB, 2 * MIB, (int64_t)(112 * MIB * (19.0 / 64)), 0);
	gctune_predict(c, N, &gogc100, &t);
	CHECK(t.predicted);
	o = option(&t, 800);
	/* Between starting at 45/64 and 1 - lead/runway of 896 MiB; half the gap is uncertain. */
	CHECK(o && o->peak_unc > 0.05);
	CHECK(o->peak_heap > (102 + 896 * 45.0 / 64) * MIB);
	CHECK(o->peak_heap < (102 + 896 * 61.0 / 64 + 2) * MIB);
}

static void test_refusals(void)
{
	struct gc_cycle c[N];
	struct gc_tuning t;
	struct gc_settings s = gogc100;

	steady(c, N, 100 * MIB, 10 * MIB, 2 * MIB, 20 * MIB, 0);
	gctune_predict(c, 4, &s, &t);
	CHECK(!t.predicted && strstr(t.why, "observe longer") && !t.noptions);
	/* Forced cycles are not the pacer's. */
	for (size_t i = 0; i < N; i++)
		c[i].forced = i % 2;
	gctune_predict(c, 8, &s, &t);
	CHECK(!t.predicted && strstr(t.why, "observe longer"));
	steady(c, N, 100 * MIB, 10 * MIB, 2 * MIB, 20 * MIB, 60 * MIB);
	gctune_predict(c, N, &s, &t);
	CHECK(!t.predicted && strstr(t.why, "irregular"));
	/* Most of the runway allocated while marking: assists held it back. */
	steady(c, N, 100 * MIB, 10 * MIB, 300 * MIB, 20 * MIB, 0);
	gctune_predict(c, N, &s, &t);
	CHECK(!t.predicted && strstr(t.why, "while marking"));
	steady(c, N, 100 * MIB, 10 * MIB, 2 * MIB, 20 * MIB, 0);
	s.gogc = GCTUNE_OFF;
	gctune_predict(c, N, &s, &t);
	CHECK(!t.predicted && strstr(t.why, "off"));
	s.gogc = GC_UNKNOWN;
	gctune_predict(c, N, &s, &t);
	CHECK(!t.predicted && strstr(t.why, "unread"));
	/* Heap sizes unknown (the probes timed the pauses themselves). */
	s = gogc100;
	for (size_t i = 0; i < N; i++)
		c[i].heap2 = GC_UNKNOWN;
	gctune_predict(c, N, &s, &t);
	CHECK(!t.predicted);
}

/* Under a limit, no advice goes over it less the headroom; GOMEMLIMIT is offered beneath it. */
static void test_limit(void)
{
	struct gc_cycle c[N];
	struct gc_tuning t;
	struct gc_settings s = gogc100;
	const struct gc_option *off;
	double room;

	steady(c, N, 100 * MIB, 10 * MIB, 2 * MIB, 20 * MIB, 0);
	s.memory_limit = 1024 * (int64_t)MIB;
	s.gomemlimit = 800 * (int64_t)MIB;
	gctune_predict(c, N, &s, &t);
	CHECK(t.predicted && t.limit == 800 * MIB);
	room = 800.0 * MIB * (1 - GCTUNE_HEADROOM);
	off = option(&t, GCTUNE_OFF);
	CHECK(off && off->gomemlimit == (int64_t)room && off->peak_heap <= room);
	for (size_t i = 0; i < t.noptions; i++) {
		const struct gc_option *o = &t.options[i];

		CHECK(o->gogc == GCTUNE_OFF ||
		      o->fits == (o->peak_heap * (1 + o->peak_unc) <= room));
	}
	/* The advice names an option that fits, and says so in its words. */
	CHECK(t.advised >= 0 && t.options[t.advised].fits);
	CHECK(t.options[t.advised].peak_heap <= room);
	CHECK(!option(&t, 800)->fits && option(&t, 200)->fits);
	/* With the memory beside the heap known, the limit's goal is what it leaves, less 3%. */
	s.nonheap = 20 * (int64_t)MIB;
	gctune_predict(c, N, &s, &t);
	off = option(&t, GCTUNE_OFF);
	{
		double goal = (room - 20 * MIB) * 0.97, runway = goal - t.live_heap;
		double trigger = fmin(1 - t.lead / runway, 61.0 / 64);

		CHECK(off &&
		      near(off->peak_heap, t.live_heap + trigger * runway + t.mark_alloc, 1e-6));
		CHECK(off->peak_heap <= room);
	}
	s.nonheap = GC_UNKNOWN;
	CHECK(strstr(t.advice, "under the 800 MiB limit less 10% headroom"));
	/* A limit the live heap leaves no room under: no advice grows the heap. */
	s.gomemlimit = GCTUNE_NO_LIMIT;
	s.memory_limit = 150 * (int64_t)MIB;
	gctune_predict(c, N, &s, &t);
	CHECK(t.predicted && !option(&t, GCTUNE_OFF)->fits && !option(&t, 200)->fits);
	CHECK(t.advised < 0 || t.options[t.advised].peak_heap < t.peak_heap);
}

/* root/rel: a directory when text is NULL, else a file holding text. */
static void put(const char *root, const char *rel, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	if (!text) {
		CHECK(mkdir(path, 0755) == 0);
		return;
	}
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static void test_cgroup(void)
{
	char root[] = "/tmp/heapspy-cgroup-XXXXXX", p[256];

	CHECK(mkdtemp(root) != NULL);
	/* v1 memory beside a hybrid v2 mount: the v1 limit, the smallest up the tree. */
	put(root, "memory", NULL);
	put(root, "memory/a", NULL);
	put(root, "memory/a/b", NULL);
	put(root, "memory/memory.limit_in_bytes", "9223372036854771712\n");
	put(root, "memory/a/memory.limit_in_bytes", "104857600\n");
	put(root, "memory/a/b/memory.limit_in_bytes", "209715200\n");
	CHECK(cgroup_memory_limit_at("0::/\n4:memory:/a/b\n", root) == 104857600);
	CHECK(cgroup_memory_limit_at("4:cpu,memory:/a/b\n0::/\n", root) == 104857600);
	CHECK(cgroup_memory_limit_at("4:memory:/\n", root) == -1);
	CHECK(cgroup_memory_limit_at("4:memory:/gone\n", root) < -1);
	/* v2 alone (cgroup.controllers at the top): memory.max, "max" for none. */
	put(root, "cgroup.controllers", "memory\n");
	put(root, "s", NULL);
	put(root, "s/t", NULL);
	put(root, "s/memory.max", "max\n");
	put(root, "s/t/memory.max", "536870912\n");
	CHECK(cgroup_memory_limit_at("0::/s/t\n", root) == 536870912);
	CHECK(cgroup_memory_limit_at("0::/s\n", root) == -1);
	CHECK(cgroup_memory_limit_at("0::/\n", root) == -1);
	CHECK(cgroup_memory_limit_at("garbage\n", root) < -1);
	snprintf(p, sizeof(p), "rm -rf %s", root);
	CHECK(system(p) == 0);
}

int main(void)
{
	int failures = 0;

	RUN(test_model);
	RUN(test_earliest_trigger);
	RUN(test_refusals);
	RUN(test_limit);
	RUN(test_cgroup);
	return failures;
}

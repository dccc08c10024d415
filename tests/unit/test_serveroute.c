/* serveroute: the paths heapspy serve answers, and net/http/pprof's `seconds`. */
#include <string.h>

#include "check.h"
#include "serveroute.h"

static void test_paths(void)
{
	static const struct {
		const char *path;
		enum serve_endpoint ep;
		pid_t pid;
	} cases[] = {
	    {"/", SERVE_INDEX, 0},
	    {"/debug/pprof/heap", SERVE_HEAP, 0},
	    {"/debug/pprof/allocs", SERVE_ALLOCS, 0},
	    {"/debug/gc", SERVE_GC, 0},
	    {"/metrics", SERVE_METRICS, 0},
	    {"/pid/4242/debug/pprof/heap", SERVE_HEAP, 4242},
	    {"/pid/1/debug/pprof/allocs", SERVE_ALLOCS, 1},
	    {"/pid/77/debug/gc", SERVE_GC, 77},
	    {"/pid/77/debug/leaks", SERVE_LEAKS, 77},
	    {"/debug/leaks", SERVE_LEAKS, 0},
	    /* Anything else is not served. */
	    {"/debug/pprof/heap/", SERVE_UNKNOWN, 0},
	    {"/debug/pprof/profile", SERVE_UNKNOWN, 0},
	    {"/pid/4242", SERVE_UNKNOWN, 0},
	    {"/pid/4242/", SERVE_UNKNOWN, 0},
	    {"/pid/0/debug/pprof/heap", SERVE_UNKNOWN, 0},
	    {"/pid/-5/debug/pprof/heap", SERVE_UNKNOWN, 0},
	    {"/pid/+5/debug/pprof/heap", SERVE_UNKNOWN, 0},
	    {"/pid/ 5/debug/pprof/heap", SERVE_UNKNOWN, 0},
	    {"/pid/5x/debug/pprof/heap", SERVE_UNKNOWN, 0},
	    {"/pid/99999999999999999999/debug/pprof/heap", SERVE_UNKNOWN, 0},
	    {"/pid/4294967297/debug/pprof/heap", SERVE_UNKNOWN, 0},
	    {"/pid/5/pid/6/debug/pprof/heap", SERVE_UNKNOWN, 0},
	    {"/pid/5/metrics", SERVE_METRICS, 5},
	    {"/targets", SERVE_TARGETS, 0},
	    {"/pid/5/targets", SERVE_UNKNOWN, 0},
	    {"/metrics/", SERVE_UNKNOWN, 0},
	    {"", SERVE_UNKNOWN, 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct serve_route r = serve_route(cases[i].path);

		if (r.ep != cases[i].ep || r.pid != cases[i].pid)
			fprintf(stderr, "  %s: endpoint %d pid %d, want %d %d\n", cases[i].path,
				r.ep, (int)r.pid, cases[i].ep, (int)cases[i].pid);
		CHECK(r.ep == cases[i].ep && r.pid == cases[i].pid);
	}
}

static void test_seconds(void)
{
	static const char *bad[] = {
	    "", "0", "-1", "x", "1x", " 1", "1.5", "3601", "99999999999999999999"};
	long s = 0;

	CHECK(serve_seconds("1", 3600, &s) == 0 && s == 1);
	CHECK(serve_seconds("30", 3600, &s) == 0 && s == 30);
	CHECK(serve_seconds("+30", 3600, &s) == 0 && s == 30); /* Go's ParseInt takes a sign */
	CHECK(serve_seconds("3600", 3600, &s) == 0 && s == 3600);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (serve_seconds(bad[i], 3600, &s) != -1)
			fprintf(stderr, "  '%s' taken\n", bad[i]);
		CHECK(serve_seconds(bad[i], 3600, &s) == -1);
	}
	CHECK(serve_seconds(NULL, 3600, &s) == -1);
}

int main(void)
{
	int failures = 0;

	RUN(test_paths);
	RUN(test_seconds);
	return failures;
}

/* promtext: the pause histogram's buckets, label escaping, every family once whatever the targets.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "promtext.h"

static char *render(const struct prom_target *t, size_t n)
{
	struct prom_self self = {
	    .rss_bytes = 1 << 20, .cpu_seconds = 1.5, .start_time_seconds = 1e9, .push_sent = 3};
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	promtext_write(f, t, n, &self);
	fclose(f);
	return text;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static void test_pauses(void)
{
	struct prom_pauses p = {0};

	promtext_add_pause(&p, 10000);	    /* exactly 10 us: the first bucket (le is inclusive) */
	promtext_add_pause(&p, 10001);	    /* just over */
	promtext_add_pause(&p, 3000000);    /* 3 ms: le 5 ms */
	promtext_add_pause(&p, 2000000000); /* 2 s: +Inf only */
	promtext_add_pause(&p, -1);	    /* unknown: not counted */
	CHECK(p.buckets[0] == 1 && p.buckets[1] == 1);
	CHECK(p.buckets[8] == 1);
	CHECK(p.count == 4);
	CHECK(p.sum_s > 2.003 && p.sum_s < 2.0031);
}

static void test_text(void)
{
	struct prom_target t[2] = {
	    {.pid = 7,
	     .exe = "/srv/a \"b\"\\c\nd",
	     .go_version = "go1.27.4",
	     .gc_cycles = 3,
	     .gc_last_cycle = 41,
	     .heap_live = -1,
	     .heap_goal = 4194304},
	    {.pid = 8,
	     .exe = "/srv/x",
	     .go_version = "go1.19.8",
	     .gc_last_cycle = -1,
	     .heap_live = 5,
	     .heap_goal = -1},
	};
	char *text;

	promtext_add_pause(&t[0].pauses, 20000);
	promtext_add_pause(&t[0].pauses, 200000);
	text = render(t, 2);
	CHECK(strstr(text, "heapspy_go_gc_cycles_total{pid=\"7\",exe=\"/srv/a \\\"b\\\"\\\\c\\nd\","
			   "go_version=\"go1.27.4\"} 3\n"));
	CHECK(strstr(text, "heapspy_go_gc_last_cycle{pid=\"7\""));
	/* Unknown values are left out, not written as -1. */
	CHECK(!strstr(text, "heapspy_go_gc_last_cycle{pid=\"8\""));
	CHECK(!strstr(text, "heapspy_go_heap_live_bytes{pid=\"7\""));
	CHECK(strstr(
	    text,
	    "heapspy_go_heap_live_bytes{pid=\"8\",exe=\"/srv/x\",go_version=\"go1.19.8\"} 5\n"));
	/* Cumulative buckets. */
	CHECK(strstr(
	    text, "heapspy_go_gc_pause_seconds_bucket{pid=\"7\",exe=\"/srv/a \\\"b\\\"\\\\c\\nd\","
		  "go_version=\"go1.27.4\",le=\"2.5e-05\"} 1\n"));
	CHECK(strstr(text, ",le=\"0.00025\"} 2\n"));
	CHECK(strstr(text, ",le=\"+Inf\"} 2\n"));
	CHECK(count(text, "# TYPE heapspy_go_gc_pause_seconds histogram\n") == 1);
	CHECK(count(text, "# TYPE heapspy_go_gc_cycles_total counter\n") == 1);
	CHECK(strstr(text, "heapspy_targets 2\n"));
	CHECK(strstr(text, "process_resident_memory_bytes 1048576\n"));
	CHECK(strstr(text, "heapspy_push_sent_total 3\n"));
	free(text);
	/* No target: every family still declared once, no sample but heapspy's own. */
	text = render(NULL, 0);
	CHECK(strstr(text, "heapspy_targets 0\n"));
	CHECK(!strstr(text, "{pid="));
	free(text);
}

int main(void)
{
	int failures = 0;

	RUN(test_pauses);
	RUN(test_text);
	return failures;
}

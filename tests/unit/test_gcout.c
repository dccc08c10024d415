/*
 * gcout: gctrace's number format, the per-cycle line, the JSON document read back with json-c,
 * and the SVG read back with an XML parser (Python's, as a browser would, strictly).
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "gcout.h"

static void test_ms_like_gctrace(void)
{
	/* Go's fmtNSAsMS: two significant digits, truncated; whole ms from 10 ms. */
	static const struct {
		int64_t ns;
		const char *want;
	} cases[] = {
	    {0, "0"},	      {999, "0"},	  {1000, "0.001"},   {18999, "0.018"},
	    {123456, "0.12"}, {99999, "0.099"},	  {1234567, "1.2"},  {9999999, "9.9"},
	    {10000000, "10"}, {123456789, "123"}, {GC_UNKNOWN, "?"},
	};
	char buf[32];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		gcout_ms(buf, sizeof(buf), cases[i].ns);
		if (strcmp(buf, cases[i].want))
			fprintf(stderr, "  %lld ns: got %s, want %s\n", (long long)cases[i].ns, buf,
				cases[i].want);
		CHECK(!strcmp(buf, cases[i].want));
	}
}

static struct gc_cycle cycles[3] = {
    {.cycle = 7,
     .start_ns = 2100000000,
     .forced = 0,
     .sweep_term_ns = 45000,
     .mark_ns = 2100000,
     .mark_term_ns = 12000,
     .heap0 = 4 << 20,
     .heap1 = 5 << 20,
     .heap2 = 2 << 20,
     .heap_goal = 5 << 20},
    {.cycle = 8,
     .start_ns = 2200000000,
     .forced = 1,
     .sweep_term_ns = 30000,
     .mark_ns = 1000000,
     .mark_term_ns = 9000,
     .probe_ns = 1500,
     .heap0 = 3 << 20,
     .heap1 = 3 << 20,
     .heap2 = 1 << 20,
     .heap_goal = 5 << 20},
    {.cycle = GC_UNKNOWN,
     .start_ns = GC_UNKNOWN,
     .forced = GC_UNKNOWN,
     .sweep_term_ns = GC_UNKNOWN,
     .mark_ns = GC_UNKNOWN,
     .mark_term_ns = GC_UNKNOWN,
     .heap0 = GC_UNKNOWN,
     .heap1 = GC_UNKNOWN,
     .heap2 = GC_UNKNOWN,
     .heap_goal = GC_UNKNOWN},
};

static struct gc_stw stws[1] = {
    {.start_ns = 2150000000, .duration_ns = 21000, .reason = "read mem stats"}};

static void report(struct gcdecode *d, struct gc_summary *s, struct gc_report *r,
		   const char *program)
{
	memset(d, 0, sizeof(*d));
	d->cycles = cycles;
	d->ncycles = 3;
	d->stws = stws;
	d->nstws = 1;
	d->probe_ns = 1500000;
	CHECK(gcstats_summarize(d, 1.5, s) == 0);
	*r = (struct gc_report){
	    .d = d,
	    .sum = s,
	    .time_base = 2000000000,
	    .time_base_is_program = true,
	    .pid = 42,
	    .program = program,
	    .go_version = "go1.23.5",
	    .offsets = "DWARF",
	    .cost_measured = true,
	    .jump_hit_ns = 5000,
	    .step_hit_ns = 15000,
	    .hits = 300,
	};
}

static char *captured(void (*fn)(FILE *f, const void *arg), const void *arg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	fn(f, arg);
	fclose(f);
	return buf;
}

static void cycle_line(FILE *f, const void *c)
{
	gcout_cycle(f, c, 2000000000);
}

static void test_cycle_line(void)
{
	char *a = captured(cycle_line, &cycles[0]), *b = captured(cycle_line, &cycles[1]),
	     *c = captured(cycle_line, &cycles[2]);

	CHECK(!strcmp(a, "gc 7 @0.100s: 0.045+2.1+0.012 ms clock, 4->5->2 MB, 5 MB goal\n"));
	CHECK(
	    !strcmp(b, "gc 8 @0.200s: 0.030+1.0+0.009 ms clock, 3->3->1 MB, 5 MB goal (forced)\n"));
	CHECK(!strcmp(c, "gc ?: ?+?+? ms clock, ?->?->? MB, ? MB goal\n"));
	free(a);
	free(b);
	free(c);
}

static void add_line(void *ctx, const char *line)
{
	char **all = ctx;
	size_t n = *all ? strlen(*all) : 0;

	*all = realloc(*all, n + strlen(line) + 2);
	sprintf(*all + n, "%s\n", line);
}

static void test_summary_lines(void)
{
	struct gcdecode d;
	struct gc_summary s;
	struct gc_report r;
	char *all = NULL;

	report(&d, &s, &r, "prog");
	gcout_summary(&r, add_line, &all);
	CHECK(strstr(all, "3 GC cycles in 1.5s (2.0/s), 1 forced\n") != NULL);
	CHECK(strstr(all, "GC pauses (4, two per cycle): p50 0.012 ms") != NULL);
	CHECK(strstr(all, "1 other stop-the-worlds (not GC, not counted above): 0.021 ms") != NULL);
	CHECK(strstr(all, "heap live 2.0 -> 1.0 MiB") != NULL);
	CHECK(strstr(all,
		     "300 hits, 5.0 us each (15.0 us where stepped out of line), 0.100% of one "
		     "CPU") != NULL);
	free(all);
}

static json_object *field(json_object *o, const char *key)
{
	json_object *v = NULL;

	CHECK(json_object_object_get_ex(o, key, &v));
	return v;
}

static void test_json(void)
{
	char path[] = "/tmp/heapspy-gcjson-XXXXXX", err[256];
	struct gcdecode d;
	struct gc_summary s;
	struct gc_report r;
	json_object *root, *list, *c;
	int fd = mkstemp(path);

	CHECK(fd >= 0);
	close(fd);
	report(&d, &s, &r, "prog");
	CHECK(gcout_json(&r, path, err, sizeof(err)) == 0);
	root = json_object_from_file(path);
	CHECK(root != NULL);
	if (!root)
		return;
	list = field(root, "gc_cycles");
	CHECK(json_object_array_length(list) == 3);
	c = json_object_array_get_idx(list, 1);
	CHECK(json_object_get_int64(field(c, "cycle")) == 8);
	CHECK(json_object_get_int64(field(c, "start_ns")) == 200000000);
	CHECK(json_object_get_boolean(field(c, "forced")));
	CHECK(json_object_get_int64(field(c, "sweep_termination_pause_ns")) == 30000);
	CHECK(json_object_get_int64(field(c, "mark_ns")) == 1000000);
	CHECK(json_object_get_int64(field(c, "mark_termination_pause_ns")) == 9000);
	CHECK(json_object_get_int64(field(c, "heap_live_before_bytes")) == 3 << 20);
	CHECK(json_object_get_int64(field(c, "heap_live_after_bytes")) == 1 << 20);
	CHECK(json_object_get_int64(field(c, "heap_goal_bytes")) == 5 << 20);
	/* Unknown is null, not zero. */
	c = json_object_array_get_idx(list, 2);
	CHECK(field(c, "cycle") == NULL && field(c, "forced") == NULL &&
	      field(c, "heap_goal_bytes") == NULL && field(c, "start_ns") == NULL);
	CHECK(json_object_get_int64(field(field(root, "summary"), "cycles")) == 3);
	CHECK(json_object_get_int64(field(field(field(root, "summary"), "gc_pause_ns"), "max")) ==
	      45000);
	list = field(root, "other_stw");
	CHECK(json_object_array_length(list) == 1);
	CHECK(!strcmp(json_object_get_string(field(json_object_array_get_idx(list, 0), "reason")),
		      "read mem stats"));
	json_object_put(root);
	unlink(path);
	CHECK(gcout_json(&r, "/nonexistent/dir/gc.json", err, sizeof(err)) < 0);
	CHECK(strstr(err, "/nonexistent/dir/gc.json") != NULL);
}

static void test_svg(void)
{
	char path[] = "/tmp/heapspy-gcsvg-XXXXXX", err[256], cmd[512];
	struct gcdecode d;
	struct gc_summary s;
	struct gc_report r;
	int fd = mkstemp(path), rc;

	CHECK(fd >= 0);
	close(fd);
	report(&d, &s, &r, "<a & \"b\">\x01");
	CHECK(gcout_svg(&r, path, err, sizeof(err)) == 0);
	snprintf(cmd, sizeof(cmd),
		 "python3 -c 'import sys, xml.etree.ElementTree as E; "
		 "g = [e for e in E.parse(sys.argv[1]).iter(\"{http://www.w3.org/2000/svg}g\") "
		 "if e.get(\"class\", \"\").startswith(\"gc-cycle\")]; "
		 "sys.exit(0 if len(g) == 3 and \"forced\" in g[1].get(\"class\") else 1)' %s",
		 path);
	rc = system(cmd);
	if (rc != 0)
		fprintf(stderr, "  %s: not well-formed, or the cycles are not all there\n", path);
	CHECK(rc == 0);
	unlink(path);
	/* No cycle at all still draws a picture. */
	d.ncycles = 0;
	d.nstws = 0;
	CHECK(gcout_svg(&r, path, err, sizeof(err)) == 0);
	unlink(path);
}

int main(void)
{
	int failures = 0;

	RUN(test_ms_like_gctrace);
	RUN(test_cycle_line);
	RUN(test_summary_lines);
	RUN(test_json);
	RUN(test_svg);
	return failures;
}

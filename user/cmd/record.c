/*
 * heapspy record: attach (or launch), switch the runtime's heap sampling on if it is off, read
 * the runtime's own records at each GC cycle until the end (or, launched, with pprof labels or
 * --leaks, stream sampled allocations from a probe too), then write a pprof heap profile and a
 * one-screen summary.
 */
#include "record.h"

#include <argp.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gc.h"
#include "leakscmd.h"
#include "recording.h"

#define TOP_SITES 10
#define TOP_LEAKS 3

/* Past cli.h's keys (CLI_OPT_BTF is 0x100). */
enum { OPT_BY_LABEL = 0x200 };

struct record_opts {
	struct session_opts s;
	const char *output;
	int top;
	const char *by_label;
};

static const struct argp_option record_options[] = {
    CLI_TARGET_OPTIONS,
    {"output", 'o', "FILE", 0, "Write the heap profile here (default heap.pb.gz)", 0},
    SESSION_SAMPLING_OPTIONS,
    {"top", 't', "N", 0, "Show the N biggest sites in the summary (default 10)", 0},
    {"by-label", OPT_BY_LABEL, "KEY", 0,
     "Group the summary by the values of the pprof label KEY the allocating goroutines had "
     "(pprof.Do, SetGoroutineLabels), the top sites within each",
     0},
    {"leaks", 'l', NULL, 0,
     "Also follow each sampled object to its free, as heapspy leaks does, and end the summary "
     "with the top leak candidates: two probe hits per sample (without it, none on a running "
     "program, one on a launched one)",
     0},
    {0},
};

static error_t parse_record(int key, char *arg, struct argp_state *state)
{
	struct record_opts *o = state->input;
	struct session_opts *so = &o->s;

	switch (key) {
	case 'o':
		o->output = arg;
		return 0;
	case 't':
		o->top = (int)cli_parse_long(state, arg, "--top", 0, 1000);
		return 0;
	case OPT_BY_LABEL:
		o->by_label = arg;
		return 0;
	case 'l':
		so->frees = true;
		return 0;
	default:
		return session_parse_opt(key, arg, state, so);
	}
}

static const char record_doc[] =
    "Record a heap profile of a running Go program, or of one heapspy launches.\n\n"
    "  heapspy record --pid PID [-o heap.pb.gz] [--duration SECS]\n"
    "  heapspy record [-o heap.pb.gz] -- ./prog ARGS...\n\n"
    "The Go runtime samples one allocation per MemProfileRate bytes and keeps its own records "
    "of them, per stack and size, published at each GC. Attached to a running program, heapspy "
    "reads those records (as runtime/pprof does from inside) at each cycle the runtime "
    "publishes: the program pays no probe hit at all, only its own sampling. Where a probe is "
    "needed, each sample costs one uprobe hit (about 1-5 us): in a program that sets pprof "
    "labels (to read the allocating goroutine's), and when heapspy launches the program (which "
    "may exit before its last cycle is read); --leaks follows each object to its free too, "
    "two hits per sample. Programs that do not link runtime/pprof run with sampling off; "
    "heapspy switches it on (at --rate) and restores it when it detaches. When the runtime was "
    "sampling already, the profile also holds what was allocated before heapspy attached.\n\n"
    "Recording ends after --duration, on Ctrl-C or SIGTERM, or when the program exits. The "
    "profile is what runtime/pprof's heap profile would be at that moment (in use as of the "
    "last completed GC); read it with `go tool pprof heap.pb.gz`, Pyroscope or Parca."
    "\vExamples:\n"
    "  heapspy record --pid 4242 --duration 30\n"
    "  heapspy record -o before.pb.gz --pid 4242 --duration 60 && go tool pprof -top "
    "before.pb.gz\n"
    "  heapspy record --leaks --pid 4242 --duration 30\n"
    "  heapspy record -- ./server -listen :8080";

static bool same_group(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* The top rows, of one label value's group where grouped (rows are biggest in use first). */
static void print_rows(const struct heapprof *h, const char *group, bool grouped, int top)
{
	double total = (double)h->total.inuse_bytes;
	int shown = 0;

	printf("  %10s %6s %12s  %s\n", "in use", "share", "allocated", "site");
	for (size_t i = 0; i < h->nrows && shown < top; i++) {
		const struct heap_row *row = &h->rows[i];
		const char *file = strrchr(row->file, '/');

		if (grouped && !same_group(row->group, group))
			continue;
		shown++;
		printf("  %8.1fMi %5.1f%% %10.1fMi  %s (%s:%u)\n",
		       (double)row->inuse_bytes / 1048576.0,
		       total > 0 ? 100.0 * (double)row->inuse_bytes / total : 0.0,
		       (double)row->alloc_bytes / 1048576.0, row->function,
		       file ? file + 1 : row->file, row->line);
	}
}

struct label_group {
	const char *value; /* NULL: the samples without the label */
	int64_t inuse_bytes, alloc_bytes;
};

static int by_group_inuse_desc(const void *a, const void *b)
{
	const struct label_group *x = a, *y = b;

	if (x->inuse_bytes != y->inuse_bytes)
		return x->inuse_bytes < y->inuse_bytes ? 1 : -1;
	return x->alloc_bytes < y->alloc_bytes ? 1 : (x->alloc_bytes > y->alloc_bytes ? -1 : 0);
}

/* One block per value of the label, biggest in use first, its top sites under it. */
static void print_groups(const struct heapprof *h, const char *key, int top)
{
	double total = (double)h->total.inuse_bytes;
	struct label_group *g = calloc(h->nrows, sizeof(*g));
	size_t ng = 0;

	if (!g)
		return;
	for (size_t i = 0; i < h->nrows; i++) {
		size_t j = 0;

		while (j < ng && !same_group(g[j].value, h->rows[i].group))
			j++;
		if (j == ng)
			g[ng++].value = h->rows[i].group;
		g[j].inuse_bytes += h->rows[i].inuse_bytes;
		g[j].alloc_bytes += h->rows[i].alloc_bytes;
	}
	qsort(g, ng, sizeof(*g), by_group_inuse_desc);
	for (size_t j = 0; j < ng; j++) {
		if (g[j].value)
			printf("  %s=%s:", key, g[j].value);
		else
			printf("  no %s label:", key);
		printf(" in use %.1f MiB (%.1f%%), allocated %.1f MiB\n",
		       (double)g[j].inuse_bytes / 1048576.0,
		       total > 0 ? 100.0 * (double)g[j].inuse_bytes / total : 0.0,
		       (double)g[j].alloc_bytes / 1048576.0);
		print_rows(h, g[j].value, true, top);
	}
	free(g);
}

static void print_summary(const struct session *s, const struct heapprof *h, enum evloop_end end,
			  int top, const char *by_label)
{
	double total = (double)h->total.inuse_bytes;
	char line[512], rate[512];

	printf("heapspy: pid %d %s (%s), %.1fs, ended by %s\n", (int)s->t.pid, s->t.display,
	       s->t.go_version, s->secs, evloop_end_str(end, s->loop.signal));
	session_rate_text(s, rate, sizeof(rate));
	printf("  %s; %" PRIu64 " samples, %" PRIu64 " frees%s, %" PRIu64 " events lost", rate,
	       s->agg.samples, s->agg.frees,
	       s->agg.records_only    ? " (the runtime's records, read at each GC: no probe)"
	       : s->agg.runtime_frees ? " (the runtime's records)"
				      : "",
	       s->counters[HS_CNT_LOST]);
	if (s->baseline_records)
		printf("; %ld runtime records from before attach", s->baseline_records);
	if (s->agg.repeated)
		printf("; %" PRIu64 " repeated probe hits dropped", s->agg.repeated);
	if (session_truncated_text(s, line, sizeof(line)))
		printf("\n  %s", line);
	if (session_labels_text(s, line, sizeof(line)))
		printf("\n  %s", line);
	printf("\n  in use %.1f MiB in %" PRId64 " objects; allocated %.1f MiB\n",
	       total / 1048576.0, h->total.inuse_objects, (double)h->total.alloc_bytes / 1048576.0);
	selfcheck_line(&s->check, line, sizeof(line));
	printf("  %s\n", line);
	if (!h->nrows)
		return;
	if (by_label)
		print_groups(h, by_label, top);
	else
		print_rows(h, NULL, false, top);
}

static void on_tick(void *ctx, double elapsed)
{
	struct recording *r = ctx;

	recording_tick(r, elapsed);
	session_progress(&r->s, elapsed, NULL);
}

static int write_profile(struct recording *r, const struct record_opts *o, enum evloop_end end,
			 char *err, size_t errlen)
{
	struct heapprof h;
	int rc;

	rc = recording_profile(r, NULL, &h, err, errlen);
	if (rc)
		return rc;
	rc = pprof_write(h.p, o->output, err, errlen);
	if (!rc) {
		print_summary(&r->s, &h, end, o->top, o->by_label);
		if (heapagg_follows_objects(&r->s.agg))
			leaks_brief(stdout, &r->leaks, &r->s, &h, TOP_LEAKS);
		gc_record_summary(&r->gc, &r->s, stdout, o->output);
		printf("  wrote %s: go tool pprof %s\n", o->output, o->output);
	}
	heapprof_free(&h);
	return rc;
}

int cmd_record(int argc, char **argv)
{
	struct record_opts o = {
	    .s = {.heap = true, .rate = SESSION_DEFAULT_RATE},
	    .output = "heap.pb.gz",
	    .top = TOP_SITES,
	};
	struct argp argp = {record_options, parse_record, NULL, record_doc, NULL, NULL, NULL};
	struct recording r;
	enum evloop_end end;
	char err[512] = "";
	int rc, status;

	cli_parse(&argp, argc, argv, &o, &o.s.tgt);
	/* An unwritable output is found before the target is touched. */
	if (cli_check_output(o.output, err, sizeof(err)) != 0) {
		fprintf(stderr, "heapspy: %s\n", err);
		return 1;
	}
	if (recording_start(&r, "record", &o.s, err, sizeof(err)) != 0) {
		fprintf(stderr, "heapspy: %s\n", err);
		recording_close(&r);
		return 1;
	}
	r.by_label = o.by_label;
	end = session_run(&r.s, on_tick, &r);
	recording_stop(&r, end);
	rc = write_profile(&r, &o, end, err, sizeof(err));
	if (rc)
		fprintf(stderr, "heapspy: %s\n", err);
	else if (r.s.error)
		fprintf(stderr, "heapspy: out of memory while recording: the profile is partial\n");
	status = session_wait(&r.s, end);
	recording_close(&r);
	if (rc)
		return 1;
	return status > 0 ? status : 0;
}

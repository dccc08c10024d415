/*
 * heapspy gc: attach (or launch), probe the runtime's stop-the-world and GC functions, print a
 * gctrace-like line per cycle as it ends, then a summary, and on request the JSON and SVG.
 */
#include "gc.h"

#include <argp.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "gcout.h"
#include "gcstats.h"

/* Non-GC stops listed in the text output; the JSON holds them all. */
#define OTHER_STWS_SHOWN 20

enum { OPT_JSON = 0x200, OPT_SVG };

struct gc_opts {
	struct session_opts s;
	const char *json;
	const char *svg;
};

struct gc_cmd {
	struct gc_opts o;
	struct session s;
	struct gctrace gt;
	double secs; /* traced: to the loop's end, before the probes' slow detach */
};

static const struct argp_option gc_options[] = {
    CLI_TARGET_OPTIONS,
    {"json", OPT_JSON, "FILE", 0, "Write every cycle, the summary and the other stops as JSON", 0},
    {"svg", OPT_SVG, "FILE", 0, "Draw the heap, its goal and every cycle's pauses over time", 0},
    {0},
};

static error_t parse_gc(int key, char *arg, struct argp_state *state)
{
	struct gc_opts *o = state->input;

	switch (key) {
	case OPT_JSON:
		o->json = arg;
		return 0;
	case OPT_SVG:
		o->svg = arg;
		return 0;
	default:
		return cli_parse_target(key, arg, state, &o->s.tgt);
	}
}

static const char gc_doc[] =
    "Every garbage-collection cycle, every stop-the-world pause and the heap's growth of a "
    "running Go program, or of one heapspy launches: what GODEBUG=gctrace=1 prints, without "
    "restarting the program.\n\n"
    "  heapspy gc --pid PID [--duration SECS] [--json FILE] [--svg FILE]\n"
    "  heapspy gc [--json FILE] [--svg FILE] -- ./prog ARGS...\n\n"
    "One line per cycle, as gctrace writes it: the runtime's cycle number, when it started, "
    "the sweep-termination pause + concurrent mark + mark-termination pause, the heap at GC "
    "start, at mark termination and live after it, and the goal. heapspy reads these from the "
    "runtime's own records, so they agree with gctrace, and its probes stay out of the GC's "
    "pauses; stops of the world that are not the GC's (ReadMemStats, goroutine profiles, "
    "GOMAXPROCS ...) are listed apart. Where the records cannot be read, the probes time every "
    "pause themselves: a probe hit costs microseconds, so heapspy measures that cost and takes "
    "it out of the figures.\n\n"
    "Tracing ends after --duration, on Ctrl-C or SIGTERM, or when the program exits. It costs "
    "the program a probe hit (about 1 us) per GC cycle, two per stop of the world that is not "
    "the GC's and one per growth of the heap; heap sampling stays as the program had it."
    "\vExamples:\n"
    "  heapspy gc --pid 4242 --duration 30 --svg gc.svg\n"
    "  heapspy gc --json gc.json -- ./server -listen :8080";

static int64_t time_base(const struct gctrace *g, const struct session *s)
{
	return g->time_base ? g->time_base : (int64_t)s->start_ns;
}

static void on_cycle(void *ctx, const struct gc_cycle *c)
{
	struct gc_cmd *cmd = ctx;

	gcout_cycle(stdout, c, time_base(&cmd->gt, &cmd->s));
}

static void on_tick(void *ctx, double elapsed)
{
	struct gc_cmd *cmd = ctx;
	char extra[64];

	snprintf(extra, sizeof(extra), "%zu GC cycles", cmd->gt.dec.ncycles);
	/* Kept fresh: a launched program may have exited by the end. */
	if (cmd->s.t.mem_fd >= 0)
		gctrace_read_settings(&cmd->gt, &cmd->s.t);
	session_progress(&cmd->s, elapsed, extra);
}

static void report_init(struct gc_report *r, const struct gc_summary *sum, struct gc_tuning *tune,
			const struct gctrace *g, const struct session *s)
{
	gctune_predict(g->dec.cycles, g->dec.ncycles, &g->settings, tune);
	*r = (struct gc_report){
	    .settings = &g->settings,
	    .tune = tune,
	    .d = &g->dec,
	    .sum = sum,
	    .time_base = time_base(g, s),
	    .time_base_is_program = g->time_base != 0,
	    .pid = (int)s->t.pid,
	    .program = s->t.display,
	    .go_version = s->t.go_version,
	    .offsets = gctrace_offsets_source(g),
	    .cost_measured = g->calibrated,
	    .jump_hit_ns = g->jump_hit_ns,
	    .step_hit_ns = g->step_hit_ns,
	    .hits = g->counters[HS_GC_CNT_HITS],
	    .lost = g->counters[HS_GC_CNT_LOST],
	    .read_errors = g->counters[HS_GC_CNT_READ_ERRORS],
	};
}

static void print_line(void *ctx, const char *line)
{
	fprintf(ctx, "  %s\n", line);
}

static int write_outputs(struct gc_cmd *cmd, enum evloop_end end)
{
	struct gc_summary sum;
	struct gc_tuning tune;
	struct gc_report r;
	char err[512];
	int rc;

	if (gcstats_summarize(&cmd->gt.dec, cmd->secs, &sum)) {
		fprintf(stderr, "heapspy: out of memory\n");
		return 1;
	}
	report_init(&r, &sum, &tune, &cmd->gt, &cmd->s);
	gcout_other_stws(stdout, &r, OTHER_STWS_SHOWN);
	printf("heapspy gc: pid %d %s (%s), %.1fs, ended by %s\n", r.pid, r.program, r.go_version,
	       sum.secs, evloop_end_str(end, cmd->s.loop.signal));
	gcout_summary(&r, print_line, stdout);
	if (cmd->gt.error)
		fprintf(stderr, "heapspy: out of memory while tracing: some cycles are missing\n");
	rc = cmd->o.json ? gcout_json(&r, cmd->o.json, err, sizeof(err)) : 0;
	if (!rc && cmd->o.svg)
		rc = gcout_svg(&r, cmd->o.svg, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "heapspy: %s\n", err);
		return 1;
	}
	if (cmd->o.json)
		printf("  wrote %s\n", cmd->o.json);
	if (cmd->o.svg)
		printf("  wrote %s: open it in a browser\n", cmd->o.svg);
	return 0;
}

int cmd_gc(int argc, char **argv)
{
	struct gc_cmd cmd = {0};
	struct argp argp = {gc_options, parse_gc, NULL, gc_doc, NULL, NULL, NULL};
	enum evloop_end end;
	char err[512] = "";
	int rc, status;

	cli_parse(&argp, argc, argv, &cmd.o, &cmd.o.s.tgt);
	if ((cmd.o.json && cli_check_output(cmd.o.json, err, sizeof(err))) ||
	    (cmd.o.svg && cli_check_output(cmd.o.svg, err, sizeof(err)))) {
		fprintf(stderr, "heapspy: %s\n", err);
		return 1;
	}
	gctrace_init(&cmd.gt, &cmd.o.s.tgt);
	cmd.gt.on_cycle = on_cycle;
	cmd.gt.on_cycle_ctx = &cmd;
	cmd.o.s.extra = gctrace_probes(&cmd.gt);
	if (session_start(&cmd.s, &cmd.o.s, err, sizeof(err)) != 0) {
		fprintf(stderr, "heapspy: %s\n", err);
		session_close(&cmd.s);
		gctrace_free(&cmd.gt);
		return 1;
	}
	end = session_run(&cmd.s, on_tick, &cmd);
	cmd.secs = (double)(evloop_now_ns() - cmd.s.start_ns) / 1e9;
	/* The settings as the cycles ended, not only as they began. */
	if (cmd.s.t.mem_fd >= 0)
		gctrace_read_settings(&cmd.gt, &cmd.s.t);
	session_stop(&cmd.s, end);
	gctrace_finish(&cmd.gt);
	rc = write_outputs(&cmd, end);
	status = session_wait(&cmd.s, end);
	session_close(&cmd.s);
	gctrace_free(&cmd.gt);
	if (rc)
		return rc;
	return status > 0 ? status : 0;
}

/* ---- heapspy record's GC summary ---- */

static void comment_line(void *ctx, const char *line)
{
	pprof_comment(ctx, "gc: %s", line);
}

void gc_pprof_comments(const struct gctrace *g, const struct session *s, struct pprof *p)
{
	struct gc_summary sum;
	struct gc_tuning tune;
	struct gc_report r;

	if (gcstats_summarize(&g->dec, session_secs(s), &sum))
		return;
	report_init(&r, &sum, &tune, g, s);
	gcout_summary(&r, comment_line, p);
}

char *gc_json_text(const struct gctrace *g, const struct session *s)
{
	double secs = session_secs(s);
	struct gc_summary sum;
	struct gc_tuning tune;
	struct gc_report r;

	/* Older cycles let go (gcdecode_keep): the summary covers the ones kept. */
	if (g->dec.dropped && g->dec.ncycles)
		secs = (double)((int64_t)evloop_now_ns() - g->dec.cycles[0].start_ns) / 1e9;
	if (gcstats_summarize(&g->dec, secs, &sum))
		return NULL;
	report_init(&r, &sum, &tune, g, s);
	return gcout_json_text(&r);
}

void gc_record_summary(const struct gctrace *g, const struct session *s, FILE *out,
		       const char *profile)
{
	char path[PATH_MAX], err[512];
	struct gc_summary sum;
	struct gc_tuning tune;
	struct gc_report r;

	if (gcstats_summarize(&g->dec, s->secs, &sum))
		return;
	report_init(&r, &sum, &tune, g, s);
	gcout_summary(&r, print_line, out);
	snprintf(path, sizeof(path), "%s.gc.json", profile);
	if (gcout_json(&r, path, err, sizeof(err)) == 0)
		fprintf(out, "  wrote the GC cycles and heap timeline to %s\n", path);
	else
		fprintf(stderr, "heapspy: %s\n", err);
}

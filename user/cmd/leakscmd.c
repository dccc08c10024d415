/*
 * heapspy leaks: attach (or launch), follow sampled objects through GC cycles, and name the
 * allocation sites whose memory keeps piling up (user/model/leaks.h states the rule). Writes the
 * ranked candidates as text, optionally JSON, and a heap profile of old objects only.
 */
#include "leakscmd.h"

#include <argp.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "gostack.h"
#include "leakout.h"

/* Temporary garbage dies within 2 cycles of its allocation; 3 is older than any of it. */
#define MIN_AGE	       3
#define DEFAULT_TOP    10
#define DEFAULT_OUTPUT "leaks.pb.gz"

struct leaks_opts {
	struct session_opts s;
	const char *json;
	const char *output; /* NULL: DEFAULT_OUTPUT if it can be written */
	int64_t min_age;    /* 0: half the cycles recorded */
	int top;
};

enum { OPT_JSON = 0x200, OPT_MIN_AGE };

static const struct argp_option leaks_options[] = {
    CLI_TARGET_OPTIONS,
    {"json", OPT_JSON, "FILE", 0, "Also write the candidates, with their evidence, as JSON", 0},
    {"output", 'o', "FILE", 0,
     "Write a heap profile of old objects only here (default leaks.pb.gz)", 0},
    {"min-age", OPT_MIN_AGE, "CYCLES", 0,
     "Old means alive for at least CYCLES GC cycles (default: half the cycles recorded, and "
     "at least 3, older than any temporary garbage can be)",
     0},
    SESSION_SAMPLING_OPTIONS,
    {"top", 't', "N", 0, "Show at most N candidates (default 10)", 0},
    {0},
};

static error_t parse_leaks(int key, char *arg, struct argp_state *state)
{
	struct leaks_opts *o = state->input;
	struct session_opts *so = &o->s;

	switch (key) {
	case OPT_JSON:
		o->json = arg;
		return 0;
	case 'o':
		o->output = arg;
		return 0;
	case OPT_MIN_AGE:
		o->min_age = cli_parse_long(state, arg, "--min-age", 1, 1000000);
		return 0;
	case 't':
		o->top = (int)cli_parse_long(state, arg, "--top", 0, 1000);
		return 0;
	default:
		return session_parse_opt(key, arg, state, so);
	}
}

static const char leaks_doc[] =
    "Find what leaks in a running Go program, or in one heapspy launches.\n\n"
    "  heapspy leaks --pid PID --duration SECS [--json FILE] [-o leaks.pb.gz]\n"
    "  heapspy leaks --duration SECS [--json FILE] -- ./prog ARGS...\n\n"
    "A heap profile shows what is big, not what grows. heapspy follows every sampled object "
    "from its allocation through the garbage collections it survives, records after each GC "
    "how many bytes every allocation site still holds, and names the sites whose live bytes "
    "keep growing while their old objects pile up. A cache that fills and then replaces its "
    "entries is not a leak, nor is temporary garbage; a site that grew and stopped is shown "
    "apart. Each candidate comes with its stack, bytes in use, growth per second and per GC "
    "cycle, the age of its oldest object, the samples behind the verdict and a confidence; "
    "with too few samples or cycles heapspy says the evidence is thin instead of guessing. "
    "Following objects costs two probe hits per sample (its allocation and its free, about "
    "1-5 us each), where heapspy record takes one.\n\n"
    "Give it time: a verdict needs at least 3 GC cycles, and 10 to 30 seconds of a program "
    "that allocates steadily is typical. The profile written with -o holds only objects in "
    "use that have survived --min-age cycles: `go tool pprof leaks.pb.gz` shows where they "
    "come from."
    "\vExamples:\n"
    "  heapspy leaks --pid 4242 --duration 30\n"
    "  heapspy leaks --duration 20 --json leaks.json -- ./server -listen :8080";

struct tick_ctx {
	struct session *s;
	struct leaks *l;
};

/* Sites are stacks as the profile shows them. */
static uint32_t shown(void *ctx, const struct heap_stack *st, uint64_t *out)
{
	return gostack_shown(ctx, st->pcs, st->nframes, out);
}

void leaks_start(struct leaks *l, struct session *s)
{
	leaks_init(l, shown, &s->t);
}

void leaks_tick(struct leaks *l, struct session *s, double elapsed)
{
	int rc = leaks_observe(l, &s->agg, session_cycle(s), elapsed);

	if (rc && !s->error)
		s->error = rc;
}

static void on_tick(void *ctx, double elapsed)
{
	struct tick_ctx *tc = ctx;
	char extra[64];

	leaks_tick(tc->l, tc->s, elapsed);
	snprintf(extra, sizeof(extra), "%zu GC cycles followed", leaks_points(tc->l));
	session_progress(tc->s, elapsed, extra);
}

static int analyze(struct leaks *l, struct session *s, struct leak_report *r)
{
	struct leaks_now now = {session_cycle(s), evloop_now_ns(), session_secs(s)};

	/* Cycles that ended while the probes were drained. */
	leaks_tick(l, s, now.secs);
	return leaks_analyze(l, &s->agg, &now, r);
}

void leaks_brief(FILE *f, struct leaks *l, struct session *s, struct heapprof *h, int top)
{
	struct leak_report r;

	if (!s->hp.mprof_cycle) {
		fprintf(f, "  leaks: GC cycles unknown (no runtime.mProfCycle): no verdict\n");
		return;
	}
	if (analyze(l, s, &r)) {
		fprintf(f, "  leaks: out of memory: no verdict\n");
		return;
	}
	leakout_brief(f, &r, h, top);
	leaks_report_free(&r);
}

char *leaks_json_text(struct leaks *l, struct session *s)
{
	struct heapprof_meta m = {.rate = session_period(s),
				  .cycle = heapagg_profile_cycle(&s->agg, session_cycle(s))};
	struct leakout_info info = {
	    .pid = (int)s->t.pid,
	    .program = s->t.display,
	    .go_version = s->t.go_version,
	    .secs = session_secs(s),
	    .rate = m.rate,
	};
	struct leak_report r;
	struct heapprof h;
	char *text = NULL;

	if (heapprof_build(&h, &s->t, &s->agg, &m))
		return NULL;
	if (!analyze(l, s, &r)) {
		text = leakout_json_text(&r, l, &h, &info);
		leaks_report_free(&r);
	}
	heapprof_free(&h);
	return text;
}

static void print_header(const struct session *s, enum evloop_end end)
{
	char line[512], rate[512];

	printf("heapspy leaks: pid %d %s (%s), %.1fs, ended by %s\n", (int)s->t.pid, s->t.display,
	       s->t.go_version, s->secs, evloop_end_str(end, s->loop.signal));
	session_rate_text(s, rate, sizeof(rate));
	printf("  %s; %" PRIu64 " samples, %" PRIu64 " frees, %" PRIu64 " events lost\n", rate,
	       s->agg.samples, s->agg.frees, s->counters[HS_CNT_LOST]);
	selfcheck_line(&s->check, line, sizeof(line));
	printf("  %s\n", line);
	if (session_truncated_text(s, line, sizeof(line)))
		printf("  %s\n", line);
	if (s->counters[HS_CNT_LOST])
		printf("  warning: events were lost; an object whose free was lost looks alive "
		       "forever, so verdicts may be wrong\n");
	/* Restoring the rate at the end clears rate_switched; a changed rate still tells. */
	if ((s->rate_switched || s->old_rate != s->rate) && !s->o->tgt.argv)
		printf("  note: sampling started at attach, so objects from before are invisible: "
		       "a site that replaces them with new ones looks like it grows until all are "
		       "replaced\n");
	printf("\n");
}

static int build_old_profile(struct heapprof *h, struct session *s, const struct leaks *l,
			     int64_t min_age)
{
	int64_t now = session_cycle(s);
	struct heapprof_meta m = {
	    .rate = s->end_rate,
	    .cycle = now,
	    .time_ns = s->start_wall_ns,
	    .duration_ns = (int64_t)(s->secs * 1e9),
	    .min_age = min_age,
	    .attach_cycle = l->start_cycle == HEAPAGG_UNKNOWN_CYCLE ? now : l->start_cycle,
	};
	int rc = heapprof_build(h, &s->t, &s->agg, &m);
	char line[512];

	if (rc)
		return rc;
	pprof_comment(h->p, "heapspy leaks: pid %d %s %s", (int)s->t.pid, s->t.display,
		      s->t.go_version);
	pprof_comment(h->p,
		      "old objects only: in use at heap-profile cycle %" PRId64
		      " and alive for at least %" PRId64 " GC cycles",
		      now, min_age);
	if (s->baseline_records)
		pprof_comment(h->p, "objects from before heapspy attached count as alive since "
				    "attach");
	if (session_truncated_text(s, line, sizeof(line)))
		pprof_comment(h->p, "%s", line);
	selfcheck_line(&s->check, line, sizeof(line));
	pprof_comment(h->p, "%s", line);
	return 0;
}

static int report(struct session *s, struct leaks *l, const struct leaks_opts *o,
		  enum evloop_end end, char *err, size_t errlen)
{
	int64_t recorded =
	    l->start_cycle == HEAPAGG_UNKNOWN_CYCLE ? 0 : session_cycle(s) - l->start_cycle;
	struct leakout_info info = {
	    .pid = (int)s->t.pid,
	    .program = s->t.display,
	    .go_version = s->t.go_version,
	    .secs = s->secs,
	    .rate = s->end_rate,
	    .min_age = o->min_age		? o->min_age
		       : recorded / 2 > MIN_AGE ? recorded / 2
						: MIN_AGE,
	    .profile = o->output,
	};
	struct leak_report r;
	struct heapprof h;
	int rc;

	rc = build_old_profile(&h, s, l, info.min_age);
	if (rc) {
		snprintf(err, errlen, "cannot build the old-objects profile: %s", strerror(-rc));
		return rc;
	}
	rc = analyze(l, s, &r);
	if (rc) {
		snprintf(err, errlen, "cannot analyze: %s", strerror(-rc));
		heapprof_free(&h);
		return rc;
	}
	print_header(s, end);
	leakout_text(stdout, &r, &h, o->top);
	rc = o->output ? pprof_write(h.p, o->output, err, errlen) : 0;
	if (!rc && o->output)
		printf("\nwrote %s (objects alive for at least %" PRId64
		       " GC cycles): go tool pprof %s\n",
		       o->output, info.min_age, o->output);
	if (!rc && o->json) {
		rc = leakout_json(o->json, &r, l, &h, &info, err, errlen);
		if (!rc)
			printf("wrote %s\n", o->json);
	}
	leaks_report_free(&r);
	heapprof_free(&h);
	return rc;
}

int cmd_leaks(int argc, char **argv)
{
	struct leaks_opts o = {
	    .s = {.heap = true, .frees = true, .rate = SESSION_DEFAULT_RATE},
	    .top = DEFAULT_TOP,
	};
	struct argp argp = {leaks_options, parse_leaks, NULL, leaks_doc, NULL, NULL, NULL};
	struct session s;
	struct leaks l;
	struct tick_ctx tc = {&s, &l};
	enum evloop_end end;
	char err[512] = "";
	int rc, status;

	cli_parse(&argp, argc, argv, &o, &o.s.tgt);
	/* Unwritable outputs are found before the target is touched. */
	if ((o.output && cli_check_output(o.output, err, sizeof(err)) != 0) ||
	    (o.json && cli_check_output(o.json, err, sizeof(err)) != 0)) {
		fprintf(stderr, "heapspy: %s\n", err);
		return 1;
	}
	/* The verdict is the point; the profile nobody asked for is written where it can be. */
	if (!o.output && cli_check_output(DEFAULT_OUTPUT, err, sizeof(err)) != 0)
		fprintf(stderr, "heapspy: %s: no old-objects profile (-o FILE says where)\n", err);
	else if (!o.output)
		o.output = DEFAULT_OUTPUT;
	if (session_start(&s, &o.s, err, sizeof(err)) != 0) {
		fprintf(stderr, "heapspy: %s\n", err);
		session_close(&s);
		return 1;
	}
	if (!s.hp.mprof_cycle) {
		fprintf(stderr,
			"heapspy: cannot follow objects across GC cycles: runtime.mProfCycle "
			"not found in %s\n",
			s.t.display);
		if (s.launched)
			kill(s.t.pid, SIGKILL);
		session_stop(&s, EVLOOP_ERROR);
		session_wait(&s, EVLOOP_ERROR);
		session_close(&s);
		return 1;
	}
	leaks_start(&l, &s);
	end = session_run(&s, on_tick, &tc);
	session_stop(&s, end);
	rc = report(&s, &l, &o, end, err, sizeof(err));
	if (rc)
		fprintf(stderr, "heapspy: %s\n", err);
	else if (s.error)
		fprintf(stderr,
			"heapspy: out of memory while recording: the verdicts are partial\n");
	status = session_wait(&s, end);
	leaks_free(&l);
	session_close(&s);
	if (rc)
		return 1;
	return status > 0 ? status : 0;
}

#include "gcout.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MIB 1048576.0

void gcout_ms(char *buf, size_t len, int64_t ns)
{
	uint64_t x, div = 1000;
	int dec = 3;

	if (ns < 0) {
		snprintf(buf, len, "?");
		return;
	}
	if (ns >= 10000000) {
		snprintf(buf, len, "%" PRIu64, (uint64_t)ns / 1000000);
		return;
	}
	x = (uint64_t)ns / 1000;
	if (!x) {
		snprintf(buf, len, "0");
		return;
	}
	for (; x >= 100; x /= 10, div /= 10)
		dec--;
	snprintf(buf, len, "%" PRIu64 ".%0*" PRIu64, x / div, dec, x % div);
}

static void fmt_mb(char *buf, size_t len, int64_t bytes)
{
	if (bytes < 0)
		snprintf(buf, len, "?");
	else
		snprintf(buf, len, "%" PRId64, bytes >> 20);
}

static double secs_since(int64_t ns, int64_t base)
{
	return (double)(ns - base) / 1e9;
}

void gcout_cycle(FILE *f, const struct gc_cycle *c, int64_t time_base)
{
	char a[24], b[24], cc[24], h0[24], h1[24], h2[24], goal[24];

	gcout_ms(a, sizeof(a), c->sweep_term_ns);
	gcout_ms(b, sizeof(b), c->mark_ns);
	gcout_ms(cc, sizeof(cc), c->mark_term_ns);
	fmt_mb(h0, sizeof(h0), c->heap0);
	fmt_mb(h1, sizeof(h1), c->heap1);
	fmt_mb(h2, sizeof(h2), c->heap2);
	fmt_mb(goal, sizeof(goal), c->heap_goal);
	if (c->cycle == GC_UNKNOWN)
		fprintf(f, "gc ?");
	else
		fprintf(f, "gc %" PRId64, c->cycle);
	if (c->start_ns != GC_UNKNOWN)
		fprintf(f, " @%.3fs", secs_since(c->start_ns, time_base));
	fprintf(f, ": %s+%s+%s ms clock, %s->%s->%s MB, %s MB goal%s\n", a, b, cc, h0, h1, h2, goal,
		c->forced == 1 ? " (forced)" : "");
}

void gcout_other_stws(FILE *f, const struct gc_report *r, size_t max)
{
	const struct gcdecode *d = r->d;

	for (size_t i = 0; i < d->nstws && i < max; i++) {
		char ms[24];

		gcout_ms(ms, sizeof(ms), d->stws[i].duration_ns);
		fprintf(f, "stop-the-world @%.3fs: %s ms, %s (not GC)\n",
			secs_since(d->stws[i].start_ns, r->time_base), ms, d->stws[i].reason);
	}
	if (d->nstws > max)
		fprintf(f, "... and %zu more stops that were not the GC's\n", d->nstws - max);
}

static void emit(void (*line)(void *ctx, const char *s), void *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void emit(void (*line)(void *ctx, const char *s), void *ctx, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	line(ctx, buf);
}

static void fmt_mib(char *buf, size_t len, int64_t bytes)
{
	if (bytes < 0)
		snprintf(buf, len, "?");
	else
		snprintf(buf, len, "%.1f", (double)bytes / MIB);
}

static void fmt_setting(char *buf, size_t len, int64_t v, bool bytes)
{
	if (v == GC_UNKNOWN)
		snprintf(buf, len, "unknown");
	else if (v == GCTUNE_OFF)
		snprintf(buf, len, "off");
	else if (v == GCTUNE_NO_LIMIT)
		snprintf(buf, len, "none");
	else if (bytes)
		snprintf(buf, len, "%.1f MiB", (double)v / MIB);
	else
		snprintf(buf, len, "%" PRId64, v);
}

static void tuning_summary(const struct gc_report *r, void (*line)(void *ctx, const char *s),
			   void *ctx)
{
	const struct gc_settings *st = r->settings;
	const struct gc_tuning *t = r->tune;
	char gogc[32], lim[32], procs[32], cg[32];

	fmt_setting(gogc, sizeof(gogc), st->gogc, false);
	fmt_setting(lim, sizeof(lim), st->gomemlimit, true);
	fmt_setting(procs, sizeof(procs), st->gomaxprocs, false);
	fmt_setting(cg, sizeof(cg), st->memory_limit, true);
	emit(line, ctx, "settings: GOGC %s, GOMEMLIMIT %s, GOMAXPROCS %s, cgroup memory limit %s",
	     gogc, lim, procs, cg);
	if (!t->predicted) {
		emit(line, ctx, "tuning: no prediction: %s", t->why);
		return;
	}
	emit(line, ctx,
	     "tuning (the Go GC guide's model, fitted on %zu cycles: live %.1f MiB, stacks and "
	     "globals %.1f MiB, %.1f MiB allocated while marking):",
	     t->steady, t->live_heap / MIB, t->roots / MIB, t->mark_alloc / MIB);
	emit(line, ctx, "    %-30s %16s %20s %14s", "setting", "cycles/GiB", "peak heap MiB",
	     "GC CPU");
	emit(line, ctx, "    %-30s %16.1f %20.1f %13.1f%%", "observed", t->cycles_per_gib,
	     t->peak_heap / MIB, 100 * t->gc_cpu);
	for (size_t i = 0; i < t->noptions; i++) {
		const struct gc_option *o = &t->options[i];
		const char *over = o->fits ? ""
				   : t->limit == GCTUNE_NO_LIMIT
				       ? "  (past the growth allowed without a limit)"
				       : "  (over the limit less headroom)";
		char name[64];

		gctune_setting(name, sizeof(name), o);
		emit(line, ctx, "    %-30s %9.1f +-%3.0f%% %13.1f +-%3.0f%% %6.1f%% +-%3.0f%%%s",
		     name, o->cycles_per_gib, 100 * o->cycles_unc, o->peak_heap / MIB,
		     100 * o->peak_unc, 100 * o->gc_cpu, 100 * o->cpu_unc, over);
	}
	if (t->gc_cpu_measured)
		emit(line, ctx,
		     "GC CPU: the runtime's own account (work.cpuStats: assists, mark workers, "
		     "pauses; not idle-time marking), as a share of GOMAXPROCS x wall time, as "
		     "GCCPUFraction and gctrace count it");
	else
		emit(line, ctx,
		     "GC CPU: a quarter of GOMAXPROCS through marking (the dedicated workers) and "
		     "all of it in the pauses, as a share of GOMAXPROCS; assists and idle-time "
		     "marking are not counted");
	emit(line, ctx, "advice: %s", t->advice);
}

void gcout_summary(const struct gc_report *r, void (*line)(void *ctx, const char *s), void *ctx)
{
	const struct gc_summary *s = r->sum;
	char p50[24], p90[24], p99[24], max[24], stw[24], other[24], l0[24], l1[24], g0[24], g1[24],
	    probes[24];

	gcout_ms(p50, sizeof(p50), s->pause_p50);
	gcout_ms(p90, sizeof(p90), s->pause_p90);
	gcout_ms(p99, sizeof(p99), s->pause_p99);
	gcout_ms(max, sizeof(max), s->pause_max);
	gcout_ms(stw, sizeof(stw), s->stw_ns);
	gcout_ms(other, sizeof(other), s->other_stw_ns);
	gcout_ms(probes, sizeof(probes), s->probe_ns);
	fmt_mib(l0, sizeof(l0), s->live_first);
	fmt_mib(l1, sizeof(l1), s->live_last);
	fmt_mib(g0, sizeof(g0), s->goal_first);
	fmt_mib(g1, sizeof(g1), s->goal_last);

	emit(line, ctx, "%zu GC cycles in %.1fs (%.1f/s), %zu forced", s->cycles, s->secs,
	     s->cycles_per_sec, s->forced);
	if (s->pauses)
		emit(line, ctx,
		     "GC pauses (%zu, two per cycle): p50 %s ms, p90 %s ms, p99 %s ms, max %s ms",
		     s->pauses, p50, p90, p99, max);
	emit(line, ctx, "GC stop-the-world %s ms in total, %.3f%% of wall time", stw,
	     100.0 * s->stw_share);
	if (s->other_stws)
		emit(line, ctx, "%zu other stop-the-worlds (not GC, not counted above): %s ms",
		     s->other_stws, other);
	emit(line, ctx, "heap live %s -> %s MiB, goal %s -> %s MiB; %.1f MiB taken from the OS", l0,
	     l1, g0, g1, (double)s->grown_bytes / MIB);
	if (r->cost_measured)
		emit(line, ctx,
		     "heapspy's probes: %" PRIu64
		     " hits, %.1f us each (%.1f us where stepped out of "
		     "line), %.3f%% of one CPU; %s ms of them inside GC pauses, removed from the "
		     "figures above",
		     r->hits, r->jump_hit_ns / 1e3, r->step_hit_ns / 1e3,
		     s->secs > 0 ? 100.0 * r->d->probe_ns / (s->secs * 1e9) : 0, probes);
	else
		emit(line, ctx,
		     "heapspy's probes: %" PRIu64
		     " hits, cost not measured; the pauses include them",
		     r->hits);
	if (r->d->repeated || r->d->missed || r->lost || r->read_errors)
		emit(line, ctx,
		     "%" PRIu64 " repeated probe hits dropped, %" PRIu64 " cycles missed, %" PRIu64
		     " events lost, %" PRIu64 " unreadable runtime words",
		     r->d->repeated, r->d->missed, r->lost, r->read_errors);
	if (r->d->attaching)
		emit(line, ctx, "%" PRIu64 " cycles ended while the probes were going in",
		     r->d->attaching);
	if (!strcmp(r->offsets, "none"))
		emit(line, ctx,
		     "the runtime's own records are unreadable (no field offsets for this release, "
		     "or its variables not found): timing from heapspy's probes, heap sizes "
		     "unknown");
	if (r->tune)
		tuning_summary(r, line, ctx);
}

/* ---- JSON ---- */

static json_object *opt_i64(int64_t v)
{
	return v == GC_UNKNOWN ? NULL : json_object_new_int64(v);
}

static json_object *rel_ns(int64_t ns, int64_t base)
{
	return ns == GC_UNKNOWN ? NULL : json_object_new_int64(ns - base);
}

static json_object *json_cycle(const struct gc_cycle *c, int64_t base)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "cycle", opt_i64(c->cycle));
	json_object_object_add(o, "start_ns", rel_ns(c->start_ns, base));
	json_object_object_add(o, "forced",
			       c->forced == GC_UNKNOWN ? NULL : json_object_new_boolean(c->forced));
	json_object_object_add(o, "sweep_termination_pause_ns", opt_i64(c->sweep_term_ns));
	json_object_object_add(o, "mark_ns", opt_i64(c->mark_ns));
	json_object_object_add(o, "mark_termination_pause_ns", opt_i64(c->mark_term_ns));
	json_object_object_add(o, "heap_live_before_bytes", opt_i64(c->heap0));
	json_object_object_add(o, "heap_live_after_bytes", opt_i64(c->heap2));
	json_object_object_add(o, "heap_goal_bytes", opt_i64(c->heap_goal));
	json_object_object_add(o, "heap_at_mark_termination_bytes", opt_i64(c->heap1));
	json_object_object_add(o, "probe_ns_removed", json_object_new_int64(c->probe_ns));
	return o;
}

static json_object *json_summary(const struct gc_report *r)
{
	const struct gc_summary *s = r->sum;
	json_object *o = json_object_new_object(), *p = json_object_new_object();

	json_object_object_add(o, "pid", json_object_new_int(r->pid));
	json_object_object_add(o, "program", json_object_new_string(r->program));
	json_object_object_add(o, "go_version", json_object_new_string(r->go_version));
	json_object_object_add(o, "duration_s", json_object_new_double(s->secs));
	json_object_object_add(
	    o, "time_base",
	    json_object_new_string(r->time_base_is_program ? "program start" : "recording start"));
	json_object_object_add(o, "cycles", json_object_new_int64((int64_t)s->cycles));
	json_object_object_add(o, "forced_cycles", json_object_new_int64((int64_t)s->forced));
	json_object_object_add(o, "cycles_per_second", json_object_new_double(s->cycles_per_sec));
	json_object_object_add(p, "count", json_object_new_int64((int64_t)s->pauses));
	json_object_object_add(p, "p50", opt_i64(s->pause_p50));
	json_object_object_add(p, "p90", opt_i64(s->pause_p90));
	json_object_object_add(p, "p99", opt_i64(s->pause_p99));
	json_object_object_add(p, "max", opt_i64(s->pause_max));
	json_object_object_add(o, "gc_pause_ns", p);
	json_object_object_add(o, "gc_stw_total_ns", json_object_new_int64(s->stw_ns));
	json_object_object_add(o, "gc_stw_share", json_object_new_double(s->stw_share));
	json_object_object_add(o, "other_stw_count", json_object_new_int64((int64_t)s->other_stws));
	json_object_object_add(o, "other_stw_total_ns", json_object_new_int64(s->other_stw_ns));
	json_object_object_add(o, "heap_live_first_bytes", opt_i64(s->live_first));
	json_object_object_add(o, "heap_live_last_bytes", opt_i64(s->live_last));
	json_object_object_add(o, "heap_goal_first_bytes", opt_i64(s->goal_first));
	json_object_object_add(o, "heap_goal_last_bytes", opt_i64(s->goal_last));
	json_object_object_add(o, "heap_grown_from_os_bytes",
			       json_object_new_int64((int64_t)s->grown_bytes));
	json_object_object_add(o, "probe_hit_ns",
			       r->cost_measured ? json_object_new_double(r->jump_hit_ns) : NULL);
	json_object_object_add(o, "probe_hit_stepped_ns",
			       r->cost_measured ? json_object_new_double(r->step_hit_ns) : NULL);
	json_object_object_add(o, "probe_ns_total", json_object_new_int64((int64_t)r->d->probe_ns));
	json_object_object_add(o, "probe_hits", json_object_new_int64((int64_t)r->hits));
	json_object_object_add(o, "probe_ns_removed", json_object_new_int64(s->probe_ns));
	json_object_object_add(o, "repeated_hits", json_object_new_int64((int64_t)r->d->repeated));
	json_object_object_add(o, "missed_cycles", json_object_new_int64((int64_t)r->d->missed));
	json_object_object_add(o, "cycles_ended_while_attaching",
			       json_object_new_int64((int64_t)r->d->attaching));
	json_object_object_add(o, "lost_events", json_object_new_int64((int64_t)r->lost));
	json_object_object_add(o, "read_errors", json_object_new_int64((int64_t)r->read_errors));
	json_object_object_add(o, "runtime_offsets", json_object_new_string(r->offsets));
	return o;
}

/* A setting for JSON: null when unknown, off or unset. */
static json_object *opt_setting(int64_t v)
{
	return v < 0 ? NULL : json_object_new_int64(v);
}

static json_object *opt_double(bool known, double v)
{
	return known && isfinite(v) ? json_object_new_double(v) : NULL;
}

static json_object *json_tuning(const struct gc_report *r)
{
	const struct gc_tuning *t = r->tune;
	json_object *o = json_object_new_object(), *opts = json_object_new_array();

	json_object_object_add(o, "gogc", opt_setting(r->settings->gogc));
	json_object_object_add(o, "gogc_known",
			       json_object_new_boolean(r->settings->gogc != GC_UNKNOWN));
	json_object_object_add(o, "gomemlimit_bytes", opt_setting(r->settings->gomemlimit));
	json_object_object_add(o, "gomaxprocs", opt_setting(r->settings->gomaxprocs));
	json_object_object_add(o, "memory_limit_bytes", opt_setting(r->settings->memory_limit));
	json_object_object_add(o, "runtime_nonheap_bytes", opt_setting(r->settings->nonheap));
	json_object_object_add(o, "gc_cpu_fraction", opt_double(t->predicted, t->gc_cpu));
	json_object_object_add(
	    o, "gc_cpu_source",
	    t->predicted ? json_object_new_string(t->gc_cpu_measured ? "runtime" : "estimate")
			 : NULL);
	json_object_object_add(o, "cycles_per_gib_allocated",
			       opt_double(t->predicted, t->cycles_per_gib));
	json_object_object_add(o, "peak_heap_bytes", opt_double(t->predicted, t->peak_heap));
	json_object_object_add(o, "live_heap_bytes", opt_double(t->predicted, t->live_heap));
	json_object_object_add(o, "roots_bytes", opt_double(t->predicted, t->roots));
	json_object_object_add(o, "steady_cycles", json_object_new_int64((int64_t)t->steady));
	for (size_t i = 0; i < t->noptions; i++) {
		const struct gc_option *p = &t->options[i];
		json_object *j = json_object_new_object();

		json_object_object_add(j, "gogc", opt_setting(p->gogc));
		json_object_object_add(j, "gomemlimit_bytes", opt_setting(p->gomemlimit));
		json_object_object_add(j, "cycles_per_gib_allocated",
				       opt_double(true, p->cycles_per_gib));
		json_object_object_add(j, "cycles_uncertainty",
				       json_object_new_double(p->cycles_unc));
		json_object_object_add(j, "peak_heap_bytes", opt_double(true, p->peak_heap));
		json_object_object_add(j, "peak_uncertainty", json_object_new_double(p->peak_unc));
		json_object_object_add(j, "gc_cpu_fraction", opt_double(true, p->gc_cpu));
		json_object_object_add(j, "gc_cpu_uncertainty", json_object_new_double(p->cpu_unc));
		json_object_object_add(j, "fits", json_object_new_boolean(p->fits));
		json_object_array_add(opts, j);
	}
	json_object_object_add(o, "options", opts);
	json_object_object_add(o, "advised_option",
			       t->advised >= 0 ? json_object_new_int(t->advised) : NULL);
	json_object_object_add(o, "advice",
			       t->predicted ? json_object_new_string(t->advice) : NULL);
	json_object_object_add(o, "not_predicted_because",
			       t->predicted ? NULL : json_object_new_string(t->why));
	return o;
}

static json_object *json_report(const struct gc_report *r)
{
	const struct gcdecode *d = r->d;
	json_object *root = json_object_new_object(), *cycles = json_object_new_array(),
		    *stws = json_object_new_array(), *grows = json_object_new_array();

	for (size_t i = 0; i < d->ncycles; i++)
		json_object_array_add(cycles, json_cycle(&d->cycles[i], r->time_base));
	for (size_t i = 0; i < d->nstws; i++) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "start_ns", rel_ns(d->stws[i].start_ns, r->time_base));
		json_object_object_add(o, "duration_ns",
				       json_object_new_int64(d->stws[i].duration_ns));
		json_object_object_add(o, "reason", json_object_new_string(d->stws[i].reason));
		json_object_array_add(stws, o);
	}
	for (size_t i = 0; i < d->ngrows; i++) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "t_ns", rel_ns(d->grows[i].ts, r->time_base));
		json_object_object_add(o, "bytes",
				       json_object_new_int64((int64_t)d->grows[i].bytes));
		json_object_array_add(grows, o);
	}
	json_object_object_add(root, "gc_cycles", cycles);
	json_object_object_add(root, "summary", json_summary(r));
	json_object_object_add(root, "other_stw", stws);
	json_object_object_add(root, "heap_grow", grows);
	json_object_object_add(root, "tuning", r->tune ? json_tuning(r) : NULL);
	return root;
}

static int write_file(const char *path, const char *text, char *err, size_t errlen)
{
	FILE *f = fopen(path, "w");
	int rc = 0;

	if (!f) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
		return -errno;
	}
	if (fprintf(f, "%s\n", text) < 0)
		rc = -errno;
	if (fclose(f) != 0 && !rc)
		rc = -errno;
	if (rc)
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
	return rc;
}

char *gcout_json_text(const struct gc_report *r)
{
	json_object *root = json_report(r);
	const char *text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
								    JSON_C_TO_STRING_NOSLASHESCAPE);
	char *copy = text ? strdup(text) : NULL;

	json_object_put(root);
	return copy;
}

int gcout_json(const struct gc_report *r, const char *path, char *err, size_t errlen)
{
	char *text = gcout_json_text(r);
	int rc;

	if (!text) {
		snprintf(err, errlen, "cannot write %s: out of memory", path);
		return -ENOMEM;
	}
	rc = write_file(path, text, err, errlen);
	free(text);
	return rc;
}

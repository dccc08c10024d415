#include "recording.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "gc.h"
#include "leakscmd.h"

int recording_start(struct recording *r, const char *command, struct session_opts *o, char *err,
		    size_t errlen)
{
	int rc;

	memset(r, 0, sizeof(*r));
	r->command = command;
	gctrace_init(&r->gc, &o->tgt);
	o->extra = gctrace_probes(&r->gc);
	rc = session_start(&r->s, o, err, errlen);
	if (!rc)
		leaks_start(&r->leaks, &r->s);
	return rc;
}

void recording_tick(struct recording *r, double elapsed)
{
	/* The leak timeline judges objects it follows: not where frees come from the records. */
	if (heapagg_follows_objects(&r->s.agg))
		leaks_tick(&r->leaks, &r->s, elapsed);
	/* The GC settings and CPU account kept fresh for the summary's tuning table. */
	if (r->s.t.mem_fd >= 0)
		gctrace_read_settings(&r->gc, &r->s.t);
}

void recording_stop(struct recording *r, enum evloop_end end)
{
	session_stop(&r->s, end);
	gctrace_finish(&r->gc);
}

int recording_profile(struct recording *r, const struct heapprof_base *base, struct heapprof *h,
		      char *err, size_t errlen)
{
	struct session *s = &r->s;
	double secs = session_secs(s);
	struct heapprof_meta m = {
	    .rate = session_period(s),
	    .cycle = heapagg_profile_cycle(&s->agg, session_cycle(s)),
	    .time_ns = s->start_wall_ns,
	    .duration_ns = (int64_t)(secs * 1e9),
	    .base = base,
	    .by_label = r->by_label,
	};
	char line[512];
	int rc;

	if (base) {
		m.time_ns = base->time_ns;
		m.duration_ns = s->start_wall_ns + m.duration_ns - base->time_ns;
	}
	rc = heapprof_build(h, &s->t, &s->agg, &m);
	if (rc) {
		snprintf(err, errlen, "cannot build the profile: %s", strerror(-rc));
		return rc;
	}
	pprof_comment(h->p, "heapspy %s: pid %d %s %s", r->command, (int)s->t.pid, s->t.display,
		      s->t.go_version);
	if (base)
		pprof_comment(h->p,
			      "alloc values: what was allocated in the last %.1fs; in-use "
			      "values: what is in use now",
			      (double)m.duration_ns / 1e9);
	if (s->baseline_records)
		pprof_comment(h->p,
			      "includes %ld runtime heap records from before heapspy attached",
			      s->baseline_records);
	else
		pprof_comment(h->p, "covers allocations since heapspy attached (the runtime %s)",
			      s->o->tgt.argv ? "was launched by heapspy"
					     : "was not sampling before");
	if (m.cycle != HEAPAGG_UNKNOWN_CYCLE)
		pprof_comment(h->p,
			      "in use as of heap-profile cycle %" PRId64
			      " (the last completed GC), as runtime/pprof reports it",
			      m.cycle);
	else if (session_cycle(s) != HEAPAGG_UNKNOWN_CYCLE)
		pprof_comment(h->p, "in use as of the end of recording: no GC has published "
				    "anything yet, and runtime/pprof then counts every sample");
	else
		pprof_comment(h->p,
			      "in use as of the end of recording (runtime.mProfCycle unknown)");
	if (s->agg.rate_changes || m.rate != s->rate) {
		char rate[512];

		session_rate_text(s, rate, sizeof(rate));
		pprof_comment(h->p, "%s", rate);
	}
	if (s->counters[HS_CNT_LOST])
		pprof_comment(h->p, "%" PRIu64 " events lost: the ring buffer was full",
			      s->counters[HS_CNT_LOST]);
	if (session_truncated_text(s, line, sizeof(line)))
		pprof_comment(h->p, "%s", line);
	if (session_labels_text(s, line, sizeof(line)))
		pprof_comment(h->p, "%s", line);
	selfcheck_line(&s->check, line, sizeof(line));
	pprof_comment(h->p, "%s", line);
	gc_pprof_comments(&r->gc, s, h->p);
	return 0;
}

void recording_close(struct recording *r)
{
	leaks_free(&r->leaks);
	session_close(&r->s);
	gctrace_free(&r->gc);
}

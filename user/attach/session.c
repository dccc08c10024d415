#include "session.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bpfload.h"
#include "gostack.h"
#include "mbuckets.h"
#include "rateshare.h"
#include "heap.skel.h" /* after heapagg.h (via session.h): it needs heapspy.h's types */

static int read_cycle(struct session *s)
{
	uint32_t v;

	if (!s->hp.mprof_cycle || s->exited ||
	    target_read(&s->t, s->hp.mprof_cycle, &v, sizeof(v)) != 0)
		return -ENOENT;
	/* mProfCycleHolder stores the cycle above a "flushed" flag bit. */
	if (s->cycle == HEAPAGG_UNKNOWN_CYCLE || (int64_t)(v >> 1) > s->cycle)
		s->cycle = v >> 1;
	return 0;
}

static int read_labels(void *ctx, uint64_t addr, void *buf, size_t len)
{
	const struct session *s = ctx;

	return s->exited ? -ESRCH : target_read(&s->t, addr, buf, len);
}

static int64_t labels_cycle(void *ctx)
{
	struct session *s = ctx;

	return read_cycle(s) == 0 ? s->cycle : INT64_MIN;
}

/*
 * Label sets are decoded where the probe reads g.labels; where the binary can set labels but g's
 * layout is not established, heapspy says so once.
 */
static void start_labels(struct session *s)
{
	const struct heap_layout *l = &s->hp.layout;

	if (!s->hp.has_layout)
		return;
	if (l->labels == LABELS_UNKNOWN)
		fprintf(
		    stderr,
		    "heapspy: warning: %s (%s) sets pprof labels, but where its goroutines keep "
		    "them is unknown (no DWARF, no table for this release): samples carry no "
		    "labels\n",
		    s->t.display, s->t.go_version);
	if (l->labels != LABELS_READ)
		return;
	golabels_init(&s->labels, l->labels_slice, read_labels, labels_cycle, s);
	/* No more label sets than sites: each new one makes a new site. */
	s->labels.max_sets = s->o->max_sites;
	s->agg.labels = &s->labels;
}

/* runtime.MemProfileRate as the target holds it now, and a new value for it: 0, or -errno. */
static int read_rate(const struct session *s, int64_t *v)
{
	return target_read(&s->t, s->hp.mem_profile_rate, v, sizeof(*v));
}

static int write_rate(const struct session *s, int64_t v)
{
	return target_write(&s->t, s->hp.mem_profile_rate, &v, sizeof(v));
}

double session_secs(const struct session *s)
{
	return s->secs > 0 ? s->secs : (double)(evloop_now_ns() - s->start_ns) / 1e9;
}

int64_t session_period(const struct session *s)
{
	int64_t rate;

	if (s->secs > 0)
		return s->end_rate;
	if (s->hp.mem_profile_rate && !s->exited && read_rate(s, &rate) == 0)
		return rate;
	return heapagg_last_rate(&s->agg);
}

int64_t session_cycle(const struct session *s)
{
	int64_t c = s->cycle;

	if (!s->hp.mprof_cycle)
		return HEAPAGG_UNKNOWN_CYCLE;
	/* Without the free probe, the last cycle whose frees (or records) were read: as read. */
	if (heapagg_reads_records(&s->agg) && s->rtfrees.applied != HEAPAGG_UNKNOWN_CYCLE)
		return s->rtfrees.applied;
	if (s->cycle_final)
		return c;
	return s->agg.last_cycle > c ? s->agg.last_cycle : c;
}

static int on_heap_event(void *ctx, void *data, size_t len)
{
	struct session *s = ctx;
	const struct hs_event_header *h = data;
	int rc;

	if (len >= sizeof(*h) && h->ts < s->events_from_ns)
		return 0;
	rc = heapagg_event(&s->agg, data, len);

	if (rc && !s->error)
		s->error = rc;
	return 0;
}

static int load_heap(struct session *s, char *err, size_t errlen)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo, .btf_custom_path = s->o->tgt.btf);
	int rc;

	s->skel = heap_bpf__open_opts(&oo);
	if (!s->skel) {
		snprintf(err, errlen, "cannot open the BPF programs: %s", strerror(errno));
		return -errno;
	}
	s->skel->rodata->cfg = s->hp.layout.cfg;
	bpfload_prepare(s->skel->obj);
	/* Read from the records alone, no heap probe emits: a page, not 8 MiB per process. */
	if (s->agg.records_only)
		bpf_map__set_max_entries(s->skel->maps.events, (uint32_t)sysconf(_SC_PAGESIZE));
	else if (s->o->tgt.ringbuf_kib)
		bpf_map__set_max_entries(s->skel->maps.events, s->o->tgt.ringbuf_kib * 1024u);
	rc = heap_bpf__load(s->skel);
	if (rc) {
		snprintf(err, errlen, "the kernel refused heapspy's BPF programs: %s (run with -v)",
			 strerror(-rc));
		return rc;
	}
	return 0;
}

static int attach_one(struct session *s, int which, struct bpf_program *prog,
		      const struct probe_point *p, char *err, size_t errlen)
{
	s->links[which] =
	    bpfload_uprobe(prog, s->t.pid, s->t.path, p->offset, p->name, err, errlen);
	return s->links[which] ? 0 : -errno;
}

static int attach_all(struct session *s, char *err, size_t errlen)
{
	int rc = 0;

	if (s->o->heap && !s->agg.records_only) {
		rc = attach_one(s, SESSION_LINK_MALLOC, s->skel->progs.mprof_malloc,
				&s->hp.mprof_malloc, err, errlen);
		if (!rc && !s->agg.runtime_frees)
			rc = attach_one(s, SESSION_LINK_FREE, s->skel->progs.free_special,
					&s->hp.free_special, err, errlen);
		if (!rc && s->hp.mprof_postsweep.vaddr)
			rc = attach_one(s, SESSION_LINK_POSTSWEEP, s->skel->progs.mprof_postsweep,
					&s->hp.mprof_postsweep, err, errlen);
	}
	if (!rc && s->launched)
		rc = attach_one(s, SESSION_LINK_STOP, s->skel->progs.stop_before_init,
				&s->hp.gcenable, err, errlen);
	if (!rc && s->o->extra)
		rc = s->o->extra->attach(s->o->extra->ctx, &s->t, s->o->tgt.btf, err, errlen);
	return rc;
}

static void set_runtime_addrs(struct session *s)
{
	if (!s->skel)
		return;
	s->skel->bss->mprof_cycle_addr = target_runtime_addr(&s->t, s->hp.mprof_cycle);
	if (s->hp.mem_profile_rate)
		s->skel->bss->mem_profile_rate_addr =
		    target_runtime_addr(&s->t, s->hp.mem_profile_rate);
	s->skel->bss->record_frames = s->t.record_frames;
	s->skel->bss->target_tgid = target_kernel_tgid(&s->t);
}

/*
 * Registers with the other heapspy sessions on the process (rateshare.h), the registry locked on
 * return; without a registry this session switches and restores alone, and says so.
 */
static void share_lock(struct session *s)
{
	char why[256];

	if (rateshare_lock(&s->share, s->t.pid, why, sizeof(why)) != 0)
		fprintf(
		    stderr,
		    "heapspy: %s: another heapspy session on pid %d may switch sampling off under "
		    "this one\n",
		    why, (int)s->t.pid);
}

/* Makes sure the runtime samples, at the rate the user asked for when heapspy has to choose. */
static int ensure_sampling(struct session *s, char *err, size_t errlen)
{
	struct rateshare *sh = &s->share;
	int64_t rate;
	int rc;

	sh->fd = -1;
	if (!s->hp.mem_profile_rate) {
		fprintf(stderr,
			"heapspy: %s has no symbol table and its code does not confirm where "
			"runtime.MemProfileRate is: heapspy will not write into it; recording at "
			"whatever rate the runtime uses\n",
			s->t.display);
		s->old_rate = s->rate = s->agg.rate = s->o->rate;
		return 0;
	}
	if (!s->o->no_write)
		share_lock(s);
	rc = read_rate(s, &rate);
	if (rc) {
		snprintf(err, errlen, "cannot read runtime.MemProfileRate: %s", strerror(-rc));
		goto out;
	}
	s->old_rate = s->rate = s->agg.rate = rate;
	/* Another session switched sampling on: the rate before it is the one to restore. */
	if (sh->fd >= 0 && sh->found && sh->set)
		s->old_rate = sh->orig;
	if (rate > 0) {
		s->found_sampling = true;
		if (s->o->rate_given && s->o->rate != rate)
			fprintf(stderr,
				"heapspy: the runtime already samples every %" PRId64
				" bytes; keeping that rate (--rate %ld ignored) so its own records "
				"stay comparable\n",
				rate, s->o->rate);
		if (s->old_rate == rate)
			goto out;
		s->rate_switched = rateshare_record(sh, s->old_rate, sh->set) == 0;
		if (s->rate_switched && rate == sh->set)
			fprintf(
			    stderr,
			    "heapspy: another heapspy session switched MemProfileRate from %" PRId64
			    " to %" PRId64 "; it stays on until the last session ends\n",
			    s->old_rate, rate);
		goto out;
	}
	if (s->o->no_write) {
		fprintf(stderr, "heapspy: the runtime is not sampling (MemProfileRate=0) and "
				"--no-write forbids switching it on: the profile will hold no "
				"allocations unless the program enables sampling itself\n");
		return 0;
	}
	rate = s->o->rate;
	rc = write_rate(s, rate);
	if (rc == -ESRCH) {
		rc = target_changed_error(&s->t, err, errlen);
		goto out;
	}
	if (rc) {
		snprintf(err, errlen,
			 "cannot switch heap sampling on (write runtime.MemProfileRate): %s",
			 strerror(-rc));
		goto out;
	}
	s->rate = s->agg.rate = rate;
	s->rate_switched = true;
	if (sh->fd >= 0 && (rc = rateshare_record(sh, s->old_rate, rate)) != 0)
		fprintf(stderr, "heapspy: cannot register with %s: %s\n", sh->path, strerror(-rc));
	rc = 0;
	fprintf(stderr,
		"heapspy: the runtime was not sampling; switched MemProfileRate from %" PRId64
		" to %" PRId64 " (restored on detach)\n",
		s->old_rate, rate);
out:
	if (sh->fd >= 0 && !sh->shared)
		rateshare_leave(sh);
	else if (sh->fd >= 0)
		rateshare_unlock(sh);
	return rc;
}

/*
 * Sampling switched off under this session (by the program, another tool or a heapspy without the
 * registry) would leave its profile empty from then on: it switches sampling on again, and says so.
 */
static void keep_sampling(struct session *s)
{
	struct rateshare *sh = &s->share;
	int64_t now, rate = s->rate;

	if (!s->rate_switched || s->exited || read_rate(s, &now) != 0 || now != 0)
		return;
	if (sh->fd >= 0) {
		if (rateshare_relock(sh) != 0)
			return;
		rate = sh->set;
	}
	if (rate > 0 && read_rate(s, &now) == 0 && now == 0 && write_rate(s, rate) == 0)
		fprintf(
		    stderr,
		    "heapspy: MemProfileRate was set to 0 while heapspy recorded (by the program, "
		    "another tool or an older heapspy); switched it on again at %" PRId64 "\n",
		    rate);
	if (sh->fd >= 0)
		rateshare_unlock(sh);
}

/*
 * The last session out puts MemProfileRate back, unless the process exec'd or changed it since:
 * then the address may no longer be MemProfileRate, or the program's own choice must stand.
 */
static void restore_sampling(struct session *s)
{
	struct rateshare *sh = &s->share;
	int64_t now = 0, set = s->rate, old = s->old_rate;

	if (!s->rate_switched)
		return;
	s->rate_switched = false;
	if (sh->fd >= 0 && rateshare_relock(sh) == 0) {
		set = sh->set;
		old = sh->orig;
		if (rateshare_others(sh)) {
			fprintf(stderr,
				"heapspy: another heapspy session still records pid %d: leaving "
				"MemProfileRate for the last one to restore\n",
				(int)s->t.pid);
			goto out;
		}
	}
	if (s->exited || !target_alive(&s->t))
		goto out;
	if (!target_same_image(&s->t) || read_rate(s, &now) != 0) {
		fprintf(stderr, "heapspy: not restoring MemProfileRate: the program exec'd since "
				"heapspy set it\n");
		goto out;
	}
	if (now != set) {
		fprintf(stderr,
			"heapspy: not restoring MemProfileRate to %" PRId64
			": the program set it to %" PRId64 " while heapspy ran\n",
			old, now);
		goto out;
	}
	if (write_rate(s, old) != 0)
		fprintf(stderr, "heapspy: could not restore MemProfileRate to %" PRId64 "\n", old);
out:
	rateshare_leave(sh);
}

/* The runtime's records from before attach, read with the process held still. */
static int read_baseline(struct session *s, char *err, size_t errlen)
{
	long n;

	if (!s->hp.mbuckets)
		s->hp.mbuckets =
		    mbuckets_confirm(&s->t, s->hp.mbuckets_candidates, s->hp.nmbuckets_candidates);
	if (!s->hp.mbuckets || read_cycle(s) != 0) {
		fprintf(stderr,
			"heapspy: no runtime.mbuckets/mProfCycle symbols: the profile covers "
			"allocations since attach only\n");
		return 0;
	}
	n = mbuckets_read(&s->t, s->hp.mbuckets, s->hp.layout.record_words, s->cycle, &s->agg, err,
			  errlen);
	if (n < 0)
		return (int)n;
	s->baseline_records = n;
	return 0;
}

static int located(struct session *s, char *err, size_t errlen)
{
	int rc = target_locate(&s->t, err, errlen);

	if (!rc && s->o->extra && s->o->extra->located)
		rc = s->o->extra->located(s->o->extra->ctx, &s->t, err, errlen);
	if (!rc && s->o->heap &&
	    gostack_record_depth(&s->t, s->hp.layout.cfg.profstack_offset) == -ENOENT)
		fprintf(stderr,
			"heapspy: cannot read the runtime's debug.profstackdepth (no "
			"runtime.m0 or m.profStack): stacks cut at its default, 128 frames\n");
	set_runtime_addrs(s);
	return rc;
}

/*
 * Without a baseline, the self-check must leave out what the runtime's records held before: the
 * runtime samples its first allocations at start-up even when it is then told not to.
 */
static int origin_bucket(void *ctx, const struct go_bucket_record *b)
{
	struct session *s = ctx;
	int rc = selfcheck_origin_bucket(&s->check, &s->t, b);

	return !rc && s->agg.runtime_frees ? rtfrees_origin(&s->rtfrees, b) : rc;
}

/* One walk of the records serves the self-check and the frees read from the records. */
static void self_check_origin(struct session *s)
{
	char err[256];

	/* A recording of the records alone holds all they hold, as runtime/pprof does. */
	if (!s->o->heap || s->agg.records_only)
		return;
	if (!s->hp.mbuckets)
		s->hp.mbuckets =
		    mbuckets_confirm(&s->t, s->hp.mbuckets_candidates, s->hp.nmbuckets_candidates);
	if (s->hp.mbuckets)
		mbuckets_walk(&s->t, s->hp.mbuckets, s->hp.layout.record_words, origin_bucket, s,
			      err, sizeof(err));
}

/*
 * Not sampling when heapspy looked, sampling once its probes were in: the program switched it on
 * in between, so the runtime's records hold objects the probes saw and objects they did not.
 * Held still, the records are read as the baseline, as had the runtime sampled from the start, and
 * the probes' events from before that instant are dropped: the records hold those objects.
 */
static int baseline_after_all(struct session *s, char *err, size_t errlen)
{
	struct freeze freeze = {0};
	int rc;

	fprintf(stderr,
		"heapspy: the program switched heap sampling on (MemProfileRate %" PRId64
		") while heapspy attached: its records from then on are read as the baseline\n",
		s->rate);
	rc = proc_freeze(&freeze, s->t.pid, s->t.pidfd, err, errlen);
	if (rc)
		return rc;
	s->events_from_ns = evloop_now_ns();
	selfcheck_forget_origin(&s->check);
	rtfrees_forget_origin(&s->rtfrees);
	rc = read_baseline(s, err, errlen);
	proc_thaw(&freeze);
	return rc;
}

static int start_running(struct session *s, char *err, size_t errlen)
{
	struct freeze freeze = {0};
	uint64_t t0 = 0;
	bool frozen = false;
	int64_t rate;
	int rc;

	rc = located(s, err, errlen);
	if (rc)
		return rc;
	/* A sampling runtime has records to read; hold it still so they match the probes' start. */
	if (s->o->heap && s->hp.mem_profile_rate && read_rate(s, &rate) == 0 && rate > 0) {
		/* The runtime's records were sampled at this rate, as far as anyone can tell. */
		s->agg.rate = rate;
		t0 = evloop_now_ns();
		rc = proc_freeze(&freeze, s->t.pid, s->t.pidfd, err, errlen);
		if (rc)
			return rc;
		frozen = true;
	}
	if (s->o->heap) {
		rc = load_heap(s, err, errlen);
		set_runtime_addrs(s);
	}
	if (!rc)
		rc = attach_all(s, err, errlen);
	if (!rc && frozen)
		rc = read_baseline(s, err, errlen);
	else if (!rc)
		self_check_origin(s);
	if (!rc && s->o->heap)
		rc = ensure_sampling(s, err, errlen);
	if (!rc && !frozen && s->found_sampling)
		rc = baseline_after_all(s, err, errlen);
	if (frozen) {
		proc_thaw(&freeze);
		s->freeze_ms = (double)(evloop_now_ns() - t0) / 1e6;
	}
	return rc;
}

static int start_launched(struct session *s, char *err, size_t errlen)
{
	int status, rc;

	rc = load_heap(s, err, errlen);
	if (!rc)
		rc = attach_all(s, err, errlen);
	if (rc)
		return rc;
	rc = launch_release(&s->launch);
	if (!rc)
		rc = launch_wait_stopped(&s->launch, &status);
	if (rc) {
		snprintf(err, errlen, "%.300s exited before its runtime was initialized",
			 s->t.display);
		return rc;
	}
	/* Stopped in runtime.main: the runtime is initialized, no package init has run yet. */
	bpfload_destroy_links(&s->links[SESSION_LINK_STOP], 1);
	rc = located(s, err, errlen);
	if (!rc)
		self_check_origin(s);
	if (!rc && s->o->heap)
		rc = ensure_sampling(s, err, errlen);
	proc_signal(s->t.pidfd, SIGCONT);
	return rc;
}

/* One batch for the heap probes and the extra set's: the kernel's waits overlap where they can. */
static void detach_all(struct session *s)
{
	struct probe_link *all[SESSION_LINKS + PROBE_SET_MAX_LINKS];
	const struct probe_set *x = s->o->extra;
	size_t n = 0;

	for (size_t i = 0; i < SESSION_LINKS; i++) {
		all[n++] = s->links[i];
		s->links[i] = NULL;
	}
	for (size_t i = 0; x && i < x->nlinks; i++) {
		all[n++] = x->links[i];
		x->links[i] = NULL;
	}
	bpfload_destroy_links(all, n);
}

#define TICK_MS 100
/*
 * Where samples carry labels, each new set must be read before the GC that may free it ends its
 * cycle (golabels.h): the consumer then drains every 10 ms, whatever woke it, and not just once
 * the BPF side has queued 256 KiB or a tick has passed; every 2 ms while the GC ends a cycle
 * every tick or more often (a program's first cycles are milliseconds apart: a launched program
 * starts so). That costs heapspy a little CPU (500 idle drains a second at most), never the target
 * (no more wake-ups from the probes).
 */
#define LABELS_DRAIN_MS	     10
#define LABELS_FAST_DRAIN_MS 2

static void labels_drain(struct session *s, unsigned ms)
{
	if (s->labels_drain_ms != ms && evloop_drain_every(&s->loop, TICK_MS, ms) == 0)
		s->labels_drain_ms = ms;
}

/* On each tick: fast while the last tick saw the GC end a cycle. */
static void adapt_labels_drain(struct session *s)
{
	if (!s->agg.labels)
		return;
	labels_drain(s, s->cycle != s->labels_tick_cycle ? LABELS_FAST_DRAIN_MS : LABELS_DRAIN_MS);
	s->labels_tick_cycle = s->cycle;
}

static int start_loop(struct session *s)
{
	int rc = evloop_init(&s->loop, s->t.pidfd, s->o->tgt.duration, TICK_MS, !s->o->no_signals);

	if (!rc && s->agg.labels) {
		s->labels_tick_cycle = s->cycle;
		labels_drain(s, LABELS_FAST_DRAIN_MS);
	}

	if (!rc && s->o->heap)
		rc = evloop_add_ringbuf(&s->loop, bpf_map__fd(s->skel->maps.events), on_heap_event,
					s);
	if (!rc && s->o->extra)
		rc = evloop_add_ringbuf(&s->loop, s->o->extra->ringbuf_fd(s->o->extra->ctx),
					s->o->extra->on_event, s->o->extra->ctx);
	return rc;
}

/* records_only: each bucket a walk reads becomes its site's counts. */
static int apply_record(void *ctx, const struct go_bucket_record *b)
{
	struct session *s = ctx;

	return mbuckets_record(&s->t, &s->agg, b);
}

/*
 * A walk that applied the records was consistent at cycle: the profile is theirs at it, and the
 * samples and frees the runtime published since heapspy attached are the summary's.
 */
static void records_read(struct session *s, int64_t cycle)
{
	const struct heap_counts *b = &s->agg.baseline_held;
	struct heap_counts all = heapagg_records_total(&s->agg, &s->check.inconsistent);

	s->agg.samples = all.allocs > b->allocs ? all.allocs - b->allocs : 0;
	s->agg.frees = all.frees > b->frees ? all.frees - b->frees : 0;
	s->rtfrees.applied = cycle;
	if (cycle > s->agg.last_cycle)
		s->agg.last_cycle = cycle;
}

/*
 * Attached to a running program with no probe needed for what only a probe sees (each object's
 * lifetime, pprof labels), the profile is the runtime's own records, read at each cycle it
 * publishes: no probe hit at all. Launched, the program may exit before heapspy reads its last
 * cycle: a probe per sample then, with the frees from the records where they can be read (the
 * self-check's walk reads them), else from the free probe; always from the probe where samples
 * carry pprof labels, since the runtime's records do not split frees by label.
 */
static void choose_frees(struct session *s)
{
	bool records = (s->hp.mbuckets || s->hp.nmbuckets_candidates) && s->hp.mprof_cycle;
	bool want = s->o->heap && !s->o->frees && !s->agg.labels;

	s->agg.records_only = want && records && !s->o->tgt.argv;
	s->agg.runtime_frees = want && records && !s->agg.records_only;
	if (s->agg.records_only) {
		s->check.also = apply_record;
		s->check.also_ctx = s;
	}
	if (want && !records)
		fprintf(stderr, "heapspy: the runtime's records (runtime.mbuckets, mProfCycle) are "
				"not found: following each object to its free instead (two probe "
				"hits per sample)\n");
	if (s->agg.runtime_frees) {
		s->check.also = rtfrees_bucket;
		s->check.also_ctx = &s->rtfrees;
	}
}

error_t session_parse_opt(int key, char *arg, struct argp_state *state, struct session_opts *so)
{
	switch (key) {
	case 'r':
		so->rate = cli_parse_long(state, arg, "--rate", 1, INT32_MAX);
		so->rate_given = true;
		return 0;
	case 'n':
		so->no_write = true;
		return 0;
	default:
		return cli_parse_target(key, arg, state, &so->tgt);
	}
}

int session_start(struct session *s, const struct session_opts *o, char *err, size_t errlen)
{
	struct timespec wall;
	int rc;

	memset(s, 0, sizeof(*s));
	s->o = o;
	s->cycle = HEAPAGG_UNKNOWN_CYCLE;
	s->t.mem_fd = -1;
	s->share.fd = -1;
	s->loop.epfd = s->loop.sigfd = s->loop.pidfd = s->loop.timerfd = -1;
	heapagg_init(&s->agg);
	s->agg.max_sites = o->max_sites;
	selfcheck_init(&s->check);
	rtfrees_init(&s->rtfrees, &s->t);
	bpfload_set_verbose(o->tgt.verbose);

	rc = bpfload_check(o->tgt.btf, err, errlen);
	if (!rc && o->tgt.argv) {
		rc = launch_prepare(&s->launch, o->tgt.argv, err, errlen);
		s->launched = rc == 0;
		if (!rc)
			rc = target_open_path(&s->t, s->launch.path, s->launch.pid, err, errlen);
	} else if (!rc) {
		rc = target_open_pid(&s->t, o->tgt.pid, err, errlen);
	}
	if (!rc)
		rc = probes_resolve_heap(&s->t, &s->hp, o->heap, err, errlen);
	if (!rc && s->t.newer_release)
		fprintf(stderr,
			"heapspy: %s is newer than the go1.18-go1.27 runtimes heapspy knows: its "
			"layouts come from the binary alone (DWARF or code), and the self-check "
			"in the summary says whether they hold\n",
			s->t.go_version);
	if (!rc && o->tgt.verbose)
		probes_describe(&s->t, &s->hp, stderr);
	if (!rc)
		start_labels(s);
	if (!rc)
		choose_frees(s);
	if (!rc)
		rc = s->launched ? start_launched(s, err, errlen) : start_running(s, err, errlen);
	if (!rc)
		rc = start_loop(s);
	if (rc) {
		if (!err[0])
			snprintf(err, errlen, "cannot start: %s", strerror(-rc));
		if (s->launched && s->launch.pid > 0) {
			kill(s->launch.pid, SIGKILL);
			launch_reap(&s->launch);
			s->launched = false;
		}
		return rc;
	}
	clock_gettime(CLOCK_REALTIME, &wall);
	s->start_wall_ns = (int64_t)wall.tv_sec * 1000000000 + wall.tv_nsec;
	s->start_ns = evloop_now_ns();
	fprintf(stderr, "heapspy: recording pid %d (%s, %s)%s\n", (int)s->t.pid, s->t.display,
		s->t.go_version, isatty(STDERR_FILENO) ? "; Ctrl-C to stop" : "");
	return 0;
}

/* Cycles between two self-checks while recording. */
#define SELF_CHECK_CYCLES 2
/* Attempts at the last snapshot of the runtime's records, a millisecond apart. */
#define FINAL_TRIES 50

/*
 * The runtime's frees of the snapshot just taken into heapagg, once the events from before it are
 * in: they are in the ring buffers, hardly a tick's worth.
 */
static void apply_frees(struct session *s, int64_t cycle, uint64_t ts)
{
	int rc;

	evloop_catch_up(&s->loop);
	rc = rtfrees_apply(&s->rtfrees, &s->agg, cycle, ts);
	if (rc && !s->error)
		s->error = rc;
}

/* A walk consistent at cycle (begun at ts) into the profile: the records, or their frees. */
static void take_walk(struct session *s, int64_t cycle, uint64_t ts)
{
	if (s->agg.records_only)
		records_read(s, cycle);
	else
		apply_frees(s, cycle, ts);
}

/*
 * Compares what the last snapshot of the runtime's records says with heapspy's totals, then takes
 * a new snapshot once every cycles more were published (selfcheck.h).
 */
static bool self_check(struct session *s, int64_t every)
{
	int64_t cycle, rate;
	uint64_t ts;

	if (!s->o->heap || s->exited)
		return false;
	if (!s->hp.mbuckets)
		s->hp.mbuckets =
		    mbuckets_confirm(&s->t, s->hp.mbuckets_candidates, s->hp.nmbuckets_candidates);
	selfcheck_compare(&s->check, &s->t, &s->agg);
	rtfrees_begin(&s->rtfrees);
	/* The records are unsampled at the rate the runtime samples at now, as runtime/pprof does.
	 */
	if (s->agg.records_only && s->hp.mem_profile_rate && read_rate(s, &rate) == 0 && rate > 0)
		s->agg.rate = rate;
	selfcheck_snapshot(&s->check, &s->t, s->hp.mbuckets, s->hp.mprof_cycle,
			   s->hp.layout.record_words, every);
	/* The compare above took the last snapshot: one pending now is this walk's. */
	if (!heapagg_reads_records(&s->agg))
		return s->check.pending != HEAPAGG_UNKNOWN_CYCLE;
	if (s->check.pending != HEAPAGG_UNKNOWN_CYCLE) {
		/* Its frees (or records) are heapspy's now: compared at once, before another walk
		 * moves them. */
		take_walk(s, s->check.pending, s->check.pending_ns);
		selfcheck_compare(&s->check, &s->t, &s->agg);
		return true;
	}
	/* Between self-checks the frees (or records) follow each cycle the runtime publishes, read
	 * as the snapshot's walk reads them. */
	if (rtfrees_read(&s->rtfrees, s->hp.mbuckets, s->hp.mprof_cycle, s->hp.layout.record_words,
			 s->check.also, s->check.also_ctx, &cycle, &ts) == 0)
		take_walk(s, cycle, ts);
	return false;
}

/*
 * The last check, at the end: the snapshot of the runtime's records is taken while the probes are
 * still in place, and compared once every event from before it is consumed (session_stop).
 */
static void final_snapshot(struct session *s)
{
	if (!s->o->heap || !target_alive(&s->t))
		return;
	/*
	 * Without the free probe the profile's frees are the snapshot's: worth a few retries when
	 * the walk met a cycle's turn (hundreds a second in an allocation loop).
	 */
	for (int i = 0; !self_check(s, 0) && heapagg_reads_records(&s->agg) && i < FINAL_TRIES &&
			target_alive(&s->t);
	     i++)
		usleep(1000);
}

/* A snapshot from the last tick still counts when the target has just exited. */
static void final_self_check(struct session *s)
{
	char line[512];

	if (!s->o->heap)
		return;
	selfcheck_compare(&s->check, &s->t, &s->agg);
	if (selfcheck_failed(&s->check)) {
		selfcheck_line(&s->check, line, sizeof(line));
		fprintf(stderr, "heapspy: warning: %s\n", line);
	}
}

struct tick_ctx {
	struct session *s;
	void (*on_tick)(void *ctx, double elapsed);
	void *ctx;
};

static void session_tick(void *ctx, double elapsed)
{
	struct tick_ctx *tc = ctx;

	read_cycle(tc->s);
	adapt_labels_drain(tc->s);
	keep_sampling(tc->s);
	self_check(tc->s, SELF_CHECK_CYCLES);
	if (tc->on_tick)
		tc->on_tick(tc->ctx, elapsed);
}

enum evloop_end session_run(struct session *s, void (*on_tick)(void *ctx, double elapsed),
			    void *ctx)
{
	struct tick_ctx tc = {s, on_tick, ctx};

	return evloop_run(&s->loop, session_tick, &tc);
}

void session_read_counters(struct session *s)
{
	if (s->skel)
		bpfload_counters(s->skel->maps.counters, s->counters, HS_CNT_MAX);
}

void session_progress(struct session *s, double elapsed, const char *extra)
{
	if (!isatty(STDERR_FILENO))
		return;
	fprintf(stderr, "\rheapspy: pid %d  %.0fs", (int)s->t.pid, elapsed);
	if (s->o->tgt.duration > 0)
		fprintf(stderr, "/%.0fs", s->o->tgt.duration);
	if (s->skel && s->o->heap) {
		session_read_counters(s);
		fprintf(stderr, "  %" PRIu64 " samples  %" PRIu64 " frees  %" PRIu64 " lost",
			s->agg.samples, s->agg.frees, s->counters[HS_CNT_LOST]);
	}
	fprintf(stderr, "%s%s\033[K", extra ? "  " : "", extra ? extra : "");
}

void session_stop(struct session *s, enum evloop_end end)
{
	bool rate_read;

	s->exited = end == EVLOOP_TARGET_EXIT;
	/* The recording ends now: taking the uprobes down takes the kernel tens of milliseconds
	 * more. */
	s->secs = (double)(evloop_now_ns() - s->start_ns) / 1e9;
	/* runtime/pprof's period is the rate as it writes (before heapspy restores it). */
	rate_read = s->hp.mem_profile_rate && !s->exited && read_rate(s, &s->end_rate) == 0;
	restore_sampling(s);
	final_snapshot(s);
	/*
	 * The profile is published at the runtime's cycle as the probes start coming down: while
	 * they are taken down one by one (up to a tenth of a second each for perf-event uprobes) a
	 * later cycle's frees may go unseen where its allocations are not. A target that exited
	 * has no cycle left to read: all its events are in the ring buffers.
	 */
	if (read_cycle(s) == 0) {
		s->cycle = session_cycle(s);
		s->cycle_final = true;
	}
	/* Detached first, then drained: with no producer left the ring buffers hold all there is,
	 * so the drain ends however fast the probes were firing. */
	detach_all(s);
	evloop_drain(&s->loop);
	session_read_counters(s);
	if (!rate_read)
		s->end_rate = heapagg_last_rate(&s->agg);
	final_self_check(s);
	if (isatty(STDERR_FILENO))
		fprintf(stderr, "\r\033[K");
}

int session_wait(struct session *s, enum evloop_end end)
{
	if (!s->launched)
		return 0;
	/* Launch mode ends like the program: forward a SIGTERM meant to end it, then wait. */
	if (end == EVLOOP_SIGNAL && s->loop.signal == SIGTERM)
		kill(s->t.pid, SIGTERM);
	s->launched = false;
	return launch_reap(&s->launch);
}

void session_close(struct session *s)
{
	restore_sampling(s);
	detach_all(s);
	heap_bpf__destroy(s->skel);
	s->skel = NULL;
	evloop_close(&s->loop);
	heapagg_free(&s->agg);
	golabels_free(&s->labels);
	selfcheck_free(&s->check);
	rtfrees_free(&s->rtfrees);
	target_close(&s->t);
}

bool session_labels_text(const struct session *s, char *buf, size_t len)
{
	const struct golabels *l = &s->labels;
	size_t nsets = l->nsets ? l->nsets - 1 : 0;

	switch (s->hp.layout.labels) {
	case LABELS_NOT_LINKED:
		return false;
	case LABELS_UNKNOWN:
		snprintf(buf, len, "pprof labels not read: where %s keeps them is unknown",
			 s->t.go_version);
		return true;
	case LABELS_READ:
		break;
	}
	snprintf(buf, len, "pprof labels: %zu distinct label set%s", nsets, nsets == 1 ? "" : "s");
	if (l->unread)
		snprintf(buf + strlen(buf), len - strlen(buf),
			 "; %" PRIu64 " samples' labels unread (not in time, or not a label set): "
			 "shown without labels",
			 l->unread);
	return true;
}

void session_rate_text(const struct session *s, char *buf, size_t len)
{
	const struct heapagg *a = &s->agg;
	bool switched = s->rate_switched || s->old_rate != s->rate;
	int64_t shown = s->rate, end = session_period(s);
	size_t n;

	n = (size_t)snprintf(buf, len, "sampling every %" PRId64 " bytes", end);
	if (!a->rate_changes && end == s->rate) {
		if (switched && n < len)
			snprintf(buf + n, len - n, " (switched on by heapspy)");
		return;
	}
	if (n < len)
		n += (size_t)snprintf(buf + n, len - n, " (the program changed it: %" PRId64 "%s",
				      s->rate, switched ? " set by heapspy" : " at the start");
	for (size_t i = 0; i < a->nperiods && n < len; i++) {
		const struct heap_rate_period *p = &a->periods[i];
		double at = p->ts > s->start_ns ? (double)(p->ts - s->start_ns) / 1e9 : 0;

		if (p->rate == shown)
			continue;
		n += (size_t)snprintf(buf + n, len - n, ", %" PRId64 " from %.1fs", p->rate, at);
		shown = p->rate;
	}
	if (a->rate_changes >= HEAPAGG_RATE_PERIODS && n < len)
		n += (size_t)snprintf(buf + n, len - n, ", %" PRIu64 " changes in all",
				      a->rate_changes);
	if (shown != end && n < len)
		n += (size_t)snprintf(buf + n, len - n, ", %" PRId64 " at the end", end);
	if (n < len)
		snprintf(buf + n, len - n, "; each sample counts at its own rate)");
}

bool session_truncated_text(const struct session *s, char *buf, size_t len)
{
	if (!s->counters[HS_CNT_TRUNCATED])
		return false;
	snprintf(buf, len,
		 "%" PRIu64 " sampled stacks were deeper than heapspy walks (%d frames) and were "
		 "cut: their outer frames are missing",
		 s->counters[HS_CNT_TRUNCATED], HS_MAX_FRAMES);
	return true;
}

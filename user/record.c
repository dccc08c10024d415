/*
 * heapspy record: attach (or launch), switch the runtime's heap sampling on if it is off, read
 * the runtime's own records of what was allocated before, stream sampled allocations and frees
 * until the end, then write a pprof heap profile and a one-screen summary.
 */
#include "record.h"

#include <argp.h>
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bpfload.h"
#include "cli.h"
#include "evloop.h"
#include "heapagg.h"
#include "heap.skel.h" /* after heapagg.h: it needs heapspy.h's types */
#include "heapprof.h"
#include "mbuckets.h"
#include "probes.h"
#include "proc.h"
#include "target.h"

#define DEFAULT_RATE (512 * 1024)
#define TOP_SITES 10

struct record_opts {
	struct cli_target tgt;
	const char *output;
	long rate;
	bool rate_given;
	bool no_write;
	int top;
};

struct recorder {
	struct record_opts *o;
	struct target t;
	struct heap_probes hp;
	struct heap_bpf *skel;
	struct bpf_link *links[3];
	struct heapagg agg;
	struct evloop loop;
	struct launch launch;
	bool launched;
	int64_t old_rate, rate;
	bool rate_switched;
	bool exited;
	long baseline_records;
	double freeze_ms;
	int64_t cycle;
	int64_t start_wall_ns;
	uint64_t start_ns;
	uint64_t counters[HS_CNT_MAX];
	int error; /* first error from an event handler */
};

static const struct argp_option record_options[] = {
    CLI_TARGET_OPTIONS,
    {"output", 'o', "FILE", 0, "Write the heap profile here (default heap.pb.gz)", 0},
    {"rate", 'r', "BYTES", 0,
     "Sample one allocation per BYTES allocated when heapspy has to switch sampling on "
     "(default 524288, Go's own default; 1 records every allocation)",
     0},
    {"no-write", 'n', NULL, 0,
     "Never write to the target's memory: if its runtime is not sampling, record nothing", 0},
    {"top", 't', "N", 0, "Show the N biggest sites in the summary (default 10)", 0},
    {0},
};

static error_t parse_record(int key, char *arg, struct argp_state *state)
{
	struct record_opts *o = state->input;

	switch (key) {
	case 'o':
		o->output = arg;
		return 0;
	case 'r':
		o->rate = cli_parse_long(state, arg, "--rate", 1, INT32_MAX);
		o->rate_given = true;
		return 0;
	case 'n':
		o->no_write = true;
		return 0;
	case 't':
		o->top = (int)cli_parse_long(state, arg, "--top", 0, 1000);
		return 0;
	default:
		return cli_parse_target(key, arg, state, &o->tgt);
	}
}

static const char record_doc[] =
    "Record a heap profile of a running Go program, or of one heapspy launches.\n\n"
    "  heapspy record --pid PID [-o heap.pb.gz] [--duration SECS]\n"
    "  heapspy record [-o heap.pb.gz] -- ./prog ARGS...\n\n"
    "The Go runtime samples one allocation per MemProfileRate bytes and remembers it until the "
    "garbage collector frees it; heapspy listens to exactly those two events with uprobes, so "
    "the program runs at full speed between samples. Programs that do not link runtime/pprof "
    "run with sampling off; heapspy switches it on (at --rate) and restores it when it "
    "detaches. When the runtime was sampling already, the profile also holds what was "
    "allocated before heapspy attached.\n\n"
    "Recording ends after --duration, on Ctrl-C or SIGTERM, or when the program exits. The "
    "profile is what runtime/pprof's heap profile would be at that moment (in use as of the "
    "last completed GC); read it with `go tool pprof heap.pb.gz`, Pyroscope or Parca."
    "\vExamples:\n"
    "  heapspy record --pid 4242 --duration 30\n"
    "  heapspy record -o before.pb.gz --pid 4242 --duration 60 && go tool pprof -top "
    "before.pb.gz\n"
    "  heapspy record -- ./server -listen :8080";

static int check_output(const char *path, char *err, size_t errlen)
{
	char copy[PATH_MAX], *dir;
	struct stat st;

	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "cannot write %s: it is a directory", path);
		return -EISDIR;
	}
	snprintf(copy, sizeof(copy), "%s", path);
	dir = dirname(copy);
	if (access(dir, W_OK | X_OK) != 0) {
		snprintf(err, errlen, "cannot write %s: %s: %s", path, dir, strerror(errno));
		return -errno;
	}
	return 0;
}

static int read_cycle(struct recorder *r)
{
	uint32_t v;

	if (!r->hp.mprof_cycle || target_read(&r->t, r->hp.mprof_cycle, &v, sizeof(v)) != 0)
		return -ENOENT;
	/* mProfCycleHolder stores the cycle above a "flushed" flag bit. */
	if ((int64_t)(v >> 1) > r->cycle || r->cycle == HEAPAGG_UNKNOWN_CYCLE)
		r->cycle = v >> 1;
	return 0;
}

static int on_event(void *ctx, void *data, size_t len)
{
	struct recorder *r = ctx;
	const struct hs_event_header *h = data;
	int rc = 0;

	if (len >= sizeof(struct hs_alloc_event) && h->type == HS_EV_ALLOC)
		rc = heapagg_alloc(&r->agg, data);
	else if (len >= sizeof(struct hs_free_event) && h->type == HS_EV_FREE)
		rc = heapagg_free_event(&r->agg, data);
	if (rc && !r->error)
		r->error = rc;
	return 0;
}

static void on_tick(void *ctx, double elapsed)
{
	struct recorder *r = ctx;

	read_cycle(r);
	if (!isatty(STDERR_FILENO))
		return;
	bpfload_counters(r->skel->maps.counters, r->counters, HS_CNT_MAX);
	fprintf(stderr, "\rheapspy: pid %d  %.0fs", (int)r->t.pid, elapsed);
	if (r->o->tgt.duration > 0)
		fprintf(stderr, "/%.0fs", r->o->tgt.duration);
	fprintf(stderr, "  %" PRIu64 " samples  %" PRIu64 " frees  %" PRIu64 " lost\033[K",
		r->agg.samples, r->agg.frees, r->counters[HS_CNT_LOST]);
}

static int load_probes(struct recorder *r, char *err, size_t errlen)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo, .btf_custom_path = r->o->tgt.btf);
	int rc;

	r->skel = heap_bpf__open_opts(&oo);
	if (!r->skel) {
		snprintf(err, errlen, "cannot open the BPF programs: %s", strerror(errno));
		return -errno;
	}
	r->skel->rodata->cfg = r->hp.cfg;
	rc = heap_bpf__load(r->skel);
	if (rc) {
		snprintf(err, errlen, "the kernel refused heapspy's BPF programs: %s (run with -v)",
			 strerror(-rc));
		return rc;
	}
	return 0;
}

static int attach_probes(struct recorder *r, char *err, size_t errlen)
{
	pid_t pid = r->t.pid;

	r->links[0] = bpfload_uprobe(r->skel->progs.mprof_malloc, pid, r->t.path,
				     r->hp.mprof_malloc.offset, r->hp.mprof_malloc.name, err, errlen);
	if (!r->links[0])
		return -errno;
	r->links[1] = bpfload_uprobe(r->skel->progs.free_special, pid, r->t.path,
				     r->hp.free_special.offset, r->hp.free_special.name, err, errlen);
	if (!r->links[1])
		return -errno;
	if (r->launched) {
		r->links[2] = bpfload_uprobe(r->skel->progs.stop_before_init, pid, r->t.path,
					     r->hp.gcenable.offset, "runtime.gcenable", err, errlen);
		if (!r->links[2])
			return -errno;
	}
	return 0;
}

static void detach_probes(struct recorder *r)
{
	for (int i = 0; i < 3; i++) {
		bpf_link__destroy(r->links[i]);
		r->links[i] = NULL;
	}
}

/* Makes sure the runtime samples, at the rate the user asked for when heapspy has to choose. */
static int ensure_sampling(struct recorder *r, char *err, size_t errlen)
{
	int64_t rate;
	int rc;

	if (!r->hp.mem_profile_rate) {
		fprintf(stderr,
			"heapspy: %s has no symbol table: cannot read runtime.MemProfileRate; "
			"recording at whatever rate the runtime uses\n",
			r->t.display);
		r->old_rate = r->rate = r->o->rate;
		return 0;
	}
	rc = target_read(&r->t, r->hp.mem_profile_rate, &rate, sizeof(rate));
	if (rc) {
		snprintf(err, errlen, "cannot read runtime.MemProfileRate: %s", strerror(-rc));
		return rc;
	}
	r->old_rate = r->rate = rate;
	if (rate > 0) {
		if (r->o->rate_given && r->o->rate != rate)
			fprintf(stderr,
				"heapspy: the runtime already samples every %" PRId64
				" bytes; keeping that rate (--rate %ld ignored) so its own records "
				"stay comparable\n",
				rate, r->o->rate);
		return 0;
	}
	if (r->o->no_write) {
		fprintf(stderr, "heapspy: the runtime is not sampling (MemProfileRate=0) and "
				"--no-write forbids switching it on: the profile will hold no "
				"allocations unless the program enables sampling itself\n");
		return 0;
	}
	rate = r->o->rate;
	rc = target_write(&r->t, r->hp.mem_profile_rate, &rate, sizeof(rate));
	if (rc) {
		snprintf(err, errlen, "cannot switch heap sampling on (write runtime.MemProfileRate): %s",
			 strerror(-rc));
		return rc;
	}
	r->rate = rate;
	r->rate_switched = true;
	fprintf(stderr,
		"heapspy: the runtime was not sampling; switched MemProfileRate from 0 to %" PRId64
		" (restored on detach)\n",
		rate);
	return 0;
}

static void restore_sampling(struct recorder *r)
{
	if (!r->rate_switched || r->exited || !proc_alive(r->t.pid))
		return;
	if (target_write(&r->t, r->hp.mem_profile_rate, &r->old_rate, sizeof(r->old_rate)) == 0)
		r->rate_switched = false;
	else
		fprintf(stderr, "heapspy: could not restore MemProfileRate to %" PRId64 "\n",
			r->old_rate);
}

/* The runtime's records from before attach, read with the process held still. */
static int read_baseline(struct recorder *r, char *err, size_t errlen)
{
	long n;

	if (!r->hp.mbuckets || read_cycle(r) != 0) {
		fprintf(stderr, "heapspy: no runtime.mbuckets/mProfCycle symbols: the profile covers "
				"allocations since attach only\n");
		return 0;
	}
	n = mbuckets_read(&r->t, r->hp.mbuckets, r->cycle, &r->agg, err, errlen);
	if (n < 0)
		return (int)n;
	r->baseline_records = n;
	return 0;
}

static void set_cycle_addr(struct recorder *r)
{
	r->skel->bss->mprof_cycle_addr = target_runtime_addr(&r->t, r->hp.mprof_cycle);
}

static int start_running(struct recorder *r, char *err, size_t errlen)
{
	uint64_t t0 = 0;
	int64_t rate;
	bool frozen = false;
	int rc;

	rc = target_locate(&r->t, err, errlen);
	if (rc)
		return rc;
	/* A sampling runtime has records to read; hold it still so they match the probes' start. */
	if (r->hp.mem_profile_rate &&
	    target_read(&r->t, r->hp.mem_profile_rate, &rate, sizeof(rate)) == 0 && rate > 0) {
		t0 = evloop_now_ns();
		rc = proc_freeze(r->t.pid, err, errlen);
		if (rc)
			return rc;
		frozen = true;
		r->freeze_ms = (double)(evloop_now_ns() - t0) / 1e6;
	}
	rc = load_probes(r, err, errlen);
	if (!rc) {
		set_cycle_addr(r);
		rc = attach_probes(r, err, errlen);
	}
	if (!rc && frozen)
		rc = read_baseline(r, err, errlen);
	if (!rc)
		rc = ensure_sampling(r, err, errlen);
	if (frozen) {
		proc_thaw(r->t.pid);
		r->freeze_ms = (double)(evloop_now_ns() - t0) / 1e6;
	}
	return rc;
}

static int start_launched(struct recorder *r, char *err, size_t errlen)
{
	int status, rc;

	rc = load_probes(r, err, errlen);
	if (!rc)
		rc = attach_probes(r, err, errlen);
	if (rc)
		return rc;
	rc = launch_release(&r->launch);
	if (!rc)
		rc = launch_wait_stopped(&r->launch, &status);
	if (rc) {
		snprintf(err, errlen, "%.300s exited before its runtime was initialized", r->t.display);
		return rc;
	}
	/* Stopped in runtime.main: the runtime is initialized, no package init has run yet. */
	bpf_link__destroy(r->links[2]);
	r->links[2] = NULL;
	rc = target_locate(&r->t, err, errlen);
	if (!rc) {
		set_cycle_addr(r);
		rc = ensure_sampling(r, err, errlen);
	}
	kill(r->t.pid, SIGCONT);
	return rc;
}

static void print_summary(struct recorder *r, const struct heapprof *h, enum evloop_end end,
			  double secs)
{
	double total = (double)h->total.inuse_bytes;

	printf("heapspy: pid %d %s (%s), %.1fs, ended by %s\n", (int)r->t.pid, r->t.display,
	       r->t.go_version, secs, evloop_end_str(end, r->loop.signal));
	printf("  sampling every %" PRId64 " bytes%s; %" PRIu64 " samples, %" PRIu64
	       " frees, %" PRIu64 " events lost",
	       r->rate, r->rate_switched || r->old_rate != r->rate ? " (switched on by heapspy)" : "",
	       r->agg.samples, r->agg.frees, r->counters[HS_CNT_LOST]);
	if (r->baseline_records)
		printf("; %ld runtime records from before attach", r->baseline_records);
	if (r->agg.repeated)
		printf("; %" PRIu64 " repeated probe hits dropped", r->agg.repeated);
	printf("\n  in use %.1f MiB in %" PRId64 " objects; allocated %.1f MiB\n",
	       total / 1048576.0, h->total.inuse_objects,
	       (double)h->total.alloc_bytes / 1048576.0);
	if (!h->nrows)
		return;
	printf("  %10s %6s %12s  %s\n", "in use", "share", "allocated", "site");
	for (size_t i = 0; i < h->nrows && (int)i < r->o->top; i++) {
		const struct heap_row *row = &h->rows[i];
		const char *file = strrchr(row->file, '/');

		printf("  %8.1fMi %5.1f%% %10.1fMi  %s (%s:%u)\n",
		       (double)row->inuse_bytes / 1048576.0,
		       total > 0 ? 100.0 * (double)row->inuse_bytes / total : 0.0,
		       (double)row->alloc_bytes / 1048576.0, row->function, file ? file + 1 : row->file,
		       row->line);
	}
}

static int finish(struct recorder *r, enum evloop_end end, char *err, size_t errlen)
{
	struct heapprof_meta m;
	struct heapprof h;
	double secs;
	int rc;

	r->exited = end == EVLOOP_TARGET_EXIT;
	evloop_drain(&r->loop);
	bpfload_counters(r->skel->maps.counters, r->counters, HS_CNT_MAX);
	if (end != EVLOOP_TARGET_EXIT)
		read_cycle(r);
	restore_sampling(r);
	detach_probes(r);
	if (isatty(STDERR_FILENO))
		fprintf(stderr, "\r\033[K");

	secs = (double)(evloop_now_ns() - r->start_ns) / 1e9;
	if (r->agg.last_cycle > r->cycle)
		r->cycle = r->agg.last_cycle;
	m = (struct heapprof_meta){
	    .rate = r->rate,
	    .cycle = r->hp.mprof_cycle ? r->cycle : HEAPAGG_UNKNOWN_CYCLE,
	    .time_ns = r->start_wall_ns,
	    .duration_ns = (int64_t)(secs * 1e9),
	};
	rc = heapprof_build(&h, &r->t, &r->agg, &m);
	if (rc) {
		snprintf(err, errlen, "cannot build the profile: %s", strerror(-rc));
		return rc;
	}
	pprof_comment(h.p, "heapspy record: pid %d %s %s", (int)r->t.pid, r->t.display,
		      r->t.go_version);
	if (r->baseline_records)
		pprof_comment(h.p, "includes %ld runtime heap records from before heapspy attached",
			      r->baseline_records);
	else
		pprof_comment(h.p, "covers allocations since heapspy attached (the runtime %s)",
			      r->launched ? "was launched by heapspy" : "was not sampling before");
	if (m.cycle != HEAPAGG_UNKNOWN_CYCLE)
		pprof_comment(h.p, "in use as of heap-profile cycle %" PRId64
				   " (the last completed GC), as runtime/pprof reports it",
			      m.cycle);
	else
		pprof_comment(h.p, "in use as of the end of recording (runtime.mProfCycle unknown)");
	if (r->counters[HS_CNT_LOST])
		pprof_comment(h.p, "%" PRIu64 " events lost: the ring buffer was full",
			      r->counters[HS_CNT_LOST]);
	rc = pprof_write(h.p, r->o->output, err, errlen);
	if (!rc) {
		print_summary(r, &h, end, secs);
		printf("  wrote %s: go tool pprof %s\n", r->o->output, r->o->output);
	}
	heapprof_free(&h);
	return rc;
}

static void cleanup(struct recorder *r)
{
	restore_sampling(r);
	detach_probes(r);
	heap_bpf__destroy(r->skel);
	evloop_close(&r->loop);
	heapagg_free(&r->agg);
	target_close(&r->t);
}

int cmd_record(int argc, char **argv)
{
	struct record_opts o = {.output = "heap.pb.gz", .rate = DEFAULT_RATE, .top = TOP_SITES};
	struct argp argp = {record_options, parse_record, NULL, record_doc, NULL, NULL, NULL};
	struct recorder r = {.o = &o, .cycle = HEAPAGG_UNKNOWN_CYCLE, .loop = {.epfd = -1}};
	enum evloop_end end;
	struct timespec wall;
	char err[512] = "";
	int rc, status = 0;

	cli_parse(&argp, argc, argv, &o, &o.tgt);
	bpfload_set_verbose(o.tgt.verbose);
	heapagg_init(&r.agg);
	r.t.mem_fd = -1;
	r.loop.sigfd = r.loop.pidfd = r.loop.timerfd = -1;

	rc = check_output(o.output, err, sizeof(err));
	if (!rc)
		rc = bpfload_check(o.tgt.btf, err, sizeof(err));
	if (!rc && o.tgt.argv) {
		rc = launch_prepare(&r.launch, o.tgt.argv, err, sizeof(err));
		r.launched = rc == 0;
		if (!rc)
			rc = target_open_path(&r.t, r.launch.path, r.launch.pid, err, sizeof(err));
	} else if (!rc) {
		rc = target_open_pid(&r.t, o.tgt.pid, err, sizeof(err));
	}
	if (!rc)
		rc = probes_resolve_heap(&r.t, &r.hp, err, sizeof(err));
	if (!rc)
		rc = r.launched ? start_launched(&r, err, sizeof(err)) : start_running(&r, err, sizeof(err));
	if (!rc)
		rc = evloop_init(&r.loop, r.t.pid, o.tgt.duration, 100);
	if (!rc)
		rc = evloop_add_ringbuf(&r.loop, bpf_map__fd(r.skel->maps.events), on_event, &r);
	if (rc) {
		if (!err[0])
			snprintf(err, sizeof(err), "cannot start recording: %s", strerror(-rc));
		fprintf(stderr, "heapspy: %s\n", err);
		if (r.launched && r.launch.pid > 0) {
			kill(r.launch.pid, SIGKILL);
			launch_reap(&r.launch);
		}
		cleanup(&r);
		return 1;
	}
	clock_gettime(CLOCK_REALTIME, &wall);
	r.start_wall_ns = (int64_t)wall.tv_sec * 1000000000 + wall.tv_nsec;
	r.start_ns = evloop_now_ns();
	fprintf(stderr, "heapspy: recording pid %d (%s, %s)%s\n", (int)r.t.pid, r.t.display,
		r.t.go_version, isatty(STDERR_FILENO) ? "; Ctrl-C to stop" : "");

	end = evloop_run(&r.loop, on_tick, &r);
	rc = finish(&r, end, err, sizeof(err));
	if (rc)
		fprintf(stderr, "heapspy: %s\n", err);
	else if (r.error)
		fprintf(stderr, "heapspy: out of memory while recording: the profile is partial\n");
	if (r.launched) {
		/* Launch mode ends like the program: forward a SIGTERM meant to end it, then wait. */
		if (end == EVLOOP_SIGNAL && r.loop.signal == SIGTERM)
			kill(r.t.pid, SIGTERM);
		status = launch_reap(&r.launch);
	}
	cleanup(&r);
	if (rc)
		return 1;
	return r.launched && status >= 0 ? status : 0;
}

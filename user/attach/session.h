/*
 * session: one observation of one Go process, shared by every command: find the target (a pid, or
 * a program to launch with the probes in place before it runs), load and attach the probes, switch
 * the runtime's heap sampling on when it is off, read the runtime's records from before attach,
 * run the event loop, and undo everything on the way out.
 */
#ifndef HEAPSPY_SESSION_H
#define HEAPSPY_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "cli.h"
#include "evloop.h"
#include "heapagg.h"
#include "probes.h"
#include "proc.h"
#include "rateshare.h"
#include "rtfrees.h"
#include "selfcheck.h"
#include "target.h"

struct heap_bpf;
struct probe_link;

/*
 * Probes a command adds beyond the heap probes (the GC's, say). The session calls attach while
 * the target is held still (stopped before its package initializers in launch mode), located once
 * the target's load address is known, and on the way out destroys the set's links in one batch
 * with its own (bpfload_destroy_links), so that the kernel's waits overlap where they can.
 */
struct probe_set {
	int (*attach)(void *ctx, const struct target *t, const char *btf, char *err, size_t errlen);
	int (*located)(void *ctx, const struct target *t, char *err, size_t errlen);
	int (*ringbuf_fd)(void *ctx);
	int (*on_event)(void *ctx, void *data, size_t len);
	struct probe_link **links; /* NULL entries are links not made */
	size_t nlinks;		   /* at most PROBE_SET_MAX_LINKS */
	void *ctx;
};

#define PROBE_SET_MAX_LINKS 16

struct session_opts {
	struct cli_target tgt;
	bool heap; /* the heap-sampling probes (record, leaks) */
	/*
	 * Follow each sampled object to its free with a second probe (two hits per sample: leaks
	 * needs each object's lifetime). Otherwise a running program's profile is the runtime's own
	 * records, read at its published cycles (heapagg_record): no hit at all; a launched one's,
	 * or one whose samples carry pprof labels, takes each sample with a probe and the frees
	 * from the records (rtfrees.h): one hit per sample.
	 */
	bool frees;
	long rate;	  /* MemProfileRate heapspy sets when the runtime is not sampling */
	size_t max_sites; /* heapagg's cap on sites, 0 for none (heapagg.h) */
	bool rate_given;
	bool no_write;		 /* never write to the target's memory */
	bool no_signals;	 /* the event loop leaves the ending signals to the main thread */
	struct probe_set *extra; /* or NULL */
};

#define SESSION_DEFAULT_RATE (512 * 1024)

/* The options of every command that samples the heap, beside CLI_TARGET_OPTIONS. */
#define SESSION_SAMPLING_OPTIONS                                                                   \
	{"rate",                                                                                   \
	 'r',                                                                                      \
	 "BYTES",                                                                                  \
	 0,                                                                                        \
	 "Sample one allocation per BYTES allocated when heapspy has to switch sampling on "       \
	 "(default 524288, Go's own default; 1 records every allocation)",                         \
	 0},                                                                                       \
	{                                                                                          \
		"no-write", 'n', NULL, 0,                                                          \
		    "Never write to the target's memory: if its runtime is not sampling, see "     \
		    "nothing",                                                                     \
		    0                                                                              \
	}

/* Parses SESSION_SAMPLING_OPTIONS and CLI_TARGET_OPTIONS into so. */
error_t session_parse_opt(int key, char *arg, struct argp_state *state, struct session_opts *so);

enum {
	SESSION_LINK_MALLOC,
	SESSION_LINK_FREE,
	SESSION_LINK_POSTSWEEP,
	SESSION_LINK_STOP,
	SESSION_LINKS
};

struct session {
	const struct session_opts *o;
	struct target t;
	struct heap_probes hp;
	struct heap_bpf *skel;
	struct probe_link *links[SESSION_LINKS];
	struct heapagg agg;
	struct golabels labels;	   /* the label sets of the samples, where the probe reads them */
	unsigned labels_drain_ms;  /* how often the ring buffers are drained for them */
	int64_t labels_tick_cycle; /* the heap-profile cycle at the last tick */
	struct evloop loop;
	struct launch launch;
	bool launched;
	bool exited;
	int64_t old_rate, rate; /* MemProfileRate before heapspy and as recording started */
	int64_t end_rate;	/* as it ended (the program may change it), set by session_stop */
	bool rate_switched;  /* heapspy switched sampling on: this session restores if last out */
	bool found_sampling; /* the runtime sampled when heapspy came to switch it on */
	uint64_t events_from_ns; /* heap events before this instant are not the recording's */
	struct rateshare share;
	long baseline_records; /* runtime records read from before attach */
	double freeze_ms;      /* how long the target was held still to read them */
	int64_t cycle;	       /* newest heap-profile cycle read from the runtime */
	bool cycle_final;      /* session_stop fixed cycle as the probes came down */
	int64_t start_wall_ns;
	uint64_t start_ns;
	double secs; /* recording time, set by session_stop */
	/* heapspy's totals against the runtime's own records */
	struct selfcheck check;
	struct rtfrees rtfrees; /* frees from them, without the free probe (agg.runtime_frees) */
	uint64_t counters[HS_CNT_MAX];
	int error; /* first error from an event handler */
};

/* Opens the target and attaches everything; on failure err holds a one-line reason. */
int session_start(struct session *s, const struct session_opts *o, char *err, size_t errlen);
/* Runs the event loop; on_tick (may be NULL) runs every 100 ms. */
enum evloop_end session_run(struct session *s, void (*on_tick)(void *ctx, double elapsed),
			    void *ctx);
/* Drains the probes, restores the target's sampling rate and detaches. */
void session_stop(struct session *s, enum evloop_end end);
/*
 * Launch mode: waits for the program (forwarding a SIGTERM that ended the recording) and returns
 * its exit status; 0 when attached to a running process.
 */
int session_wait(struct session *s, enum evloop_end end);
void session_close(struct session *s);

/* The probes' counters into s->counters (done by session_stop and session_progress). */
void session_read_counters(struct session *s);
/* Heap progress on stderr (a terminal only): "pid N  12s/30s  1234 samples ...". */
void session_progress(struct session *s, double elapsed, const char *extra);
/* Seconds recorded: so far while running, the whole recording after session_stop. */
double session_secs(const struct session *s);
/* A profile's period: MemProfileRate now (at the end after session_stop), as runtime/pprof's. */
int64_t session_period(const struct session *s);
/* The heap-profile cycle to publish at, HEAPAGG_UNKNOWN_CYCLE if the runtime's is unknown. */
int64_t session_cycle(const struct session *s);

/*
 * "sampling every N bytes" and how the rate came about (switched on by heapspy, changed by the
 * program and when), for the summaries; after session_stop.
 */
/*
 * What became of the samples' pprof labels, for the summary and the profile's comments; false
 * where the binary sets none.
 */
bool session_labels_text(const struct session *s, char *buf, size_t len);
void session_rate_text(const struct session *s, char *buf, size_t len);
/*
 * Whether the probe cut stacks deeper than it walks (HS_MAX_FRAMES), and how many, in buf for the
 * summaries and the profile's comments; after session_stop.
 */
bool session_truncated_text(const struct session *s, char *buf, size_t len);

#endif

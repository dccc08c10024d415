/*
 * heapspy serve: a long-running agent that records every process it is given and serves what
 * net/http/pprof would serve for each (its heap and allocs profiles), and heapspy's GC cycles, over
 * HTTP, so that continuous profilers scrape Go services that were never built with
 * net/http/pprof. One recording per target, each in a thread of its own (servetarget.h); HTTP
 * from libmicrohttpd, a thread per connection, so a slow client stalls only itself.
 */
#include "serve.h"

#include <argp.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <json-c/json.h>
#include <malloc.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "discover.h"
#include "push.h"
#include "promtext.h"
#include "serveroute.h"
#include "servetarget.h"

#define MAX_PIDS	   256
#define MAX_PUSH	   8
#define DEFAULT_INTERVAL_S 15
#define DEFAULT_LISTEN	   "127.0.0.1:6061"
/* net/http/pprof bounds `seconds` by the server's WriteTimeout; heapspy by an hour. */
#define MAX_SECONDS 3600
/* Connections at once; a thread each. More wait in the kernel's backlog. */
#define MAX_CONNECTIONS 64
#define IDLE_TIMEOUT_S	30

struct serve_opts {
	struct session_opts s;
	pid_t pids[MAX_PIDS];
	size_t npids;
	const char *listen;
	bool all;	   /* --all */
	const char *match; /* --match REGEX */
	double rescan;	   /* seconds between two looks for processes to serve */
	const char *token_file, *tls_cert, *tls_key;
	const char *push[MAX_PUSH]; /* Pyroscope servers */
	size_t npush;
	double interval; /* seconds between two pushes */
};

/* A target and who holds it: the list, and each request that found it there. */
struct served {
	struct serve_target st;
	pid_t pid;
	int refs; /* under serve.mu */
};

struct serve {
	const struct serve_opts *o;
	pthread_mutex_t mu;
	struct served *targets[MAX_PIDS]; /* under mu: those still recording */
	size_t ntargets;
	int endfd;	   /* a target's loop ended: the main thread takes it off the list */
	int quitfd;	   /* readable once heapspy stops: requests waiting out `seconds` give up */
	double start_time; /* seconds since the epoch */
	struct MHD_Daemon *d;
	char *token; /* the bearer token every request must carry, or NULL */
	size_t token_len;
	char *tls_cert, *tls_key; /* PEM, for libmicrohttpd while it serves */
	struct pusher pushers[MAX_PUSH];
};

enum {
	OPT_LISTEN = 0x300,
	OPT_ALL,
	OPT_MATCH,
	OPT_RESCAN,
	OPT_TOKEN,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_PUSH,
	OPT_INTERVAL,
};

/* A token or certificate file larger than this is a mistake. */
#define MAX_SECRET_FILE (1 << 20)

#define DEFAULT_RESCAN_S 5

static const struct argp_option serve_options[] = {
    {"pid", 'p', "PID", 0, "Serve the running Go process PID (repeat for more)", 0},
    {"listen", OPT_LISTEN, "ADDR", 0,
     "Listen on ADDR, HOST:PORT (default " DEFAULT_LISTEN ", loopback only; :PORT for every "
     "interface; port 0 picks a free one)",
     0},
    {"all", OPT_ALL, NULL, 0, "Serve every Go process heapspy may attach to, as they come and go",
     0},
    {"match", OPT_MATCH, "REGEX", 0,
     "Serve the Go processes whose command name or executable path matches REGEX (POSIX "
     "extended), as they come and go",
     0},
    {"rescan", OPT_RESCAN, "SECS", 0,
     "With --all or --match, look for new processes every SECS seconds (default 5)", 0},
    {"token-file", OPT_TOKEN, "FILE", 0,
     "Answer only requests that carry this file's token (Authorization: Bearer TOKEN); 401 "
     "otherwise",
     0},
    {"tls-cert", OPT_TLS_CERT, "FILE", 0, "Serve HTTPS with this PEM certificate (and --tls-key)",
     0},
    {"tls-key", OPT_TLS_KEY, "FILE", 0, "The PEM private key of --tls-cert", 0},
    {"push", OPT_PUSH, "URL", 0,
     "Also send every process's profile to the Grafana Pyroscope server at URL (its /ingest "
     "API) every --interval (repeat for more servers)",
     0},
    {"interval", OPT_INTERVAL, "SECS", 0, "Seconds between two pushes (default 15)", 0},
    {"leaks", 'l', NULL, 0,
     "Also follow each sampled object to its free, for /pid/PID/debug/leaks (two probe hits "
     "per sample instead of none)",
     0},
    {"duration", 'd', "SECS", 0, "Stop after SECS seconds (default: on Ctrl-C or SIGTERM)", 0},
    {"btf", CLI_OPT_BTF, "FILE", 0, "Kernel BTF to use instead of /sys/kernel/btf/vmlinux", 0},
    {"ringbuf", CLI_OPT_RINGBUF, "KIB", 0,
     "Each ring buffer's size in KiB, a power of two (default 8192 for heap events, 1024 for GC "
     "events)",
     0},
    {"verbose", 'v', NULL, 0, "Show where the probes go and libbpf's messages", 0},
    SESSION_SAMPLING_OPTIONS,
    {0},
};

static error_t parse_serve(int key, char *arg, struct argp_state *state)
{
	struct serve_opts *o = state->input;

	switch (key) {
	case 'p':
		if (o->npids == MAX_PIDS)
			argp_error(state, "at most %d --pid", MAX_PIDS);
		o->pids[o->npids++] = (pid_t)cli_parse_long(state, arg, "--pid", 1, 0x3fffffff);
		return 0;
	case OPT_LISTEN:
		o->listen = arg;
		return 0;
	case OPT_ALL:
		o->all = true;
		return 0;
	case OPT_MATCH:
		o->match = arg;
		return 0;
	case OPT_TOKEN:
		o->token_file = arg;
		return 0;
	case OPT_TLS_CERT:
		o->tls_cert = arg;
		return 0;
	case OPT_TLS_KEY:
		o->tls_key = arg;
		return 0;
	case 'l':
		o->s.frees = true;
		return 0;
	case OPT_PUSH:
		if (o->npush == MAX_PUSH)
			argp_error(state, "at most %d --push", MAX_PUSH);
		o->push[o->npush++] = arg;
		return 0;
	case OPT_INTERVAL:
		o->interval = (double)cli_parse_long(state, arg, "--interval", 1, 3600);
		return 0;
	case OPT_RESCAN:
		o->rescan = (double)cli_parse_long(state, arg, "--rescan", 1, 3600);
		return 0;
	case ARGP_KEY_ARGS:
		argp_error(state, "serve attaches to running processes (--pid); it launches none");
		return 0;
	case ARGP_KEY_END:
		if (!o->npids && !o->all && !o->match)
			argp_error(state,
				   "say which processes: --pid PID (repeat for more), --all or "
				   "--match REGEX");
		if (o->all && o->match)
			argp_error(state, "give --all or --match, not both");
		if (!o->tls_cert != !o->tls_key)
			argp_error(state, "--tls-cert and --tls-key go together");
		return 0;
	default:
		return session_parse_opt(key, arg, state, &o->s);
	}
}

static const char serve_doc[] =
    "Serve heap profiles of running Go programs over HTTP, as net/http/pprof would serve them "
    "from inside, for continuous profilers (Parca, Grafana Pyroscope/Alloy) and `go tool pprof`: "
    "the programs need no pprof endpoint, restart or change.\n\n"
    "  heapspy serve --pid PID [--pid PID ...] [--listen " DEFAULT_LISTEN "]\n"
    "  heapspy serve --all | --match REGEX [--rescan SECS] [--listen ADDR]\n\n"
    "Each process is recorded as `heapspy record` records it, for as long as heapspy serves "
    "(heapspy switches the runtime's heap sampling on where it is off, and restores it on exit; "
    "the runtime's own records, read at each GC: no probe hit, unless the process sets pprof "
    "labels), and served under "
    "/pid/PID/:\n"
    "  /pid/PID/debug/pprof/heap     the heap profile, in use as of the last GC (gzipped pprof)\n"
    "  /pid/PID/debug/pprof/allocs   the same, alloc_space by default\n"
    "      ?seconds=S                alloc values: what was allocated in the next S seconds "
    "(in-use values stay as of the end)\n"
    "  /pid/PID/debug/gc             every GC cycle so far, as `heapspy gc --json` writes them\n"
    "  /pid/PID/debug/leaks          with --leaks, the leak candidates so far, as `heapspy "
    "leaks --json` writes them\n"
    "  /metrics                      every process's GC and heap figures, and heapspy's own, "
    "for Prometheus (labels pid, exe, go_version); /pid/PID/metrics one process's\n"
    "  /targets                      the processes served, in Prometheus' HTTP service "
    "discovery format (each scraped at /pid/PID/metrics)\n"
    "With one process, the same paths are served at the root too (/debug/pprof/heap). A "
    "process that is not served gets 404, a bad `seconds` 400, each with a one-line body. A "
    "process that exits stops being served; the others go on. With --all or --match, heapspy "
    "looks for processes every --rescan seconds: new ones are served, and a process that "
    "exec'd or a pid that names a new process is served anew. heapspy listens on loopback "
    "unless --listen says otherwise; --token-file requires a bearer token of every request "
    "(401 otherwise), --tls-cert and --tls-key serve HTTPS. --push URL also sends every "
    "process's profile to a Grafana Pyroscope server's /ingest every --interval seconds: "
    "alloc values since the push before, in-use values as they are; a server down is retried "
    "with backoff, and what does not fit the queue is dropped and counted in /metrics."
    "\vExamples:\n"
    "  heapspy serve --pid $(pidof myservice)\n"
    "  heapspy serve --match '^myservice$' --listen :6061\n"
    "  heapspy serve --all --push http://pyroscope:4040\n"
    "  go tool pprof -top http://127.0.0.1:6061/debug/pprof/heap\n"
    "  go tool pprof http://127.0.0.1:6061/pid/4242/debug/pprof/allocs?seconds=30\n"
    "  curl -s http://127.0.0.1:6061/pid/4242/debug/gc\n"
    "Prometheus (prometheus.yml):\n"
    "  scrape_configs:\n"
    "    - job_name: heapspy\n"
    "      static_configs:\n"
    "        - targets: ['127.0.0.1:6061']\n"
    "Prometheus, finding each process through /targets:\n"
    "  scrape_configs:\n"
    "    - job_name: heapspy-sd\n"
    "      http_sd_configs:\n"
    "        - url: http://127.0.0.1:6061/targets\n"
    "Parca and Grafana Alloy scrape /debug/pprof/allocs at heapspy's address (one process), or "
    "with the path prefix /pid/PID; or give --push http://PYROSCOPE:4040.";

/* ---- targets ---- */

static void target_ended(void *ctx)
{
	struct serve *sv = ctx;
	uint64_t one = 1;

	if (write(sv->endfd, &one, sizeof(one)) < 0)
		return; /* the counter is full: the main thread looks anyway */
}

static void put(struct serve *sv, struct served *t)
{
	bool last;

	pthread_mutex_lock(&sv->mu);
	last = --t->refs == 0;
	pthread_mutex_unlock(&sv->mu);
	if (!last)
		return;
	serve_target_close(&t->st);
	free(t);
}

/*
 * The target a request names, held (put releases it): pid, or the only one for the root forms.
 * NULL with why set.
 */
static struct served *get(struct serve *sv, pid_t pid, char *why, size_t len)
{
	struct served *t = NULL;

	pthread_mutex_lock(&sv->mu);
	for (size_t i = 0; i < sv->ntargets; i++)
		if (!pid || sv->targets[i]->pid == pid)
			t = sv->targets[i];
	if (t && !pid && sv->ntargets > 1) {
		snprintf(why, len,
			 "%zu processes are served: ask for one, as /pid/PID/debug/pprof/heap (/ "
			 "lists them)",
			 sv->ntargets);
		t = NULL;
	} else if (!t && pid) {
		snprintf(why, len, "pid %d is not served by this heapspy", (int)pid);
	} else if (!t) {
		snprintf(why, len, "no process is served");
	}
	if (t)
		t->refs++;
	pthread_mutex_unlock(&sv->mu);
	return t;
}

/* Takes the targets whose loop ended off the list (their process exited). */
static void reap(struct serve *sv)
{
	struct served *gone[MAX_PIDS];
	size_t ngone = 0, kept = 0;

	pthread_mutex_lock(&sv->mu);
	for (size_t i = 0; i < sv->ntargets; i++) {
		if (serve_target_ended(&sv->targets[i]->st))
			gone[ngone++] = sv->targets[i];
		else
			sv->targets[kept++] = sv->targets[i];
	}
	sv->ntargets = kept;
	pthread_mutex_unlock(&sv->mu);
	for (size_t i = 0; i < ngone; i++)
		put(sv, gone[i]);
}

static int add_target(struct serve *sv, pid_t pid, char *err, size_t errlen)
{
	struct served *t;
	int rc;

	if (sv->ntargets == MAX_PIDS) {
		snprintf(err, errlen, "pid %d: heapspy serves %d processes at most", (int)pid,
			 MAX_PIDS);
		return -ENOSPC;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	t->pid = pid;
	t->refs = 1;
	rc = serve_target_start(&t->st, pid, &sv->o->s, target_ended, sv, err, errlen);
	if (rc) {
		serve_target_close(&t->st);
		free(t);
		return rc;
	}
	pthread_mutex_lock(&sv->mu);
	sv->targets[sv->ntargets++] = t;
	pthread_mutex_unlock(&sv->mu);
	fprintf(stderr, "heapspy: serving pid %d at /pid/%d/\n", (int)pid, (int)pid);
	return 0;
}

/*
 * A process discovery offers: new, or a pid whose process exec'd or was replaced, whose old
 * recording (if any) is let go first. What is not Go, or gone already, is passed over in silence.
 */
static void offer(void *ctx, pid_t pid)
{
	struct serve *sv = ctx;
	struct served *old = NULL;
	char err[512] = "";
	int rc;

	pthread_mutex_lock(&sv->mu);
	for (size_t i = 0; i < sv->ntargets; i++) {
		if (sv->targets[i]->pid != pid)
			continue;
		old = sv->targets[i];
		sv->targets[i] = sv->targets[--sv->ntargets];
		break;
	}
	pthread_mutex_unlock(&sv->mu);
	if (old)
		put(sv, old);
	rc = add_target(sv, pid, err, sizeof(err));
	if (rc && rc != -ENOEXEC && rc != -ESRCH && rc != -ENOENT)
		fprintf(stderr, "heapspy: not serving pid %d: %s\n", (int)pid, err);
}

/* Every --interval: each process's profile since the last push, queued for every server. */
static void push_all(struct serve *sv)
{
	struct served *held[MAX_PIDS];
	size_t n = 0;

	pthread_mutex_lock(&sv->mu);
	for (; n < sv->ntargets; n++) {
		held[n] = sv->targets[n];
		held[n]->refs++;
	}
	pthread_mutex_unlock(&sv->mu);
	for (size_t i = 0; i < n; i++) {
		const struct target *t = &held[i]->st.r.s.t;
		const char *base = strrchr(t->display, '/');
		struct serve_req q = {.ask = SERVE_ASK_PUSH};
		char name[2 * PATH_MAX + 64];

		base = base ? base + 1 : t->display;
		snprintf(name, sizeof(name), "%s{pid=%d,service_name=%s}", base, (int)t->pid, base);
		if (serve_target_ask(&held[i]->st, &q) == 0)
			for (size_t k = 0; k < sv->o->npush; k++)
				pusher_enqueue(&sv->pushers[k], name, q.from, q.until, q.body,
					       q.len);
		free(q.body);
		put(sv, held[i]);
	}
}

/* ---- HTTP ---- */

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, const char *type,
			       void *body, size_t len, enum MHD_ResponseMemoryMode mode,
			       const char *filename)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
	char disposition[128];
	enum MHD_Result rc;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", type);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	if (filename) {
		snprintf(disposition, sizeof(disposition), "attachment; filename=\"%s\"", filename);
		MHD_add_response_header(r, "Content-Disposition", disposition);
	}
	rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

/* net/http/pprof's serveError: the status, and one line of plain text. */
static enum MHD_Result fail(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	line[n] = 0;
	return respond(c, status, "text/plain; charset=utf-8", line, (size_t)n,
		       MHD_RESPMEM_MUST_COPY, NULL);
}

/* Waits out `seconds`; false if heapspy is stopping meanwhile. */
static bool wait_seconds(struct serve *sv, long secs)
{
	struct pollfd p = {.fd = sv->quitfd, .events = POLLIN};

	return poll(&p, 1, (int)(secs * 1000)) == 0;
}

static enum MHD_Result answer_error(struct MHD_Connection *c, struct served *t, int rc)
{
	if (rc == -ESRCH)
		return fail(c, MHD_HTTP_NOT_FOUND, "pid %d exited: it is no longer served",
			    (int)t->pid);
	if (rc == -EAGAIN)
		return fail(c, MHD_HTTP_SERVICE_UNAVAILABLE,
			    "pid %d: no GC has published a heap profile since heapspy attached: no "
			    "delta yet, try again after one",
			    (int)t->pid);
	if (rc == -ENOTSUP)
		return fail(
		    c, MHD_HTTP_NOT_FOUND,
		    "leak candidates need heapspy serve --leaks (a second probe per sample)");
	return fail(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot build the answer: %s",
		    strerror(-rc));
}

static enum MHD_Result serve_profile(struct serve *sv, struct MHD_Connection *c, struct served *t,
				     enum serve_endpoint ep)
{
	const char *arg = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "seconds");
	const char *name = ep == SERVE_HEAP ? "heap" : "allocs";
	struct serve_req q = {.ask = SERVE_ASK_PROFILE,
			      .default_type = ep == SERVE_ALLOCS ? "alloc_space" : NULL};
	struct heapprof_base base = {0};
	char filename[32];
	long secs = 0;
	int rc;

	if (arg && serve_seconds(arg, MAX_SECONDS, &secs) != 0)
		return fail(c, MHD_HTTP_BAD_REQUEST,
			    "invalid value for \"seconds\" - must be a positive integer (at most "
			    "%d)",
			    MAX_SECONDS);
	if (secs) {
		struct serve_req b = {.ask = SERVE_ASK_BASE, .base = &base};

		rc = serve_target_ask(&t->st, &b);
		if (rc)
			return answer_error(c, t, rc);
		if (!wait_seconds(sv, secs)) {
			heapprof_base_free(&base);
			return fail(c, MHD_HTTP_SERVICE_UNAVAILABLE, "heapspy is stopping");
		}
		q.base = &base;
	}
	rc = serve_target_ask(&t->st, &q);
	heapprof_base_free(&base);
	if (rc)
		return answer_error(c, t, rc);
	snprintf(filename, sizeof(filename), "%s%s", name, secs ? "-delta" : "");
	return respond(c, MHD_HTTP_OK, "application/octet-stream", q.body, q.len,
		       MHD_RESPMEM_MUST_FREE, filename);
}

/* A JSON document the target's thread writes: the GC cycles, or the leak candidates. */
static enum MHD_Result serve_json(struct MHD_Connection *c, struct served *t, enum serve_ask ask)
{
	struct serve_req q = {.ask = ask};
	int rc = serve_target_ask(&t->st, &q);

	if (rc)
		return answer_error(c, t, rc);
	return respond(c, MHD_HTTP_OK, "application/json", q.body, q.len, MHD_RESPMEM_MUST_FREE,
		       NULL);
}

/* heapspy's own RSS and CPU, and when it started. */
static void self_metrics(struct serve *sv, struct prom_self *self)
{
	struct rusage ru;
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f && fscanf(f, "%ld %ld", &pages, &rss) != 2)
		rss = 0;
	if (f)
		fclose(f);
	self->rss_bytes = (double)rss * (double)sysconf(_SC_PAGESIZE);
	getrusage(RUSAGE_SELF, &ru);
	self->cpu_seconds = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
			    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	self->start_time_seconds = sv->start_time;
	self->push_sent = self->push_failed = self->push_dropped = 0;
	for (size_t i = 0; i < sv->o->npush; i++) {
		uint64_t sent, failed, dropped;

		pusher_counts(&sv->pushers[i], &sent, &failed, &dropped);
		self->push_sent += sent;
		self->push_failed += failed;
		self->push_dropped += dropped;
	}
}

/* /metrics: each target asked in turn, then every family written once. */
static enum MHD_Result serve_metrics(struct serve *sv, struct MHD_Connection *c, pid_t pid)
{
	struct served *held[MAX_PIDS];
	struct prom_target *m = calloc(MAX_PIDS, sizeof(*m));
	struct prom_self self;
	size_t n = 0, got = 0, len = 0;
	char *text = NULL;
	FILE *f;

	if (!m)
		return fail(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	pthread_mutex_lock(&sv->mu);
	for (size_t i = 0; i < sv->ntargets; i++) {
		if (pid && sv->targets[i]->pid != pid)
			continue;
		held[n] = sv->targets[i];
		held[n++]->refs++;
	}
	pthread_mutex_unlock(&sv->mu);
	if (pid && !n) {
		free(m);
		return fail(c, MHD_HTTP_NOT_FOUND, "pid %d is not served by this heapspy",
			    (int)pid);
	}
	for (size_t i = 0; i < n; i++) {
		struct serve_req q = {.ask = SERVE_ASK_METRICS, .metrics = &m[got]};

		if (serve_target_ask(&held[i]->st, &q) == 0)
			got++;
	}
	self_metrics(sv, &self);
	f = open_memstream(&text, &len);
	if (f) {
		promtext_write(f, m, got, &self);
		if (fclose(f) != 0) {
			free(text);
			text = NULL;
		}
	}
	/* The labels point into the targets: written before they are let go. */
	for (size_t i = 0; i < n; i++)
		put(sv, held[i]);
	free(m);
	if (!text)
		return fail(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	return respond(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len,
		       MHD_RESPMEM_MUST_FREE, NULL);
}

/*
 * /targets: Prometheus' HTTP service discovery, a target group per process, scraped at the address
 * the asker reached heapspy by (its Host header) under /pid/PID/metrics.
 */
static enum MHD_Result serve_targets(struct serve *sv, struct MHD_Connection *c)
{
	const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
	json_object *groups = json_object_new_array();
	const char *text;
	char path[64], pid[16];
	enum MHD_Result rc;

	pthread_mutex_lock(&sv->mu);
	for (size_t i = 0; i < sv->ntargets; i++) {
		const struct target *t = &sv->targets[i]->st.r.s.t;
		json_object *g = json_object_new_object(), *labels = json_object_new_object(),
			    *addrs = json_object_new_array();

		snprintf(path, sizeof(path), "/pid/%d/metrics", (int)t->pid);
		snprintf(pid, sizeof(pid), "%d", (int)t->pid);
		json_object_array_add(addrs, json_object_new_string(host ? host : sv->o->listen));
		json_object_object_add(labels, "__metrics_path__", json_object_new_string(path));
		json_object_object_add(labels, "pid", json_object_new_string(pid));
		json_object_object_add(labels, "exe", json_object_new_string(t->display));
		json_object_object_add(labels, "go_version", json_object_new_string(t->go_version));
		json_object_object_add(g, "targets", addrs);
		json_object_object_add(g, "labels", labels);
		json_object_array_add(groups, g);
	}
	pthread_mutex_unlock(&sv->mu);
	text = json_object_to_json_string_ext(groups, JSON_C_TO_STRING_PLAIN |
							  JSON_C_TO_STRING_NOSLASHESCAPE);
	rc = text ? respond(c, MHD_HTTP_OK, "application/json", (void *)text, strlen(text),
			    MHD_RESPMEM_MUST_COPY, NULL)
		  : fail(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	json_object_put(groups);
	return rc;
}

/* "/": what is served, a line per process. */
static enum MHD_Result serve_index(struct serve *sv, struct MHD_Connection *c)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return fail(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	pthread_mutex_lock(&sv->mu);
	fprintf(f, "heapspy serve: %zu processes\n", sv->ntargets);
	for (size_t i = 0; i < sv->ntargets; i++) {
		const struct target *tg = &sv->targets[i]->st.r.s.t;

		fprintf(f,
			"pid %d %s (%s): /pid/%d/debug/pprof/heap /pid/%d/debug/pprof/allocs "
			"/pid/%d/debug/gc\n",
			(int)tg->pid, tg->display, tg->go_version, (int)tg->pid, (int)tg->pid,
			(int)tg->pid);
	}
	pthread_mutex_unlock(&sv->mu);
	if (fclose(f) != 0) {
		free(text);
		return fail(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	}
	return respond(c, MHD_HTTP_OK, "text/plain; charset=utf-8", text, len,
		       MHD_RESPMEM_MUST_FREE, NULL);
}

/* The request carries the bearer token; compared in constant time. */
static bool authorized(struct serve *sv, struct MHD_Connection *c)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	unsigned char diff = 0;

	if (!sv->token)
		return true;
	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return false;
	h += 7;
	if (strlen(h) != sv->token_len)
		return false;
	for (size_t i = 0; i < sv->token_len; i++)
		diff |= (unsigned char)(h[i] ^ sv->token[i]);
	return diff == 0;
}

static enum MHD_Result unauthorized(struct MHD_Connection *c)
{
	static const char line[] = "this heapspy answers only requests with its bearer token "
				   "(Authorization: Bearer TOKEN)\n";
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(sizeof(line) - 1, (void *)line, MHD_RESPMEM_PERSISTENT);
	enum MHD_Result rc;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
	MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"heapspy\"");
	rc = MHD_queue_response(c, MHD_HTTP_UNAUTHORIZED, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **req)
{
	struct serve *sv = cls;
	struct serve_route r = serve_route(url);
	struct served *t;
	enum MHD_Result rc;
	char why[256];

	(void)version, (void)upload, (void)upload_size, (void)req;
	if (!authorized(sv, c))
		return unauthorized(c);
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return fail(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD are served");
	if (r.ep == SERVE_UNKNOWN)
		return fail(c, MHD_HTTP_NOT_FOUND, "404 page not found");
	if (r.ep == SERVE_INDEX)
		return serve_index(sv, c);
	if (r.ep == SERVE_METRICS)
		return serve_metrics(sv, c, r.pid);
	if (r.ep == SERVE_TARGETS)
		return serve_targets(sv, c);
	t = get(sv, r.pid, why, sizeof(why));
	if (!t)
		return fail(c, MHD_HTTP_NOT_FOUND, "%s", why);
	if (r.ep == SERVE_GC || r.ep == SERVE_LEAKS)
		rc = serve_json(c, t, r.ep == SERVE_GC ? SERVE_ASK_GC : SERVE_ASK_LEAKS);
	else
		rc = serve_profile(sv, c, t, r.ep);
	put(sv, t);
	return rc;
}

/* HOST:PORT, [HOST]:PORT or :PORT (every interface). */
static int listen_addr(const char *spec, struct sockaddr_storage *ss, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
			*res;
	char host[256];
	const char *colon = strrchr(spec, ':');
	size_t hl;
	int rc;

	if (!colon || !colon[1]) {
		snprintf(err, errlen, "--listen takes HOST:PORT, not '%s'", spec);
		return -EINVAL;
	}
	hl = (size_t)(colon - spec);
	if (hl >= 2 && spec[0] == '[' && spec[hl - 1] == ']') {
		spec++;
		hl -= 2;
	}
	if (hl >= sizeof(host)) {
		snprintf(err, errlen, "--listen: host too long");
		return -EINVAL;
	}
	memcpy(host, spec, hl);
	host[hl] = 0;
	rc = getaddrinfo(hl ? host : NULL, colon + 1, &hints, &res);
	if (rc) {
		snprintf(err, errlen, "--listen %s: %s", spec, gai_strerror(rc));
		return -EINVAL;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

/* A whole small file, NUL-terminated; 0 or -errno with err set. */
static int read_secret(const char *path, const char *what, char **buf, size_t *len, char *err,
		       size_t errlen)
{
	FILE *f = fopen(path, "re");
	size_t n;

	*buf = NULL;
	if (f)
		*buf = malloc(MAX_SECRET_FILE + 1);
	if (!f || !*buf) {
		snprintf(err, errlen, "cannot read %s %s: %s", what, path, strerror(errno));
		if (f)
			fclose(f);
		return -errno;
	}
	n = fread(*buf, 1, MAX_SECRET_FILE + 1, f);
	fclose(f);
	if (n > MAX_SECRET_FILE) {
		snprintf(err, errlen, "%s %s is larger than 1 MiB", what, path);
		free(*buf);
		*buf = NULL;
		return -EFBIG;
	}
	(*buf)[n] = 0;
	*len = n;
	return 0;
}

/* The token is the file's first line, without the blanks around it. */
static int read_token(struct serve *sv, char *err, size_t errlen)
{
	char *t, *end;
	size_t len;
	int rc = read_secret(sv->o->token_file, "--token-file", &t, &len, err, errlen);

	if (rc)
		return rc;
	sv->token = t;
	t += strspn(t, " \t\r\n");
	end = t + strcspn(t, "\r\n");
	while (end > t && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*end = 0;
	memmove(sv->token, t, (size_t)(end - t) + 1);
	sv->token_len = strlen(sv->token);
	if (!sv->token_len) {
		snprintf(err, errlen, "--token-file %s holds no token", sv->o->token_file);
		return -EINVAL;
	}
	return 0;
}

static int start_http(struct serve *sv, char *err, size_t errlen)
{
	struct sockaddr_storage ss = {0};
	const union MHD_DaemonInfo *info;
	char host[128], port[16], *cert = NULL, *key = NULL;
	socklen_t sl = sizeof(ss);
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD;
	size_t len;
	bool tls;
	int rc = listen_addr(sv->o->listen, &ss, err, errlen);

	if (!rc && sv->o->token_file)
		rc = read_token(sv, err, errlen);
	if (!rc && sv->o->tls_cert && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		snprintf(err, errlen, "this libmicrohttpd was built without TLS: no --tls-cert");
		rc = -ENOTSUP;
	}
	if (!rc && sv->o->tls_cert)
		rc = read_secret(sv->o->tls_cert, "--tls-cert", &cert, &len, err, errlen);
	if (!rc && sv->o->tls_key)
		rc = read_secret(sv->o->tls_key, "--tls-key", &key, &len, err, errlen);
	if (rc) {
		free(cert);
		free(key);
		return rc;
	}
	tls = cert != NULL;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* Options after MHD_OPTION_END are not read: without TLS, the key and cert are left out. */
	sv->d = MHD_start_daemon(flags | (tls ? MHD_USE_TLS : 0), 0, NULL, NULL, on_request, sv,
				 MHD_OPTION_SOCK_ADDR, &ss, MHD_OPTION_CONNECTION_LIMIT,
				 (unsigned)MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
				 (unsigned)IDLE_TIMEOUT_S,
				 tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, key,
				 MHD_OPTION_HTTPS_MEM_CERT, cert, MHD_OPTION_END);
	/* libmicrohttpd keeps pointers to them: they live as long as the server. */
	sv->tls_key = key;
	sv->tls_cert = cert;
	if (!sv->d && tls) {
		snprintf(err, errlen,
			 "cannot serve HTTPS on %s: libmicrohttpd took no certificate and key from "
			 "%s and %s (a PEM pair expected), or the address is taken",
			 sv->o->listen, sv->o->tls_cert, sv->o->tls_key);
		return -EINVAL;
	}
	if (!sv->d) {
		snprintf(err, errlen, "cannot listen on %s: %s", sv->o->listen, strerror(errno));
		return -EADDRINUSE;
	}
	info = MHD_get_daemon_info(sv->d, MHD_DAEMON_INFO_LISTEN_FD);
	if (info && getsockname(info->listen_fd, (struct sockaddr *)&ss, &sl) == 0 &&
	    getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port, sizeof(port),
			NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		fprintf(stderr, "heapspy: serving on %s://%s%s%s:%s/%s\n", tls ? "https" : "http",
			ss.ss_family == AF_INET6 ? "[" : "", host,
			ss.ss_family == AF_INET6 ? "]" : "", port,
			sv->token ? " (bearer token required)" : "");
	return 0;
}

/* ---- the main thread: signals, ended targets, the end ---- */

static int wait_for_end(struct serve *sv, struct discover *d)
{
	sigset_t mask;
	struct signalfd_siginfo si;
	double duration = sv->o->s.tgt.duration;
	uint64_t start = evloop_now_ns(), n, next_scan = start;
	uint64_t every = (uint64_t)(sv->o->interval * 1e9), next_push = start + every;
	int sigfd;

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGQUIT);
	sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sigfd < 0)
		return -errno;
	for (;;) {
		struct pollfd p[2] = {{.fd = sigfd, .events = POLLIN},
				      {.fd = sv->endfd, .events = POLLIN}};
		int timeout = -1;

		if (d && evloop_now_ns() >= next_scan) {
			discover_scan(d, offer, sv);
			next_scan = evloop_now_ns() + (uint64_t)(sv->o->rescan * 1e9);
		}
		if (sv->o->npush && evloop_now_ns() >= next_push) {
			push_all(sv);
			next_push += every;
		}
		if (d)
			timeout = (int)((next_scan - evloop_now_ns()) / 1000000) + 1;
		if (sv->o->npush) {
			int t = (int)((next_push - evloop_now_ns()) / 1000000) + 1;

			if (timeout < 0 || t < timeout)
				timeout = t;
		}
		if (duration > 0) {
			double left = duration - (double)(evloop_now_ns() - start) / 1e9;

			if (left <= 0)
				break;
			if (timeout < 0 || (int)(left * 1000) + 1 < timeout)
				timeout = (int)(left * 1000) + 1;
		}
		if (poll(p, 2, timeout) < 0 && errno != EINTR)
			break;
		if (p[0].revents & POLLIN) {
			if (read(sigfd, &si, sizeof(si)) == sizeof(si))
				fprintf(stderr, "heapspy: %s: stopping\n",
					strsignal((int)si.ssi_signo));
			break;
		}
		if (p[1].revents & POLLIN) {
			if (read(sv->endfd, &n, sizeof(n)) < 0)
				continue;
			reap(sv);
			if (!sv->ntargets && !d) {
				fprintf(stderr, "heapspy: every process served has exited\n");
				break;
			}
		}
	}
	close(sigfd);
	return 0;
}

/* Every recording ends (restoring each target's sampling) before the HTTP server goes. */
static void shut_down(struct serve *sv)
{
	uint64_t one = 1;

	if (write(sv->quitfd, &one, sizeof(one)) < 0)
		fprintf(stderr, "heapspy: cannot wake the waiting requests: %s\n", strerror(errno));
	pthread_mutex_lock(&sv->mu);
	size_t n = sv->ntargets;
	struct served *all[MAX_PIDS];

	memcpy(all, sv->targets, n * sizeof(*all));
	sv->ntargets = 0;
	pthread_mutex_unlock(&sv->mu);
	for (size_t i = 0; i < n; i++)
		put(sv, all[i]);
	if (sv->d)
		MHD_stop_daemon(sv->d);
}

int cmd_serve(int argc, char **argv)
{
	struct serve_opts o = {
	    .s = {.heap = true, .rate = SESSION_DEFAULT_RATE},
	    .listen = DEFAULT_LISTEN,
	    .rescan = DEFAULT_RESCAN_S,
	    .interval = DEFAULT_INTERVAL_S,
	};
	struct discover d;
	bool discovering;
	struct argp argp = {serve_options, parse_serve, NULL, serve_doc, NULL, NULL, NULL};
	struct serve sv = {.o = &o, .endfd = -1, .quitfd = -1};
	char err[512] = "";
	int rc = 0;

	cli_parse(&argp, argc, argv, &o, &o.s.tgt);
	/*
	 * A thread per target would give each its own malloc arena, and a target that comes and
	 * goes leaves its arena fragmented: 20 targets, one restarted a minute, grew RSS 0.93 MiB a
	 * minute with glibc's default arenas and 0.25 with two (tools/soak.py).
	 */
	mallopt(M_ARENA_MAX, 2);
	discovering = o.all || o.match;
	if (discovering && discover_init(&d, o.match, err, sizeof(err)) != 0) {
		fprintf(stderr, "heapspy: %s\n", err);
		return 2;
	}
	sv.start_time = (double)time(NULL);
	pthread_mutex_init(&sv.mu, NULL);
	sv.endfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	sv.quitfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sv.endfd < 0 || sv.quitfd < 0) {
		fprintf(stderr, "heapspy: cannot make an eventfd: %s\n", strerror(errno));
		return 1;
	}
	/* The address first: a port taken is found before any process is touched. */
	rc = start_http(&sv, err, sizeof(err));
	if (!rc && o.npush && curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		snprintf(err, sizeof(err), "cannot initialize libcurl for --push");
		rc = -EINVAL;
	}
	for (size_t i = 0; !rc && i < o.npush; i++)
		rc = pusher_start(&sv.pushers[i], o.push[i], err, sizeof(err));
	for (size_t i = 0; !rc && i < o.npids; i++) {
		err[0] = 0;
		rc = add_target(&sv, o.pids[i], err, sizeof(err));
	}
	if (rc)
		fprintf(stderr, "heapspy: %s\n", err);
	else
		wait_for_end(&sv, discovering ? &d : NULL);
	shut_down(&sv);
	for (size_t i = 0; i < o.npush; i++)
		pusher_stop(&sv.pushers[i]);
	if (o.npush)
		curl_global_cleanup();
	close(sv.endfd);
	close(sv.quitfd);
	pthread_mutex_destroy(&sv.mu);
	free(sv.token);
	if (sv.tls_key)
		explicit_bzero(sv.tls_key, strlen(sv.tls_key));
	free(sv.tls_key);
	free(sv.tls_cert);
	if (discovering)
		discover_free(&d);
	return rc ? 1 : 0;
}

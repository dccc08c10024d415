#include "gctrace.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpfload.h"
#include "cgroup.h"
#include "disasm.h"
#include "elfbin.h"
#include "evloop.h"
#include "gc.skel.h"

#define CALIBRATION_CALLS 1000

_Static_assert(GCT_LINKS <= PROBE_SET_MAX_LINKS, "the session destroys at most that many");

/*
 * The calibration points: two functions heapspy calls through a volatile pointer, so that every
 * call is a real call. They start like a Go function, with a stack-bound check. One probe sits
 * where probes_resolve puts the target's, on the check's conditional jump, which the kernel
 * emulates; the other on the compare, which it single-steps out of line, as it must where a Go
 * function starts otherwise.
 */
void gctrace_calibration_jump(void);
void gctrace_calibration_step(void);
__asm__(".text\n"
	".globl gctrace_calibration_jump, gctrace_calibration_jump_at, gctrace_calibration_step\n"
	".type gctrace_calibration_jump, @function\n"
	"gctrace_calibration_jump:\n"
	"\tcmpq 16(%rsp), %rsp\n"
	"gctrace_calibration_jump_at:\n"
	"\tjbe 1f\n"
	"1:\tret\n"
	".size gctrace_calibration_jump, .-gctrace_calibration_jump\n"
	".type gctrace_calibration_step, @function\n"
	"gctrace_calibration_step:\n"
	"\tcmpq 16(%rsp), %rsp\n"
	"\tjbe 2f\n"
	"2:\tret\n"
	".size gctrace_calibration_step, .-gctrace_calibration_step\n");

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/*
 * The median time of one call: each call is timed on its own, so the calls during which another
 * process had the CPU (a loaded machine) fall in the tail, not in the median.
 */
static uint64_t median_call_ns(void (*volatile fn)(void))
{
	uint64_t t[CALIBRATION_CALLS];

	for (int i = 0; i < CALIBRATION_CALLS; i++) {
		uint64_t t0 = evloop_now_ns();

		fn();
		t[i] = evloop_now_ns() - t0;
	}
	qsort(t, CALIBRATION_CALLS, sizeof(t[0]), cmp_u64);
	return t[CALIBRATION_CALLS / 2];
}

/*
 * The cost of a hit of a probe at symbol: calls of fn with it on, less calls without (base). The
 * probe stays until the session detaches the target's: taking a uprobe down waits for the
 * kernel's grace periods (tens of ms, some 100 ms for a perf-event uprobe), which is better spent
 * once the recording is over.
 */
static int measure_hit(struct gctrace *g, const struct elfbin *self, int which, const char *symbol,
		       void (*fn)(void), uint64_t base, double *ns)
{
	uint64_t vaddr, size, offset, with;
	char err[256];
	int rc = elfbin_symbol(self, symbol, &vaddr, &size);

	if (!rc)
		rc = elfbin_vaddr_to_offset(self, vaddr, &offset);
	if (rc)
		return rc;
	g->links[which] = bpfload_uprobe(g->skel->progs.calibrate, getpid(), "/proc/self/exe",
					 offset, "heapspy's calibration point", err, sizeof(err));
	if (!g->links[which])
		return -errno;
	with = median_call_ns(fn);
	*ns = with > base ? (double)(with - base) : 0;
	return 0;
}

static int calibrate(struct gctrace *g)
{
	uint64_t base = median_call_ns(gctrace_calibration_jump);
	struct elfbin *self;
	char err[256];
	int rc;

	rc = elfbin_open("/proc/self/exe", &self, err, sizeof(err));
	if (rc)
		return rc;
	rc = measure_hit(g, self, GCT_CALIBRATE_JUMP, "gctrace_calibration_jump_at",
			 gctrace_calibration_jump, base, &g->jump_hit_ns);
	if (!rc)
		rc = measure_hit(g, self, GCT_CALIBRATE_STEP, "gctrace_calibration_step",
				 gctrace_calibration_step, base, &g->step_hit_ns);
	elfbin_close(self);
	return rc;
}

/*
 * probes_resolve puts a probe on the jump of the function's stack-bound check where it has one,
 * which the kernel emulates; anywhere else (the entry, a return) the kernel steps it out of line.
 */
static double cost_at(const struct gctrace *g, const struct target *t, const struct probe_point *p)
{
	uint64_t entry, end;
	unsigned check;

	if (gosym_func(t->sym, p->name, &entry, &end) == 0 &&
	    (check = disasm_stack_check_len(t->elf, entry)) && p->vaddr == entry + check)
		return g->jump_hit_ns;
	return g->step_hit_ns;
}

static void costs(const struct gctrace *g, const struct target *t, double *ns)
{
	const struct {
		uint32_t type;
		const struct probe_point *p;
	} probes[] = {
	    {HS_GC_EV_CYCLE, &g->rt.cycle},
	    {HS_GC_EV_OTHER_STOP, &g->rt.other_stop},
	    {HS_GC_EV_OTHER_RESUME, &g->rt.other_resume},
	    {HS_GC_EV_GROW, &g->rt.grow},
	    {HS_GC_EV_START, &g->rt.gc_start},
	    {HS_GC_EV_STOP, &g->rt.stop},
	    {HS_GC_EV_RESUME, &g->rt.resume},
	    {HS_GC_EV_MARK_TERM, &g->rt.mark_term},
	};

	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
		ns[probes[i].type - HS_GC_EV_CYCLE] = cost_at(g, t, probes[i].p);
}

/* A runtime word of 4 or 8 bytes, as a signed value; GC_UNKNOWN when unreadable. */
static int64_t read_setting(const struct target *t, uint64_t addr, size_t size)
{
	int64_t v64 = 0;
	int32_t v32 = 0;

	if (!addr || target_read(t, addr, size == 4 ? (void *)&v32 : (void *)&v64, size) != 0)
		return GC_UNKNOWN;
	return size == 4 ? v32 : v64;
}

/* The memory limit's view of the runtime's memory beside the heap; GC_UNKNOWN when unread. */
static int64_t read_nonheap(const struct target *t, uint64_t heap_free)
{
	uint64_t w[4]; /* heapFree, totalAlloc, totalFree, mappedReady */

	if (!heap_free || target_read(t, heap_free, w, sizeof(w)) != 0 || w[2] > w[1] ||
	    w[0] + (w[1] - w[2]) > w[3])
		return GC_UNKNOWN;
	return (int64_t)(w[3] - w[0] - (w[1] - w[2]));
}

void gctrace_read_settings(struct gctrace *g, const struct target *t)
{
	struct gc_settings *s = &g->settings;
	int64_t limit = cgroup_memory_limit(t->pid), nonheap, gc, idle, all;

	/* A process gone keeps what was read before. */
	if (!target_alive(t))
		return;
	/* As GCCPUFraction and gctrace's share count it: idle-time marking is free. */
	gc = read_setting(t, g->rt.gc_cpu_time, 8);
	idle = read_setting(t, g->rt.gc_idle_time, 8);
	all = read_setting(t, g->rt.cpu_time, 8);
	if (gc >= 0 && idle >= 0 && all > 0) {
		int k = s->cpu_ns[0] == GC_UNKNOWN ? 0 : 1;

		s->gc_cpu_ns[k] = gc - idle;
		s->cpu_ns[k] = all;
	}
	nonheap = read_nonheap(t, g->rt.heap_free);
	if (nonheap != GC_UNKNOWN)
		s->nonheap = nonheap;

	s->gogc = read_setting(t, g->rt.gc_percent, 4);
	/* The runtime holds "off" as a negative percentage, and no limit as the largest int64. */
	if (s->gogc < 0 && s->gogc != GC_UNKNOWN)
		s->gogc = GCTUNE_OFF;
	s->gomemlimit = read_setting(t, g->rt.memory_limit, 8);
	if (s->gomemlimit == INT64_MAX)
		s->gomemlimit = GCTUNE_NO_LIMIT;
	s->gomaxprocs = read_setting(t, g->rt.gomaxprocs, 4);
	s->memory_limit = limit == -1 ? GCTUNE_NO_LIMIT : limit < 0 ? GC_UNKNOWN : limit;
}

/* Runtime addresses need the load bias: known once the target is located. */
static void publish(struct gctrace *g, const struct target *t)
{
	int64_t init = 0;

	if (t->mem_fd < 0)
		return;
	for (int i = 0; i < GCW_COUNT; i++)
		g->skel->bss->read_addrs[i] = target_runtime_addr(t, g->rt.words[i]);
	g->dec.cfg.systemstack_lo = target_runtime_addr(t, g->rt.systemstack);
	g->dec.cfg.systemstack_hi = target_runtime_addr(t, g->rt.systemstack_end);
	if (g->rt.runtime_init_time &&
	    target_read(t, g->rt.runtime_init_time, &init, sizeof(init)) == 0 && init > 0)
		g->time_base = init;
	gctrace_read_settings(g, t);
}

static int load(struct gctrace *g, char *err, size_t errlen)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo, .btf_custom_path = g->btf);
	int rc;

	g->skel = gc_bpf__open_opts(&oo);
	if (!g->skel) {
		snprintf(err, errlen, "cannot open the GC probes: %s", strerror(errno));
		return -errno;
	}
	g->skel->rodata->cfg = g->rt.cfg;
	bpfload_prepare(g->skel->obj);
	if (g->ringbuf_kib)
		bpf_map__set_max_entries(g->skel->maps.gc_events, g->ringbuf_kib * 1024u);
	rc = gc_bpf__load(g->skel);
	if (rc)
		snprintf(err, errlen, "the kernel refused heapspy's GC probes: %s (run with -v)",
			 strerror(-rc));
	return rc;
}

static void configure(const struct gctrace *g, const struct target *t, struct gcdecode_config *c)
{
	uint32_t numgc = 0, forced = 0;

	c->mark_term_probe = !g->state && g->rt.mark_term.vaddr;
	c->stop_reason_arg = g->rt.stop_reason_arg;
	c->resume_returns_now = g->rt.resume_returns_now;
	for (int i = 0; i < GCW_COUNT; i++) {
		c->word_size[i] = g->rt.word_size[i];
		if (g->rt.words[i])
			c->words_known |= 1u << i;
	}
	/*
	 * Cycles completed before the probes: none in a program just launched; else the runtime's
	 * count, read just before the probes go in.
	 */
	c->numgc_base = c->forced_base = t->mem_fd < 0 ? 0 : GC_UNKNOWN;
	if (t->mem_fd >= 0 && g->rt.numgc &&
	    target_read(t, g->rt.numgc, &numgc, sizeof(numgc)) == 0)
		c->numgc_base = numgc;
	if (t->mem_fd >= 0 && g->rt.num_forced &&
	    target_read(t, g->rt.num_forced, &forced, sizeof(forced)) == 0)
		c->forced_base = forced;
}

static int attach_one(struct gctrace *g, int which, struct bpf_program *prog,
		      const struct target *t, const struct probe_point *p, char *err, size_t errlen)
{
	if (!p->vaddr)
		return 0;
	g->links[which] = bpfload_uprobe(prog, t->pid, t->path, p->offset, p->name, err, errlen);
	return g->links[which] ? 0 : -errno;
}

/* The runtime's records time the GC's pauses: no probe fires inside them. */
static int attach_state(struct gctrace *g, const struct target *t, char *err, size_t errlen)
{
	int rc = attach_one(g, GCT_CYCLE, g->skel->progs.gc_cycle, t, &g->rt.cycle, err, errlen);

	if (!rc)
		rc = attach_one(g, GCT_OTHER_STOP, g->skel->progs.other_stop, t, &g->rt.other_stop,
				err, errlen);
	if (!rc)
		rc = attach_one(g, GCT_OTHER_RESUME, g->skel->progs.other_resume, t,
				&g->rt.other_resume, err, errlen);
	return rc;
}

/* Without them, every stop is timed by its own probes, the GC's included. */
static int attach_timing(struct gctrace *g, const struct target *t, char *err, size_t errlen)
{
	int rc = attach_one(g, GCT_STOP, g->skel->progs.stw_stop, t, &g->rt.stop, err, errlen);

	if (!rc)
		rc = attach_one(g, GCT_RESUME, g->skel->progs.stw_resume, t, &g->rt.resume, err,
				errlen);
	if (!rc)
		rc = attach_one(g, GCT_START, g->skel->progs.gc_start, t, &g->rt.gc_start, err,
				errlen);
	if (!rc && g->dec.cfg.mark_term_probe)
		rc = attach_one(g, GCT_MARK_TERM, g->skel->progs.gc_mark_term, t, &g->rt.mark_term,
				err, errlen);
	return rc;
}

/*
 * What takes time and needs no probe in the target: the runtime's layout (DWARF, code), the BPF
 * object and the calibration. A running target is located before heapspy holds it still to attach
 * (record does, to read the runtime's records), so this happens then, outside the stall; a
 * launched one is attached first.
 */
static int prepare(struct gctrace *g, const struct target *t, char *err, size_t errlen)
{
	char how[128];
	int rc;

	if (g->skel)
		return 0;
	rc = gcruntime_resolve(t, &g->rt, err, errlen);
	if (!rc)
		rc = load(g, err, errlen);
	if (rc)
		return rc;
	g->state = gcruntime_has_state(&g->rt);
	g->calibrated = calibrate(g) == 0;
	if (!g->calibrated)
		fprintf(stderr,
			"heapspy: could not measure the cost of a probe hit; pauses include "
			"heapspy's own probe time\n");
	if (!g->verbose)
		return 0;
	if (g->rt.offsets == GC_OFFSETS_CODE)
		snprintf(how, sizeof(how), "its words found in the code that prints them");
	else
		snprintf(how, sizeof(how), "field offsets from %s%s%s", gctrace_offsets_source(g),
			 g->rt.table_mismatches ? ", the table differs" : "",
			 g->rt.from_code ? ", variables found in the code" : "");
	fprintf(stderr,
		"heapspy: GC: %s (%s); a probe hit costs %.1f us, %.1f us where it is stepped out "
		"of line\n",
		g->state ? "cycles from the runtime's own records"
			 : "the runtime's records are unreadable: cycles from the probes' timing",
		how, g->jump_hit_ns / 1e3, g->step_hit_ns / 1e3);
	return 0;
}

static int gt_attach(void *ctx, const struct target *t, const char *btf, char *err, size_t errlen)
{
	struct gctrace *g = ctx;
	struct gcdecode_config cfg = {0};
	int rc;

	(void)btf; /* gctrace_init took it from the command line, for prepare */
	rc = prepare(g, t, err, errlen);
	if (rc)
		return rc;
	costs(g, t, cfg.hit_ns);
	configure(g, t, &cfg);
	gcdecode_init(&g->dec, &cfg);
	g->target = t;
	g->skel->bss->target_tgid = target_kernel_tgid(t);
	publish(g, t);
	if (g->state)
		rc = attach_state(g, t, err, errlen);
	else
		rc = attach_timing(g, t, err, errlen);
	if (!rc)
		rc = attach_one(g, GCT_GROW, g->skel->progs.heap_grow, t, &g->rt.grow, err, errlen);
	return rc;
}

static int gt_located(void *ctx, const struct target *t, char *err, size_t errlen)
{
	struct gctrace *g = ctx;
	int rc = prepare(g, t, err, errlen);

	if (!rc)
		publish(g, t);
	return rc;
}

static int gt_ringbuf_fd(void *ctx)
{
	return bpf_map__fd(((struct gctrace *)ctx)->skel->maps.gc_events);
}

/* The probe found the reason but could not copy its bytes (a page not yet mapped): read them. */
static const struct hs_gc_event *with_reason(struct gctrace *g, const struct hs_gc_event *e,
					     struct hs_gc_event *copy)
{
	if (!e->reason_len || e->reason_copied)
		return e;
	*copy = *e;
	if (!g->target || target_read(g->target, e->reason_addr, copy->reason, e->reason_len)) {
		g->unread_reasons++;
		copy->reason_len = 0;
	}
	return copy;
}

static int gt_event(void *ctx, void *data, size_t len)
{
	struct gctrace *g = ctx;
	size_t before = g->dec.ncycles;
	struct hs_gc_event copy;
	int rc;

	if (len < sizeof(struct hs_gc_event))
		return 0;
	rc = gcdecode_event(&g->dec, with_reason(g, data, &copy));
	if (rc && !g->error)
		g->error = rc;
	for (size_t i = before; g->on_cycle && i < g->dec.ncycles; i++)
		g->on_cycle(g->on_cycle_ctx, &g->dec.cycles[i]);
	return 0;
}

void gctrace_init(struct gctrace *g, const struct cli_target *tgt)
{
	memset(g, 0, sizeof(*g));
	g->btf = tgt->btf;
	g->ringbuf_kib = tgt->ringbuf_kib;
	g->verbose = tgt->verbose;
	g->settings = (struct gc_settings){GC_UNKNOWN,
					   GC_UNKNOWN,
					   GC_UNKNOWN,
					   GC_UNKNOWN,
					   GC_UNKNOWN,
					   {GC_UNKNOWN, GC_UNKNOWN},
					   {GC_UNKNOWN, GC_UNKNOWN}};
	g->set = (struct probe_set){
	    .attach = gt_attach,
	    .located = gt_located,
	    .ringbuf_fd = gt_ringbuf_fd,
	    .on_event = gt_event,
	    .links = g->links,
	    .nlinks = GCT_LINKS,
	    .ctx = g,
	};
}

struct probe_set *gctrace_probes(struct gctrace *g)
{
	return &g->set;
}

void gctrace_finish(struct gctrace *g)
{
	if (g->skel)
		bpfload_counters(g->skel->maps.gc_counters, g->counters, HS_GC_CNT_MAX);
	g->counters[HS_GC_CNT_READ_ERRORS] += g->unread_reasons;
}

void gctrace_free(struct gctrace *g)
{
	bpfload_destroy_links(g->links, GCT_LINKS);
	gc_bpf__destroy(g->skel);
	g->skel = NULL;
	gcdecode_free(&g->dec);
}

const char *gctrace_offsets_source(const struct gctrace *g)
{
	if (!g->state)
		return "none";
	switch (g->rt.offsets) {
	case GC_OFFSETS_DWARF:
		return "DWARF";
	case GC_OFFSETS_TABLE:
		return "table";
	default:
		return "code";
	}
}

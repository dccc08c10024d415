// SPDX-License-Identifier: GPL-2.0
/*
 * Heap sampling probes. The Go runtime already samples one allocation per MemProfileRate bytes and
 * calls runtime.mProf_Malloc for it; when the sweeper frees such an object it calls
 * runtime.freeSpecial on its profile special. Probing those two functions costs one uprobe hit per
 * sample, never one per allocation, which is what makes attaching to a production process cheap.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "heapevents.h"
#include "target.h"

char LICENSE[] SEC("license") = "GPL";

const volatile struct hs_heap_config cfg = {};
/* Runtime addresses of runtime.mProfCycle and runtime.MemProfileRate; 0 while unknown. */
__u64 mprof_cycle_addr;
__u64 mem_profile_rate_addr;
/*
 * Frames the runtime's record of a sample keeps (gostack_record_depth), 0 while unknown: each
 * physical frame is at least one of the runtime's, so a walk that far holds all it keeps.
 */
__u32 record_frames;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HS_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &which);

	if (v)
		*v += 1;
}

/*
 * Go's register ABI (amd64): integer arguments in RAX, RBX, RCX, RDI, ... mProf_Malloc's object
 * and size are the first two arguments, or the second and third where the M comes first. All three
 * registers are loaded unconditionally: the verifier rejects a context load at a computed offset,
 * which is what clang makes of a register chosen by index.
 */
static __always_inline void malloc_args(struct pt_regs *regs, __u64 *p, __u64 *size)
{
	__u64 ax = regs->ax, bx = regs->bx, cx = regs->cx;

	asm volatile("" : "+r"(ax), "+r"(bx), "+r"(cx));
	*p = cfg.malloc_arg_base ? bx : ax;
	*size = cfg.malloc_arg_base ? cx : bx;
}

static __always_inline __u32 mprof_cycle(void)
{
	__u32 v;

	if (!mprof_cycle_addr || bpf_probe_read_user(&v, sizeof(v), (void *)mprof_cycle_addr) != 0)
		return ~0u;
	/* mProfCycleHolder keeps the cycle above a "flushed" flag bit. */
	return v >> 1;
}

/*
 * The rate this sample was taken at: profilealloc draws the next gap from MemProfileRate (and,
 * since Go 1.24, copies it into mcache.memProfRate) right before it calls mProf_Malloc, so a
 * program that changes the rate is followed sample by sample.
 */
static __always_inline __s64 mem_profile_rate(void)
{
	__s64 v;

	if (!mem_profile_rate_addr ||
	    bpf_probe_read_user(&v, sizeof(v), (void *)mem_profile_rate_addr) != 0)
		return -1;
	return v;
}

struct go_frame {
	__u64 fp;
	__u64 ret;
};

/*
 * At a function's first instruction its prologue has not run: the caller's return address is at
 * [RSP] and RBP is still the caller's frame pointer. From there Go's frame pointers chain as
 * [fp] = caller's fp, [fp+8] = return address.
 */
static __always_inline __u32 walk_stack(struct pt_regs *regs, __u64 *pcs)
{
	struct go_frame f = {.fp = regs->bp};
	__u32 n = 0;

	if (bpf_probe_read_user(&pcs[0], sizeof(pcs[0]), (void *)regs->sp) != 0) {
		count(HS_CNT_READ_ERRORS);
		return 0;
	}
	for (n = 1; n < HS_MAX_FRAMES; n++) {
		if (record_frames && n >= record_frames)
			return n;
		if (!f.fp || bpf_probe_read_user(&f, sizeof(f), (void *)f.fp) != 0 || !f.ret)
			return n;
		pcs[n] = f.ret;
	}
	if (f.fp)
		count(HS_CNT_TRUNCATED);
	return n;
}

/* mProf_Malloc returns at once, recording nothing, when mp.profStack is nil (Go 1.23+). */
static __always_inline bool runtime_drops(struct pt_regs *regs)
{
	__u64 stk;

	if (!cfg.profstack_offset)
		return false;
	if (bpf_probe_read_user(&stk, sizeof(stk), (void *)(regs->ax + cfg.profstack_offset))) {
		count(HS_CNT_READ_ERRORS);
		return false;
	}
	return stk == 0;
}

/*
 * The allocating goroutine's labels. The allocator can run on the M's g0 (systemstack: newproc1
 * allocating a new g), whose labels are always nil: the goroutine it works for is then m.curg. A
 * goroutine with labels is answered by the first read.
 */
static __always_inline __u64 goroutine_labels(struct pt_regs *regs)
{
	__u64 g = regs->r14, labels = 0, m = 0, curg = 0;

	if (!cfg.g_labels_offset)
		return 0;
	if (bpf_probe_read_user(&labels, sizeof(labels), (void *)(g + cfg.g_labels_offset)) != 0) {
		count(HS_CNT_READ_ERRORS);
		return 0;
	}
	if (labels)
		return labels;
	if (bpf_probe_read_user(&m, sizeof(m), (void *)(g + cfg.g_m_offset)) != 0 || !m ||
	    bpf_probe_read_user(&curg, sizeof(curg), (void *)(m + cfg.m_curg_offset)) != 0) {
		count(HS_CNT_READ_ERRORS);
		return 0;
	}
	if (!curg || curg == g)
		return 0;
	if (bpf_probe_read_user(&labels, sizeof(labels), (void *)(curg + cfg.g_labels_offset)) !=
	    0) {
		count(HS_CNT_READ_ERRORS);
		return 0;
	}
	return labels;
}

SEC("uprobe")
int mprof_malloc(struct pt_regs *regs)
{
	struct hs_alloc_event *e;

	if (!in_target())
		return 0;
	if (runtime_drops(regs))
		return 0;
	count(HS_CNT_ALLOCS);
	e = hs_alloc_scratch();
	if (!e)
		return 0;
	e->hdr.type = HS_EV_ALLOC;
	e->hdr.cycle = mprof_cycle();
	e->hdr.ts = bpf_ktime_get_ns();
	e->hdr.tid = (__u32)bpf_get_current_pid_tgid();
	malloc_args(regs, &e->addr, &e->size);
	e->rate = mem_profile_rate();
	e->labels = goroutine_labels(regs);
	e->nframes = walk_stack(regs, e->pcs);
	if (hs_alloc_output(e))
		count(HS_CNT_LOST);
	return 0;
}

SEC("uprobe")
int free_special(struct pt_regs *regs)
{
	__u64 special = regs->ax;
	struct hs_free_event *e;
	__u8 kind;

	if (!in_target())
		return 0;
	/* Finalizers, weak handles and pinners share freeSpecial: keep only profile specials. */
	if (bpf_probe_read_user(&kind, sizeof(kind), (void *)(special + cfg.kind_offset)) != 0) {
		count(HS_CNT_READ_ERRORS);
		return 0;
	}
	if (kind != cfg.profile_kind)
		return 0;
	count(HS_CNT_FREES);
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(HS_CNT_LOST);
		return 0;
	}
	e->hdr.type = HS_EV_FREE;
	e->hdr.cycle = mprof_cycle();
	e->hdr.ts = bpf_ktime_get_ns();
	e->hdr.tid = (__u32)bpf_get_current_pid_tgid();
	e->addr = regs->bx;
	e->size = regs->cx;
	if (bpf_probe_read_user(&e->bucket, sizeof(e->bucket),
				(void *)(special + cfg.bucket_offset)) != 0)
		e->bucket = 0;
	bpf_ringbuf_submit(e, hs_wakeup_flags(&events, sizeof(*e)));
	return 0;
}

/* runtime.GC() publishes the heap profile early: the event's cycle says which one. */
SEC("uprobe")
int mprof_postsweep(struct pt_regs *regs)
{
	struct hs_event_header *e;

	(void)regs;
	if (!in_target())
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(HS_CNT_LOST);
		return 0;
	}
	e->type = HS_EV_POSTSWEEP;
	e->cycle = mprof_cycle();
	e->ts = bpf_ktime_get_ns();
	e->tid = (__u32)bpf_get_current_pid_tgid();
	e->pad = 0;
	bpf_ringbuf_submit(e, hs_wakeup_flags(&events, sizeof(*e)));
	return 0;
}

/*
 * Launch mode only: stop the new process as runtime.main calls gcenable, after the runtime's own
 * initialization has set MemProfileRate (to 0 when nothing links runtime/pprof; before Go 1.21 that
 * happens in the runtime package's init, inside runtime.main) and before any package of the
 * program is initialized, so the loader can switch sampling on before the program's first
 * allocation.
 */
SEC("uprobe")
int stop_before_init(struct pt_regs *regs)
{
	(void)regs;
	if (!in_target())
		return 0;
	bpf_send_signal(19 /* SIGSTOP */);
	return 0;
}

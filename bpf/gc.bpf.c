// SPDX-License-Identifier: GPL-2.0
/*
 * Garbage-collector probes: entry uprobes on the runtime's GC and stop-the-world functions (and
 * one on startTheWorldWithSema's RET, where RAX is what it returns). Each hit is a trap that
 * costs microseconds, and one inside a pause lengthens it, so the handlers do as little as they
 * can: copy the argument registers, a stop's reason, and, once a cycle has ended and the world
 * runs again, the few runtime words that describe it. Everything else (which pause is which, the
 * cycle's figures) is worked out in user space.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "heapspy.h"
#include "ringbuf.h"
#include "target.h"

char LICENSE[] SEC("license") = "GPL";

const volatile struct hs_gc_config cfg = {};
/* Runtime addresses of the words read at a cycle's end; set once the load bias is known. */
__u64 read_addrs[HS_GC_MAX_READS];

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, HS_GC_RINGBUF_BYTES);
} gc_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HS_GC_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} gc_counters SEC(".maps");

static __always_inline void count(__u32 which, bool calibrating)
{
	__u64 *v;

	if (calibrating)
		return;
	v = bpf_map_lookup_elem(&gc_counters, &which);
	if (v)
		*v += 1;
}

static __always_inline struct hs_gc_event *begin(struct pt_regs *regs, __u32 type, bool calibrating)
{
	struct hs_gc_event *e;

	/* Calibration hits heapspy's own process, on purpose. */
	if (!calibrating && !in_target())
		return NULL;
	count(HS_GC_CNT_HITS, calibrating);
	e = bpf_ringbuf_reserve(&gc_events, sizeof(*e), 0);
	if (!e) {
		count(HS_GC_CNT_LOST, calibrating);
		return NULL;
	}
	e->type = type;
	e->tid = (__u32)bpf_get_current_pid_tgid();
	e->ts = bpf_ktime_get_ns();
	/* Go's register ABI: the first integer arguments in RAX, RBX. */
	e->args[0] = regs->ax;
	e->args[1] = regs->bx;
	/* At the first instruction the prologue has not run: the return address is at [RSP]. */
	if (bpf_probe_read_user(&e->caller, sizeof(e->caller), (void *)regs->sp) != 0)
		e->caller = 0;
	e->read_ok = 0;
	e->reason_len = 0;
	e->reason_addr = 0;
	e->reason_copied = 0;
	return e;
}

/* Calibration runs the same handler in heapspy's own process and throws the event away. */
static __always_inline void submit(struct hs_gc_event *e, bool calibrating)
{
	if (calibrating) {
		bpf_ringbuf_discard(e, BPF_RB_NO_WAKEUP);
		return;
	}
	bpf_ringbuf_submit(e, hs_wakeup_flags(&gc_events, sizeof(*e)));
}

static __always_inline int simple(struct pt_regs *regs, __u32 type, bool calibrating)
{
	struct hs_gc_event *e = begin(regs, type, calibrating);

	if (e)
		submit(e, calibrating);
	return 0;
}

SEC("uprobe")
int gc_start(struct pt_regs *regs)
{
	return simple(regs, HS_GC_EV_START, false);
}

SEC("uprobe")
int stw_resume(struct pt_regs *regs)
{
	return simple(regs, HS_GC_EV_RESUME, false);
}

SEC("uprobe")
int gc_mark_term(struct pt_regs *regs)
{
	return simple(regs, HS_GC_EV_MARK_TERM, false);
}

SEC("uprobe")
int heap_grow(struct pt_regs *regs)
{
	return simple(regs, HS_GC_EV_GROW, false);
}

SEC("uprobe")
int other_resume(struct pt_regs *regs)
{
	return simple(regs, HS_GC_EV_OTHER_RESUME, false);
}

struct go_string {
	__u64 ptr;
	__u64 len;
};

/*
 * stopTheWorld leaves its reason in m.preemptoff (a string) before it stops the world on the
 * system stack, where R14 is the M's g0. A fixed-size read keeps the verifier simple; the length
 * says how much of it is the reason. The bytes are a string literal whose page the process may
 * never have touched: where they cannot be copied here, user space reads them at reason_addr.
 */
static __always_inline void read_reason(struct pt_regs *regs, struct hs_gc_event *e)
{
	struct go_string s;
	__u64 m;

	if (!cfg.g_m_offset)
		return;
	if (bpf_probe_read_user(&m, sizeof(m), (void *)(regs->r14 + cfg.g_m_offset)) != 0 ||
	    bpf_probe_read_user(&s, sizeof(s), (void *)(m + cfg.m_preemptoff_offset)) != 0) {
		count(HS_GC_CNT_READ_ERRORS, false);
		return;
	}
	e->reason_addr = s.ptr;
	e->reason_len = s.len < HS_GC_REASON_LEN ? (__u32)s.len : HS_GC_REASON_LEN;
	e->reason_copied =
	    !s.len || bpf_probe_read_user(e->reason, sizeof(e->reason), (void *)s.ptr) == 0;
}

SEC("uprobe")
int other_stop(struct pt_regs *regs)
{
	struct hs_gc_event *e = begin(regs, HS_GC_EV_OTHER_STOP, false);

	if (!e)
		return 0;
	read_reason(regs, e);
	submit(e, false);
	return 0;
}

/* Go 1.19 passes stopTheWorldWithSema no reason: only a non-GC stop has one in m.preemptoff. */
SEC("uprobe")
int stw_stop(struct pt_regs *regs)
{
	struct hs_gc_event *e = begin(regs, HS_GC_EV_STOP, false);

	if (!e)
		return 0;
	if (cfg.stop_reads_reason)
		read_reason(regs, e);
	submit(e, false);
	return 0;
}

/*
 * The cycle has ended and the world runs again, but the GC still holds the world semaphore, so
 * no cycle can start: the runtime's words hold everything GODEBUG=gctrace=1 is about to print.
 */
SEC("uprobe")
int gc_cycle(struct pt_regs *regs)
{
	struct hs_gc_event *e = begin(regs, HS_GC_EV_CYCLE, false);

	if (!e)
		return 0;
	for (__u32 i = 0; i < HS_GC_MAX_READS; i++) {
		if (!read_addrs[i])
			continue;
		if (bpf_probe_read_user(&e->vals[i], sizeof(e->vals[i]), (void *)read_addrs[i]) ==
		    0)
			e->read_ok |= 1u << i;
		else
			count(HS_GC_CNT_READ_ERRORS, false);
	}
	submit(e, false);
	return 0;
}

/* heapspy times its own calls to a function this is attached to: the cost of one hit. */
SEC("uprobe")
int calibrate(struct pt_regs *regs)
{
	return simple(regs, HS_GC_EV_OTHER_RESUME, true);
}

// SPDX-License-Identifier: GPL-2.0
/*
 * pipebench's producer: heapspy's event stream without a Go target, whose probe hits (~1.5 us of
 * the target's time each) cannot outrun the loader. Each BPF_PROG_TEST_RUN emits a batch of
 * records exactly as bpf/heap.bpf.c would: same layouts, record sizes and wake-up policy.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "heapevents.h"

char LICENSE[] SEC("license") = "GPL";

#define NSTACKS	  128		  /* a power of two; user space fills the table */
#define NSLOTS	  (1u << 17)	  /* live objects once every slot holds one */
#define GC_EVERY  (1u << 16)	  /* allocations per heap-profile cycle */
#define HEAP_BASE 0xc000000000ull /* where Go's heap arenas start on amd64 */

__u64 stack_pcs[NSTACKS][HS_MAX_FRAMES];
__u32 stack_depth[NSTACKS];
__u64 stack_size[NSTACKS];

__u64 slot_addr[NSLOTS]; /* 0: free */
__u8 slot_stack[NSLOTS];
__u32 refill; /* 1 + the slot the last free emptied: the next allocation goes there */
__u32 cycle;
__u64 produced, lost, live, allocs, next_addr = HEAP_BASE, rng = 0x9e3779b97f4a7c15ull;

/* xorshift64: every run produces the same stream. */
static __always_inline __u64 next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static __always_inline void header(struct hs_event_header *h, __u32 type, __u64 r)
{
	h->type = type;
	h->cycle = cycle;
	h->ts = bpf_ktime_get_ns();
	h->tid = (__u32)bpf_get_current_pid_tgid() + (__u32)(r >> 60); /* Go runs on a few Ms */
}

/* One event: a random slot's object is freed and the next event allocates into the slot. */
static long step(__u64 i, void *ctx)
{
	__u64 r = next_rand();
	__u32 slot = (refill ? refill - 1 : (__u32)r) & (NSLOTS - 1);
	/* The lesser of two draws: a few hot allocation sites and a long tail, as in programs. */
	__u32 a = (r >> 32) & (NSTACKS - 1), b = (r >> 40) & (NSTACKS - 1), s = a < b ? a : b;
	struct hs_alloc_event *e;
	struct hs_free_event *f;
	__u32 n;

	produced++;
	if (slot_addr[slot]) {
		s = slot_stack[slot] & (NSTACKS - 1);
		f = bpf_ringbuf_reserve(&events, sizeof(*f), 0);
		if (f) {
			header(&f->hdr, HS_EV_FREE, r);
			f->addr = slot_addr[slot];
			f->size = stack_size[s];
			f->bucket = 0x7f0000000000ull + s * 0x1000;
			bpf_ringbuf_submit(f, hs_wakeup_flags(&events, sizeof(*f)));
		}
		lost += !f;
		slot_addr[slot] = 0;
		refill = slot + 1;
		live--;
		return 0;
	}
	slot_addr[slot] = next_addr;
	slot_stack[slot] = s;
	next_addr += stack_size[s];
	refill = 0;
	live++;
	cycle += ++allocs % GC_EVERY == 0;
	e = hs_alloc_scratch();
	if (!e)
		return 0;
	header(&e->hdr, HS_EV_ALLOC, r);
	e->addr = slot_addr[slot];
	e->size = stack_size[s];
	e->rate = 512 * 1024;
	e->labels = 0;
	e->nframes = stack_depth[s];
	n = e->nframes <= HS_MAX_FRAMES ? e->nframes : HS_MAX_FRAMES;
	for (__u32 j = 0; j < HS_MAX_FRAMES && j < n; j++)
		e->pcs[j] = stack_pcs[s][j];
	lost += hs_alloc_output(e);
	return 0;
}

/* ctx: the number of events to emit. */
SEC("syscall")
int produce(__u32 *n)
{
	bpf_loop(*n, step, NULL, 0);
	return 0;
}

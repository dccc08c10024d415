/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The wake-up policy of every producer of heapspy's ring buffers (the probes, and
 * tools/pipebench.bpf.c, which must behave like them). A wake-up is an interrupt paid by the thread
 * that hit the probe, on a VM a trap to the hypervisor: one per event would cost more than the
 * event. So the loader is woken each time the queued data grows past another multiple of
 * HS_RINGBUF_WAKEUP_BYTES, and otherwise drains on its short tick. Waking on every event while the
 * queue is above a threshold would make a loader that falls behind cost the target a wake-up on
 * every probe hit until it catches up.
 */
#ifndef HEAPSPY_RINGBUF_H
#define HEAPSPY_RINGBUF_H

/* A power of two: the division below is a shift. */
#define HS_RINGBUF_WAKEUP_BYTES (256u << 10)

/* Whether queued bytes, the last `size`-byte record included, crossed a wake-up multiple. */
static __always_inline __u64 hs_wakeup_crossing(__u64 queued, __u64 size)
{
	/* What the record took of the buffer: its 8-byte header, rounded up to 8 bytes. */
	__u64 used = (size + 8 + 7) & ~7ull;

	/*
	 * Another CPU's reservation between ours and the query can hide a crossing from both: the
	 * next one, HS_RINGBUF_WAKEUP_BYTES later, is not missed the same way twice.
	 */
	return queued / HS_RINGBUF_WAKEUP_BYTES != (queued - used) / HS_RINGBUF_WAKEUP_BYTES
		   ? BPF_RB_FORCE_WAKEUP
		   : BPF_RB_NO_WAKEUP;
}

/* Flags for bpf_ringbuf_submit of a record of `size` bytes reserved last in `rb`. */
static __always_inline __u64 hs_wakeup_flags(void *rb, __u64 size)
{
	return hs_wakeup_crossing(bpf_ringbuf_query(rb, BPF_RB_AVAIL_DATA), size);
}

/* Flags for bpf_ringbuf_output of a record of `size` bytes into `rb`, which queues it after. */
static __always_inline __u64 hs_output_flags(void *rb, __u64 size)
{
	return hs_wakeup_crossing(
	    bpf_ringbuf_query(rb, BPF_RB_AVAIL_DATA) + ((size + 8 + 7) & ~7ull), size);
}

#endif

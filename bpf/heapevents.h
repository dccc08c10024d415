/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The heap probe's ring buffer and how its allocation events go out, shared with
 * tools/pipebench.bpf.c, which must send them exactly as bpf/heap.bpf.c does.
 */
#ifndef HEAPSPY_HEAPEVENTS_H
#define HEAPSPY_HEAPEVENTS_H

#include "heapspy.h"
#include "ringbuf.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, HS_RINGBUF_BYTES);
} events SEC(".maps");

/*
 * An allocation event is built here, then only its frames are copied to the ring buffer: a
 * reservation must have a constant size, and the largest event is 8 KiB where most use a few
 * hundred bytes.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hs_alloc_event);
} scratch SEC(".maps");

/* This CPU's event to build, or NULL. */
static __always_inline struct hs_alloc_event *hs_alloc_scratch(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&scratch, &zero);
}

/* Sends e with its frames only (at most HS_MAX_FRAMES); whether the ring buffer was full. */
static __always_inline bool hs_alloc_output(struct hs_alloc_event *e)
{
	__u64 size = HS_ALLOC_EVENT_BYTES(e->nframes <= HS_MAX_FRAMES ? e->nframes : HS_MAX_FRAMES);

	return bpf_ringbuf_output(&events, e, size, hs_output_flags(&events, size)) != 0;
}

#endif

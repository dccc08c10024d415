/*
 * What the BPF programs and the loader share: event layouts, counters and limits.
 * Types come from vmlinux.h on the BPF side and <linux/types.h> in user space.
 */
#ifndef HEAPSPY_H
#define HEAPSPY_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Frames kept per sampled allocation; Go's own heap profile keeps 32 (64 since Go 1.23). */
#define HS_MAX_FRAMES 64

/* Ring buffer size; a power of two of pages. 8 MiB holds about 14,000 allocation events. */
#define HS_RINGBUF_BYTES (8u << 20)

enum hs_event_type {
	HS_EV_ALLOC = 1, /* runtime.mProf_Malloc: the runtime sampled an allocation */
	HS_EV_FREE = 2,  /* runtime.freeSpecial on a profile special: a sampled object was swept */
};

/* Counters the BPF side keeps in a per-CPU array, indexed by this enum, summed by the loader. */
enum hs_counter {
	HS_CNT_ALLOCS,      /* mProf_Malloc hits */
	HS_CNT_FREES,       /* freeSpecial hits on profile specials */
	HS_CNT_LOST,        /* events dropped because the ring buffer was full */
	HS_CNT_TRUNCATED,   /* stacks deeper than HS_MAX_FRAMES */
	HS_CNT_READ_ERRORS, /* user-memory reads that failed inside a probe */
	HS_CNT_MAX,
};

struct hs_event_header {
	__u32 type;
	__u32 cycle; /* runtime.mProfCycle's heap-profile cycle when the probe fired, ~0u unknown */
	__u64 ts;    /* bpf_ktime_get_ns() */
	__u32 tid;
	__u32 pad;
};

struct hs_alloc_event {
	struct hs_event_header hdr;
	__u64 addr;
	__u64 size; /* size-class-rounded, as the runtime records it */
	__u32 nframes;
	__u32 pad;
	__u64 pcs[HS_MAX_FRAMES]; /* return addresses, innermost first, runtime virtual addresses */
};

struct hs_free_event {
	struct hs_event_header hdr;
	__u64 addr;
	__u64 size;
	__u64 bucket; /* the runtime's *bucket for this object: pre-attach objects are found by it */
};

/*
 * Per-target configuration, written into the BPF object's read-only data before load, so the
 * verifier sees constants and dead branches vanish. (The address of runtime.mProfCycle lives in
 * .bss instead: a launched PIE's load address is known only once it runs, after the load.)
 */
struct hs_heap_config {
	__u32 malloc_arg_base;  /* register index of mProf_Malloc's p: 0 (Go <= 1.22), 1 (1.23: mp first) */
	__u32 profile_kind;     /* _KindSpecialProfile: 2 before Go 1.23, 3 since */
	__u32 kind_offset;      /* offset of special.kind */
	__u32 bucket_offset;    /* offset of specialprofile.b */
};

#endif

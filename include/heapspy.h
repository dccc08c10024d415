/*
 * What the BPF programs and the loader share: event layouts, counters and limits.
 * Types come from vmlinux.h on the BPF side and <linux/types.h> in user space.
 */
#ifndef HEAPSPY_H
#define HEAPSPY_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/*
 * Frames the allocation probe walks at most. The runtime's record of a sample keeps 32 frames
 * before Go 1.23, since then debug.profstackdepth (128 by default, at most 1024), after up to 5
 * frames of the allocator itself; an inlined call is one frame more to it than to a frame-pointer
 * walk. So this covers every stack the runtime keeps whole; the walk stops at the target's own
 * depth once user space has read it (gostack). An event carries only the frames it has.
 */
#define HS_MAX_FRAMES 1032

/*
 * Ring buffer size; a power of two of pages. 8 MiB holds about 28,000 allocation events of 30
 * frames, 1,000 of the deepest.
 */
#define HS_RINGBUF_BYTES (8u << 20)

enum hs_event_type {
	HS_EV_ALLOC = 1, /* runtime.mProf_Malloc: the runtime sampled an allocation */
	HS_EV_FREE = 2,  /* runtime.freeSpecial on a profile special: a sampled object was swept */
	/*
	 * runtime.mProf_PostSweep: runtime.GC() (and debug.FreeOSMemory) finished sweeping and
	 * publishes the last cycle's allocations and this cycle's frees without a new cycle.
	 */
	HS_EV_POSTSWEEP = 3,
};

/* Counters the BPF side keeps in a per-CPU array, indexed by this enum, summed by the loader. */
enum hs_counter {
	HS_CNT_ALLOCS,      /* mProf_Malloc hits */
	HS_CNT_FREES,       /* freeSpecial hits on profile specials */
	HS_CNT_LOST,        /* events dropped because the ring buffer was full */
	HS_CNT_TRUNCATED,   /* stacks cut at HS_MAX_FRAMES */
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
	__s64 rate; /* runtime.MemProfileRate as the runtime took this sample; -1 unknown */
	/*
	 * The allocating goroutine's g.labels (runtime/pprof's label set, immutable once set), 0
	 * for none or where they are not read; user space decodes it.
	 */
	__u64 labels;
	__u32 nframes;
	__u32 pad;
	/* Return addresses, innermost first, runtime virtual addresses; the event ends after them. */
	__u64 pcs[HS_MAX_FRAMES];
};

/* Bytes of an allocation event with n frames. */
#define HS_ALLOC_EVENT_BYTES(n) (__builtin_offsetof(struct hs_alloc_event, pcs) + (n) * 8)

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
	/*
	 * Offset of m.profStack, 0 where mProf_Malloc does not check it (before Go 1.23): the
	 * runtime drops a sample taken while its M is being set up (profStack still nil).
	 */
	__u32 profstack_offset;
	/*
	 * Offsets of g.labels, g.m and m.curg; g_labels_offset 0 where labels are not read (the
	 * binary cannot set any, or their layout is unknown).
	 */
	__u32 g_labels_offset;
	__u32 g_m_offset;
	__u32 m_curg_offset;
};

/* ---- GC tracing: bpf/gc.bpf.c and user/attach/gctrace.c ---- */

/* GC events are a few per cycle; 1 MiB holds seconds of them at hundreds of cycles a second. */
#define HS_GC_RINGBUF_BYTES (1u << 20)
/*
 * Runtime words the end-of-cycle probe copies out (work.tEnd ...): 8 bytes from each configured
 * address; the loader keeps the bytes of fields narrower than that.
 */
#define HS_GC_MAX_READS 12
/* Bytes of a stop-the-world reason (m.preemptoff) kept; longer ones are cut. */
#define HS_GC_REASON_LEN 32

enum hs_gc_event_type {
	/* Where the runtime's records are readable: nothing fires inside the GC's own pauses. */
	HS_GC_EV_CYCLE = 16,   /* runtime.prepareFreeWorkbufs: a cycle ended; its words read */
	HS_GC_EV_OTHER_STOP,   /* runtime.stopTheWorld.func1: a non-GC stop begins; its reason */
	HS_GC_EV_OTHER_RESUME, /* runtime.startTheWorld: it ends */
	HS_GC_EV_GROW,         /* runtime.(*mheap).grow(npage) */
	/* Where they are not (a release without offsets): every stop, timed by its probes. */
	HS_GC_EV_START,     /* runtime.gcStart(trigger) */
	HS_GC_EV_STOP,      /* runtime.stopTheWorldWithSema */
	HS_GC_EV_RESUME,    /* runtime.startTheWorldWithSema */
	HS_GC_EV_MARK_TERM, /* runtime.gcMarkTermination */
	HS_GC_EV_END,       /* one past the last */
};

enum hs_gc_counter {
	HS_GC_CNT_HITS,        /* probe hits, all GC probes */
	HS_GC_CNT_LOST,        /* events dropped because the ring buffer was full */
	HS_GC_CNT_READ_ERRORS, /* runtime words that could not be read */
	HS_GC_CNT_MAX,
};

struct hs_gc_event {
	__u32 type;
	__u32 tid;
	__u64 ts;      /* bpf_ktime_get_ns(): CLOCK_MONOTONIC, the runtime's nanotime() clock */
	__u64 args[2]; /* Go's first two integer argument registers: RAX, RBX */
	__u64 caller;  /* return address at [RSP] */
	__u64 vals[HS_GC_MAX_READS]; /* CYCLE: the 8 bytes at each configured address */
	__u32 read_ok;               /* CYCLE: bit i set when vals[i] was read */
	__u32 reason_len;            /* OTHER_STOP, and STOP on Go 1.19: bytes of reason */
	char reason[HS_GC_REASON_LEN];
	/*
	 * Where the reason's bytes are in the target, and whether the probe could copy them: a
	 * string literal on a page the process never touched is not mapped yet, and a probe cannot
	 * fault it in. User space reads it then.
	 */
	__u64 reason_addr;
	__u32 reason_copied;
	__u32 pad;
};

/* Per-target constants, in the GC object's read-only data. */
struct hs_gc_config {
	__u32 g_m_offset;          /* offset of g.m; 0 when reasons are not read */
	__u32 m_preemptoff_offset; /* offset of m.preemptoff: stopTheWorld's reason is there */
	__u32 stop_reads_reason;   /* Go 1.19/1.20: stopTheWorldWithSema takes no reason argument */
};

#endif

/*
 * gostack: one frame list per allocation site, whatever its source. The probes capture physical
 * return addresses; the runtime's own records (runtime.mbuckets) hold the PCs runtime.callers
 * gives, one more per inlined call. Both become physical return addresses, which gosym expands
 * into their inlined frames, and the profile shows them as the target release's runtime/pprof
 * does (writeHeapProto): leading runtime frames hidden, runtime.goexit dropped.
 */
#ifndef HEAPSPY_GOSTACK_H
#define HEAPSPY_GOSTACK_H

#include <stdint.h>

#include "target.h"

/*
 * Turns a stack of the runtime's records into physical return addresses, in place: each PC the
 * runtime added for an enclosing inlined call is dropped, as runtime/pprof folds it into the
 * physical call's location. Returns the new count.
 */
uint32_t gostack_physical(const struct target *t, uint64_t *pcs, uint32_t n);

/*
 * Sets t->record_frames for a running target whose runtime is initialized: 32 frames before Go
 * 1.23, then debug.profstackdepth, read from the length of m0.profStack (m.profStack at
 * profstack_offset). Returns 0, or -ENOENT when that could not be read and the default (128) is
 * assumed.
 */
int gostack_record_depth(struct target *t, uint32_t profstack_offset);

/*
 * The part [*first, *end) of a stack of physical return addresses that runtime/pprof shows:
 * without the leading frames of the runtime (runtime.*, and from Go 1.24 internal/runtime/...),
 * unless nothing else is left, and without runtime.goexit, the root of every goroutine; and a
 * probe's stack cut where the runtime's record of it ends (t->record_frames, and the end of the
 * system stack).
 */
void gostack_shown(const struct target *t, const uint64_t *pcs, uint32_t n, uint32_t *first,
		   uint32_t *end);

#endif

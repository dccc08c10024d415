/*
 * gosym: symbolization of Go binaries from .gopclntab, the table the Go runtime itself uses for
 * tracebacks. It is present in every Go binary, stripped or not, so one reader serves both; it
 * carries inline trees, so frames expand the way runtime.CallersFrames and runtime/pprof expand
 * them. Layouts: Go 1.18/1.19 (magic 0xfffffff0) and Go 1.20+ (0xfffffff1; no text start in the
 * header from Go 1.26 on).
 */
#ifndef HEAPSPY_GOSYM_H
#define HEAPSPY_GOSYM_H

#include <stddef.h>
#include <stdint.h>

#include "elfbin.h"
#include "frame.h"

struct gosym;

/*
 * Finds the pclntab of eb (section, runtime.pclntab symbol, or a header scan) and, in moduledata,
 * the go:func.* data its inline trees live in and, from Go 1.26 on, the text start. eb must
 * outlive the result.
 */
int gosym_open(const struct elfbin *eb, struct gosym **out, char *err, size_t errlen);
/*
 * Parses a raw pclntab image; text_start (moduledata.text) is used only where the header records
 * none, as from Go 1.26 on.
 */
int gosym_open_pclntab(const void *data, size_t size, uint64_t text_start, struct gosym **out,
		       char *err, size_t errlen);
/*
 * Supplies go:func.* (moduledata.gofunc), the read-only data that funcdata offsets such as inline
 * trees are relative to; it must outlive g. gosym_open finds it itself. Without it, lookups return
 * physical frames only.
 */
void gosym_set_funcdata(struct gosym *g, const void *gofunc, size_t size);
void gosym_close(struct gosym *g);

/*
 * Expands the exact link-time address pc (callers pass return address - 1) into source frames,
 * innermost (inlined callee) first, outermost (physical function) last, named as
 * runtime.CallersFrames names them (generic shapes print as "[...]"). Returns the number written
 * (at most max, keeping the innermost), 0 when pc is in no function. Safe to call concurrently.
 */
int gosym_lookup(const struct gosym *g, uint64_t pc, struct hs_frame *frames, int max);
/*
 * Entry and end (exclusive) of the function named name as the pclntab stores it (since Go 1.20,
 * generic instantiations with their shapes: "main.f[go.shape.int]"). 0, -ENOENT, or -ENOMEM.
 */
int gosym_func(const struct gosym *g, const char *name, uint64_t *entry, uint64_t *end);
/* pclntab magic, which tells the Go release family. */
uint32_t gosym_magic(const struct gosym *g);

#endif

#include "gostack.h"

#include <stdbool.h>
#include <string.h>

#define MAX_INLINE 64

/* The innermost function at link-time address addr, or NULL outside every function. */
static const char *innermost(const struct target *t, uint64_t addr, uint64_t *entry)
{
	struct hs_frame f;

	if (gosym_lookup(t->sym, addr, &f, 1) != 1)
		return NULL;
	if (entry)
		*entry = f.func_entry;
	return f.function;
}

uint32_t gostack_physical(const struct target *t, uint64_t *pcs, uint32_t n)
{
	struct hs_frame f[MAX_INLINE];
	uint32_t out = 0, i = 0;

	while (i < n) {
		int nf = gosym_lookup(t->sym, pcs[i] - 1 - t->bias, f, MAX_INLINE);

		pcs[out++] = pcs[i++];
		/*
		 * runtime.callers follows a physical PC whose innermost frame is inlined with one
		 * PC per enclosing call (entry + parentPc + 1): each resolves, innermost, to the
		 * next frame out of the same function (runtime/pprof's pcDeck.tryAdd).
		 */
		for (int k = 1; k < nf && i < n; k++, i++) {
			uint64_t entry;
			const char *fn = innermost(t, pcs[i] - 1 - t->bias, &entry);

			if (!fn || entry != f[0].func_entry || strcmp(fn, f[k].function) != 0)
				break;
		}
	}
	return out;
}

/*
 * runtime/pprof hides a leading frame by runtime.FuncForPC(pc), which takes the return address
 * itself (not pc-1) and names the innermost function there.
 */
static bool hidden(const struct target *t, uint64_t pc)
{
	const char *fn = innermost(t, pc - t->bias, NULL);

	return fn && (strncmp(fn, "runtime.", 8) == 0 ||
		      (t->go_minor >= 24 && strncmp(fn, "internal/runtime/", 17) == 0));
}

/* runtime/pprof's allFrames drops a PC whose call (pc-1) is in runtime.goexit. */
static bool goexit(const struct target *t, uint64_t pc)
{
	const char *fn = innermost(t, pc - 1 - t->bias, NULL);

	return fn && strcmp(fn, "runtime.goexit") == 0;
}

void gostack_shown(const struct target *t, const uint64_t *pcs, uint32_t n, uint32_t *first,
		   uint32_t *end)
{
	uint32_t e = n, f = 0;

	while (e > 0 && goexit(t, pcs[e - 1]))
		e--;
	while (f < e && hidden(t, pcs[f]))
		f++;
	*first = f < e ? f : 0;
	*end = e;
}

#include "gostack.h"

#include <errno.h>
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

/*
 * How many of a probe's physical frames the runtime's record of the sample holds: its first
 * t->record_frames frames (a physical frame whose inlined calls straddle the cut is kept whole:
 * runtime/pprof expands the PC the runtime kept for it into all of them), and nothing past
 * runtime.systemstack, where the runtime's unwinder stops on the system stack while the frame
 * pointers go on into the goroutine that switched to it.
 */
static uint32_t recorded(const struct target *t, const uint64_t *pcs, uint32_t n)
{
	struct hs_frame f[MAX_INLINE];
	uint32_t logical = 0;

	for (uint32_t i = 0; i < n; i++) {
		int nf;

		if (t->record_frames && logical >= t->record_frames)
			return i;
		nf = gosym_lookup(t->sym, pcs[i] - 1 - t->bias, f, MAX_INLINE);
		if (nf > 0 && strcmp(f[nf - 1].function, "runtime.systemstack") == 0)
			return i + 1;
		logical += nf > 0 ? (uint32_t)nf : 1;
	}
	return n;
}

/* runtime/pprof's allFrames drops a PC whose call (pc-1) is in runtime.goexit. */
static bool goexit(const struct target *t, uint64_t pc)
{
	const char *fn = innermost(t, pc - 1 - t->bias, NULL);

	return fn && strcmp(fn, "runtime.goexit") == 0;
}

/* The default of debug.profstackdepth (Go 1.23+). */
#define PROFSTACKDEPTH 128

int gostack_record_depth(struct target *t, uint32_t profstack_offset)
{
	/*
	 * mProf_Malloc keeps callers(skip, buf): frames [skip, skip + len(buf)) counting itself as
	 * 0, so [0, skip - 1 + len(buf)) from its caller on. Go 1.19-1.22: callers(4, [32]);
	 * 1.23: callers(4, [depth]); 1.24, 1.25: callers(5, [depth]); since 1.26 callers(3,
	 * [depth + 2]). m.profStack holds 1 + maxSkip + depth PCs; maxSkip is 5 in 1.23, then 6.
	 */
	int minor = t->go_minor, skip = minor <= 23 ? 4 : minor < 26 ? 5 : 3;
	int extra = minor < 26 ? 0 : 2, max_skip = minor == 23 ? 5 : 6;
	uint64_t m0, size, len;
	int64_t depth = PROFSTACKDEPTH;
	int rc = 0;

	if (minor < 23) {
		t->record_frames = (uint32_t)(skip - 1 + 32);
		return 0;
	}
	if (!profstack_offset || elfbin_symbol(t->elf, "runtime.m0", &m0, &size) != 0 ||
	    target_read(t, m0 + profstack_offset + 8, &len, sizeof(len)) != 0)
		rc = -ENOENT;
	else
		/* profstackdepth=0 leaves it nil: the runtime records nothing then. */
		depth = len ? (int64_t)len - 1 - max_skip : 0;
	if (depth < 0 || depth > 1024) {
		depth = PROFSTACKDEPTH;
		rc = -ENOENT;
	}
	t->record_frames = (uint32_t)(skip - 1 + depth + extra);
	return rc;
}

void gostack_shown(const struct target *t, const uint64_t *pcs, uint32_t n, uint32_t *first,
		   uint32_t *end)
{
	uint32_t e = recorded(t, pcs, n), f = 0;

	while (e > 0 && goexit(t, pcs[e - 1]))
		e--;
	while (f < e && hidden(t, pcs[f]))
		f++;
	*first = f < e ? f : 0;
	*end = e;
}

#include "gcruntime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disasm.h"
#include "godwarf.h"

/* Members read: the GC words in enum gc_word order, then what stop reasons need. */
enum { F_G_M = GCW_COUNT, F_M_PREEMPTOFF, F_GC_PERCENT, F_MEMORY_LIMIT, F_COUNT };

/* The runtime variables holding the GC words. */
enum { V_WORK, V_MEMSTATS, V_GC_CONTROLLER, V_COUNT, V_NONE = V_COUNT };

static const char *const variables[V_COUNT] = {"runtime.work", "runtime.memstats",
					       "runtime.gcController"};

static const struct {
	int var;
	struct godwarf_member m;
	unsigned size;
} fields[F_COUNT] = {
    [GCW_NUMGC] = {V_MEMSTATS, {"runtime.mstats", "numgc"}, 4},
    [GCW_NUM_FORCED] = {V_MEMSTATS, {"runtime.mstats", "numforcedgc"}, 4},
    [GCW_USER_FORCED] = {V_WORK, {"runtime.workType", "userForced"}, 1},
    [GCW_T_SWEEP_TERM] = {V_WORK, {"runtime.workType", "tSweepTerm"}, 8},
    [GCW_T_MARK] = {V_WORK, {"runtime.workType", "tMark"}, 8},
    [GCW_T_MARK_TERM] = {V_WORK, {"runtime.workType", "tMarkTerm"}, 8},
    [GCW_T_END] = {V_WORK, {"runtime.workType", "tEnd"}, 8},
    [GCW_HEAP0] = {V_WORK, {"runtime.workType", "heap0"}, 8},
    [GCW_HEAP1] = {V_WORK, {"runtime.workType", "heap1"}, 8},
    [GCW_HEAP2] = {V_WORK, {"runtime.workType", "heap2"}, 8},
    [GCW_HEAP_GOAL] = {V_GC_CONTROLLER, {"runtime.gcControllerState", "lastHeapGoal"}, 8},
    [F_G_M] = {V_NONE, {"runtime.g", "m"}, 8},
    [F_M_PREEMPTOFF] = {V_NONE, {"runtime.m", "preemptoff"}, 16},
    /* GOGC and GOMEMLIMIT as the runtime holds them: atomic.Int32 and atomic.Int64. */
    [F_GC_PERCENT] = {V_GC_CONTROLLER, {"runtime.gcControllerState", "gcPercent"}, 4},
    [F_MEMORY_LIMIT] = {V_GC_CONTROLLER, {"runtime.gcControllerState", "memoryLimit"}, 8},
};

/*
 * Offsets for binaries without DWARF, amd64, in the order of fields[], read from the DWARF of
 * binaries built by Debian's toolchains. A layout can change within a release line (go1.23.4 added
 * work.strongFromWeak) and with the build's experiments (go1.25's greenteagc adds to work), so each
 * row names the exact build it describes: the release and the experiments its version string
 * lists after "X:" ("go1.25.12 X:greenteagc"), in the order Go itself prints them (struct target
 * reads both, with or without build info). Any other build gets no table.
 * tests/unit/test_gcruntime.c builds each row's build with that very toolchain and checks the row
 * against its DWARF.
 */
static const struct {
	struct gcruntime_build build;
	int64_t off[F_COUNT];
} tables[] = {
    {{19, 8, ""}, {7704, 7708, 280, 360, 368, 376, 384, 408, 416, 424, 128, 48, 248, 0, 8}},
    {{21, 13, ""}, {7704, 7708, 344, 416, 424, 432, 440, 464, 472, 480, 96, 48, 248, 0, 8}},
    {{22, 12, ""}, {7704, 7708, 344, 416, 424, 432, 440, 456, 464, 472, 96, 48, 248, 0, 8}},
    {{23, 5, ""}, {7704, 7708, 336, 440, 448, 456, 464, 480, 488, 496, 96, 48, 248, 0, 8}},
    {{24, 4, ""}, {7704, 7708, 336, 440, 448, 456, 464, 480, 488, 496, 96, 48, 248, 0, 8}},
    {{25, 12, ""}, {7680, 7684, 400, 528, 536, 544, 552, 568, 576, 584, 96, 48, 240, 0, 8}},
    {{25, 12, "greenteagc"},
     {7680, 7684, 496, 624, 632, 640, 648, 664, 672, 680, 96, 48, 240, 0, 8}},
    {{26, 11, ""}, {7680, 7684, 536, 664, 672, 680, 688, 704, 712, 720, 96, 48, 248, 0, 8}},
    {{26, 11, "nogreenteagc"},
     {7680, 7684, 536, 664, 672, 680, 688, 704, 712, 720, 96, 48, 248, 0, 8}},
    {{27, 4, ""}, {7680, 7684, 536, 664, 672, 680, 688, 704, 712, 720, 96, 48, 248, 0, 8}},
    {{27, 4, "nogreenteagc"},
     {7680, 7684, 536, 664, 672, 680, 688, 704, 712, 720, 96, 48, 248, 0, 8}},
};

const struct gcruntime_build *gcruntime_table_build(size_t i)
{
	return i < sizeof(tables) / sizeof(tables[0]) ? &tables[i].build : NULL;
}

/* runtime/proc.go's stwReasonStrings, the same from Go 1.21 to 1.27. */
static const char *const stw_reasons[] = {
    "unknown",
    "GC mark termination",
    "GC sweep termination",
    "write heap dump",
    "goroutine profile",
    "goroutine profile cleanup",
    "all goroutines stack trace",
    "read mem stats",
    "AllThreadsSyscall",
    "GOMAXPROCS",
    "start trace",
    "stop trace",
    "CountPagesInUse (test)",
    "ReadMetricsSlow (test)",
    "ReadMemStatsSlow (test)",
    "PageCachePagesLeaked (test)",
    "ResetDebugLog (test)",
};

const char *gcruntime_stw_reason(unsigned reason)
{
	return reason < sizeof(stw_reasons) / sizeof(stw_reasons[0]) ? stw_reasons[reason] : NULL;
}

/* The exact build: a newer release's minor is the newest heapspy knows, never its own. */
static bool is_build(const struct target *t, const struct gcruntime_build *b)
{
	return !t->newer_release && t->go_minor == b->minor && t->go_patch == b->patch &&
	       !strcmp(t->go_experiments, b->experiments);
}

static const int64_t *table_for(const struct target *t)
{
	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
		if (is_build(t, &tables[i].build))
			return tables[i].off;
	return NULL;
}

/* DWARF first: it describes this very build; the table where the build has none. */
static void resolve_offsets(const struct target *t, struct gc_runtime *r, int64_t *off)
{
	const int64_t *table = table_for(t);
	struct godwarf_member want[F_COUNT];

	for (int i = 0; i < F_COUNT; i++)
		want[i] = fields[i].m;
	if (godwarf_offsets(t->path, want, F_COUNT, off) == 0) {
		r->offsets = GC_OFFSETS_DWARF;
		for (int i = 0; table && i < F_COUNT; i++)
			r->table_mismatches += off[i] >= 0 && off[i] != table[i];
		return;
	}
	r->offsets = table ? GC_OFFSETS_TABLE : GC_OFFSETS_NONE;
	for (int i = 0; i < F_COUNT; i++)
		off[i] = table ? table[i] : -1;
}

#define MAX_REFS 1024
/* The releases whose GC code words_from_code reads. */
#define CODE_SHAPE_MIN 19
#define CODE_SHAPE_MAX 27

/* The RIP-relative operands of a runtime function's code; 0 when it is missing. */
static int refs_of(const struct target *t, const char *fn, struct rip_ref *refs)
{
	uint64_t entry, end;

	if (gosym_func(t->sym, fn, &entry, &end) != 0)
		return 0;
	return disasm_rip_refs(t->elf, entry, end, refs, MAX_REFS);
}

static bool load_of(const struct rip_ref *r, unsigned size)
{
	return !r->lea && r->size == size;
}

static bool loads(const struct rip_ref *refs, int n, uint64_t addr, unsigned size)
{
	for (int i = 0; i < n; i++)
		if (load_of(&refs[i], size) && refs[i].target == addr)
			return true;
	return false;
}

/* How many of work's fields gcMarkTermination touches if work were at base. */
static int work_score(const struct rip_ref *refs, int n, uint64_t base, const int64_t *off)
{
	int score = 0;

	for (int f = 0; f < GCW_COUNT; f++)
		score += fields[f].var == V_WORK &&
			 loads(refs, n, base + (uint64_t)off[f], fields[f].size);
	return score;
}

/* The base of work with the best score, if no other base scores as well; 0 otherwise. */
static uint64_t find_work(const struct rip_ref *refs, int n, const int64_t *off)
{
	uint64_t found = 0;
	int best = 0;
	bool unique = false;

	for (int i = 0; i < n; i++) {
		for (int f = 0; f < GCW_COUNT; f++) {
			uint64_t b = refs[i].target - (uint64_t)off[f];
			int score;

			if (fields[f].var != V_WORK || !load_of(&refs[i], fields[f].size))
				continue;
			score = work_score(refs, n, b, off);
			if (score > best) {
				best = score;
				found = b;
				unique = true;
			} else if (score == best && b != found) {
				unique = false;
			}
		}
	}
	/* Most of its fields must line up: the timestamps, the heap sizes, userForced. */
	return unique && best >= 6 ? found : 0;
}

/* numgc % 256 indexes memstats.pause_ns, a byte load; numgc and numforcedgc are counted. */
static uint64_t find_memstats(const struct rip_ref *refs, int n, const int64_t *off)
{
	uint64_t forced = (uint64_t)(off[GCW_NUM_FORCED] - off[GCW_NUMGC]);

	for (int i = 0; i < n; i++)
		if (load_of(&refs[i], 1) && loads(refs, n, refs[i].target, 4) &&
		    loads(refs, n, refs[i].target + forced, 4))
			return refs[i].target - (uint64_t)off[GCW_NUMGC];
	return 0;
}

/* endCycle's first global store is gcController.lastHeapGoal; 0 when not found. */
static uint64_t heap_goal_from_code(const struct target *t, struct rip_ref *refs)
{
	int n = refs_of(t, "runtime.(*gcControllerState).endCycle", refs);

	for (int i = 0; i < n; i++)
		if (load_of(&refs[i], 8))
			return refs[i].target;
	return 0;
}

/*
 * A stripped binary has no symbol for the GC's variables, but the code that uses them still
 * addresses them relative to RIP, and the field offsets are known: a variable is where most of
 * its fields line up. gcMarkTermination uses work's and memstats' fields.
 */
static void variables_from_code(const struct target *t, const int64_t *off, uint64_t *base)
{
	struct rip_ref *refs;
	int n;

	for (int f = 0; f < GCW_COUNT; f++)
		if (off[f] < 0)
			return;
	refs = calloc(MAX_REFS, sizeof(*refs));
	if (!refs)
		return;
	n = refs_of(t, "runtime.gcMarkTermination", refs);
	base[V_WORK] = find_work(refs, n, off);
	base[V_MEMSTATS] = find_memstats(refs, n, off);
	base[V_GC_CONTROLLER] = heap_goal_from_code(t, refs);
	if (base[V_GC_CONTROLLER])
		base[V_GC_CONTROLLER] -= (uint64_t)off[GCW_HEAP_GOAL];
	free(refs);
}

static uint64_t variable(const struct target *t, const char *name)
{
	uint64_t vaddr, size;

	return elfbin_symbol(t->elf, name, &vaddr, &size) == 0 ? vaddr : 0;
}

/* Whether refs[i..i+count) load count consecutive 8-byte words. */
static bool loads_run(const struct rip_ref *refs, int n, int i, int count)
{
	if (i < 0 || i + count > n)
		return false;
	for (int k = 0; k < count; k++)
		if (!load_of(&refs[i + k], 8) || refs[i + k].target != refs[i].target + 8u * k)
			return false;
	return true;
}

/*
 * Without DWARF or a table for this very build, the words come from the code that prints them.
 * gcMarkTermination's gctrace block loads work.tSweepTerm, tMark, tMarkTerm and tEnd (adjacent
 * int64s), later heap0, heap1 and heap2 right before gcController.lastHeapGoal (the first global
 * endCycle stores), then tests work.userForced: the byte whose test guards `numforcedgc++`, which
 * `numgc++` follows; numgc % 256 is loaded as a byte to index pause_ns. Every release from 1.19
 * to 1.27 has that shape (tests/unit/test_gcruntime.c); an older or newer one is not trusted to,
 * and where any piece does not line up, nothing is taken. Returns whether every word was found.
 */
static bool words_from_code(const struct target *t, uint64_t *w)
{
	struct rip_ref *refs;
	uint64_t goal;
	int n, j, k, u;

	if (t->newer_release || t->go_minor < CODE_SHAPE_MIN || t->go_minor > CODE_SHAPE_MAX ||
	    !(refs = calloc(MAX_REFS, sizeof(*refs))))
		return false;
	goal = heap_goal_from_code(t, refs);
	n = refs_of(t, "runtime.gcMarkTermination", refs);
	for (j = n - 1; j >= 3; j--)
		if (load_of(&refs[j], 8) && refs[j].target == goal && loads_run(refs, n, j - 3, 3))
			break;
	/* The timestamps: the last four before, just below heap0 (gcController has runs too). */
	for (k = j - 7; k >= 0; k--)
		if (loads_run(refs, n, k, 4) && refs[j - 3].target > refs[k].target + 24 &&
		    refs[j - 3].target - refs[k].target < 128)
			break;
	for (u = j + 1; u < n && !load_of(&refs[u], 1); u++)
		;
	if (!goal || j < 3 || k < 0 || u >= n) {
		free(refs);
		return false;
	}
	w[GCW_HEAP_GOAL] = goal;
	for (int i = 0; i < 3; i++)
		w[GCW_HEAP0 + i] = refs[j - 3 + i].target;
	for (int i = 0; i < 4; i++)
		w[GCW_T_SWEEP_TERM + i] = refs[k + i].target;
	w[GCW_USER_FORCED] = refs[u].target;
	/* The test of userForced that guards numforcedgc++, then numgc++. */
	for (int i = 0; i + 1 < n && !w[GCW_NUMGC]; i++) {
		if (i == u || !load_of(&refs[i], 1) || refs[i].target != w[GCW_USER_FORCED] ||
		    !load_of(&refs[i + 1], 4))
			continue;
		for (int m = i + 2; m < n && !w[GCW_NUMGC]; m++)
			if (load_of(&refs[m], 4) && refs[m].target != refs[i + 1].target &&
			    loads(refs, n, refs[m].target, 1)) {
				w[GCW_NUM_FORCED] = refs[i + 1].target;
				w[GCW_NUMGC] = refs[m].target;
			}
	}
	free(refs);
	/* userForced comes before the timestamps in work. */
	return w[GCW_NUMGC] && w[GCW_USER_FORCED] < w[GCW_T_SWEEP_TERM] &&
	       w[GCW_T_SWEEP_TERM] - w[GCW_USER_FORCED] < 1024;
}

/* Where the symbol table names the variables, every word found in the code must be in its own. */
static bool words_in_variables(const struct target *t, const uint64_t *w)
{
	for (int i = 0; i < GCW_COUNT; i++) {
		uint64_t vaddr, size;

		if (elfbin_symbol(t->elf, variables[fields[i].var], &vaddr, &size) == 0 &&
		    (w[i] < vaddr || w[i] + fields[i].size > vaddr + size))
			return false;
	}
	return true;
}

/*
 * startTheWorld clears m.preemptoff (a string: pointer, then length) through the M it loads from
 * the current g: two stores of zero 8 bytes apart through g.m.
 */
static void preemptoff_from_code(const struct target *t, struct gc_runtime *r)
{
	struct g_zero_store st[64];
	uint64_t entry, end;
	int n;

	if (gosym_func(t->sym, "runtime.startTheWorld", &entry, &end) != 0)
		return;
	n = disasm_g_zero_stores(t->elf, entry, end, st, 64);
	for (int i = 0; i < n; i++)
		for (int k = 0; k < n; k++)
			if (st[i].g_off == st[k].g_off && st[k].off == st[i].off + 8 &&
			    st[i].g_off > 0 && st[i].off > 0) {
				r->cfg.g_m_offset = (__u32)st[i].g_off;
				r->cfg.m_preemptoff_offset = (__u32)st[i].off;
				return;
			}
}

/*
 * gcController.heapFree, totalAlloc, totalFree and mappedReady, four adjacent words from Go 1.19
 * to 1.27: the memory beside the heap that a GOMEMLIMIT must leave room for. By DWARF only: 0
 * without it, or where they are not adjacent.
 */
static uint64_t heap_free_of(const struct target *t, uint64_t gc_controller)
{
	static const char *const names[] = {"heapFree", "totalAlloc", "totalFree", "mappedReady"};
	struct godwarf_member want[4];
	int64_t off[4];

	for (int i = 0; i < 4; i++)
		want[i] = (struct godwarf_member){"runtime.gcControllerState", names[i]};
	if (godwarf_offsets(t->path, want, 4, off) != 0 || off[0] < 0)
		return 0;
	for (int i = 1; i < 4; i++)
		if (off[i] != off[0] + 8 * i)
			return 0;
	return gc_controller + (uint64_t)off[0];
}

/*
 * work.cpuStats (Go 1.20+): the GC's CPU time and all CPU time (GOMAXPROCS x wall), both
 * accumulated at each cycle's end, as runtime/metrics reads them; the field names gained capitals
 * in 1.22. By DWARF only: 0 without it.
 */
static void cpu_stats_of(const struct target *t, uint64_t work, struct gc_runtime *r)
{
	static const struct godwarf_member want[] = {
	    {"runtime.workType", "cpuStats"},	 {"runtime.cpuStats", "gcTotalTime"},
	    {"runtime.cpuStats", "GCTotalTime"}, {"runtime.cpuStats", "gcIdleTime"},
	    {"runtime.cpuStats", "GCIdleTime"},	 {"runtime.cpuStats", "totalTime"},
	    {"runtime.cpuStats", "TotalTime"},
	};
	int64_t off[7], field[3];

	if (godwarf_offsets(t->path, want, 7, off) != 0 || off[0] < 0)
		return;
	for (int i = 0; i < 3; i++)
		if ((field[i] = off[1 + 2 * i] >= 0 ? off[1 + 2 * i] : off[2 + 2 * i]) < 0)
			return;
	r->gc_cpu_time = work + (uint64_t)(off[0] + field[0]);
	r->gc_idle_time = work + (uint64_t)(off[0] + field[1]);
	r->cpu_time = work + (uint64_t)(off[0] + field[2]);
}

static void resolve_words(const struct target *t, struct gc_runtime *r)
{
	uint64_t base[V_COUNT] = {0};
	uint64_t code_words[GCW_COUNT] = {0};
	int64_t off[F_COUNT];
	bool missing = false;

	resolve_offsets(t, r, off);
	for (int v = 0; v < V_COUNT; v++)
		base[v] = variable(t, variables[v]);
	if (!elfbin_has_symtab(t->elf) && r->offsets != GC_OFFSETS_NONE) {
		variables_from_code(t, off, base);
		r->from_code = true;
	}
	for (int i = 0; i < GCW_COUNT; i++) {
		uint64_t b = base[fields[i].var];

		r->word_size[i] = fields[i].size;
		r->words[i] = b && off[i] >= 0 ? b + (uint64_t)off[i] : 0;
		missing |= !r->words[i];
	}
	if (off[F_G_M] > 0 && off[F_M_PREEMPTOFF] > 0) {
		r->cfg.g_m_offset = (__u32)off[F_G_M];
		r->cfg.m_preemptoff_offset = (__u32)off[F_M_PREEMPTOFF];
	}
	if (missing && words_from_code(t, code_words) && words_in_variables(t, code_words)) {
		memcpy(r->words, code_words, sizeof(code_words));
		r->offsets = GC_OFFSETS_CODE;
		r->from_code = true;
		if (!r->cfg.m_preemptoff_offset)
			preemptoff_from_code(t, r);
	}
	/* gcController is wherever its heap goal was found, by whichever way. */
	if (r->words[GCW_HEAP_GOAL] && off[GCW_HEAP_GOAL] >= 0 && off[F_GC_PERCENT] >= 0 &&
	    off[F_MEMORY_LIMIT] >= 0) {
		uint64_t ctl = r->words[GCW_HEAP_GOAL] - (uint64_t)off[GCW_HEAP_GOAL];

		r->gc_percent = ctl + (uint64_t)off[F_GC_PERCENT];
		r->memory_limit = ctl + (uint64_t)off[F_MEMORY_LIMIT];
	}
	r->gomaxprocs = variable(t, "runtime.gomaxprocs");
	if (r->gc_percent)
		r->heap_free = heap_free_of(t, r->gc_percent - (uint64_t)off[F_GC_PERCENT]);
	if (r->offsets == GC_OFFSETS_DWARF && r->words[GCW_T_SWEEP_TERM])
		cpu_stats_of(t, r->words[GCW_T_SWEEP_TERM] - (uint64_t)off[GCW_T_SWEEP_TERM], r);
	r->numgc = r->words[GCW_NUMGC];
	r->num_forced = r->words[GCW_NUM_FORCED];
	r->runtime_init_time = variable(t, "runtime.runtimeInitTime");
}

bool gcruntime_has_state(const struct gc_runtime *r)
{
	return r->words[GCW_NUMGC] && r->words[GCW_T_SWEEP_TERM] && r->words[GCW_T_MARK] &&
	       r->words[GCW_T_MARK_TERM] && r->words[GCW_T_END] && r->cycle.vaddr &&
	       r->other_stop.vaddr && r->other_resume.vaddr;
}

int gcruntime_resolve(const struct target *t, struct gc_runtime *r, char *err, size_t errlen)
{
	memset(r, 0, sizeof(*r));
	/*
	 * gcMarkTermination calls prepareFreeWorkbufs right after it starts the world again;
	 * stopTheWorld's closure stops it for every caller but the GC, startTheWorld restarts it.
	 */
	probes_resolve(t, "runtime.prepareFreeWorkbufs", &r->cycle);
	probes_resolve(t, "runtime.stopTheWorld.func1", &r->other_stop);
	probes_resolve(t, "runtime.startTheWorld", &r->other_resume);
	probes_resolve(t, "runtime.gcStart", &r->gc_start);
	probes_resolve(t, "runtime.stopTheWorldWithSema", &r->stop);
	/*
	 * Where the world restarts, startTheWorldWithSema returns the runtime's own timestamp of
	 * it (gctrace's tMark, tEnd): on its return, the probe reads the pause's end exactly, and
	 * its trap falls outside the pause. From Go 1.26 its entry is tens of microseconds early.
	 */
	r->resume_returns_now =
	    probes_resolve_return(t, "runtime.startTheWorldWithSema", &r->resume) == 0;
	if (!r->resume_returns_now)
		probes_resolve(t, "runtime.startTheWorldWithSema", &r->resume);
	probes_resolve(t, "runtime.gcMarkTermination", &r->mark_term);
	probes_resolve(t, "runtime.(*mheap).grow", &r->grow);
	gosym_func(t->sym, "runtime.systemstack", &r->systemstack, &r->systemstack_end);
	r->stop_reason_arg = t->go_minor >= 21;
	resolve_words(t, r);
	r->cfg.stop_reads_reason = !r->stop_reason_arg;
	if (!gcruntime_has_state(r) && (!r->stop.vaddr || !r->resume.vaddr)) {
		snprintf(
		    err, errlen,
		    "%s (%s) has neither readable GC records nor "
		    "runtime.stopTheWorldWithSema/startTheWorldWithSema: cannot see its pauses",
		    t->display, t->go_version);
		return -ENOENT;
	}
	return 0;
}

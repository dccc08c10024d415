#include "heaplayout.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "disasm.h"
#include "godwarf.h"

static const char *const fact_names[LF_COUNT] = {
    [LF_KIND_OFFSET] = "special.kind",
    [LF_PROFILE_KIND] = "_KindSpecialProfile",
    [LF_BUCKET_OFFSET] = "specialprofile.b",
    [LF_MALLOC_ARGS] = "mProf_Malloc's parameters",
    [LF_RECORD_WORDS] = "memRecordCycle",
    [LF_PROFSTACK] = "m.profStack",
    [LF_G_LABELS] = "g.labels",
    [LF_G_M] = "g.m",
    [LF_M_CURG] = "m.curg",
};

static const char *const source_names[] = {
    [LAYOUT_UNKNOWN] = "unknown",
    [LAYOUT_DWARF] = "DWARF",
    [LAYOUT_CODE] = "code",
    [LAYOUT_TABLE] = "table",
    [LAYOUT_NEWEST] = "the newest table, a guess for a newer release",
    [LAYOUT_TEST] = "HEAPSPY_TEST_*, tests only",
};

/* m's layout changes with every release and experiment: only the binary can say. */
#define FROM_BINARY_ONLY -1

/*
 * The last resort, read from each release's runtime/mheap.go and mprof.go, keyed on the exact
 * release whose binaries test_heaplayout checks it against.
 */
static const struct heaplayout_row rows[] = {
    /* special{next; offset uint16; kind byte}; Finalizer 1, Profile 2 */
    {19, 8, {10, 2, 16, 0, 4, 0, 360, 48, 192}},
    {21, 13, {10, 2, 16, 0, 4, 0, 344, 48, 192}},
    {22, 12, {10, 2, 16, 0, 4, 0, 344, 48, 192}},
    /* WeakHandle 2 came before Profile 3; mProf_Malloc(mp, p, size) checks mp.profStack */
    {23, 5, {10, 3, 16, 1, 4, FROM_BINARY_ONLY, 352, 48, 192}},
    /* special.offset became uintptr */
    {24, 4, {16, 3, 24, 1, 4, FROM_BINARY_ONLY, 352, 48, 192}},
    /* TinyBlock 1 renumbered every kind: Profile 4 */
    {25, 12, {16, 4, 24, 1, 4, FROM_BINARY_ONLY, 344, 48, 184}},
    {26, 11, {16, 4, 24, 1, 4, FROM_BINARY_ONLY, 352, 48, 184}},
    /* memRecordCycle{allocs, frees} */
    {27, 4, {16, 4, 24, 1, 2, FROM_BINARY_ONLY, 352, 48, 184}},
};

const struct heaplayout_row *heaplayout_table_row(size_t i)
{
	return i < sizeof(rows) / sizeof(rows[0]) ? &rows[i] : NULL;
}

static void from_dwarf(const struct target *t, int64_t *v, enum layout_source *src)
{
	static const struct godwarf_fact want[LF_COUNT] = {
	    [LF_KIND_OFFSET] = {GODWARF_MEMBER_OFFSET, "runtime.special", "kind"},
	    [LF_PROFILE_KIND] = {GODWARF_CONSTANT, "runtime._KindSpecialProfile", NULL},
	    [LF_BUCKET_OFFSET] = {GODWARF_MEMBER_OFFSET, "runtime.specialprofile", "b"},
	    [LF_MALLOC_ARGS] = {GODWARF_PARAM_INDEX, "runtime.mProf_Malloc", "p"},
	    [LF_RECORD_WORDS] = {GODWARF_TYPE_SIZE, "runtime.memRecordCycle", NULL},
	    [LF_PROFSTACK] = {GODWARF_MEMBER_OFFSET, "runtime.m", "profStack"},
	    [LF_G_LABELS] = {GODWARF_MEMBER_OFFSET, "runtime.g", "labels"},
	    [LF_G_M] = {GODWARF_MEMBER_OFFSET, "runtime.g", "m"},
	    [LF_M_CURG] = {GODWARF_MEMBER_OFFSET, "runtime.m", "curg"},
	};
	int found[LF_COUNT];

	if (godwarf_facts(t->path, want, LF_COUNT, v, found) != 0)
		return;
	if (found[LF_RECORD_WORDS])
		v[LF_RECORD_WORDS] /= 8;
	for (int i = 0; i < LF_COUNT; i++)
		if (found[i])
			src[i] = LAYOUT_DWARF;
}

static void found_in_code(int64_t *v, enum layout_source *src, int fact, int64_t value)
{
	if (src[fact] == LAYOUT_UNKNOWN) {
		v[fact] = value;
		src[fact] = LAYOUT_CODE;
	}
}

/*
 * freeSpecial: `switch s.kind { ... case _KindSpecialProfile: mProf_Free(sp.b, ...) }`.
 * mProf_Free: `mpc.frees++` in the memRecordCycle of a future cycle.
 * mProf_Malloc: `if mp.profStack == nil { return }` first, where the M is its first parameter.
 */
static void from_code(const struct target *t, int64_t *v, enum layout_source *src)
{
	uint64_t entry, end, free_entry, free_end;
	struct disasm_dispatch d;
	int64_t profstack, inc, labels, g_m, m_curg;

	if (gosym_func(t->sym, "runtime.freeSpecial", &entry, &end) == 0 &&
	    gosym_func(t->sym, "runtime.mProf_Free", &free_entry, &free_end) == 0 &&
	    disasm_dispatch(t->elf, entry, end, free_entry, &d) == 0) {
		found_in_code(v, src, LF_KIND_OFFSET, d.switch_offset);
		found_in_code(v, src, LF_PROFILE_KIND, d.case_value);
		found_in_code(v, src, LF_BUCKET_OFFSET, d.arg_offset);
	}
	/* memRecord{active, future[3]}: frees++ of a future cycle is one cycle's size past 8. */
	if (gosym_func(t->sym, "runtime.mProf_Free", &entry, &end) == 0 &&
	    ((inc = disasm_first_inc(t->elf, entry, end)) == 3 * 8 || inc == 5 * 8))
		found_in_code(v, src, LF_RECORD_WORDS, inc / 8 - 1);
	if (gosym_func(t->sym, "runtime.mProf_Malloc", &entry, &end) == 0 &&
	    (profstack = disasm_nil_check(t->elf, entry, end)) > 0) {
		found_in_code(v, src, LF_PROFSTACK, profstack);
		found_in_code(v, src, LF_MALLOC_ARGS, 1);
	}
	/* runtime_setProfLabel: `getg().labels = labels`; semacquire1: `if gp != gp.m.curg`. */
	if (gosym_func(t->sym, "runtime/pprof.runtime_setProfLabel", &entry, &end) == 0 &&
	    (labels = disasm_arg_to_g_field(t->elf, entry, end)) > 0)
		found_in_code(v, src, LF_G_LABELS, labels);
	if (gosym_func(t->sym, "runtime.semacquire1", &entry, &end) == 0 &&
	    disasm_curg_check(t->elf, entry, end, &g_m, &m_curg) == 0) {
		found_in_code(v, src, LF_G_M, g_m);
		found_in_code(v, src, LF_M_CURG, m_curg);
	}
}

static void from_table(const struct target *t, int64_t *v, enum layout_source *src)
{
	size_t newest = sizeof(rows) / sizeof(rows[0]) - 1;

	/*
	 * mProf_Malloc(p, size) from Go 1.18 to 1.22, in every patch release: before 1.23 there is
	 * no profStack check in its code to tell the parameters by, and a signature does not change
	 * within a release line, so a patch release without a row of its own still has this one.
	 */
	if (t->go_minor >= 18 && t->go_minor < 23 && src[LF_MALLOC_ARGS] == LAYOUT_UNKNOWN) {
		v[LF_MALLOC_ARGS] = 0;
		src[LF_MALLOC_ARGS] = LAYOUT_TABLE;
	}

	for (size_t k = 0; k <= newest; k++) {
		/* A newer release gets the newest row, said to be a guess. */
		if (t->newer_release ? k != newest
				     : t->go_minor != rows[k].minor || t->go_patch != rows[k].patch)
			continue;
		for (int i = 0; i < LF_COUNT; i++)
			if (src[i] == LAYOUT_UNKNOWN) {
				v[i] = rows[k].v[i];
				src[i] = t->newer_release ? LAYOUT_NEWEST : LAYOUT_TABLE;
			}
	}
}

/*
 * Labels are read only where the binary can set them (runtime/pprof's setter is linked: the linker
 * drops it from every program that never calls pprof.Do or SetGoroutineLabels) and where g's layout
 * is this build's own (DWARF, code) or its exact release's, never the newest table's guess.
 */
static void resolve_labels(const struct target *t, const int64_t *v, struct heap_layout *l)
{
	uint64_t entry, end;
	bool known = true;

	for (int i = LF_G_LABELS; i <= LF_M_CURG; i++)
		known &= (l->src[i] == LAYOUT_DWARF || l->src[i] == LAYOUT_CODE ||
			  l->src[i] == LAYOUT_TABLE) &&
			 v[i] > 0 && v[i] < 4096;
	if (known) {
		l->g_labels = (unsigned)v[LF_G_LABELS];
		l->g_m = (unsigned)v[LF_G_M];
		l->m_curg = (unsigned)v[LF_M_CURG];
	}
	l->labels_slice = t->go_minor >= 24 || t->newer_release;
	if (gosym_func(t->sym, "runtime/pprof.runtime_setProfLabel", &entry, &end) != 0)
		l->labels = LABELS_NOT_LINKED;
	else if (!known)
		l->labels = LABELS_UNKNOWN;
	else {
		l->labels = LABELS_READ;
		l->cfg.g_labels_offset = l->g_labels;
		l->cfg.g_m_offset = l->g_m;
		l->cfg.m_curg_offset = l->m_curg;
	}
}

int heaplayout_resolve(const struct target *t, struct heap_layout *l, char *err, size_t errlen)
{
	const char *test_kind = getenv("HEAPSPY_TEST_PROFILE_KIND");
	const char *test_words = getenv("HEAPSPY_TEST_RECORD_WORDS");
	int64_t v[LF_COUNT];

	memset(l, 0, sizeof(*l));
	from_dwarf(t, v, l->src);
	from_code(t, v, l->src);
	from_table(t, v, l->src);
	if (test_kind && *test_kind) {
		v[LF_PROFILE_KIND] = strtol(test_kind, NULL, 0);
		l->src[LF_PROFILE_KIND] = LAYOUT_TEST;
	}
	if (test_words && *test_words) {
		v[LF_RECORD_WORDS] = strtol(test_words, NULL, 0);
		l->src[LF_RECORD_WORDS] = LAYOUT_TEST;
	}
	/* Without it heapspy keeps the few samples the runtime drops; the self-check allows them.
	 */
	if (l->src[LF_PROFSTACK] != LAYOUT_DWARF && l->src[LF_PROFSTACK] != LAYOUT_CODE &&
	    v[LF_PROFSTACK] == FROM_BINARY_ONLY) {
		v[LF_PROFSTACK] = 0;
		l->src[LF_PROFSTACK] = LAYOUT_UNKNOWN;
	}
	for (int i = 0; i < LF_G_LABELS; i++)
		if ((l->src[i] == LAYOUT_UNKNOWN && i != LF_PROFSTACK) || v[i] < 0 || v[i] > 4096) {
			snprintf(err, errlen,
				 "%s (%s): cannot establish the runtime's %s (not in its DWARF, "
				 "not readable from its code, no table for this release)",
				 t->display, t->go_version, fact_names[i]);
			return -ENOTSUP;
		}
	if (v[LF_MALLOC_ARGS] > 1 || (v[LF_RECORD_WORDS] != 2 && v[LF_RECORD_WORDS] != 4)) {
		snprintf(err, errlen,
			 "%s (%s): the runtime's heap-profiling records have a shape heapspy does "
			 "not know (mProf_Malloc's p is parameter %lld, memRecordCycle %lld words)",
			 t->display, t->go_version, (long long)v[LF_MALLOC_ARGS],
			 (long long)v[LF_RECORD_WORDS]);
		return -ENOTSUP;
	}
	l->cfg.kind_offset = (__u32)v[LF_KIND_OFFSET];
	l->cfg.profile_kind = (__u32)v[LF_PROFILE_KIND];
	l->cfg.bucket_offset = (__u32)v[LF_BUCKET_OFFSET];
	l->cfg.malloc_arg_base = (__u32)v[LF_MALLOC_ARGS];
	l->cfg.profstack_offset = (__u32)v[LF_PROFSTACK];
	l->record_words = (unsigned)v[LF_RECORD_WORDS];
	resolve_labels(t, v, l);
	return 0;
}

unsigned heaplayout_fact(const struct heap_layout *l, int i)
{
	const unsigned facts[LF_COUNT] = {
	    [LF_KIND_OFFSET] = l->cfg.kind_offset,
	    [LF_PROFILE_KIND] = l->cfg.profile_kind,
	    [LF_BUCKET_OFFSET] = l->cfg.bucket_offset,
	    [LF_MALLOC_ARGS] = l->cfg.malloc_arg_base,
	    [LF_RECORD_WORDS] = l->record_words,
	    [LF_PROFSTACK] = l->cfg.profstack_offset,
	    [LF_G_LABELS] = l->g_labels,
	    [LF_G_M] = l->g_m,
	    [LF_M_CURG] = l->m_curg,
	};

	return i >= 0 && i < LF_COUNT ? facts[i] : 0;
}

void heaplayout_describe(const struct heap_layout *l, FILE *f)
{
	static const char *const how[LF_COUNT] = {
	    [LF_KIND_OFFSET] = "special.kind at offset %u",
	    [LF_PROFILE_KIND] = "_KindSpecialProfile = %u",
	    [LF_BUCKET_OFFSET] = "specialprofile.b at offset %u",
	    [LF_MALLOC_ARGS] = "mProf_Malloc's p is parameter %u",
	    [LF_RECORD_WORDS] = "memRecordCycle has %u words",
	    [LF_PROFSTACK] = "m.profStack at offset %u (0: not checked)",
	    [LF_G_LABELS] = "g.labels at offset %u (0: unknown)",
	    [LF_G_M] = "g.m at offset %u (0: unknown)",
	    [LF_M_CURG] = "m.curg at offset %u (0: unknown)",
	};
	static const char *const label_states[] = {
	    [LABELS_NOT_LINKED] = "not read: nothing in the binary sets them",
	    [LABELS_UNKNOWN] = "not read: g's layout unknown",
	    [LABELS_READ] = "read",
	};

	for (int i = 0; i < LF_COUNT; i++) {
		fprintf(f, "heapspy: layout: ");
		fprintf(f, how[i], heaplayout_fact(l, i));
		fprintf(f, " (from %s)\n", source_names[l->src[i]]);
	}
	fprintf(f, "heapspy: layout: goroutine labels %s (a %s)\n", label_states[l->labels],
		l->labels_slice ? "slice of key/value pairs" : "map[string]string");
}

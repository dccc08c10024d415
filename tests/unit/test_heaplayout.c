/*
 * heaplayout and the heap probes' variables against real binaries from every installed Debian Go
 * toolchain. The expected layouts are read from each release's runtime/mheap.go and mprof.go;
 * the DWARF of the default build must say exactly that, the runtime's code must say the same once
 * the binary is stripped (objcopy --strip-all keeps the layout, so MemProfileRate found in the
 * code must be at its symbol's address; the Go linker's -s -w too), and a build without DWARF
 * that keeps its symbol table reads the code as well, never the table (which knows nothing of
 * m.profStack's place, nor needs to: only releases without the check have no code for it).
 * Each exact release's table row is checked against the DWARF of that release's build.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "gofixture.h"
#include "probes.h"

static const struct {
	const char *version;
	/* special.kind, _KindSpecialProfile, specialprofile.b, mProf_Malloc's p, record words */
	unsigned kind_offset, profile_kind, bucket_offset, arg_base, record_words;
} releases[] = {
    {"1.19", 10, 2, 16, 0, 4}, {"1.21", 10, 2, 16, 0, 4}, {"1.22", 10, 2, 16, 0, 4},
    {"1.23", 10, 3, 16, 1, 4}, {"1.24", 16, 3, 24, 1, 4}, {"1.25", 16, 4, 24, 1, 4},
    {"1.26", 16, 4, 24, 1, 4}, {"1.27", 16, 4, 24, 1, 2},
};

enum { DEFAULT, OBJCOPY_STRIPPED, STRIPPED, NODWARF, VARIANTS };
static const char *const variants[VARIANTS] = {"default", "objcopy", "stripped", "nodwarf"};
static const char *const ldflags[VARIANTS] = {"", "", "-s -w", "-w"};

static char dir[64];

static int build(const char *version, int variant, char *out, size_t len)
{
	snprintf(out, len, "%s/heap-%s-%s", dir, version, variants[variant]);
	return gofixture_build(version, "", ldflags[variant], variant == OBJCOPY_STRIPPED, out);
}

/* MemProfileRate's address and m.profStack in the default build, for its twins to match. */
static uint64_t rate_of_default;
static unsigned profstack_of_default, curg_of_default;

/* The table's row for this exact release says what the build's DWARF says. */
static void check_table_row(const struct target *t, const struct heap_layout *l)
{
	const struct heaplayout_row *row = NULL;

	for (size_t i = 0; heaplayout_table_row(i); i++)
		if (heaplayout_table_row(i)->minor == t->go_minor &&
		    heaplayout_table_row(i)->patch == t->go_patch)
			row = heaplayout_table_row(i);
	if (!row) {
		fprintf(stderr, "  %s: no table row\n", t->go_version);
		CHECK(0);
		return;
	}
	for (int i = 0; i < LF_COUNT; i++)
		if (row->v[i] >= 0 && row->v[i] != heaplayout_fact(l, i)) {
			fprintf(stderr, "  %s: fact %d is %u in the DWARF, %lld in the table\n",
				t->go_version, i, heaplayout_fact(l, i), (long long)row->v[i]);
			CHECK(0);
		}
}

static void check_binary(size_t r, int variant)
{
	const struct heap_layout *l;
	struct heap_probes hp;
	char path[256], err[512];
	struct target t;
	enum layout_source want;

	if (build(releases[r].version, variant, path, sizeof(path))) {
		fprintf(stderr, "  could not build the fixture with go%s\n", releases[r].version);
		CHECK(0);
		return;
	}
	CHECK(target_open_path(&t, path, 0, err, sizeof(err)) == 0);
	if (probes_resolve_heap(&t, &hp, true, err, sizeof(err)) != 0) {
		fprintf(stderr, "  go%s %s: %s\n", releases[r].version, variants[variant], err);
		CHECK(0);
		target_close(&t);
		return;
	}
	l = &hp.layout;
	if (l->cfg.kind_offset != releases[r].kind_offset ||
	    l->cfg.profile_kind != releases[r].profile_kind ||
	    l->cfg.bucket_offset != releases[r].bucket_offset ||
	    l->cfg.malloc_arg_base != releases[r].arg_base ||
	    l->record_words != releases[r].record_words)
		fprintf(
		    stderr, "  go%s %s: kind at %u = %u, b at %u, p is parameter %u, %u words\n",
		    releases[r].version, variants[variant], l->cfg.kind_offset, l->cfg.profile_kind,
		    l->cfg.bucket_offset, l->cfg.malloc_arg_base, l->record_words);
	CHECK(l->cfg.kind_offset == releases[r].kind_offset);
	CHECK(l->cfg.profile_kind == releases[r].profile_kind);
	CHECK(l->cfg.bucket_offset == releases[r].bucket_offset);
	CHECK(l->cfg.malloc_arg_base == releases[r].arg_base);
	CHECK(l->record_words == releases[r].record_words);
	/* The switch in freeSpecial whenever the DWARF is gone; the table only for the rest. */
	want = variant == DEFAULT ? LAYOUT_DWARF : LAYOUT_CODE;
	CHECK(l->src[LF_KIND_OFFSET] == want && l->src[LF_PROFILE_KIND] == want &&
	      l->src[LF_BUCKET_OFFSET] == want);
	/* Since Go 1.23 mProf_Malloc opens with `if mp.profStack == nil`: the M comes first. */
	if (releases[r].arg_base) {
		CHECK(l->src[LF_MALLOC_ARGS] == want && l->src[LF_PROFSTACK] == want);
		CHECK(l->cfg.profstack_offset > 0);
	} else {
		CHECK(l->src[LF_MALLOC_ARGS] == (variant == DEFAULT ? LAYOUT_DWARF : LAYOUT_TABLE));
		CHECK(l->src[LF_PROFSTACK] == LAYOUT_TABLE && l->cfg.profstack_offset == 0);
	}
	if (variant == DEFAULT)
		profstack_of_default = l->cfg.profstack_offset;
	CHECK(l->cfg.profstack_offset == profstack_of_default);
	CHECK(l->src[LF_RECORD_WORDS] == (variant == DEFAULT ? LAYOUT_DWARF : LAYOUT_CODE));
	/* The one variable heapspy writes: from the code, only with two functions agreeing. */
	CHECK(hp.mem_profile_rate != 0);
	CHECK((hp.rate_confirmed_by != NULL) ==
	      (variant == OBJCOPY_STRIPPED || variant == STRIPPED));
	/*
	 * Where g keeps a goroutine's labels, in every build of a known release; but the fixture
	 * never sets labels, so the linker dropped the setter and the probe reads none.
	 */
	CHECK(l->g_labels > 0 && l->g_m == 48 && l->m_curg > 0);
	/* g.m and m.curg from runtime.semacquire1's `gp != gp.m.curg` where DWARF is gone. */
	CHECK(l->src[LF_M_CURG] == (variant == DEFAULT ? LAYOUT_DWARF : LAYOUT_CODE));
	if (variant == DEFAULT)
		curg_of_default = l->m_curg;
	CHECK(l->m_curg == curg_of_default);
	CHECK(l->labels == LABELS_NOT_LINKED && l->cfg.g_labels_offset == 0);
	CHECK(l->labels_slice == (strcmp(releases[r].version, "1.24") >= 0));
	if (variant == DEFAULT) {
		rate_of_default = hp.mem_profile_rate;
		check_table_row(&t, l);
	}
	if (variant == OBJCOPY_STRIPPED)
		CHECK(hp.mem_profile_rate == rate_of_default);
	target_close(&t);
}

static void test_every_toolchain(void)
{
	int built = 0;

	for (size_t r = 0; r < sizeof(releases) / sizeof(releases[0]); r++) {
		char go[64];

		snprintf(go, sizeof(go), "/usr/lib/go-%s/bin/go", releases[r].version);
		if (access(go, X_OK) != 0)
			continue;
		for (int variant = 0; variant < VARIANTS; variant++)
			check_binary(r, variant);
		built++;
	}
	CHECK(built > 0);
}

/* A test-only override, and nothing else, replaces the profile kind; it says so. */
static void test_override(void)
{
	struct heap_probes hp;
	char path[256], err[512];
	struct target t;

	if (build(releases[0].version, DEFAULT, path, sizeof(path))) {
		CHECK(0);
		return;
	}
	setenv("HEAPSPY_TEST_PROFILE_KIND", "7", 1);
	CHECK(target_open_path(&t, path, 0, err, sizeof(err)) == 0);
	CHECK(probes_resolve_heap(&t, &hp, true, err, sizeof(err)) == 0);
	CHECK(hp.layout.cfg.profile_kind == 7 && hp.layout.src[LF_PROFILE_KIND] == LAYOUT_TEST);
	unsetenv("HEAPSPY_TEST_PROFILE_KIND");
	target_close(&t);
}

int main(void)
{
	int failures = 0;

	if (gofixture_dir(dir, sizeof(dir), "heaplayout") != 0)
		return 1;
	RUN(test_every_toolchain);
	RUN(test_override);
	gofixture_dir_remove(dir);
	return failures;
}

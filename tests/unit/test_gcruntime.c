/*
 * gcruntime against real binaries from every installed Debian Go toolchain: the per-release
 * offset tables must say what the DWARF of the exact build they name (release and experiments)
 * says, a build without DWARF (-ldflags=-w) must be read through the table, and in a stripped one
 * the GC's variables must be found in the code that uses them: at the very addresses of the symbol
 * table when the default build's table is stripped by objcopy (the layout stays), and somewhere for
 * the Go linker's own -s -w; and a build that claims a patch release no table names is read
 * through the code alone, to the same words. The fixture is tests/unit/gosym_fixture.go: any Go
 * program carries the whole runtime.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "gofixture.h"
#include "gcruntime.h"

static const char *const versions[] = {"1.19", "1.21", "1.22", "1.23",
				       "1.24", "1.25", "1.26", "1.27"};
/* The last two claim a patch release no table names: the words must come from the code. */
enum { DEFAULT, NODWARF, STRIPPED, OBJCOPY_STRIPPED, NODWARF_UNKNOWN, STRIPPED_UNKNOWN, VARIANTS };

static const char *const variants[VARIANTS] = {"default", "nodwarf",	     "stripped",
					       "objcopy", "nodwarf-unknown", "stripped-unknown"};
static const char *const ldflags[VARIANTS] = {"", "-w", "-s -w", "", "-w", "-s -w"};
/* What each variant's words are read through, and the variant whose words they must equal. */
static const enum gc_offsets_source source[VARIANTS] = {GC_OFFSETS_DWARF, GC_OFFSETS_TABLE,
							GC_OFFSETS_TABLE, GC_OFFSETS_TABLE,
							GC_OFFSETS_CODE,  GC_OFFSETS_CODE};
static const int same_words_as[VARIANTS] = {DEFAULT, NODWARF, STRIPPED, DEFAULT, NODWARF, STRIPPED};

static char dir[64];

/* The fixture built by Go <version> with GOEXPERIMENT=<experiments>, once per run. */
static int build(const char *version, const char *experiments, int variant, char *out, size_t len)
{
	snprintf(out, len, "%s/gc-%s-%s-%s", dir, version, experiments, variants[variant]);
	if (access(out, X_OK) == 0)
		return 0;
	return gofixture_build(version, experiments, ldflags[variant], variant == OBJCOPY_STRIPPED,
			       out);
}

/* The words each variant of the toolchain's build found, for its twins to match. */
static uint64_t words_of[VARIANTS][GCW_COUNT];
static __u32 preemptoff_of_default;

/*
 * Makes the binary claim the next patch release of its line (go1.27.4 -> go1.27.5), everywhere
 * it names its release: the build info and runtime.buildVersion.
 */
static int claim_other_patch(const char *path, const char *version)
{
	char release[32], other[32];
	size_t n = strcspn(version, " -"), len;
	FILE *f = fopen(path, "r+b");
	char *data;
	int rc = -EIO;

	if (!f || n >= sizeof(release) || n < 2 || version[n - 1] < '0' || version[n - 1] > '9') {
		if (f)
			fclose(f);
		return rc;
	}
	memcpy(release, version, n);
	release[n] = '\0';
	memcpy(other, release, n + 1);
	other[n - 1] = (char)('0' + (version[n - 1] - '0' + 1) % 10);
	fseek(f, 0, SEEK_END);
	len = (size_t)ftell(f);
	rewind(f);
	data = malloc(len);
	if (data && fread(data, 1, len, f) == len) {
		for (char *p = data; (p = memmem(p, len - (size_t)(p - data), release, n)); p += n)
			if (p + n == data + len || p[n] < '0' || p[n] > '9')
				memcpy(p, other, n);
		rewind(f);
		rc = fwrite(data, 1, len, f) == len ? 0 : -EIO;
	}
	free(data);
	fclose(f);
	return rc;
}

/*
 * Resolves the fixture's GC records; table, when given, names the exact build the fixture must
 * be, so that a table is only ever checked against the build it describes.
 */
static void check_binary(const char *version, const char *experiments,
			 const struct gcruntime_build *table, int variant)
{
	char path[256], err[512];
	struct target t;
	struct gc_runtime r;
	int rc;

	if (build(version, experiments, variant, path, sizeof(path))) {
		fprintf(stderr, "  could not build the fixture with go%s GOEXPERIMENT=%s\n",
			version, experiments);
		CHECK(0);
		return;
	}
	CHECK(target_open_path(&t, path, 0, err, sizeof(err)) == 0);
	if (variant >= NODWARF_UNKNOWN) {
		char patched[sizeof(path) + 16], cmd[2 * sizeof(patched)];

		snprintf(patched, sizeof(patched), "%s.patched", path);
		snprintf(cmd, sizeof(cmd), "cp %s %s", path, patched);
		CHECK(system(cmd) == 0);
		CHECK(claim_other_patch(patched, t.go_version) == 0);
		target_close(&t);
		CHECK(target_open_path(&t, patched, 0, err, sizeof(err)) == 0);
	}
	if (table && (t.go_minor != table->minor || t.go_patch != table->patch ||
		      strcmp(t.go_experiments, table->experiments))) {
		fprintf(stderr, "  the table is for go1.%d.%d X:%s, /usr/lib/go-%s builds %s\n",
			table->minor, table->patch, table->experiments, version, t.go_version);
		CHECK(0);
	}
	rc = gcruntime_resolve(&t, &r, err, sizeof(err));
	CHECK(rc == 0);
	if (rc)
		fprintf(stderr, "  %s %s: %s\n", t.go_version, variants[variant], err);
	if (r.table_mismatches)
		fprintf(stderr, "  %s: %d fields where the table and the DWARF disagree\n",
			t.go_version, r.table_mismatches);
	CHECK(r.table_mismatches == 0);
	CHECK(r.stop.vaddr && r.resume.vaddr && r.gc_start.vaddr && r.mark_term.vaddr &&
	      r.grow.vaddr && r.systemstack < r.systemstack_end);
	CHECK(r.stop_reason_arg == (strcmp(version, "1.21") >= 0));
	CHECK(r.cfg.stop_reads_reason == !r.stop_reason_arg);
	if (!gcruntime_has_state(&r))
		fprintf(stderr, "  %s %s: the GC records are not found\n", t.go_version,
			variants[variant]);
	CHECK(gcruntime_has_state(&r));
	if (r.offsets != source[variant])
		fprintf(stderr, "  %s %s: offsets from %d\n", t.go_version, variants[variant],
			r.offsets);
	CHECK(r.offsets == source[variant]);
	CHECK(r.from_code == (variant >= STRIPPED || variant == NODWARF_UNKNOWN));
	if (same_words_as[variant] != variant) {
		for (int i = 0; i < GCW_COUNT; i++) {
			if (r.words[i] != words_of[same_words_as[variant]][i])
				fprintf(stderr, "  %s %s: word %d at 0x%llx, %s says 0x%llx\n",
					t.go_version, variants[variant], i,
					(unsigned long long)r.words[i],
					variants[same_words_as[variant]],
					(unsigned long long)words_of[same_words_as[variant]][i]);
			CHECK(r.words[i] == words_of[same_words_as[variant]][i]);
		}
	}
	for (int i = 0; i < GCW_COUNT; i++)
		CHECK(r.words[i] != 0);
	/* GOGC and GOMEMLIMIT in gcController, before its heap goal, wherever offsets are known. */
	if (r.offsets != GC_OFFSETS_CODE)
		CHECK(r.gc_percent && r.memory_limit == r.gc_percent + 8 &&
		      r.gc_percent < r.words[GCW_HEAP_GOAL] &&
		      r.words[GCW_HEAP_GOAL] - r.gc_percent < 256);
	/* By DWARF only: the memory beside the heap, and work.cpuStats from Go 1.20. */
	if (variant == DEFAULT) {
		CHECK(r.heap_free > r.gc_percent && r.heap_free - r.gc_percent < 1024);
		CHECK(!!r.gc_cpu_time == (strcmp(version, "1.19") > 0));
		CHECK(!r.gc_cpu_time ||
		      (r.gc_idle_time < r.gc_cpu_time && r.gc_cpu_time < r.cpu_time &&
		       r.cpu_time - r.gc_cpu_time < 128));
	} else {
		CHECK(!r.heap_free && !r.gc_cpu_time);
	}
	/* runtime.gomaxprocs by its symbol: wherever the symbol table is. */
	CHECK(!!r.gomaxprocs ==
	      (variant == DEFAULT || variant == NODWARF || variant == NODWARF_UNKNOWN));
	memcpy(words_of[variant], r.words, sizeof(words_of[variant]));
	if (variant == DEFAULT)
		preemptoff_of_default = r.cfg.m_preemptoff_offset;
	CHECK(r.cfg.g_m_offset == 48 && r.cfg.m_preemptoff_offset > 0);
	CHECK(r.cfg.m_preemptoff_offset == preemptoff_of_default);
	target_close(&t);
}

/* Every shape of a build by every installed toolchain, with its default experiments. */
static void test_build_shapes(void)
{
	int built = 0;

	for (size_t v = 0; v < sizeof(versions) / sizeof(versions[0]); v++) {
		char go[64];

		snprintf(go, sizeof(go), "/usr/lib/go-%s/bin/go", versions[v]);
		if (access(go, X_OK) != 0)
			continue;
		for (int variant = 0; variant < VARIANTS; variant++)
			check_binary(versions[v], "", NULL, variant);
		built++;
	}
	CHECK(built > 0);
}

/*
 * Every table against the DWARF of the very build it names (release and experiments), and that
 * build without DWARF read through it, also stripped. A table whose toolchain is not installed,
 * or is another patch release, fails: it would be unchecked.
 */
static void test_tables_match_dwarf(void)
{
	const struct gcruntime_build *b;

	for (size_t i = 0; (b = gcruntime_table_build(i)); i++) {
		char version[16];

		snprintf(version, sizeof(version), "1.%d", b->minor);
		for (int variant = DEFAULT; variant <= STRIPPED; variant++)
			check_binary(version, b->experiments, b, variant);
	}
}

static void test_stw_reasons(void)
{
	CHECK(!strcmp(gcruntime_stw_reason(GC_STW_MARK_TERM), "GC mark termination"));
	CHECK(!strcmp(gcruntime_stw_reason(GC_STW_SWEEP_TERM), "GC sweep termination"));
	CHECK(!strcmp(gcruntime_stw_reason(7), "read mem stats"));
	CHECK(!strcmp(gcruntime_stw_reason(9), "GOMAXPROCS"));
	CHECK(gcruntime_stw_reason(200) == NULL);
}

int main(void)
{
	int failures = 0;

	if (gofixture_dir(dir, sizeof(dir), "gcruntime") != 0)
		return 1;
	RUN(test_build_shapes);
	RUN(test_tables_match_dwarf);
	RUN(test_stw_reasons);
	gofixture_dir_remove(dir);
	return failures;
}

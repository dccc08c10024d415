/*
 * gcruntime against real binaries from every installed Debian Go toolchain: the per-release
 * offset tables must say what the DWARF of the exact build they name (release and experiments)
 * says, a build without DWARF (-ldflags=-w) must be read through the table, and in a stripped one
 * the GC's variables must be found in the code that uses them: at the very addresses of the symbol
 * table when the default build's table is stripped by objcopy (the layout stays), and somewhere for
 * the Go linker's own -s -w. The fixture is tests/unit/gosym_fixture.go: any Go program carries the
 * whole runtime.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "gcruntime.h"

static const char *const versions[] = {"1.19", "1.21", "1.22", "1.23",
				       "1.24", "1.25", "1.26", "1.27"};
enum { DEFAULT, NODWARF, STRIPPED, OBJCOPY_STRIPPED, VARIANTS };

static const char *const variants[VARIANTS] = {"default", "nodwarf", "stripped", "objcopy"};
static const char *const ldflags[VARIANTS] = {"", "-w", "-s -w", ""};

static char dir[64];

/* The fixture built by Go <version> with GOEXPERIMENT=<experiments>, once per run. */
static int build(const char *version, const char *experiments, int variant, char *out, size_t len)
{
	char cmd[1024];

	snprintf(out, len, "%s/gc-%s-%s-%s", dir, version, experiments, variants[variant]);
	if (access(out, X_OK) == 0)
		return 0;
	snprintf(cmd, sizeof(cmd),
		 "cd tests/unit && GOTOOLCHAIN=local GO111MODULE=off GOFLAGS= GOPROXY=off "
		 "GOEXPERIMENT='%s' GOCACHE=\"${HEAPSPY_GOCACHE:-$PWD/../../build/tests/gocache}\" "
		 "CGO_ENABLED=0 /usr/lib/go-%s/bin/go build -ldflags='%s' -o %s "
		 "gosym_fixture.go%s%s",
		 experiments, version, ldflags[variant], out,
		 variant == OBJCOPY_STRIPPED ? " && objcopy --strip-all " : "",
		 variant == OBJCOPY_STRIPPED ? out : "");
	return system(cmd) == 0 ? 0 : -EIO;
}

/* The words the default build's symbol table locates, for its stripped twin to match. */
static uint64_t symtab_words[GCW_COUNT];

/*
 * Resolves the fixture's GC records; release, when given, is the exact release the build must
 * report ("go1.25.12"), so that a table is only ever checked against the build it names.
 */
static void check_binary(const char *version, const char *experiments, const char *release,
			 int variant)
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
	if (release &&
	    (strncmp(t.go_version, release, strlen(release)) ||
	     (t.go_version[strlen(release)] >= '0' && t.go_version[strlen(release)] <= '9'))) {
		fprintf(stderr, "  the table is for %s, /usr/lib/go-%s builds %s\n", release,
			version, t.go_version);
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
	if (r.offsets != (variant == DEFAULT ? GC_OFFSETS_DWARF : GC_OFFSETS_TABLE))
		fprintf(stderr, "  %s %s: offsets from %d\n", t.go_version, variants[variant],
			r.offsets);
	CHECK(r.offsets == (variant == DEFAULT ? GC_OFFSETS_DWARF : GC_OFFSETS_TABLE));
	CHECK(r.from_code == (variant >= STRIPPED));
	if (variant == OBJCOPY_STRIPPED) {
		for (int i = 0; i < GCW_COUNT; i++) {
			if (r.words[i] != symtab_words[i])
				fprintf(stderr,
					"  %s: word %d at 0x%llx in the code, 0x%llx in the "
					"symbol table\n",
					t.go_version, i, (unsigned long long)r.words[i],
					(unsigned long long)symtab_words[i]);
			CHECK(r.words[i] == symtab_words[i]);
		}
	}
	for (int i = 0; i < GCW_COUNT; i++)
		CHECK(r.words[i] != 0);
	if (variant == DEFAULT)
		memcpy(symtab_words, r.words, sizeof(symtab_words));
	CHECK(r.cfg.g_m_offset == 48 && r.cfg.m_preemptoff_offset > 0);
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
		int minor;

		if (sscanf(b->release, "go1.%d", &minor) != 1) {
			CHECK(0);
			continue;
		}
		snprintf(version, sizeof(version), "1.%d", minor);
		for (int variant = DEFAULT; variant <= STRIPPED; variant++)
			check_binary(version, b->experiments, b->release, variant);
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
	char cmd[128];

	snprintf(dir, sizeof(dir), "/tmp/heapspy-gcruntime-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_build_shapes);
	RUN(test_tables_match_dwarf);
	RUN(test_stw_reasons);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return failures;
}

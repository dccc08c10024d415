/*
 * Tests elfbin and gosym against real Go binaries: tests/unit/gosym_fixture.go built by every
 * installed toolchain (tests/unit/build-gosym-fixtures.sh). Each fixture prints its own stacks as
 * runtime.Callers and runtime.CallersFrames see them; symbolizing the same PCs with gosym must give
 * exactly the same frames.
 *
 * Fixtures come from $GOSYM_FIXTURES or argv[1]; otherwise they are built into a temporary
 * directory, which needs the test to run from the repository root.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "elfbin.h"
#include "gorelease.h"
#include "gostack.h"
#include "gosym.h"
#include "pclntab.h"

#define MAX_FIXTURES 64
#define MAX_STACKS   16
#define MAX_PCS	     64
#define MAX_FRAMES   64

struct want_frame {
	char *function;
	char *file;
	uint32_t line;
};

struct stack {
	char *label;
	uint64_t pcs[MAX_PCS];
	int npcs;
	struct want_frame frames[MAX_FRAMES];
	int nframes;
};

/* What one run of a fixture printed. */
struct run {
	char version[64];
	uint64_t main_entry;
	struct stack stacks[MAX_STACKS];
	int nstacks;
};

static char fixture_dir[4096];
static char *fixtures[MAX_FIXTURES];
static int nfixtures;

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static char *fixture_path(const char *name)
{
	static char path[8192];
	snprintf(path, sizeof(path), "%s/%s", fixture_dir, name);
	return path;
}

static void parse_frame(struct stack *st, char *rest)
{
	char *file = strchr(rest, '\t');
	char *line = file ? strchr(file + 1, '\t') : NULL;
	if (!line || st->nframes == MAX_FRAMES)
		return;
	*file++ = '\0';
	*line++ = '\0';
	struct want_frame *w = &st->frames[st->nframes++];
	w->function = strdup(rest);
	w->file = strdup(file);
	w->line = (uint32_t)strtoul(line, NULL, 10);
}

static void parse_line(struct run *r, char *line)
{
	line[strcspn(line, "\n")] = '\0';
	struct stack *st = r->nstacks ? &r->stacks[r->nstacks - 1] : NULL;
	if (strncmp(line, "version ", 8) == 0)
		snprintf(r->version, sizeof(r->version), "%s", line + 8);
	else if (strncmp(line, "entry main.main ", 16) == 0)
		r->main_entry = strtoull(line + 16, NULL, 0);
	else if (strncmp(line, "stack ", 6) == 0 && r->nstacks < MAX_STACKS)
		r->stacks[r->nstacks++].label = strdup(line + 6);
	else if (strncmp(line, "pc ", 3) == 0 && st && st->npcs < MAX_PCS)
		st->pcs[st->npcs++] = strtoull(line + 3, NULL, 0);
	else if (strncmp(line, "frame ", 6) == 0 && st)
		parse_frame(st, line + 6);
}

static int run_fixture(const char *path, struct run *r)
{
	memset(r, 0, sizeof(*r));
	char cmd[8300];
	snprintf(cmd, sizeof(cmd), "'%s' 2>/dev/null", path);
	FILE *f = popen(cmd, "r");
	if (!f)
		return -errno;
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) > 0)
		parse_line(r, line);
	free(line);
	return pclose(f) == 0 && r->nstacks > 0 && r->main_entry ? 0 : -EIO;
}

static void free_run(struct run *r)
{
	for (int i = 0; i < r->nstacks; i++) {
		free(r->stacks[i].label);
		for (int j = 0; j < r->stacks[i].nframes; j++) {
			free(r->stacks[i].frames[j].function);
			free(r->stacks[i].frames[j].file);
		}
	}
}

struct opened {
	struct elfbin *eb;
	struct gosym *g;
};

static int open_both(const char *path, struct opened *o)
{
	char err[256];
	o->g = NULL;
	int rc = elfbin_open(path, &o->eb, err, sizeof(err));
	if (rc == 0 && (rc = gosym_open(o->eb, &o->g, err, sizeof(err))) != 0)
		elfbin_close(o->eb);
	if (rc != 0)
		fprintf(stderr, "  %s: %s\n", path, err);
	return rc;
}

static void close_both(struct opened *o)
{
	gosym_close(o->g);
	elfbin_close(o->eb);
}

static bool frame_eq(const struct hs_frame *a, const struct hs_frame *b)
{
	return strcmp(a->function, b->function) == 0 && strcmp(a->file, b->file) == 0 &&
	       a->line == b->line && a->func_entry == b->func_entry;
}

/*
 * Callers lists the physical return address of each frame followed by one "virtual" PC per
 * enclosing inlined call (entry + parentPc + 1). So a physical PC expanding to n frames is followed
 * by n-1 PCs that must expand to the tail of the same list, each one past the frame's pc.
 */
static int expand_stack(const struct gosym *g, const struct stack *st, uint64_t bias,
			struct hs_frame *out, int max)
{
	int nout = 0;
	for (int i = 0; i < st->npcs;) {
		struct hs_frame fr[MAX_FRAMES], tail[MAX_FRAMES];
		int n = gosym_lookup(g, st->pcs[i] - 1 - bias, fr, MAX_FRAMES);
		if (n == 0) {
			i++;
			continue;
		}
		CHECK(fr[0].pc + 1 + bias == st->pcs[i]);
		for (int k = 1; k < n && i + k < st->npcs; k++) {
			int m = gosym_lookup(g, st->pcs[i + k] - 1 - bias, tail, MAX_FRAMES);
			/* The PC the runtime kept for an enclosing call is where gosym found it. */
			CHECK(fr[k].pc + 1 + bias == st->pcs[i + k]);
			CHECK(m == n - k);
			for (int j = 0; j < m && j < n - k; j++)
				CHECK(frame_eq(&tail[j], &fr[k + j]));
		}
		for (int k = 0; k < n && nout < max; k++)
			out[nout++] = fr[k];
		i += n;
	}
	return nout;
}

static void compare_stack(const char *name, const struct stack *st, const struct hs_frame *got,
			  int n)
{
	bool same = n == st->nframes;
	for (int i = 0; same && i < n; i++) {
		const struct want_frame *w = &st->frames[i];
		same = strcmp(got[i].function, w->function) == 0 &&
		       strcmp(got[i].file, w->file) == 0 && got[i].line == w->line;
	}
	CHECK(same);
	if (same)
		return;
	fprintf(stderr, "  %s, stack %s:\n", name, st->label);
	for (int i = 0; i < n || i < st->nframes; i++) {
		const struct want_frame *w = i < st->nframes ? &st->frames[i] : NULL;
		fprintf(stderr, "    want %s %s:%u\n", w ? w->function : "-", w ? w->file : "-",
			w ? w->line : 0);
		fprintf(stderr, "    got  %s %s:%u\n", i < n ? got[i].function : "-",
			i < n ? got[i].file : "-", i < n ? got[i].line : 0);
	}
}

/*
 * Runs fixture name and opens it, with *bias where main.main ran less its link-time entry. 0, or
 * -1 with the failure reported and nothing left to free.
 */
static int run_and_open(const char *name, struct run *r, struct opened *o, uint64_t *bias)
{
	uint64_t entry = 0, end = 0;
	CHECK(run_fixture(fixture_path(name), r) == 0);
	if (open_both(fixture_path(name), o) != 0) {
		CHECK(!"open");
		free_run(r);
		return -1;
	}
	CHECK(gosym_func(o->g, "main.main", &entry, &end) == 0);
	CHECK(entry < end);
	*bias = r->main_entry - entry;
	/* Non-PIE binaries run at their link-time addresses. */
	CHECK(elfbin_is_pie(o->eb) || *bias == 0);
	return 0;
}

static void check_fixture_frames(const char *name)
{
	struct run r;
	struct opened o;
	uint64_t bias;
	if (run_and_open(name, &r, &o, &bias) != 0)
		return;
	for (int i = 0; i < r.nstacks; i++) {
		struct hs_frame got[MAX_FRAMES];
		int n = expand_stack(o.g, &r.stacks[i], bias, got, MAX_FRAMES);
		compare_stack(name, &r.stacks[i], got, n);
	}
	close_both(&o);
	free_run(&r);
}

/*
 * gostack_physical keeps one PC per physical frame of the runtime's logical stacks: each expands
 * to all its inlined frames, and together they are runtime.CallersFrames' frames again.
 */
static void check_physical(const char *name)
{
	struct run r;
	struct opened o;
	uint64_t bias;
	if (run_and_open(name, &r, &o, &bias) != 0)
		return;
	struct target t = {.sym = o.g, .bias = bias};
	bool folded = false;
	for (int i = 0; i < r.nstacks; i++) {
		const struct stack *st = &r.stacks[i];
		uint64_t pcs[MAX_PCS];
		memcpy(pcs, st->pcs, sizeof(pcs));
		uint32_t n = gostack_physical(&t, pcs, (uint32_t)st->npcs);
		folded |= n < (uint32_t)st->npcs;
		struct hs_frame got[MAX_FRAMES];
		int nout = 0;
		for (uint32_t k = 0; k < n && nout < MAX_FRAMES; k++)
			nout +=
			    gosym_lookup(o.g, pcs[k] - 1 - t.bias, got + nout, MAX_FRAMES - nout);
		compare_stack(name, st, got, nout);
	}
	CHECK(folded);
	close_both(&o);
	free_run(&r);
}

static void test_physical_stacks(void)
{
	for (int i = 0; i < nfixtures; i++)
		check_physical(fixtures[i]);
}

static void test_frames_match_runtime(void)
{
	CHECK(nfixtures > 0);
	for (int i = 0; i < nfixtures; i++)
		check_fixture_frames(fixtures[i]);
}

/* The stacks include inlined frames, so the inline tree was found and used. */
static void test_inline_expansion(void)
{
	for (int i = 0; i < nfixtures; i++) {
		struct opened o;
		if (open_both(fixture_path(fixtures[i]), &o) != 0) {
			CHECK(!"open");
			continue;
		}
		uint64_t entry, end;
		CHECK(gosym_func(o.g, "main.physicalOuter", &entry, &end) == 0);
		int best = 0;
		for (uint64_t pc = entry; pc < end; pc++) {
			struct hs_frame fr[MAX_FRAMES];
			int n = gosym_lookup(o.g, pc, fr, MAX_FRAMES);
			CHECK(n >= 1 && strcmp(fr[n - 1].function, "main.physicalOuter") == 0);
			CHECK(n >= 1 && fr[n - 1].func_entry == entry);
			if (n > best)
				best = n;
		}
		if (best < 3)
			fprintf(stderr, "  %s: no inlined frames\n", fixtures[i]);
		CHECK(best >= 3);
		/* Truncation keeps the innermost frames. */
		struct hs_frame one;
		CHECK(gosym_lookup(o.g, entry, &one, 1) == 1);
		CHECK(gosym_lookup(o.g, entry, &one, 0) == 0);
		close_both(&o);
	}
}

static void test_func_lookup(void)
{
	for (int i = 0; i < nfixtures; i++) {
		struct opened o;
		if (open_both(fixture_path(fixtures[i]), &o) != 0) {
			CHECK(!"open");
			continue;
		}
		const char *names[] = {"main.main", "runtime.mProf_Malloc", "main.(*box).method",
				       "runtime.goexit"};
		for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
			uint64_t entry = 0, end = 0;
			CHECK(gosym_func(o.g, names[k], &entry, &end) == 0);
			CHECK(entry < end);
			struct hs_frame fr[MAX_FRAMES];
			int n = gosym_lookup(o.g, entry, fr, MAX_FRAMES);
			CHECK(n >= 1 && strcmp(fr[n - 1].function, names[k]) == 0);
			CHECK(gosym_lookup(o.g, end - 1, fr, MAX_FRAMES) >= 1);
			CHECK(fr[0].func_entry == entry);
		}
		CHECK(gosym_func(o.g, "main.noSuchFunction", NULL, NULL) == -ENOENT);
		CHECK(gosym_func(o.g, "", NULL, NULL) == -ENOENT);
		struct hs_frame fr;
		CHECK(gosym_lookup(o.g, 0, &fr, 1) == 0);
		CHECK(gosym_lookup(o.g, UINT64_MAX, &fr, 1) == 0);
		uint32_t want = strstr(fixtures[i], "-1.19-") ? 0xfffffff0 : 0xfffffff1;
		CHECK(gosym_magic(o.g) == want);
		close_both(&o);
	}
}

static void check_symbols(const char *name, struct elfbin *eb)
{
	bool stripped = strstr(name, "stripped") != NULL;
	CHECK(elfbin_has_symtab(eb) == !stripped);
	uint64_t vaddr = 0, size = 0;
	int rc = elfbin_symbol(eb, "runtime.MemProfileRate", &vaddr, &size);
	if (stripped) {
		CHECK(rc == -ENOENT);
		return;
	}
	CHECK(rc == 0 && size == 8);
	/* Go 1.19 initialises MemProfileRate at run time, so it lives in .bss there. */
	bool in_bss = strstr(name, "-1.19-") != NULL;
	int64_t rate = 0;
	uint64_t off;
	CHECK(elfbin_read_vaddr(eb, vaddr, &rate, sizeof(rate)) == (in_bss ? -ENOENT : 0));
	CHECK(rate == (in_bss ? 0 : 512 * 1024));
	CHECK(elfbin_vaddr_to_offset(eb, vaddr, &off) == (in_bss ? -ENOENT : 0));
	/* Zero-initialised variables have no bytes in the file. */
	CHECK(elfbin_symbol(eb, "runtime.mbuckets", &vaddr, NULL) == 0);
	CHECK(elfbin_read_vaddr(eb, vaddr, &rate, sizeof(rate)) == -ENOENT);
	CHECK(elfbin_vaddr_to_offset(eb, vaddr, &off) == -ENOENT);
}

static void check_text_offset(struct elfbin *eb)
{
	uint64_t text, off;
	size_t size;
	const uint8_t *p = elfbin_section(eb, ".text", &text, &size);
	CHECK(p != NULL && size > 0);
	CHECK(elfbin_vaddr_to_offset(eb, text + 16, &off) == 0);
	size_t avail;
	uint32_t flags;
	const uint8_t *q = elfbin_vaddr_ptr(eb, text + 16, &avail, &flags);
	CHECK(q == p + 16 && avail >= size - 16);
	CHECK(elfbin_section(eb, ".bss", NULL, NULL) == NULL);
	CHECK(elfbin_section(eb, ".no-such-section", NULL, NULL) == NULL);
}

/* 23 for "go1.23.5". */
static int go_minor(const char *version)
{
	return strncmp(version, "go1.", 4) == 0 ? atoi(version + 4) : 0;
}

static void test_elf(void)
{
	for (int i = 0; i < nfixtures; i++) {
		char err[256];
		struct elfbin *eb;
		struct run r;
		if (elfbin_open(fixture_path(fixtures[i]), &eb, err, sizeof(err)) != 0 ||
		    run_fixture(fixture_path(fixtures[i]), &r) != 0) {
			CHECK(!"open or run");
			continue;
		}
		bool pie = strstr(fixtures[i], "pie") != NULL;
		bool extld = strstr(fixtures[i], "extld") != NULL;
		CHECK(elfbin_is_pie(eb) == pie);
		CHECK(elfbin_base_vaddr(eb) == (extld ? 0 : 0x400000));
		check_symbols(fixtures[i], eb);
		check_text_offset(eb);

		char version[64], small[4];
		const char *source;
		size_t vl;
		const char *v = elfbin_go_version(eb, &vl);
		CHECK(v && vl == strlen(r.version) && memcmp(v, r.version, vl) == 0);
		CHECK(gorelease_version(eb, NULL, version, sizeof(version), &source) == 0);
		CHECK(strcmp(version, r.version) == 0 && strcmp(source, "build info") == 0);
		CHECK(gorelease_version(eb, NULL, small, sizeof(small), &source) == -ENOSPC);
		CHECK(small[0] == '\0');

		/*
		 * The system linker adds a GNU build ID (hex), and so does Go's own linker from
		 * Go 1.24 on; before, it wrote only its Go build ID.
		 */
		char id[256];
		elfbin_build_id(eb, id, sizeof(id));
		CHECK(id[0] != '\0');
		CHECK(extld || go_minor(r.version) >= 24
			  ? strspn(id, "0123456789abcdef") == strlen(id)
			  : strchr(id, '/') != NULL);
		elfbin_build_id(eb, small, sizeof(small));
		CHECK(strlen(small) < sizeof(small));
		free_run(&r);
		elfbin_close(eb);
	}
}

static void test_release_parse(void)
{
	static const struct {
		const char *version;
		int minor, patch;
		const char *experiments;
	} cases[] = {
	    {"go1.23.5", 23, 5, ""},
	    {"go1.19", 19, 0, ""},
	    {"go1.22.0", 22, 0, ""},
	    {"go1.25.12 X:greenteagc", 25, 12, "greenteagc"},
	    {"go1.26.11-X:nogreenteagc,jsonv2", 26, 11, "nogreenteagc,jsonv2"},
	    {"go1.21rc2", 21, -1, ""},
	    {"go1.23.x", 23, -1, ""},
	    {"go1.23.5junk", 23, -1, ""},
	    {"go1.99.4", 99, 4, ""},
	    {"devel go1.27-0123abcd X:jsonv2", 0, -1, "jsonv2"},
	    {"go2.0", 0, -1, ""},
	    {"go1.", 0, -1, ""},
	    {"", 0, -1, ""},
	    {"X:greenteagc", 0, -1, ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *v = cases[i].version;
		bool ok = gorelease_minor(v) == cases[i].minor &&
			  gorelease_patch(v) == cases[i].patch &&
			  strcmp(gorelease_experiments(v), cases[i].experiments) == 0;
		CHECK(ok);
		if (!ok)
			fprintf(stderr, "  %s: minor %d patch %d experiments \"%s\"\n", v,
				gorelease_minor(v), gorelease_patch(v), gorelease_experiments(v));
	}
}

/*
 * gorelease reads from path the release the fixture name printed (r), from want_source, and the
 * GOEXPERIMENT setting the fixture's name gives.
 */
static void check_release(const char *name, const char *path, const struct run *r,
			  const char *want_source)
{
	struct opened o;
	if (open_both(path, &o) != 0) {
		CHECK(!"open");
		return;
	}
	char version[128], exp[64];
	const char *source = "";
	int rc = gorelease_version(o.eb, o.g, version, sizeof(version), &source);
	bool ok = rc == 0 && strcmp(version, r->version) == 0 && strcmp(source, want_source) == 0;
	CHECK(ok);
	if (!ok)
		fprintf(stderr, "  %s: rc %d, \"%s\" from %s; want \"%s\" from %s\n", path, rc,
			rc ? "" : version, source, r->version, want_source);
	/* The experiments are those the fixture's name gives, in the version and the setting. */
	const char *x = strstr(name, "-x-");
	CHECK(strcmp(gorelease_experiments(r->version), x ? x + 3 : "") == 0);
	rc = gorelease_goexperiment(o.eb, o.g, exp, sizeof(exp));
	CHECK(x ? rc == 0 && strcmp(exp, x + 3) == 0 : rc == -ENOENT);
	close_both(&o);
}

/*
 * Every fixture as built, then without .go.buildinfo (some projects strip it): the release then
 * comes from runtime.buildVersion, by its symbol or, stripped, through runtime.schedinit's code.
 */
static void test_release(void)
{
	char copy[] = "/tmp/heapspy-nobuildinfo-XXXXXX";
	int fd = mkstemp(copy);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	close(fd);
	for (int i = 0; i < nfixtures; i++) {
		struct run r;
		if (run_fixture(fixture_path(fixtures[i]), &r) != 0) {
			CHECK(!"run");
			continue;
		}
		check_release(fixtures[i], fixture_path(fixtures[i]), &r, "build info");
		char cmd[8400];
		snprintf(cmd, sizeof(cmd), "objcopy --remove-section .go.buildinfo '%s' '%s'",
			 fixture_path(fixtures[i]), copy);
		CHECK(system(cmd) == 0);
		struct elfbin *eb;
		size_t vl;
		CHECK(elfbin_open(copy, &eb, NULL, 0) == 0);
		CHECK(elfbin_go_version(eb, &vl) == NULL);
		elfbin_close(eb);
		bool stripped = strstr(fixtures[i], "stripped") != NULL;
		check_release(fixtures[i], copy, &r,
			      stripped ? "runtime.schedinit" : "runtime.buildVersion");
		free_run(&r);
	}
	unlink(copy);
}

/*
 * Go 1.26+ without its moduledata (here its section removed): the text start is guessed from
 * runtime.text or .text and kept only when confirmed, so functions are where the intact binary
 * has them, or gosym_open fails; the one guess that must fail is the system linker's stripped
 * binary, whose .text starts with C code.
 */
static void test_text_start_fallback(void)
{
	char copy[] = "/tmp/heapspy-nomoduledata-XXXXXX";
	int fd = mkstemp(copy);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	close(fd);
	int tried = 0;
	for (int i = 0; i < nfixtures; i++) {
		const char *name = fixtures[i];
		if (!strstr(name, "-1.26-") && !strstr(name, "-1.27-"))
			continue;
		char cmd[8400];
		snprintf(cmd, sizeof(cmd), "objcopy --remove-section .go.module '%s' '%s'",
			 fixture_path(name), copy);
		CHECK(system(cmd) == 0);
		struct opened whole, cut;
		if (open_both(fixture_path(name), &whole) != 0) {
			CHECK(!"open");
			continue;
		}
		struct elfbin *eb;
		struct gosym *g = NULL;
		char err[256];
		CHECK(elfbin_open(copy, &eb, err, sizeof(err)) == 0);
		int rc = gosym_open(eb, &g, err, sizeof(err));
		cut = (struct opened){eb, g};
		uint64_t want = 0, got = 0;
		CHECK(gosym_func(whole.g, "main.main", &want, NULL) == 0);
		bool must_fail = strstr(name, "extld-stripped") != NULL;
		CHECK(must_fail
			  ? rc == -ENOENT && strstr(err, "where Go's code starts")
			  : rc == 0 && gosym_func(g, "main.main", &got, NULL) == 0 && got == want);
		tried++;
		if (rc == 0)
			close_both(&cut);
		else
			elfbin_close(eb);
		close_both(&whole);
	}
	CHECK(tried > 0);
	unlink(copy);
}

/* runtime.funcNameForPrint: addr2line prints linker names, gosym the runtime's. */
static void name_for_print(char *name)
{
	char *open = strchr(name, '['), *close = strrchr(name, ']');
	if (!open || !close || close < open)
		return;
	memmove(open + 5, close + 1, strlen(close + 1) + 1);
	memcpy(open, "[...]", 5);
}

/* Cross-checks every few bytes of text against Go's own debug/gosym via `go tool addr2line`. */
static void check_addr2line(const char *name, const char *tool)
{
	struct opened o;
	if (open_both(fixture_path(name), &o) != 0) {
		CHECK(!"open");
		return;
	}
	uint64_t lo = 0;
	size_t size = 0;
	CHECK(elfbin_section(o.eb, ".text", &lo, &size) != NULL);
	uint64_t hi = lo + size;
	char pcs_path[] = "/tmp/heapspy-pcs-XXXXXX";
	int fd = mkstemp(pcs_path);
	FILE *pcs = fd >= 0 ? fdopen(fd, "w") : NULL;
	CHECK(pcs != NULL);
	if (!pcs) {
		close_both(&o);
		return;
	}
	int npcs = 0;
	for (uint64_t pc = lo; pc < hi; pc += 61, npcs++)
		fprintf(pcs, "%#" PRIx64 "\n", pc);
	fclose(pcs);
	char cmd[16384];
	snprintf(cmd, sizeof(cmd), "'%s' '%s' < '%s'", tool, fixture_path(name), pcs_path);
	FILE *out = popen(cmd, "r");
	char fn[4096], fl[4096];
	int matched = 0;
	for (uint64_t pc = lo;
	     out && pc < hi && fgets(fn, sizeof(fn), out) && fgets(fl, sizeof(fl), out); pc += 61) {
		fn[strcspn(fn, "\n")] = fl[strcspn(fl, "\n")] = '\0';
		name_for_print(fn);
		struct hs_frame fr[MAX_FRAMES];
		int n = gosym_lookup(o.g, pc, fr, MAX_FRAMES);
		/*
		 * debug/gosym says ":-1" where the pc tables have no entry (padding), gosym ":0";
		 * the linker's marker functions (go:textfipsstart) have negative lines, which
		 * gosym also reports as no line.
		 */
		const char *colon = strrchr(fl, ':');
		if (colon && colon[1] == '-')
			strcpy((char *)colon, ":-1");
		char mine[4200];
		if (n && fr[0].line == 0)
			snprintf(mine, sizeof(mine), "%s:-1", fr[0].file);
		else
			snprintf(mine, sizeof(mine), "%s:%u", n ? fr[0].file : "?",
				 n ? fr[0].line : 0);
		const char *func = n ? fr[n - 1].function : "?";
		if (strcmp(fn, func) == 0 && strcmp(fl, mine) == 0)
			matched++;
		else
			fprintf(stderr, "  %s %#" PRIx64 ": addr2line %s %s, gosym %s %s\n", name,
				pc, fn, fl, n ? fr[n - 1].function : "-", mine);
	}
	CHECK(out && pclose(out) == 0);
	CHECK(npcs > 1000 && matched == npcs);
	unlink(pcs_path);
	close_both(&o);
}

static void test_addr2line(void)
{
	/* The newest Debian Go that ships addr2line; its debug/gosym reads every layout. */
	const char *tool = "/usr/lib/go-1.24/pkg/tool/linux_amd64/addr2line";
	if (access(tool, X_OK) != 0) {
		fprintf(stderr, "  %s missing, skipped\n", tool);
		return;
	}
	for (int i = 0; i < nfixtures; i++) {
		if (has_suffix(fixtures[i], "-default"))
			check_addr2line(fixtures[i], tool);
	}
}

static void *read_file(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	rewind(f);
	void *buf = n > 0 ? malloc((size_t)n) : NULL;
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*size = buf ? (size_t)n : 0;
	return buf;
}

/* Calls everything on an ELF image; only crashes or sanitizer reports can fail. */
static void exercise_elf(const void *data, size_t size)
{
	struct elfbin *eb;
	if (elfbin_open_mem(data, size, &eb, NULL, 0) != 0)
		return;
	char buf[128];
	uint64_t v, s;
	elfbin_build_id(eb, buf, sizeof(buf));
	const char *source;
	gorelease_version(eb, NULL, buf, sizeof(buf), &source);
	elfbin_symbol(eb, "runtime.MemProfileRate", &v, &s);
	elfbin_section(eb, ".gopclntab", &v, NULL);
	elfbin_vaddr_to_offset(eb, 0x401000, &v);
	elfbin_read_vaddr(eb, 0x401000, buf, sizeof(buf));
	struct gosym *g;
	if (gosym_open(eb, &g, buf, sizeof(buf)) == 0) {
		struct hs_frame fr[8];
		uint64_t entry = 0, end = 0;
		gosym_func(g, "main.main", &entry, &end);
		for (uint64_t pc = entry; pc < end && pc < entry + 4096; pc++)
			gosym_lookup(g, pc, fr, 8);
		gosym_close(g);
	}
	elfbin_close(eb);
}

static void test_truncated_elf(void)
{
	size_t size;
	void *file = read_file(fixture_path(fixtures[0]), &size);
	CHECK(file != NULL);
	struct elfbin *eb;
	char err[128];
	CHECK(elfbin_open_mem(file, 0, &eb, err, sizeof(err)) == -EINVAL);
	CHECK(elfbin_open_mem(file, 63, &eb, err, sizeof(err)) == -EINVAL);
	CHECK(elfbin_open("/nonexistent/heapspy", &eb, err, sizeof(err)) == -ENOENT);
	CHECK(elfbin_open("/dev/null", &eb, err, sizeof(err)) == -EINVAL);
	for (int k = 1; file && k <= 64; k++) {
		/* A private copy of exactly the truncated length lets ASan catch any overread. */
		size_t len = k < 64 ? size / 64 * k + (size_t)k * 7 % 4096 : size - 1;
		void *copy = malloc(len);
		memcpy(copy, file, len);
		exercise_elf(copy, len);
		free(copy);
	}
	free(file);
}

static uint32_t lcg(uint32_t *state)
{
	*state = *state * 1664525u + 1013904223u;
	return *state >> 8;
}

/* Lookups over a corrupted table; they may return anything but must stay in bounds. */
static void exercise_pclntab(const uint8_t *tab, size_t size, uint64_t text, uint64_t end)
{
	struct gosym *g;
	if (gosym_open_pclntab(tab, size, 0, &g, NULL, 0) != 0)
		return;
	/* The table doubles as go:func.* so that corrupt inline-tree offsets are followed too. */
	gosym_set_funcdata(g, tab, size);
	struct hs_frame fr[8];
	for (uint64_t pc = text; pc < end; pc += 97)
		gosym_lookup(g, pc, fr, 8);
	gosym_func(g, "main.main", NULL, NULL);
	gosym_close(g);
}

static void test_corrupt_pclntab(void)
{
	struct opened o;
	if (open_both(fixture_path(fixtures[0]), &o) != 0) {
		CHECK(!"open");
		return;
	}
	size_t size;
	const uint8_t *tab = elfbin_section(o.eb, ".gopclntab", NULL, &size);
	if (!tab)
		tab = elfbin_section(o.eb, ".data.rel.ro.gopclntab", NULL, &size);
	CHECK(tab != NULL);
	uint64_t text, end;
	CHECK(gosym_func(o.g, "main.main", &text, &end) == 0);
	text -= 0x8000;
	uint8_t *copy = malloc(size);
	struct gosym *g;
	char err[128];
	for (size_t i = 0; tab && i < 8; i++) {
		memcpy(copy, tab, size);
		copy[i] ^= 0x40;
		CHECK(gosym_open_pclntab(copy, size, 0, &g, err, sizeof(err)) == -EINVAL);
	}
	CHECK(!tab || gosym_open_pclntab(tab, 71, 0, &g, err, sizeof(err)) == -EINVAL);
	/* Header words, then random bytes anywhere, then truncations. */
	for (size_t i = 8; tab && i < 72; i++) {
		memcpy(copy, tab, size);
		copy[i] ^= 0xa5;
		exercise_pclntab(copy, size, text, end);
	}
	uint32_t seed = 1;
	for (int round = 0; tab && round < 200; round++) {
		memcpy(copy, tab, size);
		for (int k = 0; k < 16; k++)
			copy[lcg(&seed) % size] ^= (uint8_t)(1 + lcg(&seed) % 255);
		exercise_pclntab(copy, size, text, end);
	}
	for (int k = 1; tab && k < 32; k++) {
		size_t len = size / 32 * k;
		uint8_t *cut = malloc(len);
		memcpy(cut, tab, len);
		exercise_pclntab(cut, len, text, end);
		free(cut);
	}
	free(copy);
	close_both(&o);
}

static const char *const main_f[] = {"main.f"};

static void test_synthetic_pclntab(void)
{
	uint8_t t[PCLNTAB_MAX];
	size_t size = synthetic_pclntab(t, main_f, 1);
	struct gosym *g;
	char err[128];
	CHECK(gosym_open_pclntab(t, size, 0, &g, err, sizeof(err)) == 0);
	if (!g)
		return;
	struct hs_frame fr[4];
	CHECK(gosym_lookup(g, 0x1000, fr, 4) == 1);
	CHECK(strcmp(fr[0].function, "main.f") == 0 && strcmp(fr[0].file, "/src/f.go") == 0);
	CHECK(fr[0].line == 10 && fr[0].func_entry == 0x1000);
	CHECK(gosym_lookup(g, 0x100f, fr, 4) == 1 && fr[0].line == 12);
	CHECK(gosym_lookup(g, 0xfff, fr, 4) == 0);
	CHECK(gosym_lookup(g, 0x1010, fr, 4) == 0);
	uint64_t entry, end;
	CHECK(gosym_func(g, "main.f", &entry, &end) == 0 && entry == 0x1000 && end == 0x1010);
	gosym_close(g);

	/* A functab that does not fit in what is left of the table. */
	uint64_t pcln = size - 2;
	memcpy(t + 8 + 8 * 7, &pcln, 8);
	CHECK(gosym_open_pclntab(t, size, 0, &g, err, sizeof(err)) == -EINVAL);
	synthetic_pclntab(t, main_f, 1);
	uint64_t nfunc = 3;
	memcpy(t + 8, &nfunc, 8);
	CHECK(gosym_open_pclntab(t, size, 0, &g, err, sizeof(err)) == -EINVAL);
}

static int build_fixtures(void)
{
	snprintf(fixture_dir, sizeof(fixture_dir), "/tmp/heapspy-gosym-XXXXXX");
	if (!mkdtemp(fixture_dir))
		return -errno;
	char cmd[8300];
	snprintf(cmd, sizeof(cmd), "tests/unit/build-gosym-fixtures.sh '%s'", fixture_dir);
	fprintf(stderr, "building fixtures: %s\n", cmd);
	return system(cmd) == 0 ? 0 : -EIO;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_fixtures(void)
{
	DIR *d = opendir(fixture_dir);
	if (!d)
		return -errno;
	struct dirent *e;
	while ((e = readdir(d)) && nfixtures < MAX_FIXTURES) {
		if (strncmp(e->d_name, "gosym-", 6) == 0)
			fixtures[nfixtures++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(fixtures, (size_t)nfixtures, sizeof(fixtures[0]), cmp_str);
	return nfixtures ? 0 : -ENOENT;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : getenv("GOSYM_FIXTURES");
	bool temp = !dir || !*dir;
	int rc =
	    temp ? build_fixtures() : (snprintf(fixture_dir, sizeof(fixture_dir), "%s", dir), 0);
	if (rc == 0)
		rc = list_fixtures();
	if (rc != 0) {
		fprintf(stderr, "no gosym fixtures in %s: %s\n", fixture_dir, strerror(-rc));
		return 1;
	}
	int failures = 0;
	RUN(test_synthetic_pclntab);
	RUN(test_frames_match_runtime);
	RUN(test_physical_stacks);
	RUN(test_inline_expansion);
	RUN(test_func_lookup);
	RUN(test_elf);
	RUN(test_release_parse);
	RUN(test_release);
	RUN(test_text_start_fallback);
	RUN(test_addr2line);
	RUN(test_truncated_elf);
	RUN(test_corrupt_pclntab);
	for (int i = 0; i < nfixtures; i++)
		free(fixtures[i]);
	if (temp) {
		char cmd[8300];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fixture_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", fixture_dir);
	}
	return failures;
}

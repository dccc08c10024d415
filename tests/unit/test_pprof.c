/*
 * pprof: profiles are encoded, then read back with the generated protobuf-c decoder and, when a Go
 * toolchain is present, with go tool pprof itself, since that is the reader that matters.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "pprof.h"
#include "profile_decode.h"

#define GO "/usr/lib/go-1.23/bin/go"

static pb_profile *read_profile(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	uint8_t buf[1 << 16];
	size_t len = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	return decode(buf, len);
}

/* Out-of-range indices give a marker, so checks fail instead of crashing. */
static const char *str(const pb_profile *pb, int64_t idx)
{
	return idx >= 0 && (size_t)idx < pb->n_string_table ? pb->string_table[idx] : "<bad index>";
}

static bool str_is(const pb_profile *pb, int64_t idx, const char *want)
{
	return idx >= 0 && (size_t)idx < pb->n_string_table &&
	       strcmp(pb->string_table[idx], want) == 0;
}

static const Perftools__Profiles__Function *func(const pb_profile *pb, uint64_t id)
{
	return id && id <= pb->n_function ? pb->function[id - 1] : NULL;
}

static const char *func_name(const pb_profile *pb, uint64_t id)
{
	const Perftools__Profiles__Function *f = func(pb, id);
	return f ? str(pb, f->name) : "<bad function id>";
}

static mode_t test_umask(void)
{
	mode_t m = umask(0);
	umask(m);
	return m;
}

/* Ids handed out while building the example, to compare with what the encoded profile says. */
struct example {
	uint64_t main_map, lib_map;
	uint64_t put_handle, main_main, handle, malloc, lib;
};

enum { ALLOC_OBJECTS, ALLOC_SPACE, INUSE_OBJECTS, INUSE_SPACE, NTYPES };

/* A heap profile shaped like Go's own: an inlined call, shared callers, labels, an unknown PC. */
static struct pprof *example(struct example *ex)
{
	struct pprof *p = pprof_new();
	if (!p)
		return NULL;
	pprof_sample_type(p, "alloc_objects", "count");
	pprof_sample_type(p, "alloc_space", "bytes");
	pprof_sample_type(p, "inuse_objects", "count");
	pprof_sample_type(p, "inuse_space", "bytes");
	pprof_period(p, "space", "bytes", 524288);
	pprof_default_sample_type(p, "alloc_space");
	pprof_time(p, 1700000000123456789, 5000000000);
	pprof_comment(p, "heapspy");
	pprof_comment(p, "pid %d rate %d", 1234, 524288);

	ex->main_map = pprof_mapping(p, 0x400000, 0x800000, 0, "/usr/bin/demo", "abcdef0123");
	/* A path that exists nowhere, so go tool pprof cannot symbolize it from this machine. */
	ex->lib_map = pprof_mapping(p, 0x7f0000000000, 0x7f0000100000, 0x1000,
				    "/nonexistent/libfake.so", NULL);

	const struct hs_frame inlined[] = {
	    {"main.(*cache).put", "/src/cache.go", 42, 0x401000, 0, NULL, 0},
	    {"main.handle", "/src/main.go", 17, 0x401000, 0, NULL, 0},
	};
	const struct hs_frame main_main = {"main.main", "/src/main.go", 30, 0x402000, 0, NULL, 0};
	const struct hs_frame handle = {"main.handle", "/src/main.go", 25, 0x401000, 0, NULL, 0};
	const struct hs_frame mallocgc = {
	    "runtime.mallocgc", "/go/src/runtime/malloc.go", 1000, 0x404000, 0, NULL, 0};
	ex->put_handle = pprof_location(p, ex->main_map, 0x401010, inlined, 2);
	ex->main_main = pprof_location(p, ex->main_map, 0x402020, &main_main, 1);
	ex->handle = pprof_location(p, ex->main_map, 0x401080, &handle, 1);
	ex->malloc = pprof_location(p, ex->main_map, 0x404040, &mallocgc, 1);
	ex->lib = pprof_location(p, ex->lib_map, 0x7f0000001234, NULL, 0);

	const struct pprof_label size8k = {"bytes", NULL, 8192, "bytes"};
	const struct pprof_label labels[] = {
	    {"bytes", NULL, 4096, "bytes"},
	    {"kind", "large", 0, NULL},
	};
	const uint64_t s1[] = {ex->malloc, ex->put_handle, ex->main_main};
	const uint64_t s2[] = {ex->malloc, ex->handle, ex->main_main};
	const uint64_t s3[] = {ex->lib, ex->main_main};
	pprof_sample(p, s1, 3, (const int64_t[]){1, 8192, 1, 8192}, &size8k, 1);
	pprof_sample(p, s2, 3, (const int64_t[]){4, 16384, 0, 0}, labels, 2);
	pprof_sample(p, s3, 2, (const int64_t[]){2, 64, 2, 64}, NULL, 0);
	return p;
}

static void check_mapping(const Perftools__Profiles__Mapping *m, bool symbolized)
{
	CHECK(m->has_functions == symbolized);
	CHECK(m->has_filenames == symbolized);
	CHECK(m->has_line_numbers == symbolized);
	CHECK(m->has_inline_frames == symbolized);
}

static void check_line(const pb_profile *pb, const Perftools__Profiles__Line *l, const char *fn,
		       int64_t line)
{
	CHECK(strcmp(func_name(pb, l->function_id), fn) == 0);
	CHECK(l->line == line);
	CHECK(l->column == 0);
}

static void check_sample(const Perftools__Profiles__Sample *s, const uint64_t *locs, size_t nlocs,
			 const int64_t *values)
{
	CHECK(s->n_location_id == nlocs);
	for (size_t i = 0; i < nlocs && i < s->n_location_id; i++)
		CHECK(s->location_id[i] == locs[i]);
	CHECK(s->n_value == NTYPES);
	for (size_t i = 0; i < NTYPES && i < s->n_value; i++)
		CHECK(s->value[i] == values[i]);
}

static void check_example(const pb_profile *pb, const struct example *ex)
{
	CHECK(pb->n_string_table > 0 && strcmp(pb->string_table[0], "") == 0);
	for (size_t i = 0; i < pb->n_string_table; i++)
		for (size_t j = i + 1; j < pb->n_string_table; j++)
			CHECK(strcmp(pb->string_table[i], pb->string_table[j]) != 0);

	static const char *const types[][2] = {
	    {"alloc_objects", "count"},
	    {"alloc_space", "bytes"},
	    {"inuse_objects", "count"},
	    {"inuse_space", "bytes"},
	};
	CHECK(pb->n_sample_type == NTYPES);
	for (size_t i = 0; i < NTYPES && i < pb->n_sample_type; i++) {
		CHECK(str_is(pb, pb->sample_type[i]->type, types[i][0]));
		CHECK(str_is(pb, pb->sample_type[i]->unit, types[i][1]));
	}
	CHECK(pb->period_type && str_is(pb, pb->period_type->type, "space") &&
	      str_is(pb, pb->period_type->unit, "bytes"));
	CHECK(pb->period == 524288);
	CHECK(str_is(pb, pb->default_sample_type, "alloc_space"));
	CHECK(pb->time_nanos == 1700000000123456789);
	CHECK(pb->duration_nanos == 5000000000);
	CHECK(pb->drop_frames == 0 && pb->keep_frames == 0);
	CHECK(pb->n_comment == 2);
	if (pb->n_comment == 2) {
		CHECK(str_is(pb, pb->comment[0], "heapspy"));
		CHECK(str_is(pb, pb->comment[1], "pid 1234 rate 524288"));
	}

	CHECK(ex->main_map == 1 && ex->lib_map == 2);
	CHECK(pb->n_mapping == 2);
	for (size_t i = 0; i < pb->n_mapping; i++)
		CHECK(pb->mapping[i]->id == i + 1);
	if (pb->n_mapping == 2) {
		const Perftools__Profiles__Mapping *m = pb->mapping[0];
		CHECK(m->memory_start == 0x400000 && m->memory_limit == 0x800000);
		CHECK(m->file_offset == 0);
		CHECK(str_is(pb, m->filename, "/usr/bin/demo"));
		CHECK(str_is(pb, m->build_id, "abcdef0123"));
		check_mapping(m, true);
		m = pb->mapping[1];
		CHECK(m->memory_start == 0x7f0000000000 && m->memory_limit == 0x7f0000100000);
		CHECK(m->file_offset == 0x1000);
		CHECK(str_is(pb, m->filename, "/nonexistent/libfake.so"));
		CHECK(m->build_id == 0);
		/* Its one location is unsymbolized. */
		check_mapping(m, false);
	}

	/* main.handle appears in two locations but is one function. */
	CHECK(pb->n_function == 4);
	for (size_t i = 0; i < pb->n_function; i++) {
		const Perftools__Profiles__Function *f = pb->function[i];
		CHECK(f->id == i + 1);
		CHECK(f->system_name == f->name);
		CHECK(f->start_line == 0);
	}
	if (pb->n_function == 4) {
		CHECK(str_is(pb, pb->function[0]->name, "main.(*cache).put"));
		CHECK(str_is(pb, pb->function[0]->filename, "/src/cache.go"));
		CHECK(str_is(pb, pb->function[1]->name, "main.handle"));
		CHECK(str_is(pb, pb->function[1]->filename, "/src/main.go"));
		CHECK(str_is(pb, pb->function[2]->name, "main.main"));
		CHECK(str_is(pb, pb->function[2]->filename, "/src/main.go"));
		CHECK(str_is(pb, pb->function[3]->name, "runtime.mallocgc"));
		CHECK(str_is(pb, pb->function[3]->filename, "/go/src/runtime/malloc.go"));
	}

	CHECK(ex->put_handle == 1 && ex->main_main == 2 && ex->handle == 3 && ex->malloc == 4 &&
	      ex->lib == 5);
	CHECK(pb->n_location == 5);
	for (size_t i = 0; i < pb->n_location; i++) {
		CHECK(pb->location[i]->id == i + 1);
		CHECK(!pb->location[i]->is_folded);
	}
	if (pb->n_location == 5) {
		const Perftools__Profiles__Location *l = pb->location[0];
		CHECK(l->mapping_id == 1 && l->address == 0x401010);
		CHECK(l->n_line == 2);
		if (l->n_line == 2) {
			check_line(pb, l->line[0], "main.(*cache).put", 42);
			check_line(pb, l->line[1], "main.handle", 17);
		}
		l = pb->location[2];
		CHECK(l->mapping_id == 1 && l->address == 0x401080);
		CHECK(l->n_line == 1);
		if (l->n_line == 1) {
			check_line(pb, l->line[0], "main.handle", 25);
			CHECK(pb->location[0]->n_line != 2 ||
			      l->line[0]->function_id == pb->location[0]->line[1]->function_id);
		}
		l = pb->location[1];
		CHECK(l->n_line == 1 && l->line[0]->function_id == 3);
		l = pb->location[3];
		CHECK(l->n_line == 1 && l->line[0]->function_id == 4);
		l = pb->location[4];
		CHECK(l->mapping_id == 2 && l->address == 0x7f0000001234 && l->n_line == 0);
	}

	CHECK(pb->n_sample == 3);
	if (pb->n_sample != 3)
		return;
	const Perftools__Profiles__Sample *s = pb->sample[0];
	check_sample(s, (const uint64_t[]){4, 1, 2}, 3, (const int64_t[]){1, 8192, 1, 8192});
	CHECK(s->n_label == 1);
	if (s->n_label == 1) {
		CHECK(str_is(pb, s->label[0]->key, "bytes"));
		CHECK(s->label[0]->str == 0);
		CHECK(s->label[0]->num == 8192);
		CHECK(str_is(pb, s->label[0]->num_unit, "bytes"));
	}
	s = pb->sample[1];
	check_sample(s, (const uint64_t[]){4, 3, 2}, 3, (const int64_t[]){4, 16384, 0, 0});
	CHECK(s->n_label == 2);
	if (s->n_label == 2) {
		CHECK(str_is(pb, s->label[0]->key, "bytes"));
		CHECK(s->label[0]->num == 4096);
		CHECK(str_is(pb, s->label[0]->num_unit, "bytes"));
		CHECK(str_is(pb, s->label[1]->key, "kind"));
		CHECK(str_is(pb, s->label[1]->str, "large"));
		CHECK(s->label[1]->num == 0 && s->label[1]->num_unit == 0);
	}
	s = pb->sample[2];
	check_sample(s, (const uint64_t[]){5, 2}, 2, (const int64_t[]){2, 64, 2, 64});
	CHECK(s->n_label == 0);
}

static void test_roundtrip(void)
{
	struct example ex;
	struct pprof *p = example(&ex);
	CHECK(p);
	if (!p)
		return;
	/* The same (mapping, address) is the same location, whatever lines come with it. */
	const struct hs_frame other = {"other", "other.go", 1, 0, 0, NULL, 0};
	CHECK(pprof_location(p, ex.main_map, 0x401010, &other, 1) == ex.put_handle);
	CHECK(pprof_location(p, ex.lib_map, 0x7f0000001234, NULL, 0) == ex.lib);
	pb_profile *pb = encode_decode(p);
	CHECK(pb);
	if (pb) {
		check_example(pb, &ex);
		perftools__profiles__profile__free_unpacked(pb, NULL);
	}
	pprof_free(p);
}

static void test_empty(void)
{
	struct pprof *p = pprof_new();
	CHECK(p);
	if (!p)
		return;
	pb_profile *pb = encode_decode(p);
	CHECK(pb);
	if (pb) {
		CHECK(pb->n_string_table == 1 && strcmp(pb->string_table[0], "") == 0);
		CHECK(pb->n_sample_type == 0 && pb->n_sample == 0 && pb->n_mapping == 0);
		CHECK(pb->n_location == 0 && pb->n_function == 0 && pb->n_comment == 0);
		CHECK(!pb->period_type && pb->period == 0 && pb->default_sample_type == 0);
		perftools__profiles__profile__free_unpacked(pb, NULL);
	}
	pprof_free(p);
	pprof_free(NULL);
}

/* Enough entries to grow every table and array several times over. */
static void test_many(void)
{
	enum { NLOC = 20000, NFUNC = 700 };
	struct pprof *p = pprof_new();
	CHECK(p);
	if (!p)
		return;
	pprof_sample_type(p, "samples", "count");
	uint64_t map = pprof_mapping(p, 0, UINT64_MAX, 0, "bin", "");
	char name[32], file[32];
	bool ids_ok = true, again_ok = true;
	for (int pass = 0; pass < 2; pass++) {
		for (uint64_t i = 0; i < NLOC; i++) {
			snprintf(name, sizeof(name), "f%llu", (unsigned long long)(i % NFUNC));
			snprintf(file, sizeof(file), "file%llu.go", (unsigned long long)(i % 7));
			const struct hs_frame fr = {name, file, (uint32_t)i, 0, 0, NULL, 0};
			uint64_t id = pprof_location(p, map, 0x1000 + i * 16, &fr, 1);
			if (pass == 0)
				ids_ok &= id == i + 1;
			else
				again_ok &= id == i + 1;
			if (pass == 0)
				pprof_sample(p, &id, 1, (const int64_t[]){(int64_t)i}, NULL, 0);
		}
	}
	CHECK(ids_ok);
	CHECK(again_ok);
	pb_profile *pb = encode_decode(p);
	CHECK(pb);
	if (pb) {
		CHECK(pb->n_location == NLOC && pb->n_sample == NLOC);
		/* i % 700 and i % 7 pair up 700 ways, as 7 divides 700. */
		CHECK(pb->n_function == NFUNC);
		/* "", samples, count, bin, 700 names, 7 files. */
		CHECK(pb->n_string_table == 4 + NFUNC + 7);
		bool values_ok = true;
		for (size_t i = 0; i < pb->n_sample; i++)
			values_ok &= pb->sample[i]->n_value == 1 &&
				     pb->sample[i]->value[0] == (int64_t)i &&
				     pb->sample[i]->location_id[0] == i + 1;
		CHECK(values_ok);
		perftools__profiles__profile__free_unpacked(pb, NULL);
	}
	pprof_free(p);
}

static int expect_encode_error(struct pprof *p)
{
	uint8_t *buf = NULL;
	size_t len;
	int rc = pprof_encode(p, &buf, &len);
	CHECK(!buf);
	pprof_free(p);
	return rc;
}

static void test_misuse(void)
{
	struct pprof *p = pprof_new();
	CHECK(pprof_location(p, 1, 0x1000, NULL, 0) == 0);
	CHECK(expect_encode_error(p) == -EINVAL);

	p = pprof_new();
	pprof_sample(p, (const uint64_t[]){1}, 1, NULL, NULL, 0);
	CHECK(expect_encode_error(p) == -EINVAL);

	p = pprof_new();
	uint64_t loc = pprof_location(p, 0, 0x1000, NULL, 0);
	CHECK(loc == 1);
	pprof_sample(p, &loc, 1, NULL, &(struct pprof_label){NULL, "v", 0, NULL}, 1);
	CHECK(expect_encode_error(p) == -EINVAL);

	/* Earlier samples would lack a value for the new type. */
	p = pprof_new();
	pprof_sample_type(p, "a", "count");
	pprof_sample(p, NULL, 0, (const int64_t[]){1}, NULL, 0);
	pprof_sample_type(p, "b", "count");
	CHECK(expect_encode_error(p) == -EINVAL);

	/* After a failure the builder calls do nothing and the failure stays. */
	p = pprof_new();
	CHECK(pprof_location(p, 7, 0, NULL, 0) == 0);
	CHECK(pprof_mapping(p, 0, 1, 0, "x", "y") == 0);
	char err[256] = "";
	CHECK(pprof_write(p, "/nonexistent-dir/heap.pb.gz", err, sizeof(err)) == -EINVAL);
	CHECK(strcmp(err,
		     "cannot encode profile for /nonexistent-dir/heap.pb.gz: Invalid argument") ==
	      0);
	pprof_free(p);
}

static size_t count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	size_t n = 0;
	for (struct dirent *e; (e = readdir(d));)
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

static char *join(const char *dir, const char *name)
{
	char *path;
	return asprintf(&path, "%s/%s", dir, name) < 0 ? NULL : path;
}

static void test_write_replaces_symlink(void)
{
	char dir[] = "/tmp/test_pprof.XXXXXX";
	CHECK(mkdtemp(dir));
	char *victim = join(dir, "victim"), *path = join(dir, "heap.pb.gz");
	CHECK(victim && path);
	if (!victim || !path)
		return;
	FILE *f = fopen(victim, "w");
	CHECK(f && fputs("keep me", f) >= 0 && fclose(f) == 0);
	CHECK(symlink("victim", path) == 0);

	struct example ex;
	struct pprof *p = example(&ex);
	char err[256] = "";
	/* Twice: the second replaces the regular file the first left. */
	for (int i = 0; i < 2; i++) {
		CHECK(pprof_write(p, path, err, sizeof(err)) == 0);
		CHECK(err[0] == '\0');
		struct stat st;
		CHECK(lstat(path, &st) == 0 && S_ISREG(st.st_mode));
		CHECK((st.st_mode & 07777) == (0644 & ~test_umask()));
		pb_profile *pb = read_profile(path);
		CHECK(pb);
		if (pb) {
			check_example(pb, &ex);
			perftools__profiles__profile__free_unpacked(pb, NULL);
		}
	}
	char buf[32] = "";
	f = fopen(victim, "r");
	CHECK(f && fgets(buf, sizeof(buf), f) && fclose(f) == 0);
	CHECK(strcmp(buf, "keep me") == 0);
	/* No temporary file left behind. */
	CHECK(count_entries(dir) == 2);

	pprof_free(p);
	unlink(path);
	unlink(victim);
	rmdir(dir);
	free(path);
	free(victim);
}

static void test_write_errors(void)
{
	char dir[] = "/tmp/test_pprof.XXXXXX";
	CHECK(mkdtemp(dir));
	struct example ex;
	struct pprof *p = example(&ex);
	char err[256] = "", want[512];

	char *missing = join(dir, "missing/heap.pb.gz");
	CHECK(pprof_write(p, missing, err, sizeof(err)) == -ENOENT);
	snprintf(want, sizeof(want), "cannot write %s: No such file or directory", missing);
	CHECK(strcmp(err, want) == 0);

	/* rename(2) cannot put a file over a directory; the temporary file must go. */
	char *isdir = join(dir, "heap.pb.gz");
	CHECK(mkdir(isdir, 0755) == 0);
	CHECK(pprof_write(p, isdir, err, sizeof(err)) == -EISDIR);
	snprintf(want, sizeof(want), "cannot write %s: Is a directory", isdir);
	CHECK(strcmp(err, want) == 0);
	CHECK(count_entries(dir) == 1);

	/* A short buffer gets a truncated message, not an overflow. */
	char small[8];
	CHECK(pprof_write(p, missing, small, sizeof(small)) == -ENOENT);
	CHECK(strcmp(small, "cannot ") == 0);
	CHECK(pprof_write(p, missing, NULL, 0) == -ENOENT);

	/* Root writes through permission bits, so only others can test them. */
	if (geteuid() != 0) {
		char *path = join(dir, "ro.pb.gz");
		CHECK(chmod(dir, 0555) == 0);
		CHECK(pprof_write(p, path, err, sizeof(err)) == -EACCES);
		snprintf(want, sizeof(want), "cannot write %s: Permission denied", path);
		CHECK(strcmp(err, want) == 0);
		chmod(dir, 0755);
		free(path);
	} else {
		printf("  note: running as root, read-only directory case skipped\n");
	}

	pprof_free(p);
	rmdir(isdir);
	rmdir(dir);
	free(isdir);
	free(missing);
}

/* Output of cmd with stderr, and its exit status; NULL if it could not run. */
static char *run(const char *cmd, int *status)
{
	FILE *f = popen(cmd, "r");
	if (!f)
		return NULL;
	size_t cap = 1 << 16;
	char *out = calloc(1, cap);
	size_t len = out ? fread(out, 1, cap - 1, f) : 0;
	if (out)
		out[len] = '\0';
	*status = pclose(f);
	return out;
}

static void check_go_output(const char *cmd, const char *const *want, size_t nwant)
{
	int status;
	char *out = run(cmd, &status);
	CHECK(out);
	if (!out)
		return;
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	for (size_t i = 0; i < nwant; i++) {
		bool found = strstr(out, want[i]) != NULL;
		if (!found)
			fprintf(stderr, "  missing from output: %s\n", want[i]);
		CHECK(found);
		ok &= found;
	}
	if (!ok)
		fprintf(stderr, "  $ %s\n%s\n", cmd, out);
	free(out);
}

static void test_go_pprof_reads_it(void)
{
	if (access(GO, X_OK) != 0) {
		printf("  note: %s not found, go tool pprof check skipped\n", GO);
		return;
	}
	char dir[] = "/tmp/test_pprof.XXXXXX";
	CHECK(mkdtemp(dir));
	char *path = join(dir, "heap.pb.gz");
	struct example ex;
	struct pprof *p = example(&ex);
	char err[256] = "";
	CHECK(pprof_write(p, path, err, sizeof(err)) == 0);
	pprof_free(p);

	char cmd[1024];
	static const char *const raw[] = {
	    "PeriodType: space bytes",
	    "Period: 524288",
	    "Duration: 5s",
	    "alloc_objects/count alloc_space/bytes[dflt] inuse_objects/count inuse_space/bytes",
	    "1       8192          1       8192: 4 1 2",
	    "4      16384          0          0: 4 3 2",
	    "2         64          2         64: 5 2",
	    "bytes:[8192 bytes]",
	    "kind:[large]",
	    "main.(*cache).put /src/cache.go:42",
	    "main.handle /src/main.go:17",
	    "main.handle /src/main.go:25",
	    "main.main /src/main.go:30",
	    "runtime.mallocgc /go/src/runtime/malloc.go:1000",
	    "/usr/bin/demo abcdef0123",
	};
	snprintf(cmd, sizeof(cmd), "GOTOOLCHAIN=local %s tool pprof -raw %s 2>&1", GO, path);
	check_go_output(cmd, raw, sizeof(raw) / sizeof(raw[0]));

	/* alloc_space by default; main.main holds all 24.06kB, mallocgc all but the 64B in libfake.
	 */
	static const char *const top[] = {
	    "Build ID: abcdef0123",	"heapspy",
	    "pid 1234 rate 524288",	"Type: alloc_space",
	    "Total samples = 24.06kB",	"100%  main.main",
	    "99.74%  runtime.mallocgc", "main.(*cache).put (inline)",
	};
	snprintf(cmd, sizeof(cmd), "GOTOOLCHAIN=local %s tool pprof -top %s 2>&1", GO, path);
	check_go_output(cmd, top, sizeof(top) / sizeof(top[0]));

	unlink(path);
	rmdir(dir);
	free(path);
}

int main(void)
{
	int failures = 0;
	RUN(test_roundtrip);
	RUN(test_empty);
	RUN(test_many);
	RUN(test_misuse);
	RUN(test_write_replaces_symlink);
	RUN(test_write_errors);
	RUN(test_go_pprof_reads_it);
	return failures;
}

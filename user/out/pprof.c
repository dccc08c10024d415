/*
 * pprof: the profile is kept in flat arrays while it is built; encoding wraps them in the
 * protobuf-c messages without copying, since protobuf-c wants arrays of pointers to messages and
 * the arrays move as they grow.
 */
#include "pprof.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "profile.pb-c.h"
#include "u64map.h"

typedef Perftools__Profiles__Profile pb_profile;
typedef Perftools__Profiles__ValueType pb_value_type;
typedef Perftools__Profiles__Sample pb_sample;
typedef Perftools__Profiles__Label pb_label;
typedef Perftools__Profiles__Mapping pb_mapping;
typedef Perftools__Profiles__Location pb_location;
typedef Perftools__Profiles__Line pb_line;
typedef Perftools__Profiles__Function pb_function;

/* Untyped so one grow routine serves every element type; users take a typed pointer to v. */
struct vec {
	void *v;
	size_t n, cap;
};

/* Lines and sample data live in shared arrays; these are the slices. */
struct loc {
	uint64_t mapping_id, address;
	size_t line0, nline;
};

struct sample {
	size_t loc0, nloc, label0, nlabel;
};

struct pprof {
	/* First failure: builder calls return nothing, so encode reports it. */
	int err;

	struct vec strs;	 /* char *, owned */
	struct u64map str_index; /* string hash -> index in strs */
	struct vec types;	 /* pb_value_type */
	struct vec comments;	 /* int64_t string index */
	bool has_period;
	pb_value_type period_type;
	int64_t period;
	int64_t default_type;
	int64_t time_nanos, duration_nanos;

	struct vec maps;	  /* pb_mapping */
	struct vec funcs;	  /* pb_function */
	struct u64map func_index; /* (name, file) hash -> index in funcs */
	struct vec locs;	  /* struct loc */
	struct u64map loc_index;  /* (mapping, address) hash -> index in locs */
	struct vec lines;	  /* pb_line */

	struct vec samples;	/* struct sample */
	struct vec sample_locs; /* uint64_t */
	struct vec values;	/* int64_t, types.n per sample */
	struct vec labels;	/* pb_label */
};

static void fail(struct pprof *p, int err)
{
	if (!p->err)
		p->err = err;
}

/*
 * Room for more elements; false with p->err set when memory runs out. Allocates even for none, so
 * callers may offset v without meeting a null pointer.
 */
static bool reserve(struct pprof *p, struct vec *v, size_t elem, size_t more)
{
	if (v->v && more <= v->cap - v->n)
		return true;
	if (more > SIZE_MAX / elem - v->n) {
		fail(p, -ENOMEM);
		return false;
	}
	size_t cap = v->cap ? v->cap : 16;
	while (cap < v->n + more)
		cap = cap > SIZE_MAX / elem / 2 ? SIZE_MAX / elem : cap * 2;
	void *nv = realloc(v->v, cap * elem);
	if (!nv) {
		fail(p, -ENOMEM);
		return false;
	}
	v->v = nv;
	v->cap = cap;
	return true;
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h;
}

struct str_key {
	const struct pprof *p;
	const char *s;
};

static bool same_str(const void *ctx, uint64_t idx)
{
	const struct str_key *k = ctx;
	char *const *strs = k->p->strs.v;

	return strcmp(strs[idx], k->s) == 0;
}

/* Index of s in the string table; NULL reads as "". 0 on failure, which is also "". */
static int64_t intern(struct pprof *p, const char *s)
{
	struct str_key k = {p, s ? s : ""};
	uint64_t idx, key;
	char *copy;

	if (p->err || !reserve(p, &p->strs, sizeof(char *), 1))
		return 0;
	if (u64map_find(&p->str_index, hash_str(k.s), same_str, &k, &idx, &key))
		return (int64_t)idx;
	copy = strdup(k.s);
	if (!copy || u64map_put(&p->str_index, key, p->strs.n)) {
		free(copy);
		fail(p, -ENOMEM);
		return 0;
	}
	((char **)p->strs.v)[p->strs.n] = copy;
	return (int64_t)p->strs.n++;
}

struct pprof *pprof_new(void)
{
	struct pprof *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	perftools__profiles__value_type__init(&p->period_type);
	/* string_table[0] must be "". */
	intern(p, "");
	if (p->err) {
		pprof_free(p);
		return NULL;
	}
	return p;
}

void pprof_free(struct pprof *p)
{
	if (!p)
		return;
	char **strs = p->strs.v;
	for (size_t i = 0; i < p->strs.n; i++)
		free(strs[i]);
	struct vec *vecs[] = {&p->strs,	       &p->types,  &p->comments, &p->maps,
			      &p->funcs,       &p->locs,   &p->lines,	 &p->samples,
			      &p->sample_locs, &p->values, &p->labels};
	for (size_t i = 0; i < sizeof(vecs) / sizeof(vecs[0]); i++)
		free(vecs[i]->v);
	u64map_free(&p->str_index);
	u64map_free(&p->func_index);
	u64map_free(&p->loc_index);
	free(p);
}

void pprof_sample_type(struct pprof *p, const char *type, const char *unit)
{
	/* Samples already hold one value per earlier type. */
	if (p->samples.n)
		fail(p, -EINVAL);
	pb_value_type vt = PERFTOOLS__PROFILES__VALUE_TYPE__INIT;
	vt.type = intern(p, type);
	vt.unit = intern(p, unit);
	if (p->err || !reserve(p, &p->types, sizeof(vt), 1))
		return;
	pb_value_type *types = p->types.v;
	types[p->types.n++] = vt;
}

void pprof_period(struct pprof *p, const char *type, const char *unit, int64_t period)
{
	p->period_type.type = intern(p, type);
	p->period_type.unit = intern(p, unit);
	p->period = period;
	p->has_period = true;
}

void pprof_default_sample_type(struct pprof *p, const char *type)
{
	p->default_type = intern(p, type);
}

void pprof_time(struct pprof *p, int64_t time_nanos, int64_t duration_nanos)
{
	p->time_nanos = time_nanos;
	p->duration_nanos = duration_nanos;
}

void pprof_comment(struct pprof *p, const char *fmt, ...)
{
	char *text;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (n < 0) {
		fail(p, -ENOMEM);
		return;
	}
	int64_t idx = intern(p, text);
	free(text);
	if (p->err || !reserve(p, &p->comments, sizeof(int64_t), 1))
		return;
	int64_t *comments = p->comments.v;
	comments[p->comments.n++] = idx;
}

/* Whether every location in m so far came with its function, file, line and inlined calls. */
static void set_symbolized(pb_mapping *m, bool on)
{
	m->has_functions = m->has_filenames = m->has_line_numbers = m->has_inline_frames = on;
}

uint64_t pprof_mapping(struct pprof *p, uint64_t start, uint64_t limit, uint64_t offset,
		       const char *file, const char *build_id)
{
	pb_mapping m = PERFTOOLS__PROFILES__MAPPING__INIT;
	m.memory_start = start;
	m.memory_limit = limit;
	m.file_offset = offset;
	m.filename = intern(p, file);
	m.build_id = intern(p, build_id);
	set_symbolized(&m, true);
	if (p->err || !reserve(p, &p->maps, sizeof(m), 1))
		return 0;
	pb_mapping *maps = p->maps.v;
	m.id = p->maps.n + 1;
	maps[p->maps.n++] = m;
	return m.id;
}

struct func_key {
	int64_t name, file;
};

struct func_ctx {
	const struct pprof *p;
	struct func_key k;
};

static bool same_func(const void *ctx, uint64_t idx)
{
	const struct func_ctx *c = ctx;
	const pb_function *f = (const pb_function *)c->p->funcs.v + idx;

	return f->name == c->k.name && f->filename == c->k.file;
}

static uint64_t intern_function(struct pprof *p, const char *name, const char *file)
{
	struct func_ctx c = {p, {intern(p, name), intern(p, file)}};
	pb_function f = PERFTOOLS__PROFILES__FUNCTION__INIT;
	uint64_t idx, key;

	if (p->err || !reserve(p, &p->funcs, sizeof(pb_function), 1))
		return 0;
	if (u64map_find(&p->func_index, u64_mix((uint64_t)c.k.name, (uint64_t)c.k.file), same_func,
			&c, &idx, &key))
		return idx + 1;
	if (u64map_put(&p->func_index, key, p->funcs.n)) {
		fail(p, -ENOMEM);
		return 0;
	}
	f.id = p->funcs.n + 1;
	f.name = f.system_name = c.k.name;
	f.filename = c.k.file;
	((pb_function *)p->funcs.v)[p->funcs.n++] = f;
	return f.id;
}

struct loc_ctx {
	const struct pprof *p;
	uint64_t mapping_id, address;
};

static bool same_loc(const void *ctx, uint64_t idx)
{
	const struct loc_ctx *c = ctx;
	const struct loc *l = (const struct loc *)c->p->locs.v + idx;

	return l->mapping_id == c->mapping_id && l->address == c->address;
}

uint64_t pprof_location(struct pprof *p, uint64_t mapping_id, uint64_t address,
			const struct hs_frame *lines, int nlines)
{
	if (mapping_id > p->maps.n || nlines < 0)
		fail(p, -EINVAL);
	if (p->err)
		return 0;
	struct loc_ctx c = {p, mapping_id, address};
	uint64_t idx, key;
	if (u64map_find(&p->loc_index, u64_mix(mapping_id, address), same_loc, &c, &idx, &key))
		return idx + 1;

	if (!reserve(p, &p->lines, sizeof(pb_line), (size_t)nlines) ||
	    !reserve(p, &p->locs, sizeof(struct loc), 1))
		return 0;
	pb_line *out = (pb_line *)p->lines.v + p->lines.n;
	for (int i = 0; i < nlines; i++) {
		pb_line l = PERFTOOLS__PROFILES__LINE__INIT;
		l.function_id = intern_function(p, lines[i].function, lines[i].file);
		l.line = lines[i].line;
		out[i] = l;
	}
	if (p->err)
		return 0;
	struct loc *locs = p->locs.v;
	locs[p->locs.n] = (struct loc){mapping_id, address, p->lines.n, (size_t)nlines};
	p->lines.n += (size_t)nlines;
	/* pprof symbolizes a mapping from its file only when these flags say it lacks symbols. */
	if (mapping_id && !nlines)
		set_symbolized((pb_mapping *)p->maps.v + (mapping_id - 1), false);
	if (u64map_put(&p->loc_index, key, p->locs.n)) {
		fail(p, -ENOMEM);
		return 0;
	}
	return ++p->locs.n;
}

void pprof_sample(struct pprof *p, const uint64_t *locs, size_t nlocs, const int64_t *values,
		  const struct pprof_label *labels, size_t nlabels)
{
	for (size_t i = 0; i < nlocs; i++)
		if (!locs[i] || locs[i] > p->locs.n)
			fail(p, -EINVAL);
	for (size_t i = 0; i < nlabels; i++)
		if (!labels[i].key)
			fail(p, -EINVAL);
	if (p->err || !reserve(p, &p->labels, sizeof(pb_label), nlabels) ||
	    !reserve(p, &p->sample_locs, sizeof(uint64_t), nlocs) ||
	    !reserve(p, &p->values, sizeof(int64_t), p->types.n) ||
	    !reserve(p, &p->samples, sizeof(struct sample), 1))
		return;
	pb_label *lab = (pb_label *)p->labels.v + p->labels.n;
	for (size_t i = 0; i < nlabels; i++) {
		pb_label l = PERFTOOLS__PROFILES__LABEL__INIT;
		l.key = intern(p, labels[i].key);
		if (labels[i].str) {
			l.str = intern(p, labels[i].str);
		} else {
			l.num = labels[i].num;
			l.num_unit = intern(p, labels[i].num_unit);
		}
		lab[i] = l;
	}
	if (p->err)
		return;
	if (nlocs)
		memcpy((uint64_t *)p->sample_locs.v + p->sample_locs.n, locs,
		       nlocs * sizeof(*locs));
	if (p->types.n)
		memcpy((int64_t *)p->values.v + p->values.n, values, p->types.n * sizeof(*values));
	struct sample *s = (struct sample *)p->samples.v + p->samples.n++;
	*s = (struct sample){p->sample_locs.n, nlocs, p->labels.n, nlabels};
	p->sample_locs.n += nlocs;
	p->values.n += p->types.n;
	p->labels.n += nlabels;
}

/* The pointer arrays protobuf-c needs around the stored messages; freed after packing. */
struct wrap {
	pb_value_type **types;
	pb_mapping **maps;
	pb_function **funcs;
	pb_line **lines;
	pb_location *locs, **loc_ptrs;
	pb_label **labels;
	pb_sample *samples, **sample_ptrs;
	pb_value_type period_type;
};

static void wrap_free(struct wrap *w)
{
	free(w->types);
	free(w->maps);
	free(w->funcs);
	free(w->lines);
	free(w->locs);
	free(w->loc_ptrs);
	free(w->labels);
	free(w->samples);
	free(w->sample_ptrs);
}

/* Never empty, so slices of these are never offsets from a null pointer. */
#define WRAP_ALLOC(ptr, n) ((ptr) = calloc((n) ? (n) : 1, sizeof(*(ptr))))

static int wrap(const struct pprof *p, struct wrap *w, pb_profile *pb)
{
	if (!WRAP_ALLOC(w->types, p->types.n) || !WRAP_ALLOC(w->maps, p->maps.n) ||
	    !WRAP_ALLOC(w->funcs, p->funcs.n) || !WRAP_ALLOC(w->lines, p->lines.n) ||
	    !WRAP_ALLOC(w->locs, p->locs.n) || !WRAP_ALLOC(w->loc_ptrs, p->locs.n) ||
	    !WRAP_ALLOC(w->labels, p->labels.n) || !WRAP_ALLOC(w->samples, p->samples.n) ||
	    !WRAP_ALLOC(w->sample_ptrs, p->samples.n))
		return -ENOMEM;

	for (size_t i = 0; i < p->types.n; i++)
		w->types[i] = (pb_value_type *)p->types.v + i;
	for (size_t i = 0; i < p->maps.n; i++)
		w->maps[i] = (pb_mapping *)p->maps.v + i;
	for (size_t i = 0; i < p->funcs.n; i++)
		w->funcs[i] = (pb_function *)p->funcs.v + i;
	for (size_t i = 0; i < p->lines.n; i++)
		w->lines[i] = (pb_line *)p->lines.v + i;
	for (size_t i = 0; i < p->labels.n; i++)
		w->labels[i] = (pb_label *)p->labels.v + i;

	const struct loc *locs = p->locs.v;
	for (size_t i = 0; i < p->locs.n; i++) {
		pb_location *l = &w->locs[i];
		perftools__profiles__location__init(l);
		l->id = i + 1;
		l->mapping_id = locs[i].mapping_id;
		l->address = locs[i].address;
		l->n_line = locs[i].nline;
		l->line = w->lines + locs[i].line0;
		w->loc_ptrs[i] = l;
	}

	const struct sample *samples = p->samples.v;
	for (size_t i = 0; i < p->samples.n; i++) {
		pb_sample *s = &w->samples[i];
		perftools__profiles__sample__init(s);
		s->n_location_id = samples[i].nloc;
		s->location_id = (uint64_t *)p->sample_locs.v + samples[i].loc0;
		s->n_value = p->types.n;
		s->value = (int64_t *)p->values.v + i * p->types.n;
		s->n_label = samples[i].nlabel;
		s->label = w->labels + samples[i].label0;
		w->sample_ptrs[i] = s;
	}

	pb->n_sample_type = p->types.n;
	pb->sample_type = w->types;
	pb->n_sample = p->samples.n;
	pb->sample = w->sample_ptrs;
	pb->n_mapping = p->maps.n;
	pb->mapping = w->maps;
	pb->n_location = p->locs.n;
	pb->location = w->loc_ptrs;
	pb->n_function = p->funcs.n;
	pb->function = w->funcs;
	pb->n_string_table = p->strs.n;
	pb->string_table = p->strs.v;
	pb->time_nanos = p->time_nanos;
	pb->duration_nanos = p->duration_nanos;
	if (p->has_period) {
		w->period_type = p->period_type;
		pb->period_type = &w->period_type;
	}
	pb->period = p->period;
	pb->n_comment = p->comments.n;
	pb->comment = p->comments.v;
	pb->default_sample_type = p->default_type;
	return 0;
}

static int gzip(const uint8_t *in, size_t inlen, uint8_t **out, size_t *outlen)
{
	/* One deflate call takes 32-bit lengths; profiles are nowhere near that. */
	if (inlen > UINT_MAX / 2)
		return -EFBIG;
	z_stream z = {0};
	/* 15-bit window + 16 asks zlib for a gzip header and trailer, as pprof files need. */
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
	    Z_OK)
		return -ENOMEM;
	uLong bound = deflateBound(&z, (uLong)inlen);
	uint8_t *buf = malloc(bound);
	if (!buf) {
		deflateEnd(&z);
		return -ENOMEM;
	}
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)inlen;
	z.next_out = buf;
	z.avail_out = (uInt)bound;
	/* deflateBound guarantees room for the whole stream, so one call finishes it. */
	int rc = deflate(&z, Z_FINISH);
	deflateEnd(&z);
	if (rc != Z_STREAM_END) {
		free(buf);
		return -EIO;
	}
	*out = buf;
	*outlen = z.total_out;
	return 0;
}

int pprof_encode(const struct pprof *p, uint8_t **buf, size_t *len)
{
	if (p->err)
		return p->err;
	pb_profile pb = PERFTOOLS__PROFILES__PROFILE__INIT;
	struct wrap w = {0};
	int rc = wrap(p, &w, &pb);
	uint8_t *raw = NULL;
	if (!rc) {
		size_t rawlen = perftools__profiles__profile__get_packed_size(&pb);
		/* One extra byte: malloc(0) may return NULL. */
		raw = malloc(rawlen + 1);
		if (raw)
			rc = gzip(raw, perftools__profiles__profile__pack(&pb, raw), buf, len);
		else
			rc = -ENOMEM;
	}
	free(raw);
	wrap_free(&w);
	return rc;
}

/* umask(2) reads the mask only by setting it, which races with threads creating files. */
static bool read_umask(mode_t *mask)
{
	FILE *f = fopen("/proc/self/status", "re");
	if (!f)
		return false;
	char line[256];
	unsigned m;
	bool found = false;
	while (!found && fgets(line, sizeof(line), f))
		found = sscanf(line, "Umask: %o", &m) == 1;
	fclose(f);
	if (found)
		*mask = (mode_t)m;
	return found;
}

static int write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* mkstemp's O_EXCL refuses anything already at the name, symlinks included. */
static int write_file(const char *path, const uint8_t *buf, size_t len)
{
	const char *slash = strrchr(path, '/');
	int dirlen = slash ? (int)(slash - path + 1) : 0;
	char *tmp;
	if (asprintf(&tmp, "%.*s.%s.XXXXXX", dirlen, path, path + dirlen) < 0)
		return -ENOMEM;
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		int rc = -errno;
		free(tmp);
		return rc;
	}
	mode_t mask;
	int rc = 0;
	/* mkstemp makes the file 0600; give it the mode open(path, O_CREAT, 0644) would have. */
	if (read_umask(&mask) && fchmod(fd, 0644 & ~mask) < 0)
		rc = -errno;
	if (!rc)
		rc = write_all(fd, buf, len);
	/* Data on disk before the rename, so a crash leaves the old profile or the new one. */
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path) < 0)
		rc = -errno;
	if (rc)
		unlink(tmp);
	free(tmp);
	return rc;
}

int pprof_write_file(const char *path, const void *buf, size_t len)
{
	return write_file(path, buf, len);
}

int pprof_write(const struct pprof *p, const char *path, char *err, size_t errlen)
{
	uint8_t *buf;
	size_t len;
	int rc = pprof_encode(p, &buf, &len);
	if (rc) {
		snprintf(err, errlen, "cannot encode profile for %s: %s", path, strerror(-rc));
		return rc;
	}
	rc = write_file(path, buf, len);
	free(buf);
	if (rc)
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
	return rc;
}

/*
 * pprof: builds a profile.proto message (github.com/google/pprof/proto/profile.proto) through
 * protobuf-c and writes it gzipped, the form go tool pprof, Pyroscope and Parca read.
 * Strings, functions, locations and mappings are interned; ids start at 1 as the format requires.
 */
#ifndef HEAPSPY_PPROF_H
#define HEAPSPY_PPROF_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"

struct pprof;

struct pprof_label {
	const char *key;
	const char *str; /* string label, or NULL for a numeric one */
	int64_t num;
	const char *num_unit; /* e.g. "bytes", or NULL */
};

/*
 * The builder calls report nothing; the first failure (ENOMEM, or EINVAL for an unknown id, a NULL
 * label key or a sample type added after samples) makes the rest no-ops and pprof_encode and
 * pprof_write return it. All strings are copied. NULL if out of memory.
 */
struct pprof *pprof_new(void);
void pprof_free(struct pprof *p);

/* Sample types in value order. */
void pprof_sample_type(struct pprof *p, const char *type, const char *unit);
void pprof_period(struct pprof *p, const char *type, const char *unit, int64_t period);
void pprof_default_sample_type(struct pprof *p, const char *type);
void pprof_time(struct pprof *p, int64_t time_nanos, int64_t duration_nanos);
void pprof_comment(struct pprof *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Returns the new mapping's id; the first mapping should be the main binary. 0 on failure. */
uint64_t pprof_mapping(struct pprof *p, uint64_t start, uint64_t limit, uint64_t offset,
		       const char *file, const char *build_id);
/*
 * One location per distinct (mapping, address); lines innermost first, as Go writes inlined calls.
 * nlines 0 gives an unsymbolized location, and marks its mapping as lacking symbols so pprof may
 * symbolize it from the file. mapping_id 0 means none. 0 on failure.
 */
uint64_t pprof_location(struct pprof *p, uint64_t mapping_id, uint64_t address,
			const struct hs_frame *lines, int nlines);
/* values has one entry per sample type. Locations leaf first. */
void pprof_sample(struct pprof *p, const uint64_t *locs, size_t nlocs, const int64_t *values,
		  const struct pprof_label *labels, size_t nlabels);

/* Serialized and gzipped; caller frees *buf. 0 or -errno. */
int pprof_encode(const struct pprof *p, uint8_t **buf, size_t *len);
/*
 * Writes the gzipped profile to path atomically: a temporary file beside it, then rename(2), which
 * replaces a symlink planted at path instead of following it. 0 or -errno with err set.
 */
int pprof_write(const struct pprof *p, const char *path, char *err, size_t errlen);
/* Writes any file the way pprof_write writes a profile: atomically, never through a symlink. */
int pprof_write_file(const char *path, const void *buf, size_t len);

#endif

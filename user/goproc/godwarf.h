/*
 * godwarf: facts about a Go binary's runtime from its DWARF (through libdw): byte offsets of struct
 * members, sizes of types, values of package constants, the order of a function's parameters. The
 * runtime's internals change between releases; where the binary carries DWARF, it says exactly what
 * they are in this very build.
 */
#ifndef HEAPSPY_GODWARF_H
#define HEAPSPY_GODWARF_H

#include <stddef.h>
#include <stdint.h>

/* One member to look up: "runtime.workType" / "tSweepTerm". */
struct godwarf_member {
	const char *type;
	const char *member;
};

/*
 * Looks up n members of named struct types in the DWARF of the executable at path; out[i] is the
 * byte offset of want[i], or -1 when the binary has no such type or member. Returns 0, -ENOENT
 * when the binary has no DWARF at all, or -errno.
 */
int godwarf_offsets(const char *path, const struct godwarf_member *want, size_t n, int64_t *out);

enum godwarf_what {
	GODWARF_MEMBER_OFFSET, /* name: a struct type, sub: one of its members */
	GODWARF_TYPE_SIZE,     /* name: a type */
	GODWARF_CONSTANT,      /* name: a package constant, "runtime._KindSpecialProfile" */
	GODWARF_PARAM_INDEX,   /* name: a function, sub: one of its parameters (0 is the first) */
};

struct godwarf_fact {
	enum godwarf_what what;
	const char *name;
	const char *sub;
};

/*
 * Looks up n facts in the DWARF of the executable at path; out[i] answers want[i], and found[i]
 * (0 or 1) says whether the binary had it. Returns 0, -ENOENT when the binary has no DWARF at all,
 * or -errno.
 */
int godwarf_facts(const char *path, const struct godwarf_fact *want, size_t n, int64_t *out,
		  int *found);

#endif

/*
 * godwarf: byte offsets of struct members, from a Go binary's DWARF (through libdw). The runtime's
 * internal structs change between releases; where the binary carries DWARF, it says exactly where
 * each field is, for this very build.
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

#endif

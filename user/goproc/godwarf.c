#include "godwarf.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* The child of die named name with the given tag, and its position among those children. */
static int child_index(Dwarf_Die *die, int tag, const char *name, Dwarf_Die *out)
{
	int i = 0;

	if (dwarf_child(die, out) != 0)
		return -1;
	do {
		const char *cn;

		if (dwarf_tag(out) != tag)
			continue;
		cn = dwarf_diename(out);
		if (cn && !strcmp(cn, name))
			return i;
		i++;
	} while (dwarf_siblingof(out, out) == 0);
	return -1;
}

static int64_t member_offset(Dwarf_Die *type, const char *name)
{
	Dwarf_Attribute a;
	Dwarf_Word off;
	Dwarf_Die m;

	/* Go writes member locations as plain constants. */
	if (child_index(type, DW_TAG_member, name, &m) < 0 ||
	    !dwarf_attr(&m, DW_AT_data_member_location, &a) || dwarf_formudata(&a, &off))
		return -1;
	return (int64_t)off;
}

/* Answers f from die if die is what f asks about; true when it did. */
static bool answer(Dwarf_Die *die, const struct godwarf_fact *f, int64_t *out)
{
	int tag = dwarf_tag(die);
	Dwarf_Attribute a;
	Dwarf_Sword v;
	Dwarf_Die c;
	int size;

	switch (f->what) {
	case GODWARF_MEMBER_OFFSET:
		if (tag != DW_TAG_structure_type)
			return false;
		*out = member_offset(die, f->sub);
		return *out >= 0;
	case GODWARF_TYPE_SIZE:
		if ((size = dwarf_bytesize(die)) < 0)
			return false;
		*out = size;
		return true;
	case GODWARF_CONSTANT:
		if (tag != DW_TAG_constant || !dwarf_attr(die, DW_AT_const_value, &a) ||
		    dwarf_formsdata(&a, &v))
			return false;
		*out = v;
		return true;
	case GODWARF_PARAM_INDEX:
		if (tag != DW_TAG_subprogram)
			return false;
		*out = child_index(die, DW_TAG_formal_parameter, f->sub, &c);
		return *out >= 0;
	}
	return false;
}

/* Calls visit on every top-level entry: Go emits its types, constants and functions there. */
static int each_top_level(const char *path, void (*visit)(Dwarf_Die *die, void *ctx), void *ctx)
{
	Dwarf_Off off = 0, next;
	size_t hsize;
	Dwarf *dw;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dw = dwarf_begin(fd, DWARF_C_READ);
	if (!dw) {
		close(fd);
		return -ENOENT;
	}
	while (dwarf_nextcu(dw, off, &next, &hsize, NULL, NULL, NULL) == 0) {
		Dwarf_Die cu, die;

		if (dwarf_offdie(dw, off + hsize, &cu) && dwarf_child(&cu, &die) == 0) {
			do
				visit(&die, ctx);
			while (dwarf_siblingof(&die, &die) == 0);
		}
		off = next;
	}
	dwarf_end(dw);
	close(fd);
	return 0;
}

struct facts_query {
	const struct godwarf_fact *want;
	size_t n;
	int64_t *out;
	int *found;
};

static void visit_fact(Dwarf_Die *die, void *ctx)
{
	struct facts_query *q = ctx;
	const char *name = dwarf_diename(die);

	for (size_t i = 0; name && i < q->n; i++)
		if (!q->found[i] && !strcmp(q->want[i].name, name))
			q->found[i] = answer(die, &q->want[i], &q->out[i]);
}

int godwarf_facts(const char *path, const struct godwarf_fact *want, size_t n, int64_t *out,
		  int *found)
{
	struct facts_query q = {want, n, out, found};

	for (size_t i = 0; i < n; i++) {
		out[i] = -1;
		found[i] = 0;
	}
	return each_top_level(path, visit_fact, &q);
}

struct offsets_query {
	const struct godwarf_member *want;
	size_t n;
	int64_t *out;
};

/* Resolves every wanted member of the struct type die, if it is one of the wanted types. */
static void visit_type(Dwarf_Die *die, void *ctx)
{
	struct offsets_query *q = ctx;
	const char *name;

	if (dwarf_tag(die) != DW_TAG_structure_type || !(name = dwarf_diename(die)))
		return;
	for (size_t i = 0; i < q->n; i++)
		if (q->out[i] < 0 && !strcmp(q->want[i].type, name))
			q->out[i] = member_offset(die, q->want[i].member);
}

int godwarf_offsets(const char *path, const struct godwarf_member *want, size_t n, int64_t *out)
{
	struct offsets_query q = {want, n, out};

	for (size_t i = 0; i < n; i++)
		out[i] = -1;
	return each_top_level(path, visit_type, &q);
}

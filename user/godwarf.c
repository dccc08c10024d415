#include "godwarf.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static int64_t member_offset(Dwarf_Die *type, const char *name)
{
	Dwarf_Die m;
	Dwarf_Attribute a;
	Dwarf_Word off;

	if (dwarf_child(type, &m) != 0)
		return -1;
	do {
		const char *mn = dwarf_diename(&m);

		if (dwarf_tag(&m) != DW_TAG_member || !mn || strcmp(mn, name))
			continue;
		/* Go writes member locations as plain constants. */
		if (!dwarf_attr(&m, DW_AT_data_member_location, &a) || dwarf_formudata(&a, &off))
			return -1;
		return (int64_t)off;
	} while (dwarf_siblingof(&m, &m) == 0);
	return -1;
}

/* Resolves every wanted member of the struct type die, if it is one of the wanted types. */
static void visit_type(Dwarf_Die *die, const struct godwarf_member *want, size_t n, int64_t *out)
{
	const char *name;

	if (dwarf_tag(die) != DW_TAG_structure_type || !(name = dwarf_diename(die)))
		return;
	for (size_t i = 0; i < n; i++)
		if (out[i] < 0 && !strcmp(want[i].type, name))
			out[i] = member_offset(die, want[i].member);
}

int godwarf_offsets(const char *path, const struct godwarf_member *want, size_t n, int64_t *out)
{
	Dwarf_Off off = 0, next;
	size_t hsize;
	Dwarf *dw;
	int fd;

	for (size_t i = 0; i < n; i++)
		out[i] = -1;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dw = dwarf_begin(fd, DWARF_C_READ);
	if (!dw) {
		close(fd);
		return -ENOENT;
	}
	/* Go emits its types as top-level entries of the compilation units. */
	while (dwarf_nextcu(dw, off, &next, &hsize, NULL, NULL, NULL) == 0) {
		Dwarf_Die cu, die;

		if (dwarf_offdie(dw, off + hsize, &cu) && dwarf_child(&cu, &die) == 0) {
			do
				visit_type(&die, want, n, out);
			while (dwarf_siblingof(&die, &die) == 0);
		}
		off = next;
	}
	dwarf_end(dw);
	close(fd);
	return 0;
}

/*
 * elfbin: libelf parses the headers once at open; everything the accessors need (segments,
 * sections, symbol tables) is copied or pinned then, so accessors only read and are safe to use
 * from several threads. All data pointers point into the caller's (or our mmap'd)
 * image and are bounds-checked against it, because the file is untrusted.
 */
#include "elfbin.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errmsg.h"

struct section {
	const char *name;
	uint32_t type;
	uint64_t addr;
	uint64_t offset;
	uint64_t size;
	uint64_t align;
};

struct symtab {
	Elf_Data *syms;
	size_t count;
	const char *strs;
	size_t strsz;
};

struct elfbin {
	const uint8_t *image;
	size_t size;
	bool mapped;
	Elf *elf;
	uint16_t type;
	uint64_t entry;
	GElf_Phdr *phdrs;
	size_t nphdrs;
	struct section *secs;
	size_t nsecs;
	struct symtab symtab; /* .symtab */
	struct symtab dynsym; /* .dynsym */
};

/* True when [off, off+len) lies inside the image; written to survive overflowing sums. */
static bool in_image(const struct elfbin *eb, uint64_t off, uint64_t len)
{
	return off <= eb->size && len <= eb->size - off;
}

static int load_phdrs(struct elfbin *eb)
{
	size_t n;
	if (elf_getphdrnum(eb->elf, &n) != 0)
		return -EINVAL;
	if (n == 0)
		return 0;
	eb->phdrs = calloc(n, sizeof(*eb->phdrs));
	if (!eb->phdrs)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (!gelf_getphdr(eb->elf, (int)i, &eb->phdrs[i]))
			return -EINVAL;
	}
	eb->nphdrs = n;
	return 0;
}

/* Pins a symbol table and its string table; a malformed one is ignored rather than fatal. */
static void load_symtab(struct elfbin *eb, Elf_Scn *scn, const GElf_Shdr *sh, struct symtab *st)
{
	if (st->syms || sh->sh_entsize != sizeof(Elf64_Sym))
		return;
	Elf_Scn *strscn = elf_getscn(eb->elf, sh->sh_link);
	GElf_Shdr strsh;
	if (!strscn || !gelf_getshdr(strscn, &strsh) || strsh.sh_type != SHT_STRTAB)
		return;
	Elf_Data *syms = elf_getdata(scn, NULL);
	Elf_Data *strs = elf_getdata(strscn, NULL);
	if (!syms || !syms->d_buf || !strs || !strs->d_buf || strs->d_size == 0)
		return;
	st->syms = syms;
	st->count = syms->d_size / sizeof(Elf64_Sym);
	st->strs = strs->d_buf;
	st->strsz = strs->d_size;
}

static int load_sections(struct elfbin *eb)
{
	size_t n, shstrndx;
	if (elf_getshdrnum(eb->elf, &n) != 0)
		return -EINVAL;
	if (n == 0)
		return 0;
	if (elf_getshdrstrndx(eb->elf, &shstrndx) != 0)
		shstrndx = SHN_UNDEF;
	eb->secs = calloc(n, sizeof(*eb->secs));
	if (!eb->secs)
		return -ENOMEM;
	for (Elf_Scn *scn = elf_nextscn(eb->elf, NULL); scn; scn = elf_nextscn(eb->elf, scn)) {
		GElf_Shdr sh;
		if (eb->nsecs == n || !gelf_getshdr(scn, &sh))
			return -EINVAL;
		const char *name = shstrndx ? elf_strptr(eb->elf, shstrndx, sh.sh_name) : NULL;
		eb->secs[eb->nsecs++] = (struct section){
		    .name = name ? name : "",
		    .type = sh.sh_type,
		    .addr = sh.sh_addr,
		    .offset = sh.sh_offset,
		    .size = sh.sh_size,
		    .align = sh.sh_addralign,
		};
		if (sh.sh_type == SHT_SYMTAB)
			load_symtab(eb, scn, &sh, &eb->symtab);
		else if (sh.sh_type == SHT_DYNSYM)
			load_symtab(eb, scn, &sh, &eb->dynsym);
	}
	return 0;
}

/*
 * Only 64-bit little-endian files are accepted, and that is checked before libelf sees the image:
 * for any other encoding libelf may convert headers, and the image must stay untouched (it is
 * mapped read-only, or owned by the caller).
 */
static int parse(struct elfbin *eb, char *err, size_t errlen)
{
	if (eb->size < EI_NIDENT || memcmp(eb->image, ELFMAG, SELFMAG) != 0) {
		errmsg(err, errlen, "not an ELF file");
		return -EINVAL;
	}
	if (eb->image[EI_CLASS] != ELFCLASS64 || eb->image[EI_DATA] != ELFDATA2LSB) {
		errmsg(err, errlen, "not a 64-bit little-endian ELF file");
		return -EINVAL;
	}
	elf_version(EV_CURRENT);
	eb->elf = elf_memory((char *)eb->image, eb->size);
	GElf_Ehdr eh;
	if (!eb->elf || elf_kind(eb->elf) != ELF_K_ELF || !gelf_getehdr(eb->elf, &eh)) {
		errmsg(err, errlen, "bad ELF header: %s", elf_errmsg(-1));
		return -EINVAL;
	}
	eb->type = eh.e_type;
	eb->entry = eh.e_entry;
	int rc = load_phdrs(eb);
	if (rc == 0)
		rc = load_sections(eb);
	if (rc != 0)
		errmsg(err, errlen, "bad ELF headers: %s",
		       rc == -ENOMEM ? "out of memory" : "corrupt");
	return rc;
}

int elfbin_open_mem(const void *data, size_t size, struct elfbin **out, char *err, size_t errlen)
{
	*out = NULL;
	struct elfbin *eb = calloc(1, sizeof(*eb));
	if (!eb) {
		errmsg(err, errlen, "out of memory");
		return -ENOMEM;
	}
	eb->image = data;
	eb->size = size;
	int rc = parse(eb, err, errlen);
	if (rc != 0) {
		elfbin_close(eb);
		return rc;
	}
	*out = eb;
	return 0;
}

int elfbin_open(const char *path, struct elfbin **out, char *err, size_t errlen)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int rc = -errno;
		errmsg(err, errlen, "%s: %s", path, strerror(errno));
		return rc;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0) {
		errmsg(err, errlen, "%s: not a regular non-empty file", path);
		close(fd);
		return -EINVAL;
	}
	void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	int map_errno = errno;
	close(fd);
	if (map == MAP_FAILED) {
		errmsg(err, errlen, "%s: mmap: %s", path, strerror(map_errno));
		return -map_errno;
	}
	int rc = elfbin_open_mem(map, (size_t)st.st_size, out, err, errlen);
	if (rc != 0) {
		munmap(map, (size_t)st.st_size);
		return rc;
	}
	(*out)->mapped = true;
	return 0;
}

void elfbin_close(struct elfbin *eb)
{
	if (!eb)
		return;
	if (eb->elf)
		elf_end(eb->elf);
	if (eb->mapped)
		munmap((void *)eb->image, eb->size);
	free(eb->phdrs);
	free(eb->secs);
	free(eb);
}

bool elfbin_is_pie(const struct elfbin *eb)
{
	return eb->type == ET_DYN;
}

uint64_t elfbin_base_vaddr(const struct elfbin *eb)
{
	uint64_t base = UINT64_MAX;
	for (size_t i = 0; i < eb->nphdrs; i++) {
		const GElf_Phdr *ph = &eb->phdrs[i];
		if (ph->p_type != PT_LOAD)
			continue;
		uint64_t v = ph->p_vaddr;
		/* A non-power-of-two alignment is malformed; the address is then taken as is. */
		if (ph->p_align > 1 && (ph->p_align & (ph->p_align - 1)) == 0)
			v &= ~(ph->p_align - 1);
		if (v < base)
			base = v;
	}
	return base == UINT64_MAX ? 0 : base;
}

static int find_in(const struct symtab *st, const char *name, size_t len, uint64_t *vaddr,
		   uint64_t *size)
{
	for (size_t i = 1; i < st->count; i++) {
		GElf_Sym sym;
		if (!gelf_getsym(st->syms, (int)i, &sym) || sym.st_shndx == SHN_UNDEF)
			continue;
		if (sym.st_name >= st->strsz || st->strsz - sym.st_name <= len)
			continue;
		const char *s = st->strs + sym.st_name;
		if (memcmp(s, name, len) == 0 && s[len] == '\0') {
			if (vaddr)
				*vaddr = sym.st_value;
			if (size)
				*size = sym.st_size;
			return 0;
		}
	}
	return -ENOENT;
}

int elfbin_symbol(const struct elfbin *eb, const char *name, uint64_t *vaddr, uint64_t *size)
{
	size_t len = strlen(name);
	if (find_in(&eb->symtab, name, len, vaddr, size) == 0)
		return 0;
	return find_in(&eb->dynsym, name, len, vaddr, size);
}

uint64_t elfbin_entry(const struct elfbin *eb)
{
	return eb->entry;
}

bool elfbin_has_symtab(const struct elfbin *eb)
{
	return eb->symtab.count > 1;
}

/* The PT_LOAD whose file-backed bytes contain vaddr, or NULL. */
static const GElf_Phdr *load_segment(const struct elfbin *eb, uint64_t vaddr)
{
	for (size_t i = 0; i < eb->nphdrs; i++) {
		const GElf_Phdr *ph = &eb->phdrs[i];
		if (ph->p_type == PT_LOAD && vaddr >= ph->p_vaddr &&
		    vaddr - ph->p_vaddr < ph->p_filesz && in_image(eb, ph->p_offset, ph->p_filesz))
			return ph;
	}
	return NULL;
}

int elfbin_vaddr_to_offset(const struct elfbin *eb, uint64_t vaddr, uint64_t *offset)
{
	const GElf_Phdr *ph = load_segment(eb, vaddr);
	if (!ph)
		return -ENOENT;
	*offset = ph->p_offset + (vaddr - ph->p_vaddr);
	return 0;
}

const void *elfbin_vaddr_ptr(const struct elfbin *eb, uint64_t vaddr, size_t *avail,
			     uint32_t *flags)
{
	const GElf_Phdr *ph = load_segment(eb, vaddr);
	if (!ph)
		return NULL;
	uint64_t delta = vaddr - ph->p_vaddr;
	*avail = (size_t)(ph->p_filesz - delta);
	if (flags)
		*flags = ph->p_flags;
	return eb->image + ph->p_offset + delta;
}

static const struct section *section_by_name(const struct elfbin *eb, const char *name)
{
	for (size_t i = 0; i < eb->nsecs; i++) {
		if (strcmp(eb->secs[i].name, name) == 0)
			return &eb->secs[i];
	}
	return NULL;
}

static const uint8_t *section_data(const struct elfbin *eb, const struct section *s)
{
	if (s->type == SHT_NOBITS || !in_image(eb, s->offset, s->size))
		return NULL;
	return eb->image + s->offset;
}

const void *elfbin_section(const struct elfbin *eb, const char *name, uint64_t *vaddr, size_t *size)
{
	const struct section *s = section_by_name(eb, name);
	const uint8_t *data = s ? section_data(eb, s) : NULL;
	if (!data)
		return NULL;
	if (vaddr)
		*vaddr = s->addr;
	if (size)
		*size = (size_t)s->size;
	return data;
}

int elfbin_read_vaddr(const struct elfbin *eb, uint64_t vaddr, void *buf, size_t len)
{
	size_t avail;
	const void *p = elfbin_vaddr_ptr(eb, vaddr, &avail, NULL);
	if (!p || avail < len)
		return -ENOENT;
	memcpy(buf, p, len);
	return 0;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/*
 * Finds the first note named name (including its NUL padding, namesz bytes) of type type in a note
 * area. Notes are padded to 4 bytes, or 8 in areas aligned to 8 (.note.gnu.property).
 */
static const uint8_t *note_in(const uint8_t *p, size_t len, uint64_t align, const char *name,
			      uint32_t namesz, uint32_t type, size_t *desclen)
{
	size_t pad = align == 8 ? 8 : 4;
	size_t off = 0;
	while (len - off >= 12) {
		uint32_t nsz = le32(p + off), dsz = le32(p + off + 4), typ = le32(p + off + 8);
		size_t name_span = ((size_t)nsz + pad - 1) / pad * pad;
		size_t desc_span = ((size_t)dsz + pad - 1) / pad * pad;
		size_t body = len - off - 12;
		if (name_span > body || desc_span > body - name_span)
			return NULL;
		const uint8_t *nm = p + off + 12;
		if (typ == type && nsz == namesz && memcmp(nm, name, namesz) == 0) {
			*desclen = dsz;
			return nm + name_span;
		}
		off += 12 + name_span + desc_span;
	}
	return NULL;
}

/* Searches SHT_NOTE sections, or PT_NOTE segments in files without section headers. */
static const uint8_t *find_note(const struct elfbin *eb, const char *name, uint32_t namesz,
				uint32_t type, size_t *desclen)
{
	bool have_sections = false;
	for (size_t i = 0; i < eb->nsecs; i++) {
		const struct section *s = &eb->secs[i];
		const uint8_t *data = s->type == SHT_NOTE ? section_data(eb, s) : NULL;
		if (!data)
			continue;
		have_sections = true;
		const uint8_t *d = note_in(data, s->size, s->align, name, namesz, type, desclen);
		if (d)
			return d;
	}
	for (size_t i = 0; !have_sections && i < eb->nphdrs; i++) {
		const GElf_Phdr *ph = &eb->phdrs[i];
		if (ph->p_type != PT_NOTE || !in_image(eb, ph->p_offset, ph->p_filesz))
			continue;
		const uint8_t *d = note_in(eb->image + ph->p_offset, ph->p_filesz, ph->p_align,
					   name, namesz, type, desclen);
		if (d)
			return d;
	}
	return NULL;
}

/* The Go linker's note: name "Go\0\0", type 4 (cmd/link ELF_NOTE_GOBUILDID_TAG). */
#define GO_NOTE_BUILDID 4

void elfbin_build_id(const struct elfbin *eb, char *buf, size_t len)
{
	if (!len)
		return;
	buf[0] = '\0';
	size_t n;
	const uint8_t *d = find_note(eb, "GNU", 4, NT_GNU_BUILD_ID, &n);
	if (d) {
		static const char hex[] = "0123456789abcdef";
		size_t i;
		for (i = 0; i < n && 2 * i + 2 < len; i++) {
			buf[2 * i] = hex[d[i] >> 4];
			buf[2 * i + 1] = hex[d[i] & 15];
		}
		buf[2 * i] = '\0';
		return;
	}
	d = find_note(eb, "Go\0", 4, GO_NOTE_BUILDID, &n);
	if (d) {
		const uint8_t *nul = memchr(d, '\0', n);
		size_t sl = nul ? (size_t)(nul - d) : n;
		if (sl >= len)
			sl = len - 1;
		memcpy(buf, d, sl);
		buf[sl] = '\0';
	}
}

static const char buildinfo_magic[14] = "\xff Go buildinf:";
enum { BUILDINFO_ALIGN = 16, BUILDINFO_HDR = 32, BUILDINFO_INLINE = 2 };

/*
 * Where the linker put the build info blob: its own section, else the start of the first writable
 * non-executable segment (debug/buildinfo's elfExe.DataStart).
 */
static const uint8_t *buildinfo_area(const struct elfbin *eb, size_t *len)
{
	const struct section *s = section_by_name(eb, ".go.buildinfo");
	if (s) {
		const uint8_t *d = section_data(eb, s);
		*len = d ? (size_t)s->size : 0;
		return d;
	}
	for (size_t i = 0; i < eb->nphdrs; i++) {
		const GElf_Phdr *ph = &eb->phdrs[i];
		if (ph->p_type == PT_LOAD && (ph->p_flags & (PF_X | PF_W)) == PF_W &&
		    in_image(eb, ph->p_offset, ph->p_filesz)) {
			*len = (size_t)ph->p_filesz;
			return eb->image + ph->p_offset;
		}
	}
	return NULL;
}

/* Reads an unsigned LEB128 varint of at most 10 bytes; returns bytes used, 0 on error. */
static size_t uvarint(const uint8_t *p, size_t len, uint64_t *v)
{
	*v = 0;
	for (size_t i = 0; i < len && i < 10; i++) {
		*v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80))
			return i + 1;
	}
	return 0;
}

/*
 * Go 1.18 and later write the version and then the module info inline after the 32-byte header
 * (flags bit 2), each a varint-prefixed string. Older binaries hold pointers to them instead, which
 * this does not follow: the pclntab reader does not support those releases either. index 0 is the
 * version, 1 the module info.
 */
static int buildinfo_string(const struct elfbin *eb, int index, const uint8_t **str, size_t *slen)
{
	size_t n = 0;
	const uint8_t *d = buildinfo_area(eb, &n);
	size_t off = 0;
	while (d && off + BUILDINFO_HDR <= n && memcmp(d + off, buildinfo_magic, 14) != 0)
		off += BUILDINFO_ALIGN;
	if (!d || off + BUILDINFO_HDR > n || !(d[off + 15] & BUILDINFO_INLINE))
		return -ENOENT;
	off += BUILDINFO_HDR;
	for (int i = 0;; i++) {
		uint64_t sl;
		size_t used = uvarint(d + off, n - off, &sl);
		if (!used || sl > n - off - used)
			return -ENOENT;
		if (i == index) {
			*str = d + off + used;
			*slen = (size_t)sl;
			return 0;
		}
		off += used + (size_t)sl;
	}
}

const char *elfbin_go_version(const struct elfbin *eb, size_t *len)
{
	const uint8_t *s;
	if (buildinfo_string(eb, 0, &s, len) != 0 || *len == 0 || memchr(s, '\0', *len))
		return NULL;
	return (const char *)s;
}

const char *elfbin_go_modinfo(const struct elfbin *eb, size_t *len)
{
	const uint8_t *s;
	return buildinfo_string(eb, 1, &s, len) == 0 ? (const char *)s : NULL;
}

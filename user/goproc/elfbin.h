/*
 * elfbin: read-only access to an ELF executable on disk (or in memory, for fuzzing), through
 * libelf. Every accessor validates what it reads: the file is untrusted input.
 */
#ifndef HEAPSPY_ELFBIN_H
#define HEAPSPY_ELFBIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct elfbin;

/* Opens and maps path. On failure returns -errno or -EINVAL and writes a one-line reason to err. */
int elfbin_open(const char *path, struct elfbin **out, char *err, size_t errlen);
/* Same over a caller-owned buffer that must outlive the elfbin. */
int elfbin_open_mem(const void *data, size_t size, struct elfbin **out, char *err, size_t errlen);
void elfbin_close(struct elfbin *eb);

/* ET_DYN: position-independent, loaded at a bias. */
bool elfbin_is_pie(const struct elfbin *eb);
/* Lowest PT_LOAD p_vaddr rounded down to its alignment, to compute the load bias of a PIE. */
uint64_t elfbin_base_vaddr(const struct elfbin *eb);
/* e_entry: where execution starts (Go's own linker: _rt0_amd64_linux). */
uint64_t elfbin_entry(const struct elfbin *eb);
/* Looks name up in .symtab, then .dynsym. Returns 0, or -ENOENT. */
int elfbin_symbol(const struct elfbin *eb, const char *name, uint64_t *vaddr, uint64_t *size);
bool elfbin_has_symtab(const struct elfbin *eb);
/* Converts a link-time virtual address to its offset in the file (for uprobes). 0 or -ENOENT. */
int elfbin_vaddr_to_offset(const struct elfbin *eb, uint64_t vaddr, uint64_t *offset);
/*
 * Section contents by name (NULL if absent or out of bounds); *vaddr and *size are set when
 * non-NULL.
 */
const void *elfbin_section(const struct elfbin *eb, const char *name, uint64_t *vaddr,
			   size_t *size);
/*
 * The file bytes at link-time address vaddr: *avail bytes are file-backed from there to the end of
 * its PT_LOAD segment, whose p_flags go to *flags when non-NULL. NULL when vaddr is not
 * file-backed.
 */
const void *elfbin_vaddr_ptr(const struct elfbin *eb, uint64_t vaddr, size_t *avail,
			     uint32_t *flags);
/*
 * Reads len bytes at link-time address vaddr from the file image (e.g. in .noptrdata). 0, or
 * -ENOENT when any of them is not file-backed (.bss).
 */
int elfbin_read_vaddr(const struct elfbin *eb, uint64_t vaddr, void *buf, size_t len);
/* GNU build ID as lowercase hex, else the Go build ID string; "" if neither. */
void elfbin_build_id(const struct elfbin *eb, char *buf, size_t len);
/*
 * Go version ("go1.23.5") from .go.buildinfo, *len bytes, not NUL-terminated; NULL when absent
 * (gorelease_version also reads the runtime's own copy).
 */
const char *elfbin_go_version(const struct elfbin *eb, size_t *len);
/*
 * The module info of .go.buildinfo (runtime/debug.BuildInfo as text, with its "build\tKEY=VALUE"
 * settings), *len bytes, not NUL-terminated; NULL when absent.
 */
const char *elfbin_go_modinfo(const struct elfbin *eb, size_t *len);

#endif

/*
 * libFuzzer target: an arbitrary file opened as an ELF binary, then every elfbin accessor and the
 * whole gosym path on top of it (pclntab search, moduledata scan, lookups, name index).
 */
#include <stddef.h>
#include <stdint.h>

#include "elfbin.h"
#include "gorelease.h"
#include "gosym.h"

static void exercise_vaddr(const struct elfbin *eb, uint64_t vaddr)
{
	uint64_t off;
	size_t avail;
	uint32_t flags;
	uint8_t buf[16];
	elfbin_vaddr_to_offset(eb, vaddr, &off);
	elfbin_vaddr_ptr(eb, vaddr, &avail, &flags);
	elfbin_read_vaddr(eb, vaddr, buf, sizeof(buf));
}

static void exercise_symbols(const struct elfbin *eb)
{
	static const char *const names[] = {"runtime.MemProfileRate", "runtime.mbuckets",
					    "runtime.pclntab", "main.main"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		uint64_t vaddr, size;
		if (elfbin_symbol(eb, names[i], &vaddr, &size) == 0)
			exercise_vaddr(eb, vaddr);
	}
	static const char *const sections[] = {".text", ".gopclntab", ".go.buildinfo", ".noptrdata",
					       ".bss"};
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		uint64_t vaddr;
		size_t size;
		if (elfbin_section(eb, sections[i], &vaddr, &size))
			exercise_vaddr(eb, vaddr + size / 2);
	}
	exercise_vaddr(eb, elfbin_base_vaddr(eb));
}

static void exercise_gosym(const struct elfbin *eb)
{
	struct gosym *g;
	char err[128];
	if (gosym_open(eb, &g, err, sizeof(err)) != 0)
		return;
	static const char *const names[] = {"main.main", "runtime.mProf_Malloc"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		uint64_t entry, end;
		if (gosym_func(g, names[i], &entry, &end) != 0)
			continue;
		struct hs_frame frames[16];
		for (uint64_t pc = entry; pc < end && pc - entry < 2048; pc++)
			gosym_lookup(g, pc, frames, 16);
	}
	gosym_magic(g);
	/* The runtime's strings, found through its code when there are no symbols. */
	char buf[64];
	const char *source;
	gorelease_version(eb, g, buf, sizeof(buf), &source);
	gorelease_goexperiment(eb, g, buf, sizeof(buf));
	gosym_close(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct elfbin *eb;
	char err[128];
	if (elfbin_open_mem(data, size, &eb, err, sizeof(err)) != 0)
		return 0;
	char small[5], big[128];
	elfbin_is_pie(eb);
	elfbin_has_symtab(eb);
	elfbin_build_id(eb, small, sizeof(small));
	elfbin_build_id(eb, big, sizeof(big));
	const char *source;
	gorelease_version(eb, NULL, small, sizeof(small), &source);
	gorelease_version(eb, NULL, big, sizeof(big), &source);
	exercise_symbols(eb);
	exercise_gosym(eb);
	elfbin_close(eb);
	return 0;
}

/*
 * libFuzzer target for the pclntab reader. Input: a little-endian uint32 n, n bytes of pclntab,
 * then the go:func.* bytes that inline trees are read from. Each part is copied to a buffer of its
 * exact size so that AddressSanitizer sees any read past either one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gosym.h"

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void lookups(const struct gosym *g, uint64_t text_start)
{
	struct hs_frame frames[8];
	static const char *const names[] = {"main.main", "runtime.mProf_Malloc", "runtime.goexit"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		uint64_t entry, end;
		if (gosym_func(g, names[i], &entry, &end) != 0)
			continue;
		for (uint64_t pc = entry; pc < end && pc - entry < 1024; pc++)
			gosym_lookup(g, pc, frames, 8);
	}
	for (uint64_t k = 0; k < 256; k++)
		gosym_lookup(g, text_start + k * 509, frames, 1 + (int)(k % 8));
	gosym_magic(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4)
		return 0;
	size_t n =
	    (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 | (size_t)data[3] << 24;
	if (n > size - 4)
		n = size - 4;
	uint8_t *tab = malloc(n ? n : 1);
	uint8_t *gofunc = malloc(size - 4 - n ? size - 4 - n : 1);
	memcpy(tab, data + 4, n);
	memcpy(gofunc, data + 4 + n, size - 4 - n);
	struct gosym *g;
	char err[128];
	/* Go 1.26 and later leave the header's text start 0: the reader then takes the caller's. */
	const uint64_t default_text = 0x401000;
	uint64_t text = n >= 32 && le64(tab + 24) ? le64(tab + 24) : default_text;
	if (gosym_open_pclntab(tab, n, default_text, &g, err, sizeof(err)) == 0) {
		lookups(g, text);
		gosym_set_funcdata(g, gofunc, size - 4 - n);
		lookups(g, text);
		gosym_close(g);
	}
	free(tab);
	free(gofunc);
	return 0;
}

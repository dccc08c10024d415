/* A hand-made pclntab, for tests that need symbols without building a Go program. */
#ifndef HEAPSPY_TEST_PCLNTAB_H
#define HEAPSPY_TEST_PCLNTAB_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PCLNTAB_MAX 1024

/*
 * A Go 1.20+ table of n functions, names[i] at 0x1000 + 0x10*i up to the next, all in /src/f.go,
 * line 10 for their first 8 bytes and 12 after. Writes at most PCLNTAB_MAX bytes to t and returns
 * the table's size, 0 if it would not fit. With one function: funcnametab at 72, cutab 80, filetab
 * 84, pctab 96, pcln (functab, then the funcs) 108.
 */
static size_t synthetic_pclntab(uint8_t *t, const char *const *names, uint32_t n)
{
	/*
	 * Offset 0 means "no table"; at 1 the pcfile table (file 0 up to +0x10), at 4 the pcln
	 * table (+11 to 10 up to +8, then +2 to 12 up to +0x10). Deltas are zigzag varints.
	 */
	static const uint8_t pctab[] = {0, 0x02, 0x10, 0x00, 0x16, 0x08, 0x04, 0x08, 0x00};
	static const char file[] = "/src/f.go";
	size_t names_len = 0;
	for (uint32_t i = 0; i < n; i++)
		names_len += strlen(names[i]) + 1;
	const size_t cu = (72 + names_len + 7) & ~(size_t)7, files = cu + 4;
	const size_t pcs = (files + sizeof(file) + 3) & ~(size_t)3;
	const size_t pcln = (pcs + sizeof(pctab) + 3) & ~(size_t)3;
	const size_t functab_len = (2 * (size_t)n + 1) * 4, func_len = 11 * 4; /* u32s */
	const size_t size = pcln + functab_len + n * func_len;
	if (size > PCLNTAB_MAX)
		return 0;

	memset(t, 0, size);
	const uint64_t words[] = {n, 1, 0x1000, 72, cu, files, pcs, pcln};
	memcpy(t, "\xf1\xff\xff\xff\x00\x00\x01\x08", 8);
	for (int i = 0; i < 8; i++)
		memcpy(t + 8 + 8 * i, &words[i], 8);
	memcpy(t + files, file, sizeof(file));
	memcpy(t + pcs, pctab, sizeof(pctab));
	uint32_t name = 0;
	for (uint32_t i = 0; i < n; i++) {
		const uint32_t entry[] = {0x10 * i, (uint32_t)(functab_len + i * func_len)};
		/* entryOff, nameOff, then at 5 and 6 where its pcfile and pcln tables are. */
		const uint32_t func[11] = {[0] = 0x10 * i, [1] = name, [5] = 1, [6] = 4};
		memcpy(t + 72 + name, names[i], strlen(names[i]) + 1);
		name += (uint32_t)strlen(names[i]) + 1;
		memcpy(t + pcln + 8 * i, entry, sizeof(entry));
		memcpy(t + pcln + functab_len + i * func_len, func, sizeof(func));
	}
	const uint32_t end = 0x10 * n;
	memcpy(t + pcln + 8 * n, &end, sizeof(end));
	return size;
}

#endif

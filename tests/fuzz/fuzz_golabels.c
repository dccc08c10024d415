/*
 * libFuzzer target: golabels' decoder over an arbitrary memory image, as a hostile or corrupt
 * target could present it: the first byte picks the layout (a slice of pairs, or a map's buckets
 * old and new) and where the set's pointer points; the rest is memory mapped at BASE, every address
 * outside it unreadable. The decoder must stay within its bounds whatever the pointers and lengths.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "golabels.h"

#define BASE 0x10000u

struct image {
	const uint8_t *mem;
	size_t len;
};

static int image_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
	const struct image *im = ctx;

	if (addr < BASE || addr - BASE > im->len || len > im->len - (addr - BASE))
		return -5;
	memcpy(buf, im->mem + (addr - BASE), len);
	return 0;
}

static int64_t image_cycle(void *ctx)
{
	(void)ctx;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct image im = {data + 1, size ? size - 1 : 0};
	struct golabels l;
	struct label_set s;

	if (size < 1)
		return 0;
	golabels_init(&l, data[0] & 1, image_read, image_cycle, &im);
	if (golabels_decode(&l, BASE + (data[0] >> 1) * 8, &s) == 0)
		label_set_free(&s);
	/* The cache and interning on top: twice, the second a hit. */
	golabels_id(&l, BASE + (data[0] >> 1) * 8, 1);
	golabels_id(&l, BASE + (data[0] >> 1) * 8, 1);
	golabels_free(&l);
	return 0;
}

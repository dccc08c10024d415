/* array: growing a heap-allocated array one element at a time, doubling its capacity. */
#ifndef HEAPSPY_ARRAY_H
#define HEAPSPY_ARRAY_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

/* Makes room in *arr (len elements of elem bytes, room for *cap) for one more. 0 or -ENOMEM. */
static inline int array_reserve(void **arr, size_t *cap, size_t len, size_t elem)
{
	size_t ncap = *cap ? *cap * 2 : 64;
	void *p;

	if (len < *cap)
		return 0;
	if (ncap > SIZE_MAX / elem)
		return -ENOMEM;
	p = realloc(*arr, ncap * elem);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

#endif

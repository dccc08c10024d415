#include "u64map.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* splitmix64's finalizer: addresses and PCs share low bits, so they must be mixed before masking.
 */
static uint64_t mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

uint64_t u64_mix(uint64_t h, uint64_t v)
{
	return mix(h ^ (v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2)));
}

void u64map_free(struct u64map *m)
{
	free(m->slots);
	free(m->used);
	memset(m, 0, sizeof(*m));
}

static size_t slot_of(const struct u64map *m, uint64_t key)
{
	size_t i = mix(key) & (m->cap - 1);

	while (m->used[i] && m->slots[i].key != key)
		i = (i + 1) & (m->cap - 1);
	return i;
}

uint64_t *u64map_get(const struct u64map *m, uint64_t key)
{
	size_t i;

	if (!m->cap)
		return NULL;
	i = slot_of(m, key);
	return m->used[i] ? &m->slots[i].val : NULL;
}

static int grow(struct u64map *m)
{
	struct u64map n = {.cap = m->cap ? m->cap * 2 : 64};

	n.slots = malloc(n.cap * sizeof(*n.slots));
	n.used = calloc(n.cap, 1);
	if (!n.slots || !n.used) {
		u64map_free(&n);
		return -ENOMEM;
	}
	for (size_t i = 0; i < m->cap; i++) {
		if (m->used[i]) {
			size_t j = slot_of(&n, m->slots[i].key);

			n.used[j] = 1;
			n.slots[j] = m->slots[i];
		}
	}
	n.len = m->len;
	u64map_free(m);
	*m = n;
	return 0;
}

int u64map_put(struct u64map *m, uint64_t key, uint64_t val)
{
	size_t i;

	/* Keep the load under 3/4 so probe sequences stay short. */
	if ((m->len + 1) * 4 > m->cap * 3 && grow(m) != 0)
		return -ENOMEM;
	i = slot_of(m, key);
	if (!m->used[i]) {
		m->used[i] = 1;
		m->slots[i].key = key;
		m->len++;
	}
	m->slots[i].val = val;
	return 0;
}

bool u64map_find(const struct u64map *m, uint64_t hash, u64map_same_fn same, const void *ctx,
		 uint64_t *val, uint64_t *key)
{
	uint64_t *v;

	for (;; hash++) {
		v = u64map_get(m, hash);
		if (!v) {
			*key = hash;
			return false;
		}
		if (same(ctx, *v)) {
			*val = *v;
			return true;
		}
	}
}

bool u64map_del(struct u64map *m, uint64_t key)
{
	size_t mask = m->cap - 1, i, j;

	if (!m->cap)
		return false;
	i = slot_of(m, key);
	if (!m->used[i])
		return false;
	/* Backward-shift: pull later members of the probe run into the hole they would probe past.
	 */
	for (j = (i + 1) & mask; m->used[j]; j = (j + 1) & mask) {
		size_t home = mix(m->slots[j].key) & mask;

		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	m->used[i] = 0;
	m->len--;
	return true;
}

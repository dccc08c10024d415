/*
 * heapprof: the profile built from heapagg's sites over a hand-made symbol table, read back as
 * pprof readers see it. runtime/pprof writes a location only for frames some sample keeps.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gostack.h"
#include "heapprof.h"
#include "pclntab.h"
#include "profile_decode.h"

/*
 * Functions at 0x1000, 0x1010, ... 0x1040: a return address 0x10*i + 5 is in names[i]; goroutines
 * start as if called from runtime.goexit.
 */
static const char *const names[] = {"runtime.mallocgc", "runtime.newobject", "main.alloc",
				    "main.main", "runtime.goexit"};

static void add(struct heapagg *a, uint32_t i, uint64_t size, const uint64_t *pcs, uint32_t n)
{
	struct hs_alloc_event e = {
	    .hdr = {.type = HS_EV_ALLOC, .cycle = 1, .ts = i, .tid = i},
	    .addr = 0x100000 + 0x1000 * (uint64_t)i,
	    .size = size,
	    .rate = 512 * 1024, /* as the probe reads MemProfileRate */
	    .nframes = n,
	};
	memcpy(e.pcs, pcs, n * sizeof(*pcs));
	CHECK(heapagg_alloc(a, &e) == 0);
}

static bool referenced(const pb_profile *pb, uint64_t id)
{
	for (size_t i = 0; i < pb->n_sample; i++)
		for (size_t k = 0; k < pb->sample[i]->n_location_id; k++)
			if (pb->sample[i]->location_id[k] == id)
				return true;
	return false;
}

static const struct heap_row *row_of(const struct heapprof *h, const char *function)
{
	for (size_t i = 0; i < h->nrows; i++)
		if (strcmp(h->rows[i].function, function) == 0)
			return &h->rows[i];
	return NULL;
}

static void test_only_kept_frames_are_locations(void)
{
	uint8_t tab[PCLNTAB_MAX];
	size_t size = synthetic_pclntab(tab, names, sizeof(names) / sizeof(names[0]));
	struct target t = {.bias = 0, .map_start = 0x1000, .map_limit = 0x2000, .display = "prog"};
	char err[128];
	CHECK(size && gosym_open_pclntab(tab, size, 0, &t.sym, err, sizeof(err)) == 0);
	if (!t.sym)
		return;

	/* Two stacks under the allocator's frames, and one with nothing but (trim keeps it all). */
	const uint64_t via_newobject[] = {0x1005, 0x1015, 0x1025, 0x1035};
	const uint64_t direct[] = {0x1005, 0x1035};
	const uint64_t runtime_only[] = {0x1008, 0x1018};
	struct heapagg a;
	heapagg_init(&a);
	add(&a, 0, 64, via_newobject, 4);
	add(&a, 1, 32, direct, 2);
	add(&a, 2, 16, runtime_only, 2);
	/* The site of via_newobject, seen from another depth of the allocator and to the root. */
	const uint64_t same_site[] = {0x1018, 0x1025, 0x1035, 0x1041};
	add(&a, 3, 64, same_site, 4);

	struct heapprof h;
	struct heapprof_meta m = {.rate = 512 * 1024, .cycle = HEAPAGG_UNKNOWN_CYCLE};
	CHECK(heapprof_build(&h, &t, &a, &m) == 0);
	/* The leak report trims stacks no sample of the profile holds, before it is written. */
	const uint64_t unsampled[] = {0x100a, 0x101a, 0x1028, 0x1041};
	uint64_t shown[4];
	CHECK(gostack_shown(&t, unsampled, 4, shown) == 1 && shown[0] == unsampled[2]);
	CHECK(gostack_shown(&t, runtime_only, 2, shown) == 2 && shown[0] == runtime_only[0] &&
	      shown[1] == runtime_only[1]);

	pb_profile *pb = encode_decode(h.p);
	CHECK(pb != NULL);
	for (size_t i = 0; pb && i < pb->n_location; i++) {
		if (!referenced(pb, pb->location[i]->id))
			fprintf(stderr, "  location %#lx: no sample references it\n",
				(unsigned long)pb->location[i]->address);
		CHECK(referenced(pb, pb->location[i]->id));
	}
	/* main.alloc, main.main, and both frames of the runtime-only stack; no runtime.goexit. */
	CHECK(pb && pb->n_location == 4);
	/* One sample per site as shown: via_newobject and same_site are one. */
	CHECK(pb && pb->n_sample == 3);

	const struct heap_row *r = row_of(&h, "main.alloc");
	CHECK(r && strcmp(r->file, "/src/f.go") == 0 && r->line == 10);
	/* Two samples at 512 KiB, unsampled as runtime/pprof does. */
	double est = 2 * heap_scale(64, m.rate);
	CHECK(r && r->inuse_objects == (int64_t)est && r->inuse_bytes == (int64_t)(est * 64));
	CHECK(row_of(&h, "main.main") != NULL);
	CHECK(row_of(&h, "runtime.mallocgc") != NULL);
	CHECK(h.nrows == 3);

	perftools__profiles__profile__free_unpacked(pb, NULL);
	heapprof_free(&h);
	heapagg_free(&a);
	gosym_close(t.sym);
}

int main(void)
{
	int failures = 0;
	RUN(test_only_kept_frames_are_locations);
	return failures;
}

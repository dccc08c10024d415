#include "probes.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int probes_resolve(const struct target *t, const char *name, struct probe_point *p)
{
	uint64_t entry, end, size;

	memset(p, 0, sizeof(*p));
	p->name = name;
	if (gosym_func(t->sym, name, &entry, &end) != 0 &&
	    elfbin_symbol(t->elf, name, &entry, &size) != 0)
		return -ENOENT;
	if (elfbin_vaddr_to_offset(t->elf, entry, &p->offset) != 0)
		return -ENOENT;
	p->vaddr = entry;
	return 0;
}

static uint64_t data_symbol(const struct target *t, const char *name)
{
	uint64_t vaddr, size;

	return elfbin_symbol(t->elf, name, &vaddr, &size) == 0 ? vaddr : 0;
}

int probes_resolve_heap(const struct target *t, struct heap_probes *hp, char *err, size_t errlen)
{
	memset(hp, 0, sizeof(*hp));
	if (probes_resolve(t, "runtime.mProf_Malloc", &hp->mprof_malloc) ||
	    probes_resolve(t, "runtime.freeSpecial", &hp->free_special)) {
		snprintf(err, errlen, "%s (%s) has no runtime.mProf_Malloc or runtime.freeSpecial",
			 t->display, t->go_version);
		return -ENOENT;
	}
	probes_resolve(t, "runtime.gcenable", &hp->gcenable);
	hp->mem_profile_rate = data_symbol(t, "runtime.MemProfileRate");
	hp->mbuckets = data_symbol(t, "runtime.mbuckets");
	hp->mprof_cycle = data_symbol(t, "runtime.mProfCycle");

	/* Go 1.23 passes the M first: mProf_Malloc(mp *m, p unsafe.Pointer, size uintptr). */
	hp->cfg.malloc_arg_base = t->go_minor >= 23 ? 1 : 0;
	/* Go 1.23 added _KindSpecialWeakHandle before _KindSpecialProfile. */
	hp->cfg.profile_kind = t->go_minor >= 23 ? 3 : 2;
	/* special{next *special; offset uint16; kind byte}; specialprofile{special; b *bucket} */
	hp->cfg.kind_offset = 10;
	hp->cfg.bucket_offset = 16;
	return 0;
}

#include "probes.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "disasm.h"

#define MAX_REFS 256

int probes_resolve(const struct target *t, const char *name, struct probe_point *p)
{
	uint64_t entry, end, size;

	memset(p, 0, sizeof(*p));
	p->name = name;
	if (gosym_func(t->sym, name, &entry, &end) != 0 &&
	    elfbin_symbol(t->elf, name, &entry, &size) != 0)
		return -ENOENT;
	/* Past the stack-bound check: measured 4x cheaper per hit, and the registers are the
	 * same. */
	p->vaddr = entry + disasm_stack_check_len(t->elf, entry);
	if (elfbin_vaddr_to_offset(t->elf, p->vaddr, &p->offset) != 0)
		return -ENOENT;
	return 0;
}

static uint64_t data_symbol(const struct target *t, const char *name)
{
	uint64_t vaddr, size;

	return elfbin_symbol(t->elf, name, &vaddr, &size) == 0 ? vaddr : 0;
}

/* Where the symbol table is gone, reads the variables off the code of the functions using them. */
static void vars_from_code(const struct target *t, struct heap_probes *hp)
{
	static struct rip_ref refs[MAX_REFS];
	uint64_t entry, end;
	int n;

	/* profilealloc inlines nextSample: `if MemProfileRate == 1`. */
	if (!hp->mem_profile_rate &&
	    gosym_func(t->sym, "runtime.profilealloc", &entry, &end) == 0) {
		n = disasm_rip_refs(t->elf, entry, end, refs, MAX_REFS);
		for (int i = 0; i < n && !hp->mem_profile_rate; i++)
			if (!refs[i].lea && refs[i].size == 8 && refs[i].cmp_imm &&
			    refs[i].imm == 1)
				hp->mem_profile_rate = refs[i].target;
	}
	/* mProf_Free starts with `mProfCycle.read()`, a 32-bit load. */
	if (!hp->mprof_cycle && gosym_func(t->sym, "runtime.mProf_Free", &entry, &end) == 0) {
		n = disasm_rip_refs(t->elf, entry, end, refs, MAX_REFS);
		for (int i = 0; i < n && !hp->mprof_cycle; i++)
			if (!refs[i].lea && refs[i].size == 4)
				hp->mprof_cycle = refs[i].target;
	}
	/* stkbucket links new memory buckets onto mbuckets, among a few other globals. */
	if (!hp->mbuckets && gosym_func(t->sym, "runtime.stkbucket", &entry, &end) == 0) {
		n = disasm_rip_refs(t->elf, entry, end, refs, MAX_REFS);
		for (int i = 0; i < n; i++) {
			bool seen = false;

			if (!refs[i].lea && refs[i].size != 8)
				continue;
			for (int k = 0; k < hp->nmbuckets_candidates; k++)
				seen |= hp->mbuckets_candidates[k] == refs[i].target;
			if (!seen && hp->nmbuckets_candidates < 16)
				hp->mbuckets_candidates[hp->nmbuckets_candidates++] =
				    refs[i].target;
		}
	}
	hp->from_code = true;
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
	if (!elfbin_has_symtab(t->elf))
		vars_from_code(t, hp);

	/* Go 1.23 passes the M first: mProf_Malloc(mp *m, p unsafe.Pointer, size uintptr). */
	hp->cfg.malloc_arg_base = t->go_minor >= 23 ? 1 : 0;
	/* Go 1.23 added _KindSpecialWeakHandle before _KindSpecialProfile. */
	hp->cfg.profile_kind = t->go_minor >= 23 ? 3 : 2;
	/* special{next *special; offset uint16; kind byte}; specialprofile{special; b *bucket} */
	hp->cfg.kind_offset = 10;
	hp->cfg.bucket_offset = 16;
	return 0;
}

void probes_describe(const struct target *t, const struct heap_probes *hp, FILE *f)
{
	const char *how = hp->from_code ? "from the code" : "from the symbol table";
	const struct probe_point *pts[] = {&hp->mprof_malloc, &hp->free_special, &hp->gcenable};
	const struct {
		const char *name;
		uint64_t addr;
	} vars[] = {
	    {"runtime.MemProfileRate", hp->mem_profile_rate},
	    {"runtime.mProfCycle", hp->mprof_cycle},
	    {"runtime.mbuckets", hp->mbuckets},
	};

	fprintf(f, "heapspy: %s: %s, %s, %s\n", t->display, t->go_version,
		elfbin_is_pie(t->elf) ? "PIE" : "not PIE",
		elfbin_has_symtab(t->elf) ? "symbol table" : "stripped");
	for (size_t i = 0; i < sizeof(pts) / sizeof(pts[0]); i++)
		fprintf(f, "heapspy: probe %s at 0x%llx (file offset 0x%llx)\n", pts[i]->name,
			(unsigned long long)pts[i]->vaddr, (unsigned long long)pts[i]->offset);
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		fprintf(f, "heapspy: variable %s at 0x%llx (%s)\n", vars[i].name,
			(unsigned long long)vars[i].addr, vars[i].addr ? how : "not found");
	for (int i = 0; i < hp->nmbuckets_candidates; i++)
		fprintf(f, "heapspy: runtime.mbuckets candidate 0x%llx\n",
			(unsigned long long)hp->mbuckets_candidates[i]);
}

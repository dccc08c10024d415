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

int probes_resolve_return(const struct target *t, const char *name, struct probe_point *p)
{
	uint64_t entry, end, rets[2];

	memset(p, 0, sizeof(*p));
	p->name = name;
	if (gosym_func(t->sym, name, &entry, &end) != 0 ||
	    disasm_rets(t->elf, entry, end, rets, 2) != 1 ||
	    elfbin_vaddr_to_offset(t->elf, rets[0], &p->offset) != 0)
		return -ENOENT;
	p->vaddr = rets[0];
	return 0;
}

static uint64_t data_symbol(const struct target *t, const char *name)
{
	uint64_t vaddr, size;

	return elfbin_symbol(t->elf, name, &vaddr, &size) == 0 ? vaddr : 0;
}

static int refs_of(const struct target *t, const char *fn, struct rip_ref *refs)
{
	uint64_t entry, end;

	if (gosym_func(t->sym, fn, &entry, &end) != 0)
		return 0;
	return disasm_rip_refs(t->elf, entry, end, refs, MAX_REFS);
}

/*
 * MemProfileRate is the one variable heapspy writes, so two unrelated parts of the runtime must
 * agree on where it is: profilealloc reads it (8 bytes), and the GODEBUG parser stores
 * memprofilerate=N into it. Returns the parser's name, or NULL when they do not agree on exactly
 * one address.
 */
static const char *mem_profile_rate_from_code(const struct target *t, uint64_t *addr)
{
	static const char *const parsers[] = {"runtime.parsegodebug", "runtime.parsedebugvars"};
	static struct rip_ref reads[MAX_REFS], stores[MAX_REFS];
	int nr = refs_of(t, "runtime.profilealloc", reads);

	for (size_t p = 0; p < sizeof(parsers) / sizeof(parsers[0]); p++) {
		int ns = refs_of(t, parsers[p], stores), agree = 0;

		for (int i = 0; i < nr; i++)
			for (int k = 0; k < ns; k++)
				if (!reads[i].lea && !reads[i].store && reads[i].size == 8 &&
				    stores[k].store && stores[k].size == 8 &&
				    stores[k].target == reads[i].target &&
				    (!agree || *addr != reads[i].target)) {
					*addr = reads[i].target;
					agree++;
				}
		if (agree == 1)
			return parsers[p];
	}
	*addr = 0;
	return NULL;
}

/* Where the symbol table is gone, reads the variables off the code of the functions using them. */
static void vars_from_code(const struct target *t, struct heap_probes *hp)
{
	static struct rip_ref refs[MAX_REFS];
	int n;

	if (!hp->mem_profile_rate)
		hp->rate_confirmed_by = mem_profile_rate_from_code(t, &hp->mem_profile_rate);
	/* mProf_Free starts with `mProfCycle.read()`, a 32-bit load. */
	n = hp->mprof_cycle ? 0 : refs_of(t, "runtime.mProf_Free", refs);
	for (int i = 0; i < n && !hp->mprof_cycle; i++)
		if (!refs[i].lea && refs[i].size == 4)
			hp->mprof_cycle = refs[i].target;
	/* stkbucket links new memory buckets onto mbuckets, among a few other globals. */
	n = hp->mbuckets ? 0 : refs_of(t, "runtime.stkbucket", refs);
	for (int i = 0; i < n; i++) {
		bool seen = false;

		if (!refs[i].lea && refs[i].size != 8)
			continue;
		for (int k = 0; k < hp->nmbuckets_candidates; k++)
			seen |= hp->mbuckets_candidates[k] == refs[i].target;
		if (!seen && hp->nmbuckets_candidates < 16)
			hp->mbuckets_candidates[hp->nmbuckets_candidates++] = refs[i].target;
	}
	hp->from_code = true;
}

int probes_resolve_heap(const struct target *t, struct heap_probes *hp, bool layout, char *err,
			size_t errlen)
{
	memset(hp, 0, sizeof(*hp));
	if (probes_resolve(t, "runtime.mProf_Malloc", &hp->mprof_malloc) ||
	    probes_resolve(t, "runtime.freeSpecial", &hp->free_special)) {
		snprintf(err, errlen, "%s (%s) has no runtime.mProf_Malloc or runtime.freeSpecial",
			 t->display, t->go_version);
		return -ENOENT;
	}
	probes_resolve(t, "runtime.gcenable", &hp->gcenable);
	probes_resolve(t, "runtime.mProf_PostSweep", &hp->mprof_postsweep);
	hp->mem_profile_rate = data_symbol(t, "runtime.MemProfileRate");
	hp->mbuckets = data_symbol(t, "runtime.mbuckets");
	hp->mprof_cycle = data_symbol(t, "runtime.mProfCycle");
	if (!elfbin_has_symtab(t->elf))
		vars_from_code(t, hp);
	if (!layout)
		return 0;
	hp->has_layout = true;
	return heaplayout_resolve(t, &hp->layout, err, errlen);
}

void probes_describe(const struct target *t, const struct heap_probes *hp, FILE *f)
{
	const char *how = hp->from_code ? "from the code" : "from the symbol table";
	const struct probe_point *pts[] = {&hp->mprof_malloc, &hp->free_special, &hp->gcenable,
					   &hp->mprof_postsweep};
	const struct {
		const char *name;
		uint64_t addr;
	} vars[] = {
	    {"runtime.MemProfileRate", hp->mem_profile_rate},
	    {"runtime.mProfCycle", hp->mprof_cycle},
	    {"runtime.mbuckets", hp->mbuckets},
	};

	fprintf(f, "heapspy: %s: %s (from %s), %s, %s\n", t->display, t->go_version,
		t->go_version_source, elfbin_is_pie(t->elf) ? "PIE" : "not PIE",
		elfbin_has_symtab(t->elf) ? "symbol table" : "stripped");
	for (size_t i = 0; i < sizeof(pts) / sizeof(pts[0]); i++)
		fprintf(f, "heapspy: probe %s at 0x%llx (file offset 0x%llx)\n", pts[i]->name,
			(unsigned long long)pts[i]->vaddr, (unsigned long long)pts[i]->offset);
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		fprintf(f, "heapspy: variable %s at 0x%llx (%s)\n", vars[i].name,
			(unsigned long long)vars[i].addr, vars[i].addr ? how : "not found");
	if (hp->rate_confirmed_by)
		fprintf(f,
			"heapspy: runtime.MemProfileRate confirmed: runtime.profilealloc reads it, "
			"%s stores GODEBUG's memprofilerate in it\n",
			hp->rate_confirmed_by);
	for (int i = 0; i < hp->nmbuckets_candidates; i++)
		fprintf(f, "heapspy: runtime.mbuckets candidate 0x%llx\n",
			(unsigned long long)hp->mbuckets_candidates[i]);
	if (hp->has_layout)
		heaplayout_describe(&hp->layout, f);
}

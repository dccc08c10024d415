/*
 * gosym: a reader for the Go 1.18+ pclntab, following runtime/symtab.go and runtime/symtabinl.go.
 * The table is untrusted: every offset is checked against the span it indexes before it is used,
 * and a lookup that meets corrupt data returns fewer or placeholder frames, never reads outside.
 */
#include "gosym.h"

#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errmsg.h"

enum {
	MAGIC_118 = 0xfffffff0, /* Go 1.18, 1.19 */
	MAGIC_120 = 0xfffffff1, /* Go 1.20 and later */
	/* pcHeader: magic, pad1, pad2, minLC, ptrSize, then 8 pointer-sized words. */
	HDR_SIZE = 8 + 8 * 8,
	PCDATA_INLTREEINDEX = 2,
	FUNCDATA_INLTREE = 3,
};

/* pcHeader words, after the first 8 bytes. */
enum { W_NFUNC, W_NFILES, W_TEXTSTART, W_FUNCNAME, W_CU, W_FILETAB, W_PCTAB, W_PCLN };

struct span {
	const uint8_t *p;
	size_t len;
};

/* A function name as runtime.funcNameForPrint prints it, for names that differ. */
struct alias {
	uint32_t nameoff;
	const char *name;
};

/* Open-addressing hash of function names; a slot holds a functab index + 1, 0 when empty. */
struct name_index {
	size_t mask;
	uint32_t slots[];
};

struct gosym {
	struct span tab;
	struct span funcnames, cutab, filetab, pctab, pcln;
	uint32_t magic;
	uint32_t quantum;
	uint64_t text_start;
	uint32_t nfunc;
	size_t func_size; /* _func up to its pcdata/funcdata arrays */
	struct span gofunc;
	size_t inl_size; /* inlinedCall */
	size_t inl_name;
	size_t inl_parent_pc;
	size_t inl_func_id;
	struct alias *aliases; /* sorted by nameoff */
	size_t naliases;
	char *arena;
	/* Built by the first gosym_func; published atomically, as callers may run concurrently. */
	_Atomic(struct name_index *) names;
};

/* One _func record, decoded. */
struct func {
	uint64_t entry;
	uint32_t nameoff;
	uint32_t pcfile;
	uint32_t pcln;
	uint32_t npcdata;
	uint32_t cuoff;
	uint32_t nfuncdata;
	uint8_t func_id;
	const uint8_t *pcdata; /* npcdata pctab offsets, then nfuncdata go:func.* offsets */
};

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static uint64_t hdr_word(const uint8_t *tab, int w)
{
	return le64(tab + 8 + 8 * w);
}

/* The NUL-terminated string at off in s, or NULL when off or the terminator is out of bounds. */
static const char *str_at(struct span s, uint64_t off)
{
	if (off >= s.len || !memchr(s.p + off, '\0', s.len - off))
		return NULL;
	return (const char *)s.p + off;
}

static uint32_t functab_entry(const struct gosym *g, size_t i)
{
	return le32(g->pcln.p + 8 * i);
}

/* Layout-dependent sizes: Go 1.20 added _func.startLine and rewrote inlinedCall. */
static void set_layout(struct gosym *g)
{
	if (g->magic == MAGIC_118) {
		/* parent int16, funcID uint8, _ byte, file, line, func_, parentPc int32 */
		g->func_size = 40;
		g->inl_size = 20;
		g->inl_name = 12;
		g->inl_parent_pc = 16;
		g->inl_func_id = 2;
	} else {
		/* funcID uint8, _ [3]byte, nameOff, parentPc, startLine int32 */
		g->func_size = 44;
		g->inl_size = 16;
		g->inl_name = 4;
		g->inl_parent_pc = 8;
		g->inl_func_id = 0;
	}
}

static bool header_ok(const uint8_t *tab, size_t size, char *err, size_t errlen)
{
	if (size < HDR_SIZE) {
		errmsg(err, errlen, "pclntab: truncated header");
		return false;
	}
	uint32_t magic = le32(tab);
	if (magic != MAGIC_118 && magic != MAGIC_120) {
		errmsg(err, errlen, "pclntab: unsupported magic %#x", magic);
		return false;
	}
	if (tab[4] != 0 || tab[5] != 0 || (tab[6] != 1 && tab[6] != 2 && tab[6] != 4) ||
	    tab[7] != 8) {
		errmsg(err, errlen, "pclntab: bad header (pad, quantum or pointer size)");
		return false;
	}
	return true;
}

/* The linker writes the tables in this order; requiring it gives each one a tight end bound. */
static bool split_tables(struct gosym *g, char *err, size_t errlen)
{
	const uint64_t off[] = {
	    hdr_word(g->tab.p, W_FUNCNAME), hdr_word(g->tab.p, W_CU),
	    hdr_word(g->tab.p, W_FILETAB),  hdr_word(g->tab.p, W_PCTAB),
	    hdr_word(g->tab.p, W_PCLN),	    g->tab.len,
	};
	struct span *dst[] = {&g->funcnames, &g->cutab, &g->filetab, &g->pctab, &g->pcln};
	if (off[0] < HDR_SIZE) {
		errmsg(err, errlen, "pclntab: table offsets overlap the header");
		return false;
	}
	for (int i = 0; i < 5; i++) {
		if (off[i] > off[i + 1]) {
			errmsg(err, errlen, "pclntab: table offsets out of order or out of bounds");
			return false;
		}
	}
	for (int i = 0; i < 5; i++)
		*dst[i] = (struct span){g->tab.p + off[i], (size_t)(off[i + 1] - off[i])};
	return true;
}

static bool nfunc_ok(struct gosym *g, char *err, size_t errlen)
{
	uint64_t nfunc = hdr_word(g->tab.p, W_NFUNC);
	/* nfunc {entryoff, funcoff} pairs, then the end of the last function. */
	if (nfunc == 0 || nfunc > UINT32_MAX || 2 * nfunc + 1 > g->pcln.len / 4) {
		errmsg(err, errlen, "pclntab: bad function count %llu", (unsigned long long)nfunc);
		return false;
	}
	g->nfunc = (uint32_t)nfunc;
	return true;
}

/* Everything but the functab order, in constant time, so that scanning for a header stays linear.
 */
static bool parse_header(struct gosym *g, const uint8_t *data, size_t size, char *err,
			 size_t errlen)
{
	if (!header_ok(data, size, err, errlen))
		return false;
	g->tab = (struct span){data, size};
	g->magic = le32(data);
	g->quantum = data[6];
	g->text_start = hdr_word(data, W_TEXTSTART);
	set_layout(g);
	return split_tables(g, err, errlen) && nfunc_ok(g, err, errlen);
}

/* Binary search needs a sorted functab; checking it once here keeps every lookup cheap. */
static bool functab_sorted(const struct gosym *g, char *err, size_t errlen)
{
	for (size_t i = 0; i < g->nfunc; i++) {
		if (functab_entry(g, i) > functab_entry(g, i + 1)) {
			errmsg(err, errlen, "pclntab: functab not sorted at %zu", i);
			return false;
		}
	}
	return true;
}

/*
 * Go 1.20 and later name generic instantiations by their shapes ("f[go.shape.int]"), and
 * runtime.CallersFrames prints them through funcNameForPrint as "f[...]": everything from the first
 * '[' to the last ']' becomes "[...]". Names are borrowed from the table, so the printed forms are
 * made once here, for the few names that have brackets. Go 1.19 already stores the printed form.
 * Called twice: to size the arena (g->arena NULL), then to fill it. Returns the arena size.
 */
static size_t scan_aliases(struct gosym *g)
{
	const char *base = (const char *)g->funcnames.p, *end = base + g->funcnames.len;
	const char *p = base, *open;
	size_t used = 0;
	g->naliases = 0;
	while ((open = memchr(p, '[', (size_t)(end - p)))) {
		const char *start = open, *nul = memchr(open, '\0', (size_t)(end - open));
		while (start > p && start[-1] != '\0')
			start--;
		if (!nul || start - base > UINT32_MAX)
			break;
		p = nul + 1;
		const char *close = memrchr(open, ']', (size_t)(nul - open));
		if (!close)
			continue;
		size_t head = (size_t)(open - start), tail = (size_t)(nul - close - 1);
		if (g->arena) {
			char *dst = g->arena + used;
			memcpy(dst, start, head);
			memcpy(dst + head, "[...]", 5);
			memcpy(dst + head + 5, close + 1, tail);
			dst[head + 5 + tail] = '\0';
			g->aliases[g->naliases] = (struct alias){(uint32_t)(start - base), dst};
		}
		g->naliases++;
		used += head + 5 + tail + 1;
	}
	return used;
}

static int build_aliases(struct gosym *g)
{
	size_t size = scan_aliases(g);
	if (!g->naliases)
		return 0;
	g->arena = malloc(size);
	g->aliases = calloc(g->naliases, sizeof(*g->aliases));
	if (!g->arena || !g->aliases)
		return -ENOMEM;
	scan_aliases(g);
	return 0;
}

int gosym_open_pclntab(const void *data, size_t size, uint64_t text_start, struct gosym **out,
		       char *err, size_t errlen)
{
	*out = NULL;
	struct gosym *g = calloc(1, sizeof(*g));
	if (!g) {
		errmsg(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (!parse_header(g, data, size, err, errlen) || !functab_sorted(g, err, errlen)) {
		free(g);
		return -EINVAL;
	}
	if (!g->text_start)
		g->text_start = text_start;
	if (build_aliases(g) != 0) {
		errmsg(err, errlen, "out of memory");
		gosym_close(g);
		return -ENOMEM;
	}
	*out = g;
	return 0;
}

void gosym_set_funcdata(struct gosym *g, const void *gofunc, size_t size)
{
	g->gofunc = (struct span){gofunc, size};
}

void gosym_close(struct gosym *g)
{
	if (!g)
		return;
	free(atomic_load(&g->names));
	free(g->aliases);
	free(g->arena);
	free(g);
}

uint32_t gosym_magic(const struct gosym *g)
{
	return g->magic;
}

static bool decode_func(const struct gosym *g, size_t i, struct func *f)
{
	uint32_t funcoff = le32(g->pcln.p + 8 * i + 4);
	if (funcoff > g->pcln.len || g->pcln.len - funcoff < g->func_size)
		return false;
	const uint8_t *p = g->pcln.p + funcoff;
	/* functab and _func must agree, or the pc tables would be read from a wrong base. */
	if (le32(p) != functab_entry(g, i))
		return false;
	*f = (struct func){
	    .entry = g->text_start + le32(p),
	    .nameoff = le32(p + 4),
	    .pcfile = le32(p + 20),
	    .pcln = le32(p + 24),
	    .npcdata = le32(p + 28),
	    .cuoff = le32(p + 32),
	    /* _func ends funcID, flag, _ [1]byte, nfuncdata uint8 in every supported layout */
	    .func_id = p[g->func_size - 4],
	    .nfuncdata = p[g->func_size - 1],
	    .pcdata = p + g->func_size,
	};
	uint64_t arrays = 4 * ((uint64_t)f->npcdata + f->nfuncdata);
	return arrays <= g->pcln.len - funcoff - g->func_size;
}

/* The functab index of the function containing pc (runtime.findfunc), or -1. */
static long find_func(const struct gosym *g, uint64_t pc)
{
	if (pc < g->text_start || pc - g->text_start >= functab_entry(g, g->nfunc))
		return -1;
	uint32_t off = (uint32_t)(pc - g->text_start);
	if (off < functab_entry(g, 0))
		return -1;
	size_t lo = 0, hi = g->nfunc;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (functab_entry(g, mid) <= off)
			lo = mid;
		else
			hi = mid;
	}
	return (long)lo;
}

/* runtime.readvarint, limited to the 5 bytes a uint32 needs. */
static bool readvarint(const uint8_t **pp, const uint8_t *end, uint32_t *v)
{
	const uint8_t *p = *pp;
	uint32_t val = 0;
	for (int shift = 0; shift < 35; shift += 7) {
		if (p == end)
			return false;
		uint8_t b = *p++;
		val |= (uint32_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*pp = p;
			*v = val;
			return true;
		}
	}
	return false;
}

/*
 * runtime.pcvalue: decodes the pc-value table at off in pctab up to targetpc. Values are kept
 * unsigned while accumulating, as corrupt deltas may wrap.
 */
static int32_t pcvalue(const struct gosym *g, const struct func *f, uint32_t off, uint64_t target)
{
	if (off == 0 || off >= g->pctab.len)
		return -1;
	const uint8_t *p = g->pctab.p + off, *end = g->pctab.p + g->pctab.len;
	uint64_t pc = f->entry;
	uint32_t val = UINT32_MAX;
	for (;;) {
		uint32_t uvdelta, pcdelta;
		if (!readvarint(&p, end, &uvdelta) || (uvdelta == 0 && pc != f->entry))
			return -1;
		val += (0u - (uvdelta & 1)) ^ (uvdelta >> 1);
		if (!readvarint(&p, end, &pcdelta))
			return -1;
		pc += (uint64_t)pcdelta * g->quantum;
		if (target < pc)
			return (int32_t)val;
	}
}

static int32_t pcdata_value(const struct gosym *g, const struct func *f, uint32_t table,
			    uint64_t pc)
{
	if (table >= f->npcdata)
		return -1;
	return pcvalue(g, f, le32(f->pcdata + 4 * table), pc);
}

static void file_line(const struct gosym *g, const struct func *f, uint64_t pc, struct hs_frame *fr)
{
	fr->file = "";
	fr->line = 0;
	int32_t fileno = pcvalue(g, f, f->pcfile, pc);
	int32_t line = pcvalue(g, f, f->pcln, pc);
	if (fileno < 0 || line < 0)
		return;
	uint64_t cu = (uint64_t)f->cuoff + (uint32_t)fileno;
	if (cu >= g->cutab.len / 4)
		return;
	uint32_t fileoff = le32(g->cutab.p + 4 * cu);
	const char *file = fileoff == UINT32_MAX ? NULL : str_at(g->filetab, fileoff);
	if (file) {
		fr->file = file;
		fr->line = (uint32_t)line;
	}
}

static const char *func_name(const struct gosym *g, uint32_t nameoff)
{
	const char *s = str_at(g->funcnames, nameoff);
	if (!s)
		return "?";
	if (!strchr(s, '['))
		return s;
	size_t lo = 0, hi = g->naliases;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (g->aliases[mid].nameoff < nameoff)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < g->naliases && g->aliases[lo].nameoff == nameoff)
		return g->aliases[lo].name;
	return s;
}

/* The offset of f's inline tree in go:func.*, or -1 when it has none or it is unavailable. */
static int64_t inl_tree(const struct gosym *g, const struct func *f)
{
	if (!g->gofunc.p || FUNCDATA_INLTREE >= f->nfuncdata)
		return -1;
	uint32_t off = le32(f->pcdata + 4 * ((size_t)f->npcdata + FUNCDATA_INLTREE));
	return off == UINT32_MAX || off >= g->gofunc.len ? -1 : (int64_t)off;
}

/* The inlinedCall record in effect at pc, or NULL in the physical function's own code. */
static const uint8_t *inl_call(const struct gosym *g, const struct func *f, int64_t tree,
			       uint64_t pc)
{
	int32_t ix = pcdata_value(g, f, PCDATA_INLTREEINDEX, pc);
	if (ix < 0)
		return NULL;
	uint64_t at = (uint64_t)tree + (uint64_t)ix * g->inl_size;
	if (at > g->gofunc.len || g->gofunc.len - at < g->inl_size)
		return NULL;
	return g->gofunc.p + at;
}

/*
 * Mirrors runtime.inlineUnwinder: the innermost frame takes file/line at pc; each enclosing frame
 * takes them at its inlined call's parentPc, where the inline index names the next level out.
 */
int gosym_lookup(const struct gosym *g, uint64_t pc, struct hs_frame *frames, int max)
{
	long i = max > 0 ? find_func(g, pc) : -1;
	struct func f;
	if (i < 0 || !decode_func(g, (size_t)i, &f))
		return 0;
	int64_t tree = inl_tree(g, &f);
	int n = 0;
	for (;;) {
		struct hs_frame *fr = &frames[n++];
		fr->func_entry = f.entry;
		fr->pc = pc;
		file_line(g, &f, pc, fr);
		const uint8_t *call = tree >= 0 ? inl_call(g, &f, tree, pc) : NULL;
		uint32_t nameoff = call ? le32(call + g->inl_name) : f.nameoff;
		const char *symbol = str_at(g->funcnames, nameoff);
		fr->function = func_name(g, nameoff);
		fr->symbol = symbol ? symbol : fr->function;
		fr->func_id = call ? call[g->inl_func_id] : f.func_id;
		if (!call)
			return n;
		if (n == max)
			return n;
		pc = f.entry + (uint64_t)(int64_t)(int32_t)le32(call + g->inl_parent_pc);
	}
}

static uint64_t name_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
	return h;
}

static const char *name_of(const struct gosym *g, size_t i)
{
	struct func f;
	return decode_func(g, i, &f) ? str_at(g->funcnames, f.nameoff) : NULL;
}

static struct name_index *build_index(const struct gosym *g)
{
	size_t cap = 16;
	while (cap < 2 * (size_t)g->nfunc)
		cap *= 2;
	struct name_index *idx = calloc(1, sizeof(*idx) + cap * sizeof(idx->slots[0]));
	if (!idx)
		return NULL;
	idx->mask = cap - 1;
	for (size_t i = 0; i < g->nfunc; i++) {
		const char *name = name_of(g, i);
		if (!name)
			continue;
		size_t s = name_hash(name) & idx->mask;
		while (idx->slots[s])
			s = (s + 1) & idx->mask;
		idx->slots[s] = (uint32_t)i + 1;
	}
	return idx;
}

/*
 * The index is built lazily because most users only symbolize. The gosym was allocated non-const
 * by gosym_open_pclntab, so publishing the index through a cast is well defined.
 */
static const struct name_index *name_index(const struct gosym *g)
{
	struct gosym *mut = (struct gosym *)g;
	struct name_index *idx = atomic_load_explicit(&mut->names, memory_order_acquire);
	if (idx)
		return idx;
	idx = build_index(g);
	struct name_index *expected = NULL;
	if (idx && !atomic_compare_exchange_strong_explicit(
		       &mut->names, &expected, idx, memory_order_acq_rel, memory_order_acquire)) {
		free(idx);
		idx = expected;
	}
	return idx;
}

int gosym_func(const struct gosym *g, const char *name, uint64_t *entry, uint64_t *end)
{
	const struct name_index *idx = name_index(g);
	if (!idx)
		return -ENOMEM;
	for (size_t s = name_hash(name) & idx->mask; idx->slots[s]; s = (s + 1) & idx->mask) {
		size_t i = idx->slots[s] - 1;
		const char *cand = name_of(g, i);
		if (cand && strcmp(cand, name) == 0) {
			if (entry)
				*entry = g->text_start + functab_entry(g, i);
			if (end)
				*end = g->text_start + functab_entry(g, i + 1);
			return 0;
		}
	}
	return -ENOENT;
}

/* ---- Locating the table and go:func.* in an ELF file ---- */

/* How every supported amd64 table starts: magic, two zero pads, minLC 1, ptrSize 8. */
static bool looks_like_header(const uint8_t *p)
{
	static const uint8_t tail[4] = {0, 0, 1, 8};
	uint32_t magic = le32(p);
	return (magic == MAGIC_118 || magic == MAGIC_120) && memcmp(p + 4, tail, 4) == 0;
}

/*
 * Externally linked binaries merge .gopclntab into .data.rel.ro and, when stripped, keep no symbol
 * for it: scan for a header that is consistent and whose text start is executable, then parse the
 * first such candidate fully. Parsing only one keeps a crafted file from making the scan quadratic.
 */
static struct gosym *scan_section(const struct elfbin *eb, const char *name, uint64_t *vaddr)
{
	uint64_t base;
	size_t len;
	const uint8_t *p = elfbin_section(eb, name, &base, &len);
	for (size_t off = 0; p && len >= HDR_SIZE && off <= len - HDR_SIZE; off += 4) {
		struct gosym cand = {0};
		size_t avail;
		uint32_t flags = 0;
		/* From Go 1.26 on the header has no text start to check (moduledata has it). */
		if (!looks_like_header(p + off) ||
		    !parse_header(&cand, p + off, len - off, NULL, 0) ||
		    (cand.text_start &&
		     (!elfbin_vaddr_ptr(eb, cand.text_start, &avail, &flags) || !(flags & PF_X))))
			continue;
		struct gosym *g;
		if (gosym_open_pclntab(p + off, len - off, 0, &g, NULL, 0) != 0)
			return NULL;
		*vaddr = base + off;
		return g;
	}
	return NULL;
}

static struct gosym *find_pclntab(const struct elfbin *eb, uint64_t *vaddr, char *err,
				  size_t errlen)
{
	/* Internally linked PIEs put it in a relro section of its own. */
	static const char *const sections[] = {".gopclntab", ".data.rel.ro.gopclntab"};
	struct gosym *g = NULL;
	for (size_t i = 0; i < 2; i++) {
		size_t len;
		const void *p = elfbin_section(eb, sections[i], vaddr, &len);
		if (p && gosym_open_pclntab(p, len, 0, &g, err, errlen) == 0)
			return g;
	}
	uint64_t size;
	size_t avail;
	const void *p = NULL;
	if (elfbin_symbol(eb, "runtime.pclntab", vaddr, &size) == 0)
		p = elfbin_vaddr_ptr(eb, *vaddr, &avail, NULL);
	if (p &&
	    gosym_open_pclntab(p, size && size < avail ? size : avail, 0, &g, err, errlen) == 0)
		return g;
	if ((g = scan_section(eb, ".data.rel.ro", vaddr)) ||
	    (g = scan_section(eb, ".rodata", vaddr)))
		return g;
	errmsg(err, errlen, "no Go pclntab found");
	return NULL;
}

/*
 * moduledata word indices (amd64), the same from Go 1.18 to 1.27: the pcHeader pointer, the
 * funcnametab slice, minpc (the first function's entry) and text.
 */
enum { MD_PCHEADER = 0, MD_FUNCNAMETAB = 1, MD_MINPC = 20, MD_TEXT = 22 };

/*
 * Where moduledata.gofunc is: Go 1.20 inserted covctrs and ecovctrs before end; Go 1.26 stopped
 * recording textStart in the pcHeader and added epclntab after gofunc; Go 1.27 added typedesclen
 * after types and itaboffset, itabsize before rodata. rodata is always the word before gofunc.
 */
static const struct md_layout {
	uint32_t magic;
	bool textless; /* the pcHeader has no textStart; epclntab follows gofunc */
	size_t gofunc;
} md_layouts[] = {
    {MAGIC_118, false, 38}, /* 1.18, 1.19 */
    {MAGIC_120, false, 40}, /* 1.20 to 1.25 */
    {MAGIC_120, true, 40},  /* 1.26 */
    {MAGIC_120, true, 43},  /* 1.27 */
};

/*
 * moduledata starts with a pointer to the pcHeader and the funcnametab slice; its text must be the
 * header's, or, where the header records none, executable and consistent with minpc.
 */
static bool md_matches(const struct elfbin *eb, const struct gosym *g, const uint8_t *md,
		       uint64_t pclntab_vaddr, bool textless)
{
	uint64_t funcnametab = pclntab_vaddr + (uint64_t)(g->funcnames.p - g->tab.p);
	if (le64(md + 8 * MD_PCHEADER) != pclntab_vaddr ||
	    le64(md + 8 * MD_FUNCNAMETAB) != funcnametab)
		return false;
	uint64_t text = le64(md + 8 * MD_TEXT);
	if (!textless)
		return text == g->text_start;
	size_t avail;
	uint32_t flags = 0;
	return le64(md + 8 * MD_MINPC) - text == functab_entry(g, 0) &&
	       elfbin_vaddr_ptr(eb, text, &avail, &flags) && (flags & PF_X);
}

/*
 * go:func.*, which funcdata offsets (inline trees) are relative to, from the layout whose rodata
 * and gofunc are ordered, gofunc read-only and, where it exists, epclntab the table's end. Go 1.18
 * shares the 1.19 magic but, as far as we know, has no gofunc; the read-only test is what should
 * turn its moduledata down (no 1.18 toolchain was at hand to confirm), leaving physical frames.
 */
static void md_gofunc(const struct elfbin *eb, struct gosym *g, const uint8_t *md, size_t mdlen,
		      uint64_t pclntab_vaddr, bool textless)
{
	for (size_t i = 0; i < sizeof(md_layouts) / sizeof(md_layouts[0]); i++) {
		const struct md_layout *l = &md_layouts[i];
		if (l->magic != g->magic || l->textless != textless || 8 * (l->gofunc + 2) > mdlen)
			continue;
		uint64_t gofunc = le64(md + 8 * l->gofunc), rodata = le64(md + 8 * (l->gofunc - 1));
		uint64_t end = le64(md + 8 * (l->gofunc + 1));
		if (textless && (end <= pclntab_vaddr || end - pclntab_vaddr > g->tab.len))
			continue;
		size_t avail;
		uint32_t flags;
		const void *data = elfbin_vaddr_ptr(eb, gofunc, &avail, &flags);
		if (data && !(flags & (PF_W | PF_X)) && rodata <= gofunc) {
			gosym_set_funcdata(g, data, avail);
			return;
		}
	}
}

/*
 * moduledata holds what the pclntab does not: the text start from Go 1.26 on, and go:func.*.
 * It has a section of its own from Go 1.26 on (.go.module), in .noptrdata before.
 */
static void find_moduledata(const struct elfbin *eb, struct gosym *g, uint64_t pclntab_vaddr)
{
	static const char *const sections[] = {".go.module", ".noptrdata"};
	const bool textless = g->text_start == 0;
	for (size_t s = 0; s < 2; s++) {
		size_t len;
		const uint8_t *p = elfbin_section(eb, sections[s], NULL, &len);
		for (size_t off = 0;
		     p && len >= 8 * (MD_TEXT + 1) && off <= len - 8 * (MD_TEXT + 1); off += 8) {
			if (!md_matches(eb, g, p + off, pclntab_vaddr, textless))
				continue;
			if (textless)
				g->text_start = le64(p + off + 8 * MD_TEXT);
			md_gofunc(eb, g, p + off, len - off, pclntab_vaddr, textless);
			return;
		}
	}
}

/*
 * Without moduledata, a Go 1.26+ table's text start is runtime.text: by its symbol, or else the
 * start of .text, which it is when Go links internally; then the program's entry point is Go's
 * _rt0_amd64_linux, which confirms the guess. The system linker puts C code (its own entry point)
 * before runtime.text: there the guess is turned down.
 */
static bool fallback_text_start(const struct elfbin *eb, struct gosym *g)
{
	uint64_t text = 0, entry;
	if (elfbin_symbol(eb, "runtime.text", &text, NULL) == 0 && text) {
		g->text_start = text;
		return true;
	}
	if (!elfbin_section(eb, ".text", &g->text_start, NULL))
		return false;
	if (g->text_start && gosym_func(g, "_rt0_amd64_linux", &entry, NULL) == 0 &&
	    entry == elfbin_entry(eb))
		return true;
	g->text_start = 0;
	return false;
}

int gosym_open(const struct elfbin *eb, struct gosym **out, char *err, size_t errlen)
{
	uint64_t vaddr = 0;
	*out = find_pclntab(eb, &vaddr, err, errlen);
	if (!*out)
		return -ENOENT;
	find_moduledata(eb, *out, vaddr);
	if (!(*out)->text_start && !fallback_text_start(eb, *out)) {
		errmsg(err, errlen, "pclntab: cannot find where Go's code starts (no moduledata)");
		gosym_close(*out);
		*out = NULL;
		return -ENOENT;
	}
	return 0;
}

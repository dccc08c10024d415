#include "disasm.h"

#include <capstone/capstone.h>
#include <errno.h>
#include <stdlib.h>

/* Runtime functions are small; this bounds the read for a corrupt function table. */
#define MAX_FUNC_BYTES (64 << 10)

/* The register an instruction writes as its first operand, or X86_REG_INVALID. */
static x86_reg dest_reg(const cs_insn *in)
{
	const cs_x86 *x = &in->detail->x86;

	return x->op_count > 0 && x->operands[0].type == X86_OP_REG ? x->operands[0].reg
								    : X86_REG_INVALID;
}

static const cs_x86_op *rip_operand(const cs_insn *in)
{
	const cs_x86 *x = &in->detail->x86;

	for (int i = 0; i < x->op_count; i++)
		if (x->operands[i].type == X86_OP_MEM && x->operands[i].mem.base == X86_REG_RIP)
			return &x->operands[i];
	return NULL;
}

/* The instructions of [start, end), one at a time. */
struct walk {
	csh cs;
	cs_insn *in;
	uint8_t *buf;
	const uint8_t *code;
	size_t size;
	uint64_t addr;
};

static bool walk_open(struct walk *w, const struct elfbin *eb, uint64_t start, uint64_t end)
{
	size_t len = end > start ? end - start : 0;

	*w = (struct walk){.addr = start, .size = len};
	if (!len || len > MAX_FUNC_BYTES || !(w->buf = malloc(len)))
		return false;
	if (elfbin_read_vaddr(eb, start, w->buf, len) != 0 ||
	    cs_open(CS_ARCH_X86, CS_MODE_64, &w->cs)) {
		free(w->buf);
		return false;
	}
	cs_option(w->cs, CS_OPT_DETAIL, CS_OPT_ON);
	w->in = cs_malloc(w->cs);
	w->code = w->buf;
	return true;
}

static bool walk_next(struct walk *w)
{
	return w->in && cs_disasm_iter(w->cs, &w->code, &w->size, &w->addr, w->in);
}

static void walk_close(struct walk *w)
{
	if (w->in)
		cs_free(w->in, 1);
	cs_close(&w->cs);
	free(w->buf);
}

int disasm_rip_refs(const struct elfbin *eb, uint64_t start, uint64_t end, struct rip_ref *out,
		    int max)
{
	struct walk w;
	int n = 0;

	if (!walk_open(&w, eb, start, end))
		return 0;
	while (n < max && walk_next(&w)) {
		const cs_x86_op *op = rip_operand(w.in);
		struct rip_ref *r;

		if (!op)
			continue;
		r = &out[n++];
		*r = (struct rip_ref){
		    .insn = w.in->address,
		    /* RIP-relative means relative to the next instruction. */
		    .target = w.in->address + w.in->size + (uint64_t)op->mem.disp,
		    .size = op->size,
		    .lea = w.in->id == X86_INS_LEA,
		    .store = w.in->id == X86_INS_MOV && op == &w.in->detail->x86.operands[0],
		};
	}
	walk_close(&w);
	return n;
}

/* Whether in is `mov reg, qword ptr [r14 + disp]`: a field of the current g. */
static bool loads_from_g(const cs_insn *in, int64_t *disp)
{
	const cs_x86 *x = &in->detail->x86;

	if (in->id != X86_INS_MOV || x->op_count != 2 || x->operands[0].type != X86_OP_REG ||
	    x->operands[1].type != X86_OP_MEM || x->operands[1].mem.base != X86_REG_R14 ||
	    x->operands[1].mem.index != X86_REG_INVALID || x->operands[1].size != 8)
		return false;
	*disp = x->operands[1].mem.disp;
	return true;
}

int disasm_g_zero_stores(const struct elfbin *eb, uint64_t start, uint64_t end,
			 struct g_zero_store *out, int max)
{
	/* For each register, the g field it was last loaded from; -1 once anything else is. */
	int64_t from_g[X86_REG_ENDING];
	struct walk w;
	int n = 0;

	if (!walk_open(&w, eb, start, end))
		return 0;
	for (int r = 0; r < X86_REG_ENDING; r++)
		from_g[r] = -1;
	while (n < max && walk_next(&w)) {
		const cs_x86 *x = &w.in->detail->x86;
		const cs_x86_op *dst = &x->operands[0];
		x86_reg dest = dest_reg(w.in);
		int64_t disp;

		/*
		 * A call does not end the tracking: a pointer store's write barrier
		 * (runtime.gcWriteBarrierN) keeps every register. A register another call
		 * clobbers could only be mistaken where the caller asks for more than one store.
		 */
		if (loads_from_g(w.in, &disp)) {
			from_g[dest] = disp;
		} else if (dest != X86_REG_INVALID) {
			from_g[dest] = -1;
		} else if (w.in->id == X86_INS_MOV && x->op_count == 2 && dst->type == X86_OP_MEM &&
			   dst->size == 8 && dst->mem.index == X86_REG_INVALID &&
			   dst->mem.base > X86_REG_INVALID && dst->mem.base < X86_REG_ENDING &&
			   from_g[dst->mem.base] >= 0 && x->operands[1].type == X86_OP_IMM &&
			   x->operands[1].imm == 0) {
			out[n++] = (struct g_zero_store){from_g[dst->mem.base], dst->mem.disp};
		}
	}
	walk_close(&w);
	return n;
}

int disasm_rets(const struct elfbin *eb, uint64_t start, uint64_t end, uint64_t *out, int max)
{
	struct walk w;
	int n = 0;

	if (!walk_open(&w, eb, start, end))
		return 0;
	while (n < max && walk_next(&w))
		if (w.in->id == X86_INS_RET)
			out[n++] = w.in->address;
	walk_close(&w);
	return n;
}

/* A register's 64-bit parent, so that DL, EDX and RDX are one register. */
static x86_reg full_reg(x86_reg r)
{
	static const x86_reg regs[][5] = {
	    {X86_REG_RAX, X86_REG_EAX, X86_REG_AX, X86_REG_AL, X86_REG_AH},
	    {X86_REG_RBX, X86_REG_EBX, X86_REG_BX, X86_REG_BL, X86_REG_BH},
	    {X86_REG_RCX, X86_REG_ECX, X86_REG_CX, X86_REG_CL, X86_REG_CH},
	    {X86_REG_RDX, X86_REG_EDX, X86_REG_DX, X86_REG_DL, X86_REG_DH},
	    {X86_REG_RSI, X86_REG_ESI, X86_REG_SI, X86_REG_SIL},
	    {X86_REG_RDI, X86_REG_EDI, X86_REG_DI, X86_REG_DIL},
	    {X86_REG_R8, X86_REG_R8D, X86_REG_R8W, X86_REG_R8B},
	    {X86_REG_R9, X86_REG_R9D, X86_REG_R9W, X86_REG_R9B},
	    {X86_REG_R10, X86_REG_R10D, X86_REG_R10W, X86_REG_R10B},
	    {X86_REG_R11, X86_REG_R11D, X86_REG_R11W, X86_REG_R11B},
	    {X86_REG_R12, X86_REG_R12D, X86_REG_R12W, X86_REG_R12B},
	    {X86_REG_R13, X86_REG_R13D, X86_REG_R13W, X86_REG_R13B},
	    {X86_REG_R15, X86_REG_R15D, X86_REG_R15W, X86_REG_R15B},
	};

	for (size_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++)
		for (int k = 0; k < 5; k++)
			if (regs[i][k] != X86_REG_INVALID && regs[i][k] == r)
				return regs[i][0];
	return r;
}

/* [base + disp] with nothing else: a field of the struct base points to. */
static bool field_of(const cs_x86_op *op, x86_reg base)
{
	return op->type == X86_OP_MEM && op->mem.base == base && op->mem.index == X86_REG_INVALID &&
	       op->mem.segment == X86_REG_INVALID;
}

static bool op_is_reg(const cs_insn *in, int i, x86_reg full)
{
	const cs_x86 *x = &in->detail->x86;

	return x->op_count > i && x->operands[i].type == X86_OP_REG &&
	       full_reg(x->operands[i].reg) == full;
}

unsigned disasm_stack_check_len(const struct elfbin *eb, uint64_t entry)
{
	uint8_t code[32];
	const uint8_t *c = code;
	size_t size = sizeof(code);
	uint64_t addr = entry;
	unsigned len = 0;
	cs_insn *in;
	csh cs;

	if (elfbin_read_vaddr(eb, entry, code, sizeof(code)) != 0 ||
	    cs_open(CS_ARCH_X86, CS_MODE_64, &cs))
		return 0;
	cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON);
	in = cs_malloc(cs);
	if (in && cs_disasm_iter(cs, &c, &size, &addr, in)) {
		/* A frame above StackSmall compares SP less the excess: LEAQ -N(SP), R12 first. */
		x86_reg sp = X86_REG_RSP;
		unsigned before = 0;

		if (in->id == X86_INS_LEA && op_is_reg(in, 0, X86_REG_R12) &&
		    field_of(&in->detail->x86.operands[1], X86_REG_RSP)) {
			sp = X86_REG_R12;
			before = in->size;
			if (!cs_disasm_iter(cs, &c, &size, &addr, in))
				in->id = X86_INS_INVALID;
		}
		if (in->id == X86_INS_CMP && op_is_reg(in, 0, sp) &&
		    field_of(&in->detail->x86.operands[1], X86_REG_R14)) {
			unsigned cmp_len = before + in->size;

			if (cs_disasm_iter(cs, &c, &size, &addr, in) &&
			    (in->id == X86_INS_JBE || in->id == X86_INS_JA))
				len = cmp_len;
		}
	}
	cs_free(in, 1);
	cs_close(&cs);
	return len;
}

static bool op_imm(const cs_insn *in, int i, int64_t *imm)
{
	const cs_x86 *x = &in->detail->x86;

	if (x->op_count <= i || x->operands[i].type != X86_OP_IMM)
		return false;
	*imm = x->operands[i].imm;
	return true;
}

static bool ends_block(const cs_insn *in)
{
	return in->id == X86_INS_JMP || in->id == X86_INS_RET || in->id == X86_INS_UD2 ||
	       in->id == X86_INS_INT3;
}

#define MAX_CASES 64
#define MAX_PATHS 256

/* Where a path through the switch goes on: an instruction, and what the register holds there. */
struct dispatch_path {
	size_t at;
	x86_reg sw;   /* the register holding the switched-on byte */
	int64_t bias; /* case value = register value + bias (after `DEC reg`, say) */
};

struct dispatch_scan {
	const struct elfbin *eb;
	const cs_insn *in;
	size_t n;
	bool *seen;
	struct dispatch_path paths[MAX_PATHS];
	int npaths;
	int64_t bound;	   /* a jump table's largest index, from `CMP reg, n; JA default` */
	x86_reg table_reg; /* holds a jump table's address, from `LEA reg, [RIP+d]` */
	uint64_t table;
	int64_t value[MAX_CASES];
	uint64_t target[MAX_CASES];
	int ncases;
};

static void add_case(struct dispatch_scan *s, int64_t value, uint64_t target)
{
	if (s->ncases < MAX_CASES) {
		s->value[s->ncases] = value;
		s->target[s->ncases++] = target;
	}
}

/* The index of the instruction at addr, or s->n. */
static size_t insn_at(const struct dispatch_scan *s, uint64_t addr)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->in[mid].address < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->n && s->in[lo].address == addr ? lo : s->n;
}

static void go_to(struct dispatch_scan *s, uint64_t addr, const struct dispatch_path *p)
{
	size_t i = insn_at(s, addr);

	if (i < s->n && !s->seen[i] && s->npaths < MAX_PATHS)
		s->paths[s->npaths++] = (struct dispatch_path){i, p->sw, p->bias};
}

/* `JMP [table + reg*8]`: every entry of the table is a case. */
static void jump_table(struct dispatch_scan *s, const cs_x86_op *op, const struct dispatch_path *p)
{
	if (op->mem.base != s->table_reg || s->table_reg == X86_REG_INVALID ||
	    full_reg(op->mem.index) != p->sw || op->mem.scale != 8 || s->bound < 0)
		return;
	for (int64_t k = 0; k <= s->bound && k < MAX_CASES; k++) {
		uint64_t target;

		if (elfbin_read_vaddr(s->eb, s->table + (uint64_t)k * 8, &target, 8) != 0)
			return;
		add_case(s, k + p->bias, target);
	}
}

/*
 * Follows one path from p while the register holds the switched-on byte: the cases of compare
 * chains (`CMP reg, imm; JE case` or `JNE next`, then the case falls through) and jump tables, on
 * every branch, until the register is given another value.
 */
static void follow(struct dispatch_scan *s, struct dispatch_path p)
{
	for (size_t i = p.at; i < s->n && !s->seen[i]; i++) {
		const cs_insn *in = &s->in[i];
		const cs_x86 *x = &in->detail->x86;
		int64_t imm, target;

		s->seen[i] = true;
		if (in->id == X86_INS_CMP && op_is_reg(in, 0, p.sw) && op_imm(in, 1, &imm)) {
			size_t j = i + 1;

			while (j < s->n && s->in[j].id == X86_INS_NOP)
				j++;
			if (j + 1 < s->n && op_imm(&s->in[j], 0, &target)) {
				if (s->in[j].id == X86_INS_JE)
					add_case(s, imm + p.bias, (uint64_t)target);
				else if (s->in[j].id == X86_INS_JNE)
					add_case(s, imm + p.bias, s->in[j + 1].address);
				else if (s->in[j].id == X86_INS_JA)
					s->bound = imm;
			}
		} else if (in->id == X86_INS_LEA && x->operands[1].mem.base == X86_REG_RIP) {
			s->table_reg = full_reg(x->operands[0].reg);
			s->table = in->address + in->size + (uint64_t)x->operands[1].mem.disp;
		} else if (op_is_reg(in, 0, p.sw) && in->id == X86_INS_DEC) {
			p.bias++;
		} else if (op_is_reg(in, 0, p.sw) && in->id == X86_INS_SUB && op_imm(in, 1, &imm)) {
			p.bias += imm;
		} else if (op_is_reg(in, 0, p.sw) && in->id == X86_INS_ADD && op_imm(in, 1, &imm)) {
			p.bias -= imm;
		} else if (op_is_reg(in, 0, p.sw) && in->id != X86_INS_CMP &&
			   in->id != X86_INS_TEST) {
			return; /* holds something else now */
		}
		if (in->id == X86_INS_JMP && x->op_count == 1 &&
		    x->operands[0].type == X86_OP_MEM) {
			jump_table(s, &x->operands[0], &p);
			return;
		}
		if (in->id == X86_INS_JMP && op_imm(in, 0, &target))
			go_to(s, (uint64_t)target, &p);
		if (ends_block(in))
			return;
		if (in->id >= X86_INS_JAE && in->id <= X86_INS_JS && in->id != X86_INS_JMP &&
		    op_imm(in, 0, &target))
			go_to(s, (uint64_t)target, &p);
	}
}

/*
 * The case that leads to the call at index c: its code is the straight run of instructions
 * ending in the call, so its target is the nearest case target before the call with no jump or
 * return between. -1 when no case or more than one value leads there.
 */
static int case_of_call(const struct dispatch_scan *s, size_t c, size_t *first)
{
	uint64_t best = 0;
	int found = -1;

	for (int k = 0; k < s->ncases; k++)
		if (s->target[k] <= s->in[c].address && s->target[k] >= best)
			best = s->target[k];
	for (int k = 0; k < s->ncases; k++)
		if (s->target[k] == best && found >= 0 && s->value[k] != s->value[found])
			return -1;
		else if (s->target[k] == best)
			found = k;
	if (found < 0)
		return -1;
	for (*first = c; *first > 0 && s->in[*first - 1].address >= best; (*first)--)
		if (ends_block(&s->in[*first - 1]))
			return -1;
	return s->in[*first].address == best ? found : -1;
}

int disasm_dispatch(const struct elfbin *eb, uint64_t start, uint64_t end, uint64_t callee,
		    struct disasm_dispatch *d)
{
	struct dispatch_scan s = {.eb = eb, .bound = -1, .table_reg = X86_REG_INVALID};
	size_t len = end > start ? end - start : 0, call = 0, ncalls = 0, first;
	cs_insn *insns = NULL;
	uint8_t *buf;
	int rc = -ENOENT, k;
	csh cs;

	d->switch_offset = d->arg_offset = -1;
	if (!len || len > MAX_FUNC_BYTES || !(buf = malloc(len)))
		return -ENOENT;
	if (elfbin_read_vaddr(eb, start, buf, len) != 0 || cs_open(CS_ARCH_X86, CS_MODE_64, &cs)) {
		free(buf);
		return -ENOENT;
	}
	cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON);
	s.n = cs_disasm(cs, buf, len, start, 0, &insns);
	s.in = insns;
	s.seen = calloc(s.n ? s.n : 1, sizeof(*s.seen));
	for (size_t i = 0; s.seen && i < s.n; i++) {
		const cs_x86 *x = &insns[i].detail->x86;
		int64_t target;

		/* The switch: the first byte loaded from the struct the first argument points to.
		 */
		if (d->switch_offset < 0 && insns[i].id == X86_INS_MOVZX && x->op_count == 2 &&
		    x->operands[1].size == 1 && field_of(&x->operands[1], X86_REG_RAX)) {
			d->switch_offset = x->operands[1].mem.disp;
			s.paths[s.npaths++] =
			    (struct dispatch_path){i + 1, full_reg(x->operands[0].reg), 0};
		}
		if (insns[i].id == X86_INS_CALL && op_imm(&insns[i], 0, &target) &&
		    (uint64_t)target == callee) {
			call = i;
			ncalls++;
		}
	}
	while (s.npaths > 0)
		follow(&s, s.paths[--s.npaths]);
	k = ncalls == 1 ? case_of_call(&s, call, &first) : -1;
	if (k >= 0) {
		d->case_value = s.value[k];
		/* The word the case loads from the struct for the call, last before it. */
		for (size_t i = call; i-- > first && d->arg_offset < 0;) {
			const cs_x86 *x = &insns[i].detail->x86;

			if (insns[i].id == X86_INS_MOV && x->op_count == 2 &&
			    x->operands[0].type == X86_OP_REG && x->operands[1].size == 8 &&
			    field_of(&x->operands[1], X86_REG_RAX))
				d->arg_offset = x->operands[1].mem.disp;
		}
		if (d->arg_offset >= 0)
			rc = 0;
	}
	free(s.seen);
	if (insns)
		cs_free(insns, s.n);
	cs_close(&cs);
	free(buf);
	return rc;
}

int64_t disasm_nil_check(const struct elfbin *eb, uint64_t start, uint64_t end)
{
	x86_reg loaded = X86_REG_INVALID;
	int64_t off = -1, found = -1;
	struct walk w;

	if (!walk_open(&w, eb, start, end))
		return -1;
	while (found < 0 && walk_next(&w) && w.in->id != X86_INS_CALL) {
		const cs_x86 *x = &w.in->detail->x86;

		if (w.in->id == X86_INS_NOP)
			continue;
		if (loaded != X86_REG_INVALID && w.in->id == X86_INS_TEST &&
		    op_is_reg(w.in, 0, loaded) && op_is_reg(w.in, 1, loaded)) {
			while (walk_next(&w) && w.in->id == X86_INS_NOP)
				;
			if (w.in->id == X86_INS_JE)
				found = off;
			break;
		}
		loaded = X86_REG_INVALID;
		if (off < 0 && w.in->id == X86_INS_MOV && x->op_count == 2 &&
		    x->operands[0].type == X86_OP_REG && x->operands[1].size == 8 &&
		    field_of(&x->operands[1], X86_REG_RAX)) {
			loaded = full_reg(x->operands[0].reg);
			off = x->operands[1].mem.disp;
		}
	}
	walk_close(&w);
	return found;
}

int64_t disasm_first_inc(const struct elfbin *eb, uint64_t start, uint64_t end)
{
	int64_t disp = -1;
	struct walk w;

	if (!walk_open(&w, eb, start, end))
		return -1;
	while (disp < 0 && walk_next(&w)) {
		const cs_x86 *x = &w.in->detail->x86;

		if (w.in->id == X86_INS_INC && x->op_count == 1 &&
		    x->operands[0].type == X86_OP_MEM && x->operands[0].size == 8)
			disp = x->operands[0].mem.disp;
	}
	walk_close(&w);
	return disp;
}

/* Whether some 8-byte memory operand of [start, end) is [R14 + disp]: a field of the current g. */
static bool uses_g_field(const struct elfbin *eb, uint64_t start, uint64_t end, int64_t disp)
{
	struct walk w;
	bool found = false;

	if (!walk_open(&w, eb, start, end))
		return false;
	while (!found && walk_next(&w)) {
		const cs_x86 *x = &w.in->detail->x86;

		for (int i = 0; i < x->op_count; i++)
			if (field_of(&x->operands[i], X86_REG_R14) && x->operands[i].size == 8 &&
			    x->operands[i].mem.disp == disp)
				found = true;
	}
	walk_close(&w);
	return found;
}

int64_t disasm_arg_to_g_field(const struct elfbin *eb, uint64_t start, uint64_t end)
{
	struct walk w;
	int64_t disp = -1;

	if (!walk_open(&w, eb, start, end))
		return -1;
	while (disp < 0 && walk_next(&w)) {
		const cs_x86 *x = &w.in->detail->x86;
		const cs_x86_op *dst = &x->operands[0];

		/* The write barrier's buffer (R11) and the frame take copies; the field is the
		 * rest. */
		if (w.in->id == X86_INS_MOV && x->op_count == 2 && dst->type == X86_OP_MEM &&
		    dst->size == 8 && dst->mem.index == X86_REG_INVALID && dst->mem.disp > 0 &&
		    dst->mem.base != X86_REG_RSP && dst->mem.base != X86_REG_RBP &&
		    dst->mem.base != X86_REG_R11 && dst->mem.base != X86_REG_RIP &&
		    op_is_reg(w.in, 1, X86_REG_RAX))
			disp = dst->mem.disp;
	}
	walk_close(&w);
	return disp > 0 && uses_g_field(eb, start, end, disp) ? disp : -1;
}

int disasm_curg_check(const struct elfbin *eb, uint64_t start, uint64_t end, int64_t *g_m,
		      int64_t *m_curg)
{
	/* Per register: the g field it was loaded from (-1: none), and whether it holds g itself.
	 */
	int64_t from_g[X86_REG_ENDING];
	bool is_g[X86_REG_ENDING] = {false};
	struct walk w;
	int rc = -ENOENT;

	if (!walk_open(&w, eb, start, end))
		return -ENOENT;
	for (int r = 0; r < X86_REG_ENDING; r++)
		from_g[r] = -1;
	is_g[X86_REG_R14] = true;
	while (rc && walk_next(&w)) {
		const cs_x86 *x = &w.in->detail->x86;
		x86_reg dest = dest_reg(w.in);
		int64_t disp;

		if (w.in->id == X86_INS_CMP && x->op_count == 2) {
			const cs_x86_op *a = &x->operands[0], *b = &x->operands[1];

			if (a->type == X86_OP_REG && b->type == X86_OP_MEM) {
				const cs_x86_op *t = a;

				a = b;
				b = t;
			}
			if (a->type == X86_OP_MEM && a->size == 8 && b->type == X86_OP_REG &&
			    is_g[b->reg] && a->mem.base > X86_REG_INVALID &&
			    a->mem.base < X86_REG_ENDING && from_g[a->mem.base] >= 0 &&
			    field_of(a, a->mem.base)) {
				*g_m = from_g[a->mem.base];
				*m_curg = a->mem.disp;
				rc = 0;
			}
			continue;
		}
		if (w.in->id == X86_INS_CALL)
			break;
		if (loads_from_g(w.in, &disp)) {
			from_g[dest] = disp;
			is_g[dest] = false;
		} else if (w.in->id == X86_INS_MOV && x->op_count == 2 && dest != X86_REG_INVALID &&
			   x->operands[1].type == X86_OP_REG && is_g[x->operands[1].reg]) {
			from_g[dest] = -1;
			is_g[dest] = true;
		} else if (dest != X86_REG_INVALID) {
			from_g[dest] = -1;
			is_g[dest] = false;
		}
	}
	walk_close(&w);
	return rc;
}

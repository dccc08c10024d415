#include "disasm.h"

#include <capstone/capstone.h>
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

/* Whether in is `cmp reg, imm`, and the immediate. */
static bool cmp_with_imm(const cs_insn *in, x86_reg reg, int64_t *imm)
{
	const cs_x86 *x = &in->detail->x86;

	if (in->id != X86_INS_CMP || x->op_count != 2 || x->operands[0].type != X86_OP_REG ||
	    x->operands[1].type != X86_OP_IMM || x->operands[0].reg != reg)
		return false;
	*imm = x->operands[1].imm;
	return true;
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
		};
		if (!r->lea && dest_reg(w.in) != X86_REG_INVALID) {
			x86_reg reg = dest_reg(w.in);
			const uint8_t *c2 = w.code;
			size_t s2 = w.size;
			uint64_t a2 = w.addr;

			/* Peek at the next instruction without consuming it (Go pads with NOPs). */
			while (cs_disasm_iter(w.cs, &c2, &s2, &a2, w.in) && w.in->id == X86_INS_NOP)
				;
			if (w.in->id != X86_INS_NOP)
				r->cmp_imm = cmp_with_imm(w.in, reg, &r->imm);
		}
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
	if (in && cs_disasm_iter(cs, &c, &size, &addr, in) && in->id == X86_INS_CMP &&
	    in->detail->x86.op_count == 2 && in->detail->x86.operands[0].type == X86_OP_REG &&
	    in->detail->x86.operands[0].reg == X86_REG_RSP &&
	    in->detail->x86.operands[1].type == X86_OP_MEM &&
	    in->detail->x86.operands[1].mem.base == X86_REG_R14) {
		unsigned cmp_len = in->size;

		if (cs_disasm_iter(cs, &c, &size, &addr, in) &&
		    (in->id == X86_INS_JBE || in->id == X86_INS_JA))
			len = cmp_len;
	}
	cs_free(in, 1);
	cs_close(&cs);
	return len;
}

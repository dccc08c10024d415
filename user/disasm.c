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

int disasm_rip_refs(const struct elfbin *eb, uint64_t start, uint64_t end, struct rip_ref *out,
		    int max)
{
	size_t len = end > start ? end - start : 0, size;
	const uint8_t *code;
	uint8_t *buf;
	uint64_t addr = start;
	cs_insn *in;
	csh cs;
	int n = 0;

	if (!len || len > MAX_FUNC_BYTES || !(buf = malloc(len)))
		return 0;
	if (elfbin_read_vaddr(eb, start, buf, len) != 0 || cs_open(CS_ARCH_X86, CS_MODE_64, &cs)) {
		free(buf);
		return 0;
	}
	cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON);
	in = cs_malloc(cs);
	code = buf;
	size = len;
	while (in && n < max && cs_disasm_iter(cs, &code, &size, &addr, in)) {
		const cs_x86_op *op = rip_operand(in);
		struct rip_ref *r;

		if (!op)
			continue;
		r = &out[n++];
		*r = (struct rip_ref){
		    .insn = in->address,
		    /* RIP-relative means relative to the next instruction. */
		    .target = in->address + in->size + (uint64_t)op->mem.disp,
		    .size = op->size,
		    .lea = in->id == X86_INS_LEA,
		};
		if (!r->lea && dest_reg(in) != X86_REG_INVALID) {
			x86_reg reg = dest_reg(in);
			const uint8_t *c2 = code;
			size_t s2 = size;
			uint64_t a2 = addr;

			/* Peek at the next instruction without consuming it (Go pads with NOPs). */
			while (cs_disasm_iter(cs, &c2, &s2, &a2, in) && in->id == X86_INS_NOP)
				;
			if (in->id != X86_INS_NOP)
				r->cmp_imm = cmp_with_imm(in, reg, &r->imm);
		}
	}
	cs_free(in, 1);
	cs_close(&cs);
	free(buf);
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

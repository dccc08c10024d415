/*
 * disasm: finds the runtime variables a function reads, through Capstone, for binaries stripped of
 * their symbol table: .gopclntab still names every function, and the code of a known runtime
 * function addresses the variables it uses relative to RIP.
 */
#ifndef HEAPSPY_DISASM_H
#define HEAPSPY_DISASM_H

#include <stdbool.h>
#include <stdint.h>

#include "elfbin.h"

/* A RIP-relative memory operand of one instruction. */
struct rip_ref {
	uint64_t insn;	 /* link-time address of the instruction */
	uint64_t target; /* link-time address it refers to */
	uint8_t size;	 /* operand size in bytes */
	bool lea;	 /* the address is taken, not loaded */
	bool store;	 /* the instruction writes it (a MOV to it) */
};

/* Lists the RIP-relative operands of the code in [start, end), in order. Returns the count. */
int disasm_rip_refs(const struct elfbin *eb, uint64_t start, uint64_t end, struct rip_ref *out,
		    int max);

/* An 8-byte store of zero through a pointer the code loaded from the current g (R14). */
struct g_zero_store {
	int64_t g_off; /* the g's field the pointer came from: g.m is at 48 */
	int64_t off;   /* the offset stored to, from that pointer */
};

/* Lists the stores of zero through pointers loaded from g in [start, end). Returns the count. */
int disasm_g_zero_stores(const struct elfbin *eb, uint64_t start, uint64_t end,
			 struct g_zero_store *out, int max);

/* Lists the addresses of the RET instructions in [start, end). Returns the count. */
int disasm_rets(const struct elfbin *eb, uint64_t start, uint64_t end, uint64_t *out, int max);

/*
 * Length of the stack-bound check a Go function starts with (`CMPQ SP, 16(R14)`, or for a frame
 * above StackSmall `LEAQ -N(SP), R12; CMPQ R12, 16(R14)`, then a conditional jump to morestack),
 * or 0 if it does not start with one. A uprobe there must single-step an instruction out of
 * line; one on the jump that follows is emulated in the kernel and costs a fraction, with every
 * register but R12 (scratch, not an argument's) still as at entry.
 */
unsigned disasm_stack_check_len(const struct elfbin *eb, uint64_t entry);

/*
 * How a function hands one field of a struct it switches on to a callee. runtime.freeSpecial does
 * `switch s.kind { case _KindSpecialProfile: mProf_Free((*specialprofile)(s).b, ...) }`, with s in
 * RAX: the code says where kind is (the byte it loads from [RAX+d] to switch on), which case value
 * leads to the call (a chain of compares or a jump table) and where b is (the word loaded from
 * [RAX+d] for the call).
 */
struct disasm_dispatch {
	int64_t switch_offset; /* of the byte switched on */
	int64_t case_value;    /* the case whose code makes the call */
	int64_t arg_offset;    /* of the word the call gets as its first argument */
};

/*
 * Reads that dispatch in the code of [start, end) for the call to callee. 0, or -ENOENT when the
 * code has not exactly that shape (one call, one case leading to it).
 */
int disasm_dispatch(const struct elfbin *eb, uint64_t start, uint64_t end, uint64_t callee,
		    struct disasm_dispatch *d);

/*
 * The offset d of a function's opening nil check on a field of the struct its first argument
 * points to (`MOV reg, [RAX+d]; TEST reg, reg; JE`, before any call), or -1. mProf_Malloc starts
 * with `if mp.profStack == nil { return }` since Go 1.23, when the M became its first argument.
 */
int64_t disasm_nil_check(const struct elfbin *eb, uint64_t start, uint64_t end);

/*
 * The displacement of a function's first 8-byte increment in memory (`INC qword [base+index+d]`),
 * or -1. mProf_Free's is `mpc.frees++` in memRecord.future[index]: d is the size of one
 * memRecordCycle (the active one before future) plus frees' offset, 8.
 */
int64_t disasm_first_inc(const struct elfbin *eb, uint64_t start, uint64_t end);

/*
 * The g field a function sets to its first argument (`getg().labels = labels`, with its write
 * barrier: runtime/pprof.runtime_setProfLabel): the displacement of its 8-byte store of RAX through
 * a pointer (R14, or the copy of it the barrier's call made it spill), confirmed by an access to
 * [R14 + that] in the function. -1 when the code has not that shape.
 */
int64_t disasm_arg_to_g_field(const struct elfbin *eb, uint64_t start, uint64_t end);

/*
 * `if gp != gp.m.curg` before a function's first call (runtime.semacquire1 opens with it): g.m
 * from the load `MOV reg, [R14 + g_m]`, m.curg from the compare of g with [reg + m_curg]. 0 or
 * -ENOENT.
 */
int disasm_curg_check(const struct elfbin *eb, uint64_t start, uint64_t end, int64_t *g_m,
		      int64_t *m_curg);

#endif

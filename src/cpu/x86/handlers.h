/*
 * Handler and selector declarations shared between the decoder and the
 * instruction-family files of the software CPU.  Private to cpu/x86.
 */
#ifndef MAQUINA_CPU_X86_HANDLERS_H
#define MAQUINA_CPU_X86_HANDLERS_H

#include "cpu/x86/cpu_int.h"

#define X86_HANDLER(name)                                              \
	const struct x86_insn *name(struct x86_cpu *cpu __attribute__((unused)), \
				    const struct x86_insn *i __attribute__((unused)))

/* Selector for the integer instructions of decode_int.c (map 0 and 1). */
bool x86_select_int(struct x86_insn *i, unsigned map, unsigned opc,
		    unsigned mode, unsigned mpfx);
/* Second integer family (shift.c, muldiv.c, string.c, bitops.c): shifts and
 * rotates (C0 C1 D0-D3, 0F A4 A5 AC AD), MUL/IMUL/DIV/IDIV (F6/F7 /4-/7,
 * 0F AF, 69, 6B), string instructions (6C-6F, A4-A7, AA-AF), bit
 * instructions (0F A3 AB B3 BB BA BC BD B8). */
bool x86_select_int2(struct x86_insn *i, unsigned map, unsigned opc, unsigned mpfx);

/* For byte-sized operands: without a REX prefix, register numbers 4..7 mean
 * AH CH DH BH; these remap reg/rm to the x86_r8() encoding. */
static inline void x86_fix_r8_reg(struct x86_insn *i)
{
	if (!(i->pfx & X86_PFX_REX) && i->reg >= 4 && i->reg < 8)
		i->reg = (uint8_t)(i->reg + 12);
}
static inline void x86_fix_r8_rm(struct x86_insn *i)
{
	if (!(i->pfx & X86_PFX_REX) && i->rm >= 4 && i->rm < 8 && !i->is_mem)
		i->rm = (uint8_t)(i->rm + 12);
}

X86_HANDLER(x86_h_gp0);
/* Ends the block: continue at i->next_rip (used after instructions that
 * change state the decoder depends on). */
X86_HANDLER(x86_h_end_block);

/* Leave the block after this instruction: set rip and return NULL. */
static inline const struct x86_insn *x86_next_exit(struct x86_cpu *cpu, const struct x86_insn *i)
{
	cpu->rip = i->next_rip;
	return NULL;
}

/* FWAIT (9B): #NM with CR0.MP and CR0.TS, #MF for a pending unmasked x87
 * exception (x87.c). */
X86_HANDLER(x86_h_fwait);

/* Carry flag from the lazy state. */
unsigned x86_cf(const struct x86_cpu *cpu);

#endif

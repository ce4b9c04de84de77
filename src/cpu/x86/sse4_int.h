/*
 * Private contract between the files of the SSSE3 / SSE4.1 / SSE4.2 family
 * (sse4.c: selector and integer SIMD; sse4_str.c: PCMPxSTRx, CRC32, MOVBE;
 * sse4_fp.c: ROUND*, DPPS, DPPD).  Not visible outside these files.
 */
#ifndef MAQUINA_CPU_X86_SSE4_INT_H
#define MAQUINA_CPU_X86_SSE4_INT_H

#include "cpu/x86/handlers.h"

/* The family's entry point, called by x86_select_sse() for maps 2 (0F 38)
 * and 3 (0F 3A).  Sets i->fn and returns true, or returns false (#UD). */
bool x86_select_sse4(struct x86_insn *i, unsigned map, unsigned opc, unsigned mpfx);

/* Sub-selectors of sse4_str.c and sse4_fp.c; same contract.  mp is the
 * effective mandatory prefix (X86_MP_*). */
bool x86_sse4_select_str(struct x86_insn *i, unsigned map, unsigned opc, unsigned mp);
bool x86_sse4_select_fp(struct x86_insn *i, unsigned map, unsigned opc, unsigned mp);

/* The SSE availability check of every handler: inline and cheap when SSE is
 * usable; x86_sse_check() raises #UD or #NM otherwise. */
static inline void x86_sse4_gate(struct x86_cpu *cpu)
{
	if (unlikely((cpu->cr0 & (X86_CR0_EM | X86_CR0_TS)) || !(cpu->cr4 & X86_CR4_OSFXSR)))
		x86_sse_check(cpu);
}

/* Defines the register and memory handlers h_<op>_r and h_<op>_m of an xmm
 * instruction from the function void op_<op>(struct x86_cpu *cpu,
 * const struct x86_insn *i, x86_xmm *d, const x86_xmm *s), which computes
 * the new destination in *d (a copy of the destination register) from the
 * source *s and may raise before anything is written.  The memory form reads
 * 16 bytes, aligned (#GP(0) when misaligned) if ALIGNED. */
#define SSE4_DEF_XMM(op, ALIGNED)                                            \
	static X86_HANDLER(h_##op##_r)                                      \
	{                                                                   \
		x86_sse4_gate(cpu);                                         \
		x86_xmm d = cpu->xmm[i->reg];                               \
		op_##op(cpu, i, &d, &cpu->xmm[i->rm]);                      \
		cpu->xmm[i->reg] = d;                                       \
		return i + 1;                                               \
	}                                                                   \
	static X86_HANDLER(h_##op##_m)                                      \
	{                                                                   \
		x86_sse4_gate(cpu);                                         \
		x86_xmm s, d = cpu->xmm[i->reg];                            \
		x86_read128(cpu, x86_ea(cpu, i), &s, ALIGNED);              \
		op_##op(cpu, i, &d, &s);                                    \
		cpu->xmm[i->reg] = d;                                       \
		return i + 1;                                               \
	}

/* The effective mandatory prefix of i: F2 or F3 (the last of them) win over
 * 66, whatever the order, as on the hardware. */
static inline unsigned x86_sse4_mp(const struct x86_insn *i)
{
	if (i->pfx & X86_PFX_REPNE)
		return X86_MP_F2;
	if (i->pfx & X86_PFX_REP)
		return X86_MP_F3;
	return (i->pfx & X86_PFX_OPSZ) ? X86_MP_66 : X86_MP_NONE;
}

#endif

/*
 * Internal helpers of the SSE families (sse.c: SSE/SSE2/SSE3 in the 0F map;
 * sse4.c: SSSE3/SSE4.1/SSE4.2 in the 0F 38 and 0F 3A maps).  Private to
 * cpu/x86.
 *
 * MMX: this CPU does not implement MMX (CPUID.1:EDX bit 23 is clear), so
 * every form of an SSE-family opcode that names an MM register is #UD.
 *
 * Floating point executes on the host's own SSE unit with the guest's MXCSR
 * loaded (see x86_sse_fp()), which gives results, NaNs and exception flags
 * exactly as the host hardware produces them.
 */
#ifndef MAQUINA_CPU_X86_SSE_H
#define MAQUINA_CPU_X86_SSE_H

#include "cpu/x86/handlers.h"

/* Selector of the 0F 38 (map 2) and 0F 3A (map 3) opcodes, called by
 * x86_select_sse() with the decoder's mpfx; same contract as
 * x86_select_sse().  sse.c holds a weak default that returns false (#UD)
 * until sse4.c provides it; the CPU library is prelinked (meson.build) so
 * that the strong definition wins even though nothing else references
 * sse4.o. */
bool x86_select_sse4(struct x86_insn *i, unsigned map, unsigned opc, unsigned mpfx);

/* MXCSR fields. */
#define X86_MXCSR_IE 0x0001u
#define X86_MXCSR_DE 0x0002u
#define X86_MXCSR_ZE 0x0004u
#define X86_MXCSR_OE 0x0008u
#define X86_MXCSR_UE 0x0010u
#define X86_MXCSR_PE 0x0020u
#define X86_MXCSR_FLAGS 0x003fu
#define X86_MXCSR_DAZ 0x0040u
#define X86_MXCSR_MASKS 0x1f80u /* IM DM ZM OM UM PM (bits 7..12) */
#define X86_MXCSR_FTZ 0x8000u

/* The SSE availability check of every SSE handler: cheap when SSE is
 * usable, x86_sse_check() (#UD / #NM) otherwise. */
static inline void x86_sse_gate(struct x86_cpu *cpu)
{
	if (unlikely((cpu->cr0 & (X86_CR0_EM | X86_CR0_TS)) || !(cpu->cr4 & X86_CR4_OSFXSR)))
		x86_sse_check(cpu);
}

/* 128-bit loads and stores built on the inline 64-bit accessors (their
 * TLB fast path).  Aligned variants raise #GP(0) when la is not 16-byte
 * aligned.  A load has no effect before it completes; a store checks a
 * page-crossing destination whole (x86_write128) and otherwise stays in
 * one page, where the second half cannot fault once the first has not. */
static inline void x86_sse_load128(struct x86_cpu *cpu, uint64_t la, x86_xmm *out, bool aligned)
{
	if (aligned && (la & 15))
		x86_raise(cpu, X86_GP, 0);
	uint64_t lo = x86_read64(cpu, la), hi = x86_read64(cpu, la + 8);
	out->q[0] = lo;
	out->q[1] = hi;
}

static inline void x86_sse_store128(struct x86_cpu *cpu, uint64_t la, const x86_xmm *v, bool aligned)
{
	if (aligned && (la & 15))
		x86_raise(cpu, X86_GP, 0);
	if (!aligned && (la & 0xfff) > 0xff0) {
		x86_write128(cpu, la, v, false);
		return;
	}
	uint64_t lo = v->q[0], hi = v->q[1];
	x86_write64(cpu, la, lo);
	x86_write64(cpu, la + 8, hi);
}

/* The r/m operand of i as a 128-bit source: the register rm, or 16 bytes
 * of memory at the effective address (aligned: #GP(0) when misaligned).
 * Returns a pointer to the register or to *tmp. */
static inline const x86_xmm *x86_sse_src(struct x86_cpu *cpu, const struct x86_insn *i,
					 x86_xmm *tmp, bool aligned)
{
	if (!i->is_mem)
		return &cpu->xmm[i->rm];
	x86_sse_load128(cpu, x86_ea(cpu, i), tmp, aligned);
	return tmp;
}

/* Memory source of 8, 4, 2 or 1 bytes zero-extended into *tmp (register
 * forms: the register).  For scalar operands. */
static inline const x86_xmm *x86_sse_src_n(struct x86_cpu *cpu, const struct x86_insn *i,
					   x86_xmm *tmp, unsigned size)
{
	if (!i->is_mem)
		return &cpu->xmm[i->rm];
	tmp->q[0] = x86_read(cpu, x86_ea(cpu, i), size);
	tmp->q[1] = 0;
	return tmp;
}

/* Host floating-point execution.  fn computes *r = op(*r, *s, imm) with host
 * SSE instructions written as volatile asm (so they stay between the MXCSR
 * accesses).  x86_sse_fp() runs it with the guest's MXCSR (rounding, DAZ,
 * FTZ) and merges the exception flags into cpu->mxcsr; an unmasked
 * exception sets the flags the hardware sets and raises #XM (CR4.OSXMMEXCPT
 * set) or #UD, before the caller commits *r.  r is a temporary of the
 * caller.
 *
 * Fast path: when the guest's MXCSR control bits equal the host's and every
 * exception is masked, the guest's whole MXCSR (its sticky flags too) is
 * left loaded in the host MXCSR, so that a run of SSE instructions needs no
 * LDMXCSR at all.  The host's control bits (rounding, DAZ, FTZ, masks) are
 * never changed behind its back; only its sticky exception flags may be
 * left as the guest's (the host program does not test them).  Otherwise
 * the host MXCSR is saved and restored around the instruction. */
typedef void (*x86_sse_fpfn)(x86_xmm *r, const x86_xmm *s, unsigned imm);

/* kind: 0, or (inside sse.c) the element layout of the operation, which
 * lets the unmasked-exception path attribute flags to elements. */
void x86_sse_fp_full(struct x86_cpu *cpu, x86_sse_fpfn fn, x86_xmm *r,
		     const x86_xmm *s, unsigned imm, unsigned kind);

static inline __attribute__((always_inline)) void
x86_sse_fp_k(struct x86_cpu *cpu, x86_sse_fpfn fn, x86_xmm *r, const x86_xmm *s,
	     unsigned imm, unsigned kind)
{
	uint32_t m = cpu->mxcsr, h, f;

	__asm__ volatile("stmxcsr %0" : "=m"(h));
	if (unlikely(h != m)) {
		if (((h ^ m) & ~X86_MXCSR_FLAGS) | (~m & X86_MXCSR_MASKS)) {
			x86_sse_fp_full(cpu, fn, r, s, imm, kind);
			return;
		}
		__asm__ volatile("ldmxcsr %0" : : "m"(m));
	}
	fn(r, s, imm);
	__asm__ volatile("stmxcsr %0" : "=m"(f));
	cpu->mxcsr = f;
}

static inline __attribute__((always_inline)) void
x86_sse_fp(struct x86_cpu *cpu, x86_sse_fpfn fn, x86_xmm *r, const x86_xmm *s, unsigned imm)
{
	x86_sse_fp_k(cpu, fn, r, s, imm, 0);
}

#endif

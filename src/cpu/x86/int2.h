/*
 * The second integer family of the software CPU: selectors of its four
 * files, called from x86_select_int2() (int2.c).  Private to
 * cpu/x86.
 */
#ifndef MAQUINA_CPU_X86_INT2_H
#define MAQUINA_CPU_X86_INT2_H

#include "cpu/x86/handlers.h"

#define X86_ALWAYS_INLINE inline __attribute__((always_inline))

/* Each returns true with i->fn set, or false for an undefined form. */
/* shift.c: C0 C1 D0-D3 (map 0), 0F A4 A5 AC AD (map 1). */
bool x86_select_shift(struct x86_insn *i, unsigned map, unsigned opc);
/* muldiv.c: F6/F7 /4-/7, 69, 6B (map 0), 0F AF (map 1). */
bool x86_select_muldiv(struct x86_insn *i, unsigned map, unsigned opc);
/* string.c: 6C-6F, A4-A7, AA-AF (map 0). */
bool x86_select_string(struct x86_insn *i, unsigned opc);
/* bitops.c: 0F A3 AB B3 BB BA BC BD B8. */
bool x86_select_bitops(struct x86_insn *i, unsigned opc);

/* Reads the destination of a read-modify-write instruction; a fault is
 * reported as the hardware reports it, as a write (#PF error code with W),
 * even when the read is what fails. */
static inline void x86_int2_probe_rmw(struct x86_cpu *cpu, uint64_t la, unsigned size)
{
	struct x86_tlb_entry *e = &cpu->tlb[(la >> 12) & (X86_TLB_SIZE - 1)];
	if (unlikely(e->tag_w != ((la & X86_PAGE_MASK) | cpu->mmu_idx) ||
		     (la & 0xfff) > 4096 - size))
		x86_probe_write(cpu, la, size);
}

static inline uint64_t x86_int2_read_rmw(struct x86_cpu *cpu, uint64_t la, unsigned size)
{
	x86_int2_probe_rmw(cpu, la, size);
	return x86_read(cpu, la, size);
}

/* Lazy-flag state computed by a handler and committed only once every
 * store of the instruction has succeeded (faults stay precise). */
struct x86_cc {
	uint32_t op;
	uint64_t dst, src, src2;
};

static inline void x86_cc_commit(struct x86_cpu *cpu, const struct x86_cc *cc)
{
	cpu->cc_op = cc->op;
	cpu->cc_dst = cc->dst;
	cpu->cc_src = cc->src;
	cpu->cc_src2 = cc->src2;
}

#endif

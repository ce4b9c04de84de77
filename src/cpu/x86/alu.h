/* Handler tables of alu.c and the other integer files, for the decoder. */
#ifndef MAQUINA_CPU_X86_ALU_H
#define MAQUINA_CPU_X86_ALU_H

#include "cpu/x86/handlers.h"

/* [op][log2 size]; ops 0..7 are ADD OR ADC SBB AND SUB XOR CMP, 8 TEST.
 * rr: reg op= rm; rm: reg op= mem; mr: mem op= reg; ri: rm-reg op= imm;
 * mi: mem op= imm. */
extern const x86_handler_fn x86_alu_rr[9][4], x86_alu_rm[9][4], x86_alu_mr[9][4],
	x86_alu_ri[9][4], x86_alu_mi[9][4];
extern const x86_handler_fn x86_mov_rr[4], x86_mov_rm[4], x86_mov_mr[4],
	x86_mov_ri[4], x86_mov_mi[4];
extern const x86_handler_fn x86_inc_r[4], x86_dec_r[4];
extern const x86_handler_fn x86_h_lea64;

uint64_t x86_locked_rmw(struct x86_cpu *cpu, uint64_t la, unsigned size,
			uint64_t (*fn)(struct x86_cpu *, const struct x86_insn *, uint64_t, bool *),
			const struct x86_insn *i);

X86_HANDLER(x86_h_alu_lock_mr);
X86_HANDLER(x86_h_alu_lock_mi);
X86_HANDLER(x86_h_mov_moffs_load);
X86_HANDLER(x86_h_mov_moffs_store);
X86_HANDLER(x86_h_lea);
X86_HANDLER(x86_h_movzx);
/* The specialised MOVZX/MOVSX handler for i, or NULL for 16-bit destinations. */
x86_handler_fn x86_pick_movx(const struct x86_insn *i, bool sign);
X86_HANDLER(x86_h_movsx);
X86_HANDLER(x86_h_movsxd);
X86_HANDLER(x86_h_unary);
X86_HANDLER(x86_h_xchg_rr);
X86_HANDLER(x86_h_xchg_mr);
X86_HANDLER(x86_h_xadd);
X86_HANDLER(x86_h_cmpxchg);
X86_HANDLER(x86_h_cmpxchg8b16b);
X86_HANDLER(x86_h_cmov);
X86_HANDLER(x86_h_setcc);
X86_HANDLER(x86_h_bswap);
X86_HANDLER(x86_h_cbw);
X86_HANDLER(x86_h_cwd);
X86_HANDLER(x86_h_lahf);
X86_HANDLER(x86_h_sahf);
X86_HANDLER(x86_h_flagop);

/* branch.c */
X86_HANDLER(x86_h_jcc);
X86_HANDLER(x86_h_jmp_rel);
X86_HANDLER(x86_h_jmp_rm);
X86_HANDLER(x86_h_call_rel);
X86_HANDLER(x86_h_call_rm);
X86_HANDLER(x86_h_ret);
X86_HANDLER(x86_h_loop);
X86_HANDLER(x86_h_jrcxz);
X86_HANDLER(x86_h_push_r);
X86_HANDLER(x86_h_pop_r);
X86_HANDLER(x86_h_push_imm);
X86_HANDLER(x86_h_push_rm);
X86_HANDLER(x86_h_pop_rm);
X86_HANDLER(x86_h_pushf);
X86_HANDLER(x86_h_popf);
X86_HANDLER(x86_h_enter);
X86_HANDLER(x86_h_leave);
X86_HANDLER(x86_h_push_seg);
X86_HANDLER(x86_h_pop_seg);

/* misc.c */
X86_HANDLER(x86_h_hlt);
X86_HANDLER(x86_h_syscall);
X86_HANDLER(x86_h_int);
X86_HANDLER(x86_h_int1);
X86_HANDLER(x86_h_int3);
X86_HANDLER(x86_h_cpuid);
X86_HANDLER(x86_h_rdtsc);
X86_HANDLER(x86_h_pause);
X86_HANDLER(x86_h_xlat);
X86_HANDLER(x86_h_fence);
X86_HANDLER(x86_h_fxsave);
X86_HANDLER(x86_h_fxrstor);
X86_HANDLER(x86_h_ldmxcsr);
X86_HANDLER(x86_h_stmxcsr);
X86_HANDLER(x86_h_clflush);
X86_HANDLER(x86_h_mov_from_seg);
X86_HANDLER(x86_h_mov_to_seg);
X86_HANDLER(x86_h_priv);
X86_HANDLER(x86_h_rdfsgsbase);
X86_HANDLER(x86_h_io);

#endif

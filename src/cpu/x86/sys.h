/* System-level helpers of sys.c, for the executor and the decoder. */
#ifndef MAQUINA_CPU_X86_SYS_H
#define MAQUINA_CPU_X86_SYS_H

#include "cpu/x86/handlers.h"

/* Segment attribute bits (struct x86_segment.attr). */
#define X86_SEG_S 0x10
#define X86_SEG_P 0x80
#define X86_SEG_L 0x200
#define X86_SEG_DB 0x400

/* Recomputes code64, CPL, mmu_idx, sp_mask and segbase from the segment
 * and control registers. */
void x86_update_mode(struct x86_cpu *cpu);
void x86_load_seg(struct x86_cpu *cpu, unsigned sreg, uint16_t sel);
void x86_deliver_exception(struct x86_cpu *cpu);
void x86_check_interrupts(struct x86_cpu *cpu);
int x86_rdmsr(struct x86_cpu *cpu, uint32_t msr, uint64_t *val);
int x86_wrmsr(struct x86_cpu *cpu, uint32_t msr, uint64_t val);

X86_HANDLER(x86_h_into);
X86_HANDLER(x86_h_cli);
X86_HANDLER(x86_h_sti);
X86_HANDLER(x86_h_iret);
X86_HANDLER(x86_h_retf);
X86_HANDLER(x86_h_jmp_far_imm);
X86_HANDLER(x86_h_call_far_imm);
X86_HANDLER(x86_h_far_rm);
X86_HANDLER(x86_h_load_far_ptr);
X86_HANDLER(x86_h_sysret);
X86_HANDLER(x86_h_swapgs);
X86_HANDLER(x86_h_rdmsr);
X86_HANDLER(x86_h_wrmsr);
X86_HANDLER(x86_h_mov_cr);
X86_HANDLER(x86_h_mov_dr);
X86_HANDLER(x86_h_clts);
X86_HANDLER(x86_h_wbinvd);
X86_HANDLER(x86_h_grp6);
X86_HANDLER(x86_h_grp7);

#endif

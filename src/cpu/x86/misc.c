/*
 * Miscellaneous instructions: HLT, SYSCALL (user-program mode), INT n,
 * INT3, CPUID, RDTSC, PAUSE, XLAT, fences, CLFLUSH, FXSAVE/FXRSTOR,
 * LDMXCSR/STMXCSR, segment moves, and the privileged or I/O instructions
 * that fault in user mode.
 */
#include "cpu/x86/alu.h"

X86_HANDLER(x86_h_hlt)
{
	if (cpu->cpl != 0)
		x86_raise(cpu, X86_GP, 0);
	cpu->rip = i->next_rip;
	cpu->exit->reason = X86_EXIT_HLT;
	longjmp(cpu->jmp, 2);
}

X86_HANDLER(x86_h_syscall)
{
	if (!(cpu->efer & 1) && !cpu->user_mode) /* EFER.SCE */
		x86_raise(cpu, X86_UD, 0);
	if (cpu->user_mode) {
		/* As the hardware does: RCX = return address, R11 = RFLAGS. */
		cpu->regs[X86_RCX] = i->next_rip;
		cpu->regs[X86_R11] = x86_flags(cpu) & ~(uint64_t)(1u << 16);
		cpu->rip = i->next_rip;
		cpu->exit->reason = X86_EXIT_SYSCALL;
		longjmp(cpu->jmp, 2);
	}
	x86_raise(cpu, X86_UD, 0); /* system mode comes with the PC machine */
}

X86_HANDLER(x86_h_int3)
{
	/* A trap: the saved RIP is after the instruction. */
	cpu->rip = i->next_rip;
	cpu->exit->reason = X86_EXIT_EXCEPTION;
	cpu->exit->vector = X86_BP;
	cpu->exit->error_code = 0;
	longjmp(cpu->jmp, 2);
}

X86_HANDLER(x86_h_int)
{
	unsigned n = i->imm & 0xff;
	/* User mode: the gates open to ring 3 are those of Linux: #BP and #OF
	 * (traps: the saved RIP is after the instruction); any other vector
	 * is #GP(vector * 8 + 2). */
	if (n == X86_BP || n == X86_OFV) {
		cpu->rip = i->next_rip;
		cpu->exit->reason = X86_EXIT_EXCEPTION;
		cpu->exit->vector = (uint8_t)n;
		cpu->exit->error_code = 0;
		longjmp(cpu->jmp, 2);
	}
	x86_raise(cpu, X86_GP, n * 8 + 2);
}

/* INT1 (ICEBP, F1): a #DB trap that ignores the gate's DPL. */
X86_HANDLER(x86_h_int1)
{
	cpu->rip = i->next_rip;
	cpu->exit->reason = X86_EXIT_EXCEPTION;
	cpu->exit->vector = X86_DB;
	cpu->exit->error_code = 0;
	longjmp(cpu->jmp, 2);
}

X86_HANDLER(x86_h_pause)
{
	__builtin_ia32_pause();
	return i + 1;
}

/* CPUID: what this CPU implements, and nothing more. */
void x86_cpuid(struct x86_cpu *cpu, uint32_t leaf, uint32_t sub, uint32_t out[4])
{
	(void)cpu;
	(void)sub;
	out[0] = out[1] = out[2] = out[3] = 0;
	switch (leaf) {
	case 0:
		out[0] = 0xd;
		memcpy(&out[1], "Genu", 4); /* EBX EDX ECX spell the vendor */
		memcpy(&out[3], "ineI", 4);
		memcpy(&out[2], "ntel", 4);
		break;
	case 1:
		out[0] = 0x000606a0 | 0x6; /* family 6, model 0x6a-like, stepping 6 */
		out[1] = (8u << 8);          /* CLFLUSH line size 64 bytes */
		out[2] = X86_CPUID_1_ECX;
		out[3] = X86_CPUID_1_EDX;
		break;
	case 0x80000000:
		out[0] = 0x80000008;
		break;
	case 0x80000001:
		out[2] = X86_CPUID_81_ECX;
		out[3] = X86_CPUID_81_EDX;
		break;
	case 0x80000002: memcpy(out, "maquina software", 16); break;
	case 0x80000003: memcpy(out, " x86-64 CPU\0\0\0\0\0", 16); break;
	case 0x80000008:
		out[0] = 0x3028; /* 40-bit physical, 48-bit linear addresses */
		break;
	default:
		break;
	}
}

X86_HANDLER(x86_h_cpuid)
{
	uint32_t r[4];
	x86_cpuid(cpu, (uint32_t)cpu->regs[X86_RAX], (uint32_t)cpu->regs[X86_RCX], r);
	cpu->regs[X86_RAX] = r[0];
	cpu->regs[X86_RBX] = r[1];
	cpu->regs[X86_RCX] = r[2];
	cpu->regs[X86_RDX] = r[3];
	return i + 1;
}

uint64_t x86_rdtsc(struct x86_cpu *cpu)
{
	/* 1 GHz: the TSC counts host nanoseconds plus the guest's offset. */
	return clock_ns() + cpu->tsc_offset;
}

X86_HANDLER(x86_h_rdtsc)
{
	if ((cpu->cr4 & (1u << 2)) && cpu->cpl != 0) /* CR4.TSD */
		x86_raise(cpu, X86_GP, 0);
	uint64_t t = x86_rdtsc(cpu);
	cpu->regs[X86_RAX] = (uint32_t)t;
	cpu->regs[X86_RDX] = t >> 32;
	return i + 1;
}

X86_HANDLER(x86_h_xlat)
{
	uint64_t a = ((cpu->regs[X86_RBX] + (cpu->regs[X86_RAX] & 0xff)) & i->amask) + cpu->segbase[i->seg];
	*x86_r8(cpu, X86_RAX) = x86_read8(cpu, a);
	return i + 1;
}

X86_HANDLER(x86_h_fence)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return i + 1;
}

X86_HANDLER(x86_h_clflush)
{
	/* Nothing is cached apart from guest memory itself; the access is
	 * checked like a byte read. */
	(void)x86_read8(cpu, x86_ea(cpu, i));
	return i + 1;
}

#define MXCSR_MASK 0xffffu

/* A misaligned FXSAVE/FXRSTOR operand is #GP(0), but a non-canonical
 * address is checked first (#SS through SS). */
static _Noreturn void fx_misaligned(struct x86_cpu *cpu, const struct x86_insn *i, uint64_t la)
{
	if (cpu->code64 && (uint64_t)((int64_t)(la << 16) >> 16) != la && i->seg == X86_SS)
		x86_raise(cpu, X86_SS_FAULT, 0);
	x86_raise(cpu, X86_GP, 0);
}

X86_HANDLER(x86_h_fxsave)
{
	struct x86_fxsave fx;
	uint64_t la = x86_ea(cpu, i);

	if (la & 15)
		fx_misaligned(cpu, i, la);
	memset(&fx, 0, sizeof(fx));
	x86_fpu_to_fxsave(cpu, &fx);
	fx.mxcsr = cpu->mxcsr;
	fx.mxcsr_mask = MXCSR_MASK;
	memcpy(fx.xmm, cpu->xmm, sizeof(fx.xmm));
	if (!(i->pfx & X86_PFX_REXW)) {
		/* 32-bit format: FIP/FDP are 32-bit offsets with selectors */
		fx.fip &= 0xffffffffu;
		fx.fdp &= 0xffffffffu;
	}
	/* The reserved area (bytes 416..511) is left untouched in memory, as
	 * the hardware does: write the first 416 bytes only. */
	x86_write_mem(cpu, la, &fx, 416);
	return i + 1;
}

X86_HANDLER(x86_h_fxrstor)
{
	struct x86_fxsave fx;
	uint64_t la = x86_ea(cpu, i);

	if (la & 15)
		fx_misaligned(cpu, i, la);
	x86_read_mem(cpu, la, &fx, sizeof(fx));
	if (fx.mxcsr & ~MXCSR_MASK)
		x86_raise(cpu, X86_GP, 0);
	x86_fpu_from_fxsave(cpu, &fx);
	cpu->mxcsr = fx.mxcsr;
	memcpy(cpu->xmm, fx.xmm, sizeof(cpu->xmm));
	return i + 1;
}

X86_HANDLER(x86_h_ldmxcsr)
{
	x86_sse_check(cpu);
	uint32_t v = x86_read32(cpu, x86_ea(cpu, i));
	if (v & ~MXCSR_MASK)
		x86_raise(cpu, X86_GP, 0);
	cpu->mxcsr = v;
	return i + 1;
}

X86_HANDLER(x86_h_stmxcsr)
{
	x86_sse_check(cpu);
	x86_write32(cpu, x86_ea(cpu, i), cpu->mxcsr);
	return i + 1;
}

/* MOV r/m, Sreg */
X86_HANDLER(x86_h_mov_from_seg)
{
	unsigned sr = i->reg & 7; /* REX.R does not extend a segment register */
	if (sr > X86_GS)
		x86_raise(cpu, X86_UD, 0);
	uint16_t sel = cpu->seg[sr].sel;
	if (i->is_mem)
		x86_write16(cpu, x86_ea(cpu, i), sel);
	else
		x86_set_reg(cpu, i->rm, i->osz, sel); /* zero-extended for 32/64 */
	return i + 1;
}

/* MOV Sreg, r/m and POP/PUSH of segment registers need descriptor loads,
 * which come with protected mode; in user-program mode only a null or the
 * current selector is accepted. */
X86_HANDLER(x86_h_mov_to_seg)
{
	if (i->reg == X86_CS || i->reg > X86_GS)
		x86_raise(cpu, X86_UD, 0);
	uint16_t sel = (uint16_t)x86_get_rm(cpu, i, 2);
	if (sel != cpu->seg[i->reg].sel && !(sel < 4 && i->reg != X86_SS))
		x86_raise(cpu, X86_GP, sel & 0xfffc);
	cpu->seg[i->reg].sel = sel;
	return i + 1;
}

X86_HANDLER(x86_h_push_seg)
{
	x86_push(cpu, i->osz, cpu->seg[i->aux].sel);
	return i + 1;
}

X86_HANDLER(x86_h_pop_seg)
{
	x86_raise(cpu, X86_GP, 0);
}

/* Privileged instructions, in user-program mode. */
X86_HANDLER(x86_h_priv)
{
	(void)i;
	x86_raise(cpu, X86_GP, 0);
}

/* IN/OUT/INS/OUTS with IOPL 0 at CPL 3 and no I/O bitmap: #GP(0). */
X86_HANDLER(x86_h_io)
{
	(void)i;
	x86_raise(cpu, X86_GP, 0);
}

/* RDFSBASE/RDGSBASE/WRFSBASE/WRGSBASE (F3 0F AE /0-/3): #UD unless
 * CR4.FSGSBASE, which user-program mode leaves clear, as Linux did
 * before 5.9. */
X86_HANDLER(x86_h_rdfsgsbase)
{
	(void)i;
	x86_raise(cpu, X86_UD, 0);
}

/* FWAIT: #MF when an unmasked x87 exception is pending (FSW.ES). */
X86_HANDLER(x86_h_fwait)
{
	if (cpu->fpu.fsw & 0x80)
		x86_raise(cpu, X86_MF, 0);
	return i + 1;
}

X86_HANDLER(x86_h_nop)
{
	(void)cpu;
	return i + 1;
}

X86_HANDLER(x86_h_ud)
{
	(void)i;
	x86_raise(cpu, X86_UD, 0);
}

X86_HANDLER(x86_h_gp0)
{
	(void)i;
	x86_raise(cpu, X86_GP, 0);
}

X86_HANDLER(x86_h_end_block)
{
	return x86_next_exit(cpu, i);
}

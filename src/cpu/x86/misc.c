/*
 * Miscellaneous instructions: HLT, SYSCALL (user-program mode), INT n,
 * INT3, CPUID, RDTSC, PAUSE, XLAT, fences, CLFLUSH, FXSAVE/FXRSTOR,
 * LDMXCSR/STMXCSR, segment moves, and the privileged or I/O instructions
 * that fault in user mode.
 */
#include "cpu/x86/alu.h"
#include "cpu/x86/sys.h"

X86_HANDLER(x86_h_pause)
{
	__builtin_ia32_pause();
	return i + 1;
}

/* CPUID: what this CPU implements, and nothing more. */
void x86_cpuid(struct x86_cpu *cpu, uint32_t leaf, uint32_t sub, uint32_t out[4])
{
	out[0] = out[1] = out[2] = out[3] = 0;
	switch (leaf) {
	case 0:
		out[0] = cpu->user_mode ? 0xd : 0x15;
		memcpy(&out[1], "Genu", 4); /* EBX EDX ECX spell the vendor */
		memcpy(&out[3], "ineI", 4);
		memcpy(&out[2], "ntel", 4);
		break;
	case 1:
		out[0] = 0x000606a0 | 0x6; /* family 6, model 0x6a-like, stepping 6 */
		out[1] = (8u << 8);          /* CLFLUSH line size 64 bytes */
		out[1] |= (uint32_t)cpu->apic_id << 24;
		out[2] = X86_CPUID_1_ECX;
		out[3] = X86_CPUID_1_EDX;
		if (!cpu->user_mode) {
			out[2] |= 1u << 31; /* running under a hypervisor */
			out[3] |= (1u << 3) | (1u << 5) | (1u << 6) | (1u << 13); /* PSE MSR PAE PGE */
			if (cpu->apic) {
				out[3] |= 1u << 9;
				out[2] |= 1u << 24; /* TSC-deadline timer */
			}
		}
		break;
	case 7:
		/* Structured extended features: none of EBX/ECX; EDX bit 29 says
		 * IA32_ARCH_CAPABILITIES exists, which tells the guest this CPU
		 * has none of the speculative-execution flaws (so it skips
		 * mitigations such as page-table isolation). */
		if (sub == 0) {
			out[1] = 1u << 13; /* FCS and FDS are deprecated (stored as 0) */
			if (!cpu->user_mode)
				out[3] = 1u << 29;
		}
		break;
	case 0x15:
		/* TSC / core crystal: 1 GHz, ratio 1 (the machine's TSC and
		 * LAPIC timer both count at 1 GHz) */
		if (!cpu->user_mode) {
			out[0] = 1;
			out[1] = 1;
			out[2] = 1000000000u;
		}
		break;
	case 0x80000000:
		out[0] = 0x80000008;
		break;
	case 0x80000001:
		out[2] = X86_CPUID_81_ECX;
		out[3] = X86_CPUID_81_EDX;
		if (!cpu->user_mode)
			out[3] |= 1u << 20; /* NX */
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
	uint64_t v;
	/* In a machine the TSC is the machine's (consistent with its timers). */
	if (cpu->sys_ops && cpu->sys_ops->rdmsr && cpu->sys_ops->rdmsr(cpu->sys_opaque, 0x10, &v) == 0)
		return v;
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

X86_HANDLER(x86_h_push_seg)
{
	x86_push(cpu, i->osz, cpu->seg[i->aux].sel);
	return i + 1;
}

/* RDFSBASE/RDGSBASE/WRFSBASE/WRGSBASE (F3 0F AE /0-/3): #UD unless
 * CR4.FSGSBASE, which user-program mode leaves clear, as Linux did
 * before 5.9. */
X86_HANDLER(x86_h_rdfsgsbase)
{
	(void)i;
	x86_raise(cpu, X86_UD, 0);
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

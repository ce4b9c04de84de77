/* x87 family: placeholder until the x87 files land. */
#include "cpu/x86/handlers.h"

void x86_fpu_reset(struct x86_cpu *cpu)
{
	memset(&cpu->fpu, 0, sizeof(cpu->fpu));
	cpu->fpu.fcw = 0x37f;
}

void x86_fpu_to_fxsave(const struct x86_cpu *cpu, struct x86_fxsave *fx)
{
	fx->fcw = cpu->fpu.fcw;
	fx->fsw = (uint16_t)((cpu->fpu.fsw & ~0x3800u) | ((unsigned)cpu->fpu.top << 11));
	fx->ftw = cpu->fpu.tag_valid;
	fx->fop = cpu->fpu.fop;
	fx->fip = cpu->fpu.fip;
	fx->fdp = cpu->fpu.fdp;
	for (unsigned k = 0; k < 8; k++) {
		memset(fx->st[k], 0, 16);
		memcpy(fx->st[k], &cpu->fpu.st[(cpu->fpu.top + k) & 7], 10);
	}
}

void x86_fpu_from_fxsave(struct x86_cpu *cpu, const struct x86_fxsave *fx)
{
	/* As the hardware loads them: FCW bit 6 reads as 1, bits 7 and 13-15
	 * as 0; FSW.ES and B say whether an unmasked exception is pending. */
	cpu->fpu.fcw = (uint16_t)((fx->fcw & 0x1f3f) | 0x40);
	cpu->fpu.top = (fx->fsw >> 11) & 7;
	cpu->fpu.fsw = fx->fsw & ~0xb880u;
	if (fx->fsw & ~cpu->fpu.fcw & 0x3f)
		cpu->fpu.fsw |= 0x8080;
	cpu->fpu.tag_valid = fx->ftw;
	cpu->fpu.fop = fx->fop;
	cpu->fpu.fip = fx->fip;
	cpu->fpu.fdp = fx->fdp;
	for (unsigned k = 0; k < 8; k++) {
		long double v = 0;
		memcpy(&v, fx->st[k], 10);
		cpu->fpu.st[(cpu->fpu.top + k) & 7] = v;
	}
}

bool x86_select_x87(struct x86_insn *i, unsigned opc)
{
	(void)i; (void)opc;
	return false;
}

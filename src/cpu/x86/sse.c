/* SSE family: placeholder until the SSE files land. */
#include "cpu/x86/handlers.h"

void x86_sse_check(struct x86_cpu *cpu)
{
	if (!(cpu->cr4 & (1u << 9)) || (cpu->cr0 & (1u << 2))) /* OSFXSR, EM */
		x86_raise(cpu, X86_UD, 0);
	if (cpu->cr0 & (1u << 3)) /* TS */
		x86_raise(cpu, X86_NM, 0);
}

bool x86_select_sse4(struct x86_insn *i, unsigned map, unsigned opc, unsigned mpfx);

bool x86_select_sse(struct x86_insn *i, unsigned map, unsigned opc, unsigned mpfx)
{
	/* TEMP: hook for the SSSE3/SSE4 family until the SSE family lands. */
	if (map >= 2)
		return x86_select_sse4(i, map, opc, mpfx);
	return false;
}

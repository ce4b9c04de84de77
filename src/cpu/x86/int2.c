/* Second integer family: placeholder until shift.c, muldiv.c, string.c
 * and bitops.c land. */
#include "cpu/x86/handlers.h"

bool x86_select_int2(struct x86_insn *i, unsigned map, unsigned opc, unsigned mpfx)
{
	(void)i; (void)map; (void)opc; (void)mpfx;
	return false;
}

/*
 * Entry point of the second integer family: routes the decoder's opcodes
 * to the selectors of shift.c, muldiv.c, string.c and bitops.c.
 */
#include "cpu/x86/int2.h"

bool x86_select_int2(struct x86_insn *i, unsigned map, unsigned opc, unsigned mpfx)
{
	(void)mpfx; /* F2/F3 are read from i->pfx: the last of the two wins */
	if (map == 0) {
		switch (opc) {
		case 0xc0: case 0xc1: case 0xd0: case 0xd1: case 0xd2: case 0xd3:
			return x86_select_shift(i, map, opc);
		case 0x69: case 0x6b: case 0xf6: case 0xf7:
			return x86_select_muldiv(i, map, opc);
		case 0x6c: case 0x6d: case 0x6e: case 0x6f:
		case 0xa4: case 0xa5: case 0xa6: case 0xa7:
		case 0xaa: case 0xab: case 0xac: case 0xad: case 0xae: case 0xaf:
			return x86_select_string(i, opc);
		default:
			return false;
		}
	}
	if (map != 1)
		return false;
	switch (opc) {
	case 0xa4: case 0xa5: case 0xac: case 0xad:
		return x86_select_shift(i, map, opc);
	case 0xaf:
		return x86_select_muldiv(i, map, opc);
	case 0xa3: case 0xab: case 0xb3: case 0xbb: case 0xba:
	case 0xbc: case 0xbd: case 0xb8:
		return x86_select_bitops(i, opc);
	default:
		return false;
	}
}

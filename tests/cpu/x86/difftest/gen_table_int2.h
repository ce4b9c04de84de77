/* ---- second integer family: shifts and rotates, MUL/IMUL/DIV/IDIV,
 * string instructions, bit instructions (shift.c, muldiv.c, string.c,
 * bitops.c).  Included inside dt_entries[]. ---- */
#define I2(nm, map, opc, dig, mp, imm, fl, un, fix) X(FAM_INT2, nm, map, opc, dig, mp, imm, fl, un, fix)
#define SHIFTS(d, nm)                                                                        \
	I2(nm " Eb,Ib", 0, 0xc0, d, 0, IMM_B, E_M | E_B | E_REP, 0, FIX_SHIFT_CL),            \
	I2(nm " Ev,Ib", 0, 0xc1, d, 0, IMM_B, E_M | E_REP, 0, FIX_SHIFT_CL),                  \
	I2(nm " Eb,1", 0, 0xd0, d, 0, IMM_NONE, E_M | E_B | E_REP, 0, FIX_SHIFT_CL),          \
	I2(nm " Ev,1", 0, 0xd1, d, 0, IMM_NONE, E_M | E_REP, 0, FIX_SHIFT_CL),                \
	I2(nm " Eb,CL", 0, 0xd2, d, 0, IMM_NONE, E_M | E_B | E_REP, 0, FIX_SHIFT_CL),         \
	I2(nm " Ev,CL", 0, 0xd3, d, 0, IMM_NONE, E_M | E_REP, 0, FIX_SHIFT_CL)
	SHIFTS(0, "rol"), SHIFTS(1, "ror"), SHIFTS(2, "rcl"), SHIFTS(3, "rcr"),
	SHIFTS(4, "shl"), SHIFTS(5, "shr"), SHIFTS(6, "sal (/6)"), SHIFTS(7, "sar"),
	I2("shld Ev,Gv,Ib", 1, 0xa4, -1, 0, IMM_B, E_M, 0, FIX_SHXD16),
	I2("shld Ev,Gv,CL", 1, 0xa5, -1, 0, IMM_NONE, E_M | E_SINGLE, 0, FIX_SHXD16),
	I2("shrd Ev,Gv,Ib", 1, 0xac, -1, 0, IMM_B, E_M, 0, FIX_SHXD16),
	I2("shrd Ev,Gv,CL", 1, 0xad, -1, 0, IMM_NONE, E_M | E_SINGLE, 0, FIX_SHXD16),
	I2("mul Eb", 0, 0xf6, 4, 0, IMM_NONE, E_M | E_B | E_REP, U_MUL, 0),
	I2("imul Eb", 0, 0xf6, 5, 0, IMM_NONE, E_M | E_B | E_REP, U_MUL, 0),
	I2("div Eb", 0, 0xf6, 6, 0, IMM_NONE, E_M | E_B | E_REP, U_DIV, FIX_DIV),
	I2("idiv Eb", 0, 0xf6, 7, 0, IMM_NONE, E_M | E_B | E_REP, U_DIV, FIX_DIV),
	I2("mul Ev", 0, 0xf7, 4, 0, IMM_NONE, E_M | E_REP, U_MUL, 0),
	I2("imul Ev", 0, 0xf7, 5, 0, IMM_NONE, E_M | E_REP, U_MUL, 0),
	I2("div Ev", 0, 0xf7, 6, 0, IMM_NONE, E_M | E_REP, U_DIV, FIX_DIV),
	I2("idiv Ev", 0, 0xf7, 7, 0, IMM_NONE, E_M | E_REP, U_DIV, FIX_DIV),
	I2("imul Gv,Ev", 1, 0xaf, -1, 0, IMM_NONE, E_M, U_MUL, 0),
	I2("imul Gv,Ev,Iz", 0, 0x69, -1, 0, IMM_Z, E_M | E_REP, U_MUL, 0),
	I2("imul Gv,Ev,Ib", 0, 0x6b, -1, 0, IMM_B, E_M | E_REP, U_MUL, 0),
#define STR(nm, opc, fl) I2(nm, 0, opc, -1, 0, IMM_NONE, (fl) | E_REP | E_SINGLE | E_ASZ, 0, FIX_STR)
	STR("insb", 0x6c, E_B), STR("ins", 0x6d, 0), STR("outsb", 0x6e, E_B), STR("outs", 0x6f, 0),
	STR("movsb", 0xa4, E_B), STR("movs", 0xa5, 0), STR("cmpsb", 0xa6, E_B), STR("cmps", 0xa7, 0),
	STR("stosb", 0xaa, E_B), STR("stos", 0xab, 0), STR("lodsb", 0xac, E_B), STR("lods", 0xad, 0),
	STR("scasb", 0xae, E_B), STR("scas", 0xaf, 0),
	I2("bt Ev,Gv", 1, 0xa3, -1, 0, IMM_NONE, E_M, U_BT, FIX_BTREG),
	I2("bts Ev,Gv", 1, 0xab, -1, 0, IMM_NONE, E_M | E_LOCK, U_BT, FIX_BTREG),
	I2("btr Ev,Gv", 1, 0xb3, -1, 0, IMM_NONE, E_M | E_LOCK, U_BT, FIX_BTREG),
	I2("btc Ev,Gv", 1, 0xbb, -1, 0, IMM_NONE, E_M | E_LOCK, U_BT, FIX_BTREG),
	I2("bt Ev,Ib", 1, 0xba, 4, 0, IMM_B, E_M, U_BT, 0),
	I2("bts Ev,Ib", 1, 0xba, 5, 0, IMM_B, E_M | E_LOCK, U_BT, 0),
	I2("btr Ev,Ib", 1, 0xba, 6, 0, IMM_B, E_M | E_LOCK, U_BT, 0),
	I2("btc Ev,Ib", 1, 0xba, 7, 0, IMM_B, E_M | E_LOCK, U_BT, 0),
	I2("ud 0f ba /0", 1, 0xba, 0, 0, IMM_B, E_M, 0, 0),
	I2("ud 0f ba /1", 1, 0xba, 1, 0, IMM_B, E_M, 0, 0),
	I2("ud 0f ba /2", 1, 0xba, 2, 0, IMM_B, E_M, 0, 0),
	I2("ud 0f ba /3", 1, 0xba, 3, 0, IMM_B, E_M, 0, 0),
	I2("bsf", 1, 0xbc, -1, 0, IMM_NONE, E_M, U_BSF, 0),
	I2("bsr", 1, 0xbd, -1, 0, IMM_NONE, E_M, U_BSF, 0),
	I2("lzcnt", 1, 0xbd, -1, 0xf3, IMM_NONE, E_M, U_CNT, 0),
	I2("bsf (F2, reserved)", 1, 0xbc, -1, 0xf2, IMM_NONE, E_M, U_BSF, 0),
	I2("bsr (F2, reserved)", 1, 0xbd, -1, 0xf2, IMM_NONE, E_M, U_BSF, 0),
	I2("popcnt", 1, 0xb8, -1, 0xf3, IMM_NONE, E_M, 0, 0),
	I2("ud 0f b8 (jmpe)", 1, 0xb8, -1, 0, IMM_NONE, E_M, 0, 0),

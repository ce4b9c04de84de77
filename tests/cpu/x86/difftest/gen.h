/*
 * Generator-internal definitions shared by gen.c (the engine) and the
 * per-family tables (gen_table.c).
 */
#ifndef MAQUINA_TESTS_DIFFTEST_GEN_H
#define MAQUINA_TESTS_DIFFTEST_GEN_H

#include "difftest.h"

/* Immediate kinds. */
enum { IMM_NONE, IMM_B, IMM_W, IMM_Z, IMM_V, IMM_WB, IMM_O, IMM_REL8, IMM_REL32 };

/* Entry flags. */
#define E_M 0x0001      /* has a ModRM byte */
#define E_MEM 0x0002    /* memory form only */
#define E_REG 0x0004    /* register form only */
#define E_B 0x0008      /* byte operands */
#define E_NO66 0x0010   /* never an extra 66 prefix (it changes the instruction, or AMD and Intel differ) */
#define E_REP 0x0020    /* F2/F3 may be added (ignored, or REP for string ops) */
#define E_LOCK 0x0040   /* LOCK is allowed on the memory form */
#define E_OPR 0x0080    /* register in the low 3 opcode bits */
#define E_BR 0x0100     /* branch: ends the case; its target is a landing stub */
#define E_SINGLE 0x0200 /* only alone in a case (implicit pointers, indirect targets) */
#define E_A16 0x0400    /* memory operand 16-byte aligned most of the time */
#define E_NOW 0x0800    /* no REX.W */
#define E_W 0x1000      /* REX.W always */
#define E_D64 0x2000    /* default operand size 64 (66 makes it 16) */
#define E_F64 0x4000    /* operand size 64 whatever the prefixes */
#define E_NOREX 0x8000  /* no REX prefix */
#define E_ASZ 0x10000   /* the address size matters without ModRM (67 often) */
#define E_NOLOCK 0x20000 /* never a stray LOCK */
#define E_NO67 0x40000  /* never a 67 prefix */
#define E_CC 0x80000   /* condition code in the low 4 opcode bits */
#define E_BIG 0x100000 /* a multi-line memory access (#PF may name any byte of the page) */

/* State fixups (gen.c, gen_insn()). */
enum {
	FIX_NONE, FIX_POPF, FIX_RET, FIX_IND, FIX_CMPX, FIX_CX8, FIX_ENTER, FIX_LEAVE,
	FIX_XLAT, FIX_FXRSTOR, FIX_FXSAVE, FIX_LDMXCSR, FIX_STR, FIX_DIV, FIX_BTREG,
	FIX_LOOP, FIX_INT, FIX_SHIFT_CL, FIX_SHXD, FIX_SHXD16, FIX_FNSTENV,
};

/* Undefined-flag sets. */
#define U_NONE 0u
#define U_AF X86_AF
#define U_MUL (X86_SF | X86_ZF | X86_AF | X86_PF)
#define U_DIV X86_ARITH_FLAGS
#define U_BT (X86_OF | X86_SF | X86_AF | X86_PF)
#define U_BSF (X86_CF | X86_OF | X86_SF | X86_AF | X86_PF)
#define U_CNT (X86_OF | X86_SF | X86_AF | X86_PF)
/* x87: undefined condition codes, in bits 16..31 of undef as FSW bits. */
#define U_FSW(m) ((uint32_t)(m) << 16)
#define FSW_C0 0x0100
#define FSW_C1 0x0200
#define FSW_C2 0x0400
#define FSW_C3 0x4000

uint64_t dt_special(struct dt_rng *r);

#endif

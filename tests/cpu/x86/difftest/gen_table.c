/*
 * The instruction tables of the differential test, family by family.
 *
 * Each entry says how to encode one opcode (map, opcode byte, ModRM.reg
 * digit or a fixed ModRM, mandatory prefix, immediate), which forms and
 * prefixes the generator may use (E_*), how the input state has to be
 * prepared (FIX_*), and which RFLAGS bits the SDM calls undefined after it
 * (the last column: these bits are masked when the results are compared;
 * this column is the documentation of undefined flags that issue 2 asks
 * for; the count-dependent rules of shifts and rotates are computed in
 * gen.c, shift_undef()).
 *
 * Opcodes that the decoder accepts but that cannot be compared with the
 * host are in dt_excluded[] at the end, each with the reason.
 */
#include "gen.h"

#define X(fam, nm, map, opc, dig, mp, imm, fl, un, fix) \
	{ nm, fam, map, opc, dig, mp, imm, fl, un, fix, -1 }
#define XF(fam, nm, map, opc, modrm, fl, un) \
	{ nm, fam, map, opc, -1, 0, IMM_NONE, (fl) | E_M, un, FIX_NONE, modrm }

/* Core: map 0 */
#define C0(nm, opc, imm, fl, un, fix) X(FAM_CORE, nm, 0, opc, -1, 0, imm, fl, un, fix)
#define C0D(nm, opc, d, imm, fl, un, fix) X(FAM_CORE, nm, 0, opc, d, 0, imm, (fl) | E_M, un, fix)
#define C1(nm, opc, imm, fl, un, fix) X(FAM_CORE, nm, 1, opc, -1, 0, imm, fl, un, fix)
#define C1D(nm, opc, d, mp, imm, fl, un, fix) X(FAM_CORE, nm, 1, opc, d, mp, imm, (fl) | E_M, un, fix)

#define LK(op) ((op) != 7 ? E_LOCK : 0)
#define UL(op) (((op) == 1 || (op) == 4 || (op) == 6) ? U_AF : U_NONE)
#define ALU(op, nm)                                                                       \
	C0(nm " Eb,Gb", (op) * 8 + 0, IMM_NONE, E_M | E_B | E_REP | LK(op), UL(op), 0),  \
	C0(nm " Ev,Gv", (op) * 8 + 1, IMM_NONE, E_M | E_REP | LK(op), UL(op), 0),        \
	C0(nm " Gb,Eb", (op) * 8 + 2, IMM_NONE, E_M | E_B | E_REP, UL(op), 0),           \
	C0(nm " Gv,Ev", (op) * 8 + 3, IMM_NONE, E_M | E_REP, UL(op), 0),                 \
	C0(nm " AL,Ib", (op) * 8 + 4, IMM_B, E_B | E_REP, UL(op), 0),                    \
	C0(nm " eAX,Iz", (op) * 8 + 5, IMM_Z, E_REP, UL(op), 0),                         \
	C0D(nm " Eb,Ib", 0x80, op, IMM_B, E_B | E_REP | LK(op), UL(op), 0),              \
	C0D(nm " Ev,Iz", 0x81, op, IMM_Z, E_REP | LK(op), UL(op), 0),                    \
	C0D(nm " Ev,Ib", 0x83, op, IMM_B, E_REP | LK(op), UL(op), 0)

#define BRF (E_BR | E_NO66)

const struct dt_entry dt_entries[] = {
	/* ---- core integer (decode_int.c, alu.c, branch.c, misc.c) ---- */
	ALU(0, "add"), ALU(1, "or"), ALU(2, "adc"), ALU(3, "sbb"),
	ALU(4, "and"), ALU(5, "sub"), ALU(6, "xor"), ALU(7, "cmp"),
	C0("push r", 0x50, IMM_NONE, E_OPR | E_D64, 0, 0),
	C0("pop r", 0x58, IMM_NONE, E_OPR | E_D64, 0, 0),
	C0("movsxd", 0x63, IMM_NONE, E_M, 0, 0),
	C0("push Iz", 0x68, IMM_Z, E_D64, 0, 0),
	C0("push Ib", 0x6a, IMM_B, E_D64, 0, 0),
	C0("jcc rel8", 0x70, IMM_REL8, BRF | E_CC, 0, 0),
	C0("test Eb,Gb", 0x84, IMM_NONE, E_M | E_B | E_REP, U_AF, 0),
	C0("test Ev,Gv", 0x85, IMM_NONE, E_M | E_REP, U_AF, 0),
	C0("xchg Eb,Gb", 0x86, IMM_NONE, E_M | E_B | E_LOCK, 0, 0),
	C0("xchg Ev,Gv", 0x87, IMM_NONE, E_M | E_LOCK, 0, 0),
	C0("mov Eb,Gb", 0x88, IMM_NONE, E_M | E_B | E_REP, 0, 0),
	C0("mov Ev,Gv", 0x89, IMM_NONE, E_M | E_REP, 0, 0),
	C0("mov Gb,Eb", 0x8a, IMM_NONE, E_M | E_B | E_REP, 0, 0),
	C0("mov Gv,Ev", 0x8b, IMM_NONE, E_M | E_REP, 0, 0),
	C0("mov Ev,Sreg", 0x8c, IMM_NONE, E_M, 0, 0),
	C0("lea", 0x8d, IMM_NONE, E_M, 0, 0),
	C0D("pop Ev", 0x8f, 0, IMM_NONE, E_D64, 0, 0),
	C0("nop/xchg r,rAX/pause", 0x90, IMM_NONE, E_OPR | E_REP, 0, 0),
	C0("cbw/cwde/cdqe", 0x98, IMM_NONE, 0, 0, 0),
	C0("cwd/cdq/cqo", 0x99, IMM_NONE, 0, 0, 0),
	C0("fwait", 0x9b, IMM_NONE, 0, 0, 0),
	C0("pushf", 0x9c, IMM_NONE, E_D64, 0, 0),
	C0("popf", 0x9d, IMM_NONE, E_D64 | E_SINGLE, 0, FIX_POPF),
	C0("sahf", 0x9e, IMM_NONE, 0, 0, 0),
	C0("lahf", 0x9f, IMM_NONE, 0, 0, 0),
	C0("mov AL,moffs", 0xa0, IMM_O, E_B | E_ASZ, 0, 0),
	C0("mov rAX,moffs", 0xa1, IMM_O, E_ASZ, 0, 0),
	C0("mov moffs,AL", 0xa2, IMM_O, E_B | E_ASZ, 0, 0),
	C0("mov moffs,rAX", 0xa3, IMM_O, E_ASZ, 0, 0),
	C0("test AL,Ib", 0xa8, IMM_B, E_B, U_AF, 0),
	C0("test eAX,Iz", 0xa9, IMM_Z, 0, U_AF, 0),
	C0("mov r8,Ib", 0xb0, IMM_B, E_OPR | E_B, 0, 0),
	C0("mov r,Iv", 0xb8, IMM_V, E_OPR, 0, 0),
	C0("ret Iw", 0xc2, IMM_W, BRF | E_SINGLE, 0, FIX_RET),
	C0("ret", 0xc3, IMM_NONE, BRF | E_SINGLE, 0, FIX_RET),
	C0D("mov Eb,Ib", 0xc6, 0, IMM_B, E_B, 0, 0),
	C0D("mov Ev,Iz", 0xc7, 0, IMM_Z, 0, 0, 0),
	C0("enter", 0xc8, IMM_WB, E_D64 | E_SINGLE, 0, FIX_ENTER),
	C0("leave", 0xc9, IMM_NONE, E_D64 | E_SINGLE, 0, FIX_LEAVE),
	C0("int3", 0xcc, IMM_NONE, 0, 0, 0),
	C0("int Ib", 0xcd, IMM_B, 0, 0, FIX_INT),
	C0("xlat", 0xd7, IMM_NONE, E_SINGLE | E_ASZ, 0, FIX_XLAT),
	C0("loopne", 0xe0, IMM_REL8, BRF | E_ASZ, 0, FIX_LOOP),
	C0("loope", 0xe1, IMM_REL8, BRF | E_ASZ, 0, FIX_LOOP),
	C0("loop", 0xe2, IMM_REL8, BRF | E_ASZ, 0, FIX_LOOP),
	C0("jrcxz", 0xe3, IMM_REL8, BRF | E_ASZ, 0, FIX_LOOP),
	C0("in AL,Ib", 0xe4, IMM_B, 0, 0, 0),
	C0("in eAX,Ib", 0xe5, IMM_B, 0, 0, 0),
	C0("out Ib,AL", 0xe6, IMM_B, 0, 0, 0),
	C0("out Ib,eAX", 0xe7, IMM_B, 0, 0, 0),
	C0("call rel32", 0xe8, IMM_REL32, BRF, 0, 0),
	C0("jmp rel32", 0xe9, IMM_REL32, BRF, 0, 0),
	C0("jmp rel8", 0xeb, IMM_REL8, BRF, 0, 0),
	C0("in AL,DX", 0xec, IMM_NONE, 0, 0, 0),
	C0("in eAX,DX", 0xed, IMM_NONE, 0, 0, 0),
	C0("out DX,AL", 0xee, IMM_NONE, 0, 0, 0),
	C0("out DX,eAX", 0xef, IMM_NONE, 0, 0, 0),
	C0("int1", 0xf1, IMM_NONE, 0, 0, 0),
	C0("hlt", 0xf4, IMM_NONE, 0, 0, 0),
	C0("cmc", 0xf5, IMM_NONE, 0, 0, 0),
	C0D("test Eb,Ib", 0xf6, 0, IMM_B, E_B, U_AF, 0),
	C0D("test Eb,Ib (/1)", 0xf6, 1, IMM_B, E_B, U_AF, 0),
	C0D("not Eb", 0xf6, 2, IMM_NONE, E_B | E_LOCK, 0, 0),
	C0D("neg Eb", 0xf6, 3, IMM_NONE, E_B | E_LOCK, 0, 0),
	C0D("test Ev,Iz", 0xf7, 0, IMM_Z, 0, U_AF, 0),
	C0D("test Ev,Iz (/1)", 0xf7, 1, IMM_Z, 0, U_AF, 0),
	C0D("not Ev", 0xf7, 2, IMM_NONE, E_LOCK, 0, 0),
	C0D("neg Ev", 0xf7, 3, IMM_NONE, E_LOCK, 0, 0),
	C0("clc", 0xf8, IMM_NONE, 0, 0, 0),
	C0("stc", 0xf9, IMM_NONE, 0, 0, 0),
	C0("cli", 0xfa, IMM_NONE, 0, 0, 0),
	C0("sti", 0xfb, IMM_NONE, 0, 0, 0),
	C0("cld", 0xfc, IMM_NONE, 0, 0, 0),
	C0("std", 0xfd, IMM_NONE, 0, 0, 0),
	C0D("inc Eb", 0xfe, 0, IMM_NONE, E_B | E_LOCK, 0, 0),
	C0D("dec Eb", 0xfe, 1, IMM_NONE, E_B | E_LOCK, 0, 0),
	C0D("inc Ev", 0xff, 0, IMM_NONE, E_LOCK, 0, 0),
	C0D("dec Ev", 0xff, 1, IMM_NONE, E_LOCK, 0, 0),
	C0D("call Ev", 0xff, 2, IMM_NONE, BRF | E_SINGLE | E_F64, 0, FIX_IND),
	C0D("jmp Ev", 0xff, 4, IMM_NONE, BRF | E_SINGLE | E_F64, 0, FIX_IND),
	C0D("push Ev", 0xff, 6, IMM_NONE, E_D64, 0, 0),
	/* core: map 0F */
	C1("clts", 0x06, IMM_NONE, 0, 0, 0),
	C1("sysret", 0x07, IMM_NONE, 0, 0, 0),
	C1("invd", 0x08, IMM_NONE, 0, 0, 0),
	C1("wbinvd", 0x09, IMM_NONE, 0, 0, 0),
	C1D("prefetch", 0x0d, -1, 0, IMM_NONE, E_MEM, 0, 0),
	C1D("hint nop 18", 0x18, -1, 0, IMM_NONE, E_REP, 0, 0),
	C1D("hint nop 19", 0x19, -1, 0, IMM_NONE, E_REP, 0, 0),
	C1D("hint nop 1a", 0x1a, -1, 0, IMM_NONE, E_REP, 0, 0),
	C1D("hint nop 1b", 0x1b, -1, 0, IMM_NONE, E_REP, 0, 0),
	C1D("hint nop 1c", 0x1c, -1, 0, IMM_NONE, E_REP, 0, 0),
	C1D("hint nop 1d", 0x1d, -1, 0, IMM_NONE, E_REP, 0, 0),
	C1D("hint nop 1e", 0x1e, -1, 0, IMM_NONE, E_REP, 0, 0),
	C1D("nop Ev", 0x1f, -1, 0, IMM_NONE, E_REP, 0, 0),
	C1D("mov r,crN", 0x20, -1, 0, IMM_NONE, E_F64 | E_NOLOCK, 0, 0),
	C1D("mov r,drN", 0x21, -1, 0, IMM_NONE, E_F64, 0, 0),
	C1D("mov crN,r", 0x22, -1, 0, IMM_NONE, E_F64 | E_NOLOCK, 0, 0),
	C1D("mov drN,r", 0x23, -1, 0, IMM_NONE, E_F64, 0, 0),
	C1("wrmsr", 0x30, IMM_NONE, 0, 0, 0),
	C1("rdmsr", 0x32, IMM_NONE, 0, 0, 0),
	C1("rdpmc", 0x33, IMM_NONE, 0, 0, 0),
	C1D("cmovcc", 0x40, -1, 0, IMM_NONE, E_CC, 0, 0),
	C1("jcc rel32", 0x80, IMM_REL32, BRF | E_CC, 0, 0),
	C1D("setcc", 0x90, -1, 0, IMM_NONE, E_CC | E_B, 0, 0),
	C1("push fs", 0xa0, IMM_NONE, E_D64, 0, 0),
	C1("push gs", 0xa8, IMM_NONE, E_D64, 0, 0),
	C1D("fxsave", 0xae, 0, 0, IMM_NONE, E_MEM | E_NO66 | E_A16 | E_SINGLE | E_BIG, 0, FIX_FXSAVE),
	C1D("fxrstor", 0xae, 1, 0, IMM_NONE, E_MEM | E_NO66 | E_A16 | E_BIG, 0, FIX_FXRSTOR),
	C1D("ldmxcsr", 0xae, 2, 0, IMM_NONE, E_MEM | E_NO66, 0, FIX_LDMXCSR),
	C1D("stmxcsr", 0xae, 3, 0, IMM_NONE, E_MEM | E_NO66, 0, 0),
	C1D("clflush", 0xae, 7, 0, IMM_NONE, E_MEM | E_NO66, 0, 0),
	C1D("lfence", 0xae, 5, 0, IMM_NONE, E_REG | E_NO66, 0, 0),
	C1D("mfence", 0xae, 6, 0, IMM_NONE, E_REG | E_NO66, 0, 0),
	C1D("sfence", 0xae, 7, 0, IMM_NONE, E_REG | E_NO66, 0, 0),
	C1D("cmpxchg Eb,Gb", 0xb0, -1, 0, IMM_NONE, E_B | E_LOCK, 0, FIX_CMPX),
	C1D("cmpxchg Ev,Gv", 0xb1, -1, 0, IMM_NONE, E_LOCK, 0, FIX_CMPX),
	C1D("movzx Gv,Eb", 0xb6, -1, 0, IMM_NONE, 0, 0, 0),
	C1D("movzx Gv,Ew", 0xb7, -1, 0, IMM_NONE, 0, 0, 0),
	C1D("movsx Gv,Eb", 0xbe, -1, 0, IMM_NONE, 0, 0, 0),
	C1D("movsx Gv,Ew", 0xbf, -1, 0, IMM_NONE, 0, 0, 0),
	C1D("xadd Eb,Gb", 0xc0, -1, 0, IMM_NONE, E_B | E_LOCK, 0, 0),
	C1D("xadd Ev,Gv", 0xc1, -1, 0, IMM_NONE, E_LOCK, 0, 0),
	C1D("cmpxchg8b/16b", 0xc7, 1, 0, IMM_NONE, E_MEM | E_LOCK | E_A16, 0, FIX_CX8),
	C1("bswap", 0xc8, IMM_NONE, E_OPR | E_NO66, 0, 0),

	/* ---- opcodes that are #UD in 64-bit mode or in this CPU model ---- */
#define UD0(opc, fl, imm) X(FAM_UD, "ud", 0, opc, -1, 0, imm, fl, 0, 0)
#define UD1(opc, fl) X(FAM_UD, "ud 0f", 1, opc, -1, 0, IMM_NONE, fl, 0, 0)
	UD0(0x06, 0, IMM_NONE), UD0(0x07, 0, IMM_NONE), UD0(0x0e, 0, IMM_NONE),
	UD0(0x16, 0, IMM_NONE), UD0(0x17, 0, IMM_NONE), UD0(0x1e, 0, IMM_NONE),
	UD0(0x1f, 0, IMM_NONE), UD0(0x27, 0, IMM_NONE), UD0(0x2f, 0, IMM_NONE),
	UD0(0x37, 0, IMM_NONE), UD0(0x3f, 0, IMM_NONE), UD0(0x60, 0, IMM_NONE),
	UD0(0x61, 0, IMM_NONE), UD0(0x82, E_M, IMM_B), UD0(0x9a, 0, IMM_NONE),
	UD0(0xce, 0, IMM_NONE), UD0(0xd4, 0, IMM_NONE), UD0(0xd5, 0, IMM_NONE),
	UD0(0xd6, 0, IMM_NONE), UD0(0xea, 0, IMM_NONE),
	X(FAM_UD, "ud c6 /7", 0, 0xc6, 7, 0, IMM_B, E_M, 0, 0),
	X(FAM_UD, "ud c6 /3", 0, 0xc6, 3, 0, IMM_B, E_M, 0, 0),
	X(FAM_UD, "ud c7 /7", 0, 0xc7, 7, 0, IMM_Z, E_M, 0, 0),
	X(FAM_UD, "ud c7 /2", 0, 0xc7, 2, 0, IMM_Z, E_M, 0, 0),
	X(FAM_UD, "ud fe /2", 0, 0xfe, 2, 0, IMM_NONE, E_M, 0, 0),
	X(FAM_UD, "ud fe /7", 0, 0xfe, 7, 0, IMM_NONE, E_M, 0, 0),
	X(FAM_UD, "ud ff /3 reg", 0, 0xff, 3, 0, IMM_NONE, E_M | E_REG, 0, 0),
	X(FAM_UD, "ud ff /5 reg", 0, 0xff, 5, 0, IMM_NONE, E_M | E_REG, 0, 0),
	X(FAM_UD, "ud ff /7", 0, 0xff, 7, 0, IMM_NONE, E_M, 0, 0),
	UD1(0x04, 0), UD1(0x0a, 0), UD1(0x0b, 0), UD1(0x0c, 0),
	UD1(0x36, 0), UD1(0x39, 0), UD1(0x3b, 0), UD1(0x3c, 0), UD1(0x3d, 0),
	UD1(0x3e, 0), UD1(0x3f, 0), UD1(0xa6, 0), UD1(0xa7, 0), UD1(0xaa, 0),
	UD1(0xb9, E_M), UD1(0xff, E_M),
	X(FAM_UD, "ud 0f 0d reg", 1, 0x0d, -1, 0, IMM_NONE, E_M | E_REG, 0, 0),
	X(FAM_UD, "ud 0f c7 /0", 1, 0xc7, 0, 0, IMM_NONE, E_M | E_MEM, 0, 0),
	X(FAM_UD, "ud 0f c7 /2", 1, 0xc7, 2, 0, IMM_NONE, E_M | E_MEM, 0, 0),
	X(FAM_UD, "ud 0f c7 /1 reg", 1, 0xc7, 1, 0, IMM_NONE, E_M | E_REG, 0, 0),
	X(FAM_UD, "ud 0f ae /0 reg", 1, 0xae, 0, 0, IMM_NONE, E_M | E_REG | E_NO66, 0, 0),

#include "gen_table_int2.h"
#include "gen_table_sse.h"
#include "gen_table_sse4.h"
#include "gen_table_x87.h"
};

const unsigned dt_nentries = sizeof(dt_entries) / sizeof(dt_entries[0]);

/* Accepted by the decoder (or by the host) but not compared, and why. */
const struct dt_excluded dt_excluded[] = {
	{ 1, 0x05, -1, 0xff, "SYSCALL: enters the host kernel" },
	{ 1, 0x34, -1, 0xff, "SYSENTER: enters the host kernel on Intel" },
	{ 1, 0x35, -1, 0xff, "SYSEXIT: kernel-only, #UD vs #GP differs between vendors in long mode" },
	{ 1, 0x31, -1, 0xff, "RDTSC: time is not deterministic" },
	{ 1, 0xa2, -1, 0xff, "CPUID: the CPU model differs from the host by design" },
	{ 1, 0x00, -1, 0xff, "SLDT/STR/LLDT/LTR/VERR/VERW: descriptor tables, UMIP-dependent at CPL3" },
	{ 1, 0x01, -1, 0xff, "SGDT/SIDT/SMSW/XGETBV/RDTSCP/CLZERO...: system or model-specific" },
	{ 1, 0x02, -1, 0xff, "LAR: descriptor tables" },
	{ 1, 0x03, -1, 0xff, "LSL: descriptor tables" },
	{ 1, 0xa1, -1, 0xff, "POP FS: would reload the host's FS (TLS) in the native child" },
	{ 0, 0xca, -1, 0xff, "far RET imm16: loads CS from the stack (descriptor tables; leaves the sandbox)" },
	{ 0, 0xcb, -1, 0xff, "far RET: loads CS from the stack" },
	{ 0, 0xcf, -1, 0xff, "IRET: loads CS, RFLAGS, SS:RSP from the stack" },
	{ 1, 0xb2, -1, 0xff, "LSS: loads SS (descriptor tables)" },
	{ 1, 0xb4, -1, 0xff, "LFS: would reload the host's FS (TLS)" },
	{ 1, 0xb5, -1, 0xff, "LGS: would reload the host's GS" },
	{ 1, 0xa9, -1, 0xff, "POP GS: would reload the host's GS" },
	{ 0, 0x8e, -1, 0xff, "MOV Sreg,Ev: would reload the host's segments" },
	{ 0, 0xff, 3, 0xff, "far CALL through memory: leaves the sandbox (register form is tested, #UD)" },
	{ 0, 0xff, 5, 0xff, "far JMP through memory: leaves the sandbox (register form is tested, #UD)" },
	{ 1, 0xae, 0, 0xf3, "RDFSBASE/WRFSBASE: host-kernel dependent; WRFSBASE breaks the host TLS" },
	{ 1, 0xae, 1, 0xf3, "RDGSBASE: host-kernel dependent" },
	{ 1, 0xae, 2, 0xf3, "WRFSBASE: host-kernel dependent" },
	{ 1, 0xae, 3, 0xf3, "WRGSBASE: host-kernel dependent" },
	{ 1, 0xae, 4, 0, "XSAVE: not advertised by the model, the host executes it" },
	{ 1, 0xae, 5, 0, "XRSTOR: not advertised" },
	{ 1, 0xae, 6, 0, "XSAVEOPT (mem): not advertised" },
	{ 1, 0xae, 6, 0x66, "CLWB: not advertised" },
	{ 1, 0xae, 7, 0x66, "CLFLUSHOPT: not advertised" },
	{ 1, 0xc7, 3, 0xff, "XRSTORS: not advertised" },
	{ 1, 0xc7, 4, 0xff, "XSAVEC: not advertised" },
	{ 1, 0xc7, 5, 0xff, "XSAVES: not advertised" },
	{ 1, 0xc7, 6, 0xff, "RDRAND: not deterministic, not advertised" },
	{ 1, 0xbc, -1, 0xf3, "TZCNT: BMI1 is not advertised (it needs VEX), so F3 0F BC runs as BSF, as on CPUs without BMI1; the host has BMI1" },
	{ 1, 0xc7, 7, 0xff, "RDSEED/RDPID: not deterministic, not advertised" },
	{ 0, 0xc4, -1, 0xff, "VEX (AVX): not advertised, the host executes it" },
	{ 0, 0xc5, -1, 0xff, "VEX (AVX): not advertised, the host executes it" },
	{ 0, 0x62, -1, 0xff, "EVEX (AVX-512): not advertised, the host executes it" },
	{ 1, 0x0e, -1, 0xff, "FEMMS (3DNow!): vendor-specific" },
	{ 1, 0x0f, -1, 0xff, "3DNow!: vendor-specific" },
	{ 1, 0x24, -1, 0xff, "MOV TR / AMD SSE5 remnants: vendor-specific" },
	{ 1, 0x25, -1, 0xff, "vendor-specific" },
	{ 1, 0x26, -1, 0xff, "vendor-specific" },
	{ 1, 0x27, -1, 0xff, "vendor-specific" },
	{ 1, 0x37, -1, 0xff, "GETSEC: SMX, host-dependent" },
	{ 0, 0x8f, 1, 0xff, "8F /1-7: the XOP escape on AMD (#GP or #UD depending on the map byte)" },
	{ 0, 0x8f, 2, 0xff, "XOP escape (AMD)" }, { 0, 0x8f, 3, 0xff, "XOP escape (AMD)" },
	{ 0, 0x8f, 4, 0xff, "XOP escape (AMD)" }, { 0, 0x8f, 5, 0xff, "XOP escape (AMD)" },
	{ 0, 0x8f, 6, 0xff, "XOP escape (AMD)" }, { 0, 0x8f, 7, 0xff, "XOP escape (AMD)" },
	{ 1, 0x78, -1, 0xff, "VMREAD / AMD EXTRQ (66, F2): vendor-specific" },
	{ 1, 0x79, -1, 0xff, "VMWRITE / AMD INSERTQ: vendor-specific" },
};
const unsigned dt_nexcluded = sizeof(dt_excluded) / sizeof(dt_excluded[0]);

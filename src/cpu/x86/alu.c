/*
 * Integer data instructions: the eight ALU operations, TEST, MOV and its
 * extending forms, LEA, INC/DEC, NOT/NEG, XCHG, CMOVcc, SETcc, BSWAP,
 * XADD, CMPXCHG(8B/16B), CBW..CQO, LAHF/SAHF and the flag instructions.
 *
 * The ALU forms are generated per operation and size so that the hot
 * handlers test nothing at run time.  LOCKed read-modify-write forms run
 * as host atomics on the guest page, so several vCPU threads see them as
 * the hardware would.
 */
#include "cpu/x86/alu.h"

/* --- the eight ALU operations ------------------------------------------- */

#define OP_ADD(T, a, b, r, cop, cs, cs2, WB) \
	do { r = (T)(a + b); cop = CC_ADD; cs = b; cs2 = 0; WB = 1; } while (0)
#define OP_OR(T, a, b, r, cop, cs, cs2, WB) \
	do { r = (T)(a | b); cop = CC_LOGIC; cs = 0; cs2 = 0; WB = 1; } while (0)
#define OP_ADC(T, a, b, r, cop, cs, cs2, WB) \
	do { T c_ = (T)x86_cf(cpu); r = (T)(a + b + c_); cop = CC_ADC; cs = b; cs2 = c_; WB = 1; } while (0)
#define OP_SBB(T, a, b, r, cop, cs, cs2, WB) \
	do { T c_ = (T)x86_cf(cpu); r = (T)(a - b - c_); cop = CC_SBB; cs = b; cs2 = c_; WB = 1; } while (0)
#define OP_AND(T, a, b, r, cop, cs, cs2, WB) \
	do { r = (T)(a & b); cop = CC_LOGIC; cs = 0; cs2 = 0; WB = 1; } while (0)
#define OP_SUB(T, a, b, r, cop, cs, cs2, WB) \
	do { r = (T)(a - b); cop = CC_SUB; cs = b; cs2 = 0; WB = 1; } while (0)
#define OP_XOR(T, a, b, r, cop, cs, cs2, WB) \
	do { r = (T)(a ^ b); cop = CC_LOGIC; cs = 0; cs2 = 0; WB = 1; } while (0)
#define OP_CMP(T, a, b, r, cop, cs, cs2, WB) \
	do { r = (T)(a - b); cop = CC_SUB; cs = b; cs2 = 0; WB = 0; } while (0)
#define OP_TEST(T, a, b, r, cop, cs, cs2, WB) \
	do { r = (T)(a & b); cop = CC_LOGIC; cs = 0; cs2 = 0; WB = 0; } while (0)

/* Whether the memory-destination form writes back (its read then faults
 * as a write). */
enum { RMW_add = 1, RMW_or = 1, RMW_adc = 1, RMW_sbb = 1, RMW_and = 1, RMW_sub = 1,
       RMW_xor = 1, RMW_cmp = 0, RMW_test = 0 };

#define DEF_ALU_SZ(name, OPM, T, SZ)                                                  \
	static X86_HANDLER(h_##name##_rr##SZ)                                         \
	{                                                                             \
		T a = (T)x86_get_reg(cpu, i->reg, SZ), b = (T)x86_get_reg(cpu, i->rm, SZ), r; \
		uint64_t cs, cs2; unsigned cop; int wb;                               \
		OPM(T, a, b, r, cop, cs, cs2, wb);                                    \
		if (wb)                                                               \
			x86_set_reg(cpu, i->reg, SZ, r);                              \
		x86_set_cc(cpu, cop, SZ, r, cs, cs2);                                 \
		return i + 1;                                                         \
	}                                                                             \
	static X86_HANDLER(h_##name##_rm##SZ)                                         \
	{                                                                             \
		T a = (T)x86_get_reg(cpu, i->reg, SZ);                                \
		T b = (T)x86_read(cpu, x86_ea(cpu, i), SZ), r;                        \
		uint64_t cs, cs2; unsigned cop; int wb;                               \
		OPM(T, a, b, r, cop, cs, cs2, wb);                                    \
		if (wb)                                                               \
			x86_set_reg(cpu, i->reg, SZ, r);                              \
		x86_set_cc(cpu, cop, SZ, r, cs, cs2);                                 \
		return i + 1;                                                         \
	}                                                                             \
	static X86_HANDLER(h_##name##_mr##SZ)                                         \
	{                                                                             \
		uint64_t la = x86_ea(cpu, i);                                         \
		T a = (T)(RMW_##name ? x86_read_rmw(cpu, la, SZ) : x86_read(cpu, la, SZ)); \
		T b = (T)x86_get_reg(cpu, i->reg, SZ), r;                             \
		uint64_t cs, cs2; unsigned cop; int wb;                               \
		OPM(T, a, b, r, cop, cs, cs2, wb);                                    \
		if (wb)                                                               \
			x86_write(cpu, la, SZ, r);                                    \
		x86_set_cc(cpu, cop, SZ, r, cs, cs2);                                 \
		return i + 1;                                                         \
	}                                                                             \
	static X86_HANDLER(h_##name##_ri##SZ)                                         \
	{                                                                             \
		T a = (T)x86_get_reg(cpu, i->rm, SZ), b = (T)i->imm, r;               \
		uint64_t cs, cs2; unsigned cop; int wb;                               \
		OPM(T, a, b, r, cop, cs, cs2, wb);                                    \
		if (wb)                                                               \
			x86_set_reg(cpu, i->rm, SZ, r);                               \
		x86_set_cc(cpu, cop, SZ, r, cs, cs2);                                 \
		return i + 1;                                                         \
	}                                                                             \
	static X86_HANDLER(h_##name##_mi##SZ)                                         \
	{                                                                             \
		uint64_t la = x86_ea(cpu, i);                                         \
		T a = (T)(RMW_##name ? x86_read_rmw(cpu, la, SZ) : x86_read(cpu, la, SZ)); \
		T b = (T)i->imm, r;                                                   \
		uint64_t cs, cs2; unsigned cop; int wb;                               \
		OPM(T, a, b, r, cop, cs, cs2, wb);                                    \
		if (wb)                                                               \
			x86_write(cpu, la, SZ, r);                                    \
		x86_set_cc(cpu, cop, SZ, r, cs, cs2);                                 \
		return i + 1;                                                         \
	}

#define DEF_ALU(name, OPM)                    \
	DEF_ALU_SZ(name, OPM, uint8_t, 1)     \
	DEF_ALU_SZ(name, OPM, uint16_t, 2)    \
	DEF_ALU_SZ(name, OPM, uint32_t, 4)    \
	DEF_ALU_SZ(name, OPM, uint64_t, 8)

DEF_ALU(add, OP_ADD)
DEF_ALU(or, OP_OR)
DEF_ALU(adc, OP_ADC)
DEF_ALU(sbb, OP_SBB)
DEF_ALU(and, OP_AND)
DEF_ALU(sub, OP_SUB)
DEF_ALU(xor, OP_XOR)
DEF_ALU(cmp, OP_CMP)
DEF_ALU(test, OP_TEST)

#define ROW(name, form) { h_##name##_##form##1, h_##name##_##form##2, h_##name##_##form##4, h_##name##_##form##8 }
#define TABLE(form) \
	{ ROW(add, form), ROW(or, form), ROW(adc, form), ROW(sbb, form), \
	  ROW(and, form), ROW(sub, form), ROW(xor, form), ROW(cmp, form), ROW(test, form) }

const x86_handler_fn x86_alu_rr[9][4] = TABLE(rr);
const x86_handler_fn x86_alu_rm[9][4] = TABLE(rm);
const x86_handler_fn x86_alu_mr[9][4] = TABLE(mr);
const x86_handler_fn x86_alu_ri[9][4] = TABLE(ri);
const x86_handler_fn x86_alu_mi[9][4] = TABLE(mi);

/* Generic ALU on 64-bit containers, for the locked forms. */
static uint64_t alu_generic(struct x86_cpu *cpu, unsigned op, unsigned size, uint64_t a, uint64_t b)
{
	uint64_t r, c;

	switch (op) {
	case 0: r = a + b; x86_set_cc(cpu, CC_ADD, size, r, b, 0); break;
	case 1: r = a | b; x86_set_cc(cpu, CC_LOGIC, size, r, 0, 0); break;
	case 2: c = x86_cf(cpu); r = a + b + c; x86_set_cc(cpu, CC_ADC, size, r, b, c); break;
	case 3: c = x86_cf(cpu); r = a - b - c; x86_set_cc(cpu, CC_SBB, size, r, b, c); break;
	case 4: r = a & b; x86_set_cc(cpu, CC_LOGIC, size, r, 0, 0); break;
	case 5: r = a - b; x86_set_cc(cpu, CC_SUB, size, r, b, 0); break;
	case 6: r = a ^ b; x86_set_cc(cpu, CC_LOGIC, size, r, 0, 0); break;
	default: r = a - b; x86_set_cc(cpu, CC_SUB, size, r, b, 0); break;
	}
	cpu->cc_dst = x86_zext(r, size);
	return cpu->cc_dst;
}

/* Atomic compare-and-swap on a host pointer of the given size. */
static bool cas(void *p, unsigned size, uint64_t *expected, uint64_t desired)
{
	switch (size) {
	case 1: { uint8_t e = (uint8_t)*expected; bool ok = __atomic_compare_exchange_n((uint8_t *)p, &e, (uint8_t)desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); *expected = e; return ok; }
	case 2: { uint16_t e = (uint16_t)*expected; bool ok = __atomic_compare_exchange_n((uint16_t *)p, &e, (uint16_t)desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); *expected = e; return ok; }
	case 4: { uint32_t e = (uint32_t)*expected; bool ok = __atomic_compare_exchange_n((uint32_t *)p, &e, (uint32_t)desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); *expected = e; return ok; }
	default: return __atomic_compare_exchange_n((uint64_t *)p, expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	}
}

static uint64_t load_sz(const void *p, unsigned size)
{
	uint64_t v = 0;
	memcpy(&v, p, size);
	return v;
}

/* Runs fn(old) -> new atomically on a guest memory operand; returns old.
 * Falls back to a plain read-modify-write when the operand is not in RAM
 * (MMIO), where atomicity has no meaning. */
uint64_t x86_locked_rmw(struct x86_cpu *cpu, uint64_t la, unsigned size,
			uint64_t (*fn)(struct x86_cpu *, const struct x86_insn *, uint64_t, bool *),
			const struct x86_insn *i)
{
	bool store = true;
	if (((la & 0xfff) + size) <= 4096) {
		uint8_t *p = x86_access_ptr(cpu, la, size, true);
		if (p) {
			uint64_t old = load_sz(p, size), nv;
			uint32_t s_op = cpu->cc_op;
			uint64_t s_d = cpu->cc_dst, s_s = cpu->cc_src, s_s2 = cpu->cc_src2;
			for (;;) {
				nv = fn(cpu, i, old, &store);
				if (!store || cas(p, size, &old, nv))
					break;
				/* lost a race: recompute from the original flags */
				cpu->cc_op = s_op; cpu->cc_dst = s_d;
				cpu->cc_src = s_s; cpu->cc_src2 = s_s2;
			}
			return old;
		}
	}
	uint64_t old = x86_read_rmw(cpu, la, size);
	uint64_t nv = fn(cpu, i, old, &store);
	if (store)
		x86_write(cpu, la, size, nv);
	return old;
}

static uint64_t rmw_alu_reg(struct x86_cpu *cpu, const struct x86_insn *i, uint64_t old, bool *store)
{
	*store = true;
	return alu_generic(cpu, i->aux, i->osz, old, x86_get_reg(cpu, i->reg, i->osz));
}

static uint64_t rmw_alu_imm(struct x86_cpu *cpu, const struct x86_insn *i, uint64_t old, bool *store)
{
	*store = true;
	return alu_generic(cpu, i->aux, i->osz, old, x86_zext(i->imm, i->osz));
}

X86_HANDLER(x86_h_alu_lock_mr)
{
	x86_locked_rmw(cpu, x86_ea(cpu, i), i->osz, rmw_alu_reg, i);
	return i + 1;
}

X86_HANDLER(x86_h_alu_lock_mi)
{
	x86_locked_rmw(cpu, x86_ea(cpu, i), i->osz, rmw_alu_imm, i);
	return i + 1;
}

/* --- MOV and friends ------------------------------------------------------ */

#define DEF_MOV(SZ)                                                          \
	static X86_HANDLER(h_mov_rr##SZ)                                      \
	{                                                                     \
		x86_set_reg(cpu, i->reg, SZ, x86_get_reg(cpu, i->rm, SZ));    \
		return i + 1;                                                 \
	}                                                                     \
	static X86_HANDLER(h_mov_rm##SZ)                                      \
	{                                                                     \
		x86_set_reg(cpu, i->reg, SZ, x86_read(cpu, x86_ea(cpu, i), SZ)); \
		return i + 1;                                                 \
	}                                                                     \
	static X86_HANDLER(h_mov_mr##SZ)                                      \
	{                                                                     \
		x86_write(cpu, x86_ea(cpu, i), SZ, x86_get_reg(cpu, i->reg, SZ)); \
		return i + 1;                                                 \
	}                                                                     \
	static X86_HANDLER(h_mov_ri##SZ)                                      \
	{                                                                     \
		x86_set_reg(cpu, i->rm, SZ, i->imm);                          \
		return i + 1;                                                 \
	}                                                                     \
	static X86_HANDLER(h_mov_mi##SZ)                                      \
	{                                                                     \
		x86_write(cpu, x86_ea(cpu, i), SZ, i->imm);                   \
		return i + 1;                                                 \
	}
DEF_MOV(1)
DEF_MOV(2)
DEF_MOV(4)
DEF_MOV(8)

const x86_handler_fn x86_mov_rr[4] = { h_mov_rr1, h_mov_rr2, h_mov_rr4, h_mov_rr8 };
const x86_handler_fn x86_mov_rm[4] = { h_mov_rm1, h_mov_rm2, h_mov_rm4, h_mov_rm8 };
const x86_handler_fn x86_mov_mr[4] = { h_mov_mr1, h_mov_mr2, h_mov_mr4, h_mov_mr8 };
const x86_handler_fn x86_mov_ri[4] = { h_mov_ri1, h_mov_ri2, h_mov_ri4, h_mov_ri8 };
const x86_handler_fn x86_mov_mi[4] = { h_mov_mi1, h_mov_mi2, h_mov_mi4, h_mov_mi8 };

/* MOV AL/AX/EAX/RAX <-> moffs: the address is in disp (no base/index). */
X86_HANDLER(x86_h_mov_moffs_load)
{
	uint64_t la = (i->disp & i->amask) + cpu->segbase[i->seg];
	x86_set_reg(cpu, X86_RAX, i->osz, x86_read(cpu, la, i->osz));
	return i + 1;
}

X86_HANDLER(x86_h_mov_moffs_store)
{
	uint64_t la = (i->disp & i->amask) + cpu->segbase[i->seg];
	x86_write(cpu, la, i->osz, x86_get_reg(cpu, X86_RAX, i->osz));
	return i + 1;
}

X86_HANDLER(x86_h_lea)
{
	x86_set_reg(cpu, i->reg, i->osz, x86_ea_offset(cpu, i));
	return i + 1;
}

static X86_HANDLER(h_lea64)
{
	cpu->regs[i->reg] = i->disp + cpu->regs[i->base] + (cpu->regs[i->index] << i->scale);
	return i + 1;
}
const x86_handler_fn x86_h_lea64 = h_lea64;

/* Specialised MOVZX/MOVSX forms: destination 32 or 64 bits (a 32-bit
 * write zero-extends, so MOVZX r32 and r64 are the same). */
static X86_HANDLER(h_movzx_r8_reg) { cpu->regs[i->reg] = *x86_r8(cpu, i->rm); return i + 1; }
static X86_HANDLER(h_movzx_r8_mem) { cpu->regs[i->reg] = x86_read8(cpu, x86_ea(cpu, i)); return i + 1; }
static X86_HANDLER(h_movzx_r16_reg) { cpu->regs[i->reg] = (uint16_t)cpu->regs[i->rm]; return i + 1; }
static X86_HANDLER(h_movzx_r16_mem) { cpu->regs[i->reg] = x86_read16(cpu, x86_ea(cpu, i)); return i + 1; }
static X86_HANDLER(h_movsx8_32_reg) { cpu->regs[i->reg] = (uint32_t)(int32_t)(int8_t)*x86_r8(cpu, i->rm); return i + 1; }
static X86_HANDLER(h_movsx8_32_mem) { cpu->regs[i->reg] = (uint32_t)(int32_t)(int8_t)x86_read8(cpu, x86_ea(cpu, i)); return i + 1; }
static X86_HANDLER(h_movsx8_64_reg) { cpu->regs[i->reg] = (uint64_t)(int64_t)(int8_t)*x86_r8(cpu, i->rm); return i + 1; }
static X86_HANDLER(h_movsx8_64_mem) { cpu->regs[i->reg] = (uint64_t)(int64_t)(int8_t)x86_read8(cpu, x86_ea(cpu, i)); return i + 1; }
static X86_HANDLER(h_movsx16_32_reg) { cpu->regs[i->reg] = (uint32_t)(int32_t)(int16_t)cpu->regs[i->rm]; return i + 1; }
static X86_HANDLER(h_movsx16_32_mem) { cpu->regs[i->reg] = (uint32_t)(int32_t)(int16_t)x86_read16(cpu, x86_ea(cpu, i)); return i + 1; }
static X86_HANDLER(h_movsx16_64_reg) { cpu->regs[i->reg] = (uint64_t)(int64_t)(int16_t)cpu->regs[i->rm]; return i + 1; }
static X86_HANDLER(h_movsx16_64_mem) { cpu->regs[i->reg] = (uint64_t)(int64_t)(int16_t)x86_read16(cpu, x86_ea(cpu, i)); return i + 1; }

x86_handler_fn x86_pick_movx(const struct x86_insn *i, bool sign)
{
	unsigned src = i->aux, dst = i->osz;
	if (dst < 4)
		return NULL;
	if (!sign)
		return src == 1 ? (i->is_mem ? h_movzx_r8_mem : h_movzx_r8_reg)
				: (i->is_mem ? h_movzx_r16_mem : h_movzx_r16_reg);
	if (src == 1)
		return dst == 4 ? (i->is_mem ? h_movsx8_32_mem : h_movsx8_32_reg)
				: (i->is_mem ? h_movsx8_64_mem : h_movsx8_64_reg);
	return dst == 4 ? (i->is_mem ? h_movsx16_32_mem : h_movsx16_32_reg)
			: (i->is_mem ? h_movsx16_64_mem : h_movsx16_64_reg);
}

/* MOVZX/MOVSX: aux = source size; i->osz destination size. */
X86_HANDLER(x86_h_movzx)
{
	x86_set_reg(cpu, i->reg, i->osz, x86_get_rm(cpu, i, i->aux));
	return i + 1;
}

X86_HANDLER(x86_h_movsx)
{
	x86_set_reg(cpu, i->reg, i->osz, (uint64_t)x86_sext(x86_get_rm(cpu, i, i->aux), i->aux));
	return i + 1;
}

/* --- INC, DEC, NOT, NEG -------------------------------------------------- */

#define DEF_INCDEC(SZ, T)                                                        \
	static X86_HANDLER(h_inc_r##SZ)                                           \
	{                                                                         \
		unsigned c = x86_cf(cpu);                                         \
		T r = (T)(x86_get_reg(cpu, i->rm, SZ) + 1);                       \
		x86_set_reg(cpu, i->rm, SZ, r);                                   \
		x86_set_cc(cpu, CC_INC, SZ, r, 1, c);                             \
		return i + 1;                                                     \
	}                                                                         \
	static X86_HANDLER(h_dec_r##SZ)                                           \
	{                                                                         \
		unsigned c = x86_cf(cpu);                                         \
		T r = (T)(x86_get_reg(cpu, i->rm, SZ) - 1);                       \
		x86_set_reg(cpu, i->rm, SZ, r);                                   \
		x86_set_cc(cpu, CC_DEC, SZ, r, 1, c);                             \
		return i + 1;                                                     \
	}
DEF_INCDEC(1, uint8_t)
DEF_INCDEC(2, uint16_t)
DEF_INCDEC(4, uint32_t)
DEF_INCDEC(8, uint64_t)
const x86_handler_fn x86_inc_r[4] = { h_inc_r1, h_inc_r2, h_inc_r4, h_inc_r8 };
const x86_handler_fn x86_dec_r[4] = { h_dec_r1, h_dec_r2, h_dec_r4, h_dec_r8 };

/* aux: 0 inc, 1 dec, 2 not, 3 neg */
static uint64_t rmw_unary(struct x86_cpu *cpu, const struct x86_insn *i, uint64_t old, bool *store)
{
	unsigned size = i->osz;
	uint64_t r;
	unsigned c;

	*store = true;
	switch (i->aux) {
	case 0:
		c = x86_cf(cpu);
		r = x86_zext(old + 1, size);
		x86_set_cc(cpu, CC_INC, size, r, 1, c);
		return r;
	case 1:
		c = x86_cf(cpu);
		r = x86_zext(old - 1, size);
		x86_set_cc(cpu, CC_DEC, size, r, 1, c);
		return r;
	case 2:
		return x86_zext(~old, size);
	default:
		r = x86_zext(0 - old, size);
		x86_set_cc(cpu, CC_SUB, size, r, old, 0);
		return r;
	}
}

X86_HANDLER(x86_h_unary)
{
	if (!i->is_mem) {
		bool st;
		uint64_t r = rmw_unary(cpu, i, x86_get_reg(cpu, i->rm, i->osz), &st);
		x86_set_reg(cpu, i->rm, i->osz, r);
	} else if (i->pfx & X86_PFX_LOCK) {
		x86_locked_rmw(cpu, x86_ea(cpu, i), i->osz, rmw_unary, i);
	} else {
		uint64_t la = x86_ea(cpu, i);
		uint64_t old = x86_read_rmw(cpu, la, i->osz);
		uint32_t s_op = cpu->cc_op;
		uint64_t s_d = cpu->cc_dst, s_s = cpu->cc_src, s_s2 = cpu->cc_src2;
		bool st;
		uint64_t r = rmw_unary(cpu, i, old, &st);
		uint32_t n_op = cpu->cc_op;
		uint64_t n_d = cpu->cc_dst, n_s = cpu->cc_src, n_s2 = cpu->cc_src2;
		/* the store may fault: the old flags stay until it is done */
		cpu->cc_op = s_op; cpu->cc_dst = s_d; cpu->cc_src = s_s; cpu->cc_src2 = s_s2;
		x86_write(cpu, la, i->osz, r);
		cpu->cc_op = n_op; cpu->cc_dst = n_d; cpu->cc_src = n_s; cpu->cc_src2 = n_s2;
	}
	return i + 1;
}

/* --- XCHG, XADD, CMPXCHG ------------------------------------------------- */

X86_HANDLER(x86_h_xchg_rr)
{
	uint64_t a = x86_get_reg(cpu, i->reg, i->osz), b = x86_get_reg(cpu, i->rm, i->osz);
	x86_set_reg(cpu, i->reg, i->osz, b);
	x86_set_reg(cpu, i->rm, i->osz, a);
	return i + 1;
}

static uint64_t rmw_xchg(struct x86_cpu *cpu, const struct x86_insn *i, uint64_t old, bool *store)
{
	(void)old;
	*store = true;
	return x86_get_reg(cpu, i->reg, i->osz);
}

X86_HANDLER(x86_h_xchg_mr)
{
	/* XCHG with memory is always locked. */
	uint64_t old = x86_locked_rmw(cpu, x86_ea(cpu, i), i->osz, rmw_xchg, i);
	x86_set_reg(cpu, i->reg, i->osz, old);
	return i + 1;
}

static uint64_t rmw_xadd(struct x86_cpu *cpu, const struct x86_insn *i, uint64_t old, bool *store)
{
	*store = true;
	return alu_generic(cpu, 0, i->osz, old, x86_get_reg(cpu, i->reg, i->osz));
}

X86_HANDLER(x86_h_xadd)
{
	if (!i->is_mem) {
		uint64_t d = x86_get_reg(cpu, i->rm, i->osz), s = x86_get_reg(cpu, i->reg, i->osz);
		uint64_t r = alu_generic(cpu, 0, i->osz, d, s);
		x86_set_reg(cpu, i->reg, i->osz, d);
		x86_set_reg(cpu, i->rm, i->osz, r);
	} else {
		uint64_t old = x86_locked_rmw(cpu, x86_ea(cpu, i), i->osz, rmw_xadd, i);
		x86_set_reg(cpu, i->reg, i->osz, old);
	}
	return i + 1;
}

static uint64_t rmw_cmpxchg(struct x86_cpu *cpu, const struct x86_insn *i, uint64_t old, bool *store)
{
	uint64_t acc = x86_get_reg(cpu, X86_RAX, i->osz);
	alu_generic(cpu, 7, i->osz, acc, old);
	/* Hardware always writes the destination (the old value when the
	 * comparison fails); with a CAS the failed case need not store. */
	if (acc == old) {
		*store = true;
		return x86_get_reg(cpu, i->reg, i->osz);
	}
	*store = false;
	return old;
}

X86_HANDLER(x86_h_cmpxchg)
{
	uint64_t acc = x86_get_reg(cpu, X86_RAX, i->osz);
	if (!i->is_mem) {
		uint64_t d = x86_get_reg(cpu, i->rm, i->osz);
		alu_generic(cpu, 7, i->osz, acc, d);
		if (acc == d)
			x86_set_reg(cpu, i->rm, i->osz, x86_get_reg(cpu, i->reg, i->osz));
		else
			x86_set_reg(cpu, X86_RAX, i->osz, d);
		return i + 1;
	}
	uint64_t la = x86_ea(cpu, i);
	x86_probe_write(cpu, la, i->osz);
	uint64_t old = x86_locked_rmw(cpu, la, i->osz, rmw_cmpxchg, i);
	if (old != acc)
		x86_set_reg(cpu, X86_RAX, i->osz, old);
	return i + 1;
}

/* CMPXCHG8B / CMPXCHG16B (0F C7 /1). */
X86_HANDLER(x86_h_cmpxchg8b16b)
{
	uint64_t la = x86_ea(cpu, i);
	uint32_t f = x86_arith_flags(cpu);

	if (i->osz == 8) {
		if (la & 15)
			x86_raise(cpu, X86_GP, 0);
		uint64_t lo = cpu->regs[X86_RAX], hi = cpu->regs[X86_RDX];
		uint8_t *p = x86_access_ptr(cpu, la, 16, true);
		unsigned __int128 cur, exp = ((unsigned __int128)hi << 64) | lo;
		unsigned __int128 des = ((unsigned __int128)cpu->regs[X86_RCX] << 64) | cpu->regs[X86_RBX];
		bool ok;
		if (p) {
			/* 16-byte aligned (checked above): a host CMPXCHG16B */
			cur = __sync_val_compare_and_swap((unsigned __int128 *)(void *)p, exp, des);
			ok = cur == exp;
		} else {
			uint64_t m[2];
			x86_probe_write(cpu, la, 16); /* a fault is a write fault */
			x86_read_mem(cpu, la, m, 16);
			cur = ((unsigned __int128)m[1] << 64) | m[0];
			ok = cur == exp;
			if (ok) {
				m[0] = (uint64_t)des;
				m[1] = (uint64_t)(des >> 64);
				x86_write_mem(cpu, la, m, 16);
			}
		}
		if (ok) {
			f |= X86_ZF;
		} else {
			f &= ~X86_ZF;
			cpu->regs[X86_RAX] = (uint64_t)cur;
			cpu->regs[X86_RDX] = (uint64_t)(cur >> 64);
		}
	} else {
		uint64_t exp = (uint64_t)(uint32_t)cpu->regs[X86_RDX] << 32 | (uint32_t)cpu->regs[X86_RAX];
		uint64_t des = (uint64_t)(uint32_t)cpu->regs[X86_RCX] << 32 | (uint32_t)cpu->regs[X86_RBX];
		uint64_t cur;
		bool ok;
		uint8_t *p = ((la & 0xfff) <= 4096 - 8) ? x86_access_ptr(cpu, la, 8, true) : NULL;
		if (p) {
			cur = exp;
			ok = __atomic_compare_exchange_n((uint64_t *)(void *)p, &cur, des, false,
							 __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
		} else {
			x86_probe_write(cpu, la, 8);
			x86_read_mem(cpu, la, &cur, 8);
			ok = cur == exp;
			if (ok)
				x86_write_mem(cpu, la, &des, 8);
		}
		if (ok) {
			f |= X86_ZF;
		} else {
			f &= ~X86_ZF;
			cpu->regs[X86_RAX] = (uint32_t)cur;
			cpu->regs[X86_RDX] = (uint32_t)(cur >> 32);
		}
	}
	x86_set_arith_flags(cpu, f);
	return i + 1;
}

/* --- CMOVcc, SETcc, BSWAP, sign extensions -------------------------------- */

X86_HANDLER(x86_h_cmov)
{
	uint64_t v = x86_get_rm(cpu, i, i->osz); /* the read happens (and may fault) either way */
	if (x86_cond(cpu, i->aux))
		x86_set_reg(cpu, i->reg, i->osz, v);
	else if (i->osz == 4)
		cpu->regs[i->reg] = (uint32_t)cpu->regs[i->reg];
	return i + 1;
}

X86_HANDLER(x86_h_setcc)
{
	x86_set_rm(cpu, i, 1, x86_cond(cpu, i->aux));
	return i + 1;
}

X86_HANDLER(x86_h_bswap)
{
	if (i->osz == 8)
		cpu->regs[i->rm] = __builtin_bswap64(cpu->regs[i->rm]);
	else if (i->osz == 4)
		cpu->regs[i->rm] = __builtin_bswap32((uint32_t)cpu->regs[i->rm]);
	else
		*(uint16_t *)&cpu->regs[i->rm] = 0; /* BSWAP r16 is undefined; 0 matches hardware */
	return i + 1;
}

/* CBW / CWDE / CDQE */
X86_HANDLER(x86_h_cbw)
{
	unsigned half = i->osz / 2;
	x86_set_reg(cpu, X86_RAX, i->osz, (uint64_t)x86_sext(cpu->regs[X86_RAX], half));
	return i + 1;
}

/* CWD / CDQ / CQO */
X86_HANDLER(x86_h_cwd)
{
	int64_t a = x86_sext(cpu->regs[X86_RAX], i->osz);
	x86_set_reg(cpu, X86_RDX, i->osz, a < 0 ? ~0ull : 0);
	return i + 1;
}

X86_HANDLER(x86_h_movsxd)
{
	uint64_t v = (uint64_t)(int64_t)(int32_t)x86_get_rm(cpu, i, 4);
	x86_set_reg(cpu, i->reg, i->osz, v);
	return i + 1;
}

/* --- flag instructions ------------------------------------------------- */

X86_HANDLER(x86_h_lahf)
{
	uint32_t f = (uint32_t)x86_flags(cpu);
	*x86_r8(cpu, 16) = (uint8_t)((f & 0xd5) | 2);
	return i + 1;
}

X86_HANDLER(x86_h_sahf)
{
	uint32_t f = x86_arith_flags(cpu) & X86_OF;
	f |= *x86_r8(cpu, 16) & (X86_CF | X86_PF | X86_AF | X86_ZF | X86_SF);
	x86_set_arith_flags(cpu, f);
	return i + 1;
}

/* aux: 0 CLC, 1 STC, 2 CMC, 3 CLD, 4 STD */
X86_HANDLER(x86_h_flagop)
{
	uint32_t f;
	switch (i->aux) {
	case 0: x86_set_arith_flags(cpu, x86_arith_flags(cpu) & ~X86_CF); break;
	case 1: x86_set_arith_flags(cpu, x86_arith_flags(cpu) | X86_CF); break;
	case 2: f = x86_arith_flags(cpu); x86_set_arith_flags(cpu, f ^ X86_CF); break;
	case 3: cpu->rflags &= ~(uint64_t)X86_DF; break;
	default: cpu->rflags |= X86_DF; break;
	}
	return i + 1;
}

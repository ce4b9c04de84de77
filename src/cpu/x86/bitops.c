/*
 * Bit instructions: BT/BTS/BTR/BTC (0F A3 AB B3 BB, 0F BA /4-/7),
 * BSF/BSR (0F BC/BD), LZCNT (F3 0F BD) and POPCNT (F3 0F B8).
 *
 * BTx: CF = the selected bit and every other flag is kept (ZF is
 * architecturally unaffected; OF SF AF PF are undefined and the hardware
 * keeps them).  With a register bit offset and a memory operand the offset
 * is a signed operand-size integer that may address outside the operand:
 * the operand-size word at ea + (offset >> log2(bits)) * size is used.
 * An immediate offset is taken modulo the operand width.  BTS/BTR/BTC
 * with LOCK run as host atomics.
 *
 * BSF/BSR: ZF = (source == 0) and the destination is left unchanged (all
 * 64 bits) for a zero source; the undefined CF OF SF AF PF come out as
 * for a logic operation on the source, as Intel and AMD parts do.
 *
 * TZCNT is part of BMI1, which this CPU does not advertise (its other
 * instructions are VEX-encoded): F3 0F BC runs as BSF, as on CPUs without
 * BMI1.  LZCNT (ABM) and POPCNT are advertised.
 */
#include "cpu/x86/alu.h"
#include "cpu/x86/int2.h"

enum { BT_BT, BT_BTS, BT_BTR, BT_BTC };

/* Applies op to bit b of v; returns the new value (v for BT). */
static X86_ALWAYS_INLINE uint64_t bt_apply(unsigned op, uint64_t v, unsigned b)
{
	switch (op) {
	case BT_BTS: return v | (1ull << b);
	case BT_BTR: return v & ~(1ull << b);
	case BT_BTC: return v ^ (1ull << b);
	default: return v;
	}
}

static inline void bt_flags(struct x86_cpu *cpu, unsigned cf)
{
	x86_set_arith_flags(cpu, (x86_arith_flags(cpu) & ~X86_CF) | cf);
}

/* Linear address of the word that a register bit offset selects. */
static X86_ALWAYS_INLINE uint64_t bt_la(struct x86_cpu *cpu, const struct x86_insn *i, unsigned sz, uint64_t off)
{
	int64_t words = x86_sext(off, sz) >> (x86_szlog(sz) + 3);
	return ((x86_ea_offset(cpu, i) + (uint64_t)words * sz) & i->amask) + cpu->segbase[i->seg];
}

#define BITS(SZ) ((SZ) * 8u)

#define DEF_BT_SZ(name, OP, SZ)                                                         \
	static X86_HANDLER(h_##name##_rr##SZ) /* r/m = register, offset in reg */       \
	{                                                                               \
		unsigned b = (unsigned)cpu->regs[i->reg] & (BITS(SZ) - 1);              \
		uint64_t v = x86_get_reg(cpu, i->rm, SZ);                               \
		if (OP != BT_BT)                                                        \
			x86_set_reg(cpu, i->rm, SZ, bt_apply(OP, v, b));                \
		bt_flags(cpu, (v >> b) & 1);                                            \
		return i + 1;                                                           \
	}                                                                               \
	static X86_HANDLER(h_##name##_ri##SZ) /* offset in imm, already reduced */      \
	{                                                                               \
		unsigned b = (unsigned)i->imm;                                          \
		uint64_t v = x86_get_reg(cpu, i->rm, SZ);                               \
		if (OP != BT_BT)                                                        \
			x86_set_reg(cpu, i->rm, SZ, bt_apply(OP, v, b));                \
		bt_flags(cpu, (v >> b) & 1);                                            \
		return i + 1;                                                           \
	}                                                                               \
	static X86_HANDLER(h_##name##_mr##SZ)                                           \
	{                                                                               \
		uint64_t off = cpu->regs[i->reg];                                       \
		unsigned b = (unsigned)off & (BITS(SZ) - 1);                            \
		uint64_t la = bt_la(cpu, i, SZ, off);                                   \
		uint64_t v = OP != BT_BT ? x86_int2_read_rmw(cpu, la, SZ) : x86_read(cpu, la, SZ); \
		if (OP != BT_BT)                                                        \
			x86_write(cpu, la, SZ, bt_apply(OP, v, b));                     \
		bt_flags(cpu, (v >> b) & 1);                                            \
		return i + 1;                                                           \
	}                                                                               \
	static X86_HANDLER(h_##name##_mi##SZ)                                           \
	{                                                                               \
		unsigned b = (unsigned)i->imm;                                          \
		uint64_t la = x86_ea(cpu, i);                                           \
		uint64_t v = OP != BT_BT ? x86_int2_read_rmw(cpu, la, SZ) : x86_read(cpu, la, SZ); \
		if (OP != BT_BT)                                                        \
			x86_write(cpu, la, SZ, bt_apply(OP, v, b));                     \
		bt_flags(cpu, (v >> b) & 1);                                            \
		return i + 1;                                                           \
	}

#define DEF_BT(name, OP) DEF_BT_SZ(name, OP, 2) DEF_BT_SZ(name, OP, 4) DEF_BT_SZ(name, OP, 8)
DEF_BT(bt, BT_BT)
DEF_BT(bts, BT_BTS)
DEF_BT(btr, BT_BTR)
DEF_BT(btc, BT_BTC)

#define ROW(name, f) { NULL, h_##name##_##f##2, h_##name##_##f##4, h_##name##_##f##8 }
#define OPS(f) { ROW(bt, f), ROW(bts, f), ROW(btr, f), ROW(btc, f) }
static const x86_handler_fn bt_rr[4][4] = OPS(rr), bt_ri[4][4] = OPS(ri),
	bt_mr[4][4] = OPS(mr), bt_mi[4][4] = OPS(mi);

/* LOCK BTS/BTR/BTC: i->aux is the operation. */
static uint64_t rmw_bt(struct x86_cpu *cpu, const struct x86_insn *i, uint64_t old, unsigned b, bool *store)
{
	*store = true;
	bt_flags(cpu, (old >> b) & 1);
	switch (i->aux) {
	case BT_BTS: return old | (1ull << b);
	case BT_BTR: return old & ~(1ull << b);
	default: return old ^ (1ull << b);
	}
}

static uint64_t rmw_bt_reg(struct x86_cpu *cpu, const struct x86_insn *i, uint64_t old, bool *store)
{
	return rmw_bt(cpu, i, old, (unsigned)cpu->regs[i->reg] & (i->osz * 8u - 1), store);
}

static uint64_t rmw_bt_imm(struct x86_cpu *cpu, const struct x86_insn *i, uint64_t old, bool *store)
{
	return rmw_bt(cpu, i, old, (unsigned)i->imm, store);
}

static X86_HANDLER(h_bt_lock_mr)
{
	uint64_t la = bt_la(cpu, i, i->osz, cpu->regs[i->reg]);
	x86_int2_probe_rmw(cpu, la, i->osz); /* faults as a write */
	x86_locked_rmw(cpu, la, i->osz, rmw_bt_reg, i);
	return i + 1;
}

static X86_HANDLER(h_bt_lock_mi)
{
	uint64_t la = x86_ea(cpu, i);
	x86_int2_probe_rmw(cpu, la, i->osz);
	x86_locked_rmw(cpu, la, i->osz, rmw_bt_imm, i);
	return i + 1;
}

/* --- BSF BSR LZCNT POPCNT ------------------------------------------------- */

enum { BS_BSF, BS_BSR, BS_LZCNT, BS_POPCNT };

static X86_ALWAYS_INLINE void bs_op(struct x86_cpu *cpu, const struct x86_insn *i, unsigned op,
				    unsigned sz, uint64_t v)
{
	const unsigned bits = sz * 8;
	switch (op) {
	case BS_BSF:
	case BS_BSR:
		x86_set_cc(cpu, CC_LOGIC, sz, v, 0, 0);
		if (v)
			x86_set_reg(cpu, i->reg, sz, op == BS_BSF ? (unsigned)__builtin_ctzll(v)
								: 63u - (unsigned)__builtin_clzll(v));
		return;
	case BS_LZCNT: {
		unsigned r = v ? (unsigned)__builtin_clzll(v) - (64 - bits) : bits;
		x86_set_reg(cpu, i->reg, sz, r);
		x86_set_arith_flags(cpu, (v ? 0 : X86_CF) | (r ? 0 : X86_ZF));
		return;
	}
	default: {
		unsigned r = (unsigned)__builtin_popcountll(v);
		x86_set_reg(cpu, i->reg, sz, r);
		x86_set_arith_flags(cpu, v ? 0 : X86_ZF);
		return;
	}
	}
}

#define DEF_BS_SZ(name, OP, SZ)                                                 \
	static X86_HANDLER(h_##name##_r##SZ)                                    \
	{                                                                       \
		bs_op(cpu, i, OP, SZ, x86_get_reg(cpu, i->rm, SZ));             \
		return i + 1;                                                   \
	}                                                                       \
	static X86_HANDLER(h_##name##_m##SZ)                                    \
	{                                                                       \
		bs_op(cpu, i, OP, SZ, x86_read(cpu, x86_ea(cpu, i), SZ));       \
		return i + 1;                                                   \
	}
#define DEF_BS(name, OP) DEF_BS_SZ(name, OP, 2) DEF_BS_SZ(name, OP, 4) DEF_BS_SZ(name, OP, 8)
DEF_BS(bsf, BS_BSF)
DEF_BS(bsr, BS_BSR)
DEF_BS(lzcnt, BS_LZCNT)
DEF_BS(popcnt, BS_POPCNT)

static const x86_handler_fn bs_r[4][4] = { ROW(bsf, r), ROW(bsr, r), ROW(lzcnt, r), ROW(popcnt, r) };
static const x86_handler_fn bs_m[4][4] = { ROW(bsf, m), ROW(bsr, m), ROW(lzcnt, m), ROW(popcnt, m) };

bool x86_select_bitops(struct x86_insn *i, unsigned opc)
{
	unsigned lg = x86_szlog(i->osz), op;
	bool f3 = i->pfx & X86_PFX_REP; /* the last of F2/F3 was F3 */

	switch (opc) {
	case 0xb8:
		if (!f3)
			return false; /* 0F B8 without F3 is JMPE (IA-64) */
		op = BS_POPCNT;
		break;
	case 0xbc:
		op = BS_BSF; /* F3 0F BC (TZCNT) too: BMI1 is not advertised */
		break;
	case 0xbd:
		op = f3 ? BS_LZCNT : BS_BSR;
		break;
	default:
		goto bt;
	}
	i->fn = (i->is_mem ? bs_m : bs_r)[op][lg];
	return true;

bt:
	if (opc == 0xba) {
		unsigned r = (i->modrm >> 3) & 7;
		if (r < 4)
			return false;
		op = r - 4;
		i->imm &= i->osz * 8u - 1;
	} else {
		op = (opc >> 3) & 3; /* A3 BT, AB BTS, B3 BTR, BB BTC */
	}
	i->aux = (uint8_t)op;
	if (!i->is_mem) {
		i->fn = (opc == 0xba ? bt_ri : bt_rr)[op][lg];
		return true;
	}
	if (op != BT_BT)
		i->flags |= X86_IF_LOCKOK;
	if ((i->pfx & X86_PFX_LOCK) && op != BT_BT)
		i->fn = opc == 0xba ? h_bt_lock_mi : h_bt_lock_mr;
	else
		i->fn = (opc == 0xba ? bt_mi : bt_mr)[op][lg];
	return true;
}

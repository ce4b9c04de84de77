/*
 * Shifts and rotates: ROL ROR RCL RCR SHL SHR SAL SAR (C0 C1 D0-D3) and the
 * double shifts SHLD/SHRD (0F A4 A5 AC AD).
 *
 * Flag rules (SDM vol. 2B, "SAL/SAR/SHL/SHR", "RCL/RCR/ROL/ROR",
 * "SHLD", "SHRD"): the count is masked to 5 bits (6 with 64-bit operands);
 * a masked count of 0 changes no flag (the register is still written, so
 * a 32-bit destination is zero-extended, as the hardware does); OF is
 * defined only for a count of 1; rotates change only CF and OF.  Shifts
 * use the lazy producers CC_SHL/CC_SHR/CC_SAR; rotates materialise flags.
 * For the undefined cases this computes what Intel parts produce: OF as
 * for a count of 1 from the final result, AF clear, and for 16-bit
 * SHLD/SHRD with counts 17..31 the shift of the 48-bit value
 * dest:src:dest.
 *
 * Handlers are generated per operation, operand size, count source
 * (immediate or 1, resolved at decode time, or CL) and register/memory
 * form.
 */
#include "cpu/x86/int2.h"

enum { SH_ROL, SH_ROR, SH_RCL, SH_RCR, SH_SHL, SH_SHR, SH_SAL, SH_SAR };

#define SZMASK(size) ((size) == 8 ? ~0ull : (1ull << ((size) * 8)) - 1)
#define CNTMASK(size) ((size) == 8 ? 63u : 31u)

/* Rotate flags: CF and OF replaced, the rest kept. */
static inline void rot_flags(struct x86_cpu *cpu, struct x86_cc *cc, unsigned cf, unsigned of)
{
	uint32_t f = x86_arith_flags(cpu) & ~(X86_CF | X86_OF);
	cc->op = CC_EFLAGS;
	cc->dst = 0;
	cc->src = f | (cf ? X86_CF : 0) | (of ? X86_OF : 0);
	cc->src2 = 0;
}

/* The shift or rotate op of v (zero-extended, size bytes) by the masked,
 * non-zero count c; fills *cc with the flags to commit. */
static X86_ALWAYS_INLINE uint64_t shift_op(struct x86_cpu *cpu, unsigned op, unsigned size,
					   uint64_t v, unsigned c, struct x86_cc *cc)
{
	const unsigned bits = size * 8;
	const uint64_t mask = SZMASK(size);
	uint64_t r, s;

	switch (op) {
	case SH_SHL:
	case SH_SAL:
		s = v << (c - 1);
		r = (s << 1) & mask;
		*cc = (struct x86_cc){ CC_SHL | x86_szlog(size), r, s, 0 };
		return r;
	case SH_SHR:
		s = v >> (c - 1);
		r = s >> 1;
		*cc = (struct x86_cc){ CC_SHR | x86_szlog(size), r, s, v };
		return r;
	case SH_SAR:
		s = (uint64_t)(x86_sext(v, size) >> (c - 1));
		r = (uint64_t)((int64_t)s >> 1) & mask;
		*cc = (struct x86_cc){ CC_SAR | x86_szlog(size), r, s, 0 };
		return r;
	case SH_ROL: {
		unsigned n = c & (bits - 1);
		r = n ? ((v << n) | (v >> (bits - n))) & mask : v;
		unsigned cf = r & 1;
		rot_flags(cpu, cc, cf, cf ^ (unsigned)(r >> (bits - 1)));
		return r;
	}
	case SH_ROR: {
		unsigned n = c & (bits - 1);
		r = n ? ((v >> n) | (v << (bits - n))) & mask : v;
		unsigned msb = (unsigned)(r >> (bits - 1)) & 1;
		rot_flags(cpu, cc, msb, msb ^ ((unsigned)(r >> (bits - 2)) & 1));
		return r;
	}
	case SH_RCL:
	case SH_RCR: {
		/* Rotate the (bits+1)-bit value CF:v. */
		unsigned n = size == 1 ? c % 9 : size == 2 ? c % 17 : c;
		unsigned __int128 x = ((unsigned __int128)x86_cf(cpu) << bits) | v;
		unsigned __int128 xm = ((unsigned __int128)1 << (bits + 1)) - 1;
		if (n) {
			if (op == SH_RCL)
				x = ((x << n) | (x >> (bits + 1 - n))) & xm;
			else
				x = ((x >> n) | (x << (bits + 1 - n))) & xm;
		}
		r = (uint64_t)x & mask;
		unsigned cf = (unsigned)(x >> bits) & 1;
		unsigned msb = (unsigned)(r >> (bits - 1)) & 1;
		if (op == SH_RCL)
			rot_flags(cpu, cc, cf, msb ^ cf);
		else
			rot_flags(cpu, cc, cf, msb ^ ((unsigned)(r >> (bits - 2)) & 1));
		return r;
	}
	default:
		__builtin_unreachable();
	}
}

/* Count from the decoder (imm: already masked) or from CL. */
#define COUNT_I(SZ) ((unsigned)i->imm)
#define COUNT_C(SZ) ((unsigned)cpu->regs[X86_RCX] & CNTMASK(SZ))

#define DEF_SHIFT_SZ(name, OP, SZ, T)                                               \
	static X86_HANDLER(h_##name##_ri##SZ)                                       \
	{                                                                           \
		unsigned c = COUNT_I(SZ);                                           \
		uint64_t v = x86_get_reg(cpu, i->rm, SZ);                           \
		struct x86_cc cc;                                                   \
		x86_set_reg(cpu, i->rm, SZ, shift_op(cpu, OP, SZ, v, c, &cc));      \
		x86_cc_commit(cpu, &cc);                                            \
		return i + 1;                                                       \
	}                                                                           \
	static X86_HANDLER(h_##name##_rc##SZ)                                       \
	{                                                                           \
		unsigned c = COUNT_C(SZ);                                           \
		uint64_t v = x86_get_reg(cpu, i->rm, SZ);                           \
		struct x86_cc cc;                                                   \
		if (c) {                                                            \
			v = shift_op(cpu, OP, SZ, v, c, &cc);                       \
			x86_cc_commit(cpu, &cc);                                    \
		}                                                                   \
		x86_set_reg(cpu, i->rm, SZ, v);                                     \
		return i + 1;                                                       \
	}                                                                           \
	static X86_HANDLER(h_##name##_mi##SZ)                                       \
	{                                                                           \
		unsigned c = COUNT_I(SZ);                                           \
		uint64_t la = x86_ea(cpu, i);                                       \
		uint64_t v = x86_int2_read_rmw(cpu, la, SZ);                                  \
		struct x86_cc cc;                                                   \
		x86_write##T(cpu, la, (uint##T##_t)shift_op(cpu, OP, SZ, v, c, &cc)); \
		x86_cc_commit(cpu, &cc);                                            \
		return i + 1;                                                       \
	}                                                                           \
	static X86_HANDLER(h_##name##_mc##SZ)                                       \
	{                                                                           \
		unsigned c = COUNT_C(SZ);                                           \
		uint64_t la = x86_ea(cpu, i);                                       \
		uint64_t v = x86_int2_read_rmw(cpu, la, SZ);                                  \
		struct x86_cc cc;                                                   \
		if (c) {                                                            \
			x86_write##T(cpu, la, (uint##T##_t)shift_op(cpu, OP, SZ, v, c, &cc)); \
			x86_cc_commit(cpu, &cc);                                    \
		}                                                                   \
		return i + 1;                                                       \
	}

#define DEF_SHIFT(name, OP)                 \
	DEF_SHIFT_SZ(name, OP, 1, 8)        \
	DEF_SHIFT_SZ(name, OP, 2, 16)       \
	DEF_SHIFT_SZ(name, OP, 4, 32)       \
	DEF_SHIFT_SZ(name, OP, 8, 64)

DEF_SHIFT(rol, SH_ROL)
DEF_SHIFT(ror, SH_ROR)
DEF_SHIFT(rcl, SH_RCL)
DEF_SHIFT(rcr, SH_RCR)
DEF_SHIFT(shl, SH_SHL)
DEF_SHIFT(shr, SH_SHR)
DEF_SHIFT(sar, SH_SAR)

/* Count 0 from an immediate: no flag changes; the register form still
 * writes its register (zero-extending 32-bit destinations), the memory
 * form reads its operand (and faults as a write would, as the hardware
 * does for this read-modify-write instruction). */
static X86_HANDLER(h_shift0_r)
{
	x86_set_reg(cpu, i->rm, i->osz, x86_get_reg(cpu, i->rm, i->osz));
	return i + 1;
}

static X86_HANDLER(h_shift0_m)
{
	(void)x86_int2_read_rmw(cpu, x86_ea(cpu, i), i->osz);
	return i + 1;
}

#define ROW(name, form) { h_##name##_##form##1, h_##name##_##form##2, h_##name##_##form##4, h_##name##_##form##8 }
#define OPS(form) { ROW(rol, form), ROW(ror, form), ROW(rcl, form), ROW(rcr, form), \
		    ROW(shl, form), ROW(shr, form), ROW(shl, form), ROW(sar, form) }

static const x86_handler_fn shift_ri[8][4] = OPS(ri);
static const x86_handler_fn shift_rc[8][4] = OPS(rc);
static const x86_handler_fn shift_mi[8][4] = OPS(mi);
static const x86_handler_fn shift_mc[8][4] = OPS(mc);

/* --- SHLD / SHRD --------------------------------------------------------- */

/* Double shift of d by c (masked, non-zero) filling from s. */
static X86_ALWAYS_INLINE uint64_t shd_op(bool left, unsigned size, uint64_t d, uint64_t s,
					 unsigned c, struct x86_cc *cc)
{
	const uint64_t mask = SZMASK(size);
	uint64_t r, src;

	if (size == 8) {
		if (left) {
			r = (d << c) | (s >> (64 - c));
			src = d << (c - 1);
		} else {
			r = (d >> c) | (s << (64 - c));
			src = d >> (c - 1);
		}
	} else {
		/* 32-bit: the 64-bit value d:s (left) or s:d (right); 16-bit: the
		 * 48-bit value d:s:d, which also gives the Intel results for
		 * counts 17..31. */
		uint64_t x;
		unsigned bits = size * 8;
		if (size == 4)
			x = left ? (d << 32 | s) : (s << 32 | d);
		else
			x = d << 32 | s << 16 | d;
		if (left) {
			unsigned top = size == 4 ? 64 : 48;
			r = (x >> (top - bits - c)) & mask;
			src = (x >> (top - bits - c + 1)) & mask;
		} else {
			r = (x >> c) & mask;
			src = x >> (c - 1);
		}
	}
	if (left)
		*cc = (struct x86_cc){ CC_SHL | x86_szlog(size), r, src, 0 };
	else /* CF = bit 0 of src; OF = the sign change, through src2's sign */
		*cc = (struct x86_cc){ CC_SHR | x86_szlog(size), r, src, (d ^ r) & mask };
	return r;
}

#define DEF_SHD_SZ(name, LEFT, SZ, T)                                               \
	static X86_HANDLER(h_##name##_ri##SZ)                                       \
	{                                                                           \
		unsigned c = COUNT_I(SZ);                                           \
		uint64_t d = x86_get_reg(cpu, i->rm, SZ), s = x86_get_reg(cpu, i->reg, SZ); \
		struct x86_cc cc;                                                   \
		x86_set_reg(cpu, i->rm, SZ, shd_op(LEFT, SZ, d, s, c, &cc));        \
		x86_cc_commit(cpu, &cc);                                            \
		return i + 1;                                                       \
	}                                                                           \
	static X86_HANDLER(h_##name##_rc##SZ)                                       \
	{                                                                           \
		unsigned c = COUNT_C(SZ);                                           \
		uint64_t d = x86_get_reg(cpu, i->rm, SZ), s = x86_get_reg(cpu, i->reg, SZ); \
		struct x86_cc cc;                                                   \
		if (c) {                                                            \
			d = shd_op(LEFT, SZ, d, s, c, &cc);                         \
			x86_cc_commit(cpu, &cc);                                    \
		}                                                                   \
		x86_set_reg(cpu, i->rm, SZ, d);                                     \
		return i + 1;                                                       \
	}                                                                           \
	static X86_HANDLER(h_##name##_mi##SZ)                                       \
	{                                                                           \
		unsigned c = COUNT_I(SZ);                                           \
		uint64_t la = x86_ea(cpu, i);                                       \
		uint64_t d = x86_int2_read_rmw(cpu, la, SZ), s = x86_get_reg(cpu, i->reg, SZ); \
		struct x86_cc cc;                                                   \
		x86_write##T(cpu, la, (uint##T##_t)shd_op(LEFT, SZ, d, s, c, &cc)); \
		x86_cc_commit(cpu, &cc);                                            \
		return i + 1;                                                       \
	}                                                                           \
	static X86_HANDLER(h_##name##_mc##SZ)                                       \
	{                                                                           \
		unsigned c = COUNT_C(SZ);                                           \
		uint64_t la = x86_ea(cpu, i);                                       \
		uint64_t d = x86_int2_read_rmw(cpu, la, SZ), s = x86_get_reg(cpu, i->reg, SZ); \
		struct x86_cc cc;                                                   \
		if (c) {                                                            \
			x86_write##T(cpu, la, (uint##T##_t)shd_op(LEFT, SZ, d, s, c, &cc)); \
			x86_cc_commit(cpu, &cc);                                    \
		}                                                                   \
		return i + 1;                                                       \
	}

#define DEF_SHD(name, LEFT)              \
	DEF_SHD_SZ(name, LEFT, 2, 16)    \
	DEF_SHD_SZ(name, LEFT, 4, 32)    \
	DEF_SHD_SZ(name, LEFT, 8, 64)

DEF_SHD(shld, true)
DEF_SHD(shrd, false)

#define ROW3(name, form) { NULL, h_##name##_##form##2, h_##name##_##form##4, h_##name##_##form##8 }
static const x86_handler_fn shd_ri[2][4] = { ROW3(shld, ri), ROW3(shrd, ri) };
static const x86_handler_fn shd_rc[2][4] = { ROW3(shld, rc), ROW3(shrd, rc) };
static const x86_handler_fn shd_mi[2][4] = { ROW3(shld, mi), ROW3(shrd, mi) };
static const x86_handler_fn shd_mc[2][4] = { ROW3(shld, mc), ROW3(shrd, mc) };

bool x86_select_shift(struct x86_insn *i, unsigned map, unsigned opc)
{
	unsigned lg;

	if (map == 1) {
		/* 0F A4/AC: imm8 count; 0F A5/AD: CL. */
		unsigned right = opc >= 0xac;
		bool imm = !(opc & 1);
		lg = x86_szlog(i->osz);
		if (imm) {
			i->imm &= CNTMASK(i->osz);
			if (!i->imm) {
				i->fn = i->is_mem ? h_shift0_m : h_shift0_r;
				return true;
			}
			i->fn = (i->is_mem ? shd_mi : shd_ri)[right][lg];
		} else {
			i->fn = (i->is_mem ? shd_mc : shd_rc)[right][lg];
		}
		return true;
	}

	unsigned op = (i->modrm >> 3) & 7;
	if (!(opc & 1)) {
		i->osz = 1;
		x86_fix_r8_rm(i);
	}
	lg = x86_szlog(i->osz);
	if (opc >= 0xd2) { /* count in CL */
		i->fn = (i->is_mem ? shift_mc : shift_rc)[op][lg];
		return true;
	}
	i->imm = (opc <= 0xc1 ? i->imm : 1) & CNTMASK(i->osz);
	if (!i->imm)
		i->fn = i->is_mem ? h_shift0_m : h_shift0_r;
	else
		i->fn = (i->is_mem ? shift_mi : shift_ri)[op][lg];
	return true;
}

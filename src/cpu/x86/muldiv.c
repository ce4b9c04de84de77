/*
 * Multiplication and division: MUL/IMUL/DIV/IDIV (F6/F7 /4-/7) and the
 * two- and three-operand IMUL forms (0F AF, 69, 6B).
 *
 * Multiplications set CF = OF when the high half carries information
 * (CC_MUL: cc_src != 0); SF, ZF and PF, undefined in the SDM, follow the
 * low half of the result as Intel parts do, and AF is clear.  Divisions
 * raise #DE for a zero divisor and for a quotient that does not fit
 * (including the most negative dividend divided by -1) before writing
 * anything, and leave the flags (all undefined) as they were.
 */
#include "cpu/x86/int2.h"

enum { MD_MUL, MD_IMUL, MD_DIV, MD_IDIV };

static X86_ALWAYS_INLINE void muldiv_op(struct x86_cpu *cpu, unsigned op, unsigned size, uint64_t src)
{
	uint64_t *rax = &cpu->regs[X86_RAX], *rdx = &cpu->regs[X86_RDX];

	switch (size) {
	case 1: {
		uint16_t ax = (uint16_t)*rax;
		uint8_t al = (uint8_t)ax, s = (uint8_t)src;
		switch (op) {
		case MD_MUL: {
			uint16_t r = (uint16_t)(al * s);
			x86_set_reg(cpu, X86_RAX, 2, r);
			x86_set_cc(cpu, CC_MUL, 1, r & 0xff, r >> 8, 0);
			return;
		}
		case MD_IMUL: {
			int16_t r = (int16_t)((int8_t)al * (int8_t)s);
			x86_set_reg(cpu, X86_RAX, 2, (uint16_t)r);
			x86_set_cc(cpu, CC_MUL, 1, (uint8_t)r, r != (int8_t)r, 0);
			return;
		}
		case MD_DIV: {
			if (!s)
				x86_raise(cpu, X86_DE, 0);
			unsigned q = ax / s, m = ax % s;
			if (q > 0xff)
				x86_raise(cpu, X86_DE, 0);
			x86_set_reg(cpu, X86_RAX, 2, (uint16_t)(q | m << 8));
			return;
		}
		default: {
			if (!s)
				x86_raise(cpu, X86_DE, 0);
			int n = (int16_t)ax, d = (int8_t)s;
			int q = n / d, m = n % d;
			if (q != (int8_t)q)
				x86_raise(cpu, X86_DE, 0);
			x86_set_reg(cpu, X86_RAX, 2, (uint16_t)((uint8_t)q | (uint8_t)m << 8));
			return;
		}
		}
	}
	case 2: {
		uint16_t a = (uint16_t)*rax, s = (uint16_t)src;
		switch (op) {
		case MD_MUL: {
			uint32_t r = (uint32_t)a * s;
			x86_set_reg(cpu, X86_RAX, 2, (uint16_t)r);
			x86_set_reg(cpu, X86_RDX, 2, (uint16_t)(r >> 16));
			x86_set_cc(cpu, CC_MUL, 2, (uint16_t)r, r >> 16, 0);
			return;
		}
		case MD_IMUL: {
			int32_t r = (int16_t)a * (int16_t)s;
			x86_set_reg(cpu, X86_RAX, 2, (uint16_t)r);
			x86_set_reg(cpu, X86_RDX, 2, (uint16_t)((uint32_t)r >> 16));
			x86_set_cc(cpu, CC_MUL, 2, (uint16_t)r, r != (int16_t)r, 0);
			return;
		}
		case MD_DIV: {
			if (!s)
				x86_raise(cpu, X86_DE, 0);
			uint32_t n = (uint32_t)(uint16_t)*rdx << 16 | a;
			uint32_t q = n / s, m = n % s;
			if (q > 0xffff)
				x86_raise(cpu, X86_DE, 0);
			x86_set_reg(cpu, X86_RAX, 2, (uint16_t)q);
			x86_set_reg(cpu, X86_RDX, 2, (uint16_t)m);
			return;
		}
		default: {
			if (!s)
				x86_raise(cpu, X86_DE, 0);
			int64_t n = (int32_t)((uint32_t)(uint16_t)*rdx << 16 | a), d = (int16_t)s;
			int64_t q = n / d, m = n % d; /* in 64 bits: -2^31 / -1 cannot overflow */
			if (q != (int16_t)q)
				x86_raise(cpu, X86_DE, 0);
			x86_set_reg(cpu, X86_RAX, 2, (uint16_t)q);
			x86_set_reg(cpu, X86_RDX, 2, (uint16_t)m);
			return;
		}
		}
	}
	case 4: {
		uint32_t a = (uint32_t)*rax, s = (uint32_t)src;
		switch (op) {
		case MD_MUL: {
			uint64_t r = (uint64_t)a * s;
			*rax = (uint32_t)r;
			*rdx = r >> 32;
			x86_set_cc(cpu, CC_MUL, 4, (uint32_t)r, r >> 32, 0);
			return;
		}
		case MD_IMUL: {
			int64_t r = (int64_t)(int32_t)a * (int32_t)s;
			*rax = (uint32_t)r;
			*rdx = (uint32_t)((uint64_t)r >> 32);
			x86_set_cc(cpu, CC_MUL, 4, (uint32_t)r, r != (int32_t)r, 0);
			return;
		}
		case MD_DIV: {
			if (!s)
				x86_raise(cpu, X86_DE, 0);
			uint64_t n = (uint64_t)(uint32_t)*rdx << 32 | a;
			uint64_t q = n / s, m = n % s;
			if (q > 0xffffffffull)
				x86_raise(cpu, X86_DE, 0);
			*rax = q;
			*rdx = m;
			return;
		}
		default: {
			if (!s)
				x86_raise(cpu, X86_DE, 0);
			int64_t n = (int64_t)((uint64_t)(uint32_t)*rdx << 32 | a), d = (int32_t)s;
			if (d == -1 && n == INT64_MIN)
				x86_raise(cpu, X86_DE, 0);
			int64_t q = n / d, m = n % d;
			if (q != (int32_t)q)
				x86_raise(cpu, X86_DE, 0);
			*rax = (uint32_t)q;
			*rdx = (uint32_t)m;
			return;
		}
		}
	}
	default: {
		uint64_t a = *rax, s = src;
		switch (op) {
		case MD_MUL: {
			unsigned __int128 r = (unsigned __int128)a * s;
			*rax = (uint64_t)r;
			*rdx = (uint64_t)(r >> 64);
			x86_set_cc(cpu, CC_MUL, 8, (uint64_t)r, (uint64_t)(r >> 64), 0);
			return;
		}
		case MD_IMUL: {
			__int128 r = (__int128)(int64_t)a * (int64_t)s;
			*rax = (uint64_t)r;
			*rdx = (uint64_t)((unsigned __int128)r >> 64);
			x86_set_cc(cpu, CC_MUL, 8, (uint64_t)r, r != (int64_t)r, 0);
			return;
		}
		case MD_DIV: {
			if (!s || *rdx >= s) /* zero divisor, or a quotient over 64 bits */
				x86_raise(cpu, X86_DE, 0);
			unsigned __int128 n = (unsigned __int128)*rdx << 64 | a;
			uint64_t q = (uint64_t)(n / s), m = (uint64_t)(n % s);
			*rax = q;
			*rdx = m;
			return;
		}
		default: {
			if (!s)
				x86_raise(cpu, X86_DE, 0);
			unsigned __int128 un = (unsigned __int128)*rdx << 64 | a;
			__int128 n = (__int128)un, q, m;
			int64_t d = (int64_t)s;
			if (d == -1) {
				/* -n, computed without signed overflow */
				q = (__int128)(0 - un);
				m = 0;
				if (n == (__int128)((unsigned __int128)1 << 127))
					x86_raise(cpu, X86_DE, 0);
			} else {
				q = n / d;
				m = n % d;
			}
			if (q != (int64_t)q)
				x86_raise(cpu, X86_DE, 0);
			*rax = (uint64_t)q;
			*rdx = (uint64_t)m;
			return;
		}
		}
	}
	}
}

#define DEF_MD_SZ(name, OP, SZ)                                         \
	static X86_HANDLER(h_##name##_r##SZ)                            \
	{                                                               \
		muldiv_op(cpu, OP, SZ, x86_get_reg(cpu, i->rm, SZ));    \
		return i + 1;                                           \
	}                                                               \
	static X86_HANDLER(h_##name##_m##SZ)                            \
	{                                                               \
		muldiv_op(cpu, OP, SZ, x86_read(cpu, x86_ea(cpu, i), SZ)); \
		return i + 1;                                           \
	}
#define DEF_MD(name, OP) \
	DEF_MD_SZ(name, OP, 1) DEF_MD_SZ(name, OP, 2) DEF_MD_SZ(name, OP, 4) DEF_MD_SZ(name, OP, 8)

DEF_MD(mul, MD_MUL)
DEF_MD(imul1, MD_IMUL)
DEF_MD(div, MD_DIV)
DEF_MD(idiv, MD_IDIV)

#define ROW(name, f) { h_##name##_##f##1, h_##name##_##f##2, h_##name##_##f##4, h_##name##_##f##8 }
static const x86_handler_fn md_r[4][4] = { ROW(mul, r), ROW(imul1, r), ROW(div, r), ROW(idiv, r) };
static const x86_handler_fn md_m[4][4] = { ROW(mul, m), ROW(imul1, m), ROW(div, m), ROW(idiv, m) };

/* --- IMUL r, r/m (, imm) -------------------------------------------------- */

static X86_ALWAYS_INLINE uint64_t imul2(struct x86_cpu *cpu, unsigned size, uint64_t a, uint64_t b)
{
	int64_t r;
	bool of;

	if (size == 8) {
		of = __builtin_mul_overflow((int64_t)a, (int64_t)b, &r);
	} else {
		r = x86_sext(a, size) * x86_sext(b, size);
		of = r != x86_sext((uint64_t)r, size);
	}
	x86_set_cc(cpu, CC_MUL, size, x86_zext((uint64_t)r, size), of, 0);
	return (uint64_t)r;
}

#define DEF_IMUL_SZ(SZ)                                                                 \
	static X86_HANDLER(h_imul_rr##SZ) /* 0F AF, register source */                  \
	{                                                                               \
		uint64_t r = imul2(cpu, SZ, x86_get_reg(cpu, i->reg, SZ), x86_get_reg(cpu, i->rm, SZ)); \
		x86_set_reg(cpu, i->reg, SZ, r);                                        \
		return i + 1;                                                           \
	}                                                                               \
	static X86_HANDLER(h_imul_rm##SZ)                                               \
	{                                                                               \
		uint64_t b = x86_read(cpu, x86_ea(cpu, i), SZ);                         \
		x86_set_reg(cpu, i->reg, SZ, imul2(cpu, SZ, x86_get_reg(cpu, i->reg, SZ), b)); \
		return i + 1;                                                           \
	}                                                                               \
	static X86_HANDLER(h_imul_rri##SZ) /* 69/6B */                                  \
	{                                                                               \
		uint64_t r = imul2(cpu, SZ, x86_get_reg(cpu, i->rm, SZ), i->imm);       \
		x86_set_reg(cpu, i->reg, SZ, r);                                        \
		return i + 1;                                                           \
	}                                                                               \
	static X86_HANDLER(h_imul_rmi##SZ)                                              \
	{                                                                               \
		uint64_t a = x86_read(cpu, x86_ea(cpu, i), SZ);                         \
		x86_set_reg(cpu, i->reg, SZ, imul2(cpu, SZ, a, i->imm));                \
		return i + 1;                                                           \
	}

DEF_IMUL_SZ(2)
DEF_IMUL_SZ(4)
DEF_IMUL_SZ(8)

#define ROW3(f) { NULL, h_imul_##f##2, h_imul_##f##4, h_imul_##f##8 }
static const x86_handler_fn imul_rr[4] = ROW3(rr), imul_rm[4] = ROW3(rm),
	imul_rri[4] = ROW3(rri), imul_rmi[4] = ROW3(rmi);

bool x86_select_muldiv(struct x86_insn *i, unsigned map, unsigned opc)
{
	unsigned lg = x86_szlog(i->osz);

	if (map == 1) { /* 0F AF: IMUL r, r/m */
		i->fn = (i->is_mem ? imul_rm : imul_rr)[lg];
		return true;
	}
	if (opc == 0x69 || opc == 0x6b) { /* the immediate is already sign-extended */
		i->fn = (i->is_mem ? imul_rmi : imul_rri)[lg];
		return true;
	}
	unsigned r = (i->modrm >> 3) & 7;
	if (r < 4)
		return false; /* /0-/3 belong to the first integer family */
	if (opc == 0xf6) {
		i->osz = 1;
		x86_fix_r8_rm(i);
		lg = 0;
	}
	i->fn = (i->is_mem ? md_m : md_r)[r - 4][lg];
	return true;
}

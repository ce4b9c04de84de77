/*
 * SSE, SSE2 and SSE3: the 0F-map opcodes 10-17, 28-2F, 50-7F, C2-C6 and
 * D0-FF with their mandatory prefixes (none/66/F3/F2).  Maps 2 and 3
 * (0F 38, 0F 3A) go to x86_select_sse4().
 *
 * Every instruction has a handler per register/memory form chosen at decode
 * time.  Integer and data-movement instructions are plain C or the host's
 * own SSE2 instruction on copies of the operands; floating-point ones run
 * the host instruction under the guest's MXCSR through x86_sse_fp(), which
 * gives the hardware's exact results, NaN propagation and exception flags.
 *
 * MMX is not implemented: the forms without a 66 prefix of the integer
 * opcodes (and CVTPI2PS & co., MOVQ2DQ, MOVDQ2Q, MASKMOVQ, MOVNTQ, PSHUFW,
 * EMMS) are #UD and CPUID does not advertise MMX.
 */
#include "cpu/x86/sse.h"

typedef long long v2i __attribute__((vector_size(16)));

static inline v2i ld(const x86_xmm *p)
{
	v2i v;
	memcpy(&v, p, 16);
	return v;
}

static inline void st(x86_xmm *p, v2i v)
{
	memcpy(p, &v, 16);
}

void x86_sse_check(struct x86_cpu *cpu)
{
	if (!(cpu->cr4 & X86_CR4_OSFXSR) || (cpu->cr0 & X86_CR0_EM))
		x86_raise(cpu, X86_UD, 0);
	if (cpu->cr0 & X86_CR0_TS)
		x86_raise(cpu, X86_NM, 0);
}

__attribute__((weak)) bool x86_select_sse4(struct x86_insn *i, unsigned map, unsigned opc,
					   unsigned mpfx)
{
	(void)i; (void)map; (void)opc; (void)mpfx;
	return false;
}

/* --- floating point under the guest MXCSR --------------------------------- */

static uint32_t run_fp(uint32_t csr, x86_sse_fpfn fn, x86_xmm *r, const x86_xmm *s, unsigned imm)
{
	uint32_t host, f;

	__asm__ volatile("stmxcsr %0" : "=m"(host));
	__asm__ volatile("ldmxcsr %0" : : "m"(csr));
	fn(r, s, imm);
	__asm__ volatile("stmxcsr %0" : "=m"(f));
	__asm__ volatile("ldmxcsr %0" : : "m"(host));
	return f & X86_MXCSR_FLAGS;
}

/* The control bits differ from the host's, or some exception is unmasked.
 * With every exception masked: one run under the guest's control bits.
 * Otherwise, Intel SDM vol. 1, 11.5.1: the
 * pre-computation exceptions (invalid, denormal, divide-by-zero) of all
 * elements are detected first; if any of them is unmasked, only those flags
 * are set and no result is written.  Otherwise the post-computation ones
 * (overflow, underflow, precision) are evaluated.  With underflow unmasked,
 * a tiny result raises it even when exact, and FTZ does not apply; the
 * tininess is found by a second run with FTZ set (which flags every tiny
 * result). */
static int unbounded_pe(uint32_t csr, const x86_xmm *d, const x86_xmm *s, unsigned kind);

void x86_sse_fp_full(struct x86_cpu *cpu, x86_sse_fpfn fn, x86_xmm *r,
		     const x86_xmm *s, unsigned imm, unsigned kind)
{
	uint32_t m = cpu->mxcsr;

	if ((m & X86_MXCSR_MASKS) == X86_MXCSR_MASKS) {
		cpu->mxcsr = m | run_fp(m & ~X86_MXCSR_FLAGS, fn, r, s, imm);
		return;
	}
	uint32_t unmasked = (~m >> 7) & X86_MXCSR_FLAGS;
	uint32_t csr = (m & ~X86_MXCSR_FLAGS) | X86_MXCSR_MASKS;
	uint32_t pre, post, f;
	x86_xmm res = *r;

	if (unmasked & X86_MXCSR_UE)
		csr &= ~X86_MXCSR_FTZ;
	f = run_fp(csr, fn, &res, s, imm);
	pre = f & (X86_MXCSR_IE | X86_MXCSR_DE | X86_MXCSR_ZE);
	post = f & (X86_MXCSR_OE | X86_MXCSR_UE | X86_MXCSR_PE);
	if (pre & unmasked) {
		cpu->mxcsr = m | pre;
		goto raise;
	}
	if (unmasked & X86_MXCSR_UE) {
		x86_xmm tmp = *r;
		if (run_fp(csr | X86_MXCSR_FTZ, fn, &tmp, s, imm) & X86_MXCSR_UE)
			post |= X86_MXCSR_UE;
	}
	if (post & unmasked & (X86_MXCSR_OE | X86_MXCSR_UE)) {
		int pe = unbounded_pe(csr, r, s, kind);
		if (pe < 0) /* not element-wise: a guess */
			pe = (post & X86_MXCSR_UE) ? (int)(post & X86_MXCSR_PE) : 0;
		/* elements with a masked overflow or underflow got their masked
		 * response, which always includes PE */
		if (post & ~unmasked & (X86_MXCSR_OE | X86_MXCSR_UE))
			pe = X86_MXCSR_PE;
		cpu->mxcsr = m | pre | (post & ~X86_MXCSR_PE) | (uint32_t)pe;
		goto raise;
	}
	if (post & unmasked) {
		cpu->mxcsr = m | pre | post;
		goto raise;
	}
	cpu->mxcsr = m | pre | post;
	*r = res;
	return;
raise:
	x86_raise(cpu, (cpu->cr4 & X86_CR4_OSXMMEXCPT) ? X86_XM : X86_UD, 0);
}

/* --- operand helpers ------------------------------------------------------- */

static inline __attribute__((always_inline)) const x86_xmm *
src128(struct x86_cpu *cpu, const struct x86_insn *i, x86_xmm *t, bool mem, bool aligned)
{
	if (!mem)
		return &cpu->xmm[i->rm];
	x86_sse_load128(cpu, x86_ea(cpu, i), t, aligned);
	return t;
}

/* A source of size bytes: 16 (aligned m128), 8, 4 (scalar: zero-extended
 * into *t), or the whole register for register forms. */
static inline __attribute__((always_inline)) const x86_xmm *
srcsz(struct x86_cpu *cpu, const struct x86_insn *i, x86_xmm *t, bool mem, unsigned size)
{
	if (!mem)
		return &cpu->xmm[i->rm];
	if (size == 16) {
		x86_sse_load128(cpu, x86_ea(cpu, i), t, true);
	} else {
		t->q[0] = x86_read(cpu, x86_ea(cpu, i), size);
		t->q[1] = 0;
	}
	return t;
}

/* Handler pairs: name_r (register form) and name_m (memory form); the body
 * sees the constant M. */
#define H2(name, ...)                                                 \
	static X86_HANDLER(name##_r)                                   \
	{                                                              \
		enum { M = 0 };                                        \
		x86_sse_gate(cpu);                                     \
		__VA_ARGS__;                                           \
		return i + 1;                                          \
	}                                                              \
	static X86_HANDLER(name##_m)                                   \
	{                                                              \
		enum { M = 1 };                                        \
		x86_sse_gate(cpu);                                     \
		__VA_ARGS__;                                           \
		return i + 1;                                          \
	}
#define P2(name) { name##_r, name##_m }
#define PR(name) { name##_r, NULL }
#define PM(name) { NULL, name##_m }

typedef x86_handler_fn hpair[2];

/* --- floating-point arithmetic -------------------------------------------- */

#define FPFN(name, text)                                                        \
	static void fp_##name(x86_xmm *r, const x86_xmm *s, unsigned imm)       \
	{                                                                       \
		(void)imm;                                                      \
		v2i a = ld(r), b = ld(s);                                       \
		__asm__ volatile(text " %1, %0" : "+x"(a) : "x"(b));            \
		st(r, a);                                                       \
	}

/* Fast path without any MXCSR access.  The host runs with its MXCSR
 * control bits at their default (0x1f80: every exception masked, round to
 * nearest, no DAZ/FTZ; the System V ABI keeps them across calls, and this
 * file restores them).  When the guest's control bits are the same, the
 * instruction runs directly and only the exception flags are in question.
 * Each kind below lists the conditions under which the instruction cannot
 * raise any flag other than PE; PE needs no detection when the guest's
 * MXCSR already has it (the common state after the first inexact result).
 * Anything else takes x86_sse_fp(), which re-runs the instruction under
 * the guest's MXCSR. */
enum {
	C_FULL = 0 << 4,   /* always x86_sse_fp() */
	C_ADD = 1 << 4,    /* operands zero or normal; result zero or above the smallest normal */
	C_MUL = 2 << 4,    /* same, and a zero result only from a zero operand */
	C_DIV = 3 << 4,    /* same, nonzero divisor, zero result only from a zero dividend */
	C_CMP = 4 << 4,    /* MIN/MAX/CMP/COMI: operands zero or normal (no PE possible) */
	C_SQRT = 5 << 4,   /* operand zero or positive normal */
	C_CVTW = 6 << 4,   /* float -> double: operand zero or normal (exact) */
	C_CVTN = 7 << 4,   /* double -> float: operand zero or normal, result zero-from-zero or above the smallest normal */
	C_PE = 8 << 4,     /* integer -> float: only PE is possible */
	C_EXACT = 9 << 4,  /* no exception is possible */
	C_F2I = 10 << 4,   /* float -> integer: the result is not the integer indefinite */
	C_SUB = 11 << 4,   /* as C_ADD */
	C_HADD = 12 << 4,  /* HADD/HSUB/ADDSUB: no fast path (kinds for unbounded_pe()) */
	C_HSUB = 13 << 4,
	C_ADDSUB = 14 << 4,
	L_PS = 0, L_PD = 1, L_SS = 2, L_SD = 3,
};

/* zero or normal finite (no NaN, infinity or denormal) */
static inline int plain32(uint32_t x)
{
	uint32_t a = x << 1;
	return a == 0 || a - 0x01000000u < 0xfe000000u - 0x01000000u;
}

/* normal finite and larger in magnitude than the smallest normal */
static inline int big32(uint32_t x)
{
	uint32_t a = x << 1;
	return a - 0x01000001u < 0xfe000000u - 0x01000001u;
}

static inline int plain64(uint64_t x)
{
	uint64_t a = x << 1;
	return a == 0 || a - 0x0020000000000000ull < 0xffe0000000000000ull - 0x0020000000000000ull;
}

static inline int big64(uint64_t x)
{
	uint64_t a = x << 1;
	return a - 0x0020000000000001ull < 0xffe0000000000000ull - 0x0020000000000001ull;
}

#define LANE_OK(plain, big, a, b, r)                                                   \
	(cls == C_ADD || cls == C_SUB ? plain(a) & plain(b) & (((r) << 1 == 0) | big(r)) :              \
	 cls == C_MUL ? plain(a) & plain(b) &                                           \
			(big(r) | (((r) << 1 == 0) & (((a) << 1 == 0) | ((b) << 1 == 0)))) : \
	 cls == C_DIV ? plain(a) & plain(b) & ((b) << 1 != 0) &                         \
			(big(r) | (((r) << 1 == 0) & ((a) << 1 == 0))) :                 \
	 cls == C_CMP ? plain(a) & plain(b) :                                           \
	 cls == C_SQRT ? plain(b) & (((b) << 1 == 0) | !((b) >> (sizeof(b) * 8 - 1))) : \
	 false)

/* LANE_OK for four floats at once, with SSE2 integer compares on the
 * magnitudes (which are non-negative as int32). */
typedef int32_t v4si __attribute__((vector_size(16)));

static inline v4si vplain32(v4si a)
{
	return (a == 0) | ((a > 0x007fffff) & (a < 0x7f800000));
}

static inline v4si vbig32(v4si a)
{
	return (a > 0x00800000) & (a < 0x7f800000);
}

static inline __attribute__((always_inline)) bool
ps_ok(unsigned cls, const x86_xmm *d, const x86_xmm *s, const x86_xmm *r)
{
	v4si a, b, c, m;
	uint64_t q[2];

	memcpy(&a, d, 16);
	memcpy(&b, s, 16);
	memcpy(&c, r, 16);
	a &= 0x7fffffff;
	b &= 0x7fffffff;
	c &= 0x7fffffff;
	switch (cls) {
	case C_ADD: case C_SUB: m = vplain32(a) & vplain32(b) & ((c == 0) | vbig32(c)); break;
	case C_MUL: m = vplain32(a) & vplain32(b) & (vbig32(c) | ((c == 0) & ((a == 0) | (b == 0)))); break;
	case C_DIV: m = vplain32(a) & vplain32(b) & (b != 0) & (vbig32(c) | ((c == 0) & (a == 0))); break;
	case C_CMP: m = vplain32(a) & vplain32(b); break;
	default: /* C_SQRT: the sign is needed */
		memcpy(&c, s, 16);
		m = vplain32(b) & ((b == 0) | (c >= 0));
		break;
	}
	memcpy(q, &m, 16);
	return (q[0] & q[1]) == ~0ull;
}

static inline __attribute__((always_inline)) bool
fast_fp(uint32_t m, unsigned kind, x86_sse_fpfn fn, const x86_xmm *d, const x86_xmm *s, x86_xmm *r)
{
	const unsigned cls = kind & 0xf0, lanes = kind & 15;
	bool ok = true;

	if (cls == C_FULL || cls >= C_HADD || (m & 0xffc0) != X86_MXCSR_MASKS)
		return false;
	if (cls != C_CMP && cls != C_CVTW && cls != C_EXACT && !(m & X86_MXCSR_PE))
		return false;
	fn(r, s, 0);
	switch (cls) {
	case C_EXACT: case C_PE:
		return true;
	case C_CVTW:
		ok = plain32(s->d[0]);
		if (lanes == L_PS)
			ok &= plain32(s->d[1]);
		return ok;
	case C_CVTN:
		ok = plain64(s->q[0]) & (big32(r->d[0]) | (s->q[0] << 1 == 0));
		if (lanes == L_PD)
			ok &= plain64(s->q[1]) & (big32(r->d[1]) | (s->q[1] << 1 == 0));
		return ok;
	case C_F2I:
		switch (lanes) {
		case L_PS:
			return (r->d[0] != 0x80000000u) & (r->d[1] != 0x80000000u) &
			       (r->d[2] != 0x80000000u) & (r->d[3] != 0x80000000u);
		case L_PD:
			return (r->d[0] != 0x80000000u) & (r->d[1] != 0x80000000u);
		case L_SS:
			return r->d[0] != 0x80000000u;
		default:
			return r->q[0] != 0x8000000000000000ull;
		}
	default:
		break;
	}
	switch (lanes) {
	case L_PS:
		return ps_ok(cls, d, s, r);
	case L_SS:
		return LANE_OK(plain32, big32, d->d[0], s->d[0], r->d[0]);
	case L_PD:
		for (unsigned k = 0; k < 2; k++)
			ok &= LANE_OK(plain64, big64, d->q[k], s->q[k], r->q[k]);
		return ok;
	default:
		return LANE_OK(plain64, big64, d->q[0], s->q[0], r->q[0]);
	}
}

/* The rounding error of a * b (Dekker's product with Veltkamp splitting;
 * exact when nothing overflows or underflows). */
static double prod_err(double a, double b)
{
	double p = a * b, c, ah, al, bh, bl;

	c = 134217729.0 * a;
	ah = c - (c - a);
	al = a - ah;
	c = 134217729.0 * b;
	bh = c - (c - b);
	bl = b - bh;
	return ((ah * bh - p) + ah * bl + al * bh) + al * bl;
}

/* x (finite, nonzero) as m * 2^e with m in [1, 2) (sign kept in m). */
static double norm_exp(double x, int *e)
{
	uint64_t u;
	int adj = 0;

	memcpy(&u, &x, 8);
	if (!(u & 0x7ff0000000000000ull)) { /* denormal */
		x *= 0x1p600;
		adj = -600;
		memcpy(&u, &x, 8);
	}
	*e = (int)((u >> 52) & 0x7ff) - 1023 + adj;
	u = (u & 0x800fffffffffffffull) | 0x3ff0000000000000ull;
	memcpy(&x, &u, 8);
	return x;
}

/* Whether a finite double has more than bits significant bits. */
static bool wider_than(double x, unsigned bits)
{
	uint64_t u;
	memcpy(&u, &x, 8);
	return (u & ((1ull << (52 - (bits - 1))) - 1)) != 0;
}

/* Whether op(a, b) (as doubles; float operands converted exactly) is
 * inexact at a precision of bits significant bits with an unbounded
 * exponent: the precision flag of an element whose overflow or underflow
 * is unmasked.  Operands that are NaN or infinite, or a zero divisor,
 * give false. */
static bool op_inexact(unsigned cls, double a, double b, unsigned bits)
{
	int ea, eb;

	if (!__builtin_isfinite(a) || !__builtin_isfinite(b))
		return false;
	if (cls == C_SUB)
		b = -b;
	if (cls == C_CVTN)
		return a != 0 && wider_than(norm_exp(a, &ea), bits);
	if (cls == C_DIV && b == 0)
		return false;
	if (a == 0 || b == 0)
		return false;
	double ma = norm_exp(a, &ea), mb = norm_exp(b, &eb);
	switch (cls) {
	case C_MUL:
		if (bits == 24)
			return wider_than(ma * mb, 24);
		return prod_err(ma, mb) != 0;
	case C_DIV: {
		double q = ma / mb;
		if (bits == 24 && wider_than(q, 24))
			return true;
		return (ma - q * mb) - prod_err(q, mb) != 0;
	}
	default: { /* add */
		int d = ea - eb;
		if (d > (int)bits + 2 || -d > (int)bits + 2)
			return true;
		double x = ma, y = mb * __builtin_ldexp(1.0, -d);
		double sum = x + y, bb = sum - x;
		if ((x - (sum - bb)) + (y - bb) != 0)
			return true;
		return sum != 0 && wider_than(sum, bits);
	}
	}
}

static double f32d(uint32_t u, bool daz)
{
	float f;
	if (daz && !(u & 0x7f800000u))
		u &= 0x80000000u;
	memcpy(&f, &u, 4);
	return f;
}

static double f64d(uint64_t u, bool daz)
{
	double f;
	if (daz && !(u & 0x7ff0000000000000ull))
		u &= 0x8000000000000000ull;
	memcpy(&f, &u, 8);
	return f;
}

/* The PE flag when an unmasked overflow or underflow occurred: Intel SDM
 * vol. 1, 11.5.2: the result is not delivered, and PE reflects the result
 * rounded with an unbounded exponent.  Element-wise operations (kind
 * known) compute it per element; for others: -1 (unknown). */
static int unbounded_pe(uint32_t csr, const x86_xmm *d, const x86_xmm *s, unsigned kind)
{
	const unsigned cls = kind & 0xf0, lanes = kind & 15;
	const bool daz = (csr & X86_MXCSR_DAZ) != 0;
	bool pe = false;

	if (cls == C_HADD || cls == C_HSUB || cls == C_ADDSUB) {
		const unsigned n = lanes == L_PS ? 4 : 2;
		double x[4], y[4];
		for (unsigned k = 0; k < n; k++) {
			x[k] = n == 4 ? f32d(d->d[k], daz) : f64d(d->q[k], daz);
			y[k] = n == 4 ? f32d(s->d[k], daz) : f64d(s->q[k], daz);
		}
		const unsigned bits = n == 4 ? 24 : 53;
		for (unsigned k = 0; k < n; k++) {
			if (cls == C_ADDSUB) {
				pe |= op_inexact((k & 1) ? C_ADD : C_SUB, x[k], y[k], bits);
			} else {
				const double *src = k < n / 2 ? x : y;
				unsigned j = (2 * k) % n;
				pe |= op_inexact(cls == C_HADD ? C_ADD : C_SUB, src[j], src[j + 1], bits);
			}
		}
		return pe ? X86_MXCSR_PE : 0;
	}
	if (cls != C_ADD && cls != C_SUB && cls != C_MUL && cls != C_DIV && cls != C_CVTN)
		return -1;
	if (cls == C_CVTN) {
		for (unsigned k = 0; k < (lanes == L_PD ? 2u : 1u); k++)
			pe |= op_inexact(cls, f64d(s->q[k], daz), 0, 24);
	} else if (lanes == L_PS || lanes == L_SS) {
		for (unsigned k = 0; k < (lanes == L_PS ? 4u : 1u); k++)
			pe |= op_inexact(cls, f32d(d->d[k], daz), f32d(s->d[k], daz), 24);
	} else {
		for (unsigned k = 0; k < (lanes == L_PD ? 2u : 1u); k++)
			pe |= op_inexact(cls, f64d(d->q[k], daz), f64d(s->q[k], daz), 53);
	}
	return pe ? X86_MXCSR_PE : 0;
}

/* xmm(reg) = op(xmm(reg), src) with a source of msz bytes. */
#define FPH(name, fn, msz, kind)                                                \
	H2(name, {                                                              \
		x86_xmm t, r;                                                   \
		const x86_xmm *s = srcsz(cpu, i, &t, M, msz);                   \
		x86_xmm *d = &cpu->xmm[i->reg];                                 \
		r = *d;                                                         \
		if (!fast_fp(cpu->mxcsr, kind, fn, d, s, &r)) {                 \
			r = *d;                                                 \
			x86_sse_fp_k(cpu, fn, &r, s, 0, kind);                  \
		}                                                               \
		*d = r;                                                         \
	})

#define FPOP(name, text, msz, kind) FPFN(name, text) FPH(h_##name, fp_##name, msz, kind)
#define FP4(op, cls) \
	FPOP(op##ps, #op "ps", 16, cls | L_PS) FPOP(op##pd, #op "pd", 16, cls | L_PD) \
	FPOP(op##ss, #op "ss", 4, cls | L_SS) FPOP(op##sd, #op "sd", 8, cls | L_SD)
#define T4(op) { P2(h_##op##ps), P2(h_##op##pd), P2(h_##op##ss), P2(h_##op##sd) }

FP4(add, C_ADD)
FP4(mul, C_MUL)
FP4(sub, C_SUB)
FP4(min, C_CMP)
FP4(div, C_DIV)
FP4(max, C_CMP)
FP4(sqrt, C_SQRT)

/* indexed by opcode - 0x58, then mandatory prefix */
static const hpair fp_arith[8][4] = {
	T4(add), T4(mul), {{0}}, {{0}}, T4(sub), T4(min), T4(div), T4(max),
};
static const hpair fp_sqrt[4] = T4(sqrt);

FPOP(rsqrtps, "rsqrtps", 16, C_FULL)
FPOP(rsqrtss, "rsqrtss", 4, C_FULL)
FPOP(rcpps, "rcpps", 16, C_FULL)
FPOP(rcpss, "rcpss", 4, C_FULL)
FPOP(haddps, "haddps", 16, C_HADD | L_PS)
FPOP(haddpd, "haddpd", 16, C_HADD | L_PD)
FPOP(hsubps, "hsubps", 16, C_HSUB | L_PS)
FPOP(hsubpd, "hsubpd", 16, C_HSUB | L_PD)
FPOP(addsubps, "addsubps", 16, C_ADDSUB | L_PS)
FPOP(addsubpd, "addsubpd", 16, C_ADDSUB | L_PD)

/* conversions between xmm registers */
FPOP(cvtps2pd, "cvtps2pd", 8, C_CVTW | L_PS)
FPOP(cvtpd2ps, "cvtpd2ps", 16, C_CVTN | L_PD)
FPOP(cvtss2sd, "cvtss2sd", 4, C_CVTW | L_SS)
FPOP(cvtsd2ss, "cvtsd2ss", 8, C_CVTN | L_SD)
FPOP(cvtdq2ps, "cvtdq2ps", 16, C_PE)
FPOP(cvtps2dq, "cvtps2dq", 16, C_F2I | L_PS)
FPOP(cvttps2dq, "cvttps2dq", 16, C_F2I | L_PS)
FPOP(cvttpd2dq, "cvttpd2dq", 16, C_F2I | L_PD)
FPOP(cvtdq2pd, "cvtdq2pd", 8, C_EXACT)
FPOP(cvtpd2dq, "cvtpd2dq", 16, C_F2I | L_PD)

/* CMPPS/PD/SS/SD: one function per predicate (imm8 bits 2:0; the legacy
 * encoding ignores bits 7:3). */
#define CMPFN(name, text, n)                                                    \
	static void fp_##name##n(x86_xmm *r, const x86_xmm *s, unsigned imm)    \
	{                                                                       \
		(void)imm;                                                      \
		v2i a = ld(r), b = ld(s);                                       \
		__asm__ volatile(text " $" #n ", %1, %0" : "+x"(a) : "x"(b));   \
		st(r, a);                                                       \
	}                                                                       \
	FPH(h_##name##n, fp_##name##n, CMPSZ_##name, C_CMP | CMPL_##name)
#define CMPL_cmpps L_PS
#define CMPL_cmppd L_PD
#define CMPL_cmpss L_SS
#define CMPL_cmpsd L_SD
#define CMPSZ_cmpps 16
#define CMPSZ_cmppd 16
#define CMPSZ_cmpss 4
#define CMPSZ_cmpsd 8
#define CMP8(name)                                                              \
	CMPFN(name, #name, 0) CMPFN(name, #name, 1) CMPFN(name, #name, 2)       \
	CMPFN(name, #name, 3) CMPFN(name, #name, 4) CMPFN(name, #name, 5)       \
	CMPFN(name, #name, 6) CMPFN(name, #name, 7)
#define CMPT(name)                                                              \
	{ P2(h_##name##0), P2(h_##name##1), P2(h_##name##2), P2(h_##name##3),   \
	  P2(h_##name##4), P2(h_##name##5), P2(h_##name##6), P2(h_##name##7) }
CMP8(cmpps)
CMP8(cmppd)
CMP8(cmpss)
CMP8(cmpsd)
static const hpair fp_cmp[4][8] = { CMPT(cmpps), CMPT(cmppd), CMPT(cmpss), CMPT(cmpsd) };

/* (U)COMISS/SD: ZF PF CF from the comparison, OF SF AF cleared; the flags
 * come back in r->d[0]. */
#define COMIFN(name, text)                                                      \
	static void fp_##name(x86_xmm *r, const x86_xmm *s, unsigned imm)       \
	{                                                                       \
		(void)imm;                                                      \
		v2i a = ld(r), b = ld(s);                                       \
		uint8_t z, p, c;                                                \
		__asm__ volatile(text " %3, %4\n\tsetz %0\n\tsetp %1\n\tsetc %2" \
				 : "=q"(z), "=q"(p), "=q"(c)                    \
				 : "x"(b), "x"(a)                               \
				 : "cc");                                       \
		r->d[0] = (z ? X86_ZF : 0) | (p ? X86_PF : 0) | (c ? X86_CF : 0); \
	}                                                                       \
	H2(h_##name, {                                                          \
		x86_xmm t, r;                                                   \
		const x86_xmm *s = srcsz(cpu, i, &t, M, COMISZ_##name);         \
		const x86_xmm *d = &cpu->xmm[i->reg];                           \
		r = *d;                                                         \
		if (!fast_fp(cpu->mxcsr, C_CMP | COMIL_##name, fp_##name, d, s, &r)) { \
			r = *d;                                                 \
			x86_sse_fp(cpu, fp_##name, &r, s, 0);                   \
		}                                                               \
		x86_set_arith_flags(cpu, r.d[0]);                               \
	})
#define COMIL_ucomiss L_SS
#define COMIL_comiss L_SS
#define COMIL_ucomisd L_SD
#define COMIL_comisd L_SD
#define COMISZ_ucomiss 4
#define COMISZ_comiss 4
#define COMISZ_ucomisd 8
#define COMISZ_comisd 8
COMIFN(ucomiss, "ucomiss")
COMIFN(comiss, "comiss")
COMIFN(ucomisd, "ucomisd")
COMIFN(comisd, "comisd")

/* CVTSI2SS/SD: integer source r/m32 or r/m64 in s->q[0]. */
#define CVTSI(name, text, type, isz, kind)                                            \
	static void fp_##name(x86_xmm *r, const x86_xmm *s, unsigned imm)       \
	{                                                                       \
		(void)imm;                                                      \
		v2i a = ld(r);                                                  \
		type v = (type)s->q[0];                                         \
		__asm__ volatile(text " %1, %0" : "+x"(a) : "r"(v));            \
		st(r, a);                                                       \
	}                                                                       \
	H2(h_##name, {                                                          \
		x86_xmm t, r;                                                   \
		t.q[0] = M ? x86_read(cpu, x86_ea(cpu, i), isz) : cpu->regs[i->rm]; \
		t.q[1] = 0;                                                     \
		x86_xmm *d = &cpu->xmm[i->reg];                                 \
		r = *d;                                                         \
		if (!fast_fp(cpu->mxcsr, kind, fp_##name, d, &t, &r)) {         \
			r = *d;                                                 \
			x86_sse_fp(cpu, fp_##name, &r, &t, 0);                  \
		}                                                               \
		*d = r;                                                         \
	})
CVTSI(cvtsi2ss32, "cvtsi2ssl", int32_t, 4, C_PE)
CVTSI(cvtsi2ss64, "cvtsi2ssq", int64_t, 8, C_PE)
CVTSI(cvtsi2sd32, "cvtsi2sdl", int32_t, 4, C_EXACT)
CVTSI(cvtsi2sd64, "cvtsi2sdq", int64_t, 8, C_PE)

/* CVT(T)SS2SI / CVT(T)SD2SI: the integer comes back in r->q[0].  (The
 * explicit register-size modifiers also keep gcc's identical-code folding
 * from merging the 32- and 64-bit functions.) */
#define OPMOD_4 "k"
#define OPMOD_8 "q"
#define CVT2SI(name, text, type, msz, osz)                                      \
	static void fp_##name(x86_xmm *r, const x86_xmm *s, unsigned imm)       \
	{                                                                       \
		(void)imm;                                                      \
		v2i b = ld(s);                                                  \
		type v;                                                         \
		__asm__ volatile(text " %1, %" OPMOD_##osz "0" : "=r"(v) : "x"(b)); \
		r->q[0] = (uint64_t)v;                                          \
	}                                                                       \
	H2(h_##name, {                                                          \
		x86_xmm t, r = { .q = { 0, 0 } };                               \
		const x86_xmm *s = srcsz(cpu, i, &t, M, msz);                   \
		if (!fast_fp(cpu->mxcsr, C_F2I | (osz == 4 ? L_SS : L_SD), fp_##name, s, s, &r)) \
			x86_sse_fp(cpu, fp_##name, &r, s, 0);                   \
		x86_set_reg(cpu, i->reg, osz, r.q[0]);                          \
	})
CVT2SI(cvtss2si32, "cvtss2si", int32_t, 4, 4)
CVT2SI(cvtss2si64, "cvtss2si", int64_t, 4, 8)
CVT2SI(cvttss2si32, "cvttss2si", int32_t, 4, 4)
CVT2SI(cvttss2si64, "cvttss2si", int64_t, 4, 8)
CVT2SI(cvtsd2si32, "cvtsd2si", int32_t, 8, 4)
CVT2SI(cvtsd2si64, "cvtsd2si", int64_t, 8, 8)
CVT2SI(cvttsd2si32, "cvttsd2si", int32_t, 8, 4)
CVT2SI(cvttsd2si64, "cvttsd2si", int64_t, 8, 8)

/* --- integer and bitwise operations ---------------------------------------- */

/* xmm(reg) = op(xmm(reg), xmm/m128 aligned), executed as the host's SSE2
 * instruction (these do not touch MXCSR). */
#define IOP(name, text)                                                         \
	H2(h_##name, {                                                          \
		x86_xmm t;                                                      \
		const x86_xmm *s = src128(cpu, i, &t, M, true);                 \
		v2i a = ld(&cpu->xmm[i->reg]), b = ld(s);                       \
		__asm__(text " %1, %0" : "+x"(a) : "x"(b));                     \
		st(&cpu->xmm[i->reg], a);                                       \
	})

IOP(punpcklbw, "punpcklbw") IOP(punpcklwd, "punpcklwd") IOP(punpckldq, "punpckldq")
IOP(packsswb, "packsswb") IOP(pcmpgtb, "pcmpgtb") IOP(pcmpgtw, "pcmpgtw")
IOP(pcmpgtd, "pcmpgtd") IOP(packuswb, "packuswb") IOP(punpckhbw, "punpckhbw")
IOP(punpckhwd, "punpckhwd") IOP(punpckhdq, "punpckhdq") IOP(packssdw, "packssdw")
IOP(punpcklqdq, "punpcklqdq") IOP(punpckhqdq, "punpckhqdq")
IOP(pcmpeqb, "pcmpeqb") IOP(pcmpeqw, "pcmpeqw") IOP(pcmpeqd, "pcmpeqd")
IOP(psrlw, "psrlw") IOP(psrld, "psrld") IOP(psrlq, "psrlq") IOP(paddq, "paddq")
IOP(pmullw, "pmullw")
IOP(psubusb, "psubusb") IOP(psubusw, "psubusw") IOP(pminub, "pminub") IOP(pand, "pand")
IOP(paddusb, "paddusb") IOP(paddusw, "paddusw") IOP(pmaxub, "pmaxub") IOP(pandn, "pandn")
IOP(pavgb, "pavgb") IOP(psraw, "psraw") IOP(psrad, "psrad") IOP(pavgw, "pavgw")
IOP(pmulhuw, "pmulhuw") IOP(pmulhw, "pmulhw")
IOP(psubsb, "psubsb") IOP(psubsw, "psubsw") IOP(pminsw, "pminsw") IOP(por, "por")
IOP(paddsb, "paddsb") IOP(paddsw, "paddsw") IOP(pmaxsw, "pmaxsw") IOP(pxor, "pxor")
IOP(psllw, "psllw") IOP(pslld, "pslld") IOP(psllq, "psllq") IOP(pmuludq, "pmuludq")
IOP(pmaddwd, "pmaddwd") IOP(psadbw, "psadbw")
IOP(psubb, "psubb") IOP(psubw, "psubw") IOP(psubd, "psubd") IOP(psubq, "psubq")
IOP(paddb, "paddb") IOP(paddw, "paddw") IOP(paddd, "paddd")

/* 66 0F 60..6D, 74..76 and D0..FF by opcode (NULL: not an xmm integer op) */
static const hpair int_60[14] = {
	P2(h_punpcklbw), P2(h_punpcklwd), P2(h_punpckldq), P2(h_packsswb),
	P2(h_pcmpgtb), P2(h_pcmpgtw), P2(h_pcmpgtd), P2(h_packuswb),
	P2(h_punpckhbw), P2(h_punpckhwd), P2(h_punpckhdq), P2(h_packssdw),
	P2(h_punpcklqdq), P2(h_punpckhqdq),
};
static const hpair int_d0[48] = {
	[0x01] = P2(h_psrlw), [0x02] = P2(h_psrld), [0x03] = P2(h_psrlq),
	[0x04] = P2(h_paddq), [0x05] = P2(h_pmullw),
	[0x08] = P2(h_psubusb), [0x09] = P2(h_psubusw), [0x0a] = P2(h_pminub),
	[0x0b] = P2(h_pand), [0x0c] = P2(h_paddusb), [0x0d] = P2(h_paddusw),
	[0x0e] = P2(h_pmaxub), [0x0f] = P2(h_pandn),
	[0x10] = P2(h_pavgb), [0x11] = P2(h_psraw), [0x12] = P2(h_psrad),
	[0x13] = P2(h_pavgw), [0x14] = P2(h_pmulhuw), [0x15] = P2(h_pmulhw),
	[0x18] = P2(h_psubsb), [0x19] = P2(h_psubsw), [0x1a] = P2(h_pminsw),
	[0x1b] = P2(h_por), [0x1c] = P2(h_paddsb), [0x1d] = P2(h_paddsw),
	[0x1e] = P2(h_pmaxsw), [0x1f] = P2(h_pxor),
	[0x21] = P2(h_psllw), [0x22] = P2(h_pslld), [0x23] = P2(h_psllq),
	[0x24] = P2(h_pmuludq), [0x25] = P2(h_pmaddwd), [0x26] = P2(h_psadbw),
	[0x28] = P2(h_psubb), [0x29] = P2(h_psubw), [0x2a] = P2(h_psubd),
	[0x2b] = P2(h_psubq), [0x2c] = P2(h_paddb), [0x2d] = P2(h_paddw),
	[0x2e] = P2(h_paddd),
};

/* Bitwise and unpack forms of the PS/PD opcodes share the integer ones. */

/* Shifts by imm8 (0F 71-73, register forms): the count is in i->imm. */
#define ISHIFT(name, text)                                                      \
	static X86_HANDLER(h_##name##_i)                                        \
	{                                                                       \
		x86_sse_gate(cpu);                                              \
		v2i a = ld(&cpu->xmm[i->rm]), c = { (long long)i->imm, 0 };     \
		__asm__(text " %1, %0" : "+x"(a) : "x"(c));                     \
		st(&cpu->xmm[i->rm], a);                                        \
		return i + 1;                                                   \
	}
ISHIFT(psrlw, "psrlw") ISHIFT(psraw, "psraw") ISHIFT(psllw, "psllw")
ISHIFT(psrld, "psrld") ISHIFT(psrad, "psrad") ISHIFT(pslld, "pslld")
ISHIFT(psrlq, "psrlq") ISHIFT(psllq, "psllq")

/* PSRLDQ / PSLLDQ: i->imm is the shift in bits, below 128 (the selector
 * picks h_pzero_i for 16 bytes or more). */
static X86_HANDLER(h_psrldq_i)
{
	unsigned __int128 v;
	x86_sse_gate(cpu);
	memcpy(&v, &cpu->xmm[i->rm], 16);
	v >>= i->imm;
	memcpy(&cpu->xmm[i->rm], &v, 16);
	return i + 1;
}

static X86_HANDLER(h_pslldq_i)
{
	unsigned __int128 v;
	x86_sse_gate(cpu);
	memcpy(&v, &cpu->xmm[i->rm], 16);
	v <<= i->imm;
	memcpy(&cpu->xmm[i->rm], &v, 16);
	return i + 1;
}

static X86_HANDLER(h_pzero_i)
{
	x86_sse_gate(cpu);
	memset(&cpu->xmm[i->rm], 0, 16);
	return i + 1;
}

/* --- shuffles --------------------------------------------------------------- */

H2(h_pshufd, {
	x86_xmm t, r;
	const x86_xmm *s = src128(cpu, i, &t, M, true);
	unsigned im = (unsigned)i->imm;
	for (unsigned k = 0; k < 4; k++)
		r.d[k] = s->d[(im >> (2 * k)) & 3];
	cpu->xmm[i->reg] = r;
})

H2(h_pshufhw, {
	x86_xmm t, r;
	const x86_xmm *s = src128(cpu, i, &t, M, true);
	unsigned im = (unsigned)i->imm;
	r.q[0] = s->q[0];
	for (unsigned k = 0; k < 4; k++)
		r.w[4 + k] = s->w[4 + ((im >> (2 * k)) & 3)];
	cpu->xmm[i->reg] = r;
})

H2(h_pshuflw, {
	x86_xmm t, r;
	const x86_xmm *s = src128(cpu, i, &t, M, true);
	unsigned im = (unsigned)i->imm;
	r.q[1] = s->q[1];
	for (unsigned k = 0; k < 4; k++)
		r.w[k] = s->w[(im >> (2 * k)) & 3];
	cpu->xmm[i->reg] = r;
})

H2(h_shufps, {
	x86_xmm t, r;
	const x86_xmm *s = src128(cpu, i, &t, M, true);
	const x86_xmm *d = &cpu->xmm[i->reg];
	unsigned im = (unsigned)i->imm;
	r.d[0] = d->d[im & 3];
	r.d[1] = d->d[(im >> 2) & 3];
	r.d[2] = s->d[(im >> 4) & 3];
	r.d[3] = s->d[(im >> 6) & 3];
	cpu->xmm[i->reg] = r;
})

H2(h_shufpd, {
	x86_xmm t, r;
	const x86_xmm *s = src128(cpu, i, &t, M, true);
	const x86_xmm *d = &cpu->xmm[i->reg];
	unsigned im = (unsigned)i->imm;
	r.q[0] = d->q[im & 1];
	r.q[1] = s->q[(im >> 1) & 1];
	cpu->xmm[i->reg] = r;
})

/* PINSRW xmm, r32/m16, imm8 (i->imm = word index) */
H2(h_pinsrw, {
	uint16_t v = M ? x86_read16(cpu, x86_ea(cpu, i)) : (uint16_t)cpu->regs[i->rm];
	cpu->xmm[i->reg].w[i->imm] = v;
})

/* PEXTRW r32, xmm, imm8 */
static X86_HANDLER(h_pextrw_r)
{
	x86_sse_gate(cpu);
	cpu->regs[i->reg] = cpu->xmm[i->rm].w[i->imm];
	return i + 1;
}

/* --- moves ------------------------------------------------------------------ */

/* MOVAPS/MOVAPD/MOVDQA, MOVUPS/MOVUPD/MOVDQU, LDDQU: loads */
static X86_HANDLER(h_movx_r)
{
	x86_sse_gate(cpu);
	cpu->xmm[i->reg] = cpu->xmm[i->rm];
	return i + 1;
}

static X86_HANDLER(h_mova_load_m)
{
	x86_xmm t;
	x86_sse_gate(cpu);
	x86_sse_load128(cpu, x86_ea(cpu, i), &t, true);
	cpu->xmm[i->reg] = t;
	return i + 1;
}

static X86_HANDLER(h_movu_load_m)
{
	x86_xmm t;
	x86_sse_gate(cpu);
	x86_sse_load128(cpu, x86_ea(cpu, i), &t, false);
	cpu->xmm[i->reg] = t;
	return i + 1;
}

/* stores: register forms copy reg into rm */
static X86_HANDLER(h_movx_store_r)
{
	x86_sse_gate(cpu);
	cpu->xmm[i->rm] = cpu->xmm[i->reg];
	return i + 1;
}

static X86_HANDLER(h_mova_store_m)
{
	x86_sse_gate(cpu);
	x86_sse_store128(cpu, x86_ea(cpu, i), &cpu->xmm[i->reg], true);
	return i + 1;
}

static X86_HANDLER(h_movu_store_m)
{
	x86_sse_gate(cpu);
	x86_sse_store128(cpu, x86_ea(cpu, i), &cpu->xmm[i->reg], false);
	return i + 1;
}

/* MOVSS / MOVSD */
static X86_HANDLER(h_movss_load_r)
{
	x86_sse_gate(cpu);
	cpu->xmm[i->reg].d[0] = cpu->xmm[i->rm].d[0];
	return i + 1;
}

static X86_HANDLER(h_movss_load_m)
{
	x86_sse_gate(cpu);
	uint32_t v = x86_read32(cpu, x86_ea(cpu, i));
	x86_xmm *d = &cpu->xmm[i->reg];
	d->q[1] = 0;
	d->q[0] = v;
	return i + 1;
}

static X86_HANDLER(h_movss_store_r)
{
	x86_sse_gate(cpu);
	cpu->xmm[i->rm].d[0] = cpu->xmm[i->reg].d[0];
	return i + 1;
}

static X86_HANDLER(h_movss_store_m)
{
	x86_sse_gate(cpu);
	x86_write32(cpu, x86_ea(cpu, i), cpu->xmm[i->reg].d[0]);
	return i + 1;
}

static X86_HANDLER(h_movsd_load_r)
{
	x86_sse_gate(cpu);
	cpu->xmm[i->reg].q[0] = cpu->xmm[i->rm].q[0];
	return i + 1;
}

/* MOVSD xmm, m64 and MOVQ xmm, m64 (F3 0F 7E): zero the upper half */
static X86_HANDLER(h_movq_load_m)
{
	x86_sse_gate(cpu);
	uint64_t v = x86_read64(cpu, x86_ea(cpu, i));
	x86_xmm *d = &cpu->xmm[i->reg];
	d->q[0] = v;
	d->q[1] = 0;
	return i + 1;
}

static X86_HANDLER(h_movsd_store_r)
{
	x86_sse_gate(cpu);
	cpu->xmm[i->rm].q[0] = cpu->xmm[i->reg].q[0];
	return i + 1;
}

/* MOVSD m64, xmm; MOVLPS/MOVLPD m64, xmm; MOVQ m64, xmm (66 0F D6) */
static X86_HANDLER(h_movlo_store_m)
{
	x86_sse_gate(cpu);
	x86_write64(cpu, x86_ea(cpu, i), cpu->xmm[i->reg].q[0]);
	return i + 1;
}

/* MOVHPS/MOVHPD m64, xmm */
static X86_HANDLER(h_movhi_store_m)
{
	x86_sse_gate(cpu);
	x86_write64(cpu, x86_ea(cpu, i), cpu->xmm[i->reg].q[1]);
	return i + 1;
}

/* MOVLPS/MOVLPD xmm, m64 */
static X86_HANDLER(h_movlo_load_m)
{
	x86_sse_gate(cpu);
	cpu->xmm[i->reg].q[0] = x86_read64(cpu, x86_ea(cpu, i));
	return i + 1;
}

/* MOVHPS/MOVHPD xmm, m64 */
static X86_HANDLER(h_movhi_load_m)
{
	x86_sse_gate(cpu);
	cpu->xmm[i->reg].q[1] = x86_read64(cpu, x86_ea(cpu, i));
	return i + 1;
}

static X86_HANDLER(h_movhlps_r)
{
	x86_sse_gate(cpu);
	cpu->xmm[i->reg].q[0] = cpu->xmm[i->rm].q[1];
	return i + 1;
}

static X86_HANDLER(h_movlhps_r)
{
	x86_sse_gate(cpu);
	cpu->xmm[i->reg].q[1] = cpu->xmm[i->rm].q[0];
	return i + 1;
}

/* MOVQ xmm, xmm (F3 0F 7E) and MOVQ xmm, xmm (66 0F D6, reg -> rm) */
static X86_HANDLER(h_movq_r)
{
	x86_sse_gate(cpu);
	x86_xmm *d = &cpu->xmm[i->reg];
	d->q[0] = cpu->xmm[i->rm].q[0];
	d->q[1] = 0;
	return i + 1;
}

static X86_HANDLER(h_movq_store_r)
{
	x86_sse_gate(cpu);
	x86_xmm *d = &cpu->xmm[i->rm];
	d->q[0] = cpu->xmm[i->reg].q[0];
	d->q[1] = 0;
	return i + 1;
}

/* SSE3 duplicates */
H2(h_movsldup, {
	x86_xmm t, r;
	const x86_xmm *s = src128(cpu, i, &t, M, true);
	r.d[0] = r.d[1] = s->d[0];
	r.d[2] = r.d[3] = s->d[2];
	cpu->xmm[i->reg] = r;
})

H2(h_movshdup, {
	x86_xmm t, r;
	const x86_xmm *s = src128(cpu, i, &t, M, true);
	r.d[0] = r.d[1] = s->d[1];
	r.d[2] = r.d[3] = s->d[3];
	cpu->xmm[i->reg] = r;
})

H2(h_movddup, {
	uint64_t v = M ? x86_read64(cpu, x86_ea(cpu, i)) : cpu->xmm[i->rm].q[0];
	x86_xmm *d = &cpu->xmm[i->reg];
	d->q[0] = d->q[1] = v;
})

/* MOVD/MOVQ xmm, r/m32 / r/m64 (66 0F 6E) */
H2(h_movd_to, {
	uint32_t v = M ? x86_read32(cpu, x86_ea(cpu, i)) : (uint32_t)cpu->regs[i->rm];
	x86_xmm *d = &cpu->xmm[i->reg];
	d->q[0] = v;
	d->q[1] = 0;
})

H2(h_movq_to, {
	uint64_t v = M ? x86_read64(cpu, x86_ea(cpu, i)) : cpu->regs[i->rm];
	x86_xmm *d = &cpu->xmm[i->reg];
	d->q[0] = v;
	d->q[1] = 0;
})

/* MOVD/MOVQ r/m32 / r/m64, xmm (66 0F 7E) */
H2(h_movd_from, {
	if (M)
		x86_write32(cpu, x86_ea(cpu, i), cpu->xmm[i->reg].d[0]);
	else
		cpu->regs[i->rm] = cpu->xmm[i->reg].d[0];
})

H2(h_movq_from, {
	if (M)
		x86_write64(cpu, x86_ea(cpu, i), cpu->xmm[i->reg].q[0]);
	else
		cpu->regs[i->rm] = cpu->xmm[i->reg].q[0];
})

/* MOVNTI m32/m64, r (size in i->osz) */
static X86_HANDLER(h_movnti_m)
{
	x86_sse_gate(cpu);
	x86_write(cpu, x86_ea(cpu, i), i->osz, cpu->regs[i->reg]);
	return i + 1;
}

/* --- masks ------------------------------------------------------------------ */

static X86_HANDLER(h_pmovmskb_r)
{
	x86_sse_gate(cpu);
	v2i a = ld(&cpu->xmm[i->rm]);
	int m;
	__asm__("pmovmskb %1, %0" : "=r"(m) : "x"(a));
	cpu->regs[i->reg] = (uint32_t)m;
	return i + 1;
}

static X86_HANDLER(h_movmskps_r)
{
	x86_sse_gate(cpu);
	const x86_xmm *s = &cpu->xmm[i->rm];
	cpu->regs[i->reg] = (s->d[0] >> 31) | ((s->d[1] >> 31) << 1) |
			    ((s->d[2] >> 31) << 2) | ((s->d[3] >> 31) << 3);
	return i + 1;
}

static X86_HANDLER(h_movmskpd_r)
{
	x86_sse_gate(cpu);
	const x86_xmm *s = &cpu->xmm[i->rm];
	cpu->regs[i->reg] = (s->q[0] >> 63) | ((s->q[1] >> 63) << 1);
	return i + 1;
}

/* MASKMOVDQU xmm1, xmm2: store the bytes of xmm1 whose xmm2 byte has its
 * top bit set to DS:rDI (segment overridable).  The span from the first to
 * the last selected byte is checked for writing before any byte is
 * stored. */
static X86_HANDLER(h_maskmovdqu_r)
{
	x86_sse_gate(cpu);
	const x86_xmm *v = &cpu->xmm[i->reg], *m = &cpu->xmm[i->rm];
	uint64_t base = (cpu->regs[X86_RDI] & i->amask);
	int first = -1, last = -1;
	for (int k = 0; k < 16; k++) {
		if (m->b[k] & 0x80) {
			if (first < 0)
				first = k;
			last = k;
		}
	}
	if (first < 0)
		return i + 1;
	x86_probe_write(cpu, ((base + (unsigned)first) & i->amask) + cpu->segbase[i->seg],
			(size_t)(last - first + 1));
	for (int k = first; k <= last; k++) {
		if (m->b[k] & 0x80)
			x86_write8(cpu, ((base + (unsigned)k) & i->amask) + cpu->segbase[i->seg], v->b[k]);
	}
	return i + 1;
}

/* --- selection --------------------------------------------------------------- */

static bool set_pair(struct x86_insn *i, const hpair p)
{
	x86_handler_fn fn = p[i->is_mem ? 1 : 0];
	if (!fn)
		return false;
	i->fn = fn;
	return true;
}

static bool set_fn(struct x86_insn *i, x86_handler_fn r, x86_handler_fn m)
{
	x86_handler_fn fn = i->is_mem ? m : r;
	if (!fn)
		return false;
	i->fn = fn;
	return true;
}

#define SETP(name) set_fn(i, name##_r, name##_m)

static bool sel_0f(struct x86_insn *i, unsigned opc, unsigned mp)
{
	bool w = (i->pfx & X86_PFX_REXW) != 0;
	unsigned r = (i->modrm >> 3) & 7;

	i->imm &= 0xff;
	if (opc >= 0x58 && opc <= 0x5f && opc != 0x5a && opc != 0x5b)
		return set_pair(i, fp_arith[opc - 0x58][mp]);
	if (opc == 0x51)
		return set_pair(i, fp_sqrt[mp]);
	if (mp == X86_MP_66) {
		static const hpair eq[3] = { P2(h_pcmpeqb), P2(h_pcmpeqw), P2(h_pcmpeqd) };
		const x86_handler_fn *p = NULL;
		if (opc >= 0x60 && opc <= 0x6d)
			p = int_60[opc - 0x60];
		else if (opc >= 0x74 && opc <= 0x76)
			p = eq[opc - 0x74];
		else if (opc >= 0xd0)
			p = int_d0[opc - 0xd0];
		if (p && p[0])
			return set_pair(i, p);
	}
	switch (opc) {
	case 0x10:
		switch (mp) {
		case X86_MP_NONE: case X86_MP_66: return set_fn(i, h_movx_r, h_movu_load_m);
		case X86_MP_F3: return set_fn(i, h_movss_load_r, h_movss_load_m);
		default: return set_fn(i, h_movsd_load_r, h_movq_load_m);
		}
	case 0x11:
		switch (mp) {
		case X86_MP_NONE: case X86_MP_66: return set_fn(i, h_movx_store_r, h_movu_store_m);
		case X86_MP_F3: return set_fn(i, h_movss_store_r, h_movss_store_m);
		default: return set_fn(i, h_movsd_store_r, h_movlo_store_m);
		}
	case 0x12:
		switch (mp) {
		case X86_MP_NONE: return set_fn(i, h_movhlps_r, h_movlo_load_m);
		case X86_MP_66: return set_fn(i, NULL, h_movlo_load_m);
		case X86_MP_F3: return SETP(h_movsldup);
		default: return SETP(h_movddup);
		}
	case 0x13:
		if (mp > X86_MP_66)
			return false;
		return set_fn(i, NULL, h_movlo_store_m);
	case 0x14: case 0x15: {
		static const hpair unp[2][2] = {
			{ P2(h_punpckldq), P2(h_punpcklqdq) },
			{ P2(h_punpckhdq), P2(h_punpckhqdq) },
		};
		if (mp > X86_MP_66)
			return false;
		return set_pair(i, unp[opc - 0x14][mp]);
	}
	case 0x16:
		switch (mp) {
		case X86_MP_NONE: return set_fn(i, h_movlhps_r, h_movhi_load_m);
		case X86_MP_66: return set_fn(i, NULL, h_movhi_load_m);
		case X86_MP_F3: return SETP(h_movshdup);
		default: return false;
		}
	case 0x17:
		if (mp > X86_MP_66)
			return false;
		return set_fn(i, NULL, h_movhi_store_m);
	case 0x28:
		if (mp > X86_MP_66)
			return false;
		return set_fn(i, h_movx_r, h_mova_load_m);
	case 0x29:
		if (mp > X86_MP_66)
			return false;
		return set_fn(i, h_movx_store_r, h_mova_store_m);
	case 0x2a:
		if (mp == X86_MP_F3)
			return w ? SETP(h_cvtsi2ss64) : SETP(h_cvtsi2ss32);
		if (mp == X86_MP_F2)
			return w ? SETP(h_cvtsi2sd64) : SETP(h_cvtsi2sd32);
		return false; /* CVTPI2PS/PD: MMX */
	case 0x2b:
		if (mp > X86_MP_66)
			return false;
		return set_fn(i, NULL, h_mova_store_m);
	case 0x2c:
		if (mp == X86_MP_F3)
			return w ? SETP(h_cvttss2si64) : SETP(h_cvttss2si32);
		if (mp == X86_MP_F2)
			return w ? SETP(h_cvttsd2si64) : SETP(h_cvttsd2si32);
		return false;
	case 0x2d:
		if (mp == X86_MP_F3)
			return w ? SETP(h_cvtss2si64) : SETP(h_cvtss2si32);
		if (mp == X86_MP_F2)
			return w ? SETP(h_cvtsd2si64) : SETP(h_cvtsd2si32);
		return false;
	case 0x2e:
		if (mp > X86_MP_66)
			return false;
		return mp ? SETP(h_ucomisd) : SETP(h_ucomiss);
	case 0x2f:
		if (mp > X86_MP_66)
			return false;
		return mp ? SETP(h_comisd) : SETP(h_comiss);
	case 0x50:
		if (mp > X86_MP_66)
			return false;
		return set_fn(i, mp ? h_movmskpd_r : h_movmskps_r, NULL);
	case 0x52:
		if (mp == X86_MP_NONE)
			return SETP(h_rsqrtps);
		if (mp == X86_MP_F3)
			return SETP(h_rsqrtss);
		return false;
	case 0x53:
		if (mp == X86_MP_NONE)
			return SETP(h_rcpps);
		if (mp == X86_MP_F3)
			return SETP(h_rcpss);
		return false;
	case 0x54: case 0x55: case 0x56: case 0x57: {
		static const hpair logic[4] = { P2(h_pand), P2(h_pandn), P2(h_por), P2(h_pxor) };
		if (mp > X86_MP_66)
			return false;
		return set_pair(i, logic[opc - 0x54]);
	}
	case 0x5a:
		switch (mp) {
		case X86_MP_NONE: return SETP(h_cvtps2pd);
		case X86_MP_66: return SETP(h_cvtpd2ps);
		case X86_MP_F3: return SETP(h_cvtss2sd);
		default: return SETP(h_cvtsd2ss);
		}
	case 0x5b:
		switch (mp) {
		case X86_MP_NONE: return SETP(h_cvtdq2ps);
		case X86_MP_66: return SETP(h_cvtps2dq);
		case X86_MP_F3: return SETP(h_cvttps2dq);
		default: return false;
		}
	case 0x6e:
		if (mp != X86_MP_66)
			return false;
		return w ? SETP(h_movq_to) : SETP(h_movd_to);
	case 0x6f:
		if (mp == X86_MP_66)
			return set_fn(i, h_movx_r, h_mova_load_m);
		if (mp == X86_MP_F3)
			return set_fn(i, h_movx_r, h_movu_load_m);
		return false;
	case 0x70:
		switch (mp) {
		case X86_MP_66: return SETP(h_pshufd);
		case X86_MP_F3: return SETP(h_pshufhw);
		case X86_MP_F2: return SETP(h_pshuflw);
		default: return false; /* PSHUFW: MMX */
		}
	case 0x71: case 0x72: case 0x73: {
		static const x86_handler_fn grp[3][8] = {
			{ [2] = h_psrlw_i, [4] = h_psraw_i, [6] = h_psllw_i },
			{ [2] = h_psrld_i, [4] = h_psrad_i, [6] = h_pslld_i },
			{ [2] = h_psrlq_i, [3] = h_psrldq_i, [6] = h_psllq_i, [7] = h_pslldq_i },
		};
		if (mp != X86_MP_66 || i->is_mem || !grp[opc - 0x71][r])
			return false;
		i->fn = grp[opc - 0x71][r];
		if (i->fn == h_psrldq_i || i->fn == h_pslldq_i) {
			if (i->imm >= 16)
				i->fn = h_pzero_i;
			i->imm *= 8;
		}
		return true;
	}
	case 0x7c: case 0x7d: {
		if (mp == X86_MP_66)
			return opc == 0x7c ? SETP(h_haddpd) : SETP(h_hsubpd);
		if (mp == X86_MP_F2)
			return opc == 0x7c ? SETP(h_haddps) : SETP(h_hsubps);
		return false;
	}
	case 0x7e:
		if (mp == X86_MP_66)
			return w ? SETP(h_movq_from) : SETP(h_movd_from);
		if (mp == X86_MP_F3)
			return set_fn(i, h_movq_r, h_movq_load_m);
		return false;
	case 0x7f:
		if (mp == X86_MP_66)
			return set_fn(i, h_movx_store_r, h_mova_store_m);
		if (mp == X86_MP_F3)
			return set_fn(i, h_movx_store_r, h_movu_store_m);
		return false;
	case 0xc2:
		return set_pair(i, fp_cmp[mp][i->imm & 7]);
	case 0xc3:
		if (mp != X86_MP_NONE || (i->pfx & X86_PFX_OPSZ) || !i->is_mem)
			return false;
		i->osz = w ? 8 : 4;
		i->fn = h_movnti_m;
		return true;
	case 0xc4:
		if (mp != X86_MP_66)
			return false;
		i->imm &= 7;
		return SETP(h_pinsrw);
	case 0xc5:
		if (mp != X86_MP_66)
			return false;
		i->imm &= 7;
		return set_fn(i, h_pextrw_r, NULL);
	case 0xc6:
		if (mp > X86_MP_66)
			return false;
		return mp ? SETP(h_shufpd) : SETP(h_shufps);
	case 0xd0:
		if (mp == X86_MP_66)
			return SETP(h_addsubpd);
		if (mp == X86_MP_F2)
			return SETP(h_addsubps);
		return false;
	case 0xd6:
		if (mp != X86_MP_66)
			return false; /* MOVQ2DQ / MOVDQ2Q: MMX */
		return set_fn(i, h_movq_store_r, h_movlo_store_m);
	case 0xd7:
		if (mp != X86_MP_66)
			return false;
		return set_fn(i, h_pmovmskb_r, NULL);
	case 0xe6:
		switch (mp) {
		case X86_MP_66: return SETP(h_cvttpd2dq);
		case X86_MP_F3: return SETP(h_cvtdq2pd);
		case X86_MP_F2: return SETP(h_cvtpd2dq);
		default: return false;
		}
	case 0xe7:
		if (mp != X86_MP_66)
			return false; /* MOVNTQ: MMX */
		return set_fn(i, NULL, h_mova_store_m);
	case 0xf0:
		if (mp != X86_MP_F2)
			return false;
		return set_fn(i, NULL, h_movu_load_m);
	case 0xf7:
		if (mp != X86_MP_66)
			return false; /* MASKMOVQ: MMX */
		return set_fn(i, h_maskmovdqu_r, NULL);
	default:
		return false;
	}
}

bool x86_select_sse(struct x86_insn *i, unsigned map, unsigned opc, unsigned mpfx)
{
	unsigned mp;

	if (map >= 2)
		return x86_select_sse4(i, map, opc, mpfx);
	/* The mandatory prefix: F2 or F3, whichever came last, wins over 66. */
	if (i->pfx & X86_PFX_REP)
		mp = X86_MP_F3;
	else if (i->pfx & X86_PFX_REPNE)
		mp = X86_MP_F2;
	else if (i->pfx & X86_PFX_OPSZ)
		mp = X86_MP_66;
	else
		mp = X86_MP_NONE;
	return sel_0f(i, opc, mp);
}

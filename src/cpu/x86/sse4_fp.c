/*
 * SSE4.1 floating point: ROUNDPS, ROUNDPD, ROUNDSS, ROUNDSD, DPPS, DPPD.
 *
 * These execute the host's own instruction with the guest's MXCSR control
 * bits (rounding, DAZ, FTZ) loaded and all exceptions masked, which gives
 * bit-exact results and the exception flags; the host's MXCSR is restored
 * afterwards.  Unmasked guest exceptions are then resolved as the SDM's
 * two-step rule says (vol. 1, 11.5.3): an unmasked pre-computation
 * exception (invalid, denormal, divide-by-zero) sets only the
 * pre-computation flags; otherwise all flags are set; either way the
 * destination is left unchanged and #XM (or #UD when CR4.OSXMMEXCPT is
 * clear) is raised.
 */
#include "cpu/x86/sse4_int.h"

#define MX_IE 0x01u
#define MX_DE 0x02u
#define MX_ZE 0x04u
#define MX_UE 0x10u
#define MX_FLAGS 0x3fu
#define MX_PRE (MX_IE | MX_DE | MX_ZE)
#define MX_MASKS 0x1f80u
#define MX_RC 0x6000u
#define MX_FZ 0x8000u

/* The host MXCSR value to compute guest instructions with: the guest's
 * control bits, all exceptions masked, no flags. */
static inline uint32_t host_mx(uint32_t guest)
{
	return (guest & ~MX_FLAGS) | MX_MASKS;
}

/* Accounts the flags raised by a computation; raises #XM / #UD (with the
 * destination not yet written) when one of them is unmasked in the guest. */
static void fp_flags(struct x86_cpu *cpu, uint32_t flags)
{
	uint32_t unmasked = ~(cpu->mxcsr >> 7) & MX_FLAGS;
	flags &= MX_FLAGS;
	if (flags & unmasked) {
		if (flags & MX_PRE & unmasked)
			flags &= MX_PRE;
		cpu->mxcsr |= flags;
		x86_raise(cpu, (cpu->cr4 & X86_CR4_OSXMMEXCPT) ? X86_XM : X86_UD, 0);
	}
	cpu->mxcsr |= flags;
}

/* Runs one host instruction INSN (AT&T syntax, operands %%xmm1 = source,
 * %%xmm0 = destination) on *d and *s under MXCSR mx; returns the flags. */
#define HOST_OP(INSN, d, s, mx)                                                 \
	({                                                                      \
		uint32_t host_, fl_, mx_ = (mx);                                \
		__asm__ volatile("stmxcsr %[host]\n\t"                          \
				 "ldmxcsr %[mxv]\n\t"                           \
				 "movups (%[dp]), %%xmm0\n\t"                   \
				 "movups (%[sp]), %%xmm1\n\t"                   \
				 INSN "\n\t"                                    \
				 "movups %%xmm0, (%[dp])\n\t"                   \
				 "stmxcsr %[fl]\n\t"                            \
				 "ldmxcsr %[host]"                              \
				 : [host] "=m"(host_), [fl] "=m"(fl_)           \
				 : [mxv] "m"(mx_), [dp] "r"(d), [sp] "r"(s)     \
				 : "xmm0", "xmm1", "memory");                   \
		fl_;                                                            \
	})

/* --- ROUND* --------------------------------------------------------------- */

/* The MXCSR to round with: imm[2] set keeps the guest's rounding control,
 * else imm[1:0] replaces it.  The selector turns the immediate into an AND
 * mask (high 32 bits) and OR bits (low 32 bits) for the MXCSR. */
static inline uint32_t round_mx(const struct x86_cpu *cpu, const struct x86_insn *i)
{
	return (host_mx(cpu->mxcsr) & (uint32_t)(i->imm >> 32)) | (uint32_t)i->imm;
}

/* imm[3] suppresses the precision exception: the _s forms run the host
 * instruction with immediate 12, the others with 4; both take the rounding
 * mode from MXCSR. */
#define DEF_ROUND(name, insn)                                                    \
	static inline void op_##name(struct x86_cpu *cpu, const struct x86_insn *i, \
				     x86_xmm *d, const x86_xmm *s)                \
	{                                                                        \
		x86_xmm r = *d;                                                  \
		fp_flags(cpu, HOST_OP(insn " $4, %%xmm1, %%xmm0", &r, s, round_mx(cpu, i))); \
		*d = r;                                                          \
	}                                                                        \
	static inline void op_##name##_s(struct x86_cpu *cpu, const struct x86_insn *i, \
					 x86_xmm *d, const x86_xmm *s)            \
	{                                                                        \
		x86_xmm r = *d;                                                  \
		fp_flags(cpu, HOST_OP(insn " $12, %%xmm1, %%xmm0", &r, s, round_mx(cpu, i))); \
		*d = r;                                                          \
	}
DEF_ROUND(roundps, "roundps")
DEF_ROUND(roundpd, "roundpd")
DEF_ROUND(roundss, "roundss")
DEF_ROUND(roundsd, "roundsd")

SSE4_DEF_XMM(roundps, true)
SSE4_DEF_XMM(roundpd, true)
SSE4_DEF_XMM(roundps_s, true)
SSE4_DEF_XMM(roundpd_s, true)

/* The scalar forms read 4 or 8 bytes from memory. */
#define DEF_ROUND_SCALAR(name, size)                                    \
	static X86_HANDLER(h_##name##_r)                                \
	{                                                               \
		x86_sse4_gate(cpu);                                     \
		x86_xmm d = cpu->xmm[i->reg];                           \
		op_##name(cpu, i, &d, &cpu->xmm[i->rm]);                \
		cpu->xmm[i->reg] = d;                                   \
		return i + 1;                                           \
	}                                                               \
	static X86_HANDLER(h_##name##_m)                                \
	{                                                               \
		x86_sse4_gate(cpu);                                     \
		x86_xmm s = { .q = { 0, 0 } }, d = cpu->xmm[i->reg];    \
		s.q[0] = x86_read(cpu, x86_ea(cpu, i), size);           \
		op_##name(cpu, i, &d, &s);                              \
		cpu->xmm[i->reg] = d;                                   \
		return i + 1;                                           \
	}
DEF_ROUND_SCALAR(roundss, 4)
DEF_ROUND_SCALAR(roundsd, 8)
DEF_ROUND_SCALAR(roundss_s, 4)
DEF_ROUND_SCALAR(roundsd_s, 8)

/* --- DPPS / DPPD ------------------------------------------------------------ */

/* One host function per control byte (the immediate is part of the host
 * instruction), generated for every value 0x00..0xff. */
typedef uint32_t (*dp_fn)(x86_xmm *d, const x86_xmm *s, uint32_t mx);

#define DP_FN(insn, h, l)                                                        \
	static uint32_t insn##_##h##l(x86_xmm *d, const x86_xmm *s, uint32_t mx) \
	{                                                                        \
		return HOST_OP(#insn " $0x" #h #l ", %%xmm1, %%xmm0", d, s, mx); \
	}
#define DP_ROW(insn, h)                                                            \
	DP_FN(insn, h, 0) DP_FN(insn, h, 1) DP_FN(insn, h, 2) DP_FN(insn, h, 3)    \
	DP_FN(insn, h, 4) DP_FN(insn, h, 5) DP_FN(insn, h, 6) DP_FN(insn, h, 7)    \
	DP_FN(insn, h, 8) DP_FN(insn, h, 9) DP_FN(insn, h, a) DP_FN(insn, h, b)    \
	DP_FN(insn, h, c) DP_FN(insn, h, d) DP_FN(insn, h, e) DP_FN(insn, h, f)
#define DP_ALL(insn)                                                               \
	DP_ROW(insn, 0) DP_ROW(insn, 1) DP_ROW(insn, 2) DP_ROW(insn, 3)            \
	DP_ROW(insn, 4) DP_ROW(insn, 5) DP_ROW(insn, 6) DP_ROW(insn, 7)            \
	DP_ROW(insn, 8) DP_ROW(insn, 9) DP_ROW(insn, a) DP_ROW(insn, b)            \
	DP_ROW(insn, c) DP_ROW(insn, d) DP_ROW(insn, e) DP_ROW(insn, f)
#define DP_ENT(insn, h, l) insn##_##h##l,
#define DP_TROW(insn, h)                                                           \
	DP_ENT(insn, h, 0) DP_ENT(insn, h, 1) DP_ENT(insn, h, 2) DP_ENT(insn, h, 3) \
	DP_ENT(insn, h, 4) DP_ENT(insn, h, 5) DP_ENT(insn, h, 6) DP_ENT(insn, h, 7) \
	DP_ENT(insn, h, 8) DP_ENT(insn, h, 9) DP_ENT(insn, h, a) DP_ENT(insn, h, b) \
	DP_ENT(insn, h, c) DP_ENT(insn, h, d) DP_ENT(insn, h, e) DP_ENT(insn, h, f)
#define DP_TABLE(insn)                                                             \
	static const dp_fn insn##_fns[256] = {                                     \
		DP_TROW(insn, 0) DP_TROW(insn, 1) DP_TROW(insn, 2) DP_TROW(insn, 3) \
		DP_TROW(insn, 4) DP_TROW(insn, 5) DP_TROW(insn, 6) DP_TROW(insn, 7) \
		DP_TROW(insn, 8) DP_TROW(insn, 9) DP_TROW(insn, a) DP_TROW(insn, b) \
		DP_TROW(insn, c) DP_TROW(insn, d) DP_TROW(insn, e) DP_TROW(insn, f) \
	};

DP_ALL(dpps)
DP_TABLE(dpps)
DP_ALL(dppd)
DP_TABLE(dppd)

/* --- DPPS / DPPD with unmasked exceptions -----------------------------------
 * The hardware computes a dot product in steps (the selected products, then
 * pairwise sums, then the total), each rounded, and checks exceptions after
 * each step by the two-step rule.  When the guest unmasks an exception that
 * the masked computation raised (or unmasks underflow, which has a case the
 * masked run does not flag: a tiny exact result), the steps are replayed
 * one lane at a time to find the flags the hardware leaves. */

#define MX_OE 0x08u
#define MX_PE 0x20u

/* One scalar host operation on lane 0 of *a and *b; result in a->q[0]. */
enum { DP_MULSS, DP_ADDSS, DP_MULSD, DP_ADDSD };

static uint32_t host_scalar(unsigned op, x86_xmm *a, const x86_xmm *b, uint32_t mx)
{
	switch (op) {
	case DP_MULSS: return HOST_OP("mulss %%xmm1, %%xmm0", a, b, mx);
	case DP_ADDSS: return HOST_OP("addss %%xmm1, %%xmm0", a, b, mx);
	case DP_MULSD: return HOST_OP("mulsd %%xmm1, %%xmm0", a, b, mx);
	default: return HOST_OP("addsd %%xmm1, %%xmm0", a, b, mx);
	}
}

static inline int exp_f32(uint32_t v) { return (int)(v >> 23 & 0xff); }
static inline int exp_f64(uint64_t v) { return (int)(v >> 52 & 0x7ff); }

/* Whether op(a, b), rounded to the format's precision with an unbounded
 * exponent range, is inexact (what PE reports when an overflow or underflow
 * exception is unmasked).  a and b are finite, after DAZ. */
static bool inexact_unbounded(unsigned op, const x86_xmm *a0, const x86_xmm *b0, uint32_t mxcsr)
{
	x86_xmm ta = *a0, tb = *b0, *a = &ta, *b = &tb;
	__float128 r, q;
	int ea, eb;

	if (mxcsr & 0x40) { /* DAZ: denormal inputs are zeros */
		if (op == DP_MULSS || op == DP_ADDSS) {
			if (exp_f32(a->d[0]) == 0)
				a->d[0] &= 0x80000000u;
			if (exp_f32(b->d[0]) == 0)
				b->d[0] &= 0x80000000u;
		} else {
			if (exp_f64(a->q[0]) == 0)
				a->q[0] &= 1ull << 63;
			if (exp_f64(b->q[0]) == 0)
				b->q[0] &= 1ull << 63;
		}
	}

	switch (op) {
	case DP_MULSS:
		r = (__float128)a->f[0] * b->f[0];
		break;
	case DP_MULSD:
		r = (__float128)a->fd[0] * b->fd[0]; /* 106 bits: exact */
		break;
	case DP_ADDSS:
		ea = exp_f32(a->d[0]);
		eb = exp_f32(b->d[0]);
		if (a->f[0] != 0 && b->f[0] != 0 && (ea - eb > 26 || eb - ea > 26))
			return true;
		r = (__float128)a->f[0] + b->f[0];
		break;
	default:
		ea = exp_f64(a->q[0]);
		eb = exp_f64(b->q[0]);
		if (a->fd[0] != 0 && b->fd[0] != 0 && (ea - eb > 55 || eb - ea > 55))
			return true;
		r = (__float128)a->fd[0] + b->fd[0]; /* exact: at most 110 bits */
		break;
	}
	if (r == 0)
		return false;
	/* Scale into the normal range of the target format (exact in binary128),
	 * then see whether converting loses bits. */
	q = r < 0 ? -r : r;
	while (q >= 0x1p100Q)
		q *= 0x1p-100Q;
	while (q < 0x1p-100Q)
		q *= 0x1p100Q;
	if (op == DP_MULSS || op == DP_ADDSS)
		return (__float128)(float)q != q;
	return (__float128)(double)q != q;
}

_Noreturn static void raise_xm(struct x86_cpu *cpu, uint32_t flags)
{
	cpu->mxcsr |= flags & MX_FLAGS;
	x86_raise(cpu, (cpu->cr4 & X86_CR4_OSXMMEXCPT) ? X86_XM : X86_UD, 0);
}

/* One step: op on the lanes in lanes (bit k: lane k) of a and b, results in
 * out; flags accumulated in *acc; raises when the step traps. */
static void dp_step(struct x86_cpu *cpu, unsigned op, unsigned lanes, x86_xmm *out,
		    const x86_xmm *a, const x86_xmm *b, uint32_t *acc)
{
	uint32_t unmasked = ~(cpu->mxcsr >> 7) & MX_FLAGS, mx = host_mx(cpu->mxcsr);
	bool dbl = op >= DP_MULSD;
	unsigned n = dbl ? 2 : 4;
	uint32_t fl[4] = { 0 }, pre = 0, post = 0;
	x86_xmm la[4], lb[4];

	*out = (x86_xmm){ .q = { 0, 0 } };
	for (unsigned k = 0; k < n; k++) {
		if (!(lanes & (1u << k)))
			continue;
		la[k] = (x86_xmm){ .q = { 0, 0 } };
		lb[k] = la[k];
		if (dbl) {
			la[k].q[0] = a->q[k];
			lb[k].q[0] = b->q[k];
		} else {
			la[k].d[0] = a->d[k];
			lb[k].d[0] = b->d[k];
		}
		x86_xmm r = la[k];
		fl[k] = host_scalar(op, &r, &lb[k], mx) & MX_FLAGS;
		if (dbl)
			out->q[k] = r.q[0];
		else
			out->d[k] = r.d[0];
		pre |= fl[k] & MX_PRE;
	}
	if (pre & unmasked)
		raise_xm(cpu, *acc | pre);
	for (unsigned k = 0; k < n; k++) {
		if (!(lanes & (1u << k)))
			continue;
		uint32_t f = fl[k] & ~MX_PRE;
		bool tiny = f & MX_UE;
		if (!tiny && (unmasked & MX_UE) && !(fl[k] & MX_IE)) {
			/* a tiny exact result: flagged only when flushed */
			x86_xmm r = la[k];
			tiny = host_scalar(op, &r, &lb[k], mx | MX_FZ) & MX_UE;
		}
		if ((unmasked & MX_OE) && (f & MX_OE))
			f = MX_OE | (inexact_unbounded(op, &la[k], &lb[k], cpu->mxcsr) ? MX_PE : 0);
		else if ((unmasked & MX_UE) && tiny)
			f = MX_UE | (inexact_unbounded(op, &la[k], &lb[k], cpu->mxcsr) ? MX_PE : 0);
		post |= f;
	}
	if (post & unmasked)
		raise_xm(cpu, *acc | pre | post);
	*acc |= pre | post;
}

/* Replays DPPS (dbl false) or DPPD step by step; returns only when no step
 * traps. */
static void dp_replay(struct x86_cpu *cpu, unsigned imm, const x86_xmm *d,
		      const x86_xmm *s, bool dbl)
{
	uint32_t acc = 0;
	x86_xmm p, lo, hi, t;
	if (!dbl) {
		dp_step(cpu, DP_MULSS, (imm >> 4) & 15, &p, d, s, &acc);
		lo = (x86_xmm){ .d = { p.d[0], p.d[2], 0, 0 } };
		hi = (x86_xmm){ .d = { p.d[1], p.d[3], 0, 0 } };
		dp_step(cpu, DP_ADDSS, 3, &t, &lo, &hi, &acc);
		lo = (x86_xmm){ .d = { t.d[0], 0, 0, 0 } };
		hi = (x86_xmm){ .d = { t.d[1], 0, 0, 0 } };
		dp_step(cpu, DP_ADDSS, 1, &t, &lo, &hi, &acc);
	} else {
		dp_step(cpu, DP_MULSD, (imm >> 4) & 3, &p, d, s, &acc);
		lo = (x86_xmm){ .q = { p.q[0], 0 } };
		hi = (x86_xmm){ .q = { p.q[1], 0 } };
		dp_step(cpu, DP_ADDSD, 1, &t, &lo, &hi, &acc);
	}
}

static inline void dp_op(struct x86_cpu *cpu, const struct x86_insn *i, x86_xmm *d,
			 const x86_xmm *s, bool dbl)
{
	uint32_t unmasked = ~(cpu->mxcsr >> 7) & MX_FLAGS;
	unsigned imm = (uint8_t)i->imm;
	x86_xmm r = *d;
	uint32_t fl = (dbl ? dppd_fns : dpps_fns)[imm](&r, s, host_mx(cpu->mxcsr)) & MX_FLAGS;
	if ((fl & unmasked) || (unmasked & MX_UE))
		dp_replay(cpu, imm, d, s, dbl);
	cpu->mxcsr |= fl;
	*d = r;
}

static inline void op_dpps(struct x86_cpu *cpu, const struct x86_insn *i,
			   x86_xmm *d, const x86_xmm *s)
{
	dp_op(cpu, i, d, s, false);
}

static inline void op_dppd(struct x86_cpu *cpu, const struct x86_insn *i,
			   x86_xmm *d, const x86_xmm *s)
{
	dp_op(cpu, i, d, s, true);
}

SSE4_DEF_XMM(dpps, true)
SSE4_DEF_XMM(dppd, true)

bool x86_sse4_select_fp(struct x86_insn *i, unsigned map, unsigned opc, unsigned mp)
{
	static const x86_handler_fn r[8] = { h_roundps_r, h_roundpd_r, h_roundss_r, h_roundsd_r,
		h_roundps_s_r, h_roundpd_s_r, h_roundss_s_r, h_roundsd_s_r };
	static const x86_handler_fn m[8] = { h_roundps_m, h_roundpd_m, h_roundss_m, h_roundsd_m,
		h_roundps_s_m, h_roundpd_s_m, h_roundss_s_m, h_roundsd_s_m };

	if (map != 3 || mp != X86_MP_66)
		return false;
	if (opc >= 0x08 && opc <= 0x0b) {
		unsigned imm = (uint8_t)i->imm;
		i->fn = (i->is_mem ? m : r)[opc - 8 + ((imm & 8) ? 4 : 0)];
		if (imm & 4)
			i->imm = (uint64_t)0xffffffffu << 32;
		else
			i->imm = (uint64_t)~MX_RC << 32 | (imm & 3) << 13;
		return true;
	}
	if (opc == 0x40 || opc == 0x41) {
		i->fn = opc == 0x40 ? (i->is_mem ? h_dpps_m : h_dpps_r)
				    : (i->is_mem ? h_dppd_m : h_dppd_r);
		return true;
	}
	return false;
}

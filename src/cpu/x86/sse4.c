/*
 * SSSE3 and SSE4.1 integer SIMD, and the selector of the whole SSSE3 /
 * SSE4.1 / SSE4.2 family (opcode maps 0F 38 and 0F 3A).  The string
 * instructions, CRC32 and MOVBE live in sse4_str.c; ROUND*, DPPS and DPPD in
 * sse4_fp.c.
 *
 * Each instruction is a kernel k_<op>(d, s, nb, imm) on nb-byte vectors (16
 * for xmm, 8 for the MMX forms of SSSE3) that computes the new destination
 * in *d from the old one and the source *s.  Handlers are generated per
 * operand form (register / memory, xmm / MMX), so none tests at run time
 * what the decoder already knew.
 */
#include "cpu/x86/sse4_int.h"

/* --- saturation helpers --------------------------------------------------- */

static inline int16_t sat16(int32_t v)
{
	return (int16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : v);
}

static inline uint16_t satu16(int32_t v)
{
	return (uint16_t)(v > 65535 ? 65535 : v < 0 ? 0 : v);
}

/* --- SSSE3 kernels (nb = 8 or 16) --------------------------------------- */

static inline void k_pshufb(x86_xmm *d, const x86_xmm *s, unsigned nb, unsigned imm)
{
	x86_xmm r = { .q = { 0, 0 } };
	(void)imm;
	for (unsigned k = 0; k < nb; k++)
		r.b[k] = (s->b[k] & 0x80) ? 0 : d->b[s->b[k] & (nb - 1)];
	*d = r;
}

/* Horizontal word / dword add and subtract: op 0 add, 1 add saturating,
 * 2 sub, 3 sub saturating. */
static inline void hw_op(x86_xmm *d, const x86_xmm *s, unsigned nb, unsigned op)
{
	x86_xmm r = { .q = { 0, 0 } };
	unsigned half = nb / 4; /* result words from each operand */
	for (unsigned k = 0; k < half; k++) {
		int32_t a0 = d->sw[2 * k], a1 = d->sw[2 * k + 1];
		int32_t b0 = s->sw[2 * k], b1 = s->sw[2 * k + 1];
		int32_t x = op < 2 ? a0 + a1 : a0 - a1, y = op < 2 ? b0 + b1 : b0 - b1;
		r.sw[k] = (op & 1) ? sat16(x) : (int16_t)x;
		r.sw[half + k] = (op & 1) ? sat16(y) : (int16_t)y;
	}
	*d = r;
}

static inline void hd_op(x86_xmm *d, const x86_xmm *s, unsigned nb, bool sub)
{
	x86_xmm r = { .q = { 0, 0 } };
	unsigned half = nb / 8;
	for (unsigned k = 0; k < half; k++) {
		uint32_t a0 = d->d[2 * k], a1 = d->d[2 * k + 1];
		uint32_t b0 = s->d[2 * k], b1 = s->d[2 * k + 1];
		r.d[k] = sub ? a0 - a1 : a0 + a1;
		r.d[half + k] = sub ? b0 - b1 : b0 + b1;
	}
	*d = r;
}

static inline void k_phaddw(x86_xmm *d, const x86_xmm *s, unsigned nb, unsigned imm)
{
	(void)imm;
	hw_op(d, s, nb, 0);
}

static inline void k_phaddsw(x86_xmm *d, const x86_xmm *s, unsigned nb, unsigned imm)
{
	(void)imm;
	hw_op(d, s, nb, 1);
}

static inline void k_phsubw(x86_xmm *d, const x86_xmm *s, unsigned nb, unsigned imm)
{
	(void)imm;
	hw_op(d, s, nb, 2);
}

static inline void k_phsubsw(x86_xmm *d, const x86_xmm *s, unsigned nb, unsigned imm)
{
	(void)imm;
	hw_op(d, s, nb, 3);
}

static inline void k_phaddd(x86_xmm *d, const x86_xmm *s, unsigned nb, unsigned imm)
{
	(void)imm;
	hd_op(d, s, nb, false);
}

static inline void k_phsubd(x86_xmm *d, const x86_xmm *s, unsigned nb, unsigned imm)
{
	(void)imm;
	hd_op(d, s, nb, true);
}

static inline void k_pmaddubsw(x86_xmm *d, const x86_xmm *s, unsigned nb, unsigned imm)
{
	(void)imm;
	for (unsigned k = 0; k < nb / 2; k++) {
		int32_t v = (int32_t)d->b[2 * k] * s->sb[2 * k] +
			    (int32_t)d->b[2 * k + 1] * s->sb[2 * k + 1];
		d->sw[k] = sat16(v);
	}
}

static inline void k_pmulhrsw(x86_xmm *d, const x86_xmm *s, unsigned nb, unsigned imm)
{
	(void)imm;
	for (unsigned k = 0; k < nb / 2; k++) {
		int32_t v = (int32_t)d->sw[k] * s->sw[k];
		d->w[k] = (uint16_t)((((uint32_t)v >> 14) + 1) >> 1);
	}
}

static inline void k_psignb(x86_xmm *d, const x86_xmm *s, unsigned nb, unsigned imm)
{
	(void)imm;
	for (unsigned k = 0; k < nb; k++)
		d->b[k] = s->sb[k] < 0 ? (uint8_t)-d->b[k] : s->sb[k] ? d->b[k] : 0;
}

static inline void k_psignw(x86_xmm *d, const x86_xmm *s, unsigned nb, unsigned imm)
{
	(void)imm;
	for (unsigned k = 0; k < nb / 2; k++)
		d->w[k] = s->sw[k] < 0 ? (uint16_t)-d->w[k] : s->sw[k] ? d->w[k] : 0;
}

static inline void k_psignd(x86_xmm *d, const x86_xmm *s, unsigned nb, unsigned imm)
{
	(void)imm;
	for (unsigned k = 0; k < nb / 4; k++)
		d->d[k] = s->sd[k] < 0 ? -d->d[k] : s->sd[k] ? d->d[k] : 0;
}

static inline void k_pabsb(x86_xmm *d, const x86_xmm *s, unsigned nb, unsigned imm)
{
	(void)imm;
	for (unsigned k = 0; k < nb; k++)
		d->b[k] = s->sb[k] < 0 ? (uint8_t)-s->b[k] : s->b[k];
}

static inline void k_pabsw(x86_xmm *d, const x86_xmm *s, unsigned nb, unsigned imm)
{
	(void)imm;
	for (unsigned k = 0; k < nb / 2; k++)
		d->w[k] = s->sw[k] < 0 ? (uint16_t)-s->w[k] : s->w[k];
}

static inline void k_pabsd(x86_xmm *d, const x86_xmm *s, unsigned nb, unsigned imm)
{
	(void)imm;
	for (unsigned k = 0; k < nb / 4; k++)
		d->d[k] = s->sd[k] < 0 ? -s->d[k] : s->d[k];
}

/* (dest:source) shifted right by imm bytes; the low nb bytes remain. */
static inline void k_palignr(x86_xmm *d, const x86_xmm *s, unsigned nb, unsigned imm)
{
	uint8_t cat[32];
	x86_xmm r;
	memcpy(cat, s->b, nb);
	memcpy(cat + nb, d->b, nb);
	for (unsigned k = 0; k < nb; k++)
		r.b[k] = imm + k < 2 * nb ? cat[imm + k] : 0;
	memcpy(d->b, r.b, nb);
}

/* --- MMX operand access ----------------------------------------------------
 * The MMX registers alias the mantissas of the x87 physical registers R0-R7;
 * every MMX instruction sets TOP to 0 and all tags valid, and a write sets the
 * register's sign/exponent field to all ones. */

#define SSE4_HAVE_MMX ((X86_CPUID_1_EDX >> 23) & 1)

static void mmx_check(struct x86_cpu *cpu)
{
	if (cpu->cr0 & X86_CR0_EM)
		x86_raise(cpu, X86_UD, 0);
	if (cpu->cr0 & X86_CR0_TS)
		x86_raise(cpu, X86_NM, 0);
	if (cpu->fpu.fsw & 0x80) /* ES: a pending unmasked x87 exception */
		x86_raise(cpu, X86_MF, 0);
}

static inline uint64_t mmx_get(const struct x86_cpu *cpu, unsigned n)
{
	uint64_t v;
	memcpy(&v, &cpu->fpu.st[n & 7], 8);
	return v;
}

static inline void mmx_set(struct x86_cpu *cpu, unsigned n, uint64_t v)
{
	uint8_t *p = (uint8_t *)&cpu->fpu.st[n & 7];
	memcpy(p, &v, 8);
	p[8] = 0xff;
	p[9] = 0xff;
	cpu->fpu.top = 0;
	cpu->fpu.tag_valid = 0xff;
}

/* --- handler generators ------------------------------------------------- */

/* xmm forms of a kernel; ALIGNED for the 16-byte memory operand. */
#define DEF_K_XMM(op, ALIGNED)                                                   \
	static inline void op_##op(struct x86_cpu *cpu, const struct x86_insn *i, \
				   x86_xmm *d, const x86_xmm *s)                  \
	{                                                                        \
		(void)cpu;                                                       \
		k_##op(d, s, 16, (uint8_t)i->imm);                               \
	}                                                                        \
	SSE4_DEF_XMM(op, ALIGNED)

/* MMX forms of a kernel (8-byte memory operand, never aligned). */
#define DEF_K_MMX(op)                                                            \
	static X86_HANDLER(h_##op##_mmx_r)                                       \
	{                                                                        \
		mmx_check(cpu);                                                  \
		x86_xmm d = { .q = { mmx_get(cpu, i->reg), 0 } };                 \
		x86_xmm s = { .q = { mmx_get(cpu, i->rm), 0 } };                  \
		k_##op(&d, &s, 8, (uint8_t)i->imm);                              \
		mmx_set(cpu, i->reg, d.q[0]);                                    \
		return i + 1;                                                    \
	}                                                                        \
	static X86_HANDLER(h_##op##_mmx_m)                                       \
	{                                                                        \
		mmx_check(cpu);                                                  \
		x86_xmm s = { .q = { x86_read64(cpu, x86_ea(cpu, i)), 0 } };      \
		x86_xmm d = { .q = { mmx_get(cpu, i->reg), 0 } };                 \
		k_##op(&d, &s, 8, (uint8_t)i->imm);                              \
		mmx_set(cpu, i->reg, d.q[0]);                                    \
		return i + 1;                                                    \
	}

#define DEF_SSSE3(op) DEF_K_XMM(op, true) DEF_K_MMX(op)

DEF_SSSE3(pshufb)
DEF_SSSE3(phaddw)
DEF_SSSE3(phaddd)
DEF_SSSE3(phaddsw)
DEF_SSSE3(pmaddubsw)
DEF_SSSE3(phsubw)
DEF_SSSE3(phsubd)
DEF_SSSE3(phsubsw)
DEF_SSSE3(psignb)
DEF_SSSE3(psignw)
DEF_SSSE3(psignd)
DEF_SSSE3(pmulhrsw)
DEF_SSSE3(pabsb)
DEF_SSSE3(pabsw)
DEF_SSSE3(pabsd)
DEF_SSSE3(palignr)

/* --- SSE4.1 integer kernels (16 bytes) ------------------------------------ */

static inline void op_pblendvb(struct x86_cpu *cpu, const struct x86_insn *i,
			       x86_xmm *d, const x86_xmm *s)
{
	(void)i;
	for (unsigned k = 0; k < 16; k++)
		if (cpu->xmm[0].b[k] & 0x80)
			d->b[k] = s->b[k];
}

static inline void op_blendvps(struct x86_cpu *cpu, const struct x86_insn *i,
			       x86_xmm *d, const x86_xmm *s)
{
	(void)i;
	for (unsigned k = 0; k < 4; k++)
		if (cpu->xmm[0].sd[k] < 0)
			d->d[k] = s->d[k];
}

static inline void op_blendvpd(struct x86_cpu *cpu, const struct x86_insn *i,
			       x86_xmm *d, const x86_xmm *s)
{
	(void)i;
	for (unsigned k = 0; k < 2; k++)
		if (cpu->xmm[0].sq[k] < 0)
			d->q[k] = s->q[k];
}

static inline void op_blendps(struct x86_cpu *cpu, const struct x86_insn *i,
			      x86_xmm *d, const x86_xmm *s)
{
	(void)cpu;
	for (unsigned k = 0; k < 4; k++)
		if (i->imm & (1u << k))
			d->d[k] = s->d[k];
}

static inline void op_blendpd(struct x86_cpu *cpu, const struct x86_insn *i,
			      x86_xmm *d, const x86_xmm *s)
{
	(void)cpu;
	for (unsigned k = 0; k < 2; k++)
		if (i->imm & (1u << k))
			d->q[k] = s->q[k];
}

static inline void op_pblendw(struct x86_cpu *cpu, const struct x86_insn *i,
			      x86_xmm *d, const x86_xmm *s)
{
	(void)cpu;
	for (unsigned k = 0; k < 8; k++)
		if (i->imm & (1u << k))
			d->w[k] = s->w[k];
}

static inline void op_pmuldq(struct x86_cpu *cpu, const struct x86_insn *i,
			     x86_xmm *d, const x86_xmm *s)
{
	(void)cpu; (void)i;
	d->sq[0] = (int64_t)d->sd[0] * s->sd[0];
	d->sq[1] = (int64_t)d->sd[2] * s->sd[2];
}

static inline void op_pmulld(struct x86_cpu *cpu, const struct x86_insn *i,
			     x86_xmm *d, const x86_xmm *s)
{
	(void)cpu; (void)i;
	for (unsigned k = 0; k < 4; k++)
		d->d[k] = d->d[k] * s->d[k];
}

static inline void op_pcmpeqq(struct x86_cpu *cpu, const struct x86_insn *i,
			      x86_xmm *d, const x86_xmm *s)
{
	(void)cpu; (void)i;
	for (unsigned k = 0; k < 2; k++)
		d->q[k] = d->q[k] == s->q[k] ? ~0ull : 0;
}

static inline void op_pcmpgtq(struct x86_cpu *cpu, const struct x86_insn *i,
			      x86_xmm *d, const x86_xmm *s)
{
	(void)cpu; (void)i;
	for (unsigned k = 0; k < 2; k++)
		d->q[k] = d->sq[k] > s->sq[k] ? ~0ull : 0;
}

static inline void op_packusdw(struct x86_cpu *cpu, const struct x86_insn *i,
			       x86_xmm *d, const x86_xmm *s)
{
	x86_xmm r;
	(void)cpu; (void)i;
	for (unsigned k = 0; k < 4; k++) {
		r.w[k] = satu16(d->sd[k]);
		r.w[4 + k] = satu16(s->sd[k]);
	}
	*d = r;
}

#define MINMAX(name, field, n, cmp)                                              \
	static inline void op_##name(struct x86_cpu *cpu, const struct x86_insn *i, \
				     x86_xmm *d, const x86_xmm *s)                \
	{                                                                        \
		(void)cpu; (void)i;                                              \
		for (unsigned k = 0; k < (n); k++)                               \
			if (s->field[k] cmp d->field[k])                         \
				d->field[k] = s->field[k];                       \
	}
MINMAX(pminsb, sb, 16, <)
MINMAX(pminsd, sd, 4, <)
MINMAX(pminuw, w, 8, <)
MINMAX(pminud, d, 4, <)
MINMAX(pmaxsb, sb, 16, >)
MINMAX(pmaxsd, sd, 4, >)
MINMAX(pmaxuw, w, 8, >)
MINMAX(pmaxud, d, 4, >)

static inline void op_phminposuw(struct x86_cpu *cpu, const struct x86_insn *i,
				 x86_xmm *d, const x86_xmm *s)
{
	unsigned best = 0;
	(void)cpu; (void)i;
	for (unsigned k = 1; k < 8; k++)
		if (s->w[k] < s->w[best])
			best = k;
	d->q[0] = s->w[best] | (uint64_t)best << 16;
	d->q[1] = 0;
}

static inline void op_mpsadbw(struct x86_cpu *cpu, const struct x86_insn *i,
			      x86_xmm *d, const x86_xmm *s)
{
	unsigned a = ((unsigned)i->imm & 4) ? 4 : 0, b = ((unsigned)i->imm & 3) * 4;
	x86_xmm r;
	(void)cpu;
	for (unsigned k = 0; k < 8; k++) {
		unsigned sum = 0;
		for (unsigned j = 0; j < 4; j++) {
			int v = (int)d->b[a + k + j] - (int)s->b[b + j];
			sum += (unsigned)(v < 0 ? -v : v);
		}
		r.w[k] = (uint16_t)sum;
	}
	*d = r;
}

SSE4_DEF_XMM(pblendvb, true)
SSE4_DEF_XMM(blendvps, true)
SSE4_DEF_XMM(blendvpd, true)
SSE4_DEF_XMM(blendps, true)
SSE4_DEF_XMM(blendpd, true)
SSE4_DEF_XMM(pblendw, true)
SSE4_DEF_XMM(pmuldq, true)
SSE4_DEF_XMM(pmulld, true)
SSE4_DEF_XMM(pcmpeqq, true)
SSE4_DEF_XMM(pcmpgtq, true)
SSE4_DEF_XMM(packusdw, true)
SSE4_DEF_XMM(pminsb, true)
SSE4_DEF_XMM(pminsd, true)
SSE4_DEF_XMM(pminuw, true)
SSE4_DEF_XMM(pminud, true)
SSE4_DEF_XMM(pmaxsb, true)
SSE4_DEF_XMM(pmaxsd, true)
SSE4_DEF_XMM(pmaxuw, true)
SSE4_DEF_XMM(pmaxud, true)
SSE4_DEF_XMM(phminposuw, true)
SSE4_DEF_XMM(mpsadbw, true)

/* PTEST: ZF = (d AND s) == 0, CF = (s AND NOT d) == 0; the rest cleared. */
static inline void ptest(struct x86_cpu *cpu, const x86_xmm *d, const x86_xmm *s)
{
	uint64_t a = (d->q[0] & s->q[0]) | (d->q[1] & s->q[1]);
	uint64_t c = (~d->q[0] & s->q[0]) | (~d->q[1] & s->q[1]);
	x86_set_arith_flags(cpu, (a ? 0 : X86_ZF) | (c ? 0 : X86_CF));
}

static X86_HANDLER(h_ptest_r)
{
	x86_sse4_gate(cpu);
	ptest(cpu, &cpu->xmm[i->reg], &cpu->xmm[i->rm]);
	return i + 1;
}

static X86_HANDLER(h_ptest_m)
{
	x86_xmm s;
	x86_sse4_gate(cpu);
	x86_read128(cpu, x86_ea(cpu, i), &s, true);
	ptest(cpu, &cpu->xmm[i->reg], &s);
	return i + 1;
}

static X86_HANDLER(h_movntdqa_m)
{
	x86_xmm s;
	x86_sse4_gate(cpu);
	x86_read128(cpu, x86_ea(cpu, i), &s, true);
	cpu->xmm[i->reg] = s;
	return i + 1;
}

/* PMOVSX / PMOVZX: the source is the low 2, 4 or 8 bytes of an xmm register
 * or that much memory. */
#define PMOVX(name, dfield, sfield, n, msize)                                   \
	static inline void mov_##name(x86_xmm *d, const x86_xmm *s)             \
	{                                                                       \
		x86_xmm r;                                                      \
		for (unsigned k = 0; k < (n); k++)                              \
			r.dfield[k] = s->sfield[k];                             \
		*d = r;                                                         \
	}                                                                       \
	static X86_HANDLER(h_##name##_r)                                        \
	{                                                                       \
		x86_sse4_gate(cpu);                                             \
		mov_##name(&cpu->xmm[i->reg], &cpu->xmm[i->rm]);                \
		return i + 1;                                                   \
	}                                                                       \
	static X86_HANDLER(h_##name##_m)                                        \
	{                                                                       \
		x86_xmm s;                                                      \
		x86_sse4_gate(cpu);                                             \
		s.q[0] = x86_read(cpu, x86_ea(cpu, i), msize);                  \
		mov_##name(&cpu->xmm[i->reg], &s);                              \
		return i + 1;                                                   \
	}
PMOVX(pmovsxbw, sw, sb, 8, 8)
PMOVX(pmovsxbd, sd, sb, 4, 4)
PMOVX(pmovsxbq, sq, sb, 2, 2)
PMOVX(pmovsxwd, sd, sw, 4, 8)
PMOVX(pmovsxwq, sq, sw, 2, 4)
PMOVX(pmovsxdq, sq, sd, 2, 8)
PMOVX(pmovzxbw, w, b, 8, 8)
PMOVX(pmovzxbd, d, b, 4, 4)
PMOVX(pmovzxbq, q, b, 2, 2)
PMOVX(pmovzxwd, d, w, 4, 8)
PMOVX(pmovzxwq, q, w, 2, 4)
PMOVX(pmovzxdq, q, d, 2, 8)

/* --- element insert / extract ------------------------------------------- */

/* PEXTRB/W/D/Q and EXTRACTPS to a general register (zero-extended to 32 or,
 * for PEXTRQ, 64 bits) or to memory of the element's size; PINSRB/D/Q from
 * the low bits of a general register or from memory.  The selector reduces
 * the immediate to the element index. */
#define DEF_EXTRINS(sz, field, bytes)                                            \
	static X86_HANDLER(h_pextr##sz##_r)                                      \
	{                                                                        \
		x86_sse4_gate(cpu);                                              \
		cpu->regs[i->rm] = cpu->xmm[i->reg].field[i->imm];               \
		return i + 1;                                                    \
	}                                                                        \
	static X86_HANDLER(h_pextr##sz##_m)                                      \
	{                                                                        \
		x86_sse4_gate(cpu);                                              \
		x86_write(cpu, x86_ea(cpu, i), bytes, cpu->xmm[i->reg].field[i->imm]); \
		return i + 1;                                                    \
	}                                                                        \
	__attribute__((unused)) static X86_HANDLER(h_pinsr##sz##_r)                                    \
	{                                                                        \
		x86_sse4_gate(cpu);                                              \
		cpu->xmm[i->reg].field[i->imm] = (__typeof__(cpu->xmm[0].field[0]))cpu->regs[i->rm]; \
		return i + 1;                                                    \
	}                                                                        \
	__attribute__((unused)) static X86_HANDLER(h_pinsr##sz##_m)                                    \
	{                                                                        \
		x86_sse4_gate(cpu);                                              \
		cpu->xmm[i->reg].field[i->imm] =                                 \
			(__typeof__(cpu->xmm[0].field[0]))x86_read(cpu, x86_ea(cpu, i), bytes); \
		return i + 1;                                                    \
	}
DEF_EXTRINS(b, b, 1)
DEF_EXTRINS(w, w, 2)
DEF_EXTRINS(d, d, 4)
DEF_EXTRINS(q, q, 8)

/* INSERTPS: the element imm[7:6] of the source register (or a 32-bit memory
 * value) goes to element imm[5:4]; then elements in imm[3:0] are zeroed. */
static inline void insertps(x86_xmm *d, uint32_t v, unsigned imm)
{
	d->d[(imm >> 4) & 3] = v;
	for (unsigned k = 0; k < 4; k++)
		if (imm & (1u << k))
			d->d[k] = 0;
}

static X86_HANDLER(h_insertps_r)
{
	x86_sse4_gate(cpu);
	unsigned imm = (uint8_t)i->imm;
	insertps(&cpu->xmm[i->reg], cpu->xmm[i->rm].d[imm >> 6], imm);
	return i + 1;
}

static X86_HANDLER(h_insertps_m)
{
	x86_sse4_gate(cpu);
	uint32_t v = x86_read32(cpu, x86_ea(cpu, i));
	insertps(&cpu->xmm[i->reg], v, (uint8_t)i->imm);
	return i + 1;
}

/* --- selector --------------------------------------------------------------- */

struct sse4_forms {
	x86_handler_fn r, m;         /* 66-prefixed xmm forms (r NULL: memory only) */
	x86_handler_fn mmx_r, mmx_m; /* no-prefix MMX forms (SSSE3 only) */
};

#define SSSE3_ENTRY(op) { h_##op##_r, h_##op##_m, h_##op##_mmx_r, h_##op##_mmx_m }
#define XMM_ENTRY(op) { h_##op##_r, h_##op##_m, NULL, NULL }

static const struct sse4_forms map38[256] = {
	[0x00] = SSSE3_ENTRY(pshufb),
	[0x01] = SSSE3_ENTRY(phaddw),
	[0x02] = SSSE3_ENTRY(phaddd),
	[0x03] = SSSE3_ENTRY(phaddsw),
	[0x04] = SSSE3_ENTRY(pmaddubsw),
	[0x05] = SSSE3_ENTRY(phsubw),
	[0x06] = SSSE3_ENTRY(phsubd),
	[0x07] = SSSE3_ENTRY(phsubsw),
	[0x08] = SSSE3_ENTRY(psignb),
	[0x09] = SSSE3_ENTRY(psignw),
	[0x0a] = SSSE3_ENTRY(psignd),
	[0x0b] = SSSE3_ENTRY(pmulhrsw),
	[0x10] = XMM_ENTRY(pblendvb),
	[0x14] = XMM_ENTRY(blendvps),
	[0x15] = XMM_ENTRY(blendvpd),
	[0x17] = XMM_ENTRY(ptest),
	[0x1c] = SSSE3_ENTRY(pabsb),
	[0x1d] = SSSE3_ENTRY(pabsw),
	[0x1e] = SSSE3_ENTRY(pabsd),
	[0x20] = XMM_ENTRY(pmovsxbw),
	[0x21] = XMM_ENTRY(pmovsxbd),
	[0x22] = XMM_ENTRY(pmovsxbq),
	[0x23] = XMM_ENTRY(pmovsxwd),
	[0x24] = XMM_ENTRY(pmovsxwq),
	[0x25] = XMM_ENTRY(pmovsxdq),
	[0x28] = XMM_ENTRY(pmuldq),
	[0x29] = XMM_ENTRY(pcmpeqq),
	[0x2a] = { NULL, h_movntdqa_m, NULL, NULL },
	[0x2b] = XMM_ENTRY(packusdw),
	[0x30] = XMM_ENTRY(pmovzxbw),
	[0x31] = XMM_ENTRY(pmovzxbd),
	[0x32] = XMM_ENTRY(pmovzxbq),
	[0x33] = XMM_ENTRY(pmovzxwd),
	[0x34] = XMM_ENTRY(pmovzxwq),
	[0x35] = XMM_ENTRY(pmovzxdq),
	[0x37] = XMM_ENTRY(pcmpgtq),
	[0x38] = XMM_ENTRY(pminsb),
	[0x39] = XMM_ENTRY(pminsd),
	[0x3a] = XMM_ENTRY(pminuw),
	[0x3b] = XMM_ENTRY(pminud),
	[0x3c] = XMM_ENTRY(pmaxsb),
	[0x3d] = XMM_ENTRY(pmaxsd),
	[0x3e] = XMM_ENTRY(pmaxuw),
	[0x3f] = XMM_ENTRY(pmaxud),
	[0x40] = XMM_ENTRY(pmulld),
	[0x41] = XMM_ENTRY(phminposuw),
};

static const struct sse4_forms map3a[256] = {
	[0x0c] = XMM_ENTRY(blendps),
	[0x0d] = XMM_ENTRY(blendpd),
	[0x0e] = XMM_ENTRY(pblendw),
	[0x0f] = SSSE3_ENTRY(palignr),
	[0x14] = { h_pextrb_r, h_pextrb_m, NULL, NULL },
	[0x15] = { h_pextrw_r, h_pextrw_m, NULL, NULL },
	[0x16] = { h_pextrd_r, h_pextrd_m, NULL, NULL }, /* REX.W: PEXTRQ */
	[0x17] = { h_pextrd_r, h_pextrd_m, NULL, NULL }, /* EXTRACTPS */
	[0x20] = { h_pinsrb_r, h_pinsrb_m, NULL, NULL },
	[0x21] = { h_insertps_r, h_insertps_m, NULL, NULL },
	[0x22] = { h_pinsrd_r, h_pinsrd_m, NULL, NULL }, /* REX.W: PINSRQ */
	[0x42] = XMM_ENTRY(mpsadbw),
};

bool x86_select_sse4(struct x86_insn *i, unsigned map, unsigned opc, unsigned mpfx)
{
	unsigned mp = x86_sse4_mp(i);
	(void)mpfx; /* F2/F3 win over 66 whatever their order: see x86_sse4_mp */

	if (x86_sse4_select_str(i, map, opc, mp) || x86_sse4_select_fp(i, map, opc, mp))
		return true;
	if (map != 2 && map != 3)
		return false;
	const struct sse4_forms *f = map == 2 ? &map38[opc] : &map3a[opc];
	if (mp == X86_MP_66) {
		x86_handler_fn fn = i->is_mem ? f->m : f->r;
		if (!fn)
			return false;
		if (map == 3) {
			bool w = i->pfx & X86_PFX_REXW;
			switch (opc) {
			case 0x14: case 0x20: i->imm &= 15; break;
			case 0x15: i->imm &= 7; break;
			case 0x16: case 0x22:
				i->imm &= w ? 1 : 3;
				if (w)
					fn = opc == 0x16 ? (i->is_mem ? h_pextrq_m : h_pextrq_r)
							 : (i->is_mem ? h_pinsrq_m : h_pinsrq_r);
				break;
			case 0x17: i->imm &= 3; break;
			default: i->imm &= 0xff; break;
			}
		}
		i->fn = fn;
		return true;
	}
	if (mp == X86_MP_NONE && SSE4_HAVE_MMX && f->mmx_r) {
		i->fn = i->is_mem ? f->mmx_m : f->mmx_r;
		return true;
	}
	return false;
}

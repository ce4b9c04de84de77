/* Unit tests of the x87 family: values and flags the SDM defines (stack
 * faults, the real indefinite, condition codes, FCOMI flags, environment
 * layouts, #MF and #NM), and a differential test that runs random x87
 * instruction sequences both on the software CPU and natively on the host
 * FPU and compares the whole x87 state, RAX, the flags and memory. */
#include "cpu_test.h"

#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* --- helpers ---------------------------------------------------------------- */

static void ld_bytes(uint8_t out[10], long double v)
{
	memcpy(out, &v, 10);
}

/* ST(k) of the CPU state, as 10 bytes. */
static const uint8_t *st_k(const struct ct *t, unsigned k)
{
	return t->st.fx.st[k];
}

static bool st_eq(const struct ct *t, unsigned k, long double v)
{
	uint8_t b[10];
	ld_bytes(b, v);
	return memcmp(st_k(t, k), b, 10) == 0;
}

static unsigned top_of(const struct ct *t)
{
	return (t->st.fx.fsw >> 11) & 7;
}

static const uint8_t indefinite[10] = { 0, 0, 0, 0, 0, 0, 0, 0xc0, 0xff, 0xff };

/* Runs code (int3 appended by the caller) and expects it to reach INT3. */
static void run_ok(struct ct *t, const uint8_t *code, size_t len)
{
	int v = ct_run(t, code, len);
	CHECK(v == 3);
	if (v != 3)
		fprintf(stderr, "  exit vector %d at rip 0x%llx\n", v, (unsigned long long)t->st.rip);
}

/* --- SDM-defined behaviour ---------------------------------------------------- */

static void test_constants_and_arith(void)
{
	struct ct t;
	ct_init(&t);
	/* fld1; fldpi; faddp; fldl2e; fldz; fldln2; fldlg2; fldl2t; int3 */
	static const uint8_t code[] = { 0xd9, 0xe8, 0xd9, 0xeb, 0xde, 0xc1, 0xd9, 0xea,
		0xd9, 0xee, 0xd9, 0xed, 0xd9, 0xec, 0xd9, 0xe9, 0xcc };
	run_ok(&t, code, sizeof(code));
	CHECK_EQ_U64(top_of(&t), 2);
	CHECK_EQ_U64(t.st.fx.ftw, 0xfc); /* R2..R7 valid */
	/* pi + 1 rounded to 64 bits (round to nearest) */
	long double pi1;
	__asm__("fldpi; fld1; faddp" : "=t"(pi1));
	CHECK(st_eq(&t, 5, pi1));
	static const uint8_t pi1b[10] = { 0x1a, 0x61, 0xb4, 0x10, 0x51, 0xed, 0x87, 0x84, 0x01, 0x40 };
	CHECK(memcmp(st_k(&t, 5), pi1b, 10) == 0);
	static const uint8_t l2t[10] = { 0xfe, 0x8a, 0x1b, 0xcd, 0x4b, 0x78, 0x9a, 0xd4, 0x00, 0x40 };
	CHECK(memcmp(st_k(&t, 0), l2t, 10) == 0);
	CHECK(st_eq(&t, 3, 0.0L));
	uint8_t z[10] = { 0 };
	CHECK(memcmp(st_k(&t, 3), z, 10) == 0);

	/* 1/3 under precision control 24, 53, 64 bits: fldcw [rbx]; fld1;
	 * fild dword [rbx+4]; fdivp; fstp tword [rbx+16] */
	static const uint8_t div3[] = { 0xd9, 0x2b, 0xd9, 0xe8, 0xdb, 0x43, 0x04, 0xde, 0xf9,
		0xdb, 0x7b, 0x10, 0xcc };
	static const uint16_t pcs[3] = { 0x007f, 0x027f, 0x037f };
	static const uint64_t mant[3] = { 0xaaaaab0000000000ull, 0xaaaaaaaaaaaaa800ull, 0xaaaaaaaaaaaaaaabull };
	for (unsigned k = 0; k < 3; k++) {
		uint8_t *d = ct_data(&t, CT_DATA);
		memcpy(d, &pcs[k], 2);
		int32_t three = 3;
		memcpy(d + 4, &three, 4);
		t.st.gpr[X86_RBX] = CT_DATA;
		run_ok(&t, div3, sizeof(div3));
		uint64_t m;
		memcpy(&m, d + 16, 8);
		CHECK_EQ_U64(m, mant[k]);
		CHECK_EQ_U64(d[24] | d[25] << 8, 0x3ffd);
		CHECK(t.st.fx.fsw & 0x20); /* PE */
		CHECK_EQ_U64(t.st.fx.fcw, pcs[k]);
	}
	ct_fini(&t);
}

static void test_stack_faults(void)
{
	struct ct t;
	ct_init(&t);
	/* nine fld1: the ninth overflows: IE, SF, C1=1, ST0 = indefinite */
	uint8_t code[19];
	for (unsigned k = 0; k < 9; k++) {
		code[2 * k] = 0xd9;
		code[2 * k + 1] = 0xe8;
	}
	code[18] = 0xcc;
	run_ok(&t, code, sizeof(code));
	CHECK_EQ_U64(t.st.fx.fsw & 0x3fff, 0x0241 | (7u << 11)); /* C1 SF IE, TOP 7 */
	CHECK(memcmp(st_k(&t, 0), indefinite, 10) == 0);
	CHECK_EQ_U64(t.st.fx.ftw, 0xff);

	/* underflow: fninit; fadd st0, st1 on an empty stack: IE SF, C1=0 */
	static const uint8_t under[] = { 0xdb, 0xe3, 0xd8, 0xc1, 0xcc };
	run_ok(&t, under, sizeof(under));
	CHECK_EQ_U64(t.st.fx.fsw, 0x0041);
	CHECK_EQ_U64(t.st.fx.ftw, 0x01); /* the indefinite was written to ST0 = R0 */
	CHECK(memcmp(st_k(&t, 0), indefinite, 10) == 0);

	/* fnclex clears the flags; fninit resets everything */
	static const uint8_t clex[] = { 0xdb, 0xe2, 0xcc };
	run_ok(&t, clex, sizeof(clex));
	CHECK_EQ_U64(t.st.fx.fsw, 0);
	ct_fini(&t);
}

static void test_compare(void)
{
	struct ct t;
	ct_init(&t);
	/* fld1; fldz; fcomi st0, st1 -> CF (0 < 1); fucomip; fstp st0 */
	static const uint8_t c1[] = { 0xdb, 0xe3, 0xd9, 0xe8, 0xd9, 0xee, 0xdb, 0xf1, 0xcc };
	t.st.rflags = 0x202 | X86_OF | X86_SF | X86_AF | X86_ZF;
	run_ok(&t, c1, sizeof(c1));
	CHECK_EQ_U64(t.st.rflags & X86_ARITH_FLAGS, X86_CF);
	/* fcom with NaN: fninit; fldz; fld1; fchs; fsqrt (NaN, IE); fcom st1 ->
	 * C3 C2 C0 = 111; then fnstsw ax */
	static const uint8_t c2[] = { 0xdb, 0xe3, 0xd9, 0xee, 0xd9, 0xe8, 0xd9, 0xe0, 0xd9, 0xfa,
		0xd8, 0xd1, 0xdf, 0xe0, 0xcc };
	t.st.gpr[X86_RAX] = 0x123456789abcdef0ull;
	run_ok(&t, c2, sizeof(c2));
	CHECK_EQ_U64(t.st.gpr[X86_RAX], 0x123456789abc0000ull | 0x4500 | (6u << 11) | 1);
	CHECK(memcmp(st_k(&t, 0), indefinite, 10) == 0);
	/* ftst / fxam on 0, negative, empty */
	static const uint8_t c3[] = { 0xdb, 0xe3, 0xd9, 0xe8, 0xd9, 0xe0, 0xd9, 0xe4, 0xdf, 0xe0,
		0x89, 0xc3, 0xd9, 0xe5, 0xdf, 0xe0, 0x89, 0xc1, 0xdd, 0xd8, 0xd9, 0xe5, 0xdf, 0xe0, 0xcc };
	run_ok(&t, c3, sizeof(c3));
	CHECK_EQ_U64(t.st.gpr[X86_RBX] & 0x4700, 0x0100);          /* ftst -1: C0 */
	CHECK_EQ_U64(t.st.gpr[X86_RCX] & 0x4700, 0x0400 | 0x0200); /* fxam: normal, negative */
	CHECK_EQ_U64(t.st.gpr[X86_RAX] & 0x4500, 0x4100);          /* fxam empty: C3 C0 */
	/* fcmovb: taken with CF=1, not with CF=0 */
	static const uint8_t cm[] = { 0xdb, 0xe3, 0xd9, 0xe8, 0xd9, 0xee, 0xda, 0xc1, 0xcc };
	t.st.rflags = 0x203;
	run_ok(&t, cm, sizeof(cm));
	CHECK(st_eq(&t, 0, 1.0L));
	t.st.rflags = 0x202;
	run_ok(&t, cm, sizeof(cm));
	CHECK(st_eq(&t, 0, 0.0L));
	ct_fini(&t);
}

static void test_int_bcd_store(void)
{
	struct ct t;
	ct_init(&t);
	uint8_t *d = ct_data(&t, CT_DATA);
	/* fild qword [rbx]; fbstp [rbx+16]; fld qword [rbx+8] (2.5);
	 * fistp word [rbx+32] (round to even: 2); fld qword [rbx+8];
	 * fisttp dword [rbx+36] (truncate: 2) */
	static const uint8_t code[] = { 0xdf, 0x2b, 0xdf, 0x73, 0x10, 0xdd, 0x43, 0x08, 0xdf, 0x5b, 0x20,
		0xdd, 0x43, 0x08, 0xdb, 0x4b, 0x24, 0xcc };
	int64_t v = -123456789012345678ll;
	double h = 2.5;
	memcpy(d, &v, 8);
	memcpy(d + 8, &h, 8);
	t.st.gpr[X86_RBX] = CT_DATA;
	run_ok(&t, code, sizeof(code));
	static const uint8_t bcd[10] = { 0x78, 0x56, 0x34, 0x12, 0x90, 0x78, 0x56, 0x34, 0x12, 0x80 };
	CHECK(memcmp(d + 16, bcd, 10) == 0);
	CHECK_EQ_U64(d[32] | d[33] << 8, 2);
	CHECK_EQ_U64(d[36] | d[37] << 8, 2);
	CHECK_EQ_U64(top_of(&t), 0);
	CHECK_EQ_U64(t.st.fx.ftw, 0);

	/* fist with an out-of-range value: masked IE stores the integer
	 * indefinite 0x8000 */
	static const uint8_t big[] = { 0xdb, 0xe3, 0xdf, 0x2b, 0xdf, 0x53, 0x28, 0xcc };
	memcpy(d, &v, 8);
	run_ok(&t, big, sizeof(big));
	CHECK_EQ_U64(d[40] | d[41] << 8, 0x8000);
	CHECK_EQ_U64(t.st.fx.fsw & 0x3f, 1);

	/* the same with IE unmasked: no store, ES and B set, no pop; the next
	 * waiting instruction raises #MF; fnstsw does not */
	static const uint8_t um[] = { 0xdb, 0xe3, 0xd9, 0x6b, 0x30, 0xdf, 0x2b, 0xdf, 0x5b, 0x28,
		0xdd, 0x7b, 0x34, 0xd9, 0xe8, 0xcc };
	uint16_t cw = 0x37e;
	memcpy(d + 0x30, &cw, 2);
	d[40] = 0x11;
	d[41] = 0x22;
	CHECK(ct_run(&t, um, sizeof(um)) == X86_MF);
	CHECK_EQ_U64(t.st.rip, CT_CODE + 13); /* at the fld1 */
	CHECK_EQ_U64(d[40] | d[41] << 8, 0x2211);
	CHECK_EQ_U64(d[0x34] | d[0x35] << 8, 0x8081 | (7u << 11));
	CHECK_EQ_U64(top_of(&t), 7);
	/* FWAIT raises it too; FNINIT clears it */
	static const uint8_t w[] = { 0x9b, 0xcc };
	CHECK(ct_run(&t, w, sizeof(w)) == X86_MF);
	static const uint8_t w2[] = { 0xdb, 0xe3, 0x9b, 0xd9, 0xe8, 0xcc };
	run_ok(&t, w2, sizeof(w2));
	ct_fini(&t);
}

static void test_env_and_pointers(void)
{
	struct ct t;
	ct_init(&t);
	uint8_t *d = ct_data(&t, CT_DATA);
	/* fninit; fld1; fld qword [rbx+0x40]; fnstenv [rbx]; fnstcw [rbx+0x30] */
	static const uint8_t code[] = { 0xdb, 0xe3, 0xd9, 0xe8, 0xdd, 0x43, 0x40, 0xd9, 0x33,
		0xd9, 0x7b, 0x30, 0xcc };
	double z = 0.0;
	memcpy(d + 0x40, &z, 8);
	t.st.gpr[X86_RBX] = CT_DATA;
	run_ok(&t, code, sizeof(code));
	uint32_t e[7];
	memcpy(e, d, 28);
	CHECK_EQ_U64(e[0], 0xffff037f);
	CHECK_EQ_U64(e[1], 0xffff0000 | (6u << 11));
	CHECK_EQ_U64(e[2], 0xffff0000 | 0x1fff); /* R6 zero (01), R7 valid (00) */
	CHECK_EQ_U64(e[3], (uint32_t)(CT_CODE + 4));
	CHECK_EQ_U64(e[4], 0x5430000); /* FOP 543 (DD /0 modrm 43), FCS 0 */
	CHECK_EQ_U64(e[5], (uint32_t)(CT_DATA + 0x40));
	CHECK_EQ_U64(e[6], 0xffff0000);
	CHECK_EQ_U64(d[0x30] | d[0x31] << 8, 0x037f); /* fnstenv masked all (already) */
	CHECK_EQ_U64(t.st.fx.fop, 0x543);
	CHECK_EQ_U64(t.st.fx.fip, CT_CODE + 4);
	CHECK_EQ_U64(t.st.fx.fdp, CT_DATA + 0x40);

	/* 16-bit layout (66 prefix): fnstenv; then fnsave / frstor round trip */
	static const uint8_t e16[] = { 0x66, 0xd9, 0x73, 0x50, 0xcc };
	run_ok(&t, e16, sizeof(e16));
	CHECK_EQ_U64(d[0x50] | d[0x51] << 8, 0x037f);
	CHECK_EQ_U64(d[0x52] | d[0x53] << 8, 6u << 11);
	CHECK_EQ_U64(d[0x54] | d[0x55] << 8, 0x1fff);
	CHECK_EQ_U64(d[0x56] | d[0x57] << 8, (CT_CODE + 4) & 0xffff);
	CHECK_EQ_U64(d[0x5a] | d[0x5b] << 8, (CT_DATA + 0x40) & 0xffff);

	/* fnsave [rbx+0x100]; fld1 (changes the state); frstor [rbx+0x100] */
	static const uint8_t sv[] = { 0xdd, 0xb3, 0x00, 0x01, 0x00, 0x00, 0xd9, 0xe8,
		0xdd, 0xa3, 0x00, 0x01, 0x00, 0x00, 0xcc };
	struct x86_fxsave before = t.st.fx;
	run_ok(&t, sv, sizeof(sv));
	CHECK_EQ_U64(t.st.fx.fcw, before.fcw);
	CHECK_EQ_U64(t.st.fx.fsw, before.fsw);
	CHECK_EQ_U64(t.st.fx.ftw, before.ftw);
	CHECK(memcmp(t.st.fx.st, before.st, sizeof(before.st)) == 0);
	CHECK(st_eq(&t, 1, 1.0L));
	/* the saved image holds ST0 = +0 and ST1 = 1.0 after the 28-byte header */
	uint8_t one[10];
	ld_bytes(one, 1.0L);
	CHECK(memcmp(d + 0x100 + 28 + 10, one, 10) == 0);

	/* fldcw unmasking a set flag makes it pending: fld1; fldz; fdivp (ZE
	 * masked); fldcw 0x37b; fnstsw ax; fld1 -> #MF */
	static const uint8_t pend[] = { 0xdb, 0xe3, 0xd9, 0xe8, 0xd9, 0xee, 0xde, 0xf9,
		0xd9, 0x6b, 0x60, 0xdf, 0xe0, 0xd9, 0xe8, 0xcc };
	uint16_t cw = 0x37b;
	memcpy(d + 0x60, &cw, 2);
	CHECK(ct_run(&t, pend, sizeof(pend)) == X86_MF);
	CHECK_EQ_U64(t.st.gpr[X86_RAX] & 0xffff, 0x8084 | (7u << 11));
	CHECK_EQ_U64(t.st.rip, CT_CODE + 13);
	ct_fini(&t);
}

static void test_nm_and_ud(void)
{
	struct ct t;
	ct_init(&t);
	static const uint8_t fld1[] = { 0xd9, 0xe8, 0xcc };
	t.st.cr0 |= 1u << 3; /* TS */
	CHECK(ct_run(&t, fld1, sizeof(fld1)) == X86_NM);
	static const uint8_t wt[] = { 0x9b, 0xcc };
	CHECK(ct_run(&t, wt, sizeof(wt)) == X86_NM); /* MP and TS */
	t.st.cr0 &= ~(1ull << 3);
	CHECK(ct_run(&t, fld1, sizeof(fld1)) == 3);
	/* undefined forms: D9 D1, DA E0, DD F0, DF F8, D9 /1 m, DB /4 m, and a
	 * LOCK prefix */
	static const uint8_t ud[][5] = {
		{ 0xd9, 0xd1, 0xcc }, { 0xda, 0xe0, 0xcc }, { 0xdd, 0xf0, 0xcc },
		{ 0xdf, 0xf8, 0xcc }, { 0xd9, 0x0b, 0xcc }, { 0xdb, 0x23, 0xcc },
		{ 0xf0, 0xd8, 0x03, 0xcc },
	};
	t.st.gpr[X86_RBX] = CT_DATA;
	for (unsigned k = 0; k < ARRAY_SIZE(ud); k++)
		CHECK(ct_run(&t, ud[k], 5) == X86_UD);
	/* a memory operand that faults leaves the FPU untouched */
	static const uint8_t pf[] = { 0xdb, 0xe3, 0xd9, 0xe8, 0xdd, 0x1c, 0x25, 0, 0, 0, 0, 0xcc };
	CHECK(ct_run(&t, pf, sizeof(pf)) == X86_PF_FAULT);
	CHECK_EQ_U64(top_of(&t), 7);
	CHECK_EQ_U64(t.st.fx.ftw, 0x80);
	CHECK_EQ_U64(t.st.fx.fop, 0x1e8); /* still the fld1's */
	ct_fini(&t);
}

/* --- differential test against the host FPU --------------------------------- */

/* native_x87(img, data, code, io): frstor img; rbx = data; rax = io[0];
 * rflags = io[1]; call code; io[0] = rax; io[1] = rflags; fnsave img. */
__asm__(".pushsection .text\n"
	".globl ct_native_x87\n"
	".hidden ct_native_x87\n"
	".type ct_native_x87, @function\n"
	"ct_native_x87:\n"
	"  push %rbx\n"
	"  push %r12\n"
	"  push %r13\n"
	"  mov %rdi, %r12\n"
	"  mov %rcx, %r13\n"
	"  mov %rsi, %rbx\n"
	"  frstor (%r12)\n"
	"  mov (%r13), %rax\n"
	"  pushq 8(%r13)\n"
	"  popfq\n"
	"  call *%rdx\n"
	"  pushfq\n"
	"  popq 8(%r13)\n"
	"  mov %rax, (%r13)\n"
	"  fnsave (%r12)\n"
	"  pop %r13\n"
	"  pop %r12\n"
	"  pop %rbx\n"
	"  ret\n"
	".size ct_native_x87, . - ct_native_x87\n"
	".popsection\n");
void ct_native_x87(uint8_t *img, void *data, void *code, uint64_t io[2]);

static uint64_t rng_state;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* An interesting 80-bit value. */
static void rnd_value(uint8_t out[10])
{
	static const long double pool[] = { 0.0L, 1.0L, -1.0L, 0.5L, 2.0L, 3.0L, 10.0L, -0.0L,
		3.14159265358979323846L, 1e10L, -1e-10L, 65536.0L, 1e4000L, -1e-4000L,
		32767.5L, -32768.5L, 2147483648.0L, 9.3e18L, 1e-4940L, 0.75L };
	uint64_t man;
	uint16_t se;
	switch (rnd() % 8) {
	case 0: case 1: case 2:
		ld_bytes(out, pool[rnd() % ARRAY_SIZE(pool)]);
		return;
	case 3: /* small-exponent normal number */
		man = rnd() | (1ull << 63);
		se = (uint16_t)(0x3fff - 8 + rnd() % 80) | (uint16_t)((rnd() & 1) << 15);
		break;
	case 4: /* special: inf, NaNs, denormals, unnormals, pseudo-denormals */
		man = rnd();
		switch (rnd() % 6) {
		case 0: man = 1ull << 63; se = 0x7fff; break;
		case 1: man |= 1ull << 63; se = 0x7fff; break;
		case 2: man &= ~(1ull << 63); se = 0; break;
		case 3: man &= ~(1ull << 63); se = (uint16_t)(1 + rnd() % 0x7ffe); break;
		case 4: man |= 1ull << 63; se = 0; break;
		default: man = 0xc000000000000000ull; se = 0xffff; break;
		}
		se |= (uint16_t)((rnd() & 1) << 15);
		break;
	default: /* any normal number */
		man = rnd() | (1ull << 63);
		se = (uint16_t)(1 + rnd() % 0x7ffe) | (uint16_t)((rnd() & 1) << 15);
		break;
	}
	memcpy(out, &man, 8);
	memcpy(out + 8, &se, 2);
}

/* Instruction generator: one x87 instruction at p, memory operands at
 * [rbx + disp8]; returns its length.  Generates every form the host
 * accepts except FNSTENV and FNSAVE (they store FIP/FDP, which are host
 * addresses natively). */
static unsigned gen_insn_body(uint8_t *p);

static unsigned gen_insn(uint8_t *p)
{
	/* prefixes that must not matter (or select the 16-bit environment
	 * layout): none, 66, REX.W, REX, 66 REX.W */
	static const uint8_t pfx[][2] = { { 0 }, { 0 }, { 0 }, { 0x66 }, { 0x48 }, { 0x40 }, { 0x66, 0x48 } };
	unsigned k = (unsigned)(rnd() % ARRAY_SIZE(pfx)), n = 0;
	while (n < 2 && pfx[k][n])
		p[n] = pfx[k][n], n++;
	return n + gen_insn_body(p + n);
}

static unsigned gen_insn_body(uint8_t *p)
{
	for (;;) {
		unsigned opc = 0xd8 + (unsigned)(rnd() % 8);
		if (rnd() % 2) {
			unsigned m = 0xc0 + (unsigned)(rnd() % 64);
			bool ud = false;
			switch (opc) {
			case 0xd9: ud = (m >= 0xd1 && m <= 0xd7) || m == 0xe2 || m == 0xe3 || m == 0xe6 || m == 0xe7 || m == 0xef; break;
			case 0xda: ud = m >= 0xe0 && m != 0xe9; break;
			case 0xdb: ud = (m >= 0xe5 && m <= 0xe7) || m >= 0xf8; break;
			case 0xdd: ud = m >= 0xf0; break;
			case 0xde: ud = m == 0xd8 || (m >= 0xda && m <= 0xdf); break;
			case 0xdf: ud = (m >= 0xe1 && m <= 0xe7) || m >= 0xf8; break;
			default: break;
			}
			if (ud || (opc == 0xdb && m == 0xe3 && rnd() % 4))
				continue; /* undefined; FNINIT rarely */
			p[0] = (uint8_t)opc;
			p[1] = (uint8_t)m;
			return 2;
		}
		unsigned r = (unsigned)(rnd() % 8);
		if ((opc == 0xd9 && (r == 1 || r == 6)) || (opc == 0xdb && (r == 4 || r == 6)) ||
		    (opc == 0xdd && (r == 5 || r == 6)))
			continue;
		/* environment loads rarely: they replace everything */
		if (((opc == 0xd9 && r == 4) || (opc == 0xdd && r == 4)) && rnd() % 8)
			continue;
		p[0] = (uint8_t)opc;
		p[1] = (uint8_t)(0x43 | r << 3);
		p[2] = (uint8_t)(rnd() % 6 * 16);
		return 3;
	}
}

#define DIFF_DATA 256

/* What one run ends with, on either side. */
struct diff_res {
	int vector; /* 3: completed; 16: #MF */
	uint64_t rip_off; /* #MF: offset of the faulting instruction */
	uint16_t fcw, fsw;
	uint8_t valid;
	uint8_t st[8][10];
	uint64_t rax, flags;
	uint8_t data[DIFF_DATA];
};

static sigjmp_buf diff_jb;
static struct {
	uint8_t fx[512];
	uint64_t rip, rax, efl;
} diff_fault;

static void diff_sigfpe(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	(void)sig;
	(void)si;
	memcpy(diff_fault.fx, uc->uc_mcontext.fpregs, sizeof(diff_fault.fx));
	diff_fault.rip = (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
	diff_fault.rax = (uint64_t)uc->uc_mcontext.gregs[REG_RAX];
	diff_fault.efl = (uint64_t)uc->uc_mcontext.gregs[REG_EFL];
	siglongjmp(diff_jb, 1);
}

static void diff_native(struct diff_res *r, uint8_t *img, uint8_t *ncode, uint8_t *data, uint64_t rax, uint64_t fl)
{
	static uint64_t io[2];
	io[0] = rax;
	io[1] = fl;
	if (sigsetjmp(diff_jb, 1) == 0) {
		ct_native_x87(img, data, ncode, io);
		uint16_t tw = (uint16_t)(img[8] | img[9] << 8);
		r->vector = 3;
		r->fcw = (uint16_t)(img[0] | img[1] << 8);
		r->fsw = (uint16_t)(img[4] | img[5] << 8);
		r->valid = 0;
		for (unsigned p = 0; p < 8; p++)
			if (((tw >> (2 * p)) & 3) != 3)
				r->valid |= (uint8_t)(1u << p);
		for (unsigned k = 0; k < 8; k++)
			memcpy(r->st[k], img + 28 + 10 * k, 10);
		r->rax = io[0];
		r->flags = io[1] & X86_ARITH_FLAGS;
	} else {
		__asm__ volatile("fninit" ::: "memory");
		const uint8_t *fx = diff_fault.fx;
		r->vector = X86_MF;
		r->rip_off = diff_fault.rip - (uint64_t)(uintptr_t)ncode;
		r->fcw = (uint16_t)(fx[0] | fx[1] << 8);
		r->fsw = (uint16_t)(fx[2] | fx[3] << 8);
		r->valid = fx[4];
		for (unsigned k = 0; k < 8; k++)
			memcpy(r->st[k], fx + 32 + 16 * k, 10);
		r->rax = diff_fault.rax;
		r->flags = diff_fault.efl & X86_ARITH_FLAGS;
	}
	memcpy(r->data, data, DIFF_DATA);
}

static void diff_emu(struct diff_res *r, struct ct *t, const uint8_t *code, unsigned len)
{
	r->vector = ct_run(t, code, len);
	r->rip_off = t->st.rip - CT_CODE;
	r->fcw = t->st.fx.fcw;
	r->fsw = t->st.fx.fsw;
	r->valid = t->st.fx.ftw;
	for (unsigned k = 0; k < 8; k++)
		memcpy(r->st[k], t->st.fx.st[k], 10);
	r->rax = t->st.gpr[X86_RAX];
	r->flags = t->st.rflags & X86_ARITH_FLAGS;
	memcpy(r->data, ct_data(t, CT_DATA), DIFF_DATA);
}

static bool diff_same(const struct diff_res *a, const struct diff_res *b)
{
	return a->vector == b->vector && (a->vector != X86_MF || a->rip_off == b->rip_off) &&
	       a->fcw == b->fcw && a->fsw == b->fsw && a->valid == b->valid &&
	       memcmp(a->st, b->st, sizeof(a->st)) == 0 && a->rax == b->rax &&
	       a->flags == b->flags && memcmp(a->data, b->data, DIFF_DATA) == 0;
}

static void test_differential(void)
{
	struct ct t;
	ct_init(&t);
	uint8_t *ncode = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(ncode != MAP_FAILED);
	if (ncode == MAP_FAILED)
		return;
	struct sigaction sa, old;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = diff_sigfpe;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGFPE, &sa, &old);

	/* MAQUINA_X87_SEED and MAQUINA_X87_RUNS allow longer soaks */
	const char *seed_s = getenv("MAQUINA_X87_SEED"), *runs_s = getenv("MAQUINA_X87_RUNS");
	rng_state = seed_s ? strtoull(seed_s, NULL, 0) | 1 : 0x9e3779b97f4a7c15ull;
	static struct diff_res re, rn;
	static uint8_t ndata[DIFF_DATA];
	unsigned mismatches = 0, runs = runs_s ? (unsigned)strtoul(runs_s, NULL, 0) : 30000, faults = 0;
	for (unsigned n = 0; n < runs && mismatches < 10; n++) {
		uint8_t code[64], img[108];
		unsigned len = 0, count = 1 + (unsigned)(rnd() % 8);
		for (unsigned k = 0; k < count; k++)
			len += gen_insn(code + len);

		/* random state: random PC and RC; exceptions masked in 3 runs
		 * of 4, a random set unmasked in the 4th */
		uint16_t fcw = (uint16_t)(0x7f | (rnd() % 4) << 8 | (rnd() % 4) << 10);
		if (rnd() % 4 == 0)
			fcw = (uint16_t)(fcw & ~(rnd() & 0x3f));
		uint16_t fsw = (uint16_t)((rnd() & 0x477f) | (rnd() % 8) << 11);
		if (rnd() % 2)
			fsw &= (uint16_t)~0x3f;
		uint8_t valid = (uint8_t)(rnd() % 2 ? rnd() | rnd() : rnd()); /* mostly full: the fast paths */
		memset(img, 0, sizeof(img));
		uint32_t w = 0xffff0000u | fcw;
		memcpy(img, &w, 4);
		w = 0xffff0000u | fsw;
		memcpy(img + 4, &w, 4);
		uint16_t tw = 0;
		for (unsigned p = 0; p < 8; p++)
			if (!(valid & (1u << p)))
				tw |= (uint16_t)(3u << (2 * p));
		w = 0xffff0000u | tw;
		memcpy(img + 8, &w, 4);
		for (unsigned k = 0; k < 8; k++)
			rnd_value(img + 28 + 10 * k);
		for (unsigned k = 0; k < DIFF_DATA; k += 16) {
			uint8_t v[10];
			rnd_value(v);
			memcpy(ndata + k, v, 10);
			uint64_t x = rnd();
			if (rnd() % 2)
				x = (uint64_t)(int64_t)(int16_t)x;
			memcpy(ndata + k + 10, &x, 6);
			if (rnd() % 4 == 0) { /* a double at the start */
				double dv = (double)(int64_t)(rnd() % 2000 - 1000) / 8;
				memcpy(ndata + k, &dv, 8);
			}
		}
		uint64_t fl = 0x202 | (rnd() & X86_ARITH_FLAGS);
		uint64_t rax = rnd();

		/* emulator: the same state through the FXSAVE image */
		memset(&t.st.fx, 0, 160);
		t.st.fx.fcw = fcw;
		t.st.fx.fsw = fsw;
		t.st.fx.ftw = valid;
		for (unsigned k = 0; k < 8; k++)
			memcpy(t.st.fx.st[k], img + 28 + 10 * k, 10);
		t.st.rflags = fl;
		t.st.gpr[X86_RAX] = rax;
		t.st.gpr[X86_RBX] = CT_DATA;
		memcpy(ct_data(&t, CT_DATA), ndata, DIFF_DATA);
		code[len] = 0xcc;
		diff_emu(&re, &t, code, len + 1);

		/* host */
		memcpy(ncode, code, len);
		ncode[len] = 0xc3;
		diff_native(&rn, img, ncode, ndata, rax, fl);
		faults += rn.vector == X86_MF;

		if (!diff_same(&re, &rn)) {
			mismatches++;
			fprintf(stderr, "x87 mismatch #%u:", n);
			for (unsigned k = 0; k < len; k++)
				fprintf(stderr, " %02x", code[k]);
			fprintf(stderr, "\n  emu/host: vector %d/%d at %llu/%llu fcw %04x/%04x fsw %04x/%04x tags %02x/%02x rax %llx/%llx fl %llx/%llx regs %s data %s\n",
				re.vector, rn.vector, (unsigned long long)re.rip_off, (unsigned long long)rn.rip_off,
				re.fcw, rn.fcw, re.fsw, rn.fsw, re.valid, rn.valid,
				(unsigned long long)re.rax, (unsigned long long)rn.rax,
				(unsigned long long)re.flags, (unsigned long long)rn.flags,
				memcmp(re.st, rn.st, sizeof(re.st)) ? "differ" : "same",
				memcmp(re.data, rn.data, DIFF_DATA) ? "differ" : "same");
		}
		CHECK(diff_same(&re, &rn));
	}
	sigaction(SIGFPE, &old, NULL);
	printf("x87 differential: %u sequences (%u ended in #MF), %u mismatches\n", runs, faults, mismatches);
	munmap(ncode, 4096);
	ct_fini(&t);
}

/* FNSTENV and FNSAVE in both layouts against the host, on random states:
 * the stored images (the full tag word classifies each register) apart
 * from the instruction and data pointers, and the state left behind. */
static void test_env_native(void)
{
	struct ct t;
	ct_init(&t);
	uint8_t *ncode = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(ncode != MAP_FAILED);
	if (ncode == MAP_FAILED)
		return;
	static const uint8_t forms[][3] = {
		{ 0xd9, 0x33 }, { 0x66, 0xd9, 0x33 }, { 0xdd, 0x33 }, { 0x66, 0xdd, 0x33 },
		{ 0x48, 0xd9, 0x33 }, { 0x48, 0xdd, 0x33 },
	};
	static struct diff_res re, rn;
	static uint8_t ndata[DIFF_DATA];
	unsigned bad = 0;
	rng_state = 0x243f6a8885a308d3ull;
	for (unsigned n = 0; n < 3000; n++) {
		unsigned f = n % ARRAY_SIZE(forms);
		unsigned len = forms[f][0] == 0xd9 || forms[f][0] == 0xdd ? 2 : 3;
		bool w16 = forms[f][0] == 0x66;
		bool save = forms[f][len - 2] == 0xdd;
		uint8_t code[4], img[108];
		memcpy(code, forms[f], len);
		code[len] = 0xcc;

		uint16_t fcw = (uint16_t)((rnd() & 0x1f3f) | 0x40);
		uint16_t fsw = (uint16_t)(rnd() & 0xffff & ~0x3800u) | (uint16_t)((rnd() % 8) << 11);
		uint8_t valid = (uint8_t)rnd();
		memset(img, 0, sizeof(img));
		uint32_t w = 0xffff0000u | fcw;
		memcpy(img, &w, 4);
		w = 0xffff0000u | fsw;
		memcpy(img + 4, &w, 4);
		uint16_t tw = 0;
		for (unsigned p = 0; p < 8; p++)
			if (!(valid & (1u << p)))
				tw |= (uint16_t)(3u << (2 * p));
		w = 0xffff0000u | tw;
		memcpy(img + 8, &w, 4);
		for (unsigned k = 0; k < 8; k++)
			rnd_value(img + 28 + 10 * k);
		memset(ndata, 0xee, DIFF_DATA);

		memset(&t.st.fx, 0, 160);
		t.st.fx.fcw = fcw;
		t.st.fx.fsw = fsw;
		t.st.fx.ftw = valid;
		for (unsigned k = 0; k < 8; k++)
			memcpy(t.st.fx.st[k], img + 28 + 10 * k, 10);
		t.st.gpr[X86_RAX] = 0;
		t.st.rflags = 0x202;
		t.st.gpr[X86_RBX] = CT_DATA;
		memcpy(ct_data(&t, CT_DATA), ndata, DIFF_DATA);
		diff_emu(&re, &t, code, len + 1);

		memcpy(ncode, code, len);
		ncode[len] = 0xc3;
		diff_native(&rn, img, ncode, ndata, 0, 0x202);

		/* the pointer fields */
		unsigned lo = w16 ? 6 : 12, hi = w16 ? 14 : 28;
		memset(re.data + lo, 0, hi - lo);
		memset(rn.data + lo, 0, hi - lo);
		(void)save;
		if (!diff_same(&re, &rn)) {
			if (bad++ < 5) {
				fprintf(stderr, "x87 env mismatch #%u form %u: fcw %04x/%04x fsw %04x/%04x tags %02x/%02x\n  emu :",
					n, f, re.fcw, rn.fcw, re.fsw, rn.fsw, re.valid, rn.valid);
				for (unsigned k = 0; k < 28; k++)
					fprintf(stderr, " %02x", re.data[k]);
				fprintf(stderr, "\n  host:");
				for (unsigned k = 0; k < 28; k++)
					fprintf(stderr, " %02x", rn.data[k]);
				fprintf(stderr, "\n");
			}
		}
		CHECK(diff_same(&re, &rn));
	}
	printf("x87 environment stores: 3000 states, %u mismatches\n", bad);
	munmap(ncode, 4096);
	ct_fini(&t);
}

/* Real mode (a system-mode CPU with CR0.PE clear): FNSTENV and FNSAVE use
 * the real-mode layouts, whose pointers are 20/32-bit linear addresses
 * with the opcode beside them; FLDENV reads them back. */
static void test_real_mode_env(void)
{
	struct ct t;
	struct x86_cpu_config cfg = { .user_mode = false, .max_block_insns = 0 };
	t.mem = calloc(1, CT_MEM_SIZE);
	t.cpu = x86_cpu_new(&ct_mem_ops, &t, &cfg);
	CHECK(t.mem && t.cpu);
	if (!t.mem || !t.cpu)
		return;
	x86_get_state(t.cpu, &t.st);
	/* the power-up state: FCW 0040, every register +0.0 and non-empty */
	CHECK_EQ_U64(t.st.fx.fcw, 0x40);
	CHECK_EQ_U64(t.st.fx.fsw, 0);
	CHECK_EQ_U64(t.st.fx.ftw, 0xff);
	t.st.cr0 = 0x30; /* ET NE */
	for (unsigned s = 0; s < 6; s++) {
		t.st.seg[s].sel = (uint16_t)(CT_DATA >> 4);
		t.st.seg[s].base = CT_DATA;
		t.st.seg[s].limit = 0xffff;
		t.st.seg[s].attr = 0x93;
	}
	/* the executor fetches at RIP as a flat address for now: CS base 0 */
	t.st.seg[X86_CS].sel = 0;
	t.st.seg[X86_CS].base = 0;
	t.st.seg[X86_CS].attr = 0x9b;
	t.st.efer = 0;
	/* fninit; fld1; fld dword [bx+0x40]; fnstenv [bx]; o32 fnstenv [bx+0x20];
	 * o32 fnsave [bx+0x60]; fnstsw [bx+0xd0]; o32 fldenv [bx+0x20]; hlt (a
	 * system-mode CPU delivers INT3) */
	static const uint8_t code[] = { 0xdb, 0xe3, 0xd9, 0xe8, 0xd9, 0x47, 0x40, 0xd9, 0x37,
		0x66, 0xd9, 0x77, 0x20, 0x66, 0xdd, 0x77, 0x60, 0xdd, 0xbf, 0xd0, 0x00,
		0x66, 0xd9, 0x67, 0x20, 0xf4 };
	memcpy(t.mem + (CT_CODE - CT_BASE), code, sizeof(code));
	x86_invalidate_code(t.cpu, CT_CODE, sizeof(code));
	float two = 2.0f;
	uint8_t *d = t.mem + (CT_DATA - CT_BASE);
	memcpy(d + 0x40, &two, 4);
	memset(d + 0xd0, 0xff, 2);
	t.st.rip = CT_CODE;
	t.st.gpr[X86_RBX] = 0;
	x86_set_state(t.cpu, &t.st);
	x86_run(t.cpu, 1000, &t.exit);
	x86_get_state(t.cpu, &t.st);
	CHECK(t.exit.reason == X86_EXIT_HLT);
	if (t.exit.reason != X86_EXIT_HLT)
		fprintf(stderr, "  real mode: exit %d vector %d rip %llx\n", t.exit.reason, t.exit.vector, (unsigned long long)t.st.rip);
	uint64_t fip = CT_CODE + 4, fdp = CT_DATA + 0x40;
	/* 16-bit real-mode layout */
	CHECK_EQ_U64(d[0] | d[1] << 8, 0x37f);
	CHECK_EQ_U64(d[2] | d[3] << 8, 6u << 11);
	CHECK_EQ_U64(d[4] | d[5] << 8, 0x0fff);
	CHECK_EQ_U64(d[6] | d[7] << 8, fip & 0xffff);
	CHECK_EQ_U64(d[8] | d[9] << 8, ((fip >> 16) & 0xf) << 12 | 0x147);
	CHECK_EQ_U64(d[10] | d[11] << 8, fdp & 0xffff);
	CHECK_EQ_U64(d[12] | d[13] << 8, ((fdp >> 16) & 0xf) << 12);
	/* 32-bit real-mode layout */
	uint32_t e[7];
	memcpy(e, d + 0x20, 28);
	CHECK_EQ_U64(e[0], 0xffff037f);
	CHECK_EQ_U64(e[3], 0xffff0000 | (fip & 0xffff));
	CHECK_EQ_U64(e[4], (fip >> 16) << 12 | 0x147);
	CHECK_EQ_U64(e[5], 0xffff0000 | (fdp & 0xffff));
	CHECK_EQ_U64(e[6], (fdp >> 16) << 12);
	/* fnsave wrote the same header plus the registers, then reinitialised */
	CHECK(memcmp(d + 0x60, d + 0x20, 28) == 0);
	long double two_l = 2.0L;
	CHECK(memcmp(d + 0x60 + 28, &two_l, 10) == 0);
	CHECK_EQ_U64(d[0xd0] | d[0xd1] << 8, 0);
	/* fldenv restored pointers, opcode, tags and TOP */
	CHECK_EQ_U64(t.st.fx.fip, fip);
	CHECK_EQ_U64(t.st.fx.fdp, fdp);
	CHECK_EQ_U64(t.st.fx.fop, 0x147);
	CHECK_EQ_U64(t.st.fx.ftw, 0xc0);
	CHECK_EQ_U64(t.st.fx.fsw, 6u << 11);
	x86_cpu_free(t.cpu);
	free(t.mem);
}

/* With CR0.NE clear a pending unmasked exception raises no #MF (the
 * legacy FERR# path is not modelled; execution goes on as with IGNNE#):
 * the flags stay pending and later instructions still compute, and the
 * host never sees the pending exception (no SIGFPE). */
static void test_ne_clear(void)
{
	struct ct t;
	struct x86_cpu_config cfg = { .user_mode = false, .max_block_insns = 0 };
	t.mem = calloc(1, CT_MEM_SIZE);
	t.cpu = x86_cpu_new(&ct_mem_ops, &t, &cfg);
	CHECK(t.mem && t.cpu);
	if (!t.mem || !t.cpu)
		return;
	x86_get_state(t.cpu, &t.st);
	t.st.cr0 = 0x10; /* ET; NE clear */
	for (unsigned s = 0; s < 6; s++) {
		t.st.seg[s].base = s == X86_CS ? 0 : CT_DATA;
		t.st.seg[s].limit = 0xffff;
		t.st.seg[s].attr = s == X86_CS ? 0x9b : 0x93;
	}
	t.st.efer = 0;
	/* fninit; fldcw [bx] (ZE unmasked); fld1; fldz; fdivp (ZE pending);
	 * fld1; fadd st0, st0; fst dword [bx+4]; fwait; hlt */
	static const uint8_t code[] = { 0xdb, 0xe3, 0xd9, 0x2f, 0xd9, 0xe8, 0xd9, 0xee, 0xde, 0xf9,
		0xd9, 0xe8, 0xd8, 0xc0, 0xd9, 0x57, 0x04, 0x9b, 0xf4 };
	memcpy(t.mem + (CT_CODE - CT_BASE), code, sizeof(code));
	x86_invalidate_code(t.cpu, CT_CODE, sizeof(code));
	uint8_t *d = t.mem + (CT_DATA - CT_BASE);
	uint16_t cw = 0x37b;
	memcpy(d, &cw, 2);
	t.st.rip = CT_CODE;
	t.st.gpr[X86_RBX] = 0;
	x86_set_state(t.cpu, &t.st);
	x86_run(t.cpu, 1000, &t.exit);
	x86_get_state(t.cpu, &t.st);
	CHECK(t.exit.reason == X86_EXIT_HLT);
	float two = 2.0f;
	CHECK(memcmp(d + 4, &two, 4) == 0);
	CHECK_EQ_U64(t.st.fx.fsw & 0xc0ff, 0x8084); /* ZE pending: ES, B */
	CHECK_EQ_U64(top_of(&t), 5); /* the unmasked FDIVP did not pop */
	x86_cpu_free(t.cpu);
	free(t.mem);
}

int main(void)
{
	test_constants_and_arith();
	test_stack_faults();
	test_compare();
	test_int_bcd_store();
	test_env_and_pointers();
	test_nm_and_ud();
	test_differential();
	test_env_native();
	test_real_mode_env();
	test_ne_clear();
	TEST_MAIN_END();
}

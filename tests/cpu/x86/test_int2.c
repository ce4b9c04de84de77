/* Unit tests of the second integer family with expected values from the
 * SDM: string instructions (REP forms, DF, address size, overrides,
 * faults mid-way, overlap, self-modifying stores), #DE from DIV/IDIV,
 * BT* on memory with signed bit offsets and LOCK, BSF/TZCNT corners and
 * undefined encodings. */
#include "cpu_test.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static uint32_t arith(const struct ct *t)
{
	return (uint32_t)t->st.rflags & X86_ARITH_FLAGS;
}

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static uint64_t ld64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static void fill_rnd(uint8_t *p, size_t n)
{
	for (size_t k = 0; k < n; k++)
		p[k] = (uint8_t)rnd();
}

/* rep movs{b,q} forward over pages, with and without overlap, and the
 * reference of an element-by-element copy. */
static void test_rep_movs(void)
{
	struct ct t;
	ct_init(&t);
	static const uint8_t movsb[] = { 0xf3, 0xa4, 0xcc };
	static const uint8_t movsq[] = { 0xf3, 0x48, 0xa5, 0xcc };
	static const uint8_t movsw[] = { 0xf3, 0x66, 0xa5, 0xcc };
	static const struct { const uint8_t *code; size_t len; unsigned sz; } forms[] = {
		{ movsb, sizeof(movsb), 1 }, { movsq, sizeof(movsq), 8 }, { movsw, sizeof(movsw), 2 },
	};
	/* dst - src distances: apart, overlapping forwards and backwards */
	static const int64_t dist[] = { 20000, 1, 3, 8, 13, -1, -5, -8, 4096, -4095 };
	for (unsigned f = 0; f < ARRAY_SIZE(forms); f++) {
		for (unsigned k = 0; k < ARRAY_SIZE(dist); k++) {
			for (unsigned rep = 0; rep < 3; rep++) {
				uint64_t n = rep == 0 ? 0 : rep == 1 ? 7 : 1500 + (rnd() % 3000);
				uint64_t src = CT_DATA + 0x8000 + (rnd() % 4096);
				uint64_t dst = src + (uint64_t)dist[k];
				uint8_t *area = ct_data(&t, CT_DATA);
				fill_rnd(area, 0x20000);
				/* reference */
				static uint8_t ref[0x20000];
				memcpy(ref, area, sizeof(ref));
				unsigned sz = forms[f].sz;
				for (uint64_t e = 0; e < n; e++) {
					uint8_t tmp[8];
					memcpy(tmp, ref + (src - CT_DATA) + e * sz, sz);
					memcpy(ref + (dst - CT_DATA) + e * sz, tmp, sz);
				}
				t.st.gpr[X86_RSI] = src;
				t.st.gpr[X86_RDI] = dst;
				t.st.gpr[X86_RCX] = n;
				t.st.rflags = 2;
				CHECK(ct_run(&t, forms[f].code, forms[f].len) == 3);
				CHECK_EQ_U64(t.st.gpr[X86_RCX], 0);
				CHECK_EQ_U64(t.st.gpr[X86_RSI], src + n * sz);
				CHECK_EQ_U64(t.st.gpr[X86_RDI], dst + n * sz);
				CHECK(memcmp(area, ref, sizeof(ref)) == 0);
			}
		}
	}

	/* DF = 1: backwards, element by element */
	uint8_t *area = ct_data(&t, CT_DATA);
	for (unsigned k = 0; k < 64; k++)
		area[k] = (uint8_t)k;
	t.st.gpr[X86_RSI] = CT_DATA + 9;  /* copies bytes 9..0 to 19..10 */
	t.st.gpr[X86_RDI] = CT_DATA + 19;
	t.st.gpr[X86_RCX] = 10;
	t.st.rflags = 2 | X86_DF;
	CHECK(ct_run(&t, movsb, sizeof(movsb)) == 3);
	CHECK_EQ_U64(t.st.gpr[X86_RSI], CT_DATA - 1);
	CHECK_EQ_U64(t.st.gpr[X86_RDI], CT_DATA + 9);
	for (unsigned k = 0; k < 10; k++)
		CHECK_EQ_U64(area[10 + k], k);
	CHECK(t.st.rflags & X86_DF);

	/* without REP: one element; F2 repeats MOVS like F3 */
	static const uint8_t one[] = { 0x48, 0xa5, 0xcc };
	static const uint8_t f2rep[] = { 0xf2, 0xa4, 0xcc };
	t.st.rflags = 2;
	t.st.gpr[X86_RSI] = CT_DATA;
	t.st.gpr[X86_RDI] = CT_DATA + 0x100;
	t.st.gpr[X86_RCX] = 5;
	CHECK(ct_run(&t, one, sizeof(one)) == 3);
	CHECK_EQ_U64(t.st.gpr[X86_RCX], 5);
	CHECK_EQ_U64(t.st.gpr[X86_RSI], CT_DATA + 8);
	CHECK(memcmp(area, area + 0x100, 8) == 0);
	CHECK(ct_run(&t, f2rep, sizeof(f2rep)) == 3);
	CHECK_EQ_U64(t.st.gpr[X86_RCX], 0);
	CHECK_EQ_U64(t.st.gpr[X86_RSI], CT_DATA + 13);
	ct_fini(&t);
}

static void test_rep_stos_lods(void)
{
	struct ct t;
	ct_init(&t);
	uint8_t *area = ct_data(&t, CT_DATA);
	static const uint8_t stosb[] = { 0xf3, 0xaa, 0xcc };
	static const uint8_t stosd[] = { 0xf3, 0xab, 0xcc };
	static const uint8_t stosq[] = { 0xf3, 0x48, 0xab, 0xcc };
	static const struct { const uint8_t *c; size_t len; unsigned sz; } forms[] = {
		{ stosb, sizeof(stosb), 1 }, { stosd, sizeof(stosd), 4 }, { stosq, sizeof(stosq), 8 },
	};
	for (unsigned f = 0; f < ARRAY_SIZE(forms); f++) {
		for (unsigned df = 0; df < 2; df++) {
			memset(area, 0, 0x10000);
			uint64_t n = 2000 + rnd() % 1000, v = 0x1122334455667788ull;
			uint64_t dst = CT_DATA + 0x4000 + (rnd() % 64);
			unsigned sz = forms[f].sz;
			t.st.gpr[X86_RAX] = v;
			t.st.gpr[X86_RDI] = dst;
			t.st.gpr[X86_RCX] = n;
			t.st.rflags = 2 | (df ? X86_DF : 0);
			CHECK(ct_run(&t, forms[f].c, forms[f].len) == 3);
			int64_t step = df ? -(int64_t)sz : (int64_t)sz;
			CHECK_EQ_U64(t.st.gpr[X86_RDI], dst + (uint64_t)(step * (int64_t)n));
			CHECK_EQ_U64(t.st.gpr[X86_RCX], 0);
			uint64_t lo = df ? dst - (n - 1) * sz : dst, hi = lo + n * sz;
			bool ok = true;
			for (uint64_t a = CT_DATA; a < CT_DATA + 0x10000; a++) {
				uint8_t want = (a >= lo && a < hi) ? (uint8_t)(v >> (8 * ((a - lo) % sz))) : 0;
				if (area[a - CT_DATA] != want)
					ok = false;
			}
			CHECK(ok);
		}
	}

	/* lodsd zero-extends RAX; rep lodsb leaves the last byte */
	static const uint8_t lodsd[] = { 0xad, 0xcc };
	static const uint8_t replodsb[] = { 0xf3, 0xac, 0xcc };
	for (unsigned k = 0; k < 16; k++)
		area[k] = (uint8_t)(0xa0 + k);
	t.st.rflags = 2;
	t.st.gpr[X86_RAX] = ~0ull;
	t.st.gpr[X86_RSI] = CT_DATA;
	CHECK(ct_run(&t, lodsd, sizeof(lodsd)) == 3);
	CHECK_EQ_U64(t.st.gpr[X86_RAX], 0xa3a2a1a0);
	CHECK_EQ_U64(t.st.gpr[X86_RSI], CT_DATA + 4);
	t.st.gpr[X86_RCX] = 5;
	CHECK(ct_run(&t, replodsb, sizeof(replodsb)) == 3);
	CHECK_EQ_U64(t.st.gpr[X86_RAX], 0xa3a2a1a8);
	CHECK_EQ_U64(t.st.gpr[X86_RSI], CT_DATA + 9);

	/* a page-crossing element goes through the slow path */
	memset(area, 0, 0x3000);
	t.st.gpr[X86_RAX] = 0x0102030405060708ull;
	t.st.gpr[X86_RDI] = CT_DATA + 0x1000 - 4;
	t.st.gpr[X86_RCX] = 2;
	CHECK(ct_run(&t, stosq, sizeof(stosq)) == 3);
	CHECK_EQ_U64(ld64(area + 0x1000 - 4), 0x0102030405060708ull);
	CHECK_EQ_U64(ld64(area + 0x1000 + 4), 0x0102030405060708ull);
	CHECK_EQ_U64(t.st.gpr[X86_RDI], CT_DATA + 0x1000 + 12);
	ct_fini(&t);
}

static void test_cmps_scas(void)
{
	struct ct t;
	ct_init(&t);
	uint8_t *a = ct_data(&t, CT_DATA), *b = ct_data(&t, CT_DATA + 0x100);
	memcpy(a, "hello, world", 12);
	memcpy(b, "hello! world", 12);
	/* repe cmpsb stops after the mismatch at index 5: ',' (0x2c) - '!' (0x21) */
	static const uint8_t repe_cmpsb[] = { 0xf3, 0xa6, 0xcc };
	t.st.gpr[X86_RSI] = CT_DATA;
	t.st.gpr[X86_RDI] = CT_DATA + 0x100;
	t.st.gpr[X86_RCX] = 12;
	t.st.rflags = 2;
	CHECK(ct_run(&t, repe_cmpsb, sizeof(repe_cmpsb)) == 3);
	CHECK_EQ_U64(t.st.gpr[X86_RCX], 6);
	CHECK_EQ_U64(t.st.gpr[X86_RSI], CT_DATA + 6);
	CHECK_EQ_U64(t.st.gpr[X86_RDI], CT_DATA + 0x106);
	CHECK_EQ_U64(arith(&t), 0); /* 0x2c - 0x21 = 0x0b: no flags (PF: 3 bits) */
	/* all equal: runs out with ZF set */
	t.st.gpr[X86_RSI] = CT_DATA;
	t.st.gpr[X86_RDI] = CT_DATA + 0x100;
	t.st.gpr[X86_RCX] = 5;
	CHECK(ct_run(&t, repe_cmpsb, sizeof(repe_cmpsb)) == 3);
	CHECK_EQ_U64(t.st.gpr[X86_RCX], 0);
	CHECK_EQ_U64(arith(&t), X86_ZF | X86_PF);
	/* cmpsw: [rsi] - [rdi] */
	static const uint8_t cmpsw[] = { 0x66, 0xa7, 0xcc };
	*(uint16_t *)a = 5;
	*(uint16_t *)b = 7;
	t.st.gpr[X86_RSI] = CT_DATA;
	t.st.gpr[X86_RDI] = CT_DATA + 0x100;
	CHECK(ct_run(&t, cmpsw, sizeof(cmpsw)) == 3);
	CHECK_EQ_U64(arith(&t), X86_CF | X86_SF | X86_AF); /* 0xfffe */
	CHECK_EQ_U64(t.st.gpr[X86_RSI], CT_DATA + 2);

	/* repne scasb finds 'w' at index 7 of "hello, world" */
	memcpy(a, "hello, world", 12);
	static const uint8_t repne_scasb[] = { 0xf2, 0xae, 0xcc };
	t.st.gpr[X86_RAX] = 'w';
	t.st.gpr[X86_RDI] = CT_DATA;
	t.st.gpr[X86_RCX] = 100;
	CHECK(ct_run(&t, repne_scasb, sizeof(repne_scasb)) == 3);
	CHECK_EQ_U64(t.st.gpr[X86_RCX], 92);
	CHECK_EQ_U64(t.st.gpr[X86_RDI], CT_DATA + 8);
	CHECK(arith(&t) & X86_ZF);
	/* repe scasd with DF: skips equal dwords backwards */
	static const uint8_t repe_scasd[] = { 0xf3, 0xaf, 0xcc };
	uint32_t w[4] = { 9, 7, 7, 7 };
	memcpy(a, w, sizeof(w));
	t.st.gpr[X86_RAX] = 7;
	t.st.gpr[X86_RDI] = CT_DATA + 12;
	t.st.gpr[X86_RCX] = 10;
	t.st.rflags = 2 | X86_DF;
	CHECK(ct_run(&t, repe_scasd, sizeof(repe_scasd)) == 3);
	CHECK_EQ_U64(t.st.gpr[X86_RCX], 6);
	CHECK_EQ_U64(t.st.gpr[X86_RDI], CT_DATA - 4);
	CHECK(!(arith(&t) & X86_ZF));
	ct_fini(&t);
}

/* 67 prefix: ESI/EDI/ECX, written zero-extended; an FS override moves the
 * source only. */
static void test_addr_size_and_seg(void)
{
	struct ct t;
	ct_init(&t);
	uint8_t *area = ct_data(&t, CT_DATA);
	fill_rnd(area, 64);
	static const uint8_t a32_rep_movsb[] = { 0x67, 0xf3, 0xa4, 0xcc };
	t.st.gpr[X86_RSI] = (1ull << 33) | CT_DATA;
	t.st.gpr[X86_RDI] = (1ull << 34) | (CT_DATA + 0x100);
	t.st.gpr[X86_RCX] = (1ull << 35) | 3;
	t.st.rflags = 2;
	CHECK(ct_run(&t, a32_rep_movsb, sizeof(a32_rep_movsb)) == 3);
	CHECK_EQ_U64(t.st.gpr[X86_RSI], CT_DATA + 3);
	CHECK_EQ_U64(t.st.gpr[X86_RDI], CT_DATA + 0x103);
	CHECK_EQ_U64(t.st.gpr[X86_RCX], 0);
	CHECK(memcmp(area, area + 0x100, 3) == 0);
	/* ECX = 0: nothing happens, not even the zero-extension */
	t.st.gpr[X86_RSI] = (1ull << 33) | CT_DATA;
	t.st.gpr[X86_RCX] = 1ull << 35;
	CHECK(ct_run(&t, a32_rep_movsb, sizeof(a32_rep_movsb)) == 3);
	CHECK_EQ_U64(t.st.gpr[X86_RSI], (1ull << 33) | CT_DATA);
	CHECK_EQ_U64(t.st.gpr[X86_RCX], 1ull << 35);
	/* a 32-bit address wraps at 4 GiB: stosb at EDI = 0xffffffff with DF=0 */
	static const uint8_t a32_stosb[] = { 0x67, 0xaa, 0xcc };
	t.st.gpr[X86_RDI] = 0xffffffffull;
	CHECK(ct_run(&t, a32_stosb, sizeof(a32_stosb)) == 14); /* unmapped */
	CHECK_EQ_U64(t.exit.fault_addr, 0xffffffffull);
	/* fs: movsb reads fs:rsi, writes es:rdi */
	static const uint8_t fs_movsb[] = { 0x64, 0xa4, 0xcc };
	area[0x210] = 0x77;
	t.st.seg[X86_FS].base = CT_DATA + 0x200;
	t.st.gpr[X86_RSI] = 0x10;
	t.st.gpr[X86_RDI] = CT_DATA + 0x300;
	CHECK(ct_run(&t, fs_movsb, sizeof(fs_movsb)) == 3);
	CHECK_EQ_U64(area[0x300], 0x77);
	CHECK_EQ_U64(t.st.gpr[X86_RSI], 0x11);
	/* es/cs/ss/ds overrides mean nothing in 64-bit mode */
	static const uint8_t es_lodsb[] = { 0x26, 0xac, 0xcc };
	t.st.gpr[X86_RSI] = CT_DATA + 0x210;
	CHECK(ct_run(&t, es_lodsb, sizeof(es_lodsb)) == 3);
	CHECK_EQ_U64(t.st.gpr[X86_RAX] & 0xff, 0x77);
	ct_fini(&t);
}

/* A fault in the middle of a REP leaves the registers after the
 * iterations done and RIP at the instruction; running it again finishes
 * the job once the fault is gone. */
static void test_rep_fault(void)
{
	struct ct t;
	ct_init(&t);
	static const uint8_t code[] = { 0x90, 0xf3, 0xa4, 0xcc };
	uint64_t end = CT_BASE + CT_MEM_SIZE;
	uint8_t *area = ct_data(&t, CT_DATA);
	fill_rnd(area, 512);
	t.st.gpr[X86_RSI] = CT_DATA;
	t.st.gpr[X86_RDI] = end - 100;
	t.st.gpr[X86_RCX] = 300;
	t.st.rflags = 2;
	CHECK(ct_run(&t, code, sizeof(code)) == 14);
	CHECK_EQ_U64(t.exit.fault_addr, end);
	CHECK_EQ_U64(t.exit.error_code, 4 | 2); /* user, write, not present */
	CHECK_EQ_U64(t.st.rip, CT_CODE + 1);
	CHECK_EQ_U64(t.st.gpr[X86_RCX], 200);
	CHECK_EQ_U64(t.st.gpr[X86_RSI], CT_DATA + 100);
	CHECK_EQ_U64(t.st.gpr[X86_RDI], end);
	CHECK(memcmp(ct_data(&t, end - 100), area, 100) == 0);

	/* the source faulting, backwards, in the element loop (DF = 1):
	 * rep movsw from CT_BASE + 6 down: 4 words, then CT_BASE - 2 faults */
	static const uint8_t movsw[] = { 0xf3, 0x66, 0xa5, 0xcc };
	t.st.gpr[X86_RSI] = CT_BASE + 6;
	t.st.gpr[X86_RDI] = CT_DATA + 0x100;
	t.st.gpr[X86_RCX] = 10;
	t.st.rflags = 2 | X86_DF;
	CHECK(ct_run(&t, movsw, sizeof(movsw)) == 14);
	CHECK_EQ_U64(t.exit.fault_addr, CT_BASE - 2);
	CHECK_EQ_U64(t.st.gpr[X86_RCX], 6);
	CHECK_EQ_U64(t.st.gpr[X86_RSI], CT_BASE - 2);
	CHECK_EQ_U64(t.st.gpr[X86_RDI], CT_DATA + 0x100 - 8);
	CHECK_EQ_U64(t.st.rip, CT_CODE);

	/* the fault of repe cmpsq on its second operand */
	static const uint8_t cmpsq[] = { 0xf3, 0x48, 0xa7, 0xcc };
	memset(ct_data(&t, end - 16), 0, 16);
	memset(area, 0, 64);
	t.st.gpr[X86_RSI] = CT_DATA;
	t.st.gpr[X86_RDI] = end - 16;
	t.st.gpr[X86_RCX] = 4;
	t.st.rflags = 2;
	CHECK(ct_run(&t, cmpsq, sizeof(cmpsq)) == 14);
	CHECK_EQ_U64(t.st.gpr[X86_RCX], 2);
	CHECK_EQ_U64(t.st.gpr[X86_RDI], end);
	ct_fini(&t);
}

/* rep stosb over the instructions that follow it in the same block: they
 * run as stored (NOPs), not as decoded before. */
static void test_rep_smc(void)
{
	struct ct t;
	ct_init(&t);
	static const uint8_t code[] = {
		0xb9, 0x05, 0x00, 0x00, 0x00,             /* mov ecx, 5 */
		0x48, 0x8d, 0x3d, 0x03, 0x00, 0x00, 0x00, /* lea rdi, [rip + 3] */
		0xf3, 0xaa,                               /* rep stosb (al = 0x90) */
		0x90,                                     /* nop */
		0xb8, 0x01, 0x00, 0x00, 0x00,             /* mov eax, 1: overwritten from its 2nd byte */
		0xcc,
	};
	t.st.gpr[X86_RAX] = 0x90;
	t.st.rflags = 2;
	CHECK(ct_run(&t, code, sizeof(code)) == 3);
	/* rdi pointed at the mov, which became five NOPs */
	CHECK_EQ_U64(t.st.gpr[X86_RCX], 0);
	CHECK_EQ_U64(t.st.gpr[X86_RDI], CT_CODE + 20);
	CHECK_EQ_U64(t.st.gpr[X86_RAX], 0x90);
	ct_fini(&t);
}

static void test_div_faults(void)
{
	struct ct t;
	ct_init(&t);
	static const struct {
		uint8_t code[4];
		uint64_t rax, rdx, rbx;
	} cases[] = {
		{ { 0xf6, 0xf3, 0xcc }, 0x1234, 0, 0 },                            /* div bl, 0 */
		{ { 0xf6, 0xf3, 0xcc }, 0x1000, 0, 2 },                            /* 0x800 > 0xff */
		{ { 0xf6, 0xfb, 0xcc }, 0x8000, 0, 0xff },                         /* idiv bl: -32768/-1 */
		{ { 0xf6, 0xfb, 0xcc }, 0x0100, 0, 0x01 },                         /* 256 > 127 */
		{ { 0x66, 0xf7, 0xf3, 0xcc }, 0, 0x10, 0x10 },                     /* div bx */
		{ { 0x66, 0xf7, 0xfb, 0xcc }, 0x0000, 0x8000, 0xffff },            /* idiv bx: INT32_MIN/-1 */
		{ { 0xf7, 0xf3, 0xcc }, 0, 5, 5 },                                 /* div ebx */
		{ { 0xf7, 0xfb, 0xcc }, 0x80000000, 0xffffffff, 0xffffffff },      /* idiv ebx: INT_MIN/-1 */
		{ { 0xf7, 0xfb, 0xcc }, 0, 1, 2 },                                 /* 2^32/2 = 2^31 > INT_MAX */
		{ { 0x48, 0xf7, 0xf3, 0xcc }, 0, 7, 7 },                           /* div rbx */
		{ { 0x48, 0xf7, 0xf3, 0xcc }, 5, 0, 0 },                           /* div rbx, 0 */
		{ { 0x48, 0xf7, 0xfb, 0xcc }, 1ull << 63, ~0ull, ~0ull },          /* INT64_MIN/-1 */
		{ { 0x48, 0xf7, 0xfb, 0xcc }, 0, 1ull << 63, ~0ull },              /* -2^127/-1 */
		{ { 0x48, 0xf7, 0xfb, 0xcc }, 0, 1, 2 },                           /* 2^64/2 */
		{ { 0x48, 0xf7, 0xfb, 0xcc }, 0, 0, 0 },                           /* idiv by 0 */
	};
	for (unsigned k = 0; k < ARRAY_SIZE(cases); k++) {
		size_t len = cases[k].code[0] == 0xf6 || cases[k].code[0] == 0xf7 ? 3 : 4;
		t.st.gpr[X86_RAX] = cases[k].rax;
		t.st.gpr[X86_RDX] = cases[k].rdx;
		t.st.gpr[X86_RBX] = cases[k].rbx;
		t.st.rflags = 2 | X86_CF | X86_ZF;
		CHECK(ct_run(&t, cases[k].code, len) == X86_DE);
		CHECK_EQ_U64(t.st.rip, CT_CODE);
		CHECK_EQ_U64(t.st.gpr[X86_RAX], cases[k].rax);
		CHECK_EQ_U64(t.st.gpr[X86_RDX], cases[k].rdx);
		CHECK_EQ_U64(arith(&t), X86_CF | X86_ZF);
	}
	/* the largest quotients that still fit */
	static const uint8_t idiv64[] = { 0x48, 0xf7, 0xfb, 0xcc };
	t.st.gpr[X86_RDX] = ~0ull; /* rdx:rax = -2^64 */
	t.st.gpr[X86_RAX] = 0;
	t.st.gpr[X86_RBX] = 1ull << 32;
	CHECK(ct_run(&t, idiv64, sizeof(idiv64)) == 3);
	CHECK_EQ_U64(t.st.gpr[X86_RAX], (uint64_t)-(int64_t)(1ull << 32));
	CHECK_EQ_U64(t.st.gpr[X86_RDX], 0);
	t.st.gpr[X86_RDX] = ~0ull; /* -2^63 / 1 */
	t.st.gpr[X86_RAX] = 1ull << 63;
	t.st.gpr[X86_RBX] = 1;
	CHECK(ct_run(&t, idiv64, sizeof(idiv64)) == 3);
	CHECK_EQ_U64(t.st.gpr[X86_RAX], 1ull << 63);
	t.st.gpr[X86_RDX] = 0; /* 2^63 - 1 / -1 */
	t.st.gpr[X86_RAX] = (1ull << 63) - 1;
	t.st.gpr[X86_RBX] = ~0ull;
	CHECK(ct_run(&t, idiv64, sizeof(idiv64)) == 3);
	CHECK_EQ_U64(t.st.gpr[X86_RAX], (1ull << 63) + 1);
	CHECK_EQ_U64(t.st.gpr[X86_RDX], 0);
	/* div from memory faults before #DE is considered */
	static const uint8_t divm[] = { 0xf7, 0x34, 0x25, 0, 0, 0, 0, 0xcc };
	CHECK(ct_run(&t, divm, sizeof(divm)) == 14);
	CHECK_EQ_U64(t.exit.error_code, 4); /* a read */
	ct_fini(&t);
}

/* Bit offsets into memory: the reference is the bit string at ea. */
static void test_bt_mem(void)
{
	struct ct t;
	ct_init(&t);
	uint8_t *area = ct_data(&t, CT_DATA);
	static const uint8_t ops[4] = { 0xa3, 0xab, 0xb3, 0xbb };
	for (unsigned lock = 0; lock < 2; lock++) {
		for (unsigned op = 0; op < 4; op++) {
			for (unsigned lg = 1; lg < 4; lg++) {
				unsigned osz = 1u << lg;
				for (unsigned n = 0; n < 40; n++) {
					if (lock && op == 0)
						continue;
					int64_t off = (int64_t)(rnd() % 2000) - 1000;
					if (osz == 2 && n == 0)
						off = -32768;
					if (osz == 2 && n == 1)
						off = 32767;
					fill_rnd(area, 0x4000);
					static uint8_t before[0x4000];
					memcpy(before, area, sizeof(before));
					/* [lock] [66] [REX.W] 0F op 14 25 disp32 ; bt [disp32], edx */
					uint8_t code[16];
					size_t len = 0;
					if (lock)
						code[len++] = 0xf0;
					if (osz == 2)
						code[len++] = 0x66;
					if (osz == 8)
						code[len++] = 0x48;
					code[len++] = 0x0f;
					code[len++] = ops[op];
					code[len++] = 0x14;
					code[len++] = 0x25;
					uint32_t ea = (uint32_t)(CT_DATA + 0x2000);
					memcpy(code + len, &ea, 4);
					len += 4;
					code[len++] = 0xcc;
					/* the register's upper bits beyond the operand size do
					 * not count */
					uint64_t rdx = (uint64_t)off;
					if (osz == 2)
						rdx = (rnd() << 16) | (uint16_t)off;
					if (osz == 4)
						rdx = (rnd() << 32) | (uint32_t)off;
					t.st.gpr[X86_RDX] = rdx;
					t.st.rflags = 2 | X86_ZF;
					CHECK(ct_run(&t, code, len) == 3);
					int64_t bitaddr = 0x2000 * 8 + off;
					unsigned bit = (before[bitaddr >> 3] >> (bitaddr & 7)) & 1;
					CHECK_EQ_U64(arith(&t) & (X86_CF | X86_ZF), (bit ? X86_CF : 0) | X86_ZF);
					if (op == 1)
						before[bitaddr >> 3] |= (uint8_t)(1u << (bitaddr & 7));
					else if (op == 2)
						before[bitaddr >> 3] &= (uint8_t)~(1u << (bitaddr & 7));
					else if (op == 3)
						before[bitaddr >> 3] ^= (uint8_t)(1u << (bitaddr & 7));
					CHECK(memcmp(before, area, sizeof(before)) == 0);
				}
			}
		}
	}
	/* lock bts dword [mem], 33 (imm: modulo 32) */
	static const uint8_t lock_bts_imm[] = { 0xf0, 0x0f, 0xba, 0x2c, 0x25, 0, 0, 0x14, 0, 33, 0xcc };
	memset(area, 0, 8);
	CHECK(ct_run(&t, lock_bts_imm, sizeof(lock_bts_imm)) == 3);
	CHECK_EQ_U64(ld64(area), 2);
	CHECK(!(arith(&t) & X86_CF));
	CHECK(ct_run(&t, lock_bts_imm, sizeof(lock_bts_imm)) == 3);
	CHECK(arith(&t) & X86_CF);
	ct_fini(&t);
}

static void test_decode_corners(void)
{
	struct ct t;
	ct_init(&t);
	static const struct { uint8_t code[8]; size_t len; int vector; } ud[] = {
		{ { 0xf0, 0x0f, 0xa3, 0x10, 0xcc }, 5, X86_UD },       /* lock bt [rax], edx */
		{ { 0xf0, 0x0f, 0xab, 0xd0, 0xcc }, 5, X86_UD },       /* lock bts eax, edx */
		{ { 0xf0, 0xd1, 0x20, 0xcc }, 4, X86_UD },             /* lock shl dword [rax], 1 */
		{ { 0xf0, 0xa4, 0xcc }, 3, X86_UD },                   /* lock movsb */
		{ { 0xf0, 0xf7, 0x20, 0xcc }, 4, X86_UD },             /* lock mul dword [rax] */
		{ { 0x0f, 0xb8, 0xc0, 0xcc }, 4, X86_UD },             /* 0F B8 without F3 */
		{ { 0xf3, 0xf2, 0x0f, 0xb8, 0xc0, 0xcc }, 6, X86_UD }, /* F2 last */
		{ { 0x0f, 0xba, 0xe0, 0x01, 0xcc }, 5, 3 },            /* bt eax, 1 */
		{ { 0x0f, 0xba, 0xd8, 0x01, 0xcc }, 5, X86_UD },       /* 0F BA /3 */
		{ { 0x6c, 0xcc }, 2, X86_GP },                          /* insb */
		{ { 0xf3, 0x6f, 0xcc }, 3, X86_GP },                    /* rep outsd */
		{ { 0xf2, 0xf3, 0x0f, 0xb8, 0xc0, 0xcc }, 6, 3 },       /* F3 last: popcnt */
	};
	for (unsigned k = 0; k < ARRAY_SIZE(ud); k++) {
		t.st.gpr[X86_RAX] = CT_DATA;
		CHECK_EQ_U64(ct_run(&t, ud[k].code, ud[k].len), ud[k].vector);
	}

	/* shl ah, 1: the high byte register */
	static const uint8_t shl_ah[] = { 0xd0, 0xe4, 0xcc };
	t.st.gpr[X86_RAX] = 0x8155;
	t.st.rflags = 2;
	CHECK(ct_run(&t, shl_ah, sizeof(shl_ah)) == 3);
	CHECK_EQ_U64(t.st.gpr[X86_RAX], 0x0255);
	CHECK_EQ_U64(arith(&t) & (X86_CF | X86_OF | X86_ZF | X86_SF), X86_CF | X86_OF);

	/* F3 0F BC runs as BSF (no BMI1): a zero source leaves the destination
	 * and sets ZF; TZCNT would give 32 and CF */
	static const uint8_t tz[] = { 0xf3, 0x0f, 0xbc, 0xc3, 0xcc }; /* eax <- ebx */
	t.st.gpr[X86_RAX] = 0xdeadbeef12345678ull;
	t.st.gpr[X86_RBX] = 0;
	CHECK(ct_run(&t, tz, sizeof(tz)) == 3);
	CHECK_EQ_U64(t.st.gpr[X86_RAX], 0xdeadbeef12345678ull);
	CHECK(arith(&t) & X86_ZF);
	t.st.gpr[X86_RBX] = 0x80;
	CHECK(ct_run(&t, tz, sizeof(tz)) == 3);
	CHECK_EQ_U64(t.st.gpr[X86_RAX], 7);
	CHECK(!(arith(&t) & X86_ZF));

	/* CPUID: POPCNT and ABM (LZCNT) advertised, BMI1 not */
	uint32_t r[4];
	x86_cpuid(t.cpu, 1, 0, r);
	CHECK(r[2] & (1u << 23));
	x86_cpuid(t.cpu, 0x80000001, 0, r);
	CHECK(r[2] & (1u << 5));
	x86_cpuid(t.cpu, 7, 0, r);
	CHECK(!(r[1] & (1u << 3)));

	/* a shift of memory by 0 does not write, but still reads (and faults) */
	static const uint8_t shl0[] = { 0xc1, 0x24, 0x25, 0, 0, 0, 0, 0, 0xcc };
	CHECK(ct_run(&t, shl0, sizeof(shl0)) == 14);
	CHECK_EQ_U64(t.exit.error_code, 4 | 2); /* reported as a write */
	/* so does every read-modify-write form; BT only reads */
	static const uint8_t rmw_faults[][16] = {
		{ 8, 0xd1, 0x24, 0x25, 0, 0, 0, 0 },             /* shl dword [0], 1 */
		{ 9, 0x0f, 0xa4, 0x04, 0x25, 0, 0, 0, 0, 3 },    /* shld [0], eax, 3 */
		{ 8, 0x0f, 0xab, 0x04, 0x25, 0, 0, 0, 0 },       /* bts [0], eax */
		{ 9, 0x0f, 0xba, 0x34, 0x25, 0, 0, 0, 0, 1 },    /* btr [0], 1 */
		{ 9, 0xf0, 0x0f, 0xbb, 0x04, 0x25, 0, 0, 0, 0 }, /* lock btc [0], eax */
	};
	for (unsigned k = 0; k < ARRAY_SIZE(rmw_faults); k++) {
		uint8_t c[16];
		memcpy(c, rmw_faults[k] + 1, rmw_faults[k][0]);
		c[rmw_faults[k][0]] = 0xcc;
		t.st.gpr[X86_RAX] = 0;
		CHECK(ct_run(&t, c, rmw_faults[k][0] + 1u) == 14);
		CHECK_EQ_U64(t.exit.error_code, 4 | 2);
	}
	static const uint8_t bt_fault[] = { 0x0f, 0xa3, 0x04, 0x25, 0, 0, 0, 0, 0xcc };
	CHECK(ct_run(&t, bt_fault, sizeof(bt_fault)) == 14);
	CHECK_EQ_U64(t.exit.error_code, 4);
	/* 32-bit register shift by CL = 0: flags kept, the register zero-extended */
	static const uint8_t shl_cl[] = { 0xd3, 0xe0, 0xcc };
	t.st.gpr[X86_RAX] = 0xffffffff00000001ull;
	t.st.gpr[X86_RCX] = 0x20;
	t.st.rflags = 2 | X86_CF | X86_OF | X86_SF;
	CHECK(ct_run(&t, shl_cl, sizeof(shl_cl)) == 3);
	CHECK_EQ_U64(t.st.gpr[X86_RAX], 1);
	CHECK_EQ_U64(arith(&t), X86_CF | X86_OF | X86_SF);
	ct_fini(&t);
}

/* SUB flags of a - b at sz bytes. */
static uint32_t sub_flags(uint64_t a, uint64_t b, unsigned sz)
{
	unsigned bits = sz * 8;
	uint64_t m = sz == 8 ? ~0ull : (1ull << bits) - 1, r = (a - b) & m;
	uint32_t f = 0;
	f |= a < b ? X86_CF : 0;
	f |= r == 0 ? X86_ZF : 0;
	f |= (r >> (bits - 1)) & 1 ? X86_SF : 0;
	f |= (((a ^ b) & (a ^ r)) >> (bits - 1)) & 1 ? X86_OF : 0;
	f |= (a ^ b ^ r) & 0x10;
	f |= __builtin_parity((unsigned)(r & 0xff)) ? 0 : X86_PF;
	return f;
}

/* Reference model of a REP string instruction, one element at a time, on
 * the bytes mem[] that start at guest address CT_DATA.  r: RSI RDI RCX
 * RAX.  Returns the flags (or flags_in when no element was compared). */
static uint32_t ref_string(uint8_t *mem, unsigned op, unsigned sz, bool repne, bool df,
			   uint64_t *r, uint32_t flags_in)
{
	int64_t st = df ? -(int64_t)sz : (int64_t)sz;
	uint32_t f = flags_in;
	while (r[2]) {
		uint64_t a = 0, b = 0;
		uint8_t *s = mem + (r[0] - CT_DATA), *d = mem + (r[1] - CT_DATA);
		switch (op) {
		case 0: memcpy(&a, s, sz); memcpy(d, &a, sz); break;
		case 1: memcpy(&a, s, sz); memcpy(&b, d, sz); break;
		case 2: memcpy(d, &r[3], sz); break;
		case 3: memcpy(&a, s, sz); if (sz == 4) r[3] = 0; memcpy(&r[3], &a, sz); break;
		default: memcpy(&a, &r[3], sz); memcpy(&b, d, sz); break;
		}
		if (op == 0 || op == 1 || op == 3)
			r[0] += (uint64_t)st;
		if (op != 3)
			r[1] += (uint64_t)st;
		r[2]--;
		if (op == 1 || op == 4) {
			f = sub_flags(a, b, sz);
			if (repne ? a == b : a != b)
				break;
		}
	}
	return f;
}

/* The page-chunk paths against a reference model, with 64-bit and with
 * 32-bit addressing (67 prefix; the harness memory lies below 4 GiB): all
 * operations, sizes, directions and repeat prefixes, random data with
 * long equal runs so that REPE/REPNE stop at varied places. */
static void test_fast_vs_element(void)
{
	struct ct t;
	ct_init(&t);
	static const uint8_t ops[5] = { 0xa4, 0xa6, 0xaa, 0xac, 0xae };
	static uint8_t init[0x30000], after_fast[0x30000];
	uint8_t *area = ct_data(&t, CT_DATA);
	for (unsigned op = 0; op < 5; op++) {
		for (unsigned lg = 0; lg < 4; lg++) {
			unsigned sz = 1u << lg;
			for (unsigned n = 0; n < 24; n++) {
				bool df = n & 1;
				uint8_t rep = (n & 2) ? 0xf2 : 0xf3;
				/* data: a byte pattern with rare differences */
				uint8_t fillb = (uint8_t)rnd();
				memset(init, fillb, sizeof(init));
				unsigned ndiff = (unsigned)(rnd() % 4);
				for (unsigned k = 0; k < ndiff; k++)
					init[rnd() % sizeof(init)] ^= (uint8_t)(1 + rnd() % 255);
				if (n % 3 == 0)
					fill_rnd(init, sizeof(init));
				uint64_t cnt = rnd() % 4 ? rnd() % 6000 : rnd() % 40;
				uint64_t src = CT_DATA + 0xc000 + rnd() % 0x4000;
				uint64_t dst = n % 5 == 0 ? src + (rnd() % 64) - 32 : CT_DATA + 0x1c000 + rnd() % 0x4000;
				uint64_t rax = 0x0101010101010101ull * fillb;
				if (n % 4 == 3)
					rax ^= 1;
				uint64_t regs_fast[4], regs_elem[4];
				uint32_t fl_fast = 0, fl_elem = 0;
				for (unsigned pass = 0; pass < 2; pass++) {
					uint8_t code[8];
					size_t len = 0;
					if (pass)
						code[len++] = 0x67;
					code[len++] = rep;
					if (sz == 2)
						code[len++] = 0x66;
					if (sz == 8)
						code[len++] = 0x48;
					code[len++] = (uint8_t)(ops[op] | (sz > 1));
					code[len++] = 0xcc;
					memcpy(area, init, sizeof(init));
					t.st.gpr[X86_RSI] = src;
					t.st.gpr[X86_RDI] = dst;
					t.st.gpr[X86_RCX] = cnt;
					t.st.gpr[X86_RAX] = rax;
					t.st.rflags = 2 | (df ? X86_DF : 0);
					CHECK(ct_run(&t, code, len) == 3);
					uint64_t *r = pass ? regs_elem : regs_fast;
					r[0] = t.st.gpr[X86_RSI];
					r[1] = t.st.gpr[X86_RDI];
					r[2] = t.st.gpr[X86_RCX];
					r[3] = t.st.gpr[X86_RAX];
					*(pass ? &fl_elem : &fl_fast) = arith(&t);
					if (!pass)
						memcpy(after_fast, area, sizeof(after_fast));
				}
				CHECK(memcmp(regs_fast, regs_elem, sizeof(regs_fast)) == 0);
				CHECK_EQ_U64(fl_fast, fl_elem);
				CHECK(memcmp(after_fast, area, sizeof(after_fast)) == 0);
				/* the reference model */
				uint64_t rr[4] = { src, dst, cnt, rax };
				uint32_t fl_ref = ref_string(init, op, sz, rep == 0xf2, df, rr, 0);
				CHECK(memcmp(regs_fast, rr, sizeof(rr)) == 0);
				CHECK_EQ_U64(fl_fast, fl_ref);
				CHECK(memcmp(after_fast, init, sizeof(init)) == 0);
			}
		}
	}
	ct_fini(&t);
}

/* A system-mode CPU in real mode (16-bit code and addresses) or flat
 * 32-bit protected mode, code at CT_CODE, ending with HLT. */
static void ct_init_legacy(struct ct *t, bool pm32)
{
	struct x86_cpu_config cfg = { .user_mode = false };
	t->mem = calloc(1, CT_MEM_SIZE);
	t->cpu = x86_cpu_new(&ct_mem_ops, t, &cfg);
	if (!t->mem || !t->cpu)
		abort();
	x86_get_state(t->cpu, &t->st);
	t->st.efer = 0;
	t->st.cr0 = pm32 ? 0x11 : 0x10; /* PE (32-bit) | ET */
	for (unsigned s = 0; s < 6; s++) {
		t->st.seg[s].sel = 0;
		t->st.seg[s].limit = pm32 ? 0xffffffff : 0xffff;
		t->st.seg[s].attr = (uint16_t)((s == X86_CS ? 0x9b : 0x93) | (pm32 ? 0xc00 : 0));
		t->st.seg[s].base = 0;
	}
}

static int ct_run_legacy(struct ct *t, const uint8_t *code, size_t len)
{
	/* code at CT_CODE = CS.base, so IP/EIP starts at 0 */
	memcpy(t->mem + (CT_CODE - CT_BASE), code, len);
	x86_invalidate_code(t->cpu, CT_CODE, len);
	t->st.rip = t->st.seg[X86_CS].base == CT_CODE ? 0 : CT_CODE;
	x86_set_state(t->cpu, &t->st);
	x86_run(t->cpu, 100000000, &t->exit);
	x86_get_state(t->cpu, &t->st);
	/* a fresh CPU for the next run: this one stays halted */
	struct x86_cpu_config cfg = { .user_mode = false };
	x86_cpu_free(t->cpu);
	t->cpu = x86_cpu_new(&ct_mem_ops, t, &cfg);
	if (!t->cpu)
		abort();
	return t->exit.reason == X86_EXIT_HLT ? 0 : -1;
}

/* 16-bit addressing: SI/DI/CX, 16-bit wrap-around inside the segment, the
 * upper halves of ESI/EDI/ECX kept; 32-bit code with a 67 prefix too. */
static void test_legacy_modes(void)
{
	struct ct t;
	ct_init_legacy(&t, false);
	/* real mode: CS base = CT_CODE, DS = ES base = CT_DATA */
	t.st.seg[X86_CS].base = CT_CODE;
	t.st.seg[X86_DS].base = CT_DATA;
	t.st.seg[X86_ES].base = CT_DATA + 0x20000;
	uint8_t *ds = ct_data(&t, CT_DATA), *es = ct_data(&t, CT_DATA + 0x20000);
	ds[0xffff] = 0x11;
	ds[0] = 0x22;
	ds[1] = 0x33;
	static const uint8_t rep_movsb[] = { 0xf3, 0xa4, 0xf4 };
	t.st.gpr[X86_RSI] = 0x1234ffff;
	t.st.gpr[X86_RDI] = 0xabcdfffe;
	t.st.gpr[X86_RCX] = 0x55550003;
	t.st.rflags = 2;
	CHECK(ct_run_legacy(&t, rep_movsb, sizeof(rep_movsb)) == 0);
	CHECK_EQ_U64(t.st.gpr[X86_RSI], 0x12340002);
	CHECK_EQ_U64(t.st.gpr[X86_RDI], 0xabcd0001);
	CHECK_EQ_U64(t.st.gpr[X86_RCX], 0x55550000);
	CHECK_EQ_U64(es[0xfffe], 0x11);
	CHECK_EQ_U64(es[0xffff], 0x22);
	CHECK_EQ_U64(es[0], 0x33);
	/* a 32-bit operand size: rep movsd backwards (DF = 1) from SI = FFFC */
	static const uint8_t rep_movsd_back[] = { 0x66, 0xf3, 0xa5, 0xf4 };
	memcpy(ds + 0xfff8, "\x01\x02\x03\x04\xaa\xbb\xcc\xdd", 8);
	t.st.gpr[X86_RSI] = 0xfffc;
	t.st.gpr[X86_RDI] = 0x104;
	t.st.gpr[X86_RCX] = 2;
	t.st.rflags = 2 | X86_DF;
	CHECK(ct_run_legacy(&t, rep_movsd_back, sizeof(rep_movsd_back)) == 0);
	CHECK_EQ_U64(t.st.gpr[X86_RSI], 0xfff4);
	CHECK_EQ_U64(t.st.gpr[X86_RDI], 0xfc);
	CHECK(memcmp(es + 0x100, "\x01\x02\x03\x04\xaa\xbb\xcc\xdd", 8) == 0);
	/* a 16-bit shift, SHLD and BT in 16-bit code */
	static const uint8_t alu16[] = {
		0xd1, 0xe0,             /* shl ax, 1 */
		0x0f, 0xa4, 0xd8, 0x04, /* shld ax, bx, 4 */
		0x0f, 0xa3, 0xc8,       /* bt ax, cx */
		0xf4,
	};
	t.st.gpr[X86_RAX] = 0xffff8421;
	t.st.gpr[X86_RBX] = 0xf000;
	t.st.gpr[X86_RCX] = 3;
	t.st.rflags = 2;
	CHECK(ct_run_legacy(&t, alu16, sizeof(alu16)) == 0);
	CHECK_EQ_U64(t.st.gpr[X86_RAX], 0xffff842f); /* 0x0842 << 4 | 0xf */
	CHECK(t.st.rflags & X86_CF); /* bit 3 of 0x842f */
	ct_fini(&t);

	/* flat 32-bit protected mode: a 67 prefix gives 16-bit addresses */
	ct_init_legacy(&t, true);
	uint8_t *m = ct_data(&t, CT_DATA);
	static const uint8_t stos[] = {
		0xf3, 0xab,       /* rep stosd: EDI, ECX */
		0x67, 0xf3, 0xaa, /* a16 rep stosb: DI, CX */
		0xf4,
	};
	t.st.gpr[X86_RAX] = 0x44434241;
	t.st.gpr[X86_RDI] = CT_DATA;
	t.st.gpr[X86_RCX] = 2;
	t.st.rflags = 2;
	CHECK(ct_run_legacy(&t, stos, sizeof(stos)) == 0);
	CHECK(memcmp(m, "ABCDABCD", 8) == 0);
	CHECK_EQ_U64(t.st.gpr[X86_RDI], CT_DATA + 8);
	CHECK_EQ_U64(t.st.gpr[X86_RCX], 0);
	/* a16 with CX = 0 (upper ECX bits set): nothing happens */
	static const uint8_t a16_stosb[] = { 0x67, 0xf3, 0xaa, 0xf4 };
	t.st.gpr[X86_RDI] = 0xfffe;
	t.st.gpr[X86_RCX] = 0x10000;
	CHECK(ct_run_legacy(&t, a16_stosb, sizeof(a16_stosb)) == 0);
	CHECK_EQ_U64(t.st.gpr[X86_RDI], 0xfffe);
	CHECK_EQ_U64(t.st.gpr[X86_RCX], 0x10000);
	/* a16 from DI = FFFE: the offset wraps to 0 (ES base = CT_DATA) */
	t.st.gpr[X86_RDI] = 0x7777fffe;
	t.st.gpr[X86_RCX] = 3;
	t.st.seg[X86_ES].base = CT_DATA;
	memset(m, 0, 0x10000);
	CHECK(ct_run_legacy(&t, a16_stosb, sizeof(a16_stosb)) == 0);
	CHECK_EQ_U64(t.st.gpr[X86_RDI], 0x77770001);
	CHECK_EQ_U64(m[0xfffe], 0x41);
	CHECK_EQ_U64(m[0xffff], 0x41);
	CHECK_EQ_U64(m[0], 0x41);
	ct_fini(&t);
}

int main(void)
{
	test_legacy_modes();
	test_fast_vs_element();
	test_rep_movs();
	test_rep_stos_lods();
	test_cmps_scas();
	test_addr_size_and_seg();
	test_rep_fault();
	test_rep_smc();
	test_div_faults();
	test_bt_mem();
	test_decode_corners();
	TEST_MAIN_END();
}

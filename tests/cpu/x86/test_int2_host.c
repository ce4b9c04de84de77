/* Tests of the second integer family against the host CPU: shifts and
 * rotates, SHLD/SHRD, MUL/IMUL/DIV/IDIV, BT*, BSF/BSR/LZCNT/POPCNT run on
 * random operands both natively and on the software CPU, comparing every
 * general register and the flags the SDM defines for the case.  Register
 * forms are also rerun with the r/m operand in guest memory, which must
 * give the same result there. */
#include "cpu_test.h"
#include "int2_native.h"

#include <stdio.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static struct ct T;
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static int mismatches_printed;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

/* A random operand with a bias toward edge values. */
static uint64_t rnd_val(void)
{
	switch (rnd() % 8) {
	case 0: return 0;
	case 1: return ~0ull;
	case 2: return 1ull << (rnd() % 64);
	case 3: return (rnd() % 2 ? 0x8000000000000000ull : 0x80000000ull) + (rnd() % 3) - 1;
	case 4: return rnd() & 0xff;
	default: return rnd();
	}
}

static uint64_t x86_zext_test(uint64_t v, unsigned osz)
{
	return osz == 8 ? v : v & ((1ull << (osz * 8)) - 1);
}

struct enc {
	uint8_t b[24];
	unsigned n;
	int modrm_at; /* offset of the ModRM byte */
};

/* Builds [66] [REX] opcode... ModRM(mod 3) [imm]. */
static struct enc make(unsigned osz, unsigned rex_extra, const uint8_t *op, unsigned nop,
		       unsigned reg, unsigned rm, uint64_t imm, unsigned immlen)
{
	struct enc e = { .n = 0 };
	unsigned rex = rex_extra | (osz == 8 ? 0x48 : 0) | (reg >= 8 ? 0x44 : 0) | (rm >= 8 ? 0x41 : 0);
	if (osz == 2)
		e.b[e.n++] = 0x66;
	if (rex)
		e.b[e.n++] = (uint8_t)(rex | 0x40);
	for (unsigned k = 0; k < nop; k++)
		e.b[e.n++] = op[k];
	e.modrm_at = (int)e.n;
	e.b[e.n++] = (uint8_t)(0xc0 | (reg & 7) << 3 | (rm & 7));
	for (unsigned k = 0; k < immlen; k++)
		e.b[e.n++] = (uint8_t)(imm >> (8 * k));
	return e;
}

/* The same instruction with r/m = [CT_DATA] (absolute, through a SIB). */
static struct enc to_mem(const struct enc *r)
{
	struct enc m = { .n = 0 };
	for (int k = 0; k < r->modrm_at; k++) {
		uint8_t b = r->b[k];
		if ((b & 0xf0) == 0x40)
			b &= (uint8_t)~1; /* a REX prefix: no REX.B with a SIB */
		m.b[m.n++] = b;
	}
	m.modrm_at = (int)m.n;
	m.b[m.n++] = (uint8_t)((r->b[r->modrm_at] & 0x38) | 0x04);
	m.b[m.n++] = 0x25;
	uint32_t d = (uint32_t)CT_DATA;
	memcpy(m.b + m.n, &d, 4);
	m.n += 4;
	for (unsigned k = (unsigned)r->modrm_at + 1; k < r->n; k++)
		m.b[m.n++] = r->b[k];
	return m;
}

static int cpu_exec(const struct enc *e, const uint64_t *regs, uint32_t flags)
{
	uint8_t code[32];
	memcpy(code, e->b, e->n);
	code[e->n] = 0xcc;
	for (unsigned r = 0; r < 16; r++)
		if (r != X86_RSP)
			T.st.gpr[r] = regs[r];
	T.st.gpr[X86_RSP] = CT_STACK_TOP - 64;
	T.st.rflags = (flags & 0x8d5) | 2;
	return ct_run(&T, code, e->n + 1);
}

static void report(const char *what, const struct enc *e, const uint64_t *in, uint32_t fin,
		   const char *detail, uint64_t got, uint64_t want)
{
	if (mismatches_printed++ > 20)
		return;
	fprintf(stderr, "%s: bytes", what);
	for (unsigned k = 0; k < e->n; k++)
		fprintf(stderr, " %02x", e->b[k]);
	fprintf(stderr, " flags_in=%03x rax=%016llx rbx=%016llx rcx=%016llx rdx=%016llx: %s got %016llx want %016llx\n",
		fin, (unsigned long long)in[0], (unsigned long long)in[3], (unsigned long long)in[1],
		(unsigned long long)in[2], detail, (unsigned long long)got, (unsigned long long)want);
}

/*
 * Runs e natively and on the CPU with registers in[] and flags fin and
 * compares registers and the flags in fmask.  rm_reg >= 0: also runs the
 * memory form with the operand (osz bytes) of that register in memory;
 * rm_is_dst: the instruction writes its r/m operand.
 */
static void compare(const char *what, const struct enc *e, const uint64_t *in, uint32_t fin,
		    uint32_t fmask, int rm_reg, unsigned osz, bool rm_is_dst)
{
	struct nat_state ns;
	memcpy(ns.r, in, sizeof(ns.r));
	ns.flags = fin;
	if (nat_run(e->b, e->n, &ns) < 0) {
		CHECK(!"no executable memory for the host oracle");
		return;
	}
	int v = cpu_exec(e, in, fin);
	CHECK(v == 3);
	if (v != 3) {
		report(what, e, in, fin, "exception", (uint64_t)v, 3);
		return;
	}
	bool ok = true;
	for (unsigned r = 0; r < 16; r++) {
		if (r == X86_RSP || T.st.gpr[r] == ns.r[r])
			continue;
		ok = false;
		char d[16];
		snprintf(d, sizeof(d), "reg %u", r);
		report(what, e, in, fin, d, T.st.gpr[r], ns.r[r]);
	}
	if (((uint32_t)T.st.rflags & fmask) != ((uint32_t)ns.flags & fmask)) {
		ok = false;
		report(what, e, in, fin, "flags", T.st.rflags & fmask, ns.flags & fmask);
	}
	CHECK(ok);
	if (rm_reg < 0)
		return;

	/* Memory form. */
	struct enc m = to_mem(e);
	uint8_t *data = ct_data(&T, CT_DATA);
	memset(data, 0x5a, 16);
	memcpy(data, &in[rm_reg], osz);
	v = cpu_exec(&m, in, fin);
	CHECK(v == 3);
	if (v != 3) {
		report(what, &m, in, fin, "exception (memory form)", (uint64_t)v, 3);
		return;
	}
	ok = true;
	for (unsigned r = 0; r < 16; r++) {
		uint64_t want = (int)r == rm_reg ? in[r] : ns.r[r];
		if (r == X86_RSP || T.st.gpr[r] == want)
			continue;
		ok = false;
		report(what, &m, in, fin, "reg (memory form)", T.st.gpr[r], want);
	}
	uint64_t got = 0, want = rm_is_dst ? ns.r[rm_reg] : in[rm_reg];
	memcpy(&got, data, osz);
	want = x86_zext_test(want, osz);
	if (got != want || data[osz] != 0x5a) {
		ok = false;
		report(what, &m, in, fin, "memory", got, want);
	}
	if (((uint32_t)T.st.rflags & fmask) != ((uint32_t)ns.flags & fmask)) {
		ok = false;
		report(what, &m, in, fin, "flags (memory form)", T.st.rflags & fmask, ns.flags & fmask);
	}
	CHECK(ok);
}

static void rnd_regs(uint64_t *r)
{
	for (unsigned k = 0; k < 16; k++)
		r[k] = rnd_val();
}

static unsigned rnd_count(void)
{
	static const unsigned edge[] = { 0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255 };
	return rnd() % 2 ? edge[rnd() % 16] : (unsigned)(rnd() & 0xff);
}

/* A register for r/m that is none of RAX RCX RDX RSP (byte forms: BL). */
static unsigned rnd_rm(unsigned osz)
{
	static const unsigned pick[] = { 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
	return osz == 1 ? X86_RBX : pick[rnd() % 12];
}

#define ALLF 0x8d5u

static void test_shifts(void)
{
	static const char *names[8] = { "rol", "ror", "rcl", "rcr", "shl", "shr", "sal", "sar" };
	for (unsigned op = 0; op < 8; op++) {
		for (unsigned lg = 0; lg < 4; lg++) {
			unsigned osz = 1u << lg, bits = osz * 8;
			for (unsigned form = 0; form < 3; form++) {
				for (unsigned n = 0; n < 150; n++) {
					uint64_t in[16];
					rnd_regs(in);
					uint32_t fin = (uint32_t)rnd() & ALLF;
					unsigned cnt = rnd_count();
					uint8_t opc;
					unsigned immlen = 0;
					switch (form) {
					case 0: opc = osz == 1 ? 0xd0 : 0xd1; cnt = 1; break;
					case 1: opc = osz == 1 ? 0xd2 : 0xd3; in[X86_RCX] = (in[X86_RCX] & ~0xffull) | cnt; break;
					default: opc = osz == 1 ? 0xc0 : 0xc1; immlen = 1; break;
					}
					unsigned rm = rnd_rm(osz);
					struct enc e = make(osz, 0, &opc, 1, op, rm, cnt, immlen);
					unsigned mc = cnt & (osz == 8 ? 63 : 31);
					uint32_t fm;
					if (mc == 0) {
						fm = ALLF;
					} else if (op <= 3) { /* rotates: CF, OF at 1, the rest kept */
						fm = (ALLF & ~X86_OF) | (mc == 1 ? X86_OF : 0);
						if ((op == 2 && osz == 1 && mc % 9 == 0) || (op == 2 && osz == 2 && mc % 17 == 0) ||
						    (op == 3 && osz == 1 && mc % 9 == 0) || (op == 3 && osz == 2 && mc % 17 == 0))
							fm &= ~X86_OF;
					} else {
						fm = X86_CF | X86_SF | X86_ZF | X86_PF | (mc == 1 ? X86_OF : 0);
						if ((op == 4 || op == 5 || op == 6) && mc >= bits)
							fm &= ~X86_CF;
					}
					char what[32];
					snprintf(what, sizeof(what), "%s/%u form %u", names[op], osz, form);
					compare(what, &e, in, fin, fm, (int)rm, osz, true);
				}
			}
		}
	}
}

static void test_shld_shrd(void)
{
	for (unsigned right = 0; right < 2; right++) {
		for (unsigned lg = 1; lg < 4; lg++) {
			unsigned osz = 1u << lg, bits = osz * 8;
			for (unsigned cl = 0; cl < 2; cl++) {
				for (unsigned n = 0; n < 200; n++) {
					uint64_t in[16];
					rnd_regs(in);
					uint32_t fin = (uint32_t)rnd() & ALLF;
					unsigned cnt = rnd_count();
					unsigned mc = cnt & (osz == 8 ? 63 : 31);
					if (mc > bits)
						continue; /* undefined: see test_shd16_intel() */
					uint8_t opc[2] = { 0x0f, (uint8_t)((right ? 0xac : 0xa4) | cl) };
					unsigned rm = rnd_rm(osz), reg = rnd_rm(osz);
					if (cl)
						in[X86_RCX] = (in[X86_RCX] & ~0xffull) | cnt;
					struct enc e = make(osz, 0, opc, 2, reg, rm, cnt, cl ? 0 : 1);
					uint32_t fm = mc == 0 ? ALLF : X86_CF | X86_SF | X86_ZF | X86_PF | (mc == 1 ? X86_OF : 0);
					compare(right ? "shrd" : "shld", &e, in, fin, fm, reg == rm ? -1 : (int)rm, osz, true);
				}
			}
		}
	}
}

/* 16-bit SHLD/SHRD with counts above 16: the Intel result (a shift of the
 * 48-bit dest:src:dest), which AMD parts do not share. */
static void test_shd16_intel(void)
{
	static const struct { uint8_t op, cnt; uint16_t want; } cases[] = {
		{ 0xa4, 17, 0xacf0 }, { 0xa4, 20, 0x6781 }, { 0xa4, 31, 0x091a },
		{ 0xac, 17, 0x2b3c }, { 0xac, 20, 0x4567 }, { 0xac, 31, 0x2468 },
		{ 0xa4, 16, 0x5678 }, { 0xac, 16, 0x5678 },
	};
	for (unsigned k = 0; k < ARRAY_SIZE(cases); k++) {
		/* shld/shrd ax, bx, imm8 */
		uint8_t code[] = { 0x66, 0x0f, cases[k].op, 0xd8, cases[k].cnt, 0xcc };
		T.st.gpr[X86_RAX] = 0x1234;
		T.st.gpr[X86_RBX] = 0x5678;
		CHECK(ct_run(&T, code, sizeof(code)) == 3);
		CHECK_EQ_U64(T.st.gpr[X86_RAX], cases[k].want);
	}
}

static void test_muldiv(void)
{
	static const char *names[4] = { "mul", "imul", "div", "idiv" };
	for (unsigned op = 0; op < 4; op++) {
		for (unsigned lg = 0; lg < 4; lg++) {
			unsigned osz = 1u << lg, bits = osz * 8;
			uint64_t m = osz == 8 ? ~0ull : (1ull << bits) - 1;
			for (unsigned n = 0; n < 300; n++) {
				uint64_t in[16];
				rnd_regs(in);
				unsigned rm = rnd_rm(osz);
				uint64_t d = in[rm] & m;
				if (op >= 2) { /* keep the quotient in range: no #DE natively */
					if (d == 0)
						d = 1 + (rnd() & 0x7f);
					if (op == 3 && (d == m))
						d = 3; /* -1 */
					in[rm] = (in[rm] & ~m) | d;
					if (osz == 1) {
						uint64_t ax = op == 2 ? ((rnd() % d) << 8 | (rnd() & 0xff)) :
							(uint64_t)(int64_t)(int8_t)in[X86_RAX] & 0xffff;
						in[X86_RAX] = (in[X86_RAX] & ~0xffffull) | ax;
					} else if (op == 2) {
						in[X86_RDX] = (in[X86_RDX] & ~m) | (in[X86_RDX] % d);
					} else {
						bool neg = (in[X86_RAX] >> (bits - 1)) & 1;
						in[X86_RDX] = (in[X86_RDX] & ~m) | (neg ? m : 0);
					}
				}
				uint8_t opc = osz == 1 ? 0xf6 : 0xf7;
				struct enc e = make(osz, 0, &opc, 1, 4 + op, rm, 0, 0);
				uint32_t fin = (uint32_t)rnd() & ALLF;
				compare(names[op], &e, in, fin, op < 2 ? (X86_CF | X86_OF) : 0, (int)rm, osz, false);
			}
		}
	}
	/* IMUL r, r/m; r, r/m, imm32; r, r/m, imm8 */
	for (unsigned form = 0; form < 3; form++) {
		for (unsigned lg = 1; lg < 4; lg++) {
			unsigned osz = 1u << lg;
			for (unsigned n = 0; n < 300; n++) {
				uint64_t in[16];
				rnd_regs(in);
				unsigned rm = rnd_rm(osz), reg = rnd_rm(osz);
				static const uint8_t af[2] = { 0x0f, 0xaf }, o69 = 0x69, o6b = 0x6b;
				struct enc e;
				uint64_t imm = rnd_val();
				if (form == 0)
					e = make(osz, 0, af, 2, reg, rm, 0, 0);
				else if (form == 1)
					e = make(osz, 0, &o69, 1, reg, rm, imm, osz == 2 ? 2 : 4);
				else
					e = make(osz, 0, &o6b, 1, reg, rm, imm, 1);
				uint32_t fin = (uint32_t)rnd() & ALLF;
				compare("imul2/3", &e, in, fin, X86_CF | X86_OF, reg == rm ? -1 : (int)rm, osz, false);
			}
		}
	}
}

static void test_bitops_host(void)
{
	/* BT BTS BTR BTC r/m, r and r/m, imm8: register forms. */
	for (unsigned op = 0; op < 4; op++) {
		for (unsigned lg = 1; lg < 4; lg++) {
			unsigned osz = 1u << lg;
			for (unsigned n = 0; n < 200; n++) {
				uint64_t in[16];
				rnd_regs(in);
				unsigned rm = rnd_rm(osz), reg = rnd_rm(osz);
				uint32_t fin = (uint32_t)rnd() & ALLF;
				struct enc e;
				bool imm = n & 1;
				if (imm) {
					static const uint8_t ba[2] = { 0x0f, 0xba };
					e = make(osz, 0, ba, 2, 4 + op, rm, rnd() & 0xff, 1);
				} else {
					uint8_t o[2] = { 0x0f, (uint8_t)(0xa3 | op << 3) };
					e = make(osz, 0, o, 2, reg, rm, 0, 0);
				}
				compare("bt", &e, in, fin, X86_CF | X86_ZF, imm ? (int)rm : -1, osz, op != 0);
			}
		}
	}
	/* BSF BSR LZCNT POPCNT */
	static const struct { uint8_t pfx, op; uint32_t fm; const char *name; } k[] = {
		{ 0, 0xbc, X86_ZF, "bsf" }, { 0, 0xbd, X86_ZF, "bsr" },
		{ 0xf3, 0xbd, X86_CF | X86_ZF, "lzcnt" }, { 0xf3, 0xb8, ALLF, "popcnt" },
	};
	for (unsigned j = 0; j < ARRAY_SIZE(k); j++) {
		for (unsigned lg = 1; lg < 4; lg++) {
			unsigned osz = 1u << lg;
			for (unsigned n = 0; n < 200; n++) {
				uint64_t in[16];
				rnd_regs(in);
				unsigned rm = rnd_rm(osz), reg = rnd_rm(osz);
				uint32_t fin = (uint32_t)rnd() & ALLF;
				uint8_t o[2] = { 0x0f, k[j].op };
				struct enc e = make(osz, 0, o, 2, reg, rm, 0, 0);
				if (k[j].pfx) { /* the mandatory prefix goes first */
					memmove(e.b + 1, e.b, e.n);
					e.b[0] = k[j].pfx;
					e.n++;
					e.modrm_at++;
				}
				if (n % 4 == 0)
					in[rm] &= ~((osz == 8 ? ~0ull : (1ull << osz * 8) - 1)); /* zero source */
				compare(k[j].name, &e, in, fin, k[j].fm, reg == rm ? -1 : (int)rm, osz, false);
			}
		}
	}
}

int main(void)
{
	ct_init_ex(&T, 0);
	test_shifts();
	test_shld_shrd();
	test_shd16_intel();
	test_muldiv();
	test_bitops_host();
	ct_fini(&T);
	TEST_MAIN_END();
}

/* Unit tests of the SSSE3 / SSE4.1 / SSE4.2 family of the software CPU.
 *
 * Most checks are differential: each instruction form runs on the software
 * CPU and natively on the host (from a small stub generated into an
 * executable page), from the same random register, flag, MXCSR and memory
 * state, and everything they can change is compared: xmm0-xmm3, mm1-mm2
 * when MMX is advertised, RAX RCX RDX RBX, the arithmetic flags, MXCSR, the
 * 64 bytes of memory the operand points into, and which exception was
 * raised.  A few fixed cases check values derived from the SDM. */
#include "cpu_test.h"

#include <cpuid.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <ucontext.h>

/* --- random state ------------------------------------------------------------ */

static uint64_t rng_state = 0x5eed5eed12345678ull;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

/* The state both sides start from and end in.  The layout is known to the
 * native stub (offsets in comments). */
struct nstate {
	uint8_t x[16][16];     /* 0: xmm0-xmm15 (mm1 = low half of x[1], mm2 of x[2]) */
	uint64_t gpr[8];       /* 256: rax rcx rdx rbx r8 r9 r10 r11 */
	uint64_t flags;        /* 320 */
	uint32_t mxcsr;        /* 328 */
	uint32_t host_mxcsr;   /* 332 */
	uint8_t pad[48];       /* 336 */
	uint8_t mem[64];       /* 384: [rsi] */
	int vector;            /* -1: none, else the exception vector */
} __attribute__((aligned(16)));

#define OFF_GPR 256
#define OFF_FLAGS 320
#define OFF_MXCSR 328
#define OFF_HOST_MXCSR 332
#define OFF_MEM 384
static const unsigned gpr_num[8] = { 0, 1, 2, 3, 8, 9, 10, 11 };

/* --- native execution -------------------------------------------------------- */

static uint8_t *stub;
static sigjmp_buf native_jmp;
static volatile int native_sig;
static volatile uint32_t native_fault_mxcsr;

static void on_signal(int sig, siginfo_t *si, void *ctx)
{
	ucontext_t *uc = ctx;
	(void)si;
	native_sig = sig;
	native_fault_mxcsr = uc->uc_mcontext.fpregs ? uc->uc_mcontext.fpregs->mxcsr : 0;
	siglongjmp(native_jmp, 1);
}

/* Emits [prefix] [rex] opcode bytes, then ModRM reg, [rdi + disp32]. */
static size_t emit_rdi(size_t n, int pfx, unsigned rex, const uint8_t *op, size_t oplen,
		       unsigned reg, uint32_t disp)
{
	if (pfx >= 0)
		stub[n++] = (uint8_t)pfx;
	rex |= (reg & 8) ? 0x44 : 0;
	if (rex)
		stub[n++] = (uint8_t)rex;
	memcpy(stub + n, op, oplen);
	n += oplen;
	stub[n++] = (uint8_t)(0x80 | (reg & 7) << 3 | 7);
	memcpy(stub + n, &disp, 4);
	return n + 4;
}

static const uint8_t OP_MOVDQU_LD[] = { 0x0f, 0x6f }, OP_MOVDQU_ST[] = { 0x0f, 0x7f };
static const uint8_t OP_MOV_LD[] = { 0x8b }, OP_MOV_ST[] = { 0x89 };
static const uint8_t OP_LDMXCSR[] = { 0x0f, 0xae }, OP_PUSH[] = { 0xff }, OP_POP[] = { 0x8f };

/* Generates: load the state at rdi, run insn, store the state back. */
static void build_stub(const uint8_t *insn, size_t len, bool mmx)
{
	size_t n = 0;
	stub[n++] = 0x53; /* push rbx */
	n = emit_rdi(n, -1, 0, OP_LDMXCSR, 2, 3, OFF_HOST_MXCSR); /* stmxcsr */
	for (unsigned r = 0; r < 16; r++)
		n = emit_rdi(n, 0xf3, 0, OP_MOVDQU_LD, 2, r, 16 * r);
	if (mmx) {
		n = emit_rdi(n, -1, 0, OP_MOVDQU_LD, 2, 1, 16); /* movq mm1 */
		n = emit_rdi(n, -1, 0, OP_MOVDQU_LD, 2, 2, 32); /* movq mm2 */
	}
	for (unsigned r = 0; r < 8; r++)
		n = emit_rdi(n, -1, 0x48, OP_MOV_LD, 1, gpr_num[r], OFF_GPR + 8 * r);
	static const uint8_t lea_rsi[] = { 0x48, 0x8d, 0xb7, OFF_MEM & 0xff, OFF_MEM >> 8, 0, 0 };
	memcpy(stub + n, lea_rsi, sizeof(lea_rsi));
	n += sizeof(lea_rsi);
	n = emit_rdi(n, -1, 0, OP_LDMXCSR, 2, 2, OFF_MXCSR);
	n = emit_rdi(n, -1, 0, OP_PUSH, 1, 6, OFF_FLAGS);
	stub[n++] = 0x9d; /* popfq */
	memcpy(stub + n, insn, len);
	n += len;
	stub[n++] = 0x9c; /* pushfq */
	n = emit_rdi(n, -1, 0, OP_POP, 1, 0, OFF_FLAGS);
	n = emit_rdi(n, -1, 0, OP_LDMXCSR, 2, 3, OFF_MXCSR);
	for (unsigned r = 0; r < 8; r++)
		n = emit_rdi(n, -1, 0x48, OP_MOV_ST, 1, gpr_num[r], OFF_GPR + 8 * r);
	for (unsigned r = 0; r < 16; r++)
		n = emit_rdi(n, 0xf3, 0, OP_MOVDQU_ST, 2, r, 16 * r);
	if (mmx) {
		n = emit_rdi(n, -1, 0, OP_MOVDQU_ST, 2, 1, 16); /* movq [], mm1 */
		n = emit_rdi(n, -1, 0, OP_MOVDQU_ST, 2, 2, 32);
		stub[n++] = 0x0f; /* emms */
		stub[n++] = 0x77;
	}
	n = emit_rdi(n, -1, 0, OP_LDMXCSR, 2, 2, OFF_HOST_MXCSR);
	stub[n++] = 0x5b; /* pop rbx */
	stub[n++] = 0xc3;
}

static void run_native(struct nstate *s, const uint8_t *insn, size_t len, bool mmx)
{
	build_stub(insn, len, mmx);
	void (*fn)(struct nstate *) = (void (*)(struct nstate *))(uintptr_t)stub;
	s->vector = -1;
	native_sig = 0;
	if (sigsetjmp(native_jmp, 1) == 0) {
		fn(s);
		return;
	}
	switch (native_sig) {
	case SIGILL: s->vector = X86_UD; break;
	case SIGFPE: s->vector = X86_XM; s->mxcsr = native_fault_mxcsr; break;
	case SIGSEGV: case SIGBUS: s->vector = X86_GP; break;
	default: s->vector = 255; break;
	}
	if (mmx)
		__asm__ volatile("emms");
}

/* --- emulated execution --------------------------------------------------- */

static void run_emulated(struct ct *t, struct nstate *s, const uint8_t *insn, size_t len, bool mmx)
{
	uint8_t code[32];
	memcpy(code, insn, len);
	code[len] = 0xcc;
	struct x86_state *st = &t->st;
	memcpy(st->fx.xmm, s->x, sizeof(s->x));
	if (mmx) {
		/* mm1/mm2 as FXSAVE images: TOP 0, all tags valid */
		memset(st->fx.st, 0, sizeof(st->fx.st));
		memcpy(st->fx.st[1], s->x[1], 8);
		memcpy(st->fx.st[2], s->x[2], 8);
		st->fx.st[1][8] = st->fx.st[1][9] = 0xff;
		st->fx.st[2][8] = st->fx.st[2][9] = 0xff;
		st->fx.fsw = 0;
		st->fx.ftw = 0xff;
	}
	for (unsigned r = 0; r < 8; r++)
		st->gpr[gpr_num[r]] = s->gpr[r];
	st->gpr[X86_RSI] = CT_DATA;
	st->rflags = s->flags;
	st->fx.mxcsr = s->mxcsr;
	memcpy(ct_data(t, CT_DATA), s->mem, sizeof(s->mem));
	int v = ct_run(t, code, len + 1);
	s->vector = v == 3 ? -1 : v;
	if (s->vector != -1) {
		s->mxcsr = st->fx.mxcsr;
		return;
	}
	memcpy(s->x, st->fx.xmm, sizeof(s->x));
	if (mmx) {
		memcpy(s->x[1], st->fx.st[1], 8);
		memcpy(s->x[2], st->fx.st[2], 8);
	}
	for (unsigned r = 0; r < 8; r++)
		s->gpr[r] = st->gpr[gpr_num[r]];
	s->flags = st->rflags;
	s->mxcsr = st->fx.mxcsr;
	memcpy(s->mem, ct_data(t, CT_DATA), sizeof(s->mem));
}

/* --- instruction templates ------------------------------------------------- */

enum { K_INT, K_FPS, K_FPD, K_STR, K_GPR };
enum { F_MEMONLY = 1, F_MMX = 2, F_IMM = 4, F_BYTE = 8 };

struct tmpl {
	const char *name;
	uint8_t pfx[3];  /* prefixes before 0F (0 = none) */
	uint8_t map;     /* 2: 0F 38, 3: 0F 3A */
	uint8_t opc;
	uint8_t kind;
	uint8_t flags;
};

#define P66 { 0x66 }
#define P66W { 0x66, 0x48 }
static const struct tmpl tmpls[] = {
	{ "pshufb", P66, 2, 0x00, K_INT, 0 }, { "phaddw", P66, 2, 0x01, K_INT, 0 },
	{ "phaddd", P66, 2, 0x02, K_INT, 0 }, { "phaddsw", P66, 2, 0x03, K_INT, 0 },
	{ "pmaddubsw", P66, 2, 0x04, K_INT, 0 }, { "phsubw", P66, 2, 0x05, K_INT, 0 },
	{ "phsubd", P66, 2, 0x06, K_INT, 0 }, { "phsubsw", P66, 2, 0x07, K_INT, 0 },
	{ "psignb", P66, 2, 0x08, K_INT, 0 }, { "psignw", P66, 2, 0x09, K_INT, 0 },
	{ "psignd", P66, 2, 0x0a, K_INT, 0 }, { "pmulhrsw", P66, 2, 0x0b, K_INT, 0 },
	{ "pblendvb", P66, 2, 0x10, K_INT, 0 }, { "blendvps", P66, 2, 0x14, K_INT, 0 },
	{ "blendvpd", P66, 2, 0x15, K_INT, 0 }, { "ptest", P66, 2, 0x17, K_INT, 0 },
	{ "pabsb", P66, 2, 0x1c, K_INT, 0 }, { "pabsw", P66, 2, 0x1d, K_INT, 0 },
	{ "pabsd", P66, 2, 0x1e, K_INT, 0 },
	{ "pmovsxbw", P66, 2, 0x20, K_INT, 0 }, { "pmovsxbd", P66, 2, 0x21, K_INT, 0 },
	{ "pmovsxbq", P66, 2, 0x22, K_INT, 0 }, { "pmovsxwd", P66, 2, 0x23, K_INT, 0 },
	{ "pmovsxwq", P66, 2, 0x24, K_INT, 0 }, { "pmovsxdq", P66, 2, 0x25, K_INT, 0 },
	{ "pmuldq", P66, 2, 0x28, K_INT, 0 }, { "pcmpeqq", P66, 2, 0x29, K_INT, 0 },
	{ "movntdqa", P66, 2, 0x2a, K_INT, F_MEMONLY }, { "packusdw", P66, 2, 0x2b, K_INT, 0 },
	{ "pmovzxbw", P66, 2, 0x30, K_INT, 0 }, { "pmovzxbd", P66, 2, 0x31, K_INT, 0 },
	{ "pmovzxbq", P66, 2, 0x32, K_INT, 0 }, { "pmovzxwd", P66, 2, 0x33, K_INT, 0 },
	{ "pmovzxwq", P66, 2, 0x34, K_INT, 0 }, { "pmovzxdq", P66, 2, 0x35, K_INT, 0 },
	{ "pcmpgtq", P66, 2, 0x37, K_INT, 0 },
	{ "pminsb", P66, 2, 0x38, K_INT, 0 }, { "pminsd", P66, 2, 0x39, K_INT, 0 },
	{ "pminuw", P66, 2, 0x3a, K_INT, 0 }, { "pminud", P66, 2, 0x3b, K_INT, 0 },
	{ "pmaxsb", P66, 2, 0x3c, K_INT, 0 }, { "pmaxsd", P66, 2, 0x3d, K_INT, 0 },
	{ "pmaxuw", P66, 2, 0x3e, K_INT, 0 }, { "pmaxud", P66, 2, 0x3f, K_INT, 0 },
	{ "pmulld", P66, 2, 0x40, K_INT, 0 }, { "phminposuw", P66, 2, 0x41, K_INT, 0 },
	/* MMX forms of SSSE3 */
	{ "pshufb mm", { 0 }, 2, 0x00, K_INT, F_MMX }, { "phaddw mm", { 0 }, 2, 0x01, K_INT, F_MMX },
	{ "phaddd mm", { 0 }, 2, 0x02, K_INT, F_MMX }, { "phaddsw mm", { 0 }, 2, 0x03, K_INT, F_MMX },
	{ "pmaddubsw mm", { 0 }, 2, 0x04, K_INT, F_MMX }, { "phsubw mm", { 0 }, 2, 0x05, K_INT, F_MMX },
	{ "phsubd mm", { 0 }, 2, 0x06, K_INT, F_MMX }, { "phsubsw mm", { 0 }, 2, 0x07, K_INT, F_MMX },
	{ "psignb mm", { 0 }, 2, 0x08, K_INT, F_MMX }, { "psignw mm", { 0 }, 2, 0x09, K_INT, F_MMX },
	{ "psignd mm", { 0 }, 2, 0x0a, K_INT, F_MMX }, { "pmulhrsw mm", { 0 }, 2, 0x0b, K_INT, F_MMX },
	{ "pabsb mm", { 0 }, 2, 0x1c, K_INT, F_MMX }, { "pabsw mm", { 0 }, 2, 0x1d, K_INT, F_MMX },
	{ "pabsd mm", { 0 }, 2, 0x1e, K_INT, F_MMX },
	{ "palignr mm", { 0 }, 3, 0x0f, K_INT, F_MMX | F_IMM },
	/* 0F 3A */
	{ "roundps", P66, 3, 0x08, K_FPS, F_IMM }, { "roundpd", P66, 3, 0x09, K_FPD, F_IMM },
	{ "roundss", P66, 3, 0x0a, K_FPS, F_IMM }, { "roundsd", P66, 3, 0x0b, K_FPD, F_IMM },
	{ "blendps", P66, 3, 0x0c, K_INT, F_IMM }, { "blendpd", P66, 3, 0x0d, K_INT, F_IMM },
	{ "pblendw", P66, 3, 0x0e, K_INT, F_IMM }, { "palignr", P66, 3, 0x0f, K_INT, F_IMM },
	{ "pextrb", P66, 3, 0x14, K_GPR, F_IMM }, { "pextrw", P66, 3, 0x15, K_GPR, F_IMM },
	{ "pextrd", P66, 3, 0x16, K_GPR, F_IMM }, { "pextrq", P66W, 3, 0x16, K_GPR, F_IMM },
	{ "extractps", P66, 3, 0x17, K_GPR, F_IMM }, { "extractps w", P66W, 3, 0x17, K_GPR, F_IMM },
	{ "pinsrb", P66, 3, 0x20, K_GPR, F_IMM }, { "insertps", P66, 3, 0x21, K_INT, F_IMM },
	{ "pinsrd", P66, 3, 0x22, K_GPR, F_IMM }, { "pinsrq", P66W, 3, 0x22, K_GPR, F_IMM },
	{ "dpps", P66, 3, 0x40, K_FPS, F_IMM }, { "dppd", P66, 3, 0x41, K_FPD, F_IMM },
	{ "mpsadbw", P66, 3, 0x42, K_INT, F_IMM },
	{ "pcmpestrm", P66, 3, 0x60, K_STR, F_IMM }, { "pcmpestri", P66, 3, 0x61, K_STR, F_IMM },
	{ "pcmpistrm", P66, 3, 0x62, K_STR, F_IMM }, { "pcmpistri", P66, 3, 0x63, K_STR, F_IMM },
	{ "pcmpestrm w", P66W, 3, 0x60, K_STR, F_IMM }, { "pcmpestri w", P66W, 3, 0x61, K_STR, F_IMM },
	/* CRC32 and MOVBE */
	{ "crc32 r8", { 0xf2 }, 2, 0xf0, K_GPR, F_BYTE }, { "crc32 r32", { 0xf2 }, 2, 0xf1, K_GPR, 0 },
	{ "crc32 r16", { 0x66, 0xf2 }, 2, 0xf1, K_GPR, 0 }, { "crc32 r16'", { 0xf2, 0x66 }, 2, 0xf1, K_GPR, 0 },
	{ "crc32 r64", { 0xf2, 0x48 }, 2, 0xf1, K_GPR, 0 }, { "crc32 r64,r8", { 0xf2, 0x48 }, 2, 0xf0, K_GPR, 0 },
	{ "crc32 rex r8", { 0xf2, 0x40 }, 2, 0xf0, K_GPR, 0 },
	{ "movbe load", { 0 }, 2, 0xf0, K_GPR, F_MEMONLY }, { "movbe store", { 0 }, 2, 0xf1, K_GPR, F_MEMONLY },
	{ "movbe load16", P66, 2, 0xf0, K_GPR, F_MEMONLY }, { "movbe store16", P66, 2, 0xf1, K_GPR, F_MEMONLY },
	{ "movbe load64", { 0x48 }, 2, 0xf0, K_GPR, F_MEMONLY }, { "movbe store64", { 0x48 }, 2, 0xf1, K_GPR, F_MEMONLY },
	/* prefix variants that must be #UD (or, on the host, whatever it does) */
	{ "pshufb f2 66", { 0xf2, 0x66 }, 2, 0x00, K_INT, 0 }, { "pshufb 66 f3", { 0x66, 0xf3 }, 2, 0x00, K_INT, 0 },
	{ "ptest f3", { 0xf3 }, 2, 0x17, K_INT, 0 }, { "pmulld np", { 0 }, 2, 0x40, K_INT, 0 },
	{ "blendps np", { 0 }, 3, 0x0c, K_INT, F_IMM }, { "pcmpistri f2", { 0x66, 0xf2 }, 3, 0x63, K_STR, F_IMM },
	{ "crc32 f3", { 0xf3 }, 2, 0xf0, K_GPR, 0 },
};

static const uint32_t f32_special[] = {
	0x00000000, 0x80000000, 0x3f800000, 0xbf800000, 0x3fc00000, 0x40200000, 0xc0200000,
	0x3f000000, 0xbf000000, 0x00000001, 0x807fffff, 0x00800000, 0x7f7fffff, 0xff7fffff,
	0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001, 0x7f800001, 0xff812345, 0x4b000001,
	0x4effffff, 0x5f000000, 0x1e3ce508, 0x0d000000, 0x3eaaaaab, 0x7149f2ca, 0x4f000000,
};
static const uint64_t f64_special[] = {
	0, 0x8000000000000000ull, 0x3ff0000000000000ull, 0xbff0000000000000ull,
	0x3ff8000000000000ull, 0x4004000000000000ull, 0xc004000000000000ull,
	0x3fe0000000000000ull, 0x0000000000000001ull, 0x800fffffffffffffull,
	0x0010000000000000ull, 0x7fefffffffffffffull, 0x7ff0000000000000ull,
	0xfff0000000000000ull, 0x7ff8000000000000ull, 0x7ff0000000000001ull,
	0xfff4000000000000ull, 0x4330000000000001ull, 0x43e0000000000000ull,
	0x1ff0000000000000ull, 0x2000000000000000ull, 0x3fd5555555555555ull,
	0x5ff0000000000000ull, 0x6000000000000000ull,
};

static void fill_vec(uint8_t *v, unsigned kind)
{
	for (unsigned k = 0; k < 16; k += 4) {
		uint32_t r = (uint32_t)rnd();
		memcpy(v + k, &r, 4);
	}
	switch (kind) {
	case K_FPS:
		for (unsigned k = 0; k < 4; k++)
			if (rnd() % 4) {
				uint32_t f = f32_special[rnd() % (sizeof(f32_special) / 4)];
				if (rnd() % 4 == 0) /* random nearby value */
					f = (f & 0xff800000u) | ((uint32_t)rnd() & 0x7fffff);
				memcpy(v + 4 * k, &f, 4);
			}
		break;
	case K_FPD:
		for (unsigned k = 0; k < 2; k++)
			if (rnd() % 4) {
				uint64_t f = f64_special[rnd() % (sizeof(f64_special) / 8)];
				if (rnd() % 4 == 0)
					f = (f & 0xfff0000000000000ull) | (rnd() & 0xfffffffffffffull);
				memcpy(v + 8 * k, &f, 8);
			}
		break;
	case K_STR: {
		static const uint8_t alpha[] = { 0, 'a', 'b', 'c', 'z', 0x80, 0xff, 0x7f };
		unsigned mode = (unsigned)(rnd() % 3);
		for (unsigned k = 0; k < 16; k++)
			if (mode == 0 || (mode == 1 && rnd() % 2))
				v[k] = alpha[rnd() % 8];
			else if (mode == 2)
				v[k] = alpha[1 + rnd() % 7];
		if (rnd() % 3 == 0) /* words made of alphabet letters */
			for (unsigned k = 1; k < 16; k += 2)
				v[k] = (rnd() % 2) ? 0 : v[k];
		break;
	}
	default:
		if (rnd() % 4 == 0) /* small / extreme values */
			for (unsigned k = 0; k < 16; k++)
				v[k] = (uint8_t[]){ 0, 1, 0x7f, 0x80, 0xff, 0xfe, 2, 0x81 }[rnd() % 8];
		break;
	}
}

static uint64_t str_len_val(void)
{
	switch (rnd() % 6) {
	case 0: return rnd();
	case 1: return (uint64_t)(int64_t)(int32_t)(0x80000000u + (uint32_t)(rnd() % 3));
	case 2: return 0x8000000000000000ull + rnd() % 3;
	case 3: return (uint64_t)-(int64_t)(rnd() % 20);
	case 4: return 0xffffffff00000000ull | (rnd() % 20);
	default: return rnd() % 20;
	}
}

static void random_state(struct nstate *s, const struct tmpl *tp)
{
	memset(s, 0, sizeof(*s));
	for (unsigned k = 0; k < 16; k++)
		fill_vec(s->x[k], tp->kind);
	for (unsigned k = 0; k < 64; k += 16)
		fill_vec(s->mem + k, tp->kind);
	for (unsigned k = 0; k < 8; k++)
		s->gpr[k] = rnd();
	if (tp->kind == K_STR) {
		s->gpr[0] = str_len_val();
		s->gpr[2] = str_len_val();
	}
	s->flags = (rnd() & X86_ARITH_FLAGS) | 2;
	s->mxcsr = 0x1f80;
	if (tp->kind == K_FPS || tp->kind == K_FPD) {
		s->mxcsr = (uint32_t)(rnd() & 0xe03f) | 0x1f80; /* FZ RC DAZ? flags */
		s->mxcsr |= (uint32_t)(rnd() & 0x40);           /* DAZ */
		if (rnd() % 3 == 0)
			s->mxcsr &= ~(uint32_t)(rnd() & 0x1f80); /* some unmasked */
	}
}

static int mismatches;

static bool compare(const struct tmpl *tp, const uint8_t *insn, size_t len,
		    const struct nstate *in, const struct nstate *n, const struct nstate *e)
{
	bool ok = n->vector == e->vector && n->mxcsr == e->mxcsr;
	if (ok && n->vector == -1)
		ok = !memcmp(n->x, e->x, sizeof(n->x)) && !memcmp(n->gpr, e->gpr, sizeof(n->gpr)) &&
		     ((n->flags ^ e->flags) & X86_ARITH_FLAGS) == 0 &&
		     !memcmp(n->mem, e->mem, sizeof(n->mem));
	CHECK(ok);
	if (!ok && ++mismatches <= 20) {
		fprintf(stderr, "mismatch: %s:", tp->name);
		for (size_t k = 0; k < len; k++)
			fprintf(stderr, " %02x", insn[k]);
		fprintf(stderr, "\n  vector native %d emulated %d; mxcsr in %08x native %08x emulated %08x\n",
			n->vector, e->vector, in->mxcsr, n->mxcsr, e->mxcsr);
		for (unsigned r = 0; r < 16; r++) {
			if (!memcmp(n->x[r], e->x[r], 16) && !memcmp(n->x[r], in->x[r], 16))
				continue;
			fprintf(stderr, "  xmm%u in ", r);
			for (int k = 15; k >= 0; k--)
				fprintf(stderr, "%02x", in->x[r][k]);
			fprintf(stderr, " n ");
			for (int k = 15; k >= 0; k--)
				fprintf(stderr, "%02x", n->x[r][k]);
			fprintf(stderr, " e ");
			for (int k = 15; k >= 0; k--)
				fprintf(stderr, "%02x", e->x[r][k]);
			fprintf(stderr, "\n");
		}
		for (unsigned r = 0; r < 8; r++)
			fprintf(stderr, "  gpr%u in %016llx n %016llx e %016llx\n", r,
				(unsigned long long)in->gpr[r], (unsigned long long)n->gpr[r],
				(unsigned long long)e->gpr[r]);
		fprintf(stderr, "  flags in %03llx n %03llx e %03llx; mem %s\n",
			(unsigned long long)in->flags & 0xfff, (unsigned long long)n->flags & 0xfff,
			(unsigned long long)e->flags & 0xfff,
			memcmp(n->mem, e->mem, 64) ? "differs" : "same");
	}
	return ok;
}

static bool guest_has_mmx(void)
{
	struct ct t;
	static const uint8_t code[] = { 0xb8, 1, 0, 0, 0, 0x0f, 0xa2, 0xcc }; /* mov eax,1; cpuid */
	ct_init(&t);
	ct_run(&t, code, sizeof(code));
	bool mmx = (t.st.gpr[X86_RDX] >> 23) & 1;
	ct_fini(&t);
	return mmx;
}

/* Encodes the template with ModRM reg in 0..3 (REX.R: 8..11) and rm in
 * 0..3 (REX.B: 8..11) or [rsi] / [rsi+1]; byte-register forms without REX
 * may also name AH (rm 4) and BH (reg 7). */
static unsigned encode(const struct tmpl *tp, bool mem, bool misalign, unsigned imm, uint8_t *out)
{
	unsigned n = 0, rex = 0, reg = (unsigned)rnd() % 4, rm = (unsigned)rnd() % 4;
	for (unsigned k = 0; k < 3 && tp->pfx[k]; k++) {
		if ((tp->pfx[k] & 0xf0) == 0x40)
			rex = tp->pfx[k];
		else
			out[n++] = tp->pfx[k];
	}
	if (rnd() % 2)
		rex |= 0x44; /* REX.R */
	if (!mem && rnd() % 2)
		rex |= 0x41; /* REX.B */
	if (!rex && !mem && rnd() % 4 == 0 && (tp->kind != K_GPR || (tp->flags & F_BYTE)))
		rm = 4 + 3 * (unsigned)(rnd() % 2); /* AH / BH for byte forms; xmm4 / xmm7 */
	if (tp->flags & F_MMX) { /* only mm1 and mm2 are loaded; REX.R/B are ignored */
		reg = 1 + (unsigned)rnd() % 2;
		rm = 1 + (unsigned)rnd() % 2;
	}
	if (rex)
		out[n++] = (uint8_t)rex;
	out[n++] = 0x0f;
	out[n++] = tp->map == 2 ? 0x38 : 0x3a;
	out[n++] = tp->opc;
	if (!mem) {
		out[n++] = (uint8_t)(0xc0 | reg << 3 | rm);
	} else if (misalign) {
		out[n++] = (uint8_t)(0x46 | reg << 3); /* [rsi + 1] */
		out[n++] = 1;
	} else {
		out[n++] = (uint8_t)(0x06 | reg << 3); /* [rsi] */
	}
	if (tp->map == 3)
		out[n++] = (uint8_t)imm;
	return n;
}

static void test_differential(unsigned iters)
{
	struct ct t;
	bool mmx_ok = guest_has_mmx();
	ct_init(&t);
	for (size_t ti = 0; ti < sizeof(tmpls) / sizeof(tmpls[0]); ti++) {
		const struct tmpl *tp = &tmpls[ti];
		bool is_mmx = tp->flags & F_MMX;
		for (unsigned it = 0; it < iters; it++) {
			uint8_t insn[16];
			bool mem = (tp->flags & F_MEMONLY) || (it & 1);
			bool misalign = mem && rnd() % 8 == 0;
			unsigned imm = (unsigned)rnd() & 0xff;
			unsigned len = encode(tp, mem, misalign, imm, insn);
			struct nstate in, n, e;
			random_state(&in, tp);
			n = in;
			e = in;
			run_emulated(&t, &e, insn, len, is_mmx);
			if (is_mmx && !mmx_ok) {
				/* MMX not advertised: the MMX forms are #UD */
				CHECK(e.vector == X86_UD);
				continue;
			}
			run_native(&n, insn, len, is_mmx);
			if (!compare(tp, insn, len, &in, &n, &e))
				break;
		}
	}
	ct_fini(&t);
}

/* --- fixed cases ------------------------------------------------------------ */

static void test_crc32_check_value(void)
{
	struct ct t;
	ct_init(&t);
	/* l: crc32 eax, byte [rsi]; inc rsi; dec ecx; jnz l */
	static const uint8_t code[] = {
		0xf2, 0x0f, 0x38, 0xf0, 0x06, 0x48, 0xff, 0xc6, 0xff, 0xc9, 0x75, 0xf4, 0xcc,
	};
	memcpy(ct_data(&t, CT_DATA), "123456789", 9);
	t.st.gpr[X86_RAX] = 0xffffffff;
	t.st.gpr[X86_RSI] = CT_DATA;
	t.st.gpr[X86_RCX] = 9;
	CHECK(ct_run(&t, code, sizeof(code)) == 3);
	/* the CRC-32C check value of "123456789" (RFC 3720, B.4) */
	CHECK_EQ_U64(t.st.gpr[X86_RAX] ^ 0xffffffff, 0xe3069283);
	ct_fini(&t);
}

static void test_pcmpistri_strlen(void)
{
	struct ct t;
	ct_init(&t);
	/* pcmpistri xmm1, [rsi], 0x08 (equal each, unsigned bytes) with xmm1
	 * zero finds the first NUL: the strlen idiom of glibc */
	static const uint8_t code[] = { 0x66, 0x0f, 0x3a, 0x63, 0x0e, 0x08, 0xcc };
	memcpy(ct_data(&t, CT_DATA), "hello, world\0xyz", 16);
	memset(t.st.fx.xmm[1], 0, 16);
	t.st.gpr[X86_RSI] = CT_DATA;
	CHECK(ct_run(&t, code, sizeof(code)) == 3);
	CHECK_EQ_U64(t.st.gpr[X86_RCX], 12);
	CHECK_EQ_U64(t.st.rflags & X86_ARITH_FLAGS, X86_CF | X86_ZF | X86_SF | 0);
	ct_fini(&t);
}

static void test_ptest_and_fault(void)
{
	struct ct t;
	ct_init(&t);
	/* ptest xmm1, [rsi+1]: misaligned 16-byte operand -> #GP(0) */
	static const uint8_t code[] = { 0x66, 0x0f, 0x38, 0x17, 0x4e, 0x01, 0xcc };
	t.st.gpr[X86_RSI] = CT_DATA;
	CHECK(ct_run(&t, code, sizeof(code)) == X86_GP);
	CHECK_EQ_U64(t.st.rip, CT_CODE);
	/* CR0.TS: #NM; CR4.OSFXSR clear: #UD; CRC32 cares about neither */
	static const uint8_t ptest_rr[] = { 0x66, 0x0f, 0x38, 0x17, 0xca, 0xcc };
	static const uint8_t crc[] = { 0xf2, 0x0f, 0x38, 0xf1, 0xc1, 0xcc };
	uint64_t cr0 = t.st.cr0, cr4 = t.st.cr4;
	t.st.cr0 |= 1u << 3;
	CHECK(ct_run(&t, ptest_rr, sizeof(ptest_rr)) == X86_NM);
	CHECK(ct_run(&t, crc, sizeof(crc)) == 3);
	t.st.cr0 = cr0;
	t.st.cr4 &= ~(1ull << 9);
	CHECK(ct_run(&t, ptest_rr, sizeof(ptest_rr)) == X86_UD);
	t.st.cr4 = cr4;
	/* an unmasked exception is #XM, or #UD when CR4.OSXMMEXCPT is clear:
	 * roundss xmm1, xmm2, 4 on a signalling NaN with IM clear */
	static const uint8_t rnd_snan[] = { 0x66, 0x0f, 0x3a, 0x0a, 0xca, 0x04, 0xcc };
	memset(t.st.fx.xmm[1], 0, 16);
	memcpy(t.st.fx.xmm[2], &(uint32_t){ 0x7f800001 }, 4);
	t.st.fx.mxcsr = 0x1f00;
	CHECK(ct_run(&t, rnd_snan, sizeof(rnd_snan)) == X86_XM);
	CHECK_EQ_U64(t.st.fx.mxcsr, 0x1f01); /* IE set, destination untouched */
	CHECK_EQ_U64(t.st.fx.xmm[1][0], 0);
	t.st.cr4 &= ~(1ull << 10);
	t.st.fx.mxcsr = 0x1f00;
	CHECK(ct_run(&t, rnd_snan, sizeof(rnd_snan)) == X86_UD);
	t.st.cr4 = cr4;
	t.st.fx.mxcsr = 0x1f80;
	/* movbe eax, ecx (register form) is #UD */
	static const uint8_t movbe_reg[] = { 0x0f, 0x38, 0xf0, 0xc1, 0xcc };
	CHECK(ct_run(&t, movbe_reg, sizeof(movbe_reg)) == X86_UD);
	ct_fini(&t);
}

int main(int argc, char **argv)
{
	/* usage: test-cpu-sse4 [runs-per-form [seed]] */
	unsigned iters = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 0) : 400;
	if (argc > 2)
		rng_state = strtoull(argv[2], NULL, 0) | 1;
	struct sigaction sa;
	unsigned a, b, c, d;

	test_crc32_check_value();
	test_pcmpistri_strlen();
	test_ptest_and_fault();

	__cpuid(1, a, b, c, d);
	if (!(c & (1u << 20)) || !(c & (1u << 22))) {
		printf("host lacks SSE4.2 or MOVBE: differential part skipped\n");
		TEST_MAIN_END();
	}
	stub = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (stub == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_signal;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigaction(SIGILL, &sa, NULL);
	sigaction(SIGFPE, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	test_differential(iters);
	printf("differential: %zu instruction forms, %u runs each, %d mismatches\n",
	       sizeof(tmpls) / sizeof(tmpls[0]), iters, mismatches);
	TEST_MAIN_END();
}

/*
 * difftest: the software x86-64 CPU against the host CPU, on random seeded
 * instruction sequences.  See docs/cpu-difftest.md.
 *
 *   difftest [--seed N] [--count N] [--family F[,F...]|all] [--verbose]
 *            [--max-report N] [--coverage]
 *
 * Per batch of cases the parent forks a child that runs them natively
 * (native.c) while it runs them itself on the interpreter, then compares.
 */
#include "difftest.h"
#include "gen.h"
#include "cpu/x86/cpu_int.h"
#include "cpu/x86/handlers.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define BATCH 2048

static unsigned blame[4096];

/* --- the interpreter side --- */

struct emu {
	uint8_t code[DT_CODE_SIZE];
	uint8_t data[DT_DATA_SIZE];
	struct x86_cpu *cpu;
	struct x86_state base;
};

static void *emu_page_ptr(void *opaque, uint64_t gpa, bool *writable)
{
	struct emu *m = opaque;
	*writable = true;
	if (gpa - DT_CODE < DT_CODE_SIZE)
		return m->code + (gpa - DT_CODE);
	if (gpa - DT_DATA < DT_DATA_SIZE)
		return m->data + (gpa - DT_DATA);
	return NULL;
}

static int emu_mmio_read(void *o, uint64_t gpa, unsigned size, uint64_t *val)
{
	(void)o; (void)gpa; (void)size; (void)val;
	return -EFAULT;
}

static int emu_mmio_write(void *o, uint64_t gpa, unsigned size, uint64_t val)
{
	(void)o; (void)gpa; (void)size; (void)val;
	return -EFAULT;
}

static const struct x86_mem_ops emu_ops = { emu_page_ptr, emu_mmio_read, emu_mmio_write };

static int emu_init(struct emu *m)
{
	struct x86_cpu_config cfg = { .user_mode = true, .max_block_insns = 1 };
	memset(m->code, 0xcc, sizeof(m->code));
	m->cpu = x86_cpu_new(&emu_ops, m, &cfg);
	if (!m->cpu)
		return -ENOMEM;
	x86_get_state(m->cpu, &m->base);
	return 0;
}

static void emu_run(struct emu *m, const struct dt_case *c, const uint8_t *pool, struct dt_result *res)
{
	struct x86_state st = m->base;
	struct x86_exit ex;
	dt_code_image(c, m->code);
	x86_invalidate_code(m->cpu, DT_CODE, DT_CODE_SIZE);
	dt_case_memory(c, pool, m->data);
	memcpy(st.gpr, c->in.gpr, sizeof(st.gpr));
	st.rip = DT_TEST;
	st.rflags = c->in.rflags;
	st.fx = c->in.fx;
	x86_set_state(m->cpu, &st);
	x86_run(m->cpu, c->ninsns, &ex);
	x86_get_state(m->cpu, &st);

	memcpy(res->out.gpr, st.gpr, sizeof(st.gpr));
	res->out.rip = st.rip;
	res->out.rflags = st.rflags;
	res->out.fx = st.fx;
	res->crashed = 0;
	res->vector = DT_NO_EXC;
	res->error_code = 0;
	res->fault_addr = 0;
	switch (ex.reason) {
	case X86_EXIT_EXCEPTION:
		res->vector = ex.vector;
		res->error_code = ex.error_code;
		res->fault_addr = ex.vector == X86_PF_FAULT ? ex.fault_addr : 0;
		break;
	case X86_EXIT_ICOUNT:
		break;
	default:
		res->vector = 0xfe; /* HLT, SYSCALL, request: never expected */
		break;
	}
	memcpy(res->mem, m->data, DT_DATA_SIZE);
}

/* --- comparison --- */

/* The host's own mappings (libraries, heap, AddressSanitizer's shadow):
 * a random register used as an address may land there natively, where the
 * interpreter, which maps only the test pages, takes a #PF.  Such cases are
 * skipped, not counted as mismatches. */
static struct { uint64_t lo, hi; } host_maps[4096];
static unsigned n_host_maps;

static void read_host_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	if (!f)
		return;
	while (n_host_maps < 4096 && fgets(line, sizeof(line), f)) {
		unsigned long long lo, hi;
		if (sscanf(line, "%llx-%llx", &lo, &hi) == 2) {
			host_maps[n_host_maps].lo = lo;
			host_maps[n_host_maps].hi = hi;
			n_host_maps++;
		}
	}
	fclose(f);
}

static bool host_mapped(uint64_t a)
{
	for (unsigned k = 0; k < n_host_maps; k++)
		if (a >= host_maps[k].lo && a < host_maps[k].hi)
			return true;
	return false;
}

static uint64_t skipped;

static void normalize_fx(struct x86_fxsave *fx, uint32_t undef)
{
	/* FOP/FIP/FDP: AMD stores them only while an x87 exception is
	 * pending, Intel's FDP_EXCPTN_ONLY and FCS/FDS deprecation differ per
	 * model; the interpreter keeps them but they are not comparable.
	 * MXCSR_MASK is the host's (0x2ffff on AMD with MM, 0xffff on Intel).
	 * The 6 bytes above each 80-bit register are reserved. */
	fx->fop = 0;
	fx->fip = 0;
	fx->fdp = 0;
	fx->mxcsr_mask = 0;
	fx->reserved1 = 0;
	for (unsigned k = 0; k < 8; k++)
		memset(fx->st[k] + 10, 0, 6);
	memset(fx->reserved2, 0, sizeof(fx->reserved2));
	fx->fsw &= (uint16_t)~(undef >> 16);
}

static void normalize_mem(uint8_t *mem, const struct dt_case *c)
{
	for (unsigned k = 0; k < c->nenv; k++) {
		/* FNSTENV/FNSAVE: the instruction and data pointers and FOP, for
		 * the reasons given in normalize_fx(); and the unused upper
		 * halves of the 32-bit format's 16-bit fields.  Clipped to the
		 * page (a store running off it faults before writing). */
		static const uint8_t f16[][2] = { { 6, 8 } };
		static const uint8_t f32[][2] = { { 12, 16 }, { 2, 2 }, { 6, 2 }, { 10, 2 } };
		const uint8_t (*f)[2] = c->env16[k] ? f16 : f32;
		unsigned nf = c->env16[k] ? 1 : 4;
		for (unsigned j = 0; j < nf; j++)
			for (unsigned b = 0; b < f[j][1]; b++)
				if (c->env_off[k] + f[j][0] + b < DT_DATA_SIZE)
					mem[c->env_off[k] + f[j][0] + b] = 0;
	}
	if (c->fxsave_off < 0)
		return;
	uint8_t *p = mem + c->fxsave_off;
	memset(p + 6, 0, 18);  /* FOP, FIP, FCS, FDP, FDS */
	memset(p + 28, 0, 4);  /* MXCSR_MASK */
	for (unsigned k = 0; k < 8; k++)
		memset(p + 32 + 16 * k + 10, 0, 6);
	memset(p + 416, 0, 96); /* reserved / software-available */
}

static const char *const gpr_name[16] = {
	"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
	"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
};

struct report {
	char *buf;
	size_t len, cap;
};

static void rp(struct report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rp(struct report *r, const char *fmt, ...)
{
	va_list ap;
	if (r->len + 512 > r->cap) {
		r->cap = r->cap * 2 + 4096;
		r->buf = realloc(r->buf, r->cap);
		if (!r->buf)
			abort();
	}
	va_start(ap, fmt);
	int n = vsnprintf(r->buf + r->len, r->cap - r->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		r->len += MIN((size_t)n, r->cap - r->len - 1);
}

static bool vector_has_error_code(unsigned v)
{
	return v == X86_GP || v == X86_PF_FAULT || v == X86_TS || v == X86_NP ||
	       v == X86_SS_FAULT || v == X86_AC_FAULT;
}

/* Compares; appends a field-by-field diff to r.  Returns differences. */
static unsigned compare(const struct dt_case *c, struct dt_result *nat, struct dt_result *emu,
			struct report *r)
{
	unsigned nd = 0;

	if (nat->crashed) {
		rp(r, "  the native child died on this case\n");
		return 1;
	}
	if (emu->vector == X86_PF_FAULT && host_mapped(emu->fault_addr)) {
		skipped++;
		return 0;
	}
	/* Linux reports #PF at or above TASK_SIZE_MAX (the last user page
	 * included) with P set, whether or not a page is there; the flat
	 * user space of the interpreter has no kernel half. */
	if (nat->vector == X86_PF_FAULT && nat->fault_addr >= 0x7ffffffff000ull)
		nat->error_code &= ~1u;
	if (nat->vector != emu->vector) {
		rp(r, "  %-10s native %-18d interp %d (255: none)   fault addr native %#" PRIx64
		   " interp %#" PRIx64 "\n", "exception", nat->vector, emu->vector, nat->fault_addr, emu->fault_addr);
		nd++;
	} else if (nat->vector != DT_NO_EXC) {
		if (vector_has_error_code(nat->vector) && nat->error_code != emu->error_code) {
			rp(r, "  %-10s native %#-18x interp %#x\n", "error code", nat->error_code, emu->error_code);
			nd++;
		}
		/* Which byte of a multi-line access (FXSAVE, FXRSTOR) a #PF
		 * names is the implementation's choice (AMD names the last
		 * line): only the vector is compared. */
		bool big = false;
		for (unsigned k = 0; k < c->ninsns; k++)
			big |= (dt_entries[c->entry[k]].flags & E_BIG) != 0;
		if (nat->vector == X86_PF_FAULT && !big && nat->fault_addr != emu->fault_addr) {
			rp(r, "  %-10s native %#-18" PRIx64 " interp %#" PRIx64 "\n", "#PF addr",
			   nat->fault_addr, emu->fault_addr);
			nd++;
		}
	}
	for (unsigned k = 0; k < 16; k++)
		if (nat->out.gpr[k] != emu->out.gpr[k]) {
			rp(r, "  %-10s native %016" PRIx64 "   interp %016" PRIx64 "   (in %016" PRIx64 ")\n",
			   gpr_name[k], nat->out.gpr[k], emu->out.gpr[k], c->in.gpr[k]);
			nd++;
		}
	if (nat->out.rip != emu->out.rip) {
		rp(r, "  %-10s native %016" PRIx64 "   interp %016" PRIx64 "\n", "rip", nat->out.rip, emu->out.rip);
		nd++;
	}
	uint64_t fmask = ~(uint64_t)(c->undef_flags & 0xffff) & ~(uint64_t)(1u << 16); /* RF */
	if ((nat->out.rflags ^ emu->out.rflags) & fmask) {
		rp(r, "  %-10s native %08" PRIx64 "           interp %08" PRIx64 "           (in %08" PRIx64
		   ", undefined %04x)\n", "rflags", nat->out.rflags, emu->out.rflags, c->in.rflags,
		   c->undef_flags & 0xffff);
		nd++;
	}
	normalize_fx(&nat->out.fx, c->undef_flags);
	normalize_fx(&emu->out.fx, c->undef_flags);
	const struct x86_fxsave *a = &nat->out.fx, *b = &emu->out.fx;
	if (a->fcw != b->fcw || a->fsw != b->fsw || a->ftw != b->ftw) {
		rp(r, "  %-10s native fcw %04x fsw %04x ftw %02x   interp fcw %04x fsw %04x ftw %02x"
		   "   (in fcw %04x fsw %04x ftw %02x)\n", "x87 ctl", a->fcw, a->fsw, a->ftw, b->fcw, b->fsw,
		   b->ftw, c->in.fx.fcw, c->in.fx.fsw, c->in.fx.ftw);
		nd++;
	}
	if (a->mxcsr != b->mxcsr) {
		rp(r, "  %-10s native %08x           interp %08x           (in %08x)\n", "mxcsr", a->mxcsr,
		   b->mxcsr, c->in.fx.mxcsr);
		nd++;
	}
	for (unsigned k = 0; k < 8; k++)
		if (memcmp(a->st[k], b->st[k], 10)) {
			uint64_t am, bm, im;
			uint16_t ae, be, ie;
			memcpy(&am, a->st[k], 8); memcpy(&ae, a->st[k] + 8, 2);
			memcpy(&bm, b->st[k], 8); memcpy(&be, b->st[k] + 8, 2);
			memcpy(&im, c->in.fx.st[k], 8); memcpy(&ie, c->in.fx.st[k] + 8, 2);
			rp(r, "  st%u (fx)   native %04x:%016" PRIx64 " interp %04x:%016" PRIx64
			   " (in R%u %04x:%016" PRIx64 ")\n", k, ae, am, be, bm, k, ie, im);
			nd++;
		}
	for (unsigned k = 0; k < 16; k++)
		if (memcmp(a->xmm[k], b->xmm[k], 16)) {
			uint64_t av[2], bv[2], iv[2];
			memcpy(av, a->xmm[k], 16);
			memcpy(bv, b->xmm[k], 16);
			memcpy(iv, c->in.fx.xmm[k], 16);
			rp(r, "  xmm%-6u native %016" PRIx64 ":%016" PRIx64 " interp %016" PRIx64 ":%016" PRIx64
			   " (in %016" PRIx64 ":%016" PRIx64 ")\n", k, av[1], av[0], bv[1], bv[0], iv[1], iv[0]);
			nd++;
		}
	normalize_mem(nat->mem, c);
	normalize_mem(emu->mem, c);
	if (memcmp(nat->mem, emu->mem, DT_DATA_SIZE)) {
		unsigned shown = 0;
		for (unsigned k = 0; k < DT_DATA_SIZE && shown < 4; k++) {
			if (nat->mem[k] == emu->mem[k])
				continue;
			unsigned end = k;
			while (end < DT_DATA_SIZE && end < k + 16 && nat->mem[end] != emu->mem[end])
				end++;
			rp(r, "  mem %#" PRIx64 ": native", (uint64_t)(DT_DATA + k));
			for (unsigned j = k; j < end; j++)
				rp(r, " %02x", nat->mem[j]);
			rp(r, "  interp");
			for (unsigned j = k; j < end; j++)
				rp(r, " %02x", emu->mem[j]);
			rp(r, "\n");
			shown++;
			k = end;
		}
		nd++;
	}
	return nd;
}

static void describe_case(const struct dt_case *c, struct report *r)
{
	rp(r, "  bytes:");
	for (unsigned k = 0; k < c->code_len; k++)
		rp(r, "%s%02x", (k && c->insn_off[0] != k && 0) ? "" : " ", c->code[k]);
	rp(r, "\n");
	for (unsigned k = 0; k < c->ninsns; k++) {
		unsigned off = c->insn_off[k], len = c->insn_off[k + 1] - off;
		char text[160];
		dt_disasm(c->code + off, len, DT_TEST + off, text, sizeof(text));
		rp(r, "  %#" PRIx64 ":", (uint64_t)(DT_TEST + off));
		for (unsigned j = 0; j < len; j++)
			rp(r, " %02x", c->code[off + j]);
		rp(r, "   %s   [%s]\n", text, dt_entries[c->entry[k]].name);
	}
	rp(r, "  input:");
	for (unsigned k = 0; k < 16; k++)
		rp(r, "%s%s=%016" PRIx64, k % 4 ? " " : "\n    ", gpr_name[k], c->in.gpr[k]);
	rp(r, "\n    rflags=%08" PRIx64 " mxcsr=%08x fcw=%04x fsw=%04x ftw=%02x  data page = pool+%#x\n",
	   c->in.rflags, c->in.fx.mxcsr, c->in.fx.fcw, c->in.fx.fsw, c->in.fx.ftw, c->mem_off);
}

/* --- families and coverage --- */

static bool decodes(struct x86_cpu *cpu, const uint8_t *b, unsigned n)
{
	struct x86_insn i;
	(void)0;
	uint8_t buf[32];
	memset(buf, 0, sizeof(buf));
	memcpy(buf, b, n);
	if (x86_decode(cpu, DT_TEST, buf, 15, &i) < 0)
		return false;
	return i.fn != x86_h_ud && i.fn != x86_h_gp0;
}

static unsigned available_families(struct x86_cpu *cpu)
{
	unsigned m = 1u << FAM_CORE | 1u << FAM_UD;
	if (decodes(cpu, (const uint8_t[]){ 0xd1, 0xe0 }, 2))
		m |= 1u << FAM_INT2;
	if (decodes(cpu, (const uint8_t[]){ 0x0f, 0x58, 0xc0 }, 3))
		m |= 1u << FAM_SSE;
	if (decodes(cpu, (const uint8_t[]){ 0x66, 0x0f, 0x38, 0x00, 0xc0 }, 5))
		m |= 1u << FAM_SSE4;
	if (decodes(cpu, (const uint8_t[]){ 0xd9, 0xc0 }, 2))
		m |= 1u << FAM_X87;
	if (decodes(cpu, (const uint8_t[]){ 0x0f, 0xfc, 0xc0 }, 3))
		m |= 1u << FAM_MMX;
	return m;
}

static bool entry_covers(const struct dt_entry *e, unsigned map, unsigned opc, unsigned mp,
			 unsigned modrm, bool rexw)
{
	unsigned digit = (modrm >> 3) & 7;
	bool mem = (modrm >> 6) != 3;

	if (e->map != map)
		return false;
	if (e->flags & E_OPR) {
		if ((opc & ~7u) != e->opc)
			return false;
	} else if (e->flags & E_CC) {
		if ((opc & ~15u) != e->opc)
			return false;
	} else if (e->opc != opc) {
		return false;
	}
	if (e->mp != mp) {
		/* 66/F2/F3 select the instruction only in the SSE ranges and for
		 * a few 0F opcodes (POPCNT, TZCNT, LZCNT, the 0F AE and 0F C7
		 * groups); elsewhere they modify it (66: operand
		 * size) or are reserved (F2/F3), and the entry stands for the
		 * opcode. */
		bool sse_range = map >= 2 || (map == 1 && ((opc >= 0x10 && opc <= 0x17) ||
				 (opc >= 0x28 && opc <= 0x2f) || (opc >= 0x50 && opc <= 0x7f) ||
				 (opc >= 0xc2 && opc <= 0xc6) || opc >= 0xd0));
		bool selects = sse_range || (map == 1 && (opc == 0xb8 || opc == 0xbc || opc == 0xbd ||
				 opc == 0xae || opc == 0xc7));
		bool gen66 = mp == 0x66 && !e->mp && !(e->flags & E_NO66);
		if ((e->mp || selects) && !gen66)
			return false;
	}
	if ((e->flags & E_W) && !rexw)
		return false;
	if (!(e->flags & E_M))
		return true;
	if (e->modrm >= 0)
		return !mem && (unsigned)e->modrm == modrm;
	if (e->digit >= 0 && (unsigned)e->digit != digit) {
		/* "/1-7"-style UD entries stand for their neighbours */
		if (!(e->family == FAM_UD))
			return false;
	}
	if ((e->flags & E_MEM) && !mem)
		return false;
	if ((e->flags & E_REG) && mem)
		return false;
	return true;
}

static bool excluded_covers(unsigned map, unsigned opc, unsigned mp, unsigned modrm)
{
	for (unsigned k = 0; k < dt_nexcluded; k++) {
		const struct dt_excluded *x = &dt_excluded[k];
		if (x->map == map && x->opc == opc && (x->digit < 0 || (unsigned)x->digit == ((modrm >> 3) & 7)) &&
		    (x->mp == 0xff || x->mp == mp))
			return true;
	}
	return false;
}

/* Every (map, opcode, mandatory prefix, ModRM.reg, form) the decoder
 * accepts must have a generator entry (of an enabled family) or an
 * exclusion.  Returns the number that have neither. */
static unsigned check_coverage(struct x86_cpu *cpu, unsigned fam_mask, bool verbose)
{
	static const uint8_t mps[4] = { 0, 0x66, 0xf3, 0xf2 };
	unsigned missing = 0;

	for (unsigned map = 0; map < 4; map++)
		for (unsigned opc = 0; opc < 256; opc++) {
			if (map == 0 && (opc == 0x0f || opc == 0x26 || opc == 0x2e || opc == 0x36 ||
					 opc == 0x3e || (opc & 0xf0) == 0x40 || opc == 0x64 || opc == 0x65 ||
					 opc == 0x66 || opc == 0x67 || opc == 0xf0 || opc == 0xf2 || opc == 0xf3))
				continue;
			if (map == 1 && (opc == 0x38 || opc == 0x3a))
				continue; /* escapes to maps 2 and 3, enumerated as such */
			for (unsigned p = 0; p < 4; p++)
				for (unsigned w = 0; w < 2; w++)
					for (unsigned modrm = 0; modrm < 256; modrm++) {
						if ((modrm >> 6) == 1 || (modrm >> 6) == 2 ||
						    ((modrm >> 6) == 0 && (modrm & 7) != 0))
							continue; /* [rax] and the 64 register forms */
						uint8_t b[16];
						unsigned n = 0;
						if (mps[p])
							b[n++] = mps[p];
						if (w)
							b[n++] = 0x48;
						if (map)
							b[n++] = 0x0f;
						if (map == 2)
							b[n++] = 0x38;
						if (map == 3)
							b[n++] = 0x3a;
						b[n++] = (uint8_t)opc;
						b[n++] = (uint8_t)modrm;
						if (!decodes(cpu, b, n))
							continue;
						bool ok = excluded_covers(map, opc, mps[p], modrm);
						/* 66 on near branches: Intel ignores it, AMD makes
						 * the operand size 16 (RIP truncated): not compared. */
						for (unsigned k = 0; k < dt_nentries && !ok && mps[p] == 0x66; k++)
							if ((dt_entries[k].flags & E_BR) &&
							    entry_covers(&dt_entries[k], map, opc, 0, modrm, w))
								ok = true;
						for (unsigned k = 0; k < dt_nentries && !ok; k++)
							if ((fam_mask & (1u << dt_entries[k].family)) &&
							    entry_covers(&dt_entries[k], map, opc, mps[p], modrm, w))
								ok = true;
						if (!ok) {
							if (verbose || missing < 40)
								printf("uncovered: map %u opcode %02x prefix %02x%s modrm %02x\n",
								       map, opc, mps[p], w ? " REX.W" : "", modrm);
							missing++;
						}
					}
		}
	return missing;
}

/* --- distinct opcodes --- */

#define KEYS_SIZE (1u << 16)
static uint32_t keys[KEYS_SIZE];
static unsigned nkeys;

static void add_key(uint32_t key)
{
	key |= 1u << 31; /* never 0 */
	unsigned h = (key * 2654435761u) >> 16;
	while (keys[h] && keys[h] != key)
		h = (h + 1) & (KEYS_SIZE - 1);
	if (!keys[h] && nkeys < KEYS_SIZE / 2) {
		keys[h] = key;
		nkeys++;
	}
}

static void count_case(const struct dt_case *c)
{
	for (unsigned k = 0; k < c->ninsns; k++) {
		const struct dt_entry *e = &dt_entries[c->entry[k]];
		struct dt_entry t = *e;
		if (e->flags & E_CC)
			t.opc = c->opc[k];
		add_key(dt_entry_key(&t));
	}
}

/* --- main --- */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int usage(void)
{
	fprintf(stderr, "usage: difftest [--seed N] [--count N] [--family F[,F...]|all] [--verbose]\n"
			"                [--max-report N] [--coverage]\n"
			"families: core int2 sse sse4 x87 mmx ud (default: those the decoder has)\n");
	return 2;
}

int main(int argc, char **argv)
{
	uint64_t seed = 1, count = 100000;
	unsigned max_report = 20, fam_req = 0;
	bool verbose = false, coverage_only = false, fam_all = false;

	for (int k = 1; k < argc; k++) {
		const char *a = argv[k];
		if (!strcmp(a, "--seed") && k + 1 < argc) {
			seed = strtoull(argv[++k], NULL, 0);
		} else if (!strcmp(a, "--count") && k + 1 < argc) {
			count = strtoull(argv[++k], NULL, 0);
		} else if (!strcmp(a, "--max-report") && k + 1 < argc) {
			max_report = (unsigned)strtoul(argv[++k], NULL, 0);
		} else if (!strcmp(a, "--family") && k + 1 < argc) {
			char *s = strdup(argv[++k]), *save = NULL;
			for (char *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
				bool found = false;
				if (!strcmp(t, "all")) {
					fam_all = true;
					continue;
				}
				for (unsigned f = 0; f < FAM_N; f++)
					if (!strcmp(t, dt_family_name[f])) {
						fam_req |= 1u << f;
						found = true;
					}
				if (!found) {
					fprintf(stderr, "difftest: unknown family '%s'\n", t);
					return usage();
				}
			}
			free(s);
		} else if (!strcmp(a, "--verbose")) {
			verbose = true;
		} else if (!strcmp(a, "--coverage")) {
			coverage_only = true;
		} else {
			return usage();
		}
	}

	int r = dt_native_map();
	if (r < 0) {
		fprintf(stderr, "difftest: cannot map the fixed test pages at %#llx..%#llx: %s\n",
			DT_CODE, DT_STATE + 0x1000, strerror(-r));
		return 1;
	}
	struct emu *m = calloc(1, sizeof(*m));
	if (!m || emu_init(m) < 0) {
		fprintf(stderr, "difftest: out of memory creating the CPU\n");
		return 1;
	}
	unsigned avail = available_families(m->cpu);
	unsigned fam_mask = fam_all ? (1u << FAM_N) - 1 : fam_req ? fam_req : avail;
	printf("seed: %" PRIu64 "\n", seed);
	printf("families:");
	for (unsigned f = 0; f < FAM_N; f++)
		if (fam_mask & (1u << f))
			printf(" %s%s", dt_family_name[f], (avail & (1u << f)) ? "" : "(not in the decoder yet)");
	printf("\n");

	unsigned uncovered = check_coverage(m->cpu, avail | fam_mask, verbose);
	printf("decoder opcodes without a generator entry: %u\n", uncovered);
	if (coverage_only) {
		x86_cpu_free(m->cpu);
		free(m);
		return uncovered ? 1 : 0;
	}

	dt_disasm_init();
	read_host_maps();

	struct dt_rng rng = { seed };
	uint8_t *pool = malloc(DT_POOL_SIZE);
	struct dt_result *eres = aligned_alloc(64, sizeof(struct dt_result) * BATCH);
	size_t shared_len = sizeof(struct dt_result) * BATCH + sizeof(struct dt_case) * BATCH + 4096;
	uint8_t *shared = mmap(NULL, shared_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (!pool || !eres || shared == MAP_FAILED) {
		fprintf(stderr, "difftest: out of memory\n");
		return 1;
	}
	struct dt_native_ctl *ctl = (struct dt_native_ctl *)shared;
	struct dt_result *nres = (struct dt_result *)(shared + 4096);
	struct dt_case *cases = (struct dt_case *)(shared + 4096 + sizeof(struct dt_result) * BATCH);
	dt_pool_init(pool, &rng);
	struct dt_native nt;
	if (dt_native_init(&nt, cases, nres, ctl, pool) < 0) {
		fprintf(stderr, "difftest: cannot start the native child: %s\n", strerror(errno));
		return 1;
	}

	uint64_t insns = 0, ncases = 0, mismatches = 0, faults = 0;
	struct report rep = { 0 };
	double t0 = now_s();
	while (insns < count) {
		unsigned n = 0;
		while (n < BATCH && insns < count) {
			dt_gen_case(&cases[n], &rng, fam_mask, pool);
			insns += cases[n].ninsns;
			count_case(&cases[n]);
			n++;
		}
		double ta = now_s();
		if (dt_native_post(&nt, n) < 0) {
			fprintf(stderr, "difftest: the native child is gone\n");
			return 1;
		}
		double tb = now_s();
		for (unsigned k = 0; k < n; k++)
			emu_run(m, &cases[k], pool, &eres[k]);
		double tc = now_s();
		int wr = dt_native_wait(&nt);
		if (getenv("DT_TIMING"))
			fprintf(stderr, "post %.3f emu %.3f wait %.3f\n", tb - ta, tc - tb, now_s() - tc);
		if (wr < 0) {
			fprintf(stderr, "difftest: waiting for the native child: %s\n", strerror(errno));
			return 1;
		}
		for (unsigned k = 0; k < n; k++) {
			struct report one = { 0 };
			if (nres[k].vector != DT_NO_EXC)
				faults++;
			if (!compare(&cases[k], &nres[k], &eres[k], &one)) {
				free(one.buf);
				continue;
			}
			mismatches++;
			/* blame the last instruction that ran */
			unsigned last = cases[k].ninsns - 1;
			for (unsigned j = 0; j + 1 < cases[k].ninsns; j++)
				if (nres[k].vector != DT_NO_EXC && nres[k].out.rip == DT_TEST + cases[k].insn_off[j])
					last = j;
			blame[cases[k].entry[last]]++;
			if (mismatches <= max_report) {
				rp(&rep, "mismatch %" PRIu64 " (case %" PRIu64 "):\n", mismatches, ncases + k);
				describe_case(&cases[k], &rep);
				rp(&rep, "%s", one.buf);
				fputs(rep.buf, stdout);
				rep.len = 0;
				rep.buf[0] = 0;
			}
			free(one.buf);
		}
		ncases += n;
		if (verbose)
			printf("... %" PRIu64 " instructions, %" PRIu64 " mismatches\n", insns, mismatches);
	}
	double dt = now_s() - t0;
	free(rep.buf);
	dt_disasm_fini();
	x86_cpu_free(m->cpu);
	free(m);
	free(pool);
	dt_native_fini(&nt);
	free(eres);
	munmap(shared, shared_len);

	if (mismatches) {
		printf("mismatches by instruction (the last one run in the case):\n");
		for (unsigned e = 0; e < dt_nentries; e++)
			if (blame[e])
				printf("  %6u  %s (%s, map %u opcode %02x%s)\n", blame[e], dt_entries[e].name,
				       dt_family_name[dt_entries[e].family], dt_entries[e].map, dt_entries[e].opc,
				       dt_entries[e].digit >= 0 ? (const char *[]){ " /0", " /1", " /2", " /3", " /4", " /5", " /6", " /7" }[dt_entries[e].digit] : "");
	}
	printf("seed: %" PRIu64 "\n", seed);
	printf("instructions: %" PRIu64 " in %" PRIu64 " cases (%" PRIu64 " ended in an exception), %.1f s, %.0f/s\n",
	       insns, ncases, faults, dt, insns / (dt > 0 ? dt : 1));
	printf("distinct opcodes: %u\n", nkeys);
	if (skipped)
		printf("skipped: %" PRIu64 " (a random address that the host maps, e.g. the sanitizer's shadow)\n", skipped);
	if (uncovered)
		printf("decoder opcodes without a generator entry: %u (see above)\n", uncovered);
	printf("mismatches: %" PRIu64 "\n", mismatches);
	return mismatches || uncovered ? 1 : 0;
}

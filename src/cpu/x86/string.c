/*
 * String instructions: MOVS CMPS STOS LODS SCAS (A4-A7, AA-AF) with
 * REP/REPE/REPNE, and INS/OUTS (6C-6F), which go to the I/O handler.
 *
 * The source is seg:rSI (DS unless overridden), the destination ES:rDI
 * (never overridden); the address size (16, 32 or 64 bits) selects the
 * pointer and counter registers, which are written at that size (so a
 * 32-bit address size zero-extends RSI, RDI and RCX, as the hardware
 * does).  DF picks the direction.
 *
 * REP forms are restartable: every iteration commits its register updates
 * before the next one, so a fault leaves rCX/rSI/rDI reflecting the
 * iterations done and RIP at the instruction.  REP forms run page chunk
 * by page chunk on host memory where the soft TLB already maps the
 * operands; everything else (a TLB miss, MMIO, an element across pages or
 * across the address-size wrap, stores to code pages) goes one element at
 * a time through the memory accessors.  A long REP also yields to x86_cpu_request_exit() between
 * chunks, and to pending interrupts, by restarting itself.
 *
 * Handlers are generated per operation, element size, address size and
 * repeat kind.
 */
#include "cpu/x86/alu.h"
#include "cpu/x86/int2.h"

enum { ST_MOVS, ST_CMPS, ST_STOS, ST_LODS, ST_SCAS };
enum { RP_NONE, RP_REP, RP_REPNE }; /* RP_REP is REPE for CMPS/SCAS */

#define AMASK(asz) ((asz) == 8 ? ~0ull : (asz) == 4 ? 0xffffffffull : 0xffffull)
#define YIELD_EVERY 4096u

/* Something wants the CPU between iterations: an exit request, or an
 * interrupt or NMI (delivered at the next block boundary if allowed). */
static inline bool want_yield(const struct x86_cpu *cpu)
{
	return unlikely(cpu->exit_request | cpu->intr_line | cpu->nmi_pending);
}

/* Leaves the block so that this instruction runs again (its remaining
 * iterations), after a pending exit request is served. */
static const struct x86_insn *restart(struct x86_cpu *cpu, const struct x86_insn *i)
{
	cpu->rip = i->next_rip - i->len;
	cpu->icount -= i->left;
	return NULL;
}

/* One element; returns true when a REPE/REPNE condition ends the loop. */
static X86_ALWAYS_INLINE bool str_elem(struct x86_cpu *cpu, const struct x86_insn *i, unsigned op,
				       unsigned sz, unsigned asz, unsigned rep, int64_t step)
{
	const uint64_t am = AMASK(asz);
	uint64_t si = cpu->regs[X86_RSI], di = cpu->regs[X86_RDI];
	uint64_t sla = cpu->segbase[i->seg] + (si & am);
	uint64_t dla = cpu->segbase[X86_ES] + (di & am);
	uint64_t a, b;

	switch (op) {
	case ST_MOVS:
		a = x86_read(cpu, sla, sz);
		x86_write(cpu, dla, sz, a);
		x86_set_reg(cpu, X86_RSI, asz, si + (uint64_t)step);
		x86_set_reg(cpu, X86_RDI, asz, di + (uint64_t)step);
		return false;
	case ST_STOS:
		x86_write(cpu, dla, sz, cpu->regs[X86_RAX]);
		x86_set_reg(cpu, X86_RDI, asz, di + (uint64_t)step);
		return false;
	case ST_LODS:
		a = x86_read(cpu, sla, sz);
		x86_set_reg(cpu, X86_RAX, sz, a);
		x86_set_reg(cpu, X86_RSI, asz, si + (uint64_t)step);
		return false;
	case ST_CMPS:
		a = x86_read(cpu, sla, sz);
		b = x86_read(cpu, dla, sz);
		x86_set_cc(cpu, CC_SUB, sz, x86_zext(a - b, sz), b, 0);
		x86_set_reg(cpu, X86_RSI, asz, si + (uint64_t)step);
		x86_set_reg(cpu, X86_RDI, asz, di + (uint64_t)step);
		break;
	default: /* SCAS */
		a = x86_get_reg(cpu, X86_RAX, sz);
		b = x86_read(cpu, dla, sz);
		x86_set_cc(cpu, CC_SUB, sz, x86_zext(a - b, sz), b, 0);
		x86_set_reg(cpu, X86_RDI, asz, di + (uint64_t)step);
		break;
	}
	if (rep == RP_REP)
		return a != b;
	if (rep == RP_REPNE)
		return a == b;
	return false;
}

/* Host address of [la, la + len) (one page) when the soft TLB already maps
 * it for this kind of access: the hit path of the accessors in cpu_int.h.
 * NULL otherwise; the caller then goes through those accessors, which fill
 * the TLB, fault, serve MMIO and catch stores to code pages (whose write
 * tags never hit). */
static inline uint8_t *tlb_ptr(struct x86_cpu *cpu, uint64_t la, bool write)
{
	struct x86_tlb_entry *e = &cpu->tlb[(la >> 12) & (X86_TLB_SIZE - 1)];
	uint64_t tag = write ? e->tag_w : e->tag_r;
	if (likely(tag == ((la & X86_PAGE_MASK) | cpu->mmu_idx)))
		return (uint8_t *)(uintptr_t)(la + e->addend);
	return NULL;
}

/* Elements of size sz from la on, in direction back, inside la's page. */
static inline uint64_t elems_in_page(uint64_t la, unsigned sz, bool back)
{
	unsigned off = (unsigned)(la & 0xfff);
	if (!back)
		return (4096 - off) / sz;
	return off + sz > 4096 ? 0 : off / sz + 1;
}

/* Elements of size sz from offset off on before the address-size wrap. */
static inline uint64_t elems_before_wrap(uint64_t off, unsigned sz, uint64_t am, bool back)
{
	if (off + sz - 1 > am)
		return 0; /* this element wraps */
	return back ? off / sz + 1 : (am - off + 1) / sz;
}

static inline uint64_t load_n(const uint8_t *p, unsigned sz)
{
	uint64_t v = 0;
	memcpy(&v, p, sz);
	return v;
}

/* REP forms: runs whole page chunks on host memory (any address size; a
 * chunk never wraps the 16- or 32-bit offset).
 * Returns the elements left; sets *done when a REPE/REPNE condition ended
 * the instruction, *yield when something else wants the CPU.  Returns
 * early, with elements left, when an operand is not in the TLB or an
 * element crosses a page: the caller does one element through the
 * accessors and calls again.  Each chunk's registers are committed before
 * the next one is looked at, so faults stay precise. */
static X86_ALWAYS_INLINE uint64_t str_fast(struct x86_cpu *cpu, const struct x86_insn *i, unsigned op,
					   unsigned sz, unsigned asz, unsigned rep, uint64_t n,
					   bool *done, bool *yield)
{
	const uint64_t am = AMASK(asz);
	const bool back = cpu->rflags & X86_DF;
	const bool has_src = op != ST_STOS && op != ST_SCAS, has_dst = op != ST_LODS;
	const int64_t st = back ? -(int64_t)sz : (int64_t)sz;

	while (n) {
		uint64_t si = cpu->regs[X86_RSI] & am, di = cpu->regs[X86_RDI] & am;
		uint64_t sla = cpu->segbase[i->seg] + si, dla = cpu->segbase[X86_ES] + di;
		uint64_t cnt = n;
		if (has_dst) {
			cnt = MIN(cnt, elems_in_page(dla, sz, back));
			if (asz != 8) /* no wrap of the offset inside the chunk */
				cnt = MIN(cnt, elems_before_wrap(di, sz, am, back));
		}
		if (has_src) {
			cnt = MIN(cnt, elems_in_page(sla, sz, back));
			if (asz != 8)
				cnt = MIN(cnt, elems_before_wrap(si, sz, am, back));
		}
		if (!cnt)
			return n;
		uint64_t span = (cnt - 1) * sz; /* from the lowest element to the highest */
		uint8_t *s = NULL, *d = NULL;
		if (has_src) {
			s = tlb_ptr(cpu, back ? sla - span : sla, false);
			if (!s)
				return n;
			if (back)
				s += span; /* the first element */
		}
		if (has_dst) {
			d = tlb_ptr(cpu, back ? dla - span : dla, op == ST_MOVS || op == ST_STOS);
			if (!d)
				return n;
			if (back)
				d += span;
		}
		uint64_t k = cnt;
		bool stop = false;
		switch (op) {
		case ST_MOVS:
			if (!back && (d <= s || d >= s + cnt * sz)) {
				memmove(d, s, cnt * sz);
			} else if (back && (d >= s || d + sz <= s - span)) {
				memmove(d - span, s - span, cnt * sz);
			} else { /* element by element, as the hardware */
				for (uint64_t e = 0; e < cnt; e++) {
					uint64_t v = load_n(s + (int64_t)e * st, sz);
					memcpy(d + (int64_t)e * st, &v, sz);
				}
			}
			break;
		case ST_STOS: {
			uint8_t *lo = back ? d - span : d;
			size_t len = (size_t)(cnt * sz), done_b = sz;
			if (sz == 1) {
				memset(lo, (uint8_t)cpu->regs[X86_RAX], len);
				break;
			}
			uint64_t v = cpu->regs[X86_RAX];
			if (x86_zext(v, sz) == x86_zext(0x0101010101010101ull * (uint8_t)v, sz)) {
				memset(lo, (uint8_t)v, len); /* one repeated byte, e.g. zeroing */
				break;
			}
			for (; done_b <= len; done_b += sz)
				memcpy(lo + done_b - sz, &v, sz);
			break;
		}
		case ST_LODS:
			x86_set_reg(cpu, X86_RAX, sz, load_n(s + (int64_t)(cnt - 1) * st, sz));
			break;
		default: { /* CMPS, SCAS */
			uint64_t a = 0, b = 0;
			if (op == ST_SCAS && sz == 1 && rep == RP_REPNE && !back) {
				const uint8_t *p = memchr(d, (uint8_t)cpu->regs[X86_RAX], cnt);
				k = p ? (uint64_t)(p - d) + 1 : cnt;
				stop = p != NULL;
				a = (uint8_t)cpu->regs[X86_RAX];
				b = d[k - 1];
			} else {
				k = 0;
				if (op == ST_CMPS && rep == RP_REP && !back) {
					/* skip the equal words quickly; the loop below
					 * then finds the mismatching element */
					uint64_t len = cnt * sz, off = 0;
					while (off + 8 <= len && load_n(s + off, 8) == load_n(d + off, 8))
						off += 8;
					k = off / sz;
				}
				if (op == ST_SCAS)
					a = x86_get_reg(cpu, X86_RAX, sz);
				for (; k < cnt;) {
					if (op == ST_CMPS)
						a = load_n(s + (int64_t)k * st, sz);
					b = load_n(d + (int64_t)k * st, sz);
					k++;
					if (rep == RP_REP ? a != b : a == b) {
						stop = true;
						break;
					}
				}
			}
			x86_set_cc(cpu, CC_SUB, sz, x86_zext(a - b, sz), b, 0);
			break;
		}
		}
		if (has_src)
			x86_set_reg(cpu, X86_RSI, asz, si + (uint64_t)((int64_t)k * st));
		if (has_dst)
			x86_set_reg(cpu, X86_RDI, asz, di + (uint64_t)((int64_t)k * st));
		x86_set_reg(cpu, X86_RCX, asz, cpu->regs[X86_RCX] - k);
		n -= k;
		if (stop) {
			*done = true;
			return n;
		}
		if (n && want_yield(cpu)) {
			*yield = true;
			return n;
		}
	}
	return 0;
}

static X86_ALWAYS_INLINE const struct x86_insn *str_run(struct x86_cpu *cpu, const struct x86_insn *i,
							 unsigned op, unsigned sz, unsigned asz, unsigned rep)
{
	const uint64_t am = AMASK(asz);
	int64_t step = (cpu->rflags & X86_DF) ? -(int64_t)sz : (int64_t)sz;

	if (rep == RP_NONE) {
		str_elem(cpu, i, op, sz, asz, RP_NONE, step);
		return i + 1;
	}
	uint64_t n = cpu->regs[X86_RCX] & am;
	if (!n)
		return i + 1;
	/* MOVS/STOS/LODS ignore the REPE/REPNE condition. */
	unsigned cond = (op == ST_CMPS || op == ST_SCAS) ? rep : RP_NONE;
	for (unsigned k = 1;; k++) {
		{
			bool done = false, yield = false;
			n = str_fast(cpu, i, op, sz, asz, cond, n, &done, &yield);
			if (done || !n)
				return i + 1;
			if (yield)
				return restart(cpu, i);
		}
		/* One element through the accessors (TLB miss, MMIO, an element
		 * across pages or across the address-size wrap). */
		bool stop = str_elem(cpu, i, op, sz, asz, cond, step);
		x86_set_reg(cpu, X86_RCX, asz, cpu->regs[X86_RCX] - 1);
		if (stop || !--n)
			return i + 1;
		if (unlikely(k % YIELD_EVERY == 0) && want_yield(cpu))
			return restart(cpu, i);
	}
}


#define DEF_STR_R(name, OP, SZ, ASZ, REP, rn) \
	static X86_HANDLER(h_##name##SZ##_a##ASZ##_##rn) { return str_run(cpu, i, OP, SZ, ASZ, REP); }
#define DEF_STR_A(name, OP, SZ, ASZ)                      \
	DEF_STR_R(name, OP, SZ, ASZ, RP_NONE, n)          \
	DEF_STR_R(name, OP, SZ, ASZ, RP_REP, r)           \
	DEF_STR_R(name, OP, SZ, ASZ, RP_REPNE, rne)
#define DEF_STR_S(name, OP, SZ) \
	DEF_STR_A(name, OP, SZ, 2) DEF_STR_A(name, OP, SZ, 4) DEF_STR_A(name, OP, SZ, 8)
#define DEF_STR(name, OP) \
	DEF_STR_S(name, OP, 1) DEF_STR_S(name, OP, 2) DEF_STR_S(name, OP, 4) DEF_STR_S(name, OP, 8)

DEF_STR(movs, ST_MOVS)
DEF_STR(cmps, ST_CMPS)
DEF_STR(stos, ST_STOS)
DEF_STR(lods, ST_LODS)
DEF_STR(scas, ST_SCAS)

#define T_A(name, SZ, ASZ) { h_##name##SZ##_a##ASZ##_n, h_##name##SZ##_a##ASZ##_r, h_##name##SZ##_a##ASZ##_rne }
#define T_S(name, SZ) { T_A(name, SZ, 2), T_A(name, SZ, 4), T_A(name, SZ, 8) }
#define T_OP(name) { T_S(name, 1), T_S(name, 2), T_S(name, 4), T_S(name, 8) }

/* [op][log2 size][address size: 16, 32, 64][repeat kind] */
static const x86_handler_fn str_tab[5][4][3][3] = {
	T_OP(movs), T_OP(cmps), T_OP(stos), T_OP(lods), T_OP(scas),
};

bool x86_select_string(struct x86_insn *i, unsigned opc)
{
	unsigned op, rep;

	if (opc <= 0x6f) { /* INS/OUTS: I/O, #GP(0) in user mode */
		i->fn = x86_h_io;
		i->flags |= X86_IF_END;
		return true;
	}
	switch (opc & ~1u) {
	case 0xa4: op = ST_MOVS; break;
	case 0xa6: op = ST_CMPS; break;
	case 0xaa: op = ST_STOS; break;
	case 0xac: op = ST_LODS; break;
	default: op = ST_SCAS; break;
	}
	if (!(opc & 1))
		i->osz = 1;
	rep = (i->pfx & X86_PFX_REP) ? RP_REP : (i->pfx & X86_PFX_REPNE) ? RP_REPNE : RP_NONE;
	if (op != ST_CMPS && op != ST_SCAS && rep == RP_REPNE)
		rep = RP_REP; /* F2 repeats MOVS/STOS/LODS like F3 */
	i->fn = str_tab[op][x86_szlog(i->osz)][x86_szlog(i->asz) - 1][rep];
	return true;
}

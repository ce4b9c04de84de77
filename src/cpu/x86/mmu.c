/*
 * Address translation and the slow paths of guest memory access: the
 * soft TLB fill, accesses that cross a page, MMIO, canonical-address checks
 * and the self-modifying-code hook on stores to code pages.
 *
 * Translation today is the identity (user-program mode and paging off);
 * the page walk of long mode plugs into translate() with the PC machine.
 */
#include "cpu/x86/handlers.h"

#include <errno.h>

enum access { ACC_READ, ACC_WRITE, ACC_FETCH };

void x86_flush_tlb(struct x86_cpu *cpu)
{
	cpu->chain_gen++;
	for (unsigned k = 0; k < X86_TLB_SIZE; k++) {
		cpu->tlb[k].tag_r = cpu->tlb[k].tag_w = cpu->tlb[k].tag_x = X86_TLB_INVALID;
		cpu->tlb[k].ppn = ~0ull;
	}
}

void x86_flush_tlb_page(struct x86_cpu *cpu, uint64_t la)
{
	cpu->chain_gen++;
	/* Large pages are cached as 4 KiB entries: an INVLPG inside one must
	 * drop all of them, so flush everything when large pages are in use. */
	if (cpu->tlb_has_large) {
		x86_flush_tlb(cpu);
		cpu->tlb_has_large = false;
		return;
	}
	struct x86_tlb_entry *e = &cpu->tlb[(la >> 12) & (X86_TLB_SIZE - 1)];
	e->tag_r = e->tag_w = e->tag_x = X86_TLB_INVALID;
	e->ppn = ~0ull;
}

static bool canonical(uint64_t la)
{
	return (uint64_t)((int64_t)(la << 16) >> 16) == la;
}

static uint32_t pf_error(const struct x86_cpu *cpu, enum access acc, bool present)
{
	uint32_t e = present ? 1 : 0;
	if (acc == ACC_WRITE)
		e |= 2;
	if (cpu->mmu_idx)
		e |= 4;
	if (acc == ACC_FETCH && (cpu->efer & X86_EFER_NXE))
		e |= 16;
	return e;
}

/* Guest-physical 8-byte (or 4-byte) page-table entry access. */
static uint64_t *pte_ptr(struct x86_cpu *cpu, uint64_t pa)
{
	bool writable;
	uint8_t *page = cpu->mem_ops->page_ptr(cpu->mem_opaque, pa & X86_PAGE_MASK, &writable);
	return page ? (uint64_t *)(void *)(page + (pa & 0xff8)) : NULL;
}

#define PTE_P 1ull
#define PTE_W 2ull
#define PTE_U 4ull
#define PTE_A 0x20ull
#define PTE_D 0x40ull
#define PTE_PS 0x80ull
#define PTE_NX (1ull << 63)
#define PTE_ADDR 0x000ffffffffff000ull

struct walk {
	uint64_t pa;
	bool writable, user, exec, dirty, large;
};

/* Walks the page tables for la.  Raises #PF on a miss or a permission
 * violation for this access; sets accessed (and, for writes, dirty) bits. */
static void page_walk(struct x86_cpu *cpu, uint64_t la, enum access acc, struct walk *w)
{
	bool user_access = cpu->mmu_idx != 0;
	bool wp = (cpu->cr0 & X86_CR0_WP) != 0;
	bool nxe = (cpu->efer & X86_EFER_NXE) != 0;
	uint64_t rsvd_nx = nxe ? 0 : PTE_NX;
	uint64_t *ptes[5];
	int levels, n = 0;
	uint64_t table, e = 0;
	unsigned shift;

	w->writable = w->user = w->exec = true;
	w->large = false;
	if (cpu->efer & X86_EFER_LMA) {
		levels = 4;
		table = cpu->cr3 & PTE_ADDR;
		shift = 39;
	} else if (cpu->cr4 & X86_CR4_PAE) {
		/* PAE: the 4 PDPTEs are indexed by la[31:30] */
		uint64_t *p = pte_ptr(cpu, (cpu->cr3 & 0xffffffe0u) + ((la >> 30) & 3) * 8);
		if (!p || !(*p & PTE_P))
			x86_raise_pf(cpu, la, pf_error(cpu, acc, false));
		table = *p & PTE_ADDR;
		levels = 2;
		shift = 21;
	} else {
		/* 32-bit paging: 4-byte entries */
		uint32_t *pde, *pt;
		bool wr;
		uint8_t *pg = cpu->mem_ops->page_ptr(cpu->mem_opaque, cpu->cr3 & 0xfffff000u, &wr);
		if (!pg)
			x86_raise_pf(cpu, la, pf_error(cpu, acc, false));
		pde = (uint32_t *)(void *)(pg + ((la >> 22) & 0x3ff) * 4);
		uint32_t d = __atomic_load_n(pde, __ATOMIC_RELAXED);
		if (!(d & PTE_P))
			x86_raise_pf(cpu, la, pf_error(cpu, acc, false));
		w->writable = d & PTE_W;
		w->user = d & PTE_U;
		if ((d & PTE_PS) && (cpu->cr4 & X86_CR4_PSE)) {
			e = d;
			w->pa = ((uint64_t)(d & 0xffc00000u) | ((uint64_t)(d >> 13) & 0xff) << 32) | (la & 0x3fffff);
			w->large = true;
			goto check32;
		}
		pg = cpu->mem_ops->page_ptr(cpu->mem_opaque, d & 0xfffff000u, &wr);
		if (!pg)
			x86_raise_pf(cpu, la, pf_error(cpu, acc, false));
		pt = (uint32_t *)(void *)(pg + ((la >> 12) & 0x3ff) * 4);
		e = __atomic_load_n(pt, __ATOMIC_RELAXED);
		if (!(e & PTE_P))
			x86_raise_pf(cpu, la, pf_error(cpu, acc, false));
		w->writable = w->writable && (e & PTE_W);
		w->user = w->user && (e & PTE_U);
		w->pa = (e & 0xfffff000u) | (la & 0xfff);
		__atomic_fetch_or(pde, (uint32_t)PTE_A, __ATOMIC_RELAXED);
	check32:
		if ((user_access && !w->user) ||
		    (acc == ACC_WRITE && !w->writable && (user_access || wp)))
			x86_raise_pf(cpu, la, pf_error(cpu, acc, true));
		{
			uint32_t *leaf = w->large ? pde : pt;
			uint32_t set = (uint32_t)PTE_A | (acc == ACC_WRITE ? (uint32_t)PTE_D : 0);
			if ((e & set) != set)
				__atomic_fetch_or(leaf, set, __ATOMIC_RELAXED);
			w->dirty = (e & PTE_D) || acc == ACC_WRITE;
		}
		return;
	}
	for (int lvl = levels; lvl >= 1; lvl--) {
		uint64_t *p = pte_ptr(cpu, table + ((la >> shift) & 511) * 8);
		if (!p)
			x86_raise_pf(cpu, la, pf_error(cpu, acc, false));
		e = __atomic_load_n(p, __ATOMIC_RELAXED);
		if (!(e & PTE_P))
			x86_raise_pf(cpu, la, pf_error(cpu, acc, false));
		if (e & rsvd_nx)
			x86_raise_pf(cpu, la, pf_error(cpu, acc, true) | 8);
		ptes[n++] = p;
		w->writable = w->writable && (e & PTE_W);
		w->user = w->user && (e & PTE_U);
		w->exec = w->exec && !(e & PTE_NX);
		if (lvl == 1 || ((e & PTE_PS) && lvl == 2)) {
			uint64_t off_mask = (1ull << shift) - 1;
			w->pa = (e & PTE_ADDR & ~off_mask) | (la & off_mask);
			w->large = lvl > 1;
			break;
		}
		if (e & PTE_PS) /* 1 GiB pages are not advertised */
			x86_raise_pf(cpu, la, pf_error(cpu, acc, true) | 8);
		table = e & PTE_ADDR;
		shift -= 9;
	}
	if ((user_access && !w->user) ||
	    (acc == ACC_WRITE && !w->writable && (user_access || wp)) ||
	    (acc == ACC_FETCH && nxe && !w->exec))
		x86_raise_pf(cpu, la, pf_error(cpu, acc, true));
	/* Accessed bits on every level, dirty on the leaf for writes. */
	for (int k = 0; k < n - 1; k++)
		if (!(*ptes[k] & PTE_A))
			__atomic_fetch_or(ptes[k], PTE_A, __ATOMIC_RELAXED);
	uint64_t set = PTE_A | (acc == ACC_WRITE ? PTE_D : 0);
	if ((e & set) != set)
		__atomic_fetch_or(ptes[n - 1], set, __ATOMIC_RELAXED);
	w->dirty = (e & PTE_D) || acc == ACC_WRITE;
}

/* Linear to physical.  Raises #GP for a non-canonical address and #PF for
 * a paging fault. */
/* A non-canonical access: through SS (a memory operand with an RSP or RBP
 * base, ENTER, LEAVE) #SS, any other #GP. */
static _Noreturn void noncanonical(struct x86_cpu *cpu)
{
	const struct x86_insn *i = cpu->cur;
	x86_raise(cpu, (i && i->seg == X86_SS) ? X86_SS_FAULT : X86_GP, 0);
}

/* The whole of [la, la + len) must be canonical before any byte is
 * translated (an access running off the lower half faults so, not #PF). */
static inline void check_span(struct x86_cpu *cpu, uint64_t la, uint64_t len)
{
	if (cpu->code64 && !canonical(la + len - 1))
		noncanonical(cpu);
}

static uint64_t translate(struct x86_cpu *cpu, uint64_t la, enum access acc, struct walk *w)
{
	if (cpu->code64 && !canonical(la))
		noncanonical(cpu);
	if (!(cpu->cr0 & X86_CR0_PG) || cpu->user_mode) {
		w->pa = cpu->code64 ? la : (la & 0xffffffffu);
		w->writable = w->user = w->exec = w->dirty = true;
		w->large = false;
		return w->pa;
	}
	page_walk(cpu, la, acc, w);
	return w->pa;
}

/* Fills the TLB entry for la's page.  Returns the entry, or NULL when the
 * page is not RAM (MMIO); *pa gets the physical address of la. */
static struct x86_tlb_entry *tlb_fill(struct x86_cpu *cpu, uint64_t la, enum access acc, uint64_t *pa)
{
	uint64_t page = la & X86_PAGE_MASK, tag = page | cpu->mmu_idx;
	bool writable = true;
	struct walk w;
	*pa = translate(cpu, la, acc, &w);
	uint64_t ppage = *pa & X86_PAGE_MASK;
	uint8_t *host = cpu->mem_ops->page_ptr(cpu->mem_opaque, ppage, &writable);
	if (!host)
		return NULL;
	struct x86_tlb_entry *e = &cpu->tlb[(la >> 12) & (X86_TLB_SIZE - 1)];
	bool user_access = cpu->mmu_idx != 0;
	bool can_write = w.dirty && (w.writable || (!user_access && !(cpu->cr0 & X86_CR0_WP)));
	e->tag_r = tag;
	e->tag_x = w.exec || !(cpu->efer & X86_EFER_NXE) ? tag : X86_TLB_INVALID;
	e->ppn = ppage >> 12;
	e->tag_w = (writable && can_write && !x86_is_code_page(cpu, e->ppn)) ? tag : X86_TLB_INVALID;
	e->addend = (uintptr_t)host - (uintptr_t)page;
	if (w.large)
		cpu->tlb_has_large = true;
	if (acc == ACC_WRITE && !writable) {
		/* ROM: writes are dropped, as on a PC */
		return NULL;
	}
	return e;
}

/* One access that does not cross a page. */
static uint64_t read_in_page(struct x86_cpu *cpu, uint64_t la, unsigned size)
{
	uint64_t pa, v = 0;
	struct x86_tlb_entry *e = tlb_fill(cpu, la, ACC_READ, &pa);
	if (e) {
		memcpy(&v, (void *)(uintptr_t)(la + e->addend), size);
		return v;
	}
	if (cpu->mem_ops->mmio_read(cpu->mem_opaque, pa, size, &v) < 0)
		x86_raise_pf(cpu, la, pf_error(cpu, ACC_READ, false));
	return v;
}

/* Checks that la's page can be written, returning its host address or NULL
 * for MMIO (which is checked by performing the access). */
static uint8_t *write_target(struct x86_cpu *cpu, uint64_t la, uint64_t *pa)
{
	struct x86_tlb_entry *e = tlb_fill(cpu, la, ACC_WRITE, pa);
	if (!e)
		return NULL;
	if (x86_is_code_page(cpu, e->ppn)) {
		/* Self-modifying code: drop what was decoded from this page. */
		x86_invalidate_code_page(cpu, e->ppn);
		e->tag_w = (la & X86_PAGE_MASK) | cpu->mmu_idx;
	}
	return (uint8_t *)(uintptr_t)(la + e->addend);
}

static void write_in_page(struct x86_cpu *cpu, uint64_t la, unsigned size, uint64_t v)
{
	uint64_t pa;
	uint8_t *p = write_target(cpu, la, &pa);
	if (p) {
		memcpy(p, &v, size);
		return;
	}
	if (cpu->mem_ops->mmio_write(cpu->mem_opaque, pa, size, v) < 0)
		x86_raise_pf(cpu, la, pf_error(cpu, ACC_WRITE, false));
}

uint64_t x86_read_slow(struct x86_cpu *cpu, uint64_t la, unsigned size)
{
	check_span(cpu, la, size);
	unsigned first = 4096 - (unsigned)(la & 0xfff);
	if (first >= size)
		return read_in_page(cpu, la, size);
	uint64_t lo = 0, hi = 0;
	uint8_t b[16];
	for (unsigned k = 0; k < size; k++)
		b[k] = (uint8_t)read_in_page(cpu, la + k, 1);
	memcpy(&lo, b, size);
	(void)hi;
	return lo;
}

void x86_write_slow(struct x86_cpu *cpu, uint64_t la, unsigned size, uint64_t v)
{
	check_span(cpu, la, size);
	unsigned first = 4096 - (unsigned)(la & 0xfff);
	if (first >= size) {
		write_in_page(cpu, la, size, v);
		return;
	}
	/* Both pages must be writable before either is written. */
	x86_probe_write(cpu, la, size);
	for (unsigned k = 0; k < size; k++)
		write_in_page(cpu, la + k, 1, (uint8_t)(v >> (8 * k)));
}

void *x86_access_ptr(struct x86_cpu *cpu, uint64_t la, unsigned len, bool write)
{
	uint64_t pa;
	if (((la & 0xfff) + len) > 4096)
		return NULL;
	if (write)
		return write_target(cpu, la, &pa);
	struct x86_tlb_entry *e = tlb_fill(cpu, la, ACC_READ, &pa);
	if (!e) {
		uint64_t v;
		if (cpu->mem_ops->mmio_read(cpu->mem_opaque, pa, 1, &v) < 0)
			x86_raise_pf(cpu, la, pf_error(cpu, ACC_READ, false));
		return NULL;
	}
	return (void *)(uintptr_t)(la + e->addend);
}

void x86_probe_rmw(struct x86_cpu *cpu, uint64_t la, unsigned len)
{
	/* Translation and permissions as for a write (so that a fault has W
	 * set), but no probing read of MMIO, which has side effects: there the
	 * access itself faults.  In user-program mode non-RAM is simply
	 * unmapped and is probed as a write would be. */
	if (cpu->user_mode) {
		x86_probe_write(cpu, la, len);
		return;
	}
	check_span(cpu, la, len);
	uint64_t end = la + len - 1, pa;
	for (uint64_t p = la & X86_PAGE_MASK;; p += X86_PAGE_SIZE) {
		(void)tlb_fill(cpu, p < la ? la : p, ACC_WRITE, &pa);
		if (p >= (end & X86_PAGE_MASK))
			break;
	}
}

void x86_probe_write(struct x86_cpu *cpu, uint64_t la, size_t len)
{
	if (!len)
		return;
	check_span(cpu, la, len);
	uint64_t end = la + len - 1;
	for (uint64_t p = la & X86_PAGE_MASK;; p += X86_PAGE_SIZE) {
		uint64_t a = p < la ? la : p, pa;
		if (!tlb_fill(cpu, a, ACC_WRITE, &pa)) {
			/* MMIO: probe that something answers there */
			uint64_t v;
			if (cpu->mem_ops->mmio_read(cpu->mem_opaque, pa, 1, &v) < 0)
				x86_raise_pf(cpu, a, pf_error(cpu, ACC_WRITE, false));
		}
		if (p >= (end & X86_PAGE_MASK))
			break;
	}
}

void x86_read_mem(struct x86_cpu *cpu, uint64_t la, void *buf, size_t len)
{
	if (len)
		check_span(cpu, la, len);
	uint8_t *out = buf;
	while (len) {
		unsigned chunk = (unsigned)MIN(len, 4096 - (la & 0xfff));
		uint64_t pa;
		struct x86_tlb_entry *e = tlb_fill(cpu, la, ACC_READ, &pa);
		if (e) {
			memcpy(out, (void *)(uintptr_t)(la + e->addend), chunk);
		} else {
			for (unsigned k = 0; k < chunk; k++)
				out[k] = (uint8_t)read_in_page(cpu, la + k, 1);
		}
		out += chunk;
		la += chunk;
		len -= chunk;
	}
}

void x86_write_mem(struct x86_cpu *cpu, uint64_t la, const void *buf, size_t len)
{
	const uint8_t *in = buf;
	x86_probe_write(cpu, la, len);
	while (len) {
		unsigned chunk = (unsigned)MIN(len, 4096 - (la & 0xfff));
		uint64_t pa;
		uint8_t *p = write_target(cpu, la, &pa);
		if (p) {
			memcpy(p, in, chunk);
		} else {
			for (unsigned k = 0; k < chunk; k++)
				write_in_page(cpu, la + k, 1, in[k]);
		}
		in += chunk;
		la += chunk;
		len -= chunk;
	}
}

void x86_read128(struct x86_cpu *cpu, uint64_t la, x86_xmm *out, bool aligned)
{
	if (aligned && (la & 15))
		x86_raise(cpu, X86_GP, 0);
	struct x86_tlb_entry *e = &cpu->tlb[(la >> 12) & (X86_TLB_SIZE - 1)];
	if (likely(e->tag_r == ((la & X86_PAGE_MASK) | cpu->mmu_idx) && (la & 0xfff) <= 4096 - 16)) {
		memcpy(out, (void *)(uintptr_t)(la + e->addend), 16);
		return;
	}
	x86_read_mem(cpu, la, out, 16);
}

void x86_write128(struct x86_cpu *cpu, uint64_t la, const x86_xmm *v, bool aligned)
{
	if (aligned && (la & 15))
		x86_raise(cpu, X86_GP, 0);
	struct x86_tlb_entry *e = &cpu->tlb[(la >> 12) & (X86_TLB_SIZE - 1)];
	if (likely(e->tag_w == ((la & X86_PAGE_MASK) | cpu->mmu_idx) && (la & 0xfff) <= 4096 - 16)) {
		memcpy((void *)(uintptr_t)(la + e->addend), v, 16);
		return;
	}
	x86_write_mem(cpu, la, v, 16);
}

const uint8_t *x86_fetch_ptr(struct x86_cpu *cpu, uint64_t la, unsigned *avail, bool fault)
{
	struct x86_tlb_entry *e = &cpu->tlb[(la >> 12) & (X86_TLB_SIZE - 1)];
	*avail = 4096 - (unsigned)(la & 0xfff);
	if (likely(e->tag_x == ((la & X86_PAGE_MASK) | cpu->mmu_idx)))
		return (const uint8_t *)(uintptr_t)(la + e->addend);
	if (!fault && cpu->code64 && !canonical(la))
		return NULL;
	uint64_t pa;
	e = tlb_fill(cpu, la, ACC_FETCH, &pa);
	if (e)
		return (const uint8_t *)(uintptr_t)(la + e->addend);
	if (fault)
		x86_raise_pf(cpu, la, pf_error(cpu, ACC_FETCH, false));
	return NULL;
}

uint64_t x86_fetch_phys(struct x86_cpu *cpu, uint64_t la)
{
	struct x86_tlb_entry *e = &cpu->tlb[(la >> 12) & (X86_TLB_SIZE - 1)];
	if (likely(e->tag_x == ((la & X86_PAGE_MASK) | cpu->mmu_idx)))
		return (e->ppn << 12) | (la & 0xfff);
	unsigned avail;
	x86_fetch_ptr(cpu, la, &avail, true);
	e = &cpu->tlb[(la >> 12) & (X86_TLB_SIZE - 1)];
	return (e->ppn << 12) | (la & 0xfff);
}

const uint8_t *x86_fetch_probe(struct x86_cpu *cpu, uint64_t la, unsigned *avail)
{
	struct x86_tlb_entry *e = &cpu->tlb[(la >> 12) & (X86_TLB_SIZE - 1)];
	*avail = 4096 - (unsigned)(la & 0xfff);
	if (likely(e->tag_x == ((la & X86_PAGE_MASK) | cpu->mmu_idx)))
		return (const uint8_t *)(uintptr_t)(la + e->addend);
	if (cpu->code64 && !canonical(la))
		return NULL;
	/* A fault here belongs to a later instruction: catch it and keep the
	 * architectural state (CR2, the exit record) as it was. */
	jmp_buf saved;
	struct x86_exit saved_exit = *cpu->exit;
	uint64_t saved_cr2 = cpu->cr2;
	const struct x86_insn *saved_cur = cpu->cur;
	const uint8_t *volatile p = NULL;
	memcpy(saved, cpu->jmp, sizeof(saved));
	cpu->cur = NULL;
	if (setjmp(cpu->jmp) == 0) {
		uint64_t pa;
		e = tlb_fill(cpu, la, ACC_FETCH, &pa);
		if (e)
			p = (const uint8_t *)(uintptr_t)(la + e->addend);
	}
	memcpy(cpu->jmp, saved, sizeof(saved));
	*cpu->exit = saved_exit;
	cpu->cr2 = saved_cr2;
	cpu->cur = saved_cur;
	return p;
}

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
	for (unsigned k = 0; k < X86_TLB_SIZE; k++) {
		cpu->tlb[k].tag_r = cpu->tlb[k].tag_w = cpu->tlb[k].tag_x = 1;
		cpu->tlb[k].ppn = ~0ull;
	}
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
	if (cpu->cpl == 3)
		e |= 4;
	if (acc == ACC_FETCH)
		e |= 16;
	return e;
}

/* Linear to physical.  Raises #GP for a non-canonical address. */
static uint64_t translate(struct x86_cpu *cpu, uint64_t la, enum access acc)
{
	(void)acc;
	if (cpu->code64 && !canonical(la)) {
		/* An access through SS (a memory operand with an RSP or RBP base,
		 * ENTER, LEAVE) faults with #SS, any other with #GP. */
		const struct x86_insn *i = cpu->cur;
		x86_raise(cpu, (i && i->seg == X86_SS) ? X86_SS_FAULT : X86_GP, 0);
	}
	return la;
}

/* Fills the TLB entry for la's page.  Returns the entry, or NULL when the
 * page is not RAM (MMIO); *pa gets the physical address of la. */
static struct x86_tlb_entry *tlb_fill(struct x86_cpu *cpu, uint64_t la, enum access acc, uint64_t *pa)
{
	uint64_t page = la & X86_PAGE_MASK;
	bool writable = true;
	*pa = translate(cpu, la, acc);
	uint64_t ppage = *pa & X86_PAGE_MASK;
	uint8_t *host = cpu->mem_ops->page_ptr(cpu->mem_opaque, ppage, &writable);
	if (!host)
		return NULL;
	struct x86_tlb_entry *e = &cpu->tlb[(la >> 12) & (X86_TLB_SIZE - 1)];
	e->tag_r = page;
	e->tag_x = page;
	e->ppn = ppage >> 12;
	e->tag_w = (writable && !x86_is_code_page(cpu, e->ppn)) ? page : 1;
	e->addend = (uintptr_t)host - (uintptr_t)page;
	if (acc == ACC_WRITE && !writable)
		x86_raise_pf(cpu, la, pf_error(cpu, acc, true));
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
		e->tag_w = la & X86_PAGE_MASK;
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

void x86_probe_write(struct x86_cpu *cpu, uint64_t la, size_t len)
{
	if (!len)
		return;
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
	if (likely(e->tag_r == (la & X86_PAGE_MASK) && (la & 0xfff) <= 4096 - 16)) {
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
	if (likely(e->tag_w == (la & X86_PAGE_MASK) && (la & 0xfff) <= 4096 - 16)) {
		memcpy((void *)(uintptr_t)(la + e->addend), v, 16);
		return;
	}
	x86_write_mem(cpu, la, v, 16);
}

const uint8_t *x86_fetch_ptr(struct x86_cpu *cpu, uint64_t la, unsigned *avail, bool fault)
{
	struct x86_tlb_entry *e = &cpu->tlb[(la >> 12) & (X86_TLB_SIZE - 1)];
	*avail = 4096 - (unsigned)(la & 0xfff);
	if (likely(e->tag_x == (la & X86_PAGE_MASK)))
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
	if (likely(e->tag_x == (la & X86_PAGE_MASK)))
		return (e->ppn << 12) | (la & 0xfff);
	unsigned avail;
	x86_fetch_ptr(cpu, la, &avail, true);
	e = &cpu->tlb[(la >> 12) & (X86_TLB_SIZE - 1)];
	return (e->ppn << 12) | (la & 0xfff);
}

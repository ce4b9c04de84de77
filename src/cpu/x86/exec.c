/*
 * The executor: decoded-block cache, the run loop, exceptions in
 * user-program mode, CPU creation and state transfer.
 *
 * Blocks are keyed by linear RIP and validated against the physical page
 * they were decoded from and the decoding mode.  Each code page keeps a
 * list of its blocks; a write to a code page (which always takes the slow
 * store path: the TLB never holds a write tag for such a page) invalidates
 * them by pointing every instruction's handler at h_stale, so a block that
 * is running when it is modified stops at its next instruction.  Blocks
 * live in an arena that is reset, with every index, when it fills up; that
 * only happens between blocks.
 */
#include "cpu/x86/handlers.h"
#include "cpu/x86/sys.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#define ARENA_BYTES (64u << 20)
#define HASH_BITS 15
#define JC_BITS 12
#define PAGE_HASH_BITS 12
#define MAX_BLOCK_INSNS 64

struct x86_block {
	uint64_t rip;
	uint64_t phys;   /* guest-physical address of the first byte */
	uint32_t mode;   /* decoding mode key */
	uint32_t ninsns;
	bool valid;
	struct x86_block *hnext;
	/* direct chaining: the blocks that followed this one, valid while
	 * cpu->chain_gen is what it was when they were recorded */
	struct x86_block *succ[2];
	uint64_t succ_rip[2];
	uint64_t succ_gen[2];
	struct x86_insn insns[];
};

struct blk_link {
	struct x86_block *b;
	struct blk_link *next;
};

struct code_page {
	uint64_t ppn;
	struct blk_link *blocks;
	struct code_page *next;
};

struct x86_code_cache {
	uint8_t *arena;
	size_t used;
	struct x86_block *hash[1u << HASH_BITS];
	struct x86_block *jc[1u << JC_BITS];
	struct code_page *pages[1u << PAGE_HASH_BITS];
	uint64_t nflushes;
};

static void *arena_alloc(struct x86_code_cache *cc, size_t n)
{
	n = ALIGN_UP(n, 16);
	if (cc->used + n > ARENA_BYTES)
		return NULL;
	void *p = cc->arena + cc->used;
	cc->used += n;
	return p;
}

static void cache_flush(struct x86_cpu *cpu)
{
	struct x86_code_cache *cc = cpu->code;

	cc->used = 0;
	memset(cc->hash, 0, sizeof(cc->hash));
	memset(cc->jc, 0, sizeof(cc->jc));
	memset(cc->pages, 0, sizeof(cc->pages));
	cc->nflushes++;
	cpu->chain_gen++;
	cpu->prev_block = NULL;
	/* Pages are no longer code pages: let writes use the fast path. */
	x86_flush_tlb(cpu);
}

static inline unsigned hash_rip(uint64_t rip, unsigned bits)
{
	return (unsigned)((rip ^ (rip >> bits) ^ (rip >> (2 * bits))) & ((1u << bits) - 1));
}

static struct code_page *code_page_find(struct x86_code_cache *cc, uint64_t ppn)
{
	for (struct code_page *p = cc->pages[hash_rip(ppn, PAGE_HASH_BITS)]; p; p = p->next)
		if (p->ppn == ppn)
			return p;
	return NULL;
}

bool x86_is_code_page(struct x86_cpu *cpu, uint64_t ppn)
{
	return code_page_find(cpu->code, ppn) != NULL;
}

static X86_HANDLER(h_stale)
{
	/* This instruction's code changed: re-decode from here. */
	cpu->rip = i->next_rip - i->len;
	cpu->icount -= i->left;
	return NULL;
}

void x86_invalidate_code_page(struct x86_cpu *cpu, uint64_t ppn)
{
	struct x86_code_cache *cc = cpu->code;
	struct code_page **pp = &cc->pages[hash_rip(ppn, PAGE_HASH_BITS)];

	while (*pp && (*pp)->ppn != ppn)
		pp = &(*pp)->next;
	if (!*pp)
		return;
	struct code_page *page = *pp;
	*pp = page->next;
	for (struct blk_link *l = page->blocks; l; l = l->next) {
		struct x86_block *b = l->b;
		if (!b->valid)
			continue;
		b->valid = false;
		for (uint32_t k = 0; k < b->ninsns; k++)
			b->insns[k].fn = h_stale;
		struct x86_block **hp = &cc->hash[hash_rip(b->rip, HASH_BITS)];
		while (*hp && *hp != b)
			hp = &(*hp)->hnext;
		if (*hp)
			*hp = b->hnext;
		unsigned j = hash_rip(b->rip, JC_BITS);
		if (cc->jc[j] == b)
			cc->jc[j] = NULL;
	}
}

void x86_invalidate_code(struct x86_cpu *cpu, uint64_t gpa, uint64_t len)
{
	if (!len)
		return;
	for (uint64_t p = gpa >> 12; p <= (gpa + len - 1) >> 12; p++)
		x86_invalidate_code_page(cpu, p);
}

static int add_block_to_page(struct x86_cpu *cpu, struct x86_block *b, uint64_t ppn)
{
	struct x86_code_cache *cc = cpu->code;
	struct code_page *page = code_page_find(cc, ppn);

	if (!page) {
		page = arena_alloc(cc, sizeof(*page));
		if (!page)
			return -ENOMEM;
		page->ppn = ppn;
		page->blocks = NULL;
		unsigned h = hash_rip(ppn, PAGE_HASH_BITS);
		page->next = cc->pages[h];
		cc->pages[h] = page;
		/* From now on writes to this page take the slow path. */
		for (unsigned k = 0; k < X86_TLB_SIZE; k++)
			if (cpu->tlb[k].ppn == ppn)
				cpu->tlb[k].tag_w = X86_TLB_INVALID;
	}
	struct blk_link *l = arena_alloc(cc, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->b = b;
	l->next = page->blocks;
	page->blocks = l;
	return 0;
}

static inline uint32_t mode_key(const struct x86_cpu *cpu)
{
	return (uint32_t)cpu->code64 | ((cpu->seg[X86_CS].attr & 0x400) ? 2u : 0u) | (cpu->cpl << 2);
}

/* Decodes a block at cpu->rip.  Returns NULL when the arena is full. */
/* Announces that code is read from page ppn (x86_cpu_config.code_bitmap):
 * a full barrier, so that a DMA writer either sees the bit or finished
 * writing before the CPU reads the bytes. */
static inline void mark_code_page(struct x86_cpu *cpu, uint64_t ppn)
{
	if (!cpu->code_bitmap || ppn >= cpu->code_bitmap_pages)
		return;
	uint64_t bit = 1ull << (ppn % 64);
	if (!(__atomic_load_n(&cpu->code_bitmap[ppn / 64], __ATOMIC_RELAXED) & bit))
		__atomic_fetch_or(&cpu->code_bitmap[ppn / 64], bit, __ATOMIC_SEQ_CST);
	else
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static struct x86_block *translate(struct x86_cpu *cpu, uint64_t phys)
{
	struct x86_code_cache *cc = cpu->code;
	unsigned max = cpu->max_block_insns;
	size_t need = sizeof(struct x86_block) + (max + 1) * sizeof(struct x86_insn);
	struct x86_block *b;
	/* rip is the offset in CS; code is fetched at CS.base + rip (the
	 * base is 0 in 64-bit mode) */
	uint64_t rip = cpu->rip, page2 = ~0ull, csbase = cpu->segbase[X86_CS];
	uint32_t n = 0;

	if (cc->used + need > ARENA_BYTES)
		return NULL;
	b = (struct x86_block *)(cc->arena + cc->used);
	mark_code_page(cpu, phys >> 12);
	for (;;) {
		uint8_t buf[16];
		unsigned avail;
		const uint8_t *bytes;
		struct x86_insn *i = &b->insns[n];

		/* Fetch: the rest of the page directly, or a copy across it. */
		bytes = n == 0 ? x86_fetch_ptr(cpu, csbase + rip, &avail, true)
			       : x86_fetch_probe(cpu, csbase + rip, &avail);
		if (!bytes)
			break; /* the fetch fault happens when rip gets here */
		if (avail < 15) {
			memcpy(buf, bytes, avail);
			unsigned more = 0;
			const uint8_t *b2 = x86_fetch_probe(cpu, csbase + rip + avail, &more);
			int r = x86_decode(cpu, rip, bytes, avail, i);
			if (r == -EAGAIN) {
				if (!b2) {
					if (n == 0) /* let the fetch of the second page fault */
						x86_fetch_ptr(cpu, csbase + rip + avail, &more, true);
					break;
				}
				page2 = x86_fetch_phys(cpu, csbase + rip + avail) >> 12;
				mark_code_page(cpu, page2);
				memcpy(buf + avail, b2, MIN(more, 15u - avail));
				x86_decode(cpu, rip, buf, 15, i);
			}
		} else {
			x86_decode(cpu, rip, bytes, 15, i);
		}
		n++;
		rip = i->next_rip;
		if ((i->flags & X86_IF_END) || n >= max || page2 != ~0ull ||
		    ((csbase + rip) & 0xfff) == 0)
			break;
	}
	/* Sentinel: continue at the next instruction in a new block. */
	struct x86_insn *end = &b->insns[n];
	memset(end, 0, sizeof(*end));
	end->fn = x86_h_end_block;
	end->next_rip = rip;
	for (uint32_t k = 0; k < n; k++)
		b->insns[k].left = (uint8_t)(n - k);
	b->rip = cpu->rip;
	b->phys = phys;
	b->mode = mode_key(cpu);
	b->ninsns = n;
	b->valid = true;
	b->succ[0] = b->succ[1] = NULL;
	b->succ_rip[0] = b->succ_rip[1] = ~0ull;
	cc->used += ALIGN_UP(sizeof(struct x86_block) + (n + 1) * sizeof(struct x86_insn), 16);
	if (add_block_to_page(cpu, b, phys >> 12) < 0 ||
	    (page2 != ~0ull && add_block_to_page(cpu, b, page2) < 0))
		return NULL;
	unsigned h = hash_rip(b->rip, HASH_BITS);
	b->hnext = cc->hash[h];
	cc->hash[h] = b;
	return b;
}

static struct x86_block *lookup(struct x86_cpu *cpu)
{
	struct x86_code_cache *cc = cpu->code;
	uint64_t rip = cpu->rip;
	unsigned j = hash_rip(rip, JC_BITS);
	struct x86_block *b = cc->jc[j];
	uint64_t phys = x86_fetch_phys(cpu, rip + cpu->segbase[X86_CS]); /* may fault */
	uint32_t mode = mode_key(cpu);

	if (b && b->rip == rip && b->phys == phys && b->mode == mode)
		return b;
	for (b = cc->hash[hash_rip(rip, HASH_BITS)]; b; b = b->hnext)
		if (b->rip == rip && b->phys == phys && b->mode == mode)
			break;
	if (!b) {
		b = translate(cpu, phys);
		if (!b) {
			cache_flush(cpu);
			b = translate(cpu, phys);
			if (!b)
				abort(); /* one block always fits in an empty arena */
		}
	}
	cc->jc[j] = b;
	return b;
}

_Noreturn void x86_raise(struct x86_cpu *cpu, unsigned vector, uint32_t error_code)
{
	const struct x86_insn *i = cpu->cur;

	if (i) {
		cpu->rip = i->next_rip - i->len;
		cpu->icount -= i->left;
	}
	cpu->exit->reason = X86_EXIT_EXCEPTION;
	cpu->exit->vector = (uint8_t)vector;
	cpu->exit->error_code = error_code;
	longjmp(cpu->jmp, 1);
}

_Noreturn void x86_raise_pf(struct x86_cpu *cpu, uint64_t la, uint32_t error_code)
{
	cpu->cr2 = la;
	cpu->exit->fault_addr = la;
	x86_raise(cpu, X86_PF_FAULT, error_code);
}

void x86_run(struct x86_cpu *cpu, uint64_t max_insns, struct x86_exit *exit)
{
	int r;

	memset(exit, 0, sizeof(*exit));
	cpu->exit = exit;
	cpu->icount_limit = cpu->icount + max_insns;
	cpu->mmu_idx = cpu->cpl == 3;
	r = setjmp(cpu->jmp);
	cpu->prev_block = NULL;
	if (r == 2) {
		if (cpu->cur)
			cpu->icount -= cpu->cur->left - 1u; /* it completed */
		cpu->cur = NULL;
		return;
	}
	if (r == 1) {
		cpu->cur = NULL;
		if (cpu->user_mode)
			return;
		/* System mode: deliver it; a fault while delivering comes back
		 * here as a #DF, a third one ends as X86_EXIT_SHUTDOWN. */
		x86_deliver_exception(cpu);
		memset(exit, 0, sizeof(*exit));
	}
	if (cpu->halted && !x86_cpu_can_take_intr(cpu)) {
		exit->reason = X86_EXIT_HLT;
		return;
	}
	for (;;) {
		if (unlikely(cpu->exit_request)) {
			cpu->exit_request = 0;
			exit->reason = X86_EXIT_REQUEST;
			return;
		}
		if (unlikely(cpu->icount >= cpu->icount_limit)) {
			exit->reason = X86_EXIT_ICOUNT;
			return;
		}
		if (unlikely(cpu->intr_line | cpu->nmi_pending | cpu->intr_shadow))
			x86_check_interrupts(cpu);
		cpu->cur = NULL;
		struct x86_block *b = NULL, *prev = cpu->prev_block;
		uint64_t rip = cpu->rip;
		if (prev) {
			unsigned k = prev->succ_rip[1] == rip;
			if (prev->succ_rip[k] == rip && prev->succ_gen[k] == cpu->chain_gen &&
			    prev->succ[k]->valid)
				b = prev->succ[k];
		}
		if (!b) {
			b = lookup(cpu); /* may flush the cache, and prev with it */
			prev = cpu->prev_block;
			if (prev) {
				unsigned k = (prev->succ_rip[0] == ~0ull || prev->succ_gen[0] != cpu->chain_gen) ? 0 : 1;
				prev->succ[k] = b;
				prev->succ_rip[k] = rip;
				prev->succ_gen[k] = cpu->chain_gen;
			}
		}
		cpu->prev_block = b;
		cpu->icount += b->ninsns;
		const struct x86_insn *i = b->insns;
		do {
			cpu->cur = i;
			i = i->fn(cpu, i);
		} while (i);
	}
}

uint64_t x86_icount(const struct x86_cpu *cpu)
{
	return cpu->icount;
}

void x86_cpu_request_exit(struct x86_cpu *cpu)
{
	cpu->exit_request = 1;
}

static void reset_user_mode(struct x86_cpu *cpu)
{
	cpu->code64 = 1;
	cpu->cpl = 3;
	cpu->mmu_idx = 1;
	cpu->seg[X86_CS].sel = 0x33;
	cpu->seg[X86_CS].attr = 0x2fb; /* present, DPL3, code, L */
	cpu->seg[X86_SS].sel = 0x2b;
	cpu->seg[X86_SS].attr = 0x4f3;
	for (unsigned s = 0; s < 6; s++) {
		cpu->seg[s].limit = 0xffffffff;
		if (s != X86_CS && s != X86_SS)
			cpu->seg[s].attr = 0x4f3;
	}
	cpu->efer = 0x500 | 1; /* LME | LMA | SCE */
	cpu->cr0 = 0x80050033;
	cpu->cr4 = 0x600; /* OSFXSR | OSXMMEXCPT */
}

struct x86_cpu *x86_cpu_new(const struct x86_mem_ops *ops, void *opaque,
			    const struct x86_cpu_config *cfg)
{
	struct x86_cpu *cpu = aligned_alloc(64, ALIGN_UP(sizeof(*cpu), 64));
	if (!cpu)
		return NULL;
	memset(cpu, 0, sizeof(*cpu));
	cpu->code = calloc(1, sizeof(*cpu->code));
	if (!cpu->code)
		goto fail;
	cpu->code->arena = mmap(NULL, ARENA_BYTES, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (cpu->code->arena == MAP_FAILED)
		goto fail;
	cpu->mem_ops = ops;
	cpu->mem_opaque = opaque;
	cpu->user_mode = cfg->user_mode;
	cpu->code_bitmap = cfg->code_bitmap;
	cpu->code_bitmap_pages = cfg->code_bitmap_pages;
	cpu->max_block_insns = cfg->max_block_insns ? MIN(cfg->max_block_insns, MAX_BLOCK_INSNS) : MAX_BLOCK_INSNS;
	cpu->sp_mask = ~0ull;
	cpu->rflags = 2;
	cpu->mxcsr = 0x1f80;
	x86_set_arith_flags(cpu, 0);
	x86_fpu_reset(cpu);
	cpu->sys_ops = cfg->sys_ops;
	cpu->sys_opaque = cfg->sys_opaque;
	cpu->apic = cfg->apic;
	cpu->apic_id = cfg->apic_id;
	if (cfg->user_mode) {
		reset_user_mode(cpu);
	} else {
		/* The architectural reset state: real mode at F000:FFF0. */
		cpu->cr0 = 0x60000010;
		for (unsigned s = 0; s < 6; s++) {
			cpu->seg[s].limit = 0xffff;
			cpu->seg[s].attr = X86_SEG_P | X86_SEG_S | 0x3;
		}
		cpu->seg[X86_CS].sel = 0xf000;
		cpu->seg[X86_CS].base = 0xffff0000;
		cpu->seg[X86_CS].attr = X86_SEG_P | X86_SEG_S | 0xb;
		cpu->idtr.limit = 0xffff;
		cpu->gdtr.limit = 0xffff;
		cpu->ldtr.limit = 0xffff;
		cpu->ldtr.attr = X86_SEG_P | 0x2;
		cpu->tr.limit = 0xffff;
		cpu->tr.attr = X86_SEG_P | 0xb;
		cpu->rip = 0xfff0;
		cpu->regs[X86_RDX] = 0x600; /* family 6 */
		cpu->pat = 0x0007040600070406ull;
		x86_update_mode(cpu);
	}
	x86_flush_tlb(cpu);
	return cpu;
fail:
	if (cpu->code)
		free(cpu->code);
	free(cpu);
	return NULL;
}

void x86_cpu_free(struct x86_cpu *cpu)
{
	if (!cpu)
		return;
	munmap(cpu->code->arena, ARENA_BYTES);
	free(cpu->code);
	free(cpu);
}


void x86_get_state(struct x86_cpu *cpu, struct x86_state *st)
{
	memset(st, 0, sizeof(*st));
	memcpy(st->gpr, cpu->regs, sizeof(st->gpr));
	st->rip = cpu->rip;
	st->rflags = x86_flags(cpu);
	memcpy(st->seg, cpu->seg, sizeof(st->seg));
	st->ldtr = cpu->ldtr;
	st->tr = cpu->tr;
	st->gdtr = cpu->gdtr;
	st->idtr = cpu->idtr;
	st->cr0 = cpu->cr0;
	st->cr2 = cpu->cr2;
	st->cr3 = cpu->cr3;
	st->cr4 = cpu->cr4;
	st->cr8 = cpu->cr8;
	st->efer = cpu->efer;
	st->tsc = x86_rdtsc(cpu);
	x86_fpu_to_fxsave(cpu, &st->fx);
	st->fx.mxcsr = cpu->mxcsr;
	st->fx.mxcsr_mask = 0xffff;
	memcpy(st->fx.xmm, cpu->xmm, sizeof(st->fx.xmm));
}

void x86_set_state(struct x86_cpu *cpu, const struct x86_state *st)
{
	memcpy(cpu->regs, st->gpr, sizeof(st->gpr));
	cpu->regs[X86_NOREG] = 0;
	cpu->rip = st->rip;
	cpu->rflags = (st->rflags & ~(uint64_t)X86_ARITH_FLAGS) | 2;
	x86_set_arith_flags(cpu, (uint32_t)st->rflags);
	memcpy(cpu->seg, st->seg, sizeof(cpu->seg));
	cpu->ldtr = st->ldtr;
	cpu->tr = st->tr;
	cpu->gdtr = st->gdtr;
	cpu->idtr = st->idtr;
	cpu->cr0 = st->cr0;
	cpu->cr2 = st->cr2;
	cpu->cr3 = st->cr3;
	cpu->cr4 = st->cr4;
	cpu->cr8 = st->cr8;
	cpu->efer = st->efer;
	cpu->tsc_offset = st->tsc - clock_ns();
	cpu->halted = false;
	x86_fpu_from_fxsave(cpu, &st->fx);
	cpu->mxcsr = st->fx.mxcsr;
	memcpy(cpu->xmm, st->fx.xmm, sizeof(cpu->xmm));
	x86_update_mode(cpu);
	x86_flush_tlb(cpu);
}

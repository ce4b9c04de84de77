/*
 * Internal contract of the software x86-64 CPU, shared by its instruction
 * families (one .c per family) and not visible outside cpu/x86.
 *
 * Execution model.  The decoder turns guest code into blocks of struct
 * x86_insn, each carrying a handler pointer and its pre-decoded operands.
 * The executor runs a block by calling i = i->fn(cpu, i) until a handler
 * returns NULL (a branch, or anything that changes control flow or mode sets
 * cpu->rip and returns NULL).  Handlers for the common forms are specialised
 * by operand size and register/memory form, so they test nothing at run
 * time that the decoder already knew.
 *
 * Faults.  A handler that faults calls x86_raise(), which longjmps back to
 * the executor; cpu->cur is the faulting instruction and no architectural
 * state of that instruction has been committed (handlers read and check
 * everything before they write registers; a store that can fault is done
 * before the register updates that go with it).
 *
 * Flags.  Arithmetic flags are lazy: cc_op names the last flag-setting
 * operation and its size; cc_dst, cc_src and cc_src2 hold its result and
 * operands.  x86_flags() materialises them; x86_cond() evaluates a
 * condition code, with fast paths for the common producers.
 */
#ifndef MAQUINA_CPU_X86_INT_H
#define MAQUINA_CPU_X86_INT_H

#include "core/core.h"
#include "cpu/x86/x86.h"

#include <setjmp.h>
#include <string.h>

#define X86_NOREG 16 /* base/index slot that always reads zero */
#define X86_SEG_NONE 6

#define X86_PAGE_SIZE 4096ull
#define X86_PAGE_MASK (~(X86_PAGE_SIZE - 1))

/* Control registers, EFER and MSRs. */
#define X86_CR0_PE (1ull << 0)
#define X86_CR0_MP (1ull << 1)
#define X86_CR0_EM (1ull << 2)
#define X86_CR0_TS (1ull << 3)
#define X86_CR0_ET (1ull << 4)
#define X86_CR0_NE (1ull << 5)
#define X86_CR0_WP (1ull << 16)
#define X86_CR0_AM (1ull << 18)
#define X86_CR0_NW (1ull << 29)
#define X86_CR0_CD (1ull << 30)
#define X86_CR0_PG (1ull << 31)
#define X86_CR4_VME (1ull << 0)
#define X86_CR4_PVI (1ull << 1)
#define X86_CR4_TSD (1ull << 2)
#define X86_CR4_DE (1ull << 3)
#define X86_CR4_PSE (1ull << 4)
#define X86_CR4_PAE (1ull << 5)
#define X86_CR4_MCE (1ull << 6)
#define X86_CR4_PGE (1ull << 7)
#define X86_CR4_PCE (1ull << 8)
#define X86_CR4_OSFXSR (1ull << 9)
#define X86_CR4_OSXMMEXCPT (1ull << 10)
#define X86_EFER_SCE (1ull << 0)
#define X86_EFER_LME (1ull << 8)
#define X86_EFER_LMA (1ull << 10)
#define X86_EFER_NXE (1ull << 11)

/* Prefix flags kept in struct x86_insn.pfx. */
#define X86_PFX_LOCK 0x01
#define X86_PFX_REP 0x02   /* F3 */
#define X86_PFX_REPNE 0x04 /* F2 */
#define X86_PFX_OPSZ 0x08  /* 66 */
#define X86_PFX_ADSZ 0x10  /* 67 */
#define X86_PFX_REX 0x20   /* any REX */
#define X86_PFX_REXW 0x40

struct x86_cpu;
struct x86_insn;
typedef const struct x86_insn *(*x86_handler_fn)(struct x86_cpu *cpu,
						 const struct x86_insn *i);

struct x86_insn {
	x86_handler_fn fn;
	uint64_t next_rip;
	uint64_t imm;   /* immediate, already sign- or zero-extended */
	uint64_t disp;  /* displacement; RIP-relative: the absolute target */
	uint64_t amask; /* address-size mask */
	uint16_t op;    /* map << 8 | opcode; maps: 0 one-byte, 1 0F, 2 0F38, 3 0F3A */
	uint8_t len;
	uint8_t osz;    /* operand size in bytes */
	uint8_t asz;    /* address size in bytes */
	uint8_t modrm;
	uint8_t reg;    /* ModRM.reg with REX.R; 8-bit operands: see x86_r8() */
	uint8_t rm;     /* ModRM.rm with REX.B (register forms) */
	uint8_t base;   /* memory forms: base register or X86_NOREG */
	uint8_t index;  /* index register or X86_NOREG */
	uint8_t scale;  /* log2 of the scale */
	uint8_t seg;    /* enum x86_sreg of the access, or X86_SEG_NONE */
	uint8_t pfx;    /* X86_PFX_* */
	uint8_t is_mem; /* ModRM names memory */
	uint8_t imm2;   /* second immediate (ENTER) */
	uint8_t aux;    /* handler-specific: ALU op, condition code, ... */
	uint8_t left;   /* instructions from this one to the block's end */
	uint8_t flags;  /* X86_IF_* decode-time properties */
	uint8_t rex;    /* the REX byte, or 0 */
};

/* struct x86_insn.flags */
#define X86_IF_END 0x01    /* ends its block (control transfer, mode change) */
#define X86_IF_LOCKOK 0x02 /* a LOCK prefix is allowed on this form */

/* Lazy-flag producers; the low two bits of cc_op are log2(size). */
enum x86_cc_op {
	CC_EFLAGS = 0, /* flags materialised in cc_src */
	CC_ADD = 1 << 2,
	CC_ADC = 2 << 2,
	CC_SUB = 3 << 2,
	CC_SBB = 4 << 2,
	CC_LOGIC = 5 << 2,
	CC_INC = 6 << 2, /* cc_src2: the CF to keep */
	CC_DEC = 7 << 2,
	CC_SHL = 8 << 2, /* cc_src: value shifted by count-1 */
	CC_SHR = 9 << 2, /* cc_src2: the original value (OF) */
	CC_SAR = 10 << 2,
	CC_MUL = 11 << 2, /* CF = OF = cc_src != 0 */
};

struct x86_tlb_entry {
	uint64_t tag_r; /* linear page address | mmu_idx, or X86_TLB_INVALID */
	uint64_t tag_w;
	uint64_t tag_x;
	uintptr_t addend; /* host address - linear address */
	uint64_t ppn;     /* guest-physical page number */
};

#define X86_TLB_INVALID 2ull /* matches no page | mmu_idx */
#define X86_TLB_BITS 10
#define X86_TLB_SIZE (1u << X86_TLB_BITS)

struct x86_block;

typedef union {
	uint8_t b[16];
	int8_t sb[16];
	uint16_t w[8];
	int16_t sw[8];
	uint32_t d[4];
	int32_t sd[4];
	uint64_t q[2];
	int64_t sq[2];
	float f[4];
	double fd[2];
} __attribute__((aligned(16))) x86_xmm;

/* x87 register: an 80-bit extended value in host long double format. */
struct x86_fpu {
	long double st[8]; /* physical registers R0..R7 */
	uint16_t fcw, fsw; /* fsw: TOP is kept in top, not in fsw */
	uint8_t top;
	uint8_t tag_valid; /* bit i: physical register i valid (not empty) */
	uint16_t fop;
	uint64_t fip, fdp;
};

struct x86_cpu {
	uint64_t regs[17]; /* RAX..R15, then a slot that is always 0 */
	uint64_t rip;
	/* lazy flags */
	uint64_t cc_dst, cc_src, cc_src2;
	uint32_t cc_op;
	uint32_t cpl;
	uint32_t mmu_idx;   /* 1 when CPL is 3 (user accesses), else 0: part of TLB tags */
	uint64_t rflags; /* non-arithmetic bits (and bit 1) */
	uint64_t segbase[7]; /* effective bases used in address arithmetic */
	uint64_t sp_mask;    /* stack-pointer width: ~0, 0xffffffff or 0xffff */

	struct x86_tlb_entry tlb[X86_TLB_SIZE];

	x86_xmm xmm[16];
	uint32_t mxcsr;
	struct x86_fpu fpu;

	struct x86_segment seg[6];
	struct x86_segment ldtr, tr;
	struct x86_dtable gdtr, idtr;
	uint64_t cr0, cr2, cr3, cr4, cr8, efer;
	uint64_t tsc_offset;
	uint64_t fs_base_msr, gs_base_msr, kernel_gs_base;

	/* execution */
	const struct x86_insn *cur; /* instruction being executed */
	uint64_t icount;
	uint64_t icount_limit;
	volatile int exit_request;
	struct x86_exit *exit;
	jmp_buf jmp;
	int code64; /* decoding mode: 64-bit code segment */
	unsigned max_block_insns;
	bool user_mode;
	uint64_t *code_bitmap; /* see x86_cpu_config */
	uint64_t code_bitmap_pages;
	bool tlb_has_large;
	bool apic;
	uint8_t apic_id;
	/* system mode */
	const struct x86_sys_ops *sys_ops;
	void *sys_opaque;
	volatile int intr_line;  /* INTR level from the interrupt controller */
	volatile int nmi_pending;
	int nmi_blocked;         /* an NMI handler runs until IRET */
	int intr_shadow;         /* STI / MOV SS: no interrupt before the next block */
	int delivering;          /* vector being delivered + 1, for #DF / triple fault */
	bool halted;
	uint64_t star, lstar, cstar, sfmask;
	uint64_t sysenter_cs, sysenter_esp, sysenter_eip;
	uint64_t pat, misc_enable, mtrr_def_type;
	uint64_t dr[8];

	const struct x86_mem_ops *mem_ops;
	void *mem_opaque;

	struct x86_code_cache *code;
	struct x86_block *prev_block; /* the block that ran last (chaining) */
	uint64_t chain_gen;           /* bumped when translations or the mode change */
};

/* --- registers ---------------------------------------------------------- */

static inline uint8_t *x86_r8(struct x86_cpu *cpu, unsigned n)
{
	/* n: 0..15 low bytes; 16..19 AH, CH, DH, BH */
	return (uint8_t *)&cpu->regs[n & 15] + (n >> 4);
}

static inline uint64_t x86_zext(uint64_t v, unsigned size)
{
	return size == 8 ? v : v & ((1ull << (size * 8)) - 1);
}

static inline int64_t x86_sext(uint64_t v, unsigned size)
{
	switch (size) {
	case 1: return (int8_t)v;
	case 2: return (int16_t)v;
	case 4: return (int32_t)v;
	default: return (int64_t)v;
	}
}

/* Reads a general register of the given size (8-bit: encoded as x86_r8). */
static inline uint64_t x86_get_reg(struct x86_cpu *cpu, unsigned n, unsigned size)
{
	switch (size) {
	case 1: return *x86_r8(cpu, n);
	case 2: return (uint16_t)cpu->regs[n];
	case 4: return (uint32_t)cpu->regs[n];
	default: return cpu->regs[n];
	}
}

/* Writes a general register with x86 rules: 32-bit writes zero-extend,
 * 8- and 16-bit writes keep the rest. */
static inline void x86_set_reg(struct x86_cpu *cpu, unsigned n, unsigned size, uint64_t v)
{
	switch (size) {
	case 1: *x86_r8(cpu, n) = (uint8_t)v; break;
	case 2: *(uint16_t *)&cpu->regs[n] = (uint16_t)v; break;
	case 4: cpu->regs[n] = (uint32_t)v; break;
	default: cpu->regs[n] = v; break;
	}
}

/* --- faults -------------------------------------------------------------- */

/* Raises an exception for the current instruction; does not return. */
_Noreturn void x86_raise(struct x86_cpu *cpu, unsigned vector, uint32_t error_code);
_Noreturn void x86_raise_pf(struct x86_cpu *cpu, uint64_t la, uint32_t error_code);

/* --- memory ------------------------------------------------------------- */

/* Effective (linear) address of a memory operand. */
static inline uint64_t x86_ea(struct x86_cpu *cpu, const struct x86_insn *i)
{
	uint64_t a = i->disp + cpu->regs[i->base] + (cpu->regs[i->index] << i->scale);
	return (a & i->amask) + cpu->segbase[i->seg];
}

/* The offset without the segment base (LEA). */
static inline uint64_t x86_ea_offset(struct x86_cpu *cpu, const struct x86_insn *i)
{
	uint64_t a = i->disp + cpu->regs[i->base] + (cpu->regs[i->index] << i->scale);
	return a & i->amask;
}

uint64_t x86_read_slow(struct x86_cpu *cpu, uint64_t la, unsigned size);
void x86_write_slow(struct x86_cpu *cpu, uint64_t la, unsigned size, uint64_t v);
/* Host pointer for [la, la+len) when it lies in one RAM page accessible for
 * the access (write: for writing); faults otherwise.  Used by string and
 * block accesses that are at most one page. */
void *x86_access_ptr(struct x86_cpu *cpu, uint64_t la, unsigned len, bool write);
/* Copies len bytes from/to guest linear memory, faulting as the access
 * would; len may cross pages.  Checks every page before writing any. */
void x86_read_mem(struct x86_cpu *cpu, uint64_t la, void *buf, size_t len);
void x86_write_mem(struct x86_cpu *cpu, uint64_t la, const void *buf, size_t len);
/* Probes that [la, la+len) is writable, faulting if not. */
void x86_probe_write(struct x86_cpu *cpu, uint64_t la, size_t len);
/* The same for the destination of a read-modify-write before its read, but
 * without touching MMIO (whose reads have side effects). */
void x86_probe_rmw(struct x86_cpu *cpu, uint64_t la, unsigned len);

#define X86_DEFINE_RW(bits, type)                                                   \
	static inline type x86_read##bits(struct x86_cpu *cpu, uint64_t la)         \
	{                                                                           \
		struct x86_tlb_entry *e = &cpu->tlb[(la >> 12) & (X86_TLB_SIZE - 1)]; \
		if (likely(e->tag_r == ((la & X86_PAGE_MASK) | cpu->mmu_idx) &&     \
			   (la & 0xfff) <= 4096 - sizeof(type))) {                  \
			type v;                                                     \
			memcpy(&v, (void *)(uintptr_t)(la + e->addend), sizeof(v)); \
			return v;                                                   \
		}                                                                   \
		return (type)x86_read_slow(cpu, la, sizeof(type));                  \
	}                                                                           \
	static inline void x86_write##bits(struct x86_cpu *cpu, uint64_t la, type v) \
	{                                                                           \
		struct x86_tlb_entry *e = &cpu->tlb[(la >> 12) & (X86_TLB_SIZE - 1)]; \
		if (likely(e->tag_w == ((la & X86_PAGE_MASK) | cpu->mmu_idx) &&     \
			   (la & 0xfff) <= 4096 - sizeof(type))) {                  \
			memcpy((void *)(uintptr_t)(la + e->addend), &v, sizeof(v)); \
			return;                                                     \
		}                                                                   \
		x86_write_slow(cpu, la, sizeof(type), v);                           \
	}
X86_DEFINE_RW(8, uint8_t)
X86_DEFINE_RW(16, uint16_t)
X86_DEFINE_RW(32, uint32_t)
X86_DEFINE_RW(64, uint64_t)

/* Reads the destination of a read-modify-write instruction.  When the read
 * faults, the fault is reported as the hardware does: as a write (the
 * #PF error code has W set). */
static inline uint64_t x86_read_rmw(struct x86_cpu *cpu, uint64_t la, unsigned size);

static inline uint64_t x86_read(struct x86_cpu *cpu, uint64_t la, unsigned size)
{
	switch (size) {
	case 1: return x86_read8(cpu, la);
	case 2: return x86_read16(cpu, la);
	case 4: return x86_read32(cpu, la);
	default: return x86_read64(cpu, la);
	}
}

static inline void x86_write(struct x86_cpu *cpu, uint64_t la, unsigned size, uint64_t v)
{
	switch (size) {
	case 1: x86_write8(cpu, la, (uint8_t)v); break;
	case 2: x86_write16(cpu, la, (uint16_t)v); break;
	case 4: x86_write32(cpu, la, (uint32_t)v); break;
	default: x86_write64(cpu, la, v); break;
	}
}

static inline uint64_t x86_read_rmw(struct x86_cpu *cpu, uint64_t la, unsigned size)
{
	struct x86_tlb_entry *e = &cpu->tlb[(la >> 12) & (X86_TLB_SIZE - 1)];
	if (unlikely(e->tag_w != (la & X86_PAGE_MASK) || (la & 0xfff) > 4096 - size))
		x86_probe_rmw(cpu, la, size);
	return x86_read(cpu, la, size);
}

/* Reads / writes the r/m operand of i at size (register or memory). */
static inline uint64_t x86_get_rm(struct x86_cpu *cpu, const struct x86_insn *i, unsigned size)
{
	if (i->is_mem)
		return x86_read(cpu, x86_ea(cpu, i), size);
	return x86_get_reg(cpu, i->rm, size);
}

static inline void x86_set_rm(struct x86_cpu *cpu, const struct x86_insn *i, unsigned size, uint64_t v)
{
	if (i->is_mem)
		x86_write(cpu, x86_ea(cpu, i), size, v);
	else
		x86_set_reg(cpu, i->rm, size, v);
}

/* Instruction fetch: host pointer to the code at linear address la and the
 * bytes left in its page (*avail).  When the page cannot be executed:
 * raises #PF if fault, else returns NULL. */
const uint8_t *x86_fetch_ptr(struct x86_cpu *cpu, uint64_t la, unsigned *avail, bool fault);
/* Guest-physical address of the code at la (faults as a fetch would). */
uint64_t x86_fetch_phys(struct x86_cpu *cpu, uint64_t la);
/* Like x86_fetch_ptr but never faults (for decoding ahead). */
const uint8_t *x86_fetch_probe(struct x86_cpu *cpu, uint64_t la, unsigned *avail);
/* Drops the TLB entries of la's page (INVLPG). */
void x86_flush_tlb_page(struct x86_cpu *cpu, uint64_t la);
/* Code-cache hooks of exec.c used by the store slow path. */
bool x86_is_code_page(struct x86_cpu *cpu, uint64_t ppn);
void x86_invalidate_code_page(struct x86_cpu *cpu, uint64_t ppn);

/* 128-bit loads and stores; aligned variants raise #GP(0) when misaligned. */
void x86_read128(struct x86_cpu *cpu, uint64_t la, x86_xmm *out, bool aligned);
void x86_write128(struct x86_cpu *cpu, uint64_t la, const x86_xmm *v, bool aligned);

/* --- stack -------------------------------------------------------------- */

void x86_push(struct x86_cpu *cpu, unsigned size, uint64_t v);
uint64_t x86_pop(struct x86_cpu *cpu, unsigned size);

/* --- flags -------------------------------------------------------------- */

/* Arithmetic flags (CF PF AF ZF SF OF) from the lazy state. */
uint32_t x86_arith_flags(const struct x86_cpu *cpu);
/* Whole RFLAGS. */
static inline uint64_t x86_flags(const struct x86_cpu *cpu)
{
	return (cpu->rflags & ~(uint64_t)X86_ARITH_FLAGS) | x86_arith_flags(cpu) | 2;
}
/* Sets the arithmetic flags to exactly arith (other bits ignored). */
static inline void x86_set_arith_flags(struct x86_cpu *cpu, uint32_t arith)
{
	cpu->cc_op = CC_EFLAGS;
	cpu->cc_src = arith & X86_ARITH_FLAGS;
}
/* Evaluates condition code cc (0..15, the Jcc encoding). */
bool x86_cond_slow(const struct x86_cpu *cpu, unsigned cc);
static inline bool x86_cond(const struct x86_cpu *cpu, unsigned cc)
{
	unsigned op = cpu->cc_op & ~3u, sh = 64 - (8u << (cpu->cc_op & 3));
	bool r;

	/* After CMP/SUB and logic operations most conditions come straight
	 * from the operands. */
	if (op == CC_SUB) {
		uint64_t dst = cpu->cc_dst << sh, src = cpu->cc_src << sh;
		uint64_t a = dst + src; /* the first operand, at the top */
		switch (cc >> 1) {
		case 1: r = a < src; break;
		case 2: r = dst == 0; break;
		case 3: r = a <= src; break;
		case 4: r = (int64_t)dst < 0; break;
		case 6: r = (int64_t)a < (int64_t)src; break;
		case 7: r = (int64_t)a <= (int64_t)src; break;
		default: return x86_cond_slow(cpu, cc);
		}
		return r ^ (cc & 1);
	}
	if (op == CC_LOGIC) {
		int64_t dst = (int64_t)(cpu->cc_dst << sh);
		switch (cc >> 1) {
		case 0: case 1: r = false; break;
		case 2: r = dst == 0; break;
		case 3: r = dst == 0; break;
		case 4: r = dst < 0; break;
		case 6: r = dst < 0; break;
		case 7: r = dst <= 0; break;
		default: return x86_cond_slow(cpu, cc);
		}
		return r ^ (cc & 1);
	}
	return x86_cond_slow(cpu, cc);
}

static inline unsigned x86_szlog(unsigned size)
{
	return size == 8 ? 3 : size == 4 ? 2 : size == 2 ? 1 : 0;
}

static inline void x86_set_cc(struct x86_cpu *cpu, unsigned op, unsigned size,
			      uint64_t dst, uint64_t src, uint64_t src2)
{
	cpu->cc_op = op | x86_szlog(size);
	cpu->cc_dst = dst;
	cpu->cc_src = src;
	cpu->cc_src2 = src2;
}

/* --- decoder and families ------------------------------------------------ */

/* Decodes one instruction at linear address rip from bytes[0..avail) into
 * *i.  Returns 0, -EAGAIN when more bytes were needed than avail (up to 15
 * are always enough), or -EFAULT never (fetching is the caller's job).  An
 * undefined opcode decodes to a handler that raises #UD. */
int x86_decode(struct x86_cpu *cpu, uint64_t rip, const uint8_t *bytes,
	       unsigned avail, struct x86_insn *i);

/* Family selectors called by the decoder for their opcode ranges.  Each sets
 * i->fn (and may adjust i->aux) and returns true, or returns false when the
 * opcode/prefix combination is undefined (#UD). */
bool x86_select_sse(struct x86_insn *i, unsigned map, unsigned opc, unsigned mpfx);
bool x86_select_x87(struct x86_insn *i, unsigned opc);

/* Handlers shared across files. */
const struct x86_insn *x86_h_ud(struct x86_cpu *cpu, const struct x86_insn *i);
const struct x86_insn *x86_h_nop(struct x86_cpu *cpu, const struct x86_insn *i);

/* Mandatory-prefix encoding passed to x86_select_sse: 0 none, 1 66, 2 F3, 3 F2. */
enum { X86_MP_NONE, X86_MP_66, X86_MP_F3, X86_MP_F2 };

/* SSE: check CR0/CR4 for SSE availability (#UD / #NM); call before any SSE
 * state access. */
void x86_sse_check(struct x86_cpu *cpu);
/* x87 state helpers used by FXSAVE/FXRSTOR and state get/set. */
void x86_fpu_reset(struct x86_cpu *cpu);
void x86_fpu_to_fxsave(const struct x86_cpu *cpu, struct x86_fxsave *fx);
void x86_fpu_from_fxsave(struct x86_cpu *cpu, const struct x86_fxsave *fx);

/* CPUID feature bits this CPU advertises.  Advertise exactly what is
 * implemented: each family adds its bits here when it is complete. */
#define X86_CPUID_1_EDX ((1u << 0) /* FPU */ | (1u << 4) /* TSC */ | \
	(1u << 8) /* CX8 */ | (1u << 15) /* CMOV */ | (1u << 19) /* CLFSH */ | \
	(1u << 24) /* FXSR */ | (1u << 25) /* SSE */ | (1u << 26) /* SSE2 */)
#define X86_CPUID_1_ECX ((1u << 0) /* SSE3 */ | (1u << 13) /* CX16 */ | (1u << 23) /* POPCNT */ | \
	(1u << 9) /* SSSE3 */ | (1u << 19) /* SSE4.1 */ | (1u << 20) /* SSE4.2 */ | \
	(1u << 22) /* MOVBE */)
#define X86_CPUID_81_EDX ((1u << 11) /* SYSCALL */ | (1u << 29) /* LM */)
#define X86_CPUID_81_ECX ((1u << 0) /* LAHF/SAHF in 64-bit mode */ | \
	(1u << 5) /* ABM: LZCNT */)

/* CPUID and TSC. */
uint64_t x86_rdtsc(struct x86_cpu *cpu);

#endif

/*
 * cpu/x86: maquina's software x86-64 CPU (an interpreter with a
 * decoded-instruction cache).
 *
 * The CPU reaches guest memory only through struct x86_mem_ops, so it can be
 * unit-tested and fuzzed without a VM.  The portable register state (struct
 * x86_state) is what snapshots, migration and the KVM backend exchange.
 *
 * Host requirement: the floating-point units (SSE, x87) execute on the host's
 * own x86-64 FPU for bit-exact results; a portable soft-float path for other
 * hosts is future work (see docs/architecture.md).
 */
#ifndef MAQUINA_CPU_X86_H
#define MAQUINA_CPU_X86_H

#include <stdbool.h>
#include <stdint.h>

struct x86_cpu;

/* Segment register indexes, in the ModRM/SReg encoding order. */
enum x86_sreg { X86_ES, X86_CS, X86_SS, X86_DS, X86_FS, X86_GS };

/* General-purpose register indexes. */
enum x86_gpr {
	X86_RAX, X86_RCX, X86_RDX, X86_RBX, X86_RSP, X86_RBP, X86_RSI, X86_RDI,
	X86_R8, X86_R9, X86_R10, X86_R11, X86_R12, X86_R13, X86_R14, X86_R15,
};

/* RFLAGS bits. */
#define X86_CF (1u << 0)
#define X86_PF (1u << 2)
#define X86_AF (1u << 4)
#define X86_ZF (1u << 6)
#define X86_SF (1u << 7)
#define X86_TF (1u << 8)
#define X86_IF (1u << 9)
#define X86_DF (1u << 10)
#define X86_OF (1u << 11)
#define X86_AC (1u << 18)
#define X86_ID (1u << 21)
#define X86_ARITH_FLAGS (X86_CF | X86_PF | X86_AF | X86_ZF | X86_SF | X86_OF)

/* Exception vectors. */
enum x86_vector {
	X86_DE = 0, X86_DB = 1, X86_NMI = 2, X86_BP = 3, X86_OFV = 4, X86_BR = 5,
	X86_UD = 6, X86_NM = 7, X86_DF_FAULT = 8, X86_TS = 10, X86_NP = 11,
	X86_SS_FAULT = 12, X86_GP = 13, X86_PF_FAULT = 14, X86_MF = 16,
	X86_AC_FAULT = 17, X86_MC = 18, X86_XM = 19,
};

struct x86_segment {
	uint64_t base;
	uint32_t limit;
	uint16_t sel;
	uint16_t attr; /* descriptor bits 40..55 packed as type(4) S DPL(2) P AVL L DB G */
};

struct x86_dtable {
	uint64_t base;
	uint16_t limit;
};

/* The 512-byte FXSAVE image, in the architectural layout (Intel SDM vol. 1,
 * table 10-2), 64-bit form.  Used for both x87 and SSE state. */
struct x86_fxsave {
	uint16_t fcw;
	uint16_t fsw;
	uint8_t ftw; /* abridged: one bit per register, 1 = valid */
	uint8_t reserved1;
	uint16_t fop;
	uint64_t fip;
	uint64_t fdp;
	uint32_t mxcsr;
	uint32_t mxcsr_mask;
	uint8_t st[8][16]; /* 80-bit values, each in a 16-byte slot */
	uint8_t xmm[16][16];
	uint8_t reserved2[96];
} __attribute__((aligned(16)));
_Static_assert(sizeof(struct x86_fxsave) == 512, "FXSAVE image is 512 bytes");

/* The portable CPU state both backends convert to and from. */
struct x86_state {
	uint64_t gpr[16];
	uint64_t rip;
	uint64_t rflags;
	struct x86_segment seg[6]; /* indexed by enum x86_sreg */
	struct x86_segment ldtr, tr;
	struct x86_dtable gdtr, idtr;
	uint64_t cr0, cr2, cr3, cr4, cr8;
	uint64_t efer;
	uint64_t tsc;
	struct x86_fxsave fx;
};

/* How the CPU reaches guest-physical memory. */
struct x86_mem_ops {
	/* Returns a host pointer to the start of the 4 KiB guest-physical page
	 * holding gpa, or NULL when that page is not RAM (then the mmio_*
	 * callbacks serve it).  Sets *writable to false for read-only pages. */
	void *(*page_ptr)(void *opaque, uint64_t gpa, bool *writable);
	/* Access to non-RAM guest-physical addresses; size is 1, 2, 4 or 8.
	 * Return 0, or a negative errno to make the access fault. */
	int (*mmio_read)(void *opaque, uint64_t gpa, unsigned size, uint64_t *val);
	int (*mmio_write)(void *opaque, uint64_t gpa, unsigned size, uint64_t val);
};

/* System-mode hooks: how the CPU reaches the machine beyond memory.  Only
 * used when the CPU is not in user-program mode. */
struct x86_sys_ops {
	/* Port I/O; size 1, 2 or 4.  Reads of nothing return all ones. */
	void (*pio_read)(void *opaque, uint16_t port, unsigned size, uint32_t *val);
	void (*pio_write)(void *opaque, uint16_t port, unsigned size, uint32_t val);
	/* Acknowledges the highest-priority pending external interrupt (INTR)
	 * and returns its vector, or -1 if none is pending any more. */
	int (*intr_ack)(void *opaque);
	/* MSRs the machine owns (IA32_APIC_BASE, TSC_DEADLINE): return 0, or
	 * -ENOENT when the MSR is not the machine's (the CPU then decides),
	 * or another negative errno for #GP. */
	int (*rdmsr)(void *opaque, uint32_t msr, uint64_t *val);
	int (*wrmsr)(void *opaque, uint32_t msr, uint64_t val);
};

enum x86_exit_reason {
	X86_EXIT_ICOUNT,    /* the instruction budget of x86_run() is spent */
	X86_EXIT_HLT,       /* HLT executed */
	X86_EXIT_SYSCALL,   /* SYSCALL in user-program mode (rip is after it) */
	X86_EXIT_EXCEPTION, /* an exception the CPU does not deliver itself */
	X86_EXIT_REQUEST,   /* x86_cpu_request_exit() was called */
	X86_EXIT_SHUTDOWN,  /* triple fault (system mode) */
};

struct x86_exit {
	enum x86_exit_reason reason;
	uint8_t vector;      /* X86_EXIT_EXCEPTION: which */
	uint32_t error_code; /* and its error code, if it has one */
	uint64_t fault_addr; /* #PF: the linear address (CR2) */
};

/* CPU models: which CPUID features are advertised and implemented. */
struct x86_cpu_config {
	/* User-program mode: flat 64-bit ring-3 address space without paging;
	 * SYSCALL and exceptions return to the caller of x86_run(). */
	bool user_mode;
	/* Longest decoded block, in instructions; 1 makes x86_run() step one
	 * instruction per block (the differential test uses it).  0: default. */
	unsigned max_block_insns;
	/* System mode: the machine's hooks (NULL in user-program mode). */
	const struct x86_sys_ops *sys_ops;
	void *sys_opaque;
	/* Advertise a local APIC (CPUID.1:EDX.APIC) and its x2APIC-less MMIO
	 * interface; the machine provides it. */
	bool apic;
	/* This CPU's initial APIC ID (CPUID.1:EBX[31:24]). */
	uint8_t apic_id;
	/* Optional, shared by all CPUs of a machine: one bit per 4 KiB guest
	 * physical page (bit p of word p / 64), set atomically, before the
	 * CPU reads the bytes, for every page it decodes code from.  Whoever
	 * writes guest RAM behind the CPUs' backs (DMA) tests it to learn
	 * whether x86_invalidate_code is needed.  Bits are never cleared. */
	uint64_t *code_bitmap;
	uint64_t code_bitmap_pages;
};

/* Creates a CPU in the reset state for the given mode, reaching memory
 * through ops/opaque.  Returns NULL when out of memory. */
struct x86_cpu *x86_cpu_new(const struct x86_mem_ops *ops, void *opaque,
			    const struct x86_cpu_config *cfg);
void x86_cpu_free(struct x86_cpu *cpu);

/* Copies the architectural state out of / into the CPU.  Setting the state
 * flushes the TLB (the decoded-code cache stays valid: it is keyed by
 * address and invalidated on writes). */
void x86_get_state(struct x86_cpu *cpu, struct x86_state *st);
void x86_set_state(struct x86_cpu *cpu, const struct x86_state *st);

/* Runs until an exit, or until about max_insns instructions have retired
 * (exactly max_insns when max_block_insns is 1).  Fills *exit. */
void x86_run(struct x86_cpu *cpu, uint64_t max_insns, struct x86_exit *exit);

/* Instructions retired since the CPU was created. */
uint64_t x86_icount(const struct x86_cpu *cpu);

/* Sets the level of the INTR line (an external interrupt is pending at the
 * interrupt controller) and of NMI; safe from another thread.  A halted
 * CPU's owner must also wake it. */
void x86_cpu_set_intr(struct x86_cpu *cpu, bool level);
void x86_cpu_nmi(struct x86_cpu *cpu);
/* True when the CPU would take a pending INTR now (IF set, no shadow);
 * the owner of a halted CPU uses it to decide whether to wake it. */
bool x86_cpu_can_take_intr(const struct x86_cpu *cpu);

/* Makes a running x86_run() return X86_EXIT_REQUEST at the next block
 * boundary; safe to call from another thread or a signal handler. */
void x86_cpu_request_exit(struct x86_cpu *cpu);

/* Tells the CPU that guest memory at [gpa, gpa + len) changed behind its
 * back (DMA, a loader): decoded code there is dropped. */
void x86_invalidate_code(struct x86_cpu *cpu, uint64_t gpa, uint64_t len);

/* Drops every translation (call when the memory map changes). */
void x86_flush_tlb(struct x86_cpu *cpu);

/* CPUID as this CPU answers it. */
void x86_cpuid(struct x86_cpu *cpu, uint32_t leaf, uint32_t subleaf, uint32_t out[4]);

#endif

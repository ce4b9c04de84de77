/*
 * The differential test of the software x86-64 CPU against the host CPU.
 * See docs/cpu-difftest.md for the design; this header is what the
 * generator (gen.c), the native runner (native.c) and the driver
 * (difftest.c) share.
 */
#ifndef MAQUINA_TESTS_DIFFTEST_H
#define MAQUINA_TESTS_DIFFTEST_H

#include "cpu/x86/x86.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Fixed guest (= host, in the native child) addresses.  All below 2 GiB so
 * that absolute disp32 forms reach them, and below AddressSanitizer's low
 * shadow (0x7fff8000).  The pages around DT_DATA are left unmapped on both
 * sides so that a stray access is a #PF in both worlds. */
#define DT_CODE 0x20000000ull  /* 2 pages: test code, landing stubs, prologue */
#define DT_CODE_SIZE 0x2000u
#define DT_DATA 0x20010000ull  /* 1 page: data [0, 2048), stack [2048, 4096) */
#define DT_DATA_SIZE 0x1000u
#define DT_STATE 0x20020000ull /* native only: state in/out and host RSP */
#define DT_TEST (DT_CODE + 0x100)      /* first test instruction */
#define DT_BACK_STUBS (DT_TEST - 0x80) /* 8 stubs below the test code */
#define DT_STUB_BYTES 16
#define DT_NSTUBS 16 /* 0: fall-through, 1..7 forward, 8..15 backward */
#define DT_MAX_CODE 64
#define DT_MAX_INSNS 4

enum dt_family { FAM_CORE, FAM_INT2, FAM_SSE, FAM_SSE4, FAM_X87, FAM_UD, FAM_MMX, FAM_N };
extern const char *const dt_family_name[FAM_N];

/* Architectural state the harness sets and compares. */
struct dt_state {
	uint64_t gpr[16];
	uint64_t rip;
	uint64_t rflags;
	struct x86_fxsave fx;
};

struct dt_patch {
	uint16_t off; /* offset in the data page */
	uint8_t len;
	uint8_t bytes[16];
};

/* One test case: a short instruction sequence and its input state. */
struct dt_case {
	uint8_t code[DT_MAX_CODE];
	uint8_t code_len;
	uint8_t ninsns;
	uint8_t insn_off[DT_MAX_INSNS + 1];
	uint16_t entry[DT_MAX_INSNS]; /* generator entry of each instruction */
	uint8_t opc[DT_MAX_INSNS];    /* its opcode byte */
	uint8_t is_mem[DT_MAX_INSNS]; /* its ModRM names memory */
	uint32_t undef_flags;         /* RFLAGS bits the SDM leaves undefined */
	uint32_t mem_off;             /* initial data page: pool + mem_off */
	uint8_t npatch;
	struct dt_patch patch[6];
	int32_t fxsave_off; /* FXSAVE image in memory at this data offset (or -1) */
	uint8_t nenv;       /* FNSTENV/FNSAVE images written by the case: */
	uint16_t env_off[DT_MAX_INSNS]; /* their offsets in the data page */
	uint8_t env16[DT_MAX_INSNS];    /* 16-bit format */
	struct dt_state in;
} __attribute__((aligned(16)));

/* What one side produced. */
struct dt_result {
	struct dt_state out;
	uint8_t vector; /* DT_NO_EXC when none */
	uint8_t crashed; /* native: the child died on this case */
	uint32_t error_code;
	uint64_t fault_addr; /* #PF */
	uint8_t mem[DT_DATA_SIZE];
} __attribute__((aligned(16)));

#define DT_NO_EXC 0xff

/* --- generator (gen.c) --- */

struct dt_entry {
	const char *name;
	uint8_t family;
	uint8_t map;      /* 0 one-byte, 1 0F, 2 0F38, 3 0F3A */
	uint8_t opc;
	int8_t digit;     /* ModRM.reg, or -1 */
	uint8_t mp;       /* mandatory prefix: 0, 0x66, 0xf3, 0xf2 */
	uint8_t imm;      /* IMM_* */
	uint32_t flags;   /* E_* */
	uint32_t undef;   /* RFLAGS bits undefined after it */
	uint8_t fix;      /* FIX_* */
	int16_t modrm;    /* a fixed ModRM byte (x87 register forms), or -1 */
};

struct dt_excluded {
	uint8_t map, opc;
	int8_t digit; /* -1: all */
	uint8_t mp;   /* 0xff: any */
	const char *why;
};

extern const struct dt_entry dt_entries[];
extern const unsigned dt_nentries;
extern const struct dt_excluded dt_excluded[];
extern const unsigned dt_nexcluded;

struct dt_rng {
	uint64_t s;
};

static inline uint64_t dt_rand(struct dt_rng *r)
{
	/* splitmix64 */
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline unsigned dt_below(struct dt_rng *r, unsigned n)
{
	return (unsigned)(dt_rand(r) % n);
}

#define DT_POOL_SIZE (64u << 10)

/* Fills the shared random memory pool. */
void dt_pool_init(uint8_t *pool, struct dt_rng *r);
/* Generates one test case with instructions of the families in fam_mask
 * (bit per enum dt_family).  The initial state of the x87/SSE part and of
 * the non-GPR bits comes from base. */
void dt_gen_case(struct dt_case *c, struct dt_rng *r, unsigned fam_mask,
		 const uint8_t *pool);
/* The initial data page of c. */
void dt_case_memory(const struct dt_case *c, const uint8_t *pool, uint8_t *page);
/* Key of a generator entry for the distinct-opcode count. */
uint32_t dt_entry_key(const struct dt_entry *e);

/* --- native runner (native.c) --- */

/* Maps the fixed pages (once, in the parent, before any fork). */
int dt_native_map(void);
struct dt_native_ctl {
	volatile uint32_t n;    /* cases in the batch */
	volatile uint32_t done; /* cases finished */
};

/* A persistent child that runs batches of cases natively.  cases, res and
 * ctl must be MAP_SHARED (the parent writes cases, the child results). */
struct dt_native {
	pid_t pid;
	int to_child[2], from_child[2];
	struct dt_case *cases;
	struct dt_result *res;
	struct dt_native_ctl *ctl;
	const uint8_t *pool;
};

int dt_native_init(struct dt_native *nt, struct dt_case *cases, struct dt_result *res,
		   struct dt_native_ctl *ctl, const uint8_t *pool);
/* Starts the batch cases[0..n). */
int dt_native_post(struct dt_native *nt, unsigned n);
/* Waits for the batch; a case the child died on is marked crashed and the
 * rest run in a new child.  Returns 0, the first crashed case + 1, or a
 * negative errno. */
int dt_native_wait(struct dt_native *nt);
void dt_native_fini(struct dt_native *nt);

/* --- capstone (disasm.c) --- */
void dt_disasm_init(void);
void dt_disasm_fini(void);
void dt_disasm(const uint8_t *code, unsigned len, uint64_t addr, char *out, size_t outlen);

/* The code pages of case c (prologue, epilogue, stubs, test code), the
 * same for the native child and the interpreter. */
void dt_code_image(const struct dt_case *c, uint8_t *page);
/* Address of landing stub k. */
uint64_t dt_stub_addr(const struct dt_case *c, unsigned k);

#endif

/*
 * x87 family: every instruction of opcodes D8-DF, FWAIT's exception check,
 * and the state conversions used by FXSAVE/FXRSTOR and state get/set.
 *
 * How results are made exact.  Arithmetic, loads, stores, comparisons,
 * transcendental functions and stack operations run on the host's own
 * x87 unit: the handler packs the guest's FPU state (FCW, FSW, tags and the
 * eight registers) into an FNSAVE image, and a small assembler stub does
 * FRSTOR, the very instruction the guest executes (same opcode byte and
 * ModRM; memory operands point at a host buffer that holds the guest's
 * data), and FNSAVE.  The host FPU thereby produces everything the guest's
 * would: the 80-bit results under the guest's precision and rounding
 * control, C0-C3, the exception flags, stack faults, tags, the masked
 * responses (the real indefinite) and the unmasked ones (no store, no pop;
 * ES set and the exception pending).  No waiting x87 instruction runs on
 * the host between the guest instruction and FNSAVE, so a pending unmasked
 * exception never reaches the host as SIGFPE; each stub also saves and
 * restores the host's FCW.  That path is exact for every form and state
 * but costs an FRSTOR and an FNSAVE; the common instructions first try a
 * fast path that hands the host only their operands (see "fast paths"
 * below) and fall back to it outside the plain case.  Control
 * instructions (FLDCW, FNSTCW, FNSTSW, FNSTENV, FLDENV, FNSAVE, FRSTOR,
 * FNINIT, FNCLEX) are done here in C, because their memory layouts depend
 * on the guest's mode.
 *
 * Rules kept here rather than by the host:
 *  - #NM when CR0.EM or CR0.TS is set (FWAIT: when CR0.MP and CR0.TS are);
 *  - a waiting instruction with an unmasked exception pending raises #MF
 *    when CR0.NE is set (with NE clear, the legacy FERR# path is not
 *    modelled: the pending flags are kept and execution goes on, as with
 *    IGNNE# asserted);
 *  - FIP, FOP (and FDP for memory operands) are updated by every
 *    non-control instruction; FCS and FDS are stored as 0 (the hardware
 *    behaviour when CPUID.7.EBX[13] deprecates them).
 *
 * State: cpu->fpu.st[] holds the physical registers R0..R7, top the TOP
 * field (not kept in fsw), tag_valid one bit per physical register.  The
 * full two-bit tag that FNSTENV/FNSAVE store is computed from the contents
 * (valid, zero, special), and FLDENV/FRSTOR keep only "empty or not", which
 * is what the hardware does too.  ES and B in fsw always equal "an
 * exception flag is set whose mask bit is clear".
 */
#include "cpu/x86/handlers.h"

#define CR0_MP (1u << 1)
#define CR0_EM (1u << 2)
#define CR0_TS (1u << 3)
#define CR0_NE (1u << 5)
#define CR0_PE (1u << 0)
#define RFLAGS_VM (1u << 17)

#define FSW_EXC 0x003fu   /* IE DE ZE OE UE PE */
#define FSW_SF 0x0040u
#define FSW_ES 0x0080u
#define FSW_TOP 0x3800u
#define FSW_B 0x8000u

/* Size of the 32-bit protected-mode FNSAVE image the stubs exchange. */
#define X87_IMG_BYTES 108

/*
 * The host stubs.  Register forms: one 64-byte slot per (opcode, ModRM)
 * with ModRM C0..FF; the stub takes the image in rdi and the
 * guest's flags in edx (low byte as SAHF loads it; byte 1 is 0x7f when OF
 * is set, else 0) so that FCMOVcc sees them, and returns LAHF's result in AH and
 * SETO's in AL, which is how FCOMI and friends report.  Memory forms: one
 * slot per (opcode, ModRM.reg) with the operand at [rax] (rsi on entry).
 */
__asm__(
	".pushsection .text\n"
	".macro X87_REG_STUB o, m\n"
	"  .balign 64\n"
	"  endbr64\n"
	"  fnstcw -8(%rsp)\n"
	"  movl %edx, %eax\n"
	"  movb %ah, %cl\n"
	"  addb $1, %cl\n"
	"  movb %al, %ah\n"
	"  sahf\n"
	"  frstor (%rdi)\n"
	"  .byte \\o, \\m\n"
	"  fnsave (%rdi)\n"
	"  lahf\n"
	"  seto %al\n"
	"  fldcw -8(%rsp)\n"
	"  ret\n"
	".endm\n"
	".macro X87_MEM_STUB o, r\n"
	"  .balign 64\n"
	"  endbr64\n"
	"  fnstcw -8(%rsp)\n"
	"  movq %rsi, %rax\n"
	"  frstor (%rdi)\n"
	"  .byte \\o, (\\r << 3)\n"
	"  fnsave (%rdi)\n"
	"  fldcw -8(%rsp)\n"
	"  ret\n"
	".endm\n"
	".globl x86_x87_reg_stubs\n"
	".hidden x86_x87_reg_stubs\n"
	".type x86_x87_reg_stubs, @function\n"
	".balign 64\n"
	"x86_x87_reg_stubs:\n"
	".irp o, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf\n"
	".irp m, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf, "
	"0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, "
	"0xe0, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xeb, 0xec, 0xed, 0xee, 0xef, "
	"0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff\n"
	"X87_REG_STUB \\o, \\m\n"
	".endr\n"
	".endr\n"
	".size x86_x87_reg_stubs, . - x86_x87_reg_stubs\n"
	".globl x86_x87_mem_stubs\n"
	".hidden x86_x87_mem_stubs\n"
	".type x86_x87_mem_stubs, @function\n"
	".balign 64\n"
	"x86_x87_mem_stubs:\n"
	".irp o, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf\n"
	".irp r, 0, 1, 2, 3, 4, 5, 6, 7\n"
	"X87_MEM_STUB \\o, \\r\n"
	".endr\n"
	".endr\n"
	".size x86_x87_mem_stubs, . - x86_x87_mem_stubs\n"
	".purgem X87_REG_STUB\n"
	".purgem X87_MEM_STUB\n"
	".popsection\n");

void x86_x87_reg_stubs(void);
void x86_x87_mem_stubs(void);

#define X87_STUB_SLOT 64

typedef uint32_t (*x87_stub_fn)(uint8_t *img, void *mem, uint32_t flags_in);

/* The full-state stub of instruction i. */
static inline x87_stub_fn x87_stub(const struct x86_insn *i)
{
	uintptr_t slot;

	if (!i->is_mem) {
		slot = (i->op & 7) * 64u + (i->modrm - 0xc0u);
		return (x87_stub_fn)((uintptr_t)x86_x87_reg_stubs + slot * X87_STUB_SLOT);
	}
	slot = (i->op & 7) * 8u + ((i->modrm >> 3) & 7);
	return (x87_stub_fn)((uintptr_t)x86_x87_mem_stubs + slot * X87_STUB_SLOT);
}

/* --- state helpers --------------------------------------------------------- */

static inline uint16_t x87_es_fixup(uint16_t fsw, uint16_t fcw)
{
	fsw &= (uint16_t)~(FSW_ES | FSW_B);
	if (fsw & ~fcw & FSW_EXC)
		fsw |= FSW_ES | FSW_B;
	return fsw;
}

/* FCW as the hardware keeps it: bits 7 and 13-15 read 0, bit 6 reads 1. */
static inline uint16_t x87_fcw_norm(uint16_t v)
{
	return (uint16_t)((v & 0x1f3f) | 0x40);
}

static inline uint16_t x87_fsw_full(const struct x86_fpu *f)
{
	return (uint16_t)((f->fsw & ~FSW_TOP) | ((unsigned)f->top << 11));
}

static inline void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

static inline void x87_get_reg10(const struct x86_fpu *f, unsigned phys, uint8_t *out)
{
	memcpy(out, &f->st[phys], 10);
}

static inline void x87_set_reg10(struct x86_fpu *f, unsigned phys, const uint8_t *in)
{
	memset(&f->st[phys], 0, sizeof(f->st[phys]));
	memcpy(&f->st[phys], in, 10);
}

/* Abridged tags (1 = valid) to the two-bit tag word with every non-empty
 * register marked valid (00); FRSTOR and FLDENV look only at "empty". */
static inline uint16_t x87_tw_from_valid(unsigned valid)
{
	uint16_t tw = 0xffff;
	for (unsigned p = 0; p < 8; p++)
		if (valid & (1u << p))
			tw &= (uint16_t)~(3u << (2 * p));
	return tw;
}

static inline uint8_t x87_valid_from_tw(uint16_t tw)
{
	uint8_t valid = 0;
	for (unsigned p = 0; p < 8; p++)
		if (((tw >> (2 * p)) & 3) != 3)
			valid |= (uint8_t)(1u << p);
	return valid;
}

/* The two-bit tag of a non-empty register: 0 valid, 1 zero, 2 special
 * (NaN, infinity, denormal, pseudo-denormal, unnormal). */
static unsigned x87_tag_of(const struct x86_fpu *f, unsigned phys)
{
	uint8_t b[10];
	uint64_t man;
	unsigned exp;

	x87_get_reg10(f, phys, b);
	memcpy(&man, b, 8);
	exp = get16(b + 8) & 0x7fff;
	if (exp == 0x7fff)
		return 2;
	if (exp == 0)
		return man == 0 ? 1 : 2;
	return (man >> 63) ? 0 : 2;
}

static uint16_t x87_full_tw(const struct x86_fpu *f)
{
	uint16_t tw = 0;
	for (unsigned p = 0; p < 8; p++) {
		unsigned t = (f->tag_valid & (1u << p)) ? x87_tag_of(f, p) : 3;
		tw |= (uint16_t)(t << (2 * p));
	}
	return tw;
}

/* Packs the state into the FNSAVE image for a stub.  pend: unmasked
 * exception flags left pending (only with CR0.NE clear); they are kept out
 * of the image so that the host does not fault on them. */
static inline void x87_pack(const struct x86_fpu *f, uint8_t *img, uint16_t pend)
{
	uint16_t fsw = (uint16_t)(x87_fsw_full(f) & ~(pend | FSW_ES | FSW_B));

	put32(img + 0, 0xffff0000u | f->fcw);
	put32(img + 4, 0xffff0000u | fsw);
	put32(img + 8, 0xffff0000u | x87_tw_from_valid(f->tag_valid));
	memset(img + 12, 0, 16);
	for (unsigned k = 0; k < 8; k++)
		memcpy(img + 28 + 10 * k, &f->st[(f->top + k) & 7], 10);
}

static inline void x87_unpack(struct x86_fpu *f, const uint8_t *img, uint16_t pend)
{
	uint16_t fsw = get16(img + 4);
	unsigned top = (fsw >> 11) & 7;

	f->top = (uint8_t)top;
	f->fsw = x87_es_fixup((uint16_t)((fsw & ~FSW_TOP) | pend), f->fcw);
	f->tag_valid = x87_valid_from_tw(get16(img + 8));
	for (unsigned k = 0; k < 8; k++)
		x87_set_reg10(f, (top + k) & 7, img + 28 + 10 * k);
}

/* A user program starts as Linux starts a process: in the FNINIT state.  A
 * machine starts in the power-up state (SDM vol. 3, table 9-1): FCW 0040,
 * FSW 0, every register +0.0 and tagged non-empty (tag word 5555). */
void x86_fpu_reset(struct x86_cpu *cpu)
{
	memset(&cpu->fpu, 0, sizeof(cpu->fpu));
	if (cpu->user_mode) {
		cpu->fpu.fcw = 0x37f;
	} else {
		cpu->fpu.fcw = 0x40;
		cpu->fpu.tag_valid = 0xff;
	}
}

void x86_fpu_to_fxsave(const struct x86_cpu *cpu, struct x86_fxsave *fx)
{
	fx->fcw = cpu->fpu.fcw;
	fx->fsw = x87_fsw_full(&cpu->fpu);
	fx->ftw = cpu->fpu.tag_valid;
	fx->reserved1 = 0;
	fx->fop = cpu->fpu.fop;
	fx->fip = cpu->fpu.fip;
	fx->fdp = cpu->fpu.fdp;
	for (unsigned k = 0; k < 8; k++) {
		memset(fx->st[k], 0, 16);
		x87_get_reg10(&cpu->fpu, (cpu->fpu.top + k) & 7, fx->st[k]);
	}
}

void x86_fpu_from_fxsave(struct x86_cpu *cpu, const struct x86_fxsave *fx)
{
	struct x86_fpu *f = &cpu->fpu;

	f->fcw = x87_fcw_norm(fx->fcw);
	f->top = (fx->fsw >> 11) & 7;
	f->fsw = x87_es_fixup(fx->fsw & ~FSW_TOP, f->fcw);
	f->tag_valid = fx->ftw;
	f->fop = fx->fop & 0x7ff;
	f->fip = fx->fip;
	f->fdp = fx->fdp;
	for (unsigned k = 0; k < 8; k++)
		x87_set_reg10(f, (f->top + k) & 7, fx->st[k]);
}

/* --- checks and bookkeeping ------------------------------------------------- */

/* Every x87 instruction: #NM when the FPU is emulated or switched out. */
static inline void x87_check_nm(struct x86_cpu *cpu)
{
	if (unlikely(cpu->cr0 & (CR0_EM | CR0_TS)))
		x86_raise(cpu, X86_NM, 0);
}

/* Waiting instructions: #NM, then #MF for a pending unmasked exception.
 * Returns the pending flags that stay pending (CR0.NE clear). */
static inline uint16_t x87_enter(struct x86_cpu *cpu)
{
	uint16_t pend;

	x87_check_nm(cpu);
	pend = cpu->fpu.fsw & ~cpu->fpu.fcw & FSW_EXC;
	if (unlikely(pend)) {
		if (cpu->cr0 & CR0_NE)
			x86_raise(cpu, X86_MF, 0);
	}
	return pend;
}

static inline bool x87_real_layout(const struct x86_cpu *cpu)
{
	return !(cpu->cr0 & CR0_PE) || (cpu->rflags & RFLAGS_VM);
}

/* FIP and FOP of a non-control instruction. */
static inline void x87_set_ip(struct x86_cpu *cpu, const struct x86_insn *i)
{
	uint64_t ip = i->next_rip - i->len;

	if (unlikely(x87_real_layout(cpu)))
		ip = (cpu->segbase[X86_CS] + ip) & 0xffffffffu;
	cpu->fpu.fip = ip;
	cpu->fpu.fop = (uint16_t)(((i->op & 7) << 8) | i->modrm);
}

static inline void x87_set_dp(struct x86_cpu *cpu, const struct x86_insn *i)
{
	uint64_t dp = x86_ea_offset(cpu, i);

	if (unlikely(x87_real_layout(cpu)))
		dp = (cpu->segbase[i->seg] + dp) & 0xffffffffu;
	cpu->fpu.fdp = dp;
}

/* --- register forms and memory operands on the host -------------------------- */

X86_HANDLER(x87_h_reg)
{
	uint8_t img[X87_IMG_BYTES] __attribute__((aligned(16)));
	uint16_t pend = x87_enter(cpu);

	x87_pack(&cpu->fpu, img, pend);
	x87_stub(i)(img, NULL, 0);
	x87_unpack(&cpu->fpu, img, pend);
	x87_set_ip(cpu, i);
	return i + 1;
}

/* FCMOVcc (reads CF ZF PF), FCOMI/FCOMIP/FUCOMI/FUCOMIP (write ZF PF CF,
 * clear OF SF AF). */
X86_HANDLER(x87_h_reg_flags)
{
	uint8_t img[X87_IMG_BYTES] __attribute__((aligned(16)));
	uint16_t pend = x87_enter(cpu);
	uint64_t fl = x86_flags(cpu);
	uint32_t in = (uint32_t)(fl & 0xff) | ((fl & X86_OF) ? 0x7f00u : 0);
	uint32_t out, arith;

	x87_pack(&cpu->fpu, img, pend);
	out = x87_stub(i)(img, NULL, in);
	x87_unpack(&cpu->fpu, img, pend);
	arith = ((out >> 8) & (X86_SF | X86_ZF | X86_AF | X86_PF | X86_CF)) |
		((out & 1) ? X86_OF : 0);
	x86_set_arith_flags(cpu, arith);
	x87_set_ip(cpu, i);
	return i + 1;
}

static inline void x87_load_op(struct x86_cpu *cpu, const struct x86_insn *i,
			       const uint8_t *buf, uint16_t pend)
{
	uint8_t img[X87_IMG_BYTES] __attribute__((aligned(16)));

	x87_pack(&cpu->fpu, img, pend);
	x87_stub(i)(img, (void *)buf, 0);
	x87_unpack(&cpu->fpu, img, pend);
	x87_set_ip(cpu, i);
	x87_set_dp(cpu, i);
}

#define X87_LOAD_HANDLER(bits)                                             \
	X86_HANDLER(x87_h_ld##bits)                                        \
	{                                                                  \
		uint16_t pend = x87_enter(cpu);                            \
		uint##bits##_t v = x86_read##bits(cpu, x86_ea(cpu, i));    \
		uint8_t buf[16] __attribute__((aligned(16)));              \
		memcpy(buf, &v, sizeof(v));                                \
		x87_load_op(cpu, i, buf, pend);                            \
		return i + 1;                                              \
	}
X87_LOAD_HANDLER(16)
X87_LOAD_HANDLER(32)
X87_LOAD_HANDLER(64)

X86_HANDLER(x87_h_ld80)
{
	uint16_t pend = x87_enter(cpu);
	uint8_t buf[16] __attribute__((aligned(16)));

	x86_read_mem(cpu, x86_ea(cpu, i), buf, 10);
	x87_load_op(cpu, i, buf, pend);
	return i + 1;
}

static inline void x87_read_operand(struct x86_cpu *cpu, const struct x86_insn *i,
				    uint8_t *buf, unsigned size)
{
	uint64_t la = x86_ea(cpu, i);

	switch (size) {
	case 2: { uint16_t v = x86_read16(cpu, la); memcpy(buf, &v, 2); break; }
	case 4: { uint32_t v = x86_read32(cpu, la); memcpy(buf, &v, 4); break; }
	case 8: { uint64_t v = x86_read64(cpu, la); memcpy(buf, &v, 8); break; }
	default: x86_read_mem(cpu, la, buf, size); break;
	}
}

static inline void x87_write_operand(struct x86_cpu *cpu, uint64_t la, const uint8_t *buf,
				     unsigned size)
{
	switch (size) {
	case 2: x86_write16(cpu, la, get16(buf)); break;
	case 4: x86_write32(cpu, la, get32(buf)); break;
	case 8: { uint64_t v; memcpy(&v, buf, 8); x86_write64(cpu, la, v); break; }
	default: x86_write_mem(cpu, la, buf, size); break;
	}
}

static bool all_bytes(const uint8_t *p, unsigned n, uint8_t v)
{
	for (unsigned k = 0; k < n; k++)
		if (p[k] != v)
			return false;
	return true;
}

/* Store forms: FST/FSTP m32/m64/m80, FIST/FISTP/FISTTP m16/m32/m64, FBSTP.
 * The destination is probed first (a fault leaves the FPU untouched).  An
 * unmasked exception can suppress the store; whether the host stored is
 * told by running the stub over two different fillers when the first
 * filler survives. */
static inline void x87_store_op(struct x86_cpu *cpu, const struct x86_insn *i, unsigned size)
{
	uint8_t img[X87_IMG_BYTES] __attribute__((aligned(16)));
	uint8_t buf[16] __attribute__((aligned(16)));
	uint16_t pend = x87_enter(cpu);
	uint64_t la = x86_ea(cpu, i);
	bool stored = true;

	x86_probe_write(cpu, la, size);
	x87_pack(&cpu->fpu, img, pend);
	memset(buf, 0xa5, sizeof(buf));
	x87_stub(i)(img, buf, 0);
	if (unlikely(all_bytes(buf, size, 0xa5))) {
		x87_pack(&cpu->fpu, img, pend);
		memset(buf, 0x5a, sizeof(buf));
		x87_stub(i)(img, buf, 0);
		stored = !all_bytes(buf, size, 0x5a);
	}
	if (stored)
		x87_write_operand(cpu, la, buf, size);
	x87_unpack(&cpu->fpu, img, pend);
	x87_set_ip(cpu, i);
	x87_set_dp(cpu, i);
}

X86_HANDLER(x87_h_st16) { x87_store_op(cpu, i, 2); return i + 1; }
X86_HANDLER(x87_h_st32) { x87_store_op(cpu, i, 4); return i + 1; }
X86_HANDLER(x87_h_st64) { x87_store_op(cpu, i, 8); return i + 1; }
X86_HANDLER(x87_h_st80) { x87_store_op(cpu, i, 10); return i + 1; }

/* --- control instructions ------------------------------------------------------ */

X86_HANDLER(x87_h_fnstcw)
{
	x87_check_nm(cpu);
	x86_write16(cpu, x86_ea(cpu, i), cpu->fpu.fcw);
	return i + 1;
}

X86_HANDLER(x87_h_fldcw)
{
	uint16_t v;

	x87_enter(cpu);
	v = x86_read16(cpu, x86_ea(cpu, i));
	cpu->fpu.fcw = x87_fcw_norm(v);
	cpu->fpu.fsw = x87_es_fixup(cpu->fpu.fsw, cpu->fpu.fcw);
	return i + 1;
}

X86_HANDLER(x87_h_fnstsw_m)
{
	x87_check_nm(cpu);
	x86_write16(cpu, x86_ea(cpu, i), x87_fsw_full(&cpu->fpu));
	return i + 1;
}

X86_HANDLER(x87_h_fnstsw_ax)
{
	x87_check_nm(cpu);
	x86_set_reg(cpu, X86_RAX, 2, x87_fsw_full(&cpu->fpu));
	return i + 1;
}

X86_HANDLER(x87_h_fnclex)
{
	x87_check_nm(cpu);
	cpu->fpu.fsw &= (uint16_t)~(FSW_EXC | FSW_SF | FSW_ES | FSW_B);
	return i + 1;
}

static void x87_init_state(struct x86_fpu *f)
{
	f->fcw = 0x37f;
	f->fsw = 0;
	f->top = 0;
	f->tag_valid = 0;
	f->fop = 0;
	f->fip = 0;
	f->fdp = 0;
}

X86_HANDLER(x87_h_fninit)
{
	x87_check_nm(cpu);
	x87_init_state(&cpu->fpu);
	return i + 1;
}

/* FNENI, FNDISI, FNSETPM: no-ops since the 80387, non-waiting. */
X86_HANDLER(x87_h_fnnop)
{
	x87_check_nm(cpu);
	return i + 1;
}

/* Builds the FNSTENV environment (14 or 28 bytes) in env; returns its
 * size.  Layouts: Intel SDM vol. 1, figures 8-9 to 8-12. */
static unsigned x87_env_store(const struct x86_cpu *cpu, const struct x86_insn *i, uint8_t *env)
{
	const struct x86_fpu *f = &cpu->fpu;
	uint16_t fsw = x87_fsw_full(f), tw = x87_full_tw(f);
	uint32_t fip = (uint32_t)f->fip, fdp = (uint32_t)f->fdp, fop = f->fop & 0x7ffu;
	bool real = x87_real_layout(cpu);

	if (i->osz == 2) {
		put16(env + 0, f->fcw);
		put16(env + 2, fsw);
		put16(env + 4, tw);
		put16(env + 6, (uint16_t)fip);
		put16(env + 10, (uint16_t)fdp);
		if (real) {
			put16(env + 8, (uint16_t)(((fip >> 16) & 0xf) << 12 | fop));
			put16(env + 12, (uint16_t)(((fdp >> 16) & 0xf) << 12));
		} else {
			put16(env + 8, 0);  /* FCS */
			put16(env + 12, 0); /* FDS */
		}
		return 14;
	}
	put32(env + 0, 0xffff0000u | f->fcw);
	put32(env + 4, 0xffff0000u | fsw);
	put32(env + 8, 0xffff0000u | tw);
	if (real) {
		put32(env + 12, 0xffff0000u | (fip & 0xffff));
		put32(env + 16, ((fip >> 16) & 0xffff) << 12 | fop);
		put32(env + 20, 0xffff0000u | (fdp & 0xffff));
		put32(env + 24, ((fdp >> 16) & 0xffff) << 12);
	} else {
		put32(env + 12, fip);
		put32(env + 16, fop << 16); /* FCS 0 */
		put32(env + 20, fdp);
		put32(env + 24, 0xffff0000u); /* FDS 0 */
	}
	return 28;
}

/* Loads an environment image (the inverse of x87_env_store); returns its
 * size. */
static unsigned x87_env_load(struct x86_cpu *cpu, const struct x86_insn *i, const uint8_t *env)
{
	struct x86_fpu *f = &cpu->fpu;
	bool real = x87_real_layout(cpu);
	uint16_t fcw, fsw, tw;
	unsigned size;

	if (i->osz == 2) {
		fcw = get16(env + 0);
		fsw = get16(env + 2);
		tw = get16(env + 4);
		if (real) {
			uint16_t w = get16(env + 8);
			f->fip = get16(env + 6) | (uint32_t)(w >> 12) << 16;
			f->fop = w & 0x7ff;
			f->fdp = get16(env + 10) | (uint32_t)(get16(env + 12) >> 12) << 16;
		} else {
			f->fip = get16(env + 6);
			f->fdp = get16(env + 10);
		}
		size = 14;
	} else {
		fcw = get16(env + 0);
		fsw = get16(env + 4);
		tw = get16(env + 8);
		if (real) {
			uint32_t w = get32(env + 16);
			f->fip = (get32(env + 12) & 0xffff) | ((w >> 12) & 0xffff) << 16;
			f->fop = w & 0x7ff;
			f->fdp = (get32(env + 20) & 0xffff) | ((get32(env + 24) >> 12) & 0xffff) << 16;
		} else {
			f->fip = get32(env + 12);
			f->fop = (get32(env + 16) >> 16) & 0x7ff;
			f->fdp = get32(env + 20);
		}
		size = 28;
	}
	f->fcw = x87_fcw_norm(fcw);
	f->top = (fsw >> 11) & 7;
	f->fsw = x87_es_fixup(fsw & ~FSW_TOP, f->fcw);
	f->tag_valid = x87_valid_from_tw(tw);
	return size;
}

static inline unsigned x87_env_size(const struct x86_insn *i)
{
	return i->osz == 2 ? 14 : 28;
}

X86_HANDLER(x87_h_fnstenv)
{
	uint8_t env[28];
	unsigned n;

	x87_check_nm(cpu);
	n = x87_env_store(cpu, i, env);
	x86_write_mem(cpu, x86_ea(cpu, i), env, n);
	/* then all exceptions are masked */
	cpu->fpu.fcw |= FSW_EXC;
	cpu->fpu.fsw = x87_es_fixup(cpu->fpu.fsw, cpu->fpu.fcw);
	return i + 1;
}

X86_HANDLER(x87_h_fldenv)
{
	uint8_t env[28];

	x87_enter(cpu);
	x86_read_mem(cpu, x86_ea(cpu, i), env, x87_env_size(i));
	x87_env_load(cpu, i, env);
	return i + 1;
}

X86_HANDLER(x87_h_fnsave)
{
	uint8_t img[X87_IMG_BYTES];
	unsigned n;

	x87_check_nm(cpu);
	n = x87_env_store(cpu, i, img);
	for (unsigned k = 0; k < 8; k++)
		x87_get_reg10(&cpu->fpu, (cpu->fpu.top + k) & 7, img + n + 10 * k);
	x86_write_mem(cpu, x86_ea(cpu, i), img, n + 80);
	x87_init_state(&cpu->fpu);
	return i + 1;
}

X86_HANDLER(x87_h_frstor)
{
	uint8_t img[X87_IMG_BYTES];
	unsigned n = x87_env_size(i);

	x87_enter(cpu);
	x86_read_mem(cpu, x86_ea(cpu, i), img, n + 80);
	x87_env_load(cpu, i, img);
	for (unsigned k = 0; k < 8; k++)
		x87_set_reg10(&cpu->fpu, (cpu->fpu.top + k) & 7, img + n + 10 * k);
	return i + 1;
}

/* FWAIT (9B), selected by the integer decoder. */
X86_HANDLER(x86_h_fwait)
{
	if (unlikely((cpu->cr0 & (CR0_MP | CR0_TS)) == (CR0_MP | CR0_TS)))
		x86_raise(cpu, X86_NM, 0);
	if (unlikely(cpu->fpu.fsw & ~cpu->fpu.fcw & FSW_EXC) && (cpu->cr0 & CR0_NE))
		x86_raise(cpu, X86_MF, 0);
	return i + 1;
}

/* --- fast paths ------------------------------------------------------------------ *
 *
 * FRSTOR and FNSAVE cost far more than the arithmetic, so the common
 * instructions first try a lighter way: the host loads only the operand
 * registers (FLDT) under the guest's FCW with every exception masked,
 * executes the guest's instruction (the ST(i) index normalised to 1, or 0),
 * and reports its status word (FNSTSW), its flags (LAHF) and the registers
 * left on its stack (FSTPT), leaving its stack empty as it found it.  This
 * gives the guest's result only in the plain case, which the handler checks
 * before: no exception pending, every operand register valid, no stack
 * overflow on a push, underflow masked (unmasked, it is detected on tiny
 * results even when they are exact); and after: no raised exception that the guest leaves
 * unmasked.  Otherwise the handler falls back to the full-state path, which
 * starts again from the untouched guest state.  In the plain case the
 * guest's status word changes only by the raised (masked) exception flags
 * and the condition codes the instruction defines; the others keep their
 * values (the differential test checks this against the hardware).
 *
 * X87_FAST_REG and X87_FAST_MEM list the fast stubs: opcode, ModRM (for
 * memory forms ModRM.reg << 3, the operand at [rax]), how many registers
 * the host loads (nin) and stores back (nout), the handler and aux: bits
 * 4-5 how many pops, bit 6 whether it sets ZF PF CF (FCOMI and friends).
 * Bits 0-3 of aux say which condition codes (C0 C1 C2 C3) the instruction
 * writes and are therefore taken from the host; the others keep the
 * guest's values.  They are not taken from the SDM (which calls many of
 * them undefined, and says FCOMI clears C1, which AMD processors do not)
 * but asked of the host once per form, by x87_cc_probe().
 */
#define FCW_UM 0x10u /* unmasked, underflow is detected before rounding */
#define POP1 0x10u
#define POP2 0x20u
#define EFL 0x40u

#define X87_FAST_REG(X)                                                          \
	X(d8, c0, 1, 1, r1, 0) X(d8, c8, 1, 1, r1, 0)                       \
	X(d8, d0, 1, 1, r1, 0) X(d8, d8, 1, 0, r1, POP1)            \
	X(d8, e0, 1, 1, r1, 0) X(d8, e8, 1, 1, r1, 0)                       \
	X(d8, f0, 1, 1, r1, 0) X(d8, f8, 1, 1, r1, 0)                       \
	X(d8, c1, 2, 2, r2, 0) X(d8, c9, 2, 2, r2, 0)                       \
	X(d8, d1, 2, 2, r2, 0) X(d8, d9, 2, 1, r2, POP1)            \
	X(d8, e1, 2, 2, r2, 0) X(d8, e9, 2, 2, r2, 0)                       \
	X(d8, f1, 2, 2, r2, 0) X(d8, f9, 2, 2, r2, 0)                       \
	X(dc, c0, 1, 1, r1, 0) X(dc, c8, 1, 1, r1, 0)                       \
	X(dc, e0, 1, 1, r1, 0) X(dc, e8, 1, 1, r1, 0)                       \
	X(dc, f0, 1, 1, r1, 0) X(dc, f8, 1, 1, r1, 0)                       \
	X(dc, c1, 2, 2, r2, 0) X(dc, c9, 2, 2, r2, 0)                       \
	X(dc, e1, 2, 2, r2, 0) X(dc, e9, 2, 2, r2, 0)                       \
	X(dc, f1, 2, 2, r2, 0) X(dc, f9, 2, 2, r2, 0)                       \
	X(de, c1, 2, 1, r2, POP1) X(de, c9, 2, 1, r2, POP1)         \
	X(de, e1, 2, 1, r2, POP1) X(de, e9, 2, 1, r2, POP1)         \
	X(de, f1, 2, 1, r2, POP1) X(de, f9, 2, 1, r2, POP1)         \
	X(de, d9, 2, 0, r2, POP2) X(da, e9, 2, 0, r2, POP2)     \
	X(dd, e0, 1, 1, r1, 0) X(dd, e1, 2, 2, r2, 0)                   \
	X(dd, e8, 1, 0, r1, POP1) X(dd, e9, 2, 1, r2, POP1)     \
	X(db, e8, 1, 1, r1, EFL) X(db, e9, 2, 2, r2, EFL)           \
	X(db, f0, 1, 1, r1, EFL) X(db, f1, 2, 2, r2, EFL)           \
	X(df, e8, 1, 0, r1, EFL | POP1) X(df, e9, 2, 1, r2, EFL | POP1) \
	X(df, f0, 1, 0, r1, EFL | POP1) X(df, f1, 2, 1, r2, EFL | POP1) \
	X(d9, c8, 1, 1, r1, 0) X(d9, c9, 2, 2, r2, 0)                       \
	X(dd, d0, 1, 1, r1, 0) X(dd, d1, 2, 2, r2, 0)                       \
	X(dd, d8, 1, 0, r1, POP1) X(dd, d9, 2, 1, r2, POP1)         \
	X(d9, c0, 1, 2, fld, 0)                                                \
	X(d9, e0, 1, 1, r1, 0) X(d9, e1, 1, 1, r1, 0)                       \
	X(d9, e4, 1, 1, r1, 0) X(d9, e5, 1, 1, r1, 0)                   \
	X(d9, fa, 1, 1, r1, 0) X(d9, fc, 1, 1, r1, 0)                       \
	X(d9, e8, 0, 1, push, 0) X(d9, e9, 0, 1, push, 0)                   \
	X(d9, ea, 0, 1, push, 0) X(d9, eb, 0, 1, push, 0)                   \
	X(d9, ec, 0, 1, push, 0) X(d9, ed, 0, 1, push, 0)                   \
	X(d9, ee, 0, 1, push, 0)

#define X87_FAST_MEM(X)                                                          \
	X(d8, 00, 1, 1, op32, 0) X(d8, 08, 1, 1, op32, 0)                   \
	X(d8, 10, 1, 1, op32, 0) X(d8, 18, 1, 0, op32, POP1)        \
	X(d8, 20, 1, 1, op32, 0) X(d8, 28, 1, 1, op32, 0)                   \
	X(d8, 30, 1, 1, op32, 0) X(d8, 38, 1, 1, op32, 0)                   \
	X(da, 00, 1, 1, op32, 0) X(da, 08, 1, 1, op32, 0)                   \
	X(da, 10, 1, 1, op32, 0) X(da, 18, 1, 0, op32, POP1)        \
	X(da, 20, 1, 1, op32, 0) X(da, 28, 1, 1, op32, 0)                   \
	X(da, 30, 1, 1, op32, 0) X(da, 38, 1, 1, op32, 0)                   \
	X(dc, 00, 1, 1, op64, 0) X(dc, 08, 1, 1, op64, 0)                   \
	X(dc, 10, 1, 1, op64, 0) X(dc, 18, 1, 0, op64, POP1)        \
	X(dc, 20, 1, 1, op64, 0) X(dc, 28, 1, 1, op64, 0)                   \
	X(dc, 30, 1, 1, op64, 0) X(dc, 38, 1, 1, op64, 0)                   \
	X(de, 00, 1, 1, op16, 0) X(de, 08, 1, 1, op16, 0)                   \
	X(de, 10, 1, 1, op16, 0) X(de, 18, 1, 0, op16, POP1)        \
	X(de, 20, 1, 1, op16, 0) X(de, 28, 1, 1, op16, 0)                   \
	X(de, 30, 1, 1, op16, 0) X(de, 38, 1, 1, op16, 0)                   \
	X(d9, 00, 0, 1, ld32, 0) X(d9, 10, 1, 1, st32, 0)                   \
	X(d9, 18, 1, 0, st32, POP1)                                        \
	X(db, 00, 0, 1, ld32, 0) X(db, 08, 1, 0, st32, POP1)            \
	X(db, 10, 1, 1, st32, 0) X(db, 18, 1, 0, st32, POP1)            \
	X(db, 28, 0, 1, ld80, 0) X(db, 38, 1, 0, st80, POP1)            \
	X(dd, 00, 0, 1, ld64, 0) X(dd, 08, 1, 0, st64, POP1)            \
	X(dd, 10, 1, 1, st64, 0) X(dd, 18, 1, 0, st64, POP1)            \
	X(df, 00, 0, 1, ld16, 0) X(df, 08, 1, 0, st16, POP1)            \
	X(df, 10, 1, 1, st16, 0) X(df, 18, 1, 0, st16, POP1)            \
	X(df, 28, 0, 1, ld64, 0) X(df, 38, 1, 0, st64, POP1)

/* The exchange area of a fast stub. */
struct x87_fast_io {
	uint16_t fcw;  /* 0: the guest's FCW with all exceptions masked */
	uint16_t fsw;  /* 2: the host's status word after the instruction */
	uint16_t hcw;  /* 4: the host's own FCW, restored at the end */
	uint8_t flags; /* 6: LAHF after the instruction */
	uint8_t pad[9];
	uint8_t in[2][16];  /* 16, 32: host ST0, ST1 on entry */
	uint8_t out[2][16]; /* 48, 64: host ST0, ST1 at the end */
} __attribute__((aligned(16)));
_Static_assert(__builtin_offsetof(struct x87_fast_io, in) == 16, "fast stub layout");
_Static_assert(__builtin_offsetof(struct x87_fast_io, out) == 48, "fast stub layout");

#define X87_FAST_ASM(o, m, nin, nout, kind, aux) \
	"X87_FAST x87f_" #o "_" #m ", 0x" #o ", 0x" #m ", " #nin ", " #nout "\n"

__asm__(
	".pushsection .text\n"
	".macro X87_FAST name, o, m, nin, nout\n"
	"  .balign 16\n"
	"  .type \\name, @function\n"
	"  .hidden \\name\n"
	"  .globl \\name\n"
	"\\name:\n"
	"  endbr64\n"
	"  fnstcw 4(%rdi)\n"
	"  movzwl 4(%rdi), %ecx\n"
	"  cmpw 0(%rdi), %cx\n"
	"  je 1f\n"
	"  fldcw 0(%rdi)\n"
	"1:\n"
	"  fnclex\n"
	"  .if \\nin >= 2\n"
	"  fldt 32(%rdi)\n"
	"  .endif\n"
	"  .if \\nin >= 1\n"
	"  fldt 16(%rdi)\n"
	"  .endif\n"
	"  movq %rsi, %rax\n"
	"  .byte \\o, \\m\n"
	"  fnstsw 2(%rdi)\n"
	"  lahf\n"
	"  movb %ah, 6(%rdi)\n"
	"  .if \\nout >= 1\n"
	"  fstpt 48(%rdi)\n"
	"  .endif\n"
	"  .if \\nout >= 2\n"
	"  fstpt 64(%rdi)\n"
	"  .endif\n"
	"  cmpw 0(%rdi), %cx\n"
	"  je 2f\n"
	"  fldcw 4(%rdi)\n"
	"2:\n"
	"  ret\n"
	"  .size \\name, . - \\name\n"
	".endm\n"
	X87_FAST_REG(X87_FAST_ASM)
	X87_FAST_MEM(X87_FAST_ASM)
	".purgem X87_FAST\n"
	".popsection\n");

typedef void (*x87_fast_fn)(struct x87_fast_io *io, void *mem);

#define X87_FAST_DECL(o, m, nin, nout, kind, aux) void x87f_##o##_##m(struct x87_fast_io *io, void *mem);
X87_FAST_REG(X87_FAST_DECL)
X87_FAST_MEM(X87_FAST_DECL)

static inline void x87_fast_run(const struct x86_insn *i, struct x87_fast_io *io, void *mem)
{
	((x87_fast_fn)(uintptr_t)i->imm)(io, mem);
}

static inline bool x87_valid(const struct x86_fpu *f, unsigned st)
{
	return f->tag_valid & (1u << ((f->top + st) & 7));
}

static inline void x87_pop(struct x86_fpu *f)
{
	f->tag_valid &= (uint8_t)~(1u << f->top);
	f->top = (f->top + 1) & 7;
}

static inline void x87_push(struct x86_fpu *f, const uint8_t *v)
{
	f->top = (f->top - 1) & 7;
	f->tag_valid |= (uint8_t)(1u << f->top);
	x87_set_reg10(f, f->top, v);
}

/* The guest status word after a plain run, or false when an exception the
 * guest leaves unmasked was raised (then nothing is committed). */
static inline bool x87_fast_fsw(struct x86_cpu *cpu, const struct x86_insn *i,
				const struct x87_fast_io *io, uint16_t *fsw)
{
	static const uint16_t cc_bits[16] = {
		0, 0x100, 0x200, 0x300, 0x400, 0x500, 0x600, 0x700,
		0x4000, 0x4100, 0x4200, 0x4300, 0x4400, 0x4500, 0x4600, 0x4700,
	};
	uint16_t h = io->fsw, cc = cc_bits[i->aux & 15];

	if (unlikely(h & ~cpu->fpu.fcw & FSW_EXC))
		return false;
	*fsw = (uint16_t)((cpu->fpu.fsw & ~cc) | (h & cc) | (h & FSW_EXC));
	return true;
}

static inline void x87_fast_io_init(const struct x86_cpu *cpu, struct x87_fast_io *io)
{
	io->fcw = cpu->fpu.fcw | FSW_EXC;
}

static inline void x87_fast_flags(struct x86_cpu *cpu, const struct x86_insn *i,
				  const struct x87_fast_io *io)
{
	if (i->aux & EFL)
		x86_set_arith_flags(cpu, io->flags & (X86_ZF | X86_PF | X86_CF));
}

/* One register operand, ST0: unary operations and the ST(i) forms with
 * i = 0. */
X86_HANDLER(x87_f_r1)
{
	struct x86_fpu *f = &cpu->fpu;
	struct x87_fast_io io;
	uint16_t fsw;

	if (unlikely(x87_enter(cpu) || !x87_valid(f, 0) || !(f->fcw & FCW_UM)))
		return i->aux & EFL ? x87_h_reg_flags(cpu, i) : x87_h_reg(cpu, i);
	x87_fast_io_init(cpu, &io);
	x87_get_reg10(f, f->top, io.in[0]);
	x87_fast_run(i, &io, NULL);
	if (unlikely(!x87_fast_fsw(cpu, i, &io, &fsw)))
		return i->aux & EFL ? x87_h_reg_flags(cpu, i) : x87_h_reg(cpu, i);
	f->fsw = fsw;
	x87_fast_flags(cpu, i, &io);
	if (i->aux & POP1)
		x87_pop(f);
	else
		x87_set_reg10(f, f->top, io.out[0]);
	x87_set_ip(cpu, i);
	return i + 1;
}

/* ST0 and ST(i), i > 0: the host has them as ST0 and ST1. */
X86_HANDLER(x87_f_r2)
{
	struct x86_fpu *f = &cpu->fpu;
	unsigned k = i->modrm & 7, p0 = f->top, pk = (f->top + k) & 7;
	struct x87_fast_io io;
	uint16_t fsw;

	if (unlikely(x87_enter(cpu) || !x87_valid(f, 0) || !x87_valid(f, k) || !(f->fcw & FCW_UM)))
		return i->aux & EFL ? x87_h_reg_flags(cpu, i) : x87_h_reg(cpu, i);
	x87_fast_io_init(cpu, &io);
	x87_get_reg10(f, p0, io.in[0]);
	x87_get_reg10(f, pk, io.in[1]);
	x87_fast_run(i, &io, NULL);
	if (unlikely(!x87_fast_fsw(cpu, i, &io, &fsw)))
		return i->aux & EFL ? x87_h_reg_flags(cpu, i) : x87_h_reg(cpu, i);
	f->fsw = fsw;
	x87_fast_flags(cpu, i, &io);
	switch (i->aux & (POP1 | POP2)) {
	case 0:
		x87_set_reg10(f, p0, io.out[0]);
		x87_set_reg10(f, pk, io.out[1]);
		break;
	case POP1:
		x87_set_reg10(f, pk, io.out[0]);
		x87_pop(f);
		break;
	default:
		x87_pop(f);
		x87_pop(f);
		break;
	}
	x87_set_ip(cpu, i);
	return i + 1;
}

/* FLD ST(i): the host loads ST(i) and executes FLD ST0. */
X86_HANDLER(x87_f_fld)
{
	struct x86_fpu *f = &cpu->fpu;
	unsigned k = i->modrm & 7;
	struct x87_fast_io io;
	uint16_t fsw;

	if (unlikely(x87_enter(cpu) || !x87_valid(f, k) || x87_valid(f, 7) || !(f->fcw & FCW_UM)))
		return x87_h_reg(cpu, i);
	x87_fast_io_init(cpu, &io);
	x87_get_reg10(f, (f->top + k) & 7, io.in[0]);
	x87_fast_run(i, &io, NULL);
	if (unlikely(!x87_fast_fsw(cpu, i, &io, &fsw)))
		return x87_h_reg(cpu, i);
	f->fsw = fsw;
	x87_push(f, io.out[0]);
	x87_set_ip(cpu, i);
	return i + 1;
}

/* The constants. */
X86_HANDLER(x87_f_push)
{
	struct x86_fpu *f = &cpu->fpu;
	struct x87_fast_io io;
	uint16_t fsw;

	if (unlikely(x87_enter(cpu) || x87_valid(f, 7) || !(f->fcw & FCW_UM)))
		return x87_h_reg(cpu, i);
	x87_fast_io_init(cpu, &io);
	x87_fast_run(i, &io, NULL);
	if (unlikely(!x87_fast_fsw(cpu, i, &io, &fsw)))
		return x87_h_reg(cpu, i);
	f->fsw = fsw;
	x87_push(f, io.out[0]);
	x87_set_ip(cpu, i);
	return i + 1;
}

/* Loads from memory (FLD, FILD). */
#define X87_FAST_LD(bits, slow)                                            \
	X86_HANDLER(x87_f_ld##bits)                                        \
	{                                                                  \
		struct x86_fpu *f = &cpu->fpu;                             \
		struct x87_fast_io io;                                     \
		uint8_t buf[16] __attribute__((aligned(16)));              \
		uint16_t fsw;                                              \
		if (unlikely(x87_enter(cpu) || x87_valid(f, 7) ||          \
			     !(f->fcw & FCW_UM)))                          \
			return slow(cpu, i);                               \
		x87_read_operand(cpu, i, buf, bits / 8);                   \
		x87_fast_io_init(cpu, &io);                                \
		x87_fast_run(i, &io, buf);                                 \
		if (unlikely(!x87_fast_fsw(cpu, i, &io, &fsw))) {          \
			x87_load_op(cpu, i, buf, 0); /* no second read */  \
			return i + 1;                                      \
		}                                                          \
		f->fsw = fsw;                                              \
		x87_push(f, io.out[0]);                                    \
		x87_set_ip(cpu, i);                                        \
		x87_set_dp(cpu, i);                                        \
		return i + 1;                                              \
	}

/* Arithmetic and comparisons with a memory operand. */
#define X87_FAST_OP(bits, slow)                                            \
	X86_HANDLER(x87_f_op##bits)                                        \
	{                                                                  \
		struct x86_fpu *f = &cpu->fpu;                             \
		struct x87_fast_io io;                                     \
		uint8_t buf[16] __attribute__((aligned(16)));              \
		uint16_t fsw;                                              \
		if (unlikely(x87_enter(cpu) || !x87_valid(f, 0) ||         \
			     !(f->fcw & FCW_UM)))                          \
			return slow(cpu, i);                               \
		x87_read_operand(cpu, i, buf, bits / 8);                   \
		x87_fast_io_init(cpu, &io);                                \
		x87_get_reg10(f, f->top, io.in[0]);                        \
		x87_fast_run(i, &io, buf);                                 \
		if (unlikely(!x87_fast_fsw(cpu, i, &io, &fsw))) {          \
			x87_load_op(cpu, i, buf, 0); /* no second read */  \
			return i + 1;                                      \
		}                                                          \
		f->fsw = fsw;                                              \
		if (i->aux & POP1)                                         \
			x87_pop(f);                                        \
		else                                                       \
			x87_set_reg10(f, f->top, io.out[0]);               \
		x87_set_ip(cpu, i);                                        \
		x87_set_dp(cpu, i);                                        \
		return i + 1;                                              \
	}

/* Stores to memory (FST, FSTP, FIST, FISTP, FISTTP). */
#define X87_FAST_ST(bits, slow)                                            \
	X86_HANDLER(x87_f_st##bits)                                        \
	{                                                                  \
		struct x86_fpu *f = &cpu->fpu;                             \
		struct x87_fast_io io;                                     \
		uint8_t buf[16] __attribute__((aligned(16)));              \
		uint16_t fsw;                                              \
		uint64_t la;                                               \
		if (unlikely(x87_enter(cpu) || !x87_valid(f, 0) ||         \
			     !(f->fcw & FCW_UM)))                          \
			return slow(cpu, i);                               \
		la = x86_ea(cpu, i);                                       \
		x86_probe_write(cpu, la, bits / 8);                        \
		x87_fast_io_init(cpu, &io);                                \
		x87_get_reg10(f, f->top, io.in[0]);                        \
		x87_fast_run(i, &io, buf);                                 \
		if (unlikely(!x87_fast_fsw(cpu, i, &io, &fsw)))            \
			return slow(cpu, i);                               \
		x87_write_operand(cpu, la, buf, bits / 8);                 \
		f->fsw = fsw;                                              \
		if (i->aux & POP1)                                         \
			x87_pop(f);                                        \
		else                                                       \
			x87_set_reg10(f, f->top, io.out[0]);               \
		x87_set_ip(cpu, i);                                        \
		x87_set_dp(cpu, i);                                        \
		return i + 1;                                              \
	}

X87_FAST_LD(16, x87_h_ld16)
X87_FAST_LD(32, x87_h_ld32)
X87_FAST_LD(64, x87_h_ld64)
X87_FAST_LD(80, x87_h_ld80)
X87_FAST_OP(16, x87_h_ld16)
X87_FAST_OP(32, x87_h_ld32)
X87_FAST_OP(64, x87_h_ld64)
X87_FAST_ST(16, x87_h_st16)
X87_FAST_ST(32, x87_h_st32)
X87_FAST_ST(64, x87_h_st64)
X87_FAST_ST(80, x87_h_st80)

/* Which condition codes the host's instruction (a fast-table form) writes,
 * as aux bits 0-3: it runs twice through the full-state stub on the same
 * plain operands, with C0-C3 all clear and all set; a code that comes out
 * the same both times is written by the instruction, one that follows its
 * input is kept.  The answer is a property of the host and the form, so it
 * is cached once for every CPU instance (two threads racing both compute
 * the same answer). */
static unsigned x87_cc_probe(unsigned opc, unsigned m, bool is_mem)
{
	static uint8_t cache[8][72]; /* 0x80 | bits, or 0 when not yet asked */
	unsigned slot = is_mem ? 64 + ((m >> 3) & 7) : m - 0xc0;
	uint8_t *c = &cache[opc & 7][slot];
	uint16_t out[2];
	uint8_t known = __atomic_load_n(c, __ATOMIC_RELAXED);

	if (known)
		return known & 15;
	for (unsigned run = 0; run < 2; run++) {
		uint8_t img[X87_IMG_BYTES] __attribute__((aligned(16)));
		uint8_t buf[16] __attribute__((aligned(16)));
		struct x86_fpu f;
		struct x86_insn probe;

		memset(&f, 0, sizeof(f));
		f.fcw = 0x37f;
		f.fsw = run ? 0x4700 : 0;
		f.top = 1;
		f.tag_valid = 0xfe; /* ST0..ST6 valid, ST7 empty */
		for (unsigned k = 0; k < 7; k++)
			f.st[(1 + k) & 7] = 1.5L + k;
		memset(buf, 0, sizeof(buf));
		switch (opc) {
		case 0xd8: case 0xd9: { float v = 1.25f; memcpy(buf, &v, 4); break; }
		case 0xdc: case 0xdd: { double v = 1.25; memcpy(buf, &v, 8); break; }
		case 0xda: case 0xdb: buf[0] = 3; break;
		default: buf[0] = 3; break; /* m16int, m64int */
		}
		if (opc == 0xdb && ((m >> 3) & 7) == 5) {
			long double v = 1.25L;
			memcpy(buf, &v, 10);
		}
		memset(&probe, 0, sizeof(probe));
		probe.op = (uint16_t)opc;
		probe.modrm = (uint8_t)m;
		probe.is_mem = is_mem;
		x87_pack(&f, img, 0);
		x87_stub(&probe)(img, buf, 0);
		out[run] = get16(img + 4);
	}
	unsigned same = ~(unsigned)(out[0] ^ out[1]), bits = 0;
	if (same & 0x100) bits |= 1;
	if (same & 0x200) bits |= 2;
	if (same & 0x400) bits |= 4;
	if (same & 0x4000) bits |= 8;
	__atomic_store_n(c, (uint8_t)(0x80 | bits), __ATOMIC_RELAXED);
	return bits;
}

/* Picks the fast handler of i, if there is one: sets i->fn, i->imm (the
 * fast stub) and i->aux. */
static bool x87_select_fast(struct x86_insn *i, unsigned opc)
{
	unsigned m = i->modrm, g = (m >> 3) & 7, key;

	if (i->is_mem) {
		key = opc << 8 | (m & 0x38);
		switch (key) {
#define X87_FAST_CASE_MEM(o, m, nin, nout, kind, aux_) \
		case 0x##o##m: i->fn = x87_f_##kind; i->imm = (uintptr_t)x87f_##o##_##m; i->aux = (aux_); break;
		X87_FAST_MEM(X87_FAST_CASE_MEM)
		default: return false;
		}
		i->aux |= (uint8_t)x87_cc_probe(opc, m & 0x38, true);
		return true;
	}
	/* Forms with an ST(i) operand: the stub has i normalised to 1 (or 0). */
	bool indexed = opc == 0xd8 || ((opc == 0xdc || opc == 0xde) && g != 2 && g != 3) ||
		       (opc == 0xdd && g >= 2 && g <= 5) || ((opc == 0xdb || opc == 0xdf) && (g == 5 || g == 6)) ||
		       (opc == 0xd9 && g == 1);
	if (indexed)
		m = (m & 0xf8) | ((m & 7) ? 1 : 0);
	else if (opc == 0xd9 && g == 0)
		m = 0xc0; /* FLD ST(i) */
	key = opc << 8 | m;
	switch (key) {
#define X87_FAST_CASE_REG(o, m, nin, nout, kind, aux_) \
	case 0x##o##m: i->fn = x87_f_##kind; i->imm = (uintptr_t)x87f_##o##_##m; i->aux = (aux_); break;
	X87_FAST_REG(X87_FAST_CASE_REG)
	default: return false;
	}
	i->aux |= (uint8_t)x87_cc_probe(opc, m, false);
	return true;
}

/* --- selection ------------------------------------------------------------------ */

/* Register forms (ModRM C0-FF) that are undefined, per opcode D8..DF: bit
 * (modrm - 0xc0).  Measured on hardware and matching the SDM's map plus
 * the long-standing aliases (FSTP1, FCOM2, FCOMP3, FXCH4, FCOMP5, FFREEP,
 * FXCH7, FSTP8, FSTP9) that Intel and AMD processors execute. */
static bool x87_reg_form_valid(unsigned opc, unsigned modrm)
{
	unsigned m = modrm - 0xc0;

	switch (opc) {
	case 0xd9:
		return !((m >= 0x11 && m <= 0x17) || m == 0x22 || m == 0x23 ||
			 m == 0x26 || m == 0x27 || m == 0x2f);
	case 0xda:
		return m < 0x20 || m == 0x29;
	case 0xdb:
		return !((m >= 0x25 && m <= 0x27) || m >= 0x38);
	case 0xdd:
		return m < 0x30;
	case 0xde:
		return !(m == 0x18 || (m >= 0x1a && m <= 0x1f));
	case 0xdf:
		return !((m >= 0x21 && m <= 0x27) || m >= 0x38);
	default:
		return true;
	}
}

bool x86_select_x87(struct x86_insn *i, unsigned opc)
{
	unsigned r = (i->modrm >> 3) & 7;

	if (!i->is_mem) {
		unsigned m = i->modrm;
		if (!x87_reg_form_valid(opc, m))
			return false;
		if (opc == 0xdb && m == 0xe2) {
			i->fn = x87_h_fnclex;
		} else if (opc == 0xdb && m == 0xe3) {
			i->fn = x87_h_fninit;
		} else if (opc == 0xdb && (m == 0xe0 || m == 0xe1 || m == 0xe4)) {
			i->fn = x87_h_fnnop;
		} else if (opc == 0xdf && m == 0xe0) {
			i->fn = x87_h_fnstsw_ax;
		} else if (x87_select_fast(i, opc)) {
			/* fast path chosen */
		} else {
			bool fl = ((opc == 0xda || opc == 0xdb) && m < 0xe0) ||
				  ((opc == 0xdb || opc == 0xdf) && m >= 0xe8 && m < 0xf8);
			i->fn = fl ? x87_h_reg_flags : x87_h_reg;
		}
		return true;
	}

	if (x87_select_fast(i, opc))
		return true;
	switch (opc) {
	case 0xd8: /* FADD..FDIVR m32fp */
	case 0xda: /* FIADD..FIDIVR m32int */
		i->fn = x87_h_ld32;
		return true;
	case 0xdc: /* m64fp */
		i->fn = x87_h_ld64;
		return true;
	case 0xde: /* m16int */
		i->fn = x87_h_ld16;
		return true;
	case 0xd9:
		switch (r) {
		case 0: i->fn = x87_h_ld32; return true;   /* FLD m32fp */
		case 2: case 3: i->fn = x87_h_st32; return true; /* FST(P) m32fp */
		case 4: i->fn = x87_h_fldenv; return true;
		case 5: i->fn = x87_h_fldcw; return true;
		case 6: i->fn = x87_h_fnstenv; return true;
		case 7: i->fn = x87_h_fnstcw; return true;
		default: return false;
		}
	case 0xdb:
		switch (r) {
		case 0: i->fn = x87_h_ld32; return true;  /* FILD m32int */
		case 1: case 2: case 3: i->fn = x87_h_st32; return true; /* FISTTP FIST FISTP */
		case 5: i->fn = x87_h_ld80; return true;  /* FLD m80fp */
		case 7: i->fn = x87_h_st80; return true;  /* FSTP m80fp */
		default: return false;
		}
	case 0xdd:
		switch (r) {
		case 0: i->fn = x87_h_ld64; return true;  /* FLD m64fp */
		case 1: case 2: case 3: i->fn = x87_h_st64; return true; /* FISTTP m64int, FST(P) m64fp */
		case 4: i->fn = x87_h_frstor; return true;
		case 6: i->fn = x87_h_fnsave; return true;
		case 7: i->fn = x87_h_fnstsw_m; return true;
		default: return false;
		}
	case 0xdf:
		switch (r) {
		case 0: i->fn = x87_h_ld16; return true;  /* FILD m16int */
		case 1: case 2: case 3: i->fn = x87_h_st16; return true; /* FISTTP FIST FISTP m16 */
		case 4: i->fn = x87_h_ld80; return true;  /* FBLD */
		case 5: i->fn = x87_h_ld64; return true;  /* FILD m64int */
		case 6: i->fn = x87_h_st80; return true;  /* FBSTP */
		case 7: i->fn = x87_h_st64; return true;  /* FISTP m64int */
		default: return false;
		}
	default:
		return false;
	}
}

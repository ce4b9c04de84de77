/*
 * System-level x86: segment descriptor loads, CPU mode bookkeeping,
 * exception and interrupt delivery (real mode, 32-bit protected mode and
 * long mode, with privilege changes, IST stacks, #DF and triple fault),
 * IRET, far transfers, SYSCALL/SYSRET, MSRs, control and debug registers,
 * descriptor-table instructions, CLI/STI, HLT and port I/O.
 *
 * Simplifications, all documented in docs/architecture.md: no task
 * switching (task gates and far transfers to TSS descriptors raise #GP),
 * no call gates, segment limits are not checked, no virtual-8086 mode,
 * no I/O permission bitmap (CPL > IOPL gets #GP for I/O).
 */
#include "cpu/x86/alu.h"
#include "cpu/x86/sys.h"

#include <errno.h>
#include <stdio.h>

/* --- mode bookkeeping ------------------------------------------------------ */

void x86_update_mode(struct x86_cpu *cpu)
{
	cpu->chain_gen++;
	bool pe = cpu->cr0 & X86_CR0_PE;
	cpu->code64 = (cpu->efer & X86_EFER_LMA) && (cpu->seg[X86_CS].attr & X86_SEG_L);
	cpu->cpl = pe ? (cpu->seg[X86_CS].attr >> 5) & 3 : 0;
	if (pe && (cpu->seg[X86_CS].attr & 0x8) == 0) /* never: CS is code */
		cpu->cpl = cpu->seg[X86_CS].sel & 3;
	if (cpu->user_mode) {
		cpu->code64 = 1;
		cpu->cpl = 3;
	}
	cpu->mmu_idx = cpu->cpl == 3;
	if (cpu->code64)
		cpu->sp_mask = ~0ull;
	else
		cpu->sp_mask = (cpu->seg[X86_SS].attr & X86_SEG_DB) ? 0xffffffffull : 0xffff;
	for (unsigned s = 0; s < 6; s++)
		cpu->segbase[s] = (cpu->code64 && s < X86_FS) ? 0 : cpu->seg[s].base;
	cpu->segbase[X86_SEG_NONE] = 0;
}

/* Supervisor ("implicit") accesses to system tables. */
static uint64_t sys_read(struct x86_cpu *cpu, uint64_t la, unsigned size)
{
	uint32_t saved = cpu->mmu_idx;
	cpu->mmu_idx = 0;
	uint64_t v = x86_read(cpu, la, size);
	cpu->mmu_idx = saved;
	return v;
}

static void sys_write(struct x86_cpu *cpu, uint64_t la, unsigned size, uint64_t v)
{
	uint32_t saved = cpu->mmu_idx;
	cpu->mmu_idx = 0;
	x86_write(cpu, la, size, v);
	cpu->mmu_idx = saved;
}

/* Reads the 8-byte descriptor of sel from the GDT or LDT; #GP(sel) when it
 * lies beyond the table's limit. */
static uint64_t read_desc(struct x86_cpu *cpu, uint16_t sel, uint64_t *hi)
{
	const struct x86_dtable *t = &cpu->gdtr;
	struct x86_dtable ldt;
	if (sel & 4) {
		ldt.base = cpu->ldtr.base;
		ldt.limit = (uint16_t)MIN(cpu->ldtr.limit, 0xffffu);
		if (!(cpu->ldtr.attr & X86_SEG_P))
			x86_raise(cpu, X86_GP, sel & 0xfffc);
		t = &ldt;
	}
	unsigned idx = sel & ~7u;
	if (idx + 7 > t->limit)
		x86_raise(cpu, X86_GP, sel & 0xfffc);
	if (hi)
		*hi = (idx + 15 <= t->limit) ? sys_read(cpu, t->base + idx + 8, 8) : 0;
	return sys_read(cpu, t->base + idx, 8);
}

static struct x86_segment seg_from_desc(uint16_t sel, uint64_t d, uint64_t hi, bool system64)
{
	struct x86_segment s;
	s.sel = sel;
	s.base = ((d >> 16) & 0xffffff) | ((d >> 32) & 0xff000000);
	if (system64)
		s.base |= hi << 32;
	uint32_t limit = (uint32_t)((d & 0xffff) | ((d >> 32) & 0xf0000));
	if (d & (1ull << 55))
		limit = (limit << 12) | 0xfff;
	s.limit = limit;
	s.attr = (uint16_t)(((d >> 40) & 0xff) | (((d >> 52) & 0xf) << 8));
	return s;
}

/* Loads a data or stack segment register with protected-mode checks. */
void x86_load_seg(struct x86_cpu *cpu, unsigned sreg, uint16_t sel)
{
	if (!(cpu->cr0 & X86_CR0_PE)) {
		cpu->seg[sreg].sel = sel;
		cpu->seg[sreg].base = (uint64_t)sel << 4;
		x86_update_mode(cpu);
		return;
	}
	if ((sel & 0xfffc) == 0) {
		/* Null: allowed for data segments, and for SS in 64-bit mode
		 * below CPL 3. */
		if (sreg == X86_SS && !(cpu->code64 && cpu->cpl != 3))
			x86_raise(cpu, X86_GP, 0);
		cpu->seg[sreg].sel = sel;
		cpu->seg[sreg].base = 0;
		cpu->seg[sreg].limit = 0;
		cpu->seg[sreg].attr = sreg == X86_SS ? (uint16_t)(cpu->cpl << 5) : 0;
		x86_update_mode(cpu);
		return;
	}
	uint64_t d = read_desc(cpu, sel, NULL);
	struct x86_segment s = seg_from_desc(sel, d, 0, false);
	unsigned type = s.attr & 0xf, dpl = (s.attr >> 5) & 3, rpl = sel & 3;
	if (!(s.attr & X86_SEG_S))
		x86_raise(cpu, X86_GP, sel & 0xfffc);
	if (sreg == X86_SS) {
		if ((type & 0xa) != 0x2 || rpl != cpu->cpl || dpl != cpu->cpl)
			x86_raise(cpu, X86_GP, sel & 0xfffc);
		if (!(s.attr & X86_SEG_P))
			x86_raise(cpu, X86_SS_FAULT, sel & 0xfffc);
	} else {
		if ((type & 0xa) == 0x8) /* execute-only code */
			x86_raise(cpu, X86_GP, sel & 0xfffc);
		if (!(s.attr & X86_SEG_P))
			x86_raise(cpu, X86_NP, sel & 0xfffc);
	}
	cpu->seg[sreg] = s;
	x86_update_mode(cpu);
}

/* Loads CS for a far transfer to a code segment at the same privilege (or
 * for delivery to new_cpl). */
static struct x86_segment code_desc(struct x86_cpu *cpu, uint16_t sel, uint32_t err)
{
	if ((sel & 0xfffc) == 0)
		x86_raise(cpu, X86_GP, 0);
	uint64_t d = read_desc(cpu, sel, NULL);
	struct x86_segment s = seg_from_desc(sel, d, 0, false);
	if (!(s.attr & X86_SEG_S) || !(s.attr & 0x8))
		x86_raise(cpu, X86_GP, err ? err : (sel & 0xfffc));
	if (!(s.attr & X86_SEG_P))
		x86_raise(cpu, X86_NP, sel & 0xfffc);
	return s;
}

/* --- exception and interrupt delivery ----------------------------------- */

static bool has_error_code(unsigned v)
{
	return v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21;
}

static void push_sys(struct x86_cpu *cpu, uint64_t *sp, uint64_t ssbase, uint64_t mask,
		     unsigned size, uint64_t v)
{
	*sp = (*sp - size) & mask;
	sys_write(cpu, ssbase + *sp, size, v);
}

/*
 * Delivers vector through the IDT (or IVT).  ext: an external interrupt or
 * an exception (not INT n); soft: INT n / INT3 / INTO (gate DPL checked);
 * ret_rip: the RIP to push.
 */
static void deliver(struct x86_cpu *cpu, unsigned vector, bool soft, bool push_err,
		    uint32_t err, uint64_t ret_rip)
{
	uint64_t flags = x86_flags(cpu);

	if (!(cpu->cr0 & X86_CR0_PE)) {
		/* Real mode: the IVT. */
		if (vector * 4 + 3 > cpu->idtr.limit)
			x86_raise(cpu, X86_GP, 0);
		uint32_t ent = (uint32_t)sys_read(cpu, cpu->idtr.base + vector * 4, 4);
		uint64_t sp = cpu->regs[X86_RSP];
		uint64_t ssb = cpu->seg[X86_SS].base;
		push_sys(cpu, &sp, ssb, 0xffff, 2, flags);
		push_sys(cpu, &sp, ssb, 0xffff, 2, cpu->seg[X86_CS].sel);
		push_sys(cpu, &sp, ssb, 0xffff, 2, ret_rip);
		cpu->regs[X86_RSP] = (cpu->regs[X86_RSP] & ~0xffffull) | sp;
		cpu->rflags &= ~(uint64_t)(X86_IF | X86_TF | X86_AC);
		cpu->seg[X86_CS].sel = (uint16_t)(ent >> 16);
		cpu->seg[X86_CS].base = (uint64_t)(ent >> 16) << 4;
		cpu->rip = ent & 0xffff;
		x86_update_mode(cpu);
		return;
	}

	bool lm = cpu->efer & X86_EFER_LMA;
	unsigned gsize = lm ? 16 : 8;
	uint32_t gerr = vector * 8 + 2 + (soft ? 0 : 1);
	if (vector * gsize + gsize - 1 > cpu->idtr.limit)
		x86_raise(cpu, X86_GP, gerr);
	uint64_t g = sys_read(cpu, cpu->idtr.base + vector * gsize, 8);
	uint64_t ghi = lm ? sys_read(cpu, cpu->idtr.base + vector * gsize + 8, 8) : 0;
	unsigned gtype = (g >> 40) & 0xf, gdpl = (g >> 45) & 3;
	bool trap;
	if (lm) {
		if (gtype != 0xe && gtype != 0xf)
			x86_raise(cpu, X86_GP, gerr);
	} else if (gtype != 0xe && gtype != 0xf && gtype != 0x6 && gtype != 0x7) {
		x86_raise(cpu, X86_GP, gerr); /* task gates: no task switching */
	}
	trap = gtype & 1;
	if (soft && gdpl < cpu->cpl)
		x86_raise(cpu, X86_GP, gerr);
	if (!(g & (1ull << 47)))
		x86_raise(cpu, X86_NP, gerr);
	uint16_t sel = (uint16_t)(g >> 16);
	uint64_t target = (g & 0xffff) | ((g >> 32) & 0xffff0000);
	if (lm)
		target |= ghi << 32;
	struct x86_segment cs = code_desc(cpu, sel, 0);
	unsigned dpl = (cs.attr >> 5) & 3;
	if (cs.attr & 0x4) /* conforming: stays at CPL */
		dpl = cpu->cpl;
	if (dpl > cpu->cpl)
		x86_raise(cpu, X86_GP, sel & 0xfffc);
	unsigned new_cpl = dpl;
	cs.sel = (uint16_t)((sel & 0xfffc) | new_cpl);

	if (lm) {
		if (!(cs.attr & X86_SEG_L) || (cs.attr & X86_SEG_DB))
			x86_raise(cpu, X86_GP, sel & 0xfffc);
		uint64_t sp = cpu->regs[X86_RSP];
		unsigned ist = ghi ? 0 : (unsigned)(g >> 32) & 7;
		ist = (unsigned)(g >> 32) & 7;
		if (new_cpl < cpu->cpl)
			sp = sys_read(cpu, cpu->tr.base + 4 + new_cpl * 8, 8);
		if (ist)
			sp = sys_read(cpu, cpu->tr.base + 0x24 + (ist - 1) * 8, 8);
		sp &= ~15ull;
		uint32_t saved_idx = cpu->mmu_idx;
		cpu->mmu_idx = new_cpl == 3;
		uint64_t nsp = sp;
		push_sys(cpu, &nsp, 0, ~0ull, 8, cpu->seg[X86_SS].sel);
		push_sys(cpu, &nsp, 0, ~0ull, 8, cpu->regs[X86_RSP]);
		push_sys(cpu, &nsp, 0, ~0ull, 8, flags);
		push_sys(cpu, &nsp, 0, ~0ull, 8, cpu->seg[X86_CS].sel);
		push_sys(cpu, &nsp, 0, ~0ull, 8, ret_rip);
		if (push_err)
			push_sys(cpu, &nsp, 0, ~0ull, 8, err);
		cpu->mmu_idx = saved_idx;
		if (new_cpl != cpu->cpl) {
			cpu->seg[X86_SS].sel = (uint16_t)new_cpl;
			cpu->seg[X86_SS].base = 0;
			cpu->seg[X86_SS].limit = 0;
			cpu->seg[X86_SS].attr = (uint16_t)(new_cpl << 5);
		}
		cpu->regs[X86_RSP] = nsp;
		cpu->seg[X86_CS] = cs;
		cpu->rip = target;
	} else {
		bool g32 = gtype & 8;
		unsigned sz = g32 ? 4 : 2;
		uint64_t sp, ssbase, mask;
		struct x86_segment ss = cpu->seg[X86_SS];
		bool stack_switch = new_cpl < cpu->cpl;
		if (stack_switch) {
			/* 32-bit TSS: ESPn at 4 + 8n, SSn at 8 + 8n */
			uint32_t esp = (uint32_t)sys_read(cpu, cpu->tr.base + 4 + new_cpl * 8, 4);
			uint16_t ssel = (uint16_t)sys_read(cpu, cpu->tr.base + 8 + new_cpl * 8, 2);
			if ((ssel & 0xfffc) == 0)
				x86_raise(cpu, X86_TS, ssel & 0xfffc);
			uint64_t d = read_desc(cpu, ssel, NULL);
			ss = seg_from_desc(ssel, d, 0, false);
			sp = esp;
		} else {
			sp = cpu->regs[X86_RSP];
		}
		ssbase = ss.base;
		mask = (ss.attr & X86_SEG_DB) ? 0xffffffffull : 0xffff;
		sp &= mask;
		uint32_t saved_idx = cpu->mmu_idx;
		cpu->mmu_idx = new_cpl == 3;
		if (stack_switch) {
			push_sys(cpu, &sp, ssbase, mask, sz, cpu->seg[X86_SS].sel);
			push_sys(cpu, &sp, ssbase, mask, sz, cpu->regs[X86_RSP]);
		}
		push_sys(cpu, &sp, ssbase, mask, sz, flags);
		push_sys(cpu, &sp, ssbase, mask, sz, cpu->seg[X86_CS].sel);
		push_sys(cpu, &sp, ssbase, mask, sz, ret_rip);
		if (push_err)
			push_sys(cpu, &sp, ssbase, mask, sz, err);
		cpu->mmu_idx = saved_idx;
		if (stack_switch)
			cpu->seg[X86_SS] = ss;
		cpu->regs[X86_RSP] = (cpu->regs[X86_RSP] & ~mask) | sp;
		cpu->seg[X86_CS] = cs;
		cpu->rip = g32 ? target : (target & 0xffff);
	}
	cpu->rflags &= ~(uint64_t)(X86_TF | (1u << 14) | (1u << 16) | (1u << 17));
	if (!trap)
		cpu->rflags &= ~(uint64_t)X86_IF;
	x86_update_mode(cpu);
}

static bool contributory(unsigned v)
{
	return v == 0 || (v >= 10 && v <= 13);
}

/* Called by the executor after x86_raise() in system mode: delivers the
 * exception recorded in cpu->exit, escalating to #DF and to a triple
 * fault (X86_EXIT_SHUTDOWN) as the SDM's table 6-5 says. */
void x86_deliver_exception(struct x86_cpu *cpu)
{
	unsigned v = cpu->exit->vector;
	uint32_t err = cpu->exit->error_code;

	if (cpu->delivering) {
		unsigned first = (unsigned)cpu->delivering - 1;
		if (first == X86_DF_FAULT) {
			cpu->delivering = 0;
			cpu->exit->reason = X86_EXIT_SHUTDOWN;
			longjmp(cpu->jmp, 2);
		}
		if ((contributory(first) && contributory(v)) ||
		    (first == X86_PF_FAULT && (contributory(v) || v == X86_PF_FAULT))) {
			v = X86_DF_FAULT;
			err = 0;
		}
	}
	if (log_get_level() >= LOG_DEBUG)
	{
		unsigned avail = 0;
		const uint8_t *b = v == X86_UD ? x86_fetch_probe(cpu, cpu->rip, &avail) : NULL;
		char hex[64] = "";
		for (unsigned k = 0; b && k < MIN(avail, 12u); k++)
			snprintf(hex + 3 * k, 4, "%02x ", b[k]);
		log_debug("cpu: exception %u error 0x%x at %llx (cr2 %llx, cpl %u) %s", v, err,
			  (unsigned long long)cpu->rip, (unsigned long long)cpu->cr2, cpu->cpl, hex);
	}
	cpu->delivering = (int)v + 1;
	deliver(cpu, v, false, has_error_code(v), err, cpu->rip);
	cpu->delivering = 0;
}

/* Software interrupts: INT n, INT3, INTO deliver with the return address
 * after the instruction. */
static const struct x86_insn *soft_int(struct x86_cpu *cpu, const struct x86_insn *i, unsigned v)
{
	deliver(cpu, v, true, false, 0, i->next_rip);
	return NULL;
}

/* External interrupts and NMI, checked by the executor between blocks. */
void x86_check_interrupts(struct x86_cpu *cpu)
{
	if (cpu->intr_shadow) {
		cpu->intr_shadow = 0;
		return;
	}
	if (cpu->nmi_pending && !cpu->nmi_blocked) {
		cpu->nmi_pending = 0;
		cpu->nmi_blocked = 1;
		cpu->halted = false;
		deliver(cpu, X86_NMI, false, false, 0, cpu->rip);
		return;
	}
	if (cpu->intr_line && (cpu->rflags & X86_IF) && cpu->sys_ops) {
		int v = cpu->sys_ops->intr_ack(cpu->sys_opaque);
		if (v >= 0) {
			cpu->halted = false;
			deliver(cpu, (unsigned)v, false, false, 0, cpu->rip);
		}
	}
}

void x86_cpu_set_intr(struct x86_cpu *cpu, bool level)
{
	cpu->intr_line = level;
}

void x86_cpu_nmi(struct x86_cpu *cpu)
{
	cpu->nmi_pending = 1;
}

bool x86_cpu_can_take_intr(const struct x86_cpu *cpu)
{
	return (cpu->nmi_pending && !cpu->nmi_blocked) ||
	       (cpu->intr_line && (cpu->rflags & X86_IF));
}

/* --- handlers ---------------------------------------------------------- */

/* User mode: a trap (the saved RIP is after the instruction) returned to
 * the caller of x86_run(). */
static _Noreturn void user_trap(struct x86_cpu *cpu, const struct x86_insn *i, unsigned vector)
{
	cpu->rip = i->next_rip;
	cpu->exit->reason = X86_EXIT_EXCEPTION;
	cpu->exit->vector = (uint8_t)vector;
	cpu->exit->error_code = 0;
	longjmp(cpu->jmp, 2);
}

X86_HANDLER(x86_h_int)
{
	unsigned n = (unsigned)(i->imm & 0xff);
	if (cpu->user_mode) {
		/* The gates open to ring 3 are those of Linux: #BP and #OF. */
		if (n == X86_BP || n == X86_OFV)
			user_trap(cpu, i, n);
		x86_raise(cpu, X86_GP, n * 8 + 2);
	}
	return soft_int(cpu, i, n);
}

/* INT1 (ICEBP, F1): a #DB trap. */
X86_HANDLER(x86_h_int1)
{
	if (cpu->user_mode)
		user_trap(cpu, i, X86_DB);
	return soft_int(cpu, i, X86_DB);
}

X86_HANDLER(x86_h_int3)
{
	if (cpu->user_mode) {
		/* A trap: the saved RIP is after the instruction. */
		cpu->rip = i->next_rip;
		cpu->exit->reason = X86_EXIT_EXCEPTION;
		cpu->exit->vector = X86_BP;
		cpu->exit->error_code = 0;
		longjmp(cpu->jmp, 2);
	}
	return soft_int(cpu, i, X86_BP);
}

X86_HANDLER(x86_h_into)
{
	if (!x86_cond(cpu, 0))
		return x86_next_exit(cpu, i);
	return soft_int(cpu, i, X86_OFV);
}

X86_HANDLER(x86_h_hlt)
{
	if (cpu->cpl != 0)
		x86_raise(cpu, X86_GP, 0);
	cpu->rip = i->next_rip;
	if (!cpu->user_mode && x86_cpu_can_take_intr(cpu))
		return NULL; /* the pending interrupt wakes it at once */
	cpu->halted = true;
	cpu->exit->reason = X86_EXIT_HLT;
	longjmp(cpu->jmp, 2);
}

X86_HANDLER(x86_h_cli)
{
	unsigned iopl = (cpu->rflags >> 12) & 3;
	if (cpu->user_mode || ((cpu->cr0 & X86_CR0_PE) && cpu->cpl > iopl))
		x86_raise(cpu, X86_GP, 0);
	cpu->rflags &= ~(uint64_t)X86_IF;
	return i + 1;
}

X86_HANDLER(x86_h_sti)
{
	unsigned iopl = (cpu->rflags >> 12) & 3;
	if (cpu->user_mode || ((cpu->cr0 & X86_CR0_PE) && cpu->cpl > iopl))
		x86_raise(cpu, X86_GP, 0);
	if (!(cpu->rflags & X86_IF))
		cpu->intr_shadow = 1;
	cpu->rflags |= X86_IF;
	return x86_next_exit(cpu, i);
}

/* IRET / IRETD / IRETQ */
X86_HANDLER(x86_h_iret)
{
	unsigned sz = i->osz;
	if (cpu->user_mode)
		x86_raise(cpu, X86_GP, 0);
	cpu->nmi_blocked = 0;
	if (!(cpu->cr0 & X86_CR0_PE)) {
		uint64_t ip = x86_pop(cpu, sz), cs = x86_pop(cpu, sz), fl = x86_pop(cpu, sz);
		cpu->seg[X86_CS].sel = (uint16_t)cs;
		cpu->seg[X86_CS].base = (cs & 0xffff) << 4;
		uint64_t mask = sz == 2 ? 0xffff : 0x257fd5;
		cpu->rflags = (cpu->rflags & ~mask) | (fl & mask) | 2;
		x86_set_arith_flags(cpu, (uint32_t)fl);
		cpu->rip = ip;
		x86_update_mode(cpu);
		return NULL;
	}
	uint64_t sp = cpu->regs[X86_RSP];
	uint64_t ssb = cpu->segbase[X86_SS], m = cpu->sp_mask;
	uint64_t rip = x86_read(cpu, ssb + (sp & m), sz);
	uint16_t csel = (uint16_t)x86_read(cpu, ssb + ((sp + sz) & m), sz);
	uint64_t fl = x86_read(cpu, ssb + ((sp + 2 * sz) & m), sz);
	unsigned rpl = csel & 3;
	if (rpl < cpu->cpl)
		x86_raise(cpu, X86_GP, csel & 0xfffc);
	struct x86_segment cs = code_desc(cpu, csel, 0);
	bool to_outer = rpl > cpu->cpl;
	bool pop_ss = to_outer || cpu->code64;
	uint64_t nrsp = 0;
	uint16_t ssel = 0;
	if (pop_ss) {
		nrsp = x86_read(cpu, ssb + ((sp + 3 * sz) & m), sz);
		ssel = (uint16_t)x86_read(cpu, ssb + ((sp + 4 * sz) & m), sz);
	}
	/* Flags: IOPL only at CPL 0, IF at CPL <= IOPL. */
	uint64_t mask = X86_ARITH_FLAGS | X86_TF | X86_DF | (1u << 14) | X86_AC | X86_ID | (1u << 16);
	unsigned iopl = (cpu->rflags >> 12) & 3;
	if (cpu->cpl == 0)
		mask |= X86_IF | (3u << 12) | (1u << 19) | (1u << 20);
	else if (cpu->cpl <= iopl)
		mask |= X86_IF;
	if (sz == 2)
		mask &= 0xffff;
	cpu->rflags = (cpu->rflags & ~mask) | (fl & mask) | 2;
	x86_set_arith_flags(cpu, (uint32_t)fl);
	cs.sel = csel;
	cpu->seg[X86_CS] = cs;
	unsigned old_cpl = cpu->cpl;
	x86_update_mode(cpu);
	cpu->cpl = rpl;
	cpu->mmu_idx = rpl == 3;
	if (pop_ss) {
		if ((ssel & 0xfffc) == 0 && (cpu->efer & X86_EFER_LMA) && rpl != 3) {
			cpu->seg[X86_SS].sel = ssel;
			cpu->seg[X86_SS].base = 0;
			cpu->seg[X86_SS].attr = (uint16_t)(rpl << 5);
		} else {
			x86_load_seg(cpu, X86_SS, ssel);
		}
		cpu->regs[X86_RSP] = nrsp;
	} else {
		cpu->regs[X86_RSP] = (sp & ~m) | ((sp + 3 * sz) & m);
	}
	if (to_outer && old_cpl != rpl) {
		/* Data segments the outer level may not use become null. */
		for (unsigned s = X86_ES; s <= X86_GS; s++) {
			if (s == X86_CS || s == X86_SS)
				continue;
			unsigned dpl = (cpu->seg[s].attr >> 5) & 3;
			bool conforming_code = (cpu->seg[s].attr & 0xc) == 0xc;
			if (!conforming_code && dpl < rpl && (s != X86_FS && s != X86_GS)) {
				cpu->seg[s].sel = 0;
				cpu->seg[s].attr = 0;
			}
		}
	}
	cpu->rip = cpu->code64 ? rip : x86_zext(rip, sz == 8 ? 8 : 4);
	x86_update_mode(cpu);
	return NULL;
}

/* Far RET (CB, CA imm16) to the same privilege level. */
X86_HANDLER(x86_h_retf)
{
	unsigned sz = i->osz;
	uint64_t sp = cpu->regs[X86_RSP], ssb = cpu->segbase[X86_SS], m = cpu->sp_mask;
	uint64_t rip = x86_read(cpu, ssb + (sp & m), sz);
	uint16_t csel = (uint16_t)x86_read(cpu, ssb + ((sp + sz) & m), sz);
	if (!(cpu->cr0 & X86_CR0_PE)) {
		cpu->seg[X86_CS].sel = csel;
		cpu->seg[X86_CS].base = (uint64_t)csel << 4;
	} else {
		if ((csel & 3) != cpu->cpl)
			x86_raise(cpu, X86_GP, csel & 0xfffc); /* returns to outer levels: not supported */
		struct x86_segment cs = code_desc(cpu, csel, 0);
		cs.sel = csel;
		cpu->seg[X86_CS] = cs;
	}
	sp = (sp + 2 * sz + (uint16_t)i->imm) & m;
	cpu->regs[X86_RSP] = (cpu->regs[X86_RSP] & ~m) | sp;
	x86_update_mode(cpu);
	cpu->rip = cpu->code64 ? rip : x86_zext(rip, sz);
	return NULL;
}

static void far_jump(struct x86_cpu *cpu, uint16_t csel, uint64_t off, unsigned sz)
{
	if (!(cpu->cr0 & X86_CR0_PE)) {
		cpu->seg[X86_CS].sel = csel;
		cpu->seg[X86_CS].base = (uint64_t)csel << 4;
	} else {
		struct x86_segment cs = code_desc(cpu, csel, 0);
		unsigned dpl = (cs.attr >> 5) & 3;
		if (!(cs.attr & 0x4) && dpl != cpu->cpl)
			x86_raise(cpu, X86_GP, csel & 0xfffc);
		cs.sel = (uint16_t)((csel & 0xfffc) | cpu->cpl);
		cpu->seg[X86_CS] = cs;
	}
	x86_update_mode(cpu);
	cpu->rip = cpu->code64 ? off : x86_zext(off, sz);
}

/* JMP ptr16:16/32 (EA) and CALL ptr (9A): the pointer is in imm (offset
 * in the low bytes, selector above). */
X86_HANDLER(x86_h_jmp_far_imm)
{
	unsigned osz = i->osz;
	far_jump(cpu, (uint16_t)(i->imm >> (osz * 8)), x86_zext(i->imm, osz), osz);
	return NULL;
}

X86_HANDLER(x86_h_call_far_imm)
{
	unsigned osz = i->osz;
	uint16_t old_cs = cpu->seg[X86_CS].sel;
	x86_probe_write(cpu, ((cpu->regs[X86_RSP] - 2 * osz) & cpu->sp_mask) + cpu->segbase[X86_SS], 2 * osz);
	x86_push(cpu, osz, old_cs);
	x86_push(cpu, osz, i->next_rip);
	far_jump(cpu, (uint16_t)(i->imm >> (osz * 8)), x86_zext(i->imm, osz), osz);
	return NULL;
}

/* FF /3 and FF /5: the far pointer is in memory: offset then selector. */
X86_HANDLER(x86_h_far_rm)
{
	unsigned osz = i->osz;
	uint64_t la = x86_ea(cpu, i);
	uint64_t off = x86_read(cpu, la, osz);
	uint16_t sel = x86_read16(cpu, la + osz);
	if (i->aux) { /* call */
		x86_probe_write(cpu, ((cpu->regs[X86_RSP] - 2 * osz) & cpu->sp_mask) + cpu->segbase[X86_SS], 2 * osz);
		x86_push(cpu, osz, cpu->seg[X86_CS].sel);
		x86_push(cpu, osz, i->next_rip);
	}
	far_jump(cpu, sel, off, osz);
	return NULL;
}

/* LDS/LES/LSS/LFS/LGS: aux = segment register. */
X86_HANDLER(x86_h_load_far_ptr)
{
	uint64_t la = x86_ea(cpu, i);
	uint64_t off = x86_read(cpu, la, i->osz);
	uint16_t sel = x86_read16(cpu, la + i->osz);
	x86_load_seg(cpu, i->aux, sel);
	x86_set_reg(cpu, i->reg, i->osz, off);
	return x86_next_exit(cpu, i);
}

X86_HANDLER(x86_h_mov_to_seg)
{
	if (i->reg == X86_CS || i->reg > X86_GS)
		x86_raise(cpu, X86_UD, 0);
	uint16_t sel = (uint16_t)x86_get_rm(cpu, i, 2);
	if (cpu->user_mode) {
		if (sel != cpu->seg[i->reg].sel && !(sel < 4 && i->reg != X86_SS))
			x86_raise(cpu, X86_GP, sel & 0xfffc);
		cpu->seg[i->reg].sel = sel;
		return i + 1;
	}
	x86_load_seg(cpu, i->reg, sel);
	if (i->reg == X86_SS)
		cpu->intr_shadow = 1;
	return x86_next_exit(cpu, i);
}

X86_HANDLER(x86_h_pop_seg)
{
	if (cpu->user_mode)
		x86_raise(cpu, X86_GP, 0);
	uint64_t sp = cpu->regs[X86_RSP];
	uint16_t sel = (uint16_t)x86_read(cpu, cpu->segbase[X86_SS] + (sp & cpu->sp_mask), i->osz);
	x86_load_seg(cpu, i->aux, sel);
	cpu->regs[X86_RSP] = (sp & ~cpu->sp_mask) | ((sp + i->osz) & cpu->sp_mask);
	if (i->aux == X86_SS)
		cpu->intr_shadow = 1;
	return x86_next_exit(cpu, i);
}

/* --- SYSCALL / SYSRET / SWAPGS ---------------------------------------- */

X86_HANDLER(x86_h_syscall)
{
	if (cpu->user_mode) {
		/* As the hardware does: RCX = return address, R11 = RFLAGS. */
		cpu->regs[X86_RCX] = i->next_rip;
		cpu->regs[X86_R11] = x86_flags(cpu) & ~(uint64_t)(1u << 16);
		cpu->rip = i->next_rip;
		cpu->exit->reason = X86_EXIT_SYSCALL;
		longjmp(cpu->jmp, 2);
	}
	if (!(cpu->efer & X86_EFER_SCE) || !(cpu->efer & X86_EFER_LMA))
		x86_raise(cpu, X86_UD, 0);
	uint64_t fl = x86_flags(cpu);
	uint16_t sel = (uint16_t)(cpu->star >> 32) & 0xfffc;
	cpu->regs[X86_RCX] = i->next_rip;
	cpu->regs[X86_R11] = fl & ~(uint64_t)(1u << 16);
	cpu->rflags = (fl & ~cpu->sfmask & ~(uint64_t)(1u << 16)) | 2;
	x86_set_arith_flags(cpu, (uint32_t)cpu->rflags);
	cpu->seg[X86_CS] = (struct x86_segment){ 0, 0xffffffff, sel, 0xa9b };
	cpu->seg[X86_SS] = (struct x86_segment){ 0, 0xffffffff, (uint16_t)(sel + 8), 0xc93 };
	cpu->rip = cpu->lstar;
	x86_update_mode(cpu);
	return NULL;
}

X86_HANDLER(x86_h_sysret)
{
	if (!(cpu->efer & X86_EFER_SCE) || !(cpu->efer & X86_EFER_LMA))
		x86_raise(cpu, X86_UD, 0);
	if (cpu->cpl != 0)
		x86_raise(cpu, X86_GP, 0);
	uint16_t base = (uint16_t)(cpu->star >> 48);
	uint64_t rip = cpu->regs[X86_RCX];
	if (i->osz == 8) {
		if ((uint64_t)((int64_t)(rip << 16) >> 16) != rip)
			x86_raise(cpu, X86_GP, 0);
		cpu->seg[X86_CS] = (struct x86_segment){ 0, 0xffffffff, (uint16_t)((base + 16) | 3), 0xafb };
	} else {
		rip = (uint32_t)rip;
		cpu->seg[X86_CS] = (struct x86_segment){ 0, 0xffffffff, (uint16_t)(base | 3), 0xcfb };
	}
	/* SS keeps its cached attributes as the hardware does, at DPL 3. */
	cpu->seg[X86_SS].sel = (uint16_t)((base + 8) | 3);
	cpu->seg[X86_SS].attr = 0xcf3;
	cpu->seg[X86_SS].base = 0;
	cpu->seg[X86_SS].limit = 0xffffffff;
	uint64_t fl = cpu->regs[X86_R11];
	cpu->rflags = (fl & 0x3c7fd7) | 2;
	x86_set_arith_flags(cpu, (uint32_t)fl);
	cpu->rip = rip;
	x86_update_mode(cpu);
	return NULL;
}

X86_HANDLER(x86_h_swapgs)
{
	if (!cpu->code64 || cpu->cpl != 0)
		x86_raise(cpu, cpu->code64 ? X86_GP : X86_UD, 0);
	uint64_t t = cpu->seg[X86_GS].base;
	cpu->seg[X86_GS].base = cpu->kernel_gs_base;
	cpu->kernel_gs_base = t;
	x86_update_mode(cpu);
	return i + 1;
}

/* --- MSRs --------------------------------------------------------------- */

int x86_rdmsr(struct x86_cpu *cpu, uint32_t msr, uint64_t *val)
{
	if (cpu->sys_ops && cpu->sys_ops->rdmsr) {
		int r = cpu->sys_ops->rdmsr(cpu->sys_opaque, msr, val);
		if (r != -ENOENT)
			return r;
	}
	switch (msr) {
	case 0x10: *val = x86_rdtsc(cpu); return 0;                  /* TSC */
	case 0x8b: *val = 0; return 0;                               /* microcode revision */
	case 0x10a: /* ARCH_CAPABILITIES: RDCL_NO SKIP_L1DFL SSB_NO MDS_NO
		     * IF_PSCHANGE_MC_NO TAA_NO SBDR_SSDP_NO FBSDP_NO PSDP_NO
		     * PBRSB_NO GDS_NO RFDS_NO */
		*val = (1u << 0) | (1u << 3) | (1u << 4) | (1u << 5) | (1u << 6) | (1u << 8) |
		       (1u << 13) | (1u << 14) | (1u << 15) | (1u << 24) | (1u << 26) | (1u << 27);
		return 0;
	case 0x174: *val = cpu->sysenter_cs; return 0;
	case 0x175: *val = cpu->sysenter_esp; return 0;
	case 0x176: *val = cpu->sysenter_eip; return 0;
	case 0x1a0: *val = cpu->misc_enable; return 0;               /* MISC_ENABLE */
	case 0xc0000080: *val = cpu->efer; return 0;
	case 0xc0000081: *val = cpu->star; return 0;
	case 0xc0000082: *val = cpu->lstar; return 0;
	case 0xc0000083: *val = cpu->cstar; return 0;
	case 0xc0000084: *val = cpu->sfmask; return 0;
	case 0xc0000100: *val = cpu->seg[X86_FS].base; return 0;
	case 0xc0000101: *val = cpu->seg[X86_GS].base; return 0;
	case 0xc0000102: *val = cpu->kernel_gs_base; return 0;
	default: return -EINVAL;
	}
}

static bool canonical(uint64_t v)
{
	return (uint64_t)((int64_t)(v << 16) >> 16) == v;
}

int x86_wrmsr(struct x86_cpu *cpu, uint32_t msr, uint64_t v)
{
	if (cpu->sys_ops && cpu->sys_ops->wrmsr) {
		int r = cpu->sys_ops->wrmsr(cpu->sys_opaque, msr, v);
		if (r != -ENOENT)
			return r;
	}
	switch (msr) {
	case 0x10: cpu->tsc_offset = v - clock_ns(); return 0;
	case 0x8b: return 0;
	case 0x174: cpu->sysenter_cs = v & 0xffff; return 0;
	case 0x175: if (!canonical(v)) return -EINVAL; cpu->sysenter_esp = v; return 0;
	case 0x176: if (!canonical(v)) return -EINVAL; cpu->sysenter_eip = v; return 0;
	case 0x1a0: cpu->misc_enable = v & ((1u << 0) | (1u << 11) | (1u << 12)); return 0;
	case 0xc0000080: {
		uint64_t allowed = X86_EFER_SCE | X86_EFER_LME | X86_EFER_NXE;
		if (v & ~(allowed | X86_EFER_LMA))
			return -EINVAL;
		/* LME cannot change while paging is on */
		if ((cpu->cr0 & X86_CR0_PG) && ((v ^ cpu->efer) & X86_EFER_LME))
			return -EINVAL;
		cpu->efer = (v & allowed) | (cpu->efer & X86_EFER_LMA);
		x86_flush_tlb(cpu);
		return 0;
	}
	case 0xc0000081: cpu->star = v; return 0;
	case 0xc0000082: if (!canonical(v)) return -EINVAL; cpu->lstar = v; return 0;
	case 0xc0000083: if (!canonical(v)) return -EINVAL; cpu->cstar = v; return 0;
	case 0xc0000084: cpu->sfmask = v & 0xffffffff; return 0;
	case 0xc0000100: if (!canonical(v)) return -EINVAL; cpu->seg[X86_FS].base = v; x86_update_mode(cpu); return 0;
	case 0xc0000101: if (!canonical(v)) return -EINVAL; cpu->seg[X86_GS].base = v; x86_update_mode(cpu); return 0;
	case 0xc0000102: if (!canonical(v)) return -EINVAL; cpu->kernel_gs_base = v; return 0;
	default: return -EINVAL;
	}
}

X86_HANDLER(x86_h_rdmsr)
{
	uint64_t v;
	if (cpu->cpl != 0 || cpu->user_mode)
		x86_raise(cpu, X86_GP, 0);
	if (x86_rdmsr(cpu, (uint32_t)cpu->regs[X86_RCX], &v) < 0) {
		log_debug("cpu: RDMSR of unknown MSR 0x%x: #GP", (uint32_t)cpu->regs[X86_RCX]);
		x86_raise(cpu, X86_GP, 0);
	}
	cpu->regs[X86_RAX] = (uint32_t)v;
	cpu->regs[X86_RDX] = v >> 32;
	return i + 1;
}

X86_HANDLER(x86_h_wrmsr)
{
	if (cpu->cpl != 0 || cpu->user_mode)
		x86_raise(cpu, X86_GP, 0);
	uint64_t v = (cpu->regs[X86_RDX] << 32) | (uint32_t)cpu->regs[X86_RAX];
	if (x86_wrmsr(cpu, (uint32_t)cpu->regs[X86_RCX], v) < 0) {
		log_debug("cpu: WRMSR 0x%x <- 0x%llx refused: #GP", (uint32_t)cpu->regs[X86_RCX],
			  (unsigned long long)v);
		x86_raise(cpu, X86_GP, 0);
	}
	return x86_next_exit(cpu, i);
}

/* --- control registers ------------------------------------------------ */

static void set_cr0(struct x86_cpu *cpu, uint64_t v)
{
	v |= X86_CR0_ET;
	if ((v >> 32) || ((v & X86_CR0_PG) && !(v & X86_CR0_PE)) ||
	    ((v & X86_CR0_NW) && !(v & X86_CR0_CD)))
		x86_raise(cpu, X86_GP, 0);
	if ((v & X86_CR0_PG) && !(cpu->cr0 & X86_CR0_PG) && (cpu->efer & X86_EFER_LME)) {
		if (!(cpu->cr4 & X86_CR4_PAE))
			x86_raise(cpu, X86_GP, 0);
		cpu->efer |= X86_EFER_LMA;
	}
	if (!(v & X86_CR0_PG) && (cpu->cr0 & X86_CR0_PG) && (cpu->efer & X86_EFER_LMA)) {
		if (cpu->code64)
			x86_raise(cpu, X86_GP, 0);
		cpu->efer &= ~X86_EFER_LMA;
	}
	cpu->cr0 = v;
	x86_flush_tlb(cpu);
	x86_update_mode(cpu);
}

#define CR4_ALLOWED (X86_CR4_DE | X86_CR4_PSE | X86_CR4_PAE | X86_CR4_PGE | \
		     X86_CR4_TSD | X86_CR4_OSFXSR | X86_CR4_OSXMMEXCPT | X86_CR4_PCE | X86_CR4_MCE)

X86_HANDLER(x86_h_mov_cr)
{
	unsigned cr = i->reg;
	if (cr != 0 && cr != 2 && cr != 3 && cr != 4 && cr != 8)
		x86_raise(cpu, X86_UD, 0); /* before the privilege check */
	if (cpu->cpl != 0 || cpu->user_mode)
		x86_raise(cpu, X86_GP, 0);
	if (i->op == 0x120) { /* MOV r, CRn */
		uint64_t v;
		switch (cr) {
		case 0: v = cpu->cr0; break;
		case 2: v = cpu->cr2; break;
		case 3: v = cpu->cr3; break;
		case 4: v = cpu->cr4; break;
		case 8: v = cpu->cr8; break;
		default: x86_raise(cpu, X86_UD, 0);
		}
		cpu->regs[i->rm] = cpu->code64 ? v : (uint32_t)v;
		return i + 1;
	}
	uint64_t v = cpu->code64 ? cpu->regs[i->rm] : (uint32_t)cpu->regs[i->rm];
	switch (cr) {
	case 0: set_cr0(cpu, v); break;
	case 2: cpu->cr2 = v; break;
	case 3:
		cpu->cr3 = v & (cpu->code64 ? 0x000ffffffffff000ull | 0x18 : 0xffffffffu);
		x86_flush_tlb(cpu);
		break;
	case 4:
		if (v & ~CR4_ALLOWED)
			x86_raise(cpu, X86_GP, 0);
		if ((cpu->efer & X86_EFER_LMA) && !(v & X86_CR4_PAE))
			x86_raise(cpu, X86_GP, 0);
		cpu->cr4 = v;
		x86_flush_tlb(cpu);
		break;
	case 8:
		if (v >> 4)
			x86_raise(cpu, X86_GP, 0);
		cpu->cr8 = v;
		break;
	default:
		x86_raise(cpu, X86_UD, 0);
	}
	return x86_next_exit(cpu, i);
}

X86_HANDLER(x86_h_mov_dr)
{
	unsigned dr = i->reg;
	if (dr > 7)
		x86_raise(cpu, X86_UD, 0); /* REX.R: before the privilege check */
	if (cpu->cpl != 0 || cpu->user_mode)
		x86_raise(cpu, X86_GP, 0);
	if (dr == 4 || dr == 5)
		dr += 2; /* aliases of DR6/DR7 without CR4.DE */
	if (dr > 7)
		x86_raise(cpu, X86_UD, 0);
	if (i->op == 0x121)
		cpu->regs[i->rm] = cpu->dr[dr] | (dr == 6 ? 0xffff0ff0u : dr == 7 ? 0x400 : 0);
	else
		cpu->dr[dr] = cpu->regs[i->rm]; /* breakpoints are not implemented */
	return i + 1;
}

X86_HANDLER(x86_h_clts)
{
	if (cpu->cpl != 0 || cpu->user_mode)
		x86_raise(cpu, X86_GP, 0);
	cpu->cr0 &= ~X86_CR0_TS;
	return i + 1;
}

X86_HANDLER(x86_h_wbinvd)
{
	if (cpu->cpl != 0 || cpu->user_mode)
		x86_raise(cpu, X86_GP, 0);
	return i + 1;
}

/* 0F 00: SLDT STR LLDT LTR VERR VERW */
X86_HANDLER(x86_h_grp6)
{
	unsigned r = (i->modrm >> 3) & 7;
	if (!(cpu->cr0 & X86_CR0_PE))
		x86_raise(cpu, X86_UD, 0);
	switch (r) {
	case 0: case 1: {
		uint16_t sel = r == 0 ? cpu->ldtr.sel : cpu->tr.sel;
		if (i->is_mem)
			x86_write16(cpu, x86_ea(cpu, i), sel);
		else
			x86_set_reg(cpu, i->rm, i->osz, sel);
		return i + 1;
	}
	case 2: case 3: {
		if (cpu->cpl != 0)
			x86_raise(cpu, X86_GP, 0);
		uint16_t sel = (uint16_t)x86_get_rm(cpu, i, 2);
		struct x86_segment *dst = r == 2 ? &cpu->ldtr : &cpu->tr;
		if ((sel & 0xfffc) == 0) {
			if (r == 3)
				x86_raise(cpu, X86_GP, 0);
			memset(dst, 0, sizeof(*dst));
			return i + 1;
		}
		if (sel & 4)
			x86_raise(cpu, X86_GP, sel & 0xfffc);
		uint64_t hi, d = read_desc(cpu, sel, &hi);
		struct x86_segment s = seg_from_desc(sel, d, hi, (cpu->efer & X86_EFER_LMA) != 0);
		unsigned type = s.attr & 0xf;
		if ((s.attr & X86_SEG_S) || (r == 2 && type != 2) || (r == 3 && type != 9 && type != 1))
			x86_raise(cpu, X86_GP, sel & 0xfffc);
		if (!(s.attr & X86_SEG_P))
			x86_raise(cpu, X86_NP, sel & 0xfffc);
		if (r == 3) { /* mark the TSS busy */
			d |= 2ull << 40;
			uint64_t la = cpu->gdtr.base + (sel & ~7u);
			sys_write(cpu, la, 8, d);
			s.attr |= 2;
		}
		*dst = s;
		return i + 1;
	}
	default: {
		/* VERR/VERW: ZF tells whether the segment is accessible. */
		uint16_t sel = (uint16_t)x86_get_rm(cpu, i, 2);
		uint32_t f = x86_arith_flags(cpu) & ~X86_ZF;
		if ((sel & 0xfffc) != 0) {
			struct x86_dtable *t = &cpu->gdtr;
			if (!(sel & 4) && (sel | 7) <= t->limit) {
				uint64_t d = sys_read(cpu, t->base + (sel & ~7u), 8);
				struct x86_segment s = seg_from_desc(sel, d, 0, false);
				unsigned dpl = (s.attr >> 5) & 3;
				bool ok = (s.attr & X86_SEG_S) && dpl >= cpu->cpl && dpl >= (sel & 3u);
				if (r == 4)
					ok = ok && (!(s.attr & 8) || (s.attr & 2));
				else
					ok = ok && !(s.attr & 8) && (s.attr & 2);
				if (ok)
					f |= X86_ZF;
			}
		}
		x86_set_arith_flags(cpu, f);
		return i + 1;
	}
	}
}

/* 0F 01 */
X86_HANDLER(x86_h_grp7)
{
	unsigned r = (i->modrm >> 3) & 7;
	if (!i->is_mem) {
		if (i->modrm == 0xf8)
			return x86_h_swapgs(cpu, i);
		x86_raise(cpu, X86_UD, 0);
	}
	uint64_t la = x86_ea(cpu, i);
	unsigned bsz = cpu->code64 ? 8 : 4;
	switch (r) {
	case 0: case 1: {
		const struct x86_dtable *t = r == 0 ? &cpu->gdtr : &cpu->idtr;
		x86_probe_write(cpu, la, 2 + bsz);
		x86_write16(cpu, la, t->limit);
		x86_write(cpu, la + 2, bsz, cpu->code64 ? t->base : (uint32_t)t->base);
		return i + 1;
	}
	case 2: case 3: {
		if (cpu->cpl != 0 || cpu->user_mode)
			x86_raise(cpu, X86_GP, 0);
		uint16_t limit = x86_read16(cpu, la);
		uint64_t base = x86_read(cpu, la + 2, bsz);
		if (!cpu->code64 && i->osz == 2)
			base &= 0xffffff;
		struct x86_dtable *t = r == 2 ? &cpu->gdtr : &cpu->idtr;
		t->limit = limit;
		t->base = base;
		return i + 1;
	}
	case 4:
		if (i->is_mem)
			x86_write16(cpu, la, (uint16_t)cpu->cr0);
		return i + 1;
	case 6: {
		if (cpu->cpl != 0 || cpu->user_mode)
			x86_raise(cpu, X86_GP, 0);
		uint16_t v = x86_read16(cpu, la);
		/* LMSW sets PE MP EM TS; it cannot clear PE */
		uint64_t cr0 = (cpu->cr0 & ~0xeull) | (v & 0xf) | (cpu->cr0 & 1);
		set_cr0(cpu, cr0);
		return x86_next_exit(cpu, i);
	}
	case 7:
		if (cpu->cpl != 0 || cpu->user_mode)
			x86_raise(cpu, X86_GP, 0);
		x86_flush_tlb_page(cpu, la);
		return i + 1;
	default:
		x86_raise(cpu, X86_UD, 0);
	}
}

/* --- port I/O ---------------------------------------------------------- */

static void io_check(struct x86_cpu *cpu)
{
	unsigned iopl = (cpu->rflags >> 12) & 3;
	if (cpu->user_mode || !cpu->sys_ops ||
	    ((cpu->cr0 & X86_CR0_PE) && cpu->cpl > iopl))
		x86_raise(cpu, X86_GP, 0);
}

/* IN/OUT (E4-E7, EC-EF) and INS/OUTS (6C-6F). */
X86_HANDLER(x86_h_io)
{
	unsigned opc = i->op & 0xff;
	unsigned size = (opc & 1) ? (i->osz == 2 ? 2 : 4) : 1;
	io_check(cpu);
	if (opc >= 0xe4) {
		uint16_t port = opc < 0xec ? (uint16_t)(i->imm & 0xff) : (uint16_t)cpu->regs[X86_RDX];
		if (opc & 2) {
			cpu->sys_ops->pio_write(cpu->sys_opaque, port, size, (uint32_t)cpu->regs[X86_RAX]);
		} else {
			uint32_t v = 0xffffffff;
			cpu->sys_ops->pio_read(cpu->sys_opaque, port, size, &v);
			x86_set_reg(cpu, X86_RAX, size, v);
		}
		return x86_next_exit(cpu, i);
	}
	/* String forms: one element per iteration, restartable. */
	uint16_t port = (uint16_t)cpu->regs[X86_RDX];
	bool rep = i->pfx & (X86_PFX_REP | X86_PFX_REPNE);
	int64_t step = (cpu->rflags & X86_DF) ? -(int64_t)size : (int64_t)size;
	for (;;) {
		if (rep && x86_get_reg(cpu, X86_RCX, i->asz) == 0)
			break;
		if (opc < 0x6e) { /* INS: ES:rDI */
			uint64_t di = x86_get_reg(cpu, X86_RDI, i->asz);
			uint64_t la = (di & i->amask) + cpu->segbase[X86_ES];
			x86_probe_write(cpu, la, size);
			uint32_t v = 0xffffffff;
			cpu->sys_ops->pio_read(cpu->sys_opaque, port, size, &v);
			x86_write(cpu, la, size, v);
			x86_set_reg(cpu, X86_RDI, i->asz, di + (uint64_t)step);
		} else { /* OUTS: seg:rSI */
			uint64_t si = x86_get_reg(cpu, X86_RSI, i->asz);
			uint64_t v = x86_read(cpu, (si & i->amask) + cpu->segbase[i->seg], size);
			cpu->sys_ops->pio_write(cpu->sys_opaque, port, size, (uint32_t)v);
			x86_set_reg(cpu, X86_RSI, i->asz, si + (uint64_t)step);
		}
		if (!rep)
			break;
		x86_set_reg(cpu, X86_RCX, i->asz, x86_get_reg(cpu, X86_RCX, i->asz) - 1);
	}
	return x86_next_exit(cpu, i);
}

/* Privileged instructions with no effect here at CPL 0, #GP above. */
X86_HANDLER(x86_h_priv)
{
	x86_raise(cpu, X86_GP, 0);
}

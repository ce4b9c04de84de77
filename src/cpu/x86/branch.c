/*
 * Control transfer and stack instructions: Jcc, JMP, CALL, RET, LOOP,
 * JrCXZ, PUSH/POP, PUSHF/POPF, ENTER/LEAVE.  Every taken or not-taken
 * branch ends the block: it sets cpu->rip and returns NULL.  Relative
 * targets are resolved by the decoder into i->imm (absolute, already
 * truncated to the operand size).
 */
#include "cpu/x86/alu.h"

void x86_push(struct x86_cpu *cpu, unsigned size, uint64_t v)
{
	uint64_t sp = (cpu->regs[X86_RSP] - size) & cpu->sp_mask;
	x86_write(cpu, sp + cpu->segbase[X86_SS], size, v);
	if (cpu->sp_mask == ~0ull)
		cpu->regs[X86_RSP] = sp;
	else
		cpu->regs[X86_RSP] = (cpu->regs[X86_RSP] & ~cpu->sp_mask) | sp;
}

uint64_t x86_pop(struct x86_cpu *cpu, unsigned size)
{
	uint64_t sp = cpu->regs[X86_RSP] & cpu->sp_mask;
	uint64_t v = x86_read(cpu, sp + cpu->segbase[X86_SS], size);
	sp = (sp + size) & cpu->sp_mask;
	cpu->regs[X86_RSP] = (cpu->regs[X86_RSP] & ~cpu->sp_mask) | sp;
	return v;
}

X86_HANDLER(x86_h_jcc)
{
	cpu->rip = x86_cond(cpu, i->aux) ? i->imm : i->next_rip;
	return NULL;
}

X86_HANDLER(x86_h_jmp_rel)
{
	cpu->rip = i->imm;
	return NULL;
}

X86_HANDLER(x86_h_jmp_rm)
{
	cpu->rip = x86_get_rm(cpu, i, i->osz);
	return NULL;
}

X86_HANDLER(x86_h_call_rel)
{
	x86_push(cpu, i->osz, i->next_rip);
	cpu->rip = i->imm;
	return NULL;
}

X86_HANDLER(x86_h_call_rm)
{
	uint64_t target = x86_get_rm(cpu, i, i->osz);
	x86_push(cpu, i->osz, i->next_rip);
	cpu->rip = target;
	return NULL;
}

/* RET and RET imm16 (imm is 0 for the plain form). */
X86_HANDLER(x86_h_ret)
{
	uint64_t target = x86_pop(cpu, i->osz);
	uint64_t sp = (cpu->regs[X86_RSP] + (uint16_t)i->imm) & cpu->sp_mask;
	cpu->regs[X86_RSP] = (cpu->regs[X86_RSP] & ~cpu->sp_mask) | sp;
	cpu->rip = target;
	return NULL;
}

/* LOOPNE (aux 0), LOOPE (1), LOOP (2): the counter width is the address
 * size. */
X86_HANDLER(x86_h_loop)
{
	uint64_t c = x86_zext(x86_get_reg(cpu, X86_RCX, i->asz) - 1, i->asz);
	bool taken = c != 0;
	x86_set_reg(cpu, X86_RCX, i->asz, c);
	if (i->aux == 0)
		taken = taken && !x86_cond(cpu, 4);
	else if (i->aux == 1)
		taken = taken && x86_cond(cpu, 4);
	cpu->rip = taken ? i->imm : i->next_rip;
	return NULL;
}

X86_HANDLER(x86_h_jrcxz)
{
	cpu->rip = x86_get_reg(cpu, X86_RCX, i->asz) == 0 ? i->imm : i->next_rip;
	return NULL;
}

static X86_HANDLER(h_push_r8)
{
	uint64_t v = cpu->regs[i->rm];
	uint64_t sp = cpu->regs[X86_RSP] - 8;
	x86_write64(cpu, sp + cpu->segbase[X86_SS], v);
	cpu->regs[X86_RSP] = sp;
	return i + 1;
}

static X86_HANDLER(h_pop_r8)
{
	uint64_t sp = cpu->regs[X86_RSP];
	uint64_t v = x86_read64(cpu, sp + cpu->segbase[X86_SS]);
	cpu->regs[X86_RSP] = sp + 8;
	cpu->regs[i->rm] = v;
	return i + 1;
}

X86_HANDLER(x86_h_push_r)
{
	if (i->osz == 8 && cpu->sp_mask == ~0ull)
		return h_push_r8(cpu, i);
	x86_push(cpu, i->osz, x86_get_reg(cpu, i->rm, i->osz));
	return i + 1;
}

X86_HANDLER(x86_h_pop_r)
{
	if (i->osz == 8 && cpu->sp_mask == ~0ull)
		return h_pop_r8(cpu, i);
	uint64_t v = x86_pop(cpu, i->osz);
	x86_set_reg(cpu, i->rm, i->osz, v);
	return i + 1;
}

X86_HANDLER(x86_h_push_imm)
{
	x86_push(cpu, i->osz, i->imm);
	return i + 1;
}

X86_HANDLER(x86_h_push_rm)
{
	x86_push(cpu, i->osz, x86_get_rm(cpu, i, i->osz));
	return i + 1;
}

/* POP r/m: the address is computed with RSP already incremented. */
X86_HANDLER(x86_h_pop_rm)
{
	uint64_t old_sp = cpu->regs[X86_RSP];
	uint64_t v = x86_pop(cpu, i->osz);
	if (i->is_mem) {
		uint64_t la = x86_ea(cpu, i);
		uint64_t new_sp = cpu->regs[X86_RSP];
		cpu->regs[X86_RSP] = old_sp; /* a faulting store leaves RSP alone */
		x86_write(cpu, la, i->osz, v);
		cpu->regs[X86_RSP] = new_sp;
	} else {
		x86_set_reg(cpu, i->rm, i->osz, v);
	}
	return i + 1;
}

X86_HANDLER(x86_h_pushf)
{
	uint64_t f = x86_flags(cpu) & ~(uint64_t)((1u << 16) | (1u << 17)); /* RF, VM */
	x86_push(cpu, i->osz, f);
	return i + 1;
}

X86_HANDLER(x86_h_popf)
{
	uint64_t v = x86_pop(cpu, i->osz);
	/* Bits a program may change: arithmetic, TF, DF, OF, NT, AC, ID; IF and
	 * IOPL only with privilege (CPL 0, or IF with CPL <= IOPL). */
	uint64_t mask = X86_ARITH_FLAGS | X86_TF | X86_DF | (1u << 14) | X86_AC | X86_ID;
	unsigned iopl = (cpu->rflags >> 12) & 3;
	if (cpu->cpl == 0)
		mask |= X86_IF | (3u << 12);
	else if (cpu->cpl <= iopl)
		mask |= X86_IF;
	if (i->osz == 2)
		mask &= 0xffff;
	cpu->rflags = (cpu->rflags & ~mask) | (v & mask) | 2;
	x86_set_arith_flags(cpu, (uint32_t)v);
	/* TF/IF changes matter at the block boundary */
	return x86_next_exit(cpu, i);
}

/* ENTER imm16, imm8 */
X86_HANDLER(x86_h_enter)
{
	unsigned size = i->osz, level = i->imm2 & 31;
	uint64_t frame = (uint16_t)i->imm;
	uint64_t ss = cpu->segbase[X86_SS];
	uint64_t sp = cpu->regs[X86_RSP], bp = cpu->regs[X86_RBP];
	uint64_t m = cpu->sp_mask;

	/* Check every store first so that a fault leaves no partial state. */
	uint64_t total = size * (1 + level);
	x86_probe_write(cpu, ((sp - total) & m) + ss, total);

	sp = (sp - size) & m;
	x86_write(cpu, sp + ss, size, bp);
	uint64_t frame_ptr = sp;
	if (level > 0) {
		uint64_t bpa = bp;
		for (unsigned k = 1; k < level; k++) {
			bpa = (bpa - size) & (i->asz == 2 ? 0xffff : m);
			uint64_t v = x86_read(cpu, bpa + ss, size);
			sp = (sp - size) & m;
			x86_write(cpu, sp + ss, size, v);
		}
		sp = (sp - size) & m;
		x86_write(cpu, sp + ss, size, frame_ptr);
	}
	sp = (sp - frame) & m;
	if (frame)
		x86_probe_write(cpu, sp + ss, size); /* the hardware touches the new top of stack (an operand-size store) */
	x86_set_reg(cpu, X86_RBP, size, frame_ptr);
	cpu->regs[X86_RSP] = (cpu->regs[X86_RSP] & ~m) | sp;
	return i + 1;
}

X86_HANDLER(x86_h_leave)
{
	uint64_t m = cpu->sp_mask;
	uint64_t sp = cpu->regs[X86_RBP] & m;
	uint64_t v = x86_read(cpu, sp + cpu->segbase[X86_SS], i->osz);
	cpu->regs[X86_RSP] = (cpu->regs[X86_RSP] & ~m) | ((sp + i->osz) & m);
	x86_set_reg(cpu, X86_RBP, i->osz, v);
	return i + 1;
}

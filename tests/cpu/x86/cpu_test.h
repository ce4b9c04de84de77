/*
 * A harness for unit tests of the software CPU: a flat guest memory of
 * CT_MEM_SIZE bytes at guest address CT_BASE (code at CT_CODE, a data area
 * at CT_DATA, the stack below CT_STACK_TOP), a user-mode CPU, and
 * ct_run() that runs machine code until it reaches an INT3 (0xCC) or
 * faults.
 *
 *   struct ct t; ct_init(&t);
 *   static const uint8_t code[] = { 0x48, 0x01, 0xd8, 0xcc }; // add rax,rbx; int3
 *   t.st.gpr[X86_RAX] = 1; t.st.gpr[X86_RBX] = 2;
 *   ct_run(&t, code, sizeof(code));    // t.st now holds the result
 *   CHECK(t.exit.vector == 3 && t.st.gpr[X86_RAX] == 3);
 */
#ifndef MAQUINA_TESTS_CPU_TEST_H
#define MAQUINA_TESTS_CPU_TEST_H

#include "cpu/x86/x86.h"
#include "test.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define CT_BASE 0x100000ull
#define CT_MEM_SIZE (1u << 20)
#define CT_CODE CT_BASE
#define CT_DATA (CT_BASE + 0x40000)
#define CT_STACK_TOP (CT_BASE + CT_MEM_SIZE)

struct ct {
	uint8_t *mem;
	struct x86_cpu *cpu;
	struct x86_state st;
	struct x86_exit exit;
};

static void *ct_page_ptr(void *opaque, uint64_t gpa, bool *writable)
{
	struct ct *t = opaque;
	if (gpa < CT_BASE || gpa - CT_BASE >= CT_MEM_SIZE)
		return NULL;
	*writable = true;
	return t->mem + (gpa - CT_BASE);
}

static int ct_mmio_read(void *o, uint64_t gpa, unsigned size, uint64_t *val)
{
	(void)o; (void)gpa; (void)size; (void)val;
	return -EFAULT;
}

static int ct_mmio_write(void *o, uint64_t gpa, unsigned size, uint64_t val)
{
	(void)o; (void)gpa; (void)size; (void)val;
	return -EFAULT;
}

static const struct x86_mem_ops ct_mem_ops = { ct_page_ptr, ct_mmio_read, ct_mmio_write };

/* Creates the memory and a user-mode CPU; max_block 1 steps one instruction
 * per block, 0 uses the default. */
static inline void ct_init_ex(struct ct *t, unsigned max_block)
{
	struct x86_cpu_config cfg = { .user_mode = true, .max_block_insns = max_block };
	t->mem = calloc(1, CT_MEM_SIZE);
	t->cpu = x86_cpu_new(&ct_mem_ops, t, &cfg);
	if (!t->mem || !t->cpu)
		abort();
	x86_get_state(t->cpu, &t->st);
	t->st.gpr[X86_RSP] = CT_STACK_TOP - 64;
}

static inline void ct_init(struct ct *t)
{
	ct_init_ex(t, 0);
}

static inline void ct_fini(struct ct *t)
{
	x86_cpu_free(t->cpu);
	free(t->mem);
}

/* Copies code to CT_CODE, runs it from there with t->st, and stores the
 * final state back into t->st and the exit into t->exit.  Returns the exit
 * vector (3 when the code reached its INT3) or -1 for other exits. */
static inline int ct_run(struct ct *t, const uint8_t *code, size_t len)
{
	memcpy(t->mem + (CT_CODE - CT_BASE), code, len);
	x86_invalidate_code(t->cpu, CT_CODE, len);
	t->st.rip = CT_CODE;
	x86_set_state(t->cpu, &t->st);
	x86_run(t->cpu, 100000000, &t->exit);
	x86_get_state(t->cpu, &t->st);
	return t->exit.reason == X86_EXIT_EXCEPTION ? t->exit.vector : -1;
}

/* Guest data area helpers. */
static inline void *ct_data(struct ct *t, uint64_t gva)
{
	return t->mem + (gva - CT_BASE);
}

#endif

/*
 * A host-CPU oracle for the second integer family's tests: runs one
 * instruction natively with given general registers (all but RSP) and
 * arithmetic flags, and returns the registers and flags after it.  The
 * instruction must not touch memory or the stack and must not fault.
 */
#ifndef MAQUINA_TESTS_CPU_INT2_NATIVE_H
#define MAQUINA_TESTS_CPU_INT2_NATIVE_H

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

struct nat_state {
	uint64_t r[16]; /* RAX..R15 by number; r[4] (RSP) is ignored */
	uint64_t flags;
};

/* The instruction, followed by RET, lives in an executable page. */
__attribute__((visibility("hidden"), used)) void *nat_target;

/* void nat_thunk(struct nat_state *s) */
__asm__(".text\n"
	".type nat_thunk, @function\n"
	"nat_thunk:\n"
	"	push %rbx\n push %rbp\n push %r12\n push %r13\n push %r14\n push %r15\n"
	"	push %rdi\n"
	"	pushq 128(%rdi)\n popfq\n"
	"	mov 0(%rdi), %rax\n mov 8(%rdi), %rcx\n mov 16(%rdi), %rdx\n mov 24(%rdi), %rbx\n"
	"	mov 40(%rdi), %rbp\n mov 48(%rdi), %rsi\n"
	"	mov 64(%rdi), %r8\n mov 72(%rdi), %r9\n mov 80(%rdi), %r10\n mov 88(%rdi), %r11\n"
	"	mov 96(%rdi), %r12\n mov 104(%rdi), %r13\n mov 112(%rdi), %r14\n mov 120(%rdi), %r15\n"
	"	mov 56(%rdi), %rdi\n"
	"	call *nat_target(%rip)\n"
	"	pushfq\n push %rdi\n"
	"	mov 16(%rsp), %rdi\n"
	"	mov %rax, 0(%rdi)\n mov %rcx, 8(%rdi)\n mov %rdx, 16(%rdi)\n mov %rbx, 24(%rdi)\n"
	"	mov %rbp, 40(%rdi)\n mov %rsi, 48(%rdi)\n"
	"	mov %r8, 64(%rdi)\n mov %r9, 72(%rdi)\n mov %r10, 80(%rdi)\n mov %r11, 88(%rdi)\n"
	"	mov %r12, 96(%rdi)\n mov %r13, 104(%rdi)\n mov %r14, 112(%rdi)\n mov %r15, 120(%rdi)\n"
	"	pop %rax\n mov %rax, 56(%rdi)\n"
	"	pop %rax\n mov %rax, 128(%rdi)\n"
	"	pop %rdi\n"
	"	cld\n"
	"	pop %r15\n pop %r14\n pop %r13\n pop %r12\n pop %rbp\n pop %rbx\n"
	"	ret\n"
	".size nat_thunk, .-nat_thunk\n");
void nat_thunk(struct nat_state *s);

static uint8_t *nat_page;

/* Runs insn[0..len) natively on *s.  Returns 0, or -1 when no executable
 * page could be had. */
static inline int nat_run(const uint8_t *insn, size_t len, struct nat_state *s)
{
	if (!nat_page) {
		void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return -1;
		nat_page = p;
	}
	memcpy(nat_page, insn, len);
	nat_page[len] = 0xc3;
	nat_target = nat_page;
	s->flags = (s->flags & 0x8d5) | 0x202;
	nat_thunk(s);
	return 0;
}

#endif

/*
 * Multiboot test kernels: the common start.  Entered by the loader in
 * flat 32-bit protected mode (EAX = 0x2badb002, EBX = the info), it builds
 * identity page tables for the first GiB (2 MiB pages, user-accessible),
 * enters long mode, loads an IDT whose 256 stubs call isr_dispatch(), and
 * calls kmain().  kmain's return value v leaves through the debug-exit
 * port (maquina exits with (v << 1) | 1).
 */
	.section .multiboot, "a"
	.align 4
	.long 0x1badb002
	.long 0x00000003
	.long -(0x1badb002 + 0x00000003)

	.section .text
	.code32
	.globl _start
_start:
	cli
	mov	%eax, mb_magic
	mov	%ebx, mb_info
	mov	$stack_top, %esp
	lgdt	gdt_ptr

	/* PML4[0] -> PDPT, PDPT[0] -> PD, PD[i] = i * 2 MiB (P W U PS) */
	mov	$pdpt, %eax
	or	$0x7, %eax
	mov	%eax, pml4
	mov	$pd, %eax
	or	$0x7, %eax
	mov	%eax, pdpt
	xor	%ecx, %ecx
1:	mov	%ecx, %eax
	shl	$21, %eax
	or	$0x87, %eax
	mov	%eax, pd(,%ecx,8)
	inc	%ecx
	cmp	$512, %ecx
	jne	1b

	mov	%cr4, %eax
	or	$0x20, %eax		/* PAE */
	mov	%eax, %cr4
	mov	$pml4, %eax
	mov	%eax, %cr3
	mov	$0xc0000080, %ecx
	rdmsr
	or	$0x901, %eax		/* LME | NXE | SCE */
	wrmsr
	mov	%cr0, %eax
	or	$0x80010001, %eax	/* PG | WP | PE */
	mov	%eax, %cr0
	ljmp	$0x08, $long_entry

	.code64
long_entry:
	mov	$0x10, %ax
	mov	%ax, %ds
	mov	%ax, %es
	mov	%ax, %ss
	xor	%ax, %ax
	mov	%ax, %fs
	mov	%ax, %gs
	mov	$stack_top, %rsp
	call	idt_setup
	call	kmain
	mov	$0xf4, %dx
	out	%eax, %dx
	/* not reached under maquina: hang */
2:	cli
	hlt
	jmp	2b

/* Interrupt stubs: push a dummy error code where the CPU pushes none,
 * then the vector, then the registers; isr_dispatch(frame) may change the
 * frame (RIP) before IRETQ. */
	.altmacro
	.macro	stub n
	.align	16
isr_\n:
	.if (\n == 8) || (\n >= 10 && \n <= 14) || (\n == 17) || (\n == 21)
	.else
	push	$0
	.endif
	push	$\n
	jmp	isr_common
	.endm

	.align	16
	.globl	isr_table
isr_table:
	.irp	n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	stub	\n
	.endr
	.set	i, 32
	.rept	224
	stub	%i
	.set	i, i + 1
	.endr

isr_common:
	push	%rax
	push	%rbx
	push	%rcx
	push	%rdx
	push	%rsi
	push	%rdi
	push	%rbp
	push	%r8
	push	%r9
	push	%r10
	push	%r11
	push	%r12
	push	%r13
	push	%r14
	push	%r15
	mov	%rsp, %rdi
	cld
	call	isr_dispatch
	pop	%r15
	pop	%r14
	pop	%r13
	pop	%r12
	pop	%r11
	pop	%r10
	pop	%r9
	pop	%r8
	pop	%rbp
	pop	%rdi
	pop	%rsi
	pop	%rdx
	pop	%rcx
	pop	%rbx
	pop	%rax
	add	$16, %rsp
	iretq

/* SYSCALL entry: records RAX and returns with SYSRETQ. */
	.globl	syscall_entry
syscall_entry:
	mov	%rax, syscall_rax(%rip)
	incl	syscall_count(%rip)
	sysretq

/* Compatibility-mode round trip: called from 64-bit code; jumps to a
 * 32-bit code segment, computes there, and comes back. */
	.globl	compat_roundtrip
compat_roundtrip:
	push	%rbx
	lea	compat_back(%rip), %rax
	mov	%eax, back_ptr(%rip)
	ljmp	*compat_ptr(%rip)
	.code32
compat_code:
	mov	$0x12345678, %eax
	add	$0x11111111, %eax
	mov	%eax, %ebx
	ljmp	*back_ptr
	.code64
compat_back:
	mov	%ebx, %eax
	pop	%rbx
	ret

	.section .data
	.align	8
compat_ptr:
	.long	compat_code
	.word	0x18
back_ptr:
	.long	0
	.word	0x08
	.globl	syscall_rax, syscall_count
syscall_rax:
	.quad	0
syscall_count:
	.long	0
	.globl	mb_magic, mb_info
mb_magic:
	.long	0
mb_info:
	.long	0

	.align	16
	.globl	gdt
gdt:
	.quad	0				/* 0x00 null */
	.quad	0x00af9a000000ffff		/* 0x08 kernel code, 64-bit */
	.quad	0x00cf92000000ffff		/* 0x10 kernel data */
	.quad	0x00cf9a000000ffff		/* 0x18 kernel code, 32-bit */
	.quad	0x00cff2000000ffff		/* 0x20 user data (STAR base + 8) */
	.quad	0x00affa000000ffff		/* 0x28 user code, 64-bit (base + 16) */
	.quad	0, 0				/* 0x30 TSS, filled by idt_setup */
gdt_end:
gdt_ptr:
	.word	gdt_end - gdt - 1
	.long	gdt

	.section .bss
	.align	4096
	.globl	pml4, pdpt, pd
pml4:	.skip	4096
pdpt:	.skip	4096
pd:	.skip	4096
	.skip	16384
stack_top:

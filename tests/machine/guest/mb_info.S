/* Multiboot entry state and info: EAX magic, EBX info, mem_lower/upper,
 * the command line "<kernel> <args>", the memory map and the loader name.
 * Success: "MBINFO-OK", exit 0x10 (status 33). */
#include "common.inc"
	.globl _start
_start:
	mov $0x300000, %esp
	mov $e_magic, %esi
	cmp $0x2badb002, %eax
	jne fail
	mov %ebx, %edi
	mov $e_flags, %esi
	mov (%edi), %eax
	and $0x245, %eax		/* mem, cmdline, mmap, loader name */
	cmp $0x245, %eax
	jne fail
	mov $e_lower, %esi
	cmpl $640, 4(%edi)
	jne fail
	mov $e_upper, %esi
	cmpl $(64 * 1024 - 1024), 8(%edi)	/* 64 MiB guest */
	jne fail
	/* the command line ends with " mbarg=42" */
	mov 16(%edi), %ebx
1:	cmpb $0, (%ebx)
	je 2f
	inc %ebx
	jmp 1b
2:	sub $9, %ebx
	mov $want_arg, %ecx
	mov $e_cmdline, %esi
3:	movb (%ecx), %al
	test %al, %al
	jz 4f
	cmpb (%ebx), %al
	jne fail
	inc %ebx
	inc %ecx
	jmp 3b
4:	/* first mmap entry: size 20, base 0, type 1 */
	mov 48(%edi), %ebx
	mov $e_mmap, %esi
	cmpl $20, (%ebx)
	jne fail
	cmpl $0, 4(%ebx)
	jne fail
	cmpl $1, 20(%ebx)
	jne fail
	/* loader name "maquina" starts with 'm' */
	mov 64(%edi), %ebx
	mov $e_name, %esi
	cmpb $'m', (%ebx)
	jne fail
	mov $ok, %esi
	call puts
	EXIT 0x10
	.section .rodata
want_arg: .asciz " mbarg=42"
e_magic: .asciz "eax magic\n"
e_flags: .asciz "info flags\n"
e_lower: .asciz "mem_lower\n"
e_upper: .asciz "mem_upper\n"
e_cmdline: .asciz "cmdline\n"
e_mmap: .asciz "mmap\n"
e_name: .asciz "loader name\n"
ok: .asciz "MBINFO-OK\n"

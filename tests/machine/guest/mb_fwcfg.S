/* fw_cfg: signature "QEMU" through the data port, the CPU count (run with
 * --cpus 2), the file directory, and a DMA read of the signature.
 * Success: "FWCFG-OK", exit 0x12 (status 37). */
#include "common.inc"
	.globl _start
_start:
	mov $0x300000, %esp
	/* signature */
	mov $0x510, %dx
	mov $0, %ax
	outw %ax, %dx
	mov $0x511, %dx
	mov $e_sig, %esi
	inb %dx, %al
	cmp $'Q', %al
	jne fail
	inb %dx, %al
	cmp $'E', %al
	jne fail
	inb %dx, %al
	cmp $'M', %al
	jne fail
	inb %dx, %al
	cmp $'U', %al
	jne fail
	/* number of CPUs */
	mov $0x510, %dx
	mov $5, %ax
	outw %ax, %dx
	mov $0x511, %dx
	inb %dx, %al
	mov $e_cpus, %esi
	cmp $2, %al
	jne fail
	/* file directory: big-endian count >= 1 */
	mov $0x510, %dx
	mov $0x19, %ax
	outw %ax, %dx
	mov $0x511, %dx
	inb %dx, %al
	inb %dx, %al
	inb %dx, %al
	inb %dx, %al
	mov $e_dir, %esi
	cmp $0, %al
	je fail
	/* DMA: select 0 and read 4 bytes into buf */
	movl $0x08000000, dma		/* control: select (0x08) key 0, big-endian */
	orl $0x02000000, dma		/* read */
	movl $0x04000000, dma + 4	/* length 4, big-endian */
	movl $0, dma + 8
	mov $buf, %eax
	/* big-endian low half of the address: byte-swap by hand */
	mov %eax, tmp
	movb tmp, %al
	movb %al, dma + 15
	movb tmp + 1, %al
	movb %al, dma + 14
	movb tmp + 2, %al
	movb %al, dma + 13
	movb tmp + 3, %al
	movb %al, dma + 12
	mov $dma, %eax
	mov %eax, tmp
	movb tmp, %al
	movb %al, addr + 3
	movb tmp + 1, %al
	movb %al, addr + 2
	movb tmp + 2, %al
	movb %al, addr + 1
	movb tmp + 3, %al
	movb %al, addr
	mov $0x514, %dx
	mov $0, %eax
	outl %eax, %dx
	mov $0x518, %dx
	mov addr, %eax
	outl %eax, %dx
	mov $e_dma, %esi
	cmpl $0, dma
	jne fail
	cmpl $0x554d4551, buf		/* "QEMU" */
	jne fail
	mov $ok, %esi
	call puts
	EXIT 0x12
	.section .rodata
e_sig: .asciz "signature\n"
e_cpus: .asciz "cpu count\n"
e_dir: .asciz "file directory\n"
e_dma: .asciz "dma\n"
ok: .asciz "FWCFG-OK\n"
	.data
	.align 16
dma: .long 0, 0, 0, 0
buf: .long 0
tmp: .long 0
addr: .long 0

/* Interrupt paths on the real board:
 *   P  PIT (100 Hz, mode 2) -> PIC -> BSP LINT0 ExtINT -> CPU
 *   L  LAPIC timer, periodic, 1 ms
 *   R  RTC periodic interrupt -> slave PIC (IRQ 8) -> cascade
 *   I  PIT -> IOAPIC pin 2 (the interrupt-source override) -> LAPIC
 * Success: "IRQ PLRI", exit 0x11 (status 35); an unexpected vector exits
 * with 0x7e. */
#include "common.inc"
	.globl _start
_start:
	mov $0x300000, %esp
	mov $idt, %edi
	xor %ecx, %ecx
1:	mov $isr_default, %eax
	cmp $0x20, %ecx
	jne 2f
	mov $isr_pit, %eax
2:	cmp $0x28, %ecx
	jne 3f
	mov $isr_rtc, %eax
3:	cmp $0x40, %ecx
	jne 4f
	mov $isr_lapic, %eax
4:	cmp $0x50, %ecx
	jne 5f
	mov $isr_ioapic, %eax
5:	mov %ax, (%edi)
	movw $0x10, 2(%edi)
	mov %eax, 4(%edi)
	movw $0x8e00, 4(%edi)
	add $8, %edi
	inc %ecx
	cmp $256, %ecx
	jne 1b
	lidt idtr
	mov $hello, %esi
	call puts

	/* PICs: vectors 0x20 / 0x28, cascade on IRQ 2, unmask IRQ 0 */
	mov $0x11, %al
	out %al, $0x20
	out %al, $0xa0
	mov $0x20, %al
	out %al, $0x21
	mov $0x28, %al
	out %al, $0xa1
	mov $0x04, %al
	out %al, $0x21
	mov $0x02, %al
	out %al, $0xa1
	mov $0x01, %al
	out %al, $0x21
	out %al, $0xa1
	mov $0xfe, %al
	out %al, $0x21
	mov $0xff, %al
	out %al, $0xa1
	/* PIT channel 0: mode 2, 11932 -> 100 Hz */
	mov $0x34, %al
	out %al, $0x43
	mov $(11932 & 0xff), %al
	out %al, $0x40
	mov $(11932 >> 8), %al
	out %al, $0x40
	sti
6:	hlt
	cmpl $5, ticks
	jb 6b
	cli
	mov $'P', %al
	mov $0x3f8, %dx
	out %al, %dx

	/* LAPIC timer: mask the PIC, enable the APIC, periodic 1 ms */
	mov $0xff, %al
	out %al, $0x21
	movl $0x1ff, 0xfee000f0
	movl $0xb, 0xfee003e0
	movl $0x20040, 0xfee00320
	movl $1000000, 0xfee00380
	sti
7:	hlt
	cmpl $5, lticks
	jb 7b
	cli
	movl $0x10000, 0xfee00320
	mov $'L', %al
	mov $0x3f8, %dx
	out %al, %dx

	/* RTC periodic (1024 Hz) on IRQ 8 through the slave */
	mov $0xfb, %al
	out %al, $0x21
	mov $0xfe, %al
	out %al, $0xa1
	mov $0x0b, %al
	out %al, $0x70
	mov $0x42, %al
	out %al, $0x71
	sti
8:	hlt
	cmpl $5, rticks
	jb 8b
	cli
	mov $0x0b, %al
	out %al, $0x70
	mov $0x02, %al
	out %al, $0x71
	mov $0xff, %al
	out %al, $0x21
	out %al, $0xa1
	mov $'R', %al
	mov $0x3f8, %dx
	out %al, %dx

	/* IOAPIC: pin 2 -> vector 0x50, edge, APIC 0; LINT0 masked */
	movl $0x10700, 0xfee00350
	movl $0x14, 0xfec00000
	movl $0x50, 0xfec00010
	movl $0x15, 0xfec00000
	movl $0, 0xfec00010
	sti
9:	hlt
	cmpl $5, iticks
	jb 9b
	cli
	mov $'I', %al
	mov $0x3f8, %dx
	out %al, %dx
	mov $'\n', %al
	out %al, %dx
	EXIT 0x11

isr_default:
	EXIT 0x7e
isr_pit:
	push %eax
	incl ticks
	mov $0x20, %al
	out %al, $0x20
	pop %eax
	iret
isr_lapic:
	incl lticks
	movl $0, 0xfee000b0
	iret
isr_rtc:
	push %eax
	incl rticks
	mov $0x0c, %al
	out %al, $0x70
	in $0x71, %al
	mov $0x20, %al
	out %al, $0xa0
	out %al, $0x20
	pop %eax
	iret
isr_ioapic:
	incl iticks
	movl $0, 0xfee000b0
	iret

	.section .rodata
hello: .asciz "IRQ "
	.data
ticks: .long 0
lticks: .long 0
rticks: .long 0
iticks: .long 0
idtr: .word 256 * 8 - 1
	.long idt
	.bss
	.align 8
idt: .space 256 * 8

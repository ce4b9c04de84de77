/* A minimal "bzImage": a setup header that passes the loader, and 64-bit
 * code at the 64-bit entry (load address + 0x200) that checks the entry
 * state of the boot protocol: long mode with paging, CS 0x10 / DS 0x18,
 * RSI = boot_params with "HdrS", type_of_loader 0xff, the command line and
 * an e820 table.  Success: "BZ64-OK", exit 0x13 (status 39).  Built as a
 * flat binary (objcopy -O binary); only RIP-relative addressing. */
	.text
	.code16
start:
	.org 0x1f1
	.byte 1			/* setup_sects: setup is 2 sectors */
	.word 0			/* root_flags */
	.long 0			/* syssize */
	.word 0			/* ram_size */
	.word 0xffff		/* vid_mode */
	.word 0			/* root_dev */
	.word 0xaa55		/* boot_flag */
	.byte 0xeb, 0x66	/* jump: the header ends at 0x268 */
	.ascii "HdrS"
	.word 0x020f		/* version 2.15 */
	.long 0			/* realmode_swtch */
	.word 0			/* start_sys_seg */
	.word 0			/* kernel_version */
	.byte 0			/* type_of_loader */
	.byte 1			/* loadflags: LOADED_HIGH */
	.word 0			/* setup_move_size */
	.long 0x100000		/* code32_start */
	.long 0, 0		/* ramdisk_image, ramdisk_size */
	.long 0			/* bootsect_kludge */
	.word 0			/* heap_end_ptr */
	.byte 0, 0		/* ext_loader_ver, ext_loader_type */
	.long 0			/* cmd_line_ptr */
	.long 0x7fffffff	/* initrd_addr_max */
	.long 0x200000		/* kernel_alignment */
	.byte 1, 0		/* relocatable_kernel, min_alignment */
	.word 0x3		/* xloadflags: KERNEL_64, CAN_BE_LOADED_ABOVE_4G */
	.long 2047		/* cmdline_size */
	.long 0			/* hardware_subarch */
	.quad 0			/* hardware_subarch_data */
	.long 0, 0		/* payload_offset, payload_length */
	.quad 0			/* setup_data */
	.quad 0x100000		/* pref_address */
	.long 0x100000		/* init_size */
	.long 0			/* handover_offset */

	.org 0x400		/* the protected-mode kernel, loaded at 1 MiB */
	.code32
	hlt			/* 32-bit entry: not used */

	.org 0x400 + 0x200	/* the 64-bit entry */
	.code64
entry64:
	lea e_rsi(%rip), %rbx
	cmp $0x7000, %rsi
	jne fail
	lea e_hdrs(%rip), %rbx
	cmpl $0x53726448, 0x202(%rsi)	/* "HdrS" */
	jne fail
	lea e_loader(%rip), %rbx
	cmpb $0xff, 0x210(%rsi)
	jne fail
	lea e_e820(%rip), %rbx
	cmpb $3, 0x1e8(%rsi)
	jb fail
	lea e_cs(%rip), %rbx
	mov %cs, %eax
	cmp $0x10, %eax
	jne fail
	lea e_ds(%rip), %rbx
	mov %ds, %eax
	cmp $0x18, %eax
	jne fail
	lea e_paging(%rip), %rbx
	mov %cr0, %rax
	test $0x80000000, %eax
	jz fail
	mov %cr4, %rax
	test $0x20, %eax
	jz fail
	/* the command line is "bzarg=7" */
	lea e_cmdline(%rip), %rbx
	mov 0x228(%rsi), %eax
	cmpl $0x72617a62, (%rax)	/* "bzar" */
	jne fail
	cmpw $0x3d67, 4(%rax)		/* "g=" */
	jne fail
	/* memory above 1 MiB is identity mapped: touch 64 MiB - 8 */
	lea e_map(%rip), %rbx
	mov $0x3fffff8, %rdi
	movq $0x1234, (%rdi)
	cmpq $0x1234, (%rdi)
	jne fail
	lea ok(%rip), %rbx
	call puts
	mov $0xf4, %dx
	mov $0x13, %eax
	out %eax, %dx
fail:
	push %rbx
	lea failmsg(%rip), %rbx
	call puts
	pop %rbx
	call puts
	mov $0xf4, %dx
	mov $0x7f, %eax
	out %eax, %dx
	hlt
/* puts: the string at %rbx to COM1 */
puts:
	mov $0x3f8, %dx
1:	movb (%rbx), %al
	inc %rbx
	test %al, %al
	jz 2f
	out %al, %dx
	jmp 1b
2:	ret
failmsg: .asciz "FAIL "
e_rsi: .asciz "rsi\n"
e_hdrs: .asciz "HdrS\n"
e_loader: .asciz "type_of_loader\n"
e_e820: .asciz "e820\n"
e_cs: .asciz "cs\n"
e_ds: .asciz "ds\n"
e_paging: .asciz "paging\n"
e_cmdline: .asciz "cmdline\n"
e_map: .asciz "identity map\n"
ok: .asciz "BZ64-OK\n"
	.org 0x400 + 0x1000	/* some kernel bytes */

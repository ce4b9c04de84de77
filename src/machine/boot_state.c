/*
 * The initial CPU states the loaders hand to a vCPU backend, and the
 * boot GDT and identity page tables they rely on.
 */
#include <string.h>

#include "machine/boot.h"

/* GDT at PC_BOOT_GDT: 0 null, 1 null, 2 (0x10) code, 3 (0x18) data,
 * 4 (0x20) TSS (16 bytes in long mode). */
#define SEL_CODE 0x10
#define SEL_DATA 0x18
#define SEL_TSS 0x20

static uint64_t gdt_entry(uint32_t base, uint32_t limit_pages, uint8_t access, uint8_t flags)
{
	return (uint64_t)(limit_pages & 0xffff) | (uint64_t)(base & 0xffffff) << 16 |
	       (uint64_t)access << 40 | (uint64_t)((limit_pages >> 16) & 0xf) << 48 |
	       (uint64_t)(flags & 0xf) << 52 | (uint64_t)(base >> 24) << 56;
}

static struct boot_seg seg_from(uint16_t sel, uint8_t access, uint8_t flags)
{
	return (struct boot_seg){
		.selector = sel, .base = 0, .limit = 0xffffffffu, .type = access & 0xf,
		.s = (access >> 4) & 1, .dpl = (access >> 5) & 3, .present = access >> 7,
		.avl = flags & 1, .l = (flags >> 1) & 1, .db = (flags >> 2) & 1, .g = (flags >> 3) & 1,
	};
}

int boot_setup_cpu(struct mem *mem, struct boot_cpu_state *cpu, enum boot_mode mode)
{
	uint8_t code_access = 0x9b, data_access = 0x93;
	uint8_t code_flags = mode == BOOT_MODE_LONG64 ? 0xa : 0xc; /* G+L or G+D */
	uint64_t gdt[6] = {
		0, 0,
		gdt_entry(0, 0xfffff, code_access, code_flags),
		gdt_entry(0, 0xfffff, data_access, 0xc),
		gdt_entry(0, 0x67, 0x8b, 0), /* busy TSS (64-bit or 32-bit) */
		0,
	};
	uint8_t raw[sizeof(gdt)];
	for (unsigned i = 0; i < 6; i++)
		for (unsigned b = 0; b < 8; b++)
			raw[i * 8 + b] = (uint8_t)(gdt[i] >> (8 * b));
	int ret = mem_write(mem, PC_BOOT_GDT, raw, sizeof(raw));
	if (!ret)
		ret = mem_fill(mem, PC_BOOT_IDT, 0, 8);
	if (ret)
		return ret;

	memset(cpu, 0, sizeof(*cpu));
	cpu->mode = mode;
	cpu->rflags = 0x2;
	cpu->gdt_base = PC_BOOT_GDT;
	cpu->gdt_limit = sizeof(raw) - 1;
	cpu->idt_base = PC_BOOT_IDT;
	cpu->idt_limit = 0;
	cpu->cs = seg_from(SEL_CODE, code_access, code_flags);
	cpu->ds = cpu->es = cpu->fs = cpu->gs = cpu->ss = seg_from(SEL_DATA, data_access, 0xc);
	cpu->tr = (struct boot_seg){ .selector = SEL_TSS, .limit = 0x67, .type = 0xb, .present = 1 };
	cpu->ldtr = (struct boot_seg){ .unusable = true, .type = 0x2, .limit = 0xffff };
	cpu->fpu_fcw = 0x37f;
	cpu->mxcsr = 0x1f80;
	cpu->rsp = PC_BOOT_STACK;
	if (mode == BOOT_MODE_LONG64) {
		/* PML4[0] -> PDPT; PDPT[0..3] -> PDs; PDs: 2 MiB pages, 0-4 GiB */
		uint8_t pt[0x6000];
		memset(pt, 0, sizeof(pt));
		uint64_t e = PC_PDPT | 0x3;
		memcpy(pt, &e, 8);
		for (unsigned i = 0; i < 4; i++) {
			e = (PC_PD + i * 0x1000) | 0x3;
			memcpy(pt + 0x1000 + i * 8, &e, 8);
		}
		for (unsigned i = 0; i < 4 * 512; i++) {
			e = ((uint64_t)i << 21) | 0x83;
			memcpy(pt + 0x2000 + i * 8, &e, 8);
		}
		ret = mem_write(mem, PC_PML4, pt, sizeof(pt));
		if (ret)
			return ret;
		cpu->cr0 = 0x80000011; /* PG, ET, PE */
		cpu->cr3 = PC_PML4;
		cpu->cr4 = 0x20;       /* PAE */
		cpu->efer = 0x500;     /* LMA, LME */
	} else {
		cpu->cr0 = 0x11; /* ET, PE */
	}
	return 0;
}

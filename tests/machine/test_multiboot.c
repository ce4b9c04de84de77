/* Multiboot v1 loader on synthetic ELF32, ELF64 and a.out-kludge kernels. */
#include <errno.h>

#include "machine/machine.h"
#include "test.h"

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}
static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint8_t img[16384];

static void mb_header(size_t off, uint32_t flags)
{
	put32(img + off, 0x1badb002);
	put32(img + off + 4, flags);
	put32(img + off + 8, (uint32_t)-(0x1badb002u + flags));
}

/* ELF32: one PT_LOAD of 0x1000 file bytes + 0x1000 bss at paddr 4 MiB,
 * linked at virtual 0xc0400000 (entry virtual) */
static size_t make_elf32(void)
{
	memset(img, 0, sizeof(img));
	memcpy(img, "\x7f" "ELF", 4);
	img[4] = 1;
	img[5] = 1;
	img[6] = 1;
	put16(img + 16, 2);
	put16(img + 18, 3);
	put32(img + 24, 0xc0400010);	   /* e_entry (virtual) */
	put32(img + 28, 52);		   /* phoff */
	put16(img + 42, 32);
	put16(img + 44, 1);
	uint8_t *ph = img + 52;
	put32(ph, 1);
	put32(ph + 4, 0x1000);		   /* offset */
	put32(ph + 8, 0xc0400000);	   /* vaddr */
	put32(ph + 12, 0x400000);	   /* paddr */
	put32(ph + 16, 0x1000);		   /* filesz */
	put32(ph + 20, 0x2000);		   /* memsz */
	mb_header(0x1000, 0x3);
	for (int i = 12; i < 0x1000; i++)
		img[0x1000 + i] = (uint8_t)i;
	return 0x2000;
}

static size_t make_elf64(void)
{
	memset(img, 0, sizeof(img));
	memcpy(img, "\x7f" "ELF", 4);
	img[4] = 2;
	img[5] = 1;
	img[6] = 1;
	put16(img + 16, 2);
	put16(img + 18, 62);
	put64(img + 24, 0x200000);
	put64(img + 32, 64);
	put16(img + 54, 56);
	put16(img + 56, 1);
	uint8_t *ph = img + 64;
	put32(ph, 1);
	put64(ph + 8, 0x1000);
	put64(ph + 16, 0x200000);
	put64(ph + 24, 0x200000);
	put64(ph + 32, 0x800);
	put64(ph + 40, 0x800);
	mb_header(0x1000, 0x0);
	return 0x1800;
}

static void test_elf32(void)
{
	struct mem *mem = mem_new_pc(32ull << 20);
	struct e820_map e820;
	pc_e820(mem, &e820);
	size_t len = make_elf32();
	CHECK(multiboot_detect(img, len));
	struct mb_module mods[2] = { { (const uint8_t *)"module-one", 10, "mod1 arg" },
				     { (const uint8_t *)"two", 3, "mod2" } };
	struct multiboot_boot b = { img, len, "kernel.elf", "a=1 b=2", mods, 2, &e820 };
	struct boot_cpu_state cpu;
	struct loader_error err = { "" };
	CHECK(multiboot_load(mem, &b, &cpu, &err) == 0);
	if (err.msg[0])
		fprintf(stderr, "%s\n", err.msg);
	CHECK(cpu.mode == BOOT_MODE_PROTECTED32 && cpu.rax == 0x2badb002 && cpu.rbx == PC_MB_INFO);
	CHECK(cpu.rip == 0x400010); /* virtual entry translated to physical */
	CHECK(cpu.cr0 == 0x11 && cpu.cs.db == 1 && cpu.cs.limit == 0xffffffffu && cpu.rflags == 2);
	uint8_t *k = mem_ram_ptr(mem, 0x400000, 0x2000);
	CHECK(k && memcmp(k, img + 0x1000, 0x1000) == 0 && k[0x1fff] == 0);
	uint8_t *mbi = mem_ram_ptr(mem, PC_MB_INFO, 88);
	uint32_t flags = get32(mbi);
	CHECK(flags == ((1u << 0) | (1u << 2) | (1u << 3) | (1u << 6) | (1u << 9)));
	CHECK(get32(mbi + 4) == 640 && get32(mbi + 8) == (32u << 10) - 1024);
	CHECK(strcmp(mem_ram_ptr(mem, get32(mbi + 16), 1), "kernel.elf a=1 b=2") == 0);
	CHECK(strcmp(mem_ram_ptr(mem, get32(mbi + 64), 1), "maquina") == 0);
	/* modules page-aligned after the kernel's end (4 MiB + 8 KiB) */
	CHECK(get32(mbi + 20) == 2);
	uint8_t *ml = mem_ram_ptr(mem, get32(mbi + 24), 32);
	CHECK(get32(ml) == 0x402000 && get32(ml + 4) == 0x40200a);
	CHECK(get32(ml + 16) == 0x403000 && get32(ml + 20) == 0x403003);
	CHECK(memcmp(mem_ram_ptr(mem, 0x402000, 10), "module-one", 10) == 0);
	CHECK(strcmp(mem_ram_ptr(mem, get32(ml + 8), 1), "mod1 arg") == 0);
	/* mmap: size 20 entries, the e820 map */
	uint32_t mlen = get32(mbi + 44);
	CHECK(mlen == e820.count * 24);
	uint8_t *mm = mem_ram_ptr(mem, get32(mbi + 48), mlen);
	CHECK(get32(mm) == 20 && get32(mm + 4) == 0 && get32(mm + 12) == 0x9fc00 && get32(mm + 20) == 1);
	mem_free(mem);
}

static void test_elf64_and_aout(void)
{
	struct mem *mem = mem_new_pc(32ull << 20);
	struct boot_cpu_state cpu;
	struct loader_error err = { "" };
	size_t len = make_elf64();
	struct multiboot_boot b = { img, len, "k64", NULL, NULL, 0, NULL };
	CHECK(multiboot_load(mem, &b, &cpu, &err) == 0);
	CHECK(cpu.rip == 0x200000);
	CHECK(strcmp(mem_ram_ptr(mem, PC_MB_INFO + 88, 4), "k64") == 0);

	/* a.out kludge: header at file 0x40, header_addr 0x100040, load at
	 * 0x100000, load_end 0x100800, bss to 0x101000, entry 0x100080 */
	memset(img, 0, sizeof(img));
	mb_header(0x40, 0x10003);
	put32(img + 0x40 + 12, 0x100040);
	put32(img + 0x40 + 16, 0x100000);
	put32(img + 0x40 + 20, 0x100800);
	put32(img + 0x40 + 24, 0x101000);
	put32(img + 0x40 + 28, 0x100080);
	img[0x7ff] = 0xaa;
	img[0x800] = 0xbb; /* beyond load_end: not loaded */
	CHECK(mem_fill(mem, 0x100000, 0xcc, 0x2000) == 0);
	b.kernel_len = 0x1000;
	CHECK(multiboot_load(mem, &b, &cpu, &err) == 0);
	CHECK(cpu.rip == 0x100080);
	uint8_t *k = mem_ram_ptr(mem, 0x100000, 0x1001);
	CHECK(k[0x40] == 0x02 && k[0x7ff] == 0xaa && k[0x800] == 0 && k[0xfff] == 0 && k[0x1000] == 0xcc);
	mem_free(mem);
}

static void test_errors(void)
{
	struct mem *mem = mem_new_pc(8ull << 20);
	struct boot_cpu_state cpu;
	struct loader_error err = { "" };
	struct multiboot_boot b = { img, 0, "k", NULL, NULL, 0, NULL };

	/* no header; bad checksum; header past 8 KiB */
	memset(img, 0, sizeof(img));
	b.kernel_len = sizeof(img);
	CHECK(!multiboot_detect(img, sizeof(img)));
	CHECK(multiboot_load(mem, &b, &cpu, &err) == -ENOEXEC && strstr(err.msg, "multiboot header"));
	mb_header(0x100, 0);
	img[0x108]++;
	CHECK(!multiboot_detect(img, sizeof(img)));
	memset(img, 0, sizeof(img));
	mb_header(8192, 0);
	CHECK(!multiboot_detect(img, sizeof(img)));
	/* unknown required flag */
	memset(img, 0, sizeof(img));
	mb_header(0, 0x8);
	CHECK(multiboot_load(mem, &b, &cpu, &err) == -ENOEXEC && strstr(err.msg, "0x8"));
	/* not ELF, no a.out flag */
	mb_header(0, 0);
	CHECK(multiboot_load(mem, &b, &cpu, &err) == -ENOEXEC && strstr(err.msg, "ELF"));
	/* segment above RAM */
	size_t len = make_elf32();
	b.kernel_len = len;
	CHECK(multiboot_load(mem, &b, &cpu, &err) == 0); /* 4 MiB + 8K fits in 8 MiB */
	put32(img + 52 + 12, 0x7ff000);
	CHECK(multiboot_load(mem, &b, &cpu, &err) == -ENOMEM && strstr(err.msg, "--memory"));
	/* segment in the low boot area */
	put32(img + 52 + 12, 0x1000);
	CHECK(multiboot_load(mem, &b, &cpu, &err) == -ENOMEM);
	/* segment beyond the file */
	make_elf32();
	put32(img + 52 + 4, 0x100000);
	CHECK(multiboot_load(mem, &b, &cpu, &err) == -ENOEXEC && strstr(err.msg, "outside"));
	/* filesz > memsz */
	make_elf32();
	put32(img + 52 + 20, 0x10);
	CHECK(multiboot_load(mem, &b, &cpu, &err) == -ENOEXEC);
	/* too many / truncated program headers */
	make_elf32();
	put16(img + 44, 1000);
	CHECK(multiboot_load(mem, &b, &cpu, &err) == -ENOEXEC);
	/* module that does not fit */
	make_elf32();
	static uint8_t bigmod[8u << 20];
	struct mb_module mod = { bigmod, sizeof(bigmod), "big" };
	b.modules = &mod;
	b.nr_modules = 1;
	CHECK(multiboot_load(mem, &b, &cpu, &err) == -ENOMEM && strstr(err.msg, "module 0"));
	/* command line too long for the info area */
	b.modules = NULL;
	b.nr_modules = 0;
	static char huge[100000];
	memset(huge, 'a', sizeof(huge) - 1);
	b.cmdline = huge;
	CHECK(multiboot_load(mem, &b, &cpu, &err) == -E2BIG);
	/* a.out with inconsistent addresses */
	memset(img, 0, sizeof(img));
	mb_header(0, 0x10000);
	put32(img + 12, 0x100000);
	put32(img + 16, 0x200000); /* header_addr below load_addr */
	b.cmdline = NULL;
	CHECK(multiboot_load(mem, &b, &cpu, &err) == -ENOEXEC);
	mem_free(mem);
}

int main(void)
{
	test_elf32();
	test_elf64_and_aout();
	test_errors();
	TEST_MAIN_END();
}

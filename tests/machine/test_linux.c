/*
 * bzImage loader on synthetic images (header validation, boot_params,
 * placement, every user mistake) and, when a path is given, on the real
 * Debian kernel built by scripts/guest-assets.
 */
#include <errno.h>

#include "machine/machine.h"
#include "test.h"

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A minimal bzImage: 4 setup sectors + a 64 KiB "kernel". */
#define FAKE_LEN (5 * 512 + 65536)
static uint8_t fake[FAKE_LEN];

static void make_fake(uint16_t version, bool x64)
{
	memset(fake, 0, sizeof(fake));
	fake[0x1f1] = 4;
	put16(fake + 0x1fe, 0xaa55);
	fake[0x200] = 0xeb;
	fake[0x201] = 0x66; /* header ends at 0x268 */
	memcpy(fake + 0x202, "HdrS", 4);
	put16(fake + 0x206, version);
	fake[0x211] = 0x01;		     /* LOADED_HIGH */
	put32(fake + 0x22c, 0x7fffffff);     /* initrd_addr_max */
	put32(fake + 0x230, 0x200000);	     /* kernel_alignment */
	fake[0x234] = 1;		     /* relocatable */
	fake[0x236] = x64 ? 0x03 : 0;	     /* XLF_KERNEL_64 | above 4G */
	put32(fake + 0x238, 2047);	     /* cmdline_size */
	put32(fake + 0x258, 0x1000000);	     /* pref_address */
	put32(fake + 0x260, 8u << 20);	     /* init_size */
	put32(fake + 0x250, 0xdeadbeef);     /* setup_data from the file: ignored */
	for (size_t i = 5 * 512; i < FAKE_LEN; i++)
		fake[i] = (uint8_t)(i * 7);
}

static void test_fake_ok(void)
{
	struct mem *mem = mem_new_pc(64ull << 20);
	struct e820_map e820;
	pc_e820(mem, &e820);
	make_fake(0x020f, true);
	static uint8_t initrd[10000];
	memset(initrd, 0x5a, sizeof(initrd));
	struct linux_boot b = { fake, FAKE_LEN, initrd, sizeof(initrd), "console=ttyS0 quiet",
				&e820, 0xe0000 };
	struct boot_cpu_state cpu;
	struct linux_info info;
	struct loader_error err = { "" };
	CHECK(linux_load(mem, &b, &cpu, &info, &err) == 0);
	CHECK(info.version == 0x020f && info.entry64 && info.setup_bytes == 2560);
	CHECK(info.kernel_end == 0x1000000 + (8u << 20));
	/* the protected-mode kernel at 1 MiB */
	uint8_t *k = mem_ram_ptr(mem, 0x100000, 65536);
	CHECK(k && memcmp(k, fake + 2560, 65536) == 0);
	/* boot_params */
	uint8_t *bp = mem_ram_ptr(mem, PC_ZERO_PAGE, 4096);
	CHECK(bp[0x210] == 0xff);
	CHECK(memcmp(bp + 0x202, "HdrS", 4) == 0 && get16(bp + 0x206) == 0x020f);
	CHECK(get32(bp + 0x228) == PC_CMDLINE);
	CHECK(strcmp(mem_ram_ptr(mem, PC_CMDLINE, 20), "console=ttyS0 quiet") == 0);
	uint32_t rd = get32(bp + 0x218);
	CHECK(rd == info.initrd_addr && get32(bp + 0x21c) == sizeof(initrd));
	CHECK(rd % 4096 == 0 && rd + sizeof(initrd) <= (64u << 20) && rd >= info.kernel_end);
	CHECK(memcmp(mem_ram_ptr(mem, rd, sizeof(initrd)), initrd, sizeof(initrd)) == 0);
	CHECK(bp[0x1e8] == e820.count);
	CHECK(get32(bp + 0x2d0 + 20 * 3) == 0x100000 && get32(bp + 0x2d0 + 20 * 3 + 16) == 1);
	CHECK(get32(bp + 0x070) == 0xe0000);
	CHECK(get32(bp + 0x250) == 0 && get32(bp + 0x254) == 0);
	/* 64-bit entry state */
	CHECK(cpu.mode == BOOT_MODE_LONG64 && cpu.rip == 0x100200 && cpu.rsi == PC_ZERO_PAGE);
	CHECK(cpu.cr0 == 0x80000011 && cpu.cr4 == 0x20 && cpu.efer == 0x500 && cpu.cr3 == PC_PML4);
	CHECK(cpu.cs.selector == 0x10 && cpu.cs.l == 1 && cpu.cs.db == 0 && cpu.ds.selector == 0x18);
	uint64_t gdt2;
	CHECK(mem_read_u64(mem, PC_BOOT_GDT + 0x10, &gdt2) == 0 && gdt2 == 0x00af9b000000ffffull);
	/* identity map: PML4[0] -> PDPT, PDPT[3] -> PD 3, PD entry for 3 GiB + 2 MiB */
	uint64_t e;
	CHECK(mem_read_u64(mem, PC_PML4, &e) == 0 && e == (PC_PDPT | 3));
	CHECK(mem_read_u64(mem, PC_PDPT + 24, &e) == 0 && e == ((PC_PD + 0x3000) | 3));
	CHECK(mem_read_u64(mem, PC_PD + 0x3000 + 8, &e) == 0 && e == (0xc0200000ull | 0x83));
	mem_free(mem);
}

static void test_fake_32bit_entry(void)
{
	struct mem *mem = mem_new_pc(64ull << 20);
	make_fake(0x0206, false);
	struct linux_boot b = { fake, FAKE_LEN, NULL, 0, NULL, NULL, 0 };
	struct boot_cpu_state cpu;
	struct linux_info info;
	struct loader_error err = { "" };
	CHECK(linux_load(mem, &b, &cpu, &info, &err) == 0);
	CHECK(!info.entry64 && cpu.mode == BOOT_MODE_PROTECTED32 && cpu.rip == 0x100000);
	CHECK(cpu.cr0 == 0x11 && cpu.efer == 0 && cpu.cs.db == 1 && cpu.cs.l == 0);
	uint8_t *bp = mem_ram_ptr(mem, PC_ZERO_PAGE, 4096);
	CHECK(get32(bp + 0x218) == 0 && get32(bp + 0x070) == 0);
	mem_free(mem);
}

static void test_fake_errors(void)
{
	struct mem *mem = mem_new_pc(64ull << 20);
	struct boot_cpu_state cpu;
	struct loader_error err = { "" };
	struct linux_boot b = { fake, FAKE_LEN, NULL, 0, NULL, NULL, 0 };

	/* not a bzImage */
	make_fake(0x020f, true);
	fake[0x1fe] = 0;
	CHECK(linux_load(mem, &b, &cpu, NULL, &err) == -ENOEXEC);
	CHECK(strstr(err.msg, "not a Linux bzImage") != NULL);
	b.kernel_len = 100; /* tiny file */
	CHECK(linux_load(mem, &b, &cpu, NULL, &err) == -ENOEXEC);
	b.kernel_len = FAKE_LEN;

	/* protocol too old */
	make_fake(0x0204, true);
	CHECK(linux_load(mem, &b, &cpu, NULL, &err) == -ENOEXEC && strstr(err.msg, "2.04"));
	/* zImage */
	make_fake(0x020f, true);
	fake[0x211] = 0;
	CHECK(linux_load(mem, &b, &cpu, NULL, &err) == -ENOEXEC && strstr(err.msg, "zImage"));
	/* truncated: setup sectors beyond the file */
	make_fake(0x020f, true);
	fake[0x1f1] = 200;
	CHECK(linux_load(mem, &b, &cpu, NULL, &err) == -ENOEXEC && strstr(err.msg, "truncated"));
	/* header end beyond the file */
	make_fake(0x020f, true);
	b.kernel_len = 0x220;
	CHECK(linux_load(mem, &b, &cpu, NULL, &err) == -ENOEXEC);
	b.kernel_len = FAKE_LEN;

	/* command line over cmdline_size */
	make_fake(0x020f, true);
	char longcmd[3000];
	memset(longcmd, 'x', sizeof(longcmd) - 1);
	longcmd[sizeof(longcmd) - 1] = 0;
	b.cmdline = longcmd;
	CHECK(linux_load(mem, &b, &cpu, NULL, &err) == -E2BIG && strstr(err.msg, "2047"));
	longcmd[2047] = 0;
	CHECK(linux_load(mem, &b, &cpu, NULL, &err) == 0);
	b.cmdline = NULL;

	/* memory too small for the kernel's init_size */
	put32(fake + 0x260, 60u << 20);
	CHECK(linux_load(mem, &b, &cpu, NULL, &err) == -ENOMEM && strstr(err.msg, "--memory"));
	put32(fake + 0x260, 8u << 20);

	/* memory too small for kernel + initrd */
	static uint8_t big[42u << 20];
	b.initrd = big;
	b.initrd_len = sizeof(big);
	CHECK(linux_load(mem, &b, &cpu, NULL, &err) == -ENOMEM && strstr(err.msg, "initrd"));
	b.initrd_len = 30u << 20; /* fits between 24 MiB and 64 MiB */
	CHECK(linux_load(mem, &b, &cpu, NULL, &err) == 0);
	/* initrd_addr_max respected */
	put32(fake + 0x22c, (48u << 20) - 1);
	b.initrd_len = 1u << 20;
	struct linux_info info;
	CHECK(linux_load(mem, &b, &cpu, &info, &err) == 0 && info.initrd_addr == (47u << 20));
	mem_free(mem);
}

/* The real Debian kernel, if scripts/guest-assets built it. */
static int test_real(const char *path)
{
	uint8_t *k;
	size_t klen;
	int ret = loader_read_file(path, LOADER_MAX_KERNEL, &k, &klen);
	if (ret) {
		fprintf(stderr, "%s: %s\n", path, strerror(-ret));
		return 1;
	}
	struct mem *mem = mem_new_pc(512ull << 20);
	struct e820_map e820;
	pc_e820(mem, &e820);
	uint8_t initrd[4096] = { 0x1f, 0x8b };
	struct linux_boot b = { k, klen, initrd, sizeof(initrd), "console=ttyS0", &e820, 0xe0000 };
	struct boot_cpu_state cpu;
	struct linux_info info;
	struct loader_error err = { "" };
	CHECK(linux_is_bzimage(k, klen));
	CHECK(!multiboot_detect(k, klen) || linux_is_bzimage(k, klen));
	ret = linux_load(mem, &b, &cpu, &info, &err);
	if (ret)
		fprintf(stderr, "linux_load: %s\n", err.msg);
	CHECK(ret == 0);
	printf("Debian kernel: protocol %u.%02u, setup %u bytes, kernel needs up to 0x%llx, "
	       "initrd at 0x%llx, cmdline max %u\n", info.version >> 8, info.version & 0xff,
	       info.setup_bytes, (unsigned long long)info.kernel_end,
	       (unsigned long long)info.initrd_addr, info.cmdline_max);
	CHECK(info.version >= 0x020f && info.entry64);
	CHECK(cpu.rip == 0x100200 && cpu.mode == BOOT_MODE_LONG64);
	uint8_t *bp = mem_ram_ptr(mem, PC_ZERO_PAGE, 4096);
	CHECK(bp && memcmp(bp + 0x202, "HdrS", 4) == 0 && bp[0x210] == 0xff);
	CHECK(get32(bp + 0x218) == info.initrd_addr && get32(bp + 0x21c) == sizeof(initrd));
	CHECK(bp[0x1e8] == e820.count && get32(bp + 0x228) == PC_CMDLINE);
	CHECK(get32(bp + 0x070) == 0xe0000);
	/* what boot.rst says a relocatable x86-64 kernel has */
	CHECK(bp[0x234] == 1 && (bp[0x236] & 1) && get32(bp + 0x238) >= 2047);
	CHECK(memcmp(mem_ram_ptr(mem, 0x100000, 4096), k + info.setup_bytes, 4096) == 0);
	/* too little memory is refused with a clear message */
	struct mem *small = mem_new_pc(16ull << 20);
	CHECK(linux_load(small, &b, &cpu, &info, &err) == -ENOMEM);
	printf("16 MiB guest: %s\n", err.msg);
	mem_free(small);
	mem_free(mem);
	free(k);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		return test_real(argv[1]) || test_failures ? 1 : (printf("ok\n"), 0);
	test_fake_ok();
	test_fake_32bit_entry();
	test_fake_errors();
	/* reading files: missing, directory */
	uint8_t *buf;
	size_t len;
	CHECK(loader_read_file("/nonexistent/vmlinuz", 1 << 20, &buf, &len) == -ENOENT);
	CHECK(loader_read_file("/", 1 << 20, &buf, &len) == -EISDIR);
	CHECK(loader_read_file("/proc/self/exe", 16, &buf, &len) == -EFBIG);
	TEST_MAIN_END();
}

/*
 * Multiboot (v1) loader, per the Multiboot Specification 0.6.96, loading
 * as QEMU's -kernel does (hw/i386/multiboot.c): ELF PT_LOAD segments at
 * their physical addresses, or the a.out-kludge addresses of header flag
 * 16; modules page-aligned after the kernel; the info structure, memory
 * map and strings in [PC_MB_INFO, PC_MB_INFO_END).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "machine/boot.h"

#define MB_MAGIC 0x1badb002u
#define MB_BOOT_MAGIC 0x2badb002u
#define MB_SEARCH 8192
#define MB_FLAG_PAGE_ALIGN (1u << 0)
#define MB_FLAG_MEMINFO (1u << 1)
#define MB_FLAG_VIDEO (1u << 2)
#define MB_FLAG_AOUT (1u << 16)
#define MB_KNOWN_REQUIRED (MB_FLAG_PAGE_ALIGN | MB_FLAG_MEMINFO | MB_FLAG_VIDEO)

/* info flags */
#define MBI_MEM (1u << 0)
#define MBI_CMDLINE (1u << 2)
#define MBI_MODS (1u << 3)
#define MBI_MMAP (1u << 6)
#define MBI_LOADER_NAME (1u << 9)
#define MBI_SIZE 88

#define MAX_PHDRS 64

/* Offset of a valid header, or -1. */
static long find_header(const uint8_t *buf, size_t len)
{
	size_t end = MIN(len, (size_t)MB_SEARCH);
	for (size_t off = 0; off + 12 <= end; off += 4) {
		uint32_t magic = rd32(buf + off), flags = rd32(buf + off + 4);
		if (magic == MB_MAGIC && (uint32_t)(magic + flags + rd32(buf + off + 8)) == 0)
			return (long)off;
	}
	return -1;
}

bool multiboot_detect(const uint8_t *buf, size_t len)
{
	return find_header(buf, len) >= 0;
}

/* Checks that [addr, addr + len) is RAM the guest may use (not the boot
 * data area below 1 MiB). */
static bool load_range_ok(const struct mem *mem, uint64_t addr, uint64_t len)
{
	if (len == 0)
		return true;
	return addr >= PC_HIGH_MEM && addr + len > addr && mem_is_ram(mem, addr, len);
}

static int load_elf(struct mem *mem, const uint8_t *k, size_t klen, uint64_t *entry,
		    uint64_t *end, struct loader_error *err)
{
	if (klen < 52 || memcmp(k, "\x7f" "ELF", 4))
		return loader_fail(err, -ENOEXEC,
				   "multiboot header without the a.out flag, and not an ELF file");
	bool is64 = k[4] == 2;
	if ((k[4] != 1 && k[4] != 2) || k[5] != 1)
		return loader_fail(err, -ENOEXEC, "not a little-endian ELF32/ELF64 file");
	uint16_t type = rd16(k + 16), machine = rd16(k + 18);
	if (type != 2)
		return loader_fail(err, -ENOEXEC, "ELF file is not an executable (type %u)", type);
	if (machine != (is64 ? 62 : 3))
		return loader_fail(err, -ENOEXEC, "ELF machine %u is not x86", machine);
	uint64_t e_entry, phoff;
	uint16_t phentsize, phnum;
	if (is64) {
		if (klen < 64)
			return loader_fail(err, -ENOEXEC, "ELF64 header is truncated");
		e_entry = rd64(k + 24);
		phoff = rd64(k + 32);
		phentsize = rd16(k + 54);
		phnum = rd16(k + 56);
	} else {
		e_entry = rd32(k + 24);
		phoff = rd32(k + 28);
		phentsize = rd16(k + 42);
		phnum = rd16(k + 44);
	}
	if (phentsize < (is64 ? 56 : 32) || phnum == 0 || phnum > MAX_PHDRS ||
	    phoff > klen || (uint64_t)phentsize * phnum > klen - phoff)
		return loader_fail(err, -ENOEXEC, "ELF program headers are missing or out of bounds");
	bool have_entry = false;
	uint64_t max_end = 0;
	unsigned loaded = 0;
	for (unsigned i = 0; i < phnum; i++) {
		const uint8_t *ph = k + phoff + (uint64_t)i * phentsize;
		uint32_t p_type = rd32(ph);
		uint64_t off, vaddr, paddr, filesz, memsz;
		if (is64) {
			off = rd64(ph + 8);
			vaddr = rd64(ph + 16);
			paddr = rd64(ph + 24);
			filesz = rd64(ph + 32);
			memsz = rd64(ph + 40);
		} else {
			off = rd32(ph + 4);
			vaddr = rd32(ph + 8);
			paddr = rd32(ph + 12);
			filesz = rd32(ph + 16);
			memsz = rd32(ph + 20);
		}
		if (p_type != 1 || memsz == 0) /* PT_LOAD */
			continue;
		if (filesz > memsz || off > klen || filesz > klen - off)
			return loader_fail(err, -ENOEXEC,
					   "ELF segment %u lies outside the file or is inconsistent", i);
		if (!load_range_ok(mem, paddr, memsz) || paddr + memsz > MEM_PC_4G)
			return loader_fail(err, -ENOMEM,
					   "ELF segment %u [0x%llx, 0x%llx) is not in guest RAM above 1 MiB "
					   "and below 4 GiB; use a larger --memory or relink the kernel",
					   i, (unsigned long long)paddr, (unsigned long long)(paddr + memsz));
		int ret = mem_write(mem, paddr, k + off, filesz);
		if (!ret)
			ret = mem_fill(mem, paddr + filesz, 0, memsz - filesz);
		if (ret)
			return loader_fail(err, ret, "cannot write ELF segment %u", i);
		if (!have_entry && e_entry >= vaddr && e_entry - vaddr < memsz) {
			*entry = e_entry - vaddr + paddr; /* entry given as a virtual address */
			have_entry = true;
		}
		max_end = MAX(max_end, paddr + memsz);
		loaded++;
	}
	if (!loaded)
		return loader_fail(err, -ENOEXEC, "ELF file has no loadable segment");
	if (!have_entry)
		*entry = e_entry;
	if (*entry >= MEM_PC_4G)
		return loader_fail(err, -ENOEXEC, "entry point 0x%llx is above 4 GiB",
				   (unsigned long long)*entry);
	*end = max_end;
	return 0;
}

static int load_aout(struct mem *mem, const uint8_t *k, size_t klen, size_t hdr_off,
		     uint64_t *entry, uint64_t *end, struct loader_error *err)
{
	const uint8_t *h = k + hdr_off;
	if (hdr_off + 32 > klen)
		return loader_fail(err, -ENOEXEC, "multiboot header is truncated");
	uint32_t header_addr = rd32(h + 12), load_addr = rd32(h + 16);
	uint32_t load_end = rd32(h + 20), bss_end = rd32(h + 24), entry_addr = rd32(h + 28);
	if (header_addr < load_addr || header_addr - load_addr > hdr_off)
		return loader_fail(err, -ENOEXEC,
				   "multiboot header_addr 0x%x is inconsistent with load_addr 0x%x",
				   header_addr, load_addr);
	uint64_t file_off = hdr_off - (header_addr - load_addr);
	uint64_t len = load_end ? (uint64_t)load_end - load_addr : klen - file_off;
	if (load_end && load_end < load_addr)
		return loader_fail(err, -ENOEXEC, "multiboot load_end_addr is below load_addr");
	if (len > klen - file_off)
		return loader_fail(err, -ENOEXEC,
				   "multiboot load range needs %llu bytes of the file, it has %llu",
				   (unsigned long long)len, (unsigned long long)(klen - file_off));
	uint64_t mem_end = load_addr + len;
	if (bss_end && bss_end > mem_end)
		mem_end = bss_end;
	if (!load_range_ok(mem, load_addr, mem_end - load_addr))
		return loader_fail(err, -ENOMEM,
				   "kernel range [0x%x, 0x%llx) is not in guest RAM above 1 MiB; use a "
				   "larger --memory", load_addr, (unsigned long long)mem_end);
	int ret = mem_write(mem, load_addr, k + file_off, len);
	if (!ret)
		ret = mem_fill(mem, load_addr + len, 0, mem_end - load_addr - len);
	if (ret)
		return loader_fail(err, ret, "cannot write the kernel into guest memory");
	*entry = entry_addr;
	*end = mem_end;
	return 0;
}

/* A bump allocator over the info area. */
struct info_area {
	uint8_t buf[PC_MB_INFO_END - PC_MB_INFO];
	size_t used;
};

static int64_t area_put(struct info_area *a, const void *data, size_t len, size_t align)
{
	size_t off = ALIGN_UP(a->used, align);
	if (off > sizeof(a->buf) || len > sizeof(a->buf) - off)
		return -E2BIG;
	memcpy(a->buf + off, data, len);
	a->used = off + len;
	return (int64_t)(PC_MB_INFO + off);
}

static int64_t area_put_str2(struct info_area *a, const char *s1, const char *s2)
{
	size_t l1 = strlen(s1), l2 = s2 ? strlen(s2) : 0;
	size_t off = a->used;
	if (l1 + l2 + 2 > sizeof(a->buf) - off)
		return -E2BIG;
	memcpy(a->buf + off, s1, l1);
	size_t n = l1;
	if (s2 && l2) {
		a->buf[off + n++] = ' ';
		memcpy(a->buf + off + n, s2, l2);
		n += l2;
	}
	a->buf[off + n++] = 0;
	a->used = off + n;
	return (int64_t)(PC_MB_INFO + off);
}

int multiboot_load(struct mem *mem, const struct multiboot_boot *boot,
		   struct boot_cpu_state *cpu, struct loader_error *err)
{
	static struct info_area zero_area;
	long hoff = find_header(boot->kernel, boot->kernel_len);
	if (hoff < 0)
		return loader_fail(err, -ENOEXEC,
				   "no multiboot header (magic 0x1badb002 with a valid checksum) in the "
				   "first 8 KiB; use a bzImage or a multiboot kernel");
	uint32_t flags = rd32(boot->kernel + hoff + 4);
	if (flags & 0xffff & ~MB_KNOWN_REQUIRED)
		return loader_fail(err, -ENOEXEC,
				   "multiboot header requires features maquina does not provide "
				   "(flags 0x%x)", flags & 0xffff & ~MB_KNOWN_REQUIRED);
	uint64_t entry = 0, end = 0;
	int ret = (flags & MB_FLAG_AOUT)
			  ? load_aout(mem, boot->kernel, boot->kernel_len, (size_t)hoff, &entry, &end, err)
			  : load_elf(mem, boot->kernel, boot->kernel_len, &entry, &end, err);
	if (ret)
		return ret;

	struct info_area *a = malloc(sizeof(*a));
	if (!a)
		return loader_fail(err, -ENOMEM, "out of memory");
	*a = zero_area;
	uint8_t mbi[MBI_SIZE] = { 0 };
	a->used = MBI_SIZE;
	uint32_t iflags = MBI_MEM | MBI_CMDLINE | MBI_MMAP | MBI_LOADER_NAME;
	uint64_t lowmem = mem_lowmem_end(mem);
	wr32(mbi + 4, 640);
	wr32(mbi + 8, (uint32_t)MIN((lowmem - PC_HIGH_MEM) / 1024, 0xffffffffull));

	int64_t s = area_put_str2(a, boot->kernel_name ? boot->kernel_name : "kernel", boot->cmdline);
	if (s < 0)
		goto too_big;
	wr32(mbi + 16, (uint32_t)s);
	s = area_put_str2(a, "maquina", NULL);
	if (s < 0)
		goto too_big;
	wr32(mbi + 64, (uint32_t)s);

	/* memory map: entries of size(4, excluded from itself) base len type */
	size_t mmap_start = ALIGN_UP(a->used, 4), mmap_len = 0;
	for (unsigned i = 0; boot->e820 && i < boot->e820->count; i++) {
		uint8_t e[24];
		wr32(e, 20);
		wr64(e + 4, boot->e820->e[i].addr);
		wr64(e + 12, boot->e820->e[i].size);
		wr32(e + 20, boot->e820->e[i].type);
		if (area_put(a, e, 24, 4) < 0)
			goto too_big;
		mmap_len += 24;
	}
	wr32(mbi + 44, (uint32_t)mmap_len);
	wr32(mbi + 48, (uint32_t)(PC_MB_INFO + mmap_start));

	/* modules, page-aligned after the kernel */
	if (boot->nr_modules) {
		if (boot->nr_modules > 64) {
			free(a);
			return loader_fail(err, -E2BIG, "too many modules (%u, at most 64)",
					   boot->nr_modules);
		}
		uint8_t list[64 * 16];
		uint64_t addr = ALIGN_UP(end, MEM_PAGE_SIZE);
		for (unsigned i = 0; i < boot->nr_modules; i++) {
			const struct mb_module *md = &boot->modules[i];
			if (!load_range_ok(mem, addr, md->len ? md->len : 1) ||
			    addr + md->len > MEM_PC_4G) {
				free(a);
				return loader_fail(err, -ENOMEM,
						   "guest memory is too small for the kernel and module %u "
						   "(%zu bytes at 0x%llx); use a larger --memory", i, md->len,
						   (unsigned long long)addr);
			}
			if (md->len && mem_write(mem, addr, md->data, md->len)) {
				free(a);
				return loader_fail(err, -EFAULT, "cannot write module %u", i);
			}
			s = area_put_str2(a, md->cmdline ? md->cmdline : "", NULL);
			if (s < 0)
				goto too_big;
			wr32(list + i * 16, (uint32_t)addr);
			wr32(list + i * 16 + 4, (uint32_t)(addr + md->len));
			wr32(list + i * 16 + 8, (uint32_t)s);
			wr32(list + i * 16 + 12, 0);
			addr = ALIGN_UP(addr + md->len, MEM_PAGE_SIZE);
		}
		s = area_put(a, list, boot->nr_modules * 16, 4);
		if (s < 0)
			goto too_big;
		iflags |= MBI_MODS;
		wr32(mbi + 20, boot->nr_modules);
		wr32(mbi + 24, (uint32_t)s);
	}
	wr32(mbi, iflags);
	memcpy(a->buf, mbi, MBI_SIZE);
	ret = mem_write(mem, PC_MB_INFO, a->buf, a->used);
	free(a);
	if (!ret)
		ret = boot_setup_cpu(mem, cpu, BOOT_MODE_PROTECTED32);
	if (ret)
		return loader_fail(err, ret, "cannot write the multiboot information");
	cpu->rip = entry;
	cpu->rax = MB_BOOT_MAGIC;
	cpu->rbx = PC_MB_INFO;
	return 0;

too_big:
	free(a);
	return loader_fail(err, -E2BIG,
			   "command line, memory map and module names do not fit in the %llu-byte "
			   "multiboot information area; shorten them",
			   (unsigned long long)(PC_MB_INFO_END - PC_MB_INFO));
}

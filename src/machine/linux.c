/*
 * Linux bzImage loader, per Documentation/arch/x86/boot.rst (the "64-bit
 * boot protocol" and "32-bit boot protocol" sections) and zero-page.rst.
 * The real-mode setup code is not run: the loader builds boot_params
 * itself and enters the protected-mode kernel directly.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "machine/boot.h"

/* setup header offsets (in the file and in boot_params) */
#define HDR_SETUP_SECTS 0x1f1
#define HDR_VID_MODE 0x1fa
#define HDR_BOOT_FLAG 0x1fe
#define HDR_JUMP 0x200
#define HDR_MAGIC 0x202
#define HDR_VERSION 0x206
#define HDR_TYPE_OF_LOADER 0x210
#define HDR_LOADFLAGS 0x211
#define HDR_CODE32_START 0x214
#define HDR_RAMDISK_IMAGE 0x218
#define HDR_RAMDISK_SIZE 0x21c
#define HDR_HEAP_END_PTR 0x224
#define HDR_CMD_LINE_PTR 0x228
#define HDR_INITRD_ADDR_MAX 0x22c
#define HDR_KERNEL_ALIGNMENT 0x230
#define HDR_RELOCATABLE 0x234
#define HDR_XLOADFLAGS 0x236
#define HDR_CMDLINE_SIZE 0x238
#define HDR_SETUP_DATA 0x250
#define HDR_PREF_ADDRESS 0x258
#define HDR_INIT_SIZE 0x260
#define HDR_END_MIN 0x264 /* what a 2.10+ header must reach */
/* boot_params */
#define BP_ACPI_RSDP 0x070
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE 0x0c4
#define BP_EXT_CMD_LINE_PTR 0x0c8
#define BP_E820_ENTRIES 0x1e8
#define BP_E820_TABLE 0x2d0
#define BP_E820_MAX 128
#define BP_SIZE 4096

#define LOADED_HIGH 0x01
#define CAN_USE_HEAP 0x80
#define XLF_KERNEL_64 0x01

int loader_read_file(const char *path, uint64_t max_bytes, uint8_t **buf, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	int ret = 0;
	uint8_t *p = NULL;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		ret = -EISDIR;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -EINVAL;
		goto out;
	}
	if ((uint64_t)st.st_size > max_bytes) {
		ret = -EFBIG;
		goto out;
	}
	size_t size = (size_t)st.st_size, got = 0;
	p = malloc(size ? size : 1);
	if (!p) {
		ret = -ENOMEM;
		goto out;
	}
	while (got < size) {
		ssize_t n = read(fd, p + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out;
		}
		if (n == 0)
			break; /* shrank under us: take what is there */
		got += (size_t)n;
	}
	*buf = p;
	*len = got;
	p = NULL;
out:
	free(p);
	close(fd);
	return ret;
}

bool linux_is_bzimage(const uint8_t *buf, size_t len)
{
	return len >= 0x210 && rd16(buf + HDR_BOOT_FLAG) == 0xaa55 &&
	       !memcmp(buf + HDR_MAGIC, "HdrS", 4);
}

int linux_load(struct mem *mem, const struct linux_boot *boot, struct boot_cpu_state *cpu,
	       struct linux_info *info, struct loader_error *err)
{
	const uint8_t *k = boot->kernel;
	size_t klen = boot->kernel_len;
	struct linux_info li = { 0 };

	if (!linux_is_bzimage(k, klen))
		return loader_fail(err, -ENOEXEC,
				   "not a Linux bzImage (no boot sector signature 0xaa55 and "
				   "'HdrS' header magic); use a bzImage (vmlinuz) or a multiboot ELF kernel");
	li.version = rd16(k + HDR_VERSION);
	if (li.version < 0x0206)
		return loader_fail(err, -ENOEXEC,
				   "boot protocol %u.%02u is too old: maquina needs 2.06 or newer "
				   "(Linux 2.6.22+)", li.version >> 8, li.version & 0xff);
	/* the setup header ends at 0x202 + the byte at 0x201 */
	size_t hdr_end = 0x202 + k[HDR_JUMP + 1];
	if (hdr_end > klen || hdr_end < HDR_CMDLINE_SIZE + 4 ||
	    (li.version >= 0x020a && hdr_end < HDR_END_MIN))
		return loader_fail(err, -ENOEXEC, "setup header is truncated (ends at 0x%zx)", hdr_end);
	if (!(k[HDR_LOADFLAGS] & LOADED_HIGH))
		return loader_fail(err, -ENOEXEC,
				   "this is a zImage (loaded low); only bzImage kernels are supported");
	unsigned setup_sects = k[HDR_SETUP_SECTS] ? k[HDR_SETUP_SECTS] : 4;
	li.setup_bytes = (setup_sects + 1) * 512;
	if (li.setup_bytes >= klen)
		return loader_fail(err, -ENOEXEC,
				   "file is truncated: %zu bytes, but the setup code alone takes %u",
				   klen, li.setup_bytes);
	uint64_t pm_len = klen - li.setup_bytes;
	li.entry64 = li.version >= 0x020c && (k[HDR_XLOADFLAGS] & XLF_KERNEL_64);
	li.cmdline_max = rd32(k + HDR_CMDLINE_SIZE);

	/* where the kernel runs and how much it needs there */
	li.load_addr = PC_HIGH_MEM;
	uint64_t run_addr = li.load_addr, init_size = pm_len;
	if (li.version >= 0x020a) {
		uint64_t pref = rd64(k + HDR_PREF_ADDRESS);
		uint32_t align = rd32(k + HDR_KERNEL_ALIGNMENT);
		init_size = MAX(init_size, rd32(k + HDR_INIT_SIZE));
		if (k[HDR_RELOCATABLE] && align && !(align & (align - 1)))
			run_addr = MAX(ALIGN_UP(li.load_addr, (uint64_t)align), pref);
		else
			run_addr = pref;
		if (run_addr < li.load_addr || run_addr > MEM_PC_4G)
			return loader_fail(err, -ENOEXEC,
					   "the kernel wants to run at 0x%llx, which maquina cannot provide",
					   (unsigned long long)run_addr);
	}
	li.kernel_end = MAX(li.load_addr + pm_len, run_addr + init_size);
	uint64_t lowmem = mem_lowmem_end(mem);
	if (li.kernel_end > lowmem)
		return loader_fail(err, -ENOMEM,
				   "guest memory is too small for this kernel: it needs %llu MiB "
				   "below 4 GiB, the guest has %llu MiB there; use a larger --memory",
				   (unsigned long long)((li.kernel_end + (1 << 20) - 1) >> 20),
				   (unsigned long long)(lowmem >> 20));

	/* command line */
	const char *cmdline = boot->cmdline ? boot->cmdline : "";
	size_t cmd_len = strlen(cmdline);
	uint64_t cmd_max = MIN((uint64_t)li.cmdline_max, PC_CMDLINE_MAX - 1);
	if (cmd_len > cmd_max)
		return loader_fail(err, -E2BIG,
				   "kernel command line is %zu bytes, but this kernel accepts at most "
				   "%llu; shorten --append", cmd_len, (unsigned long long)cmd_max);

	/* initrd: as high as allowed, above the kernel */
	uint64_t initrd_addr = 0;
	if (boot->initrd && boot->initrd_len) {
		uint64_t max = rd32(k + HDR_INITRD_ADDR_MAX);
		uint64_t top = MIN(max + 1, lowmem);
		if (boot->initrd_len > top)
			top = 0;
		else
			initrd_addr = ALIGN_DOWN(top - boot->initrd_len, MEM_PAGE_SIZE);
		if (!top || initrd_addr < ALIGN_UP(li.kernel_end, MEM_PAGE_SIZE))
			return loader_fail(err, -ENOMEM,
					   "guest memory is too small for the kernel and the initrd: the "
					   "kernel needs up to %llu MiB, the initrd %llu MiB more (and must "
					   "lie below 0x%llx); use a larger --memory",
					   (unsigned long long)((li.kernel_end + (1 << 20) - 1) >> 20),
					   (unsigned long long)((boot->initrd_len + (1 << 20) - 1) >> 20),
					   (unsigned long long)(max + 1));
		li.initrd_addr = initrd_addr;
	}

	/* boot_params */
	uint8_t bp[BP_SIZE];
	memset(bp, 0, sizeof(bp));
	memcpy(bp + HDR_SETUP_SECTS, k + HDR_SETUP_SECTS,
	       MIN(hdr_end, (size_t)BP_E820_TABLE) - HDR_SETUP_SECTS);
	wr16(bp + HDR_VID_MODE, 0xffff); /* "normal" */
	bp[HDR_TYPE_OF_LOADER] = 0xff;	 /* undefined loader */
	bp[HDR_LOADFLAGS] = (uint8_t)((bp[HDR_LOADFLAGS] & ~0x20) | CAN_USE_HEAP); /* not QUIET */
	wr16(bp + HDR_HEAP_END_PTR, 0xfe00);
	wr32(bp + HDR_CMD_LINE_PTR, (uint32_t)PC_CMDLINE);
	if (hdr_end > HDR_SETUP_DATA)
		wr64(bp + HDR_SETUP_DATA, 0); /* no setup_data list: never the file's */
	wr32(bp + BP_EXT_CMD_LINE_PTR, 0);
	if (initrd_addr) {
		wr32(bp + HDR_RAMDISK_IMAGE, (uint32_t)initrd_addr);
		wr32(bp + HDR_RAMDISK_SIZE, (uint32_t)boot->initrd_len);
		wr32(bp + BP_EXT_RAMDISK_IMAGE, (uint32_t)(initrd_addr >> 32));
		wr32(bp + BP_EXT_RAMDISK_SIZE, (uint32_t)((uint64_t)boot->initrd_len >> 32));
	} else {
		wr32(bp + HDR_RAMDISK_IMAGE, 0);
		wr32(bp + HDR_RAMDISK_SIZE, 0);
	}
	if (li.version >= 0x020e && boot->rsdp_addr)
		wr64(bp + BP_ACPI_RSDP, boot->rsdp_addr);
	unsigned n = 0;
	for (unsigned i = 0; boot->e820 && i < boot->e820->count && n < BP_E820_MAX; i++, n++) {
		uint8_t *e = bp + BP_E820_TABLE + n * 20;
		wr64(e, boot->e820->e[i].addr);
		wr64(e + 8, boot->e820->e[i].size);
		wr32(e + 16, boot->e820->e[i].type);
	}
	bp[BP_E820_ENTRIES] = (uint8_t)n;
	if (!li.entry64)
		wr32(bp + HDR_CODE32_START, (uint32_t)li.load_addr);

	/* into guest memory */
	int ret = mem_write(mem, li.load_addr, k + li.setup_bytes, pm_len);
	if (!ret)
		ret = mem_write(mem, PC_CMDLINE, cmdline, cmd_len + 1);
	if (!ret && initrd_addr)
		ret = mem_write(mem, initrd_addr, boot->initrd, boot->initrd_len);
	if (!ret)
		ret = mem_write(mem, PC_ZERO_PAGE, bp, sizeof(bp));
	if (!ret)
		ret = boot_setup_cpu(mem, cpu, li.entry64 ? BOOT_MODE_LONG64 : BOOT_MODE_PROTECTED32);
	if (ret)
		return loader_fail(err, ret, "cannot write the kernel into guest memory");
	cpu->rsi = PC_ZERO_PAGE;
	cpu->rip = li.entry64 ? li.load_addr + 0x200 : li.load_addr;
	if (info)
		*info = li;
	return 0;
}

/*
 * maquina run-user: runs a static x86-64 Linux program on the software CPU
 * with a small Linux system-call layer (the calls a static glibc or a
 * freestanding program makes: I/O on inherited descriptors, memory, time,
 * exit).  It is the demo of the CPU, the harness of its benchmarks, and a
 * way to try the interpreter on real compiled code without a kernel.
 *
 * Guest memory is a list of regions (ELF segments, heap, mmap areas,
 * stack), each backed by host memory; the CPU reaches it through
 * x86_mem_ops.page_ptr.
 */
#include "cli/cli.h"
#include "core/core.h"
#include "cpu/x86/x86.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096ull
#define MAX_REGIONS 256
#define STACK_TOP 0x7ffffffff000ull
#define STACK_SIZE (8ull << 20)
#define MMAP_TOP 0x7f0000000000ull
#define HEAP_RESERVE (1ull << 30)

struct region {
	uint64_t start, len; /* guest range, page aligned */
	uint8_t *host;
	bool writable;
};

struct uproc {
	struct region regions[MAX_REGIONS];
	unsigned nregions;
	uint64_t brk_start, brk_cur;
	struct region *heap;
	uint64_t mmap_next;
	struct x86_cpu *cpu;
	bool exited;
	int exit_status;
};

static struct region *find_region(struct uproc *p, uint64_t gva)
{
	for (unsigned k = 0; k < p->nregions; k++) {
		struct region *r = &p->regions[k];
		if (gva >= r->start && gva - r->start < r->len)
			return r;
	}
	return NULL;
}

static void *page_ptr(void *opaque, uint64_t gpa, bool *writable)
{
	struct uproc *p = opaque;
	struct region *r = find_region(p, gpa);
	if (!r)
		return NULL;
	*writable = r->writable;
	return r->host + (gpa - r->start);
}

static int mmio_read(void *opaque, uint64_t gpa, unsigned size, uint64_t *val)
{
	(void)opaque; (void)gpa; (void)size; (void)val;
	return -EFAULT; /* no devices: an access outside the regions is a #PF */
}

static int mmio_write(void *opaque, uint64_t gpa, unsigned size, uint64_t val)
{
	(void)opaque; (void)gpa; (void)size; (void)val;
	return -EFAULT;
}

static const struct x86_mem_ops uproc_mem_ops = { page_ptr, mmio_read, mmio_write };

static bool overlaps(struct uproc *p, uint64_t start, uint64_t len)
{
	for (unsigned k = 0; k < p->nregions; k++) {
		struct region *r = &p->regions[k];
		if (start < r->start + r->len && r->start < start + len)
			return true;
	}
	return false;
}

/* Adds a zeroed region [start, start+len). */
static struct region *add_region(struct uproc *p, uint64_t start, uint64_t len, bool writable)
{
	if (p->nregions == MAX_REGIONS || overlaps(p, start, len))
		return NULL;
	void *host = mmap(NULL, len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (host == MAP_FAILED)
		return NULL;
	struct region *r = &p->regions[p->nregions++];
	r->start = start;
	r->len = len;
	r->host = host;
	r->writable = writable;
	return r;
}

static int guest_write(struct uproc *p, uint64_t gva, const void *buf, size_t len)
{
	const uint8_t *b = buf;
	while (len) {
		struct region *r = find_region(p, gva);
		if (!r)
			return -EFAULT;
		size_t chunk = MIN(len, r->start + r->len - gva);
		memcpy(r->host + (gva - r->start), b, chunk);
		b += chunk;
		gva += chunk;
		len -= chunk;
	}
	return 0;
}

/* Returns a host pointer to [gva, gva+len) if it lies in one region. */
static void *guest_span(struct uproc *p, uint64_t gva, uint64_t len)
{
	struct region *r = find_region(p, gva);
	if (!r || len > r->start + r->len - gva)
		return NULL;
	return r->host + (gva - r->start);
}

static int load_elf(struct uproc *p, const char *path, uint64_t *entry, uint64_t *phdr_addr,
		    unsigned *phnum)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	uint8_t *img;
	int ret = -ENOEXEC;

	if (fd < 0) {
		log_error("run-user: cannot open %s: %s", path, strerror(errno));
		return -errno;
	}
	if (fstat(fd, &st) < 0 || st.st_size < (off_t)sizeof(Elf64_Ehdr)) {
		log_error("run-user: %s: too small to be an ELF program", path);
		close(fd);
		return -ENOEXEC;
	}
	img = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (img == MAP_FAILED) {
		log_error("run-user: cannot read %s: %s", path, strerror(errno));
		return -EIO;
	}
	uint64_t size = (uint64_t)st.st_size;
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_machine != EM_X86_64) {
		log_error("run-user: %s is not an x86-64 ELF program", path);
		goto out;
	}
	if (eh->e_type != ET_EXEC) {
		log_error("run-user: %s is not a static non-PIE executable (link it with -static -no-pie)", path);
		goto out;
	}
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phoff > size ||
	    (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > size - eh->e_phoff) {
		log_error("run-user: %s: program headers lie outside the file", path);
		goto out;
	}
	const Elf64_Phdr *ph = (const Elf64_Phdr *)(img + eh->e_phoff);
	uint64_t max_end = 0;
	*phdr_addr = 0;
	for (unsigned k = 0; k < eh->e_phnum; k++) {
		if (ph[k].p_type == PT_INTERP) {
			log_error("run-user: %s is dynamically linked; link it with -static", path);
			goto out;
		}
		if (ph[k].p_type != PT_LOAD)
			continue;
		uint64_t va = ph[k].p_vaddr, memsz = ph[k].p_memsz, filesz = ph[k].p_filesz;
		if (filesz > memsz || ph[k].p_offset > size || filesz > size - ph[k].p_offset ||
		    va > MMAP_TOP || memsz > MMAP_TOP - va) {
			log_error("run-user: %s: segment %u is malformed", path, k);
			goto out;
		}
		uint64_t start = va & ~(PAGE - 1), end = ALIGN_UP(va + memsz, PAGE);
		/* Segments may share a page at their edges: extend what exists. */
		for (uint64_t pg = start; pg < end; pg += PAGE) {
			if (find_region(p, pg))
				continue;
			uint64_t run = pg;
			while (run < end && !find_region(p, run))
				run += PAGE;
			if (!add_region(p, pg, run - pg, true)) {
				log_error("run-user: %s: cannot map segment %u", path, k);
				goto out;
			}
			pg = run - PAGE;
		}
		if (guest_write(p, va, img + ph[k].p_offset, filesz) < 0)
			goto out;
		if (ph[k].p_offset <= eh->e_phoff &&
		    eh->e_phoff - ph[k].p_offset < filesz)
			*phdr_addr = va + (eh->e_phoff - ph[k].p_offset);
		max_end = MAX(max_end, end);
	}
	if (!max_end) {
		log_error("run-user: %s has nothing to load", path);
		goto out;
	}
	*entry = eh->e_entry;
	*phnum = eh->e_phnum;
	p->brk_start = p->brk_cur = max_end;
	p->heap = add_region(p, max_end, HEAP_RESERVE, true);
	if (!p->heap) {
		log_error("run-user: cannot reserve the heap");
		goto out;
	}
	p->heap->len = 0; /* grows with brk */
	ret = 0;
out:
	munmap(img, size);
	return ret;
}

static uint64_t setup_stack(struct uproc *p, int argc, char **argv, uint64_t entry,
			    uint64_t phdr, unsigned phnum)
{
	struct region *r = add_region(p, STACK_TOP - STACK_SIZE, STACK_SIZE, true);
	if (!r)
		return 0;
	uint64_t sp = STACK_TOP;
	uint64_t argv_addr[64];
	int n = MIN(argc, 63);

	for (int k = n - 1; k >= 0; k--) {
		size_t len = strlen(argv[k]) + 1;
		sp -= len;
		guest_write(p, sp, argv[k], len);
		argv_addr[k] = sp;
	}
	uint8_t rnd[16];
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		memset(rnd, 0x5a, sizeof(rnd));
	sp -= 16;
	uint64_t rnd_addr = sp;
	guest_write(p, sp, rnd, 16);
	sp &= ~15ull;

	uint64_t auxv[] = {
		AT_PHDR, phdr, AT_PHENT, sizeof(Elf64_Phdr), AT_PHNUM, phnum,
		AT_PAGESZ, PAGE, AT_ENTRY, entry, AT_RANDOM, rnd_addr,
		AT_UID, 0, AT_EUID, 0, AT_GID, 0, AT_EGID, 0, AT_SECURE, 0,
		AT_HWCAP, 0, AT_CLKTCK, 100, AT_NULL, 0,
	};
	size_t words = 1 + (size_t)n + 1 + 1 + ARRAY_SIZE(auxv);
	sp -= words * 8;
	sp &= ~15ull;
	uint64_t w = sp, v = (uint64_t)n;
	guest_write(p, w, &v, 8); w += 8;
	for (int k = 0; k < n; k++, w += 8)
		guest_write(p, w, &argv_addr[k], 8);
	v = 0;
	guest_write(p, w, &v, 8); w += 8; /* argv end */
	guest_write(p, w, &v, 8); w += 8; /* envp end */
	guest_write(p, w, auxv, sizeof(auxv));
	return sp;
}

/* Linux x86-64 system call numbers used here. */
enum {
	SYS_read = 0, SYS_write = 1, SYS_close = 3, SYS_fstat = 5, SYS_mmap = 9,
	SYS_mprotect = 10, SYS_munmap = 11, SYS_brk = 12, SYS_rt_sigaction = 13,
	SYS_rt_sigprocmask = 14, SYS_ioctl = 16, SYS_writev = 20, SYS_madvise = 28,
	SYS_getpid = 39, SYS_exit = 60, SYS_uname = 63, SYS_readlink = 89,
	SYS_gettimeofday = 96, SYS_arch_prctl = 158, SYS_gettid = 186, SYS_time = 201,
	SYS_set_tid_address = 218, SYS_clock_gettime = 228, SYS_exit_group = 231,
	SYS_tgkill = 234, SYS_newfstatat = 262, SYS_set_robust_list = 273,
	SYS_prlimit64 = 302, SYS_getrandom = 318, SYS_rseq = 334,
};

static int64_t sys_mmap(struct uproc *p, uint64_t addr, uint64_t len, uint64_t flags, int64_t fd)
{
	if (!len || len > (1ull << 40) || fd != -1 || !(flags & MAP_ANONYMOUS))
		return fd != -1 ? -ENODEV : -EINVAL;
	len = ALIGN_UP(len, PAGE);
	if ((flags & MAP_FIXED) && addr) {
		if (overlaps(p, addr, len))
			return -ENOMEM;
		return add_region(p, addr, len, true) ? (int64_t)addr : -ENOMEM;
	}
	if (p->mmap_next < len + (1ull << 32))
		return -ENOMEM;
	p->mmap_next -= len;
	if (!add_region(p, p->mmap_next, len, true))
		return -ENOMEM;
	return (int64_t)p->mmap_next;
}

static int64_t sys_munmap(struct uproc *p, uint64_t addr, uint64_t len)
{
	for (unsigned k = 0; k < p->nregions; k++) {
		struct region *r = &p->regions[k];
		if (r->start == addr && r != p->heap && ALIGN_UP(len, PAGE) == r->len) {
			munmap(r->host, r->len);
			x86_invalidate_code(p->cpu, r->start, r->len);
			p->regions[k] = p->regions[--p->nregions];
			if (p->heap == &p->regions[p->nregions])
				p->heap = r;
			x86_flush_tlb(p->cpu);
			return 0;
		}
	}
	return 0; /* partial unmaps keep the memory: harmless for a program */
}

static int64_t do_syscall(struct uproc *p, struct x86_state *st)
{
	uint64_t nr = st->gpr[0], a0 = st->gpr[7], a1 = st->gpr[6], a2 = st->gpr[2];
	uint64_t a3 = st->gpr[10];
	void *buf;

	switch (nr) {
	case SYS_read:
		if (!(buf = guest_span(p, a1, a2)))
			return -EFAULT;
		{
			ssize_t n = read((int)a0, buf, a2);
			return n < 0 ? -errno : n;
		}
	case SYS_write:
		if (!(buf = guest_span(p, a1, a2)))
			return -EFAULT;
		{
			ssize_t n = write((int)a0, buf, a2);
			return n < 0 ? -errno : n;
		}
	case SYS_writev: {
		int64_t total = 0;
		for (uint64_t k = 0; k < MIN(a2, 1024u); k++) {
			uint64_t *iov = guest_span(p, a1 + k * 16, 16);
			if (!iov)
				return -EFAULT;
			if (!iov[1])
				continue;
			if (!(buf = guest_span(p, iov[0], iov[1])))
				return -EFAULT;
			ssize_t n = write((int)a0, buf, iov[1]);
			if (n < 0)
				return total ? total : -errno;
			total += n;
		}
		return total;
	}
	case SYS_close: return 0;
	case SYS_fstat:
	case SYS_newfstatat:
		return -ENOSYS;
	case SYS_mmap: return sys_mmap(p, a0, a1, a3, (int64_t)st->gpr[8]);
	case SYS_munmap: return sys_munmap(p, a0, a1);
	case SYS_mprotect: case SYS_madvise: return 0;
	case SYS_brk:
		if (a0 >= p->brk_start && a0 <= p->brk_start + HEAP_RESERVE) {
			p->brk_cur = a0;
			p->heap->len = ALIGN_UP(a0, PAGE) - p->brk_start;
			x86_flush_tlb(p->cpu);
		}
		return (int64_t)p->brk_cur;
	case SYS_rt_sigaction: case SYS_rt_sigprocmask: return 0;
	case SYS_ioctl: return -ENOTTY;
	case SYS_getpid: case SYS_gettid: case SYS_set_tid_address: return 1000;
	case SYS_uname: {
		struct utsname u;
		memset(&u, 0, sizeof(u));
		strcpy(u.sysname, "Linux");
		strcpy(u.nodename, "maquina");
		strcpy(u.release, "6.1.0");
		strcpy(u.version, "#1");
		strcpy(u.machine, "x86_64");
		return guest_write(p, a0, &u, sizeof(u)) < 0 ? -EFAULT : 0;
	}
	case SYS_readlink: return -ENOENT;
	case SYS_arch_prctl:
		if (a0 == 0x1002) { /* ARCH_SET_FS */
			st->seg[4].base = a1;
			return 0;
		}
		if (a0 == 0x1001) { /* ARCH_SET_GS */
			st->seg[5].base = a1;
			return 0;
		}
		return -EINVAL;
	case SYS_clock_gettime: {
		struct timespec ts;
		clock_gettime((clockid_t)a0, &ts);
		return guest_write(p, a1, &ts, sizeof(ts)) < 0 ? -EFAULT : 0;
	}
	case SYS_gettimeofday: {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t tv[2] = { (uint64_t)ts.tv_sec, (uint64_t)ts.tv_nsec / 1000 };
		return (a0 && guest_write(p, a0, tv, 16) < 0) ? -EFAULT : 0;
	}
	case SYS_time: return (int64_t)time(NULL);
	case SYS_exit:
	case SYS_exit_group:
		p->exited = true;
		p->exit_status = (int)(a0 & 0xff);
		return 0;
	case SYS_set_robust_list: case SYS_rseq: return -ENOSYS;
	case SYS_prlimit64: return -ENOSYS;
	case SYS_getrandom:
		if (!(buf = guest_span(p, a0, a1)))
			return -EFAULT;
		return getrandom(buf, a1, 0);
	case SYS_tgkill:
		p->exited = true;
		p->exit_status = 128 + (int)(st->gpr[2] & 0x7f);
		return 0;
	default:
		log_debug("run-user: system call %llu is not implemented (-ENOSYS)", (unsigned long long)nr);
		return -ENOSYS;
	}
}

static const char *vector_name(unsigned v)
{
	static const char *const names[] = {
		"#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow",
		"#BR bound range", "#UD invalid opcode", "#NM device not available",
		"#DF double fault", "?", "#TS invalid TSS", "#NP segment not present",
		"#SS stack fault", "#GP general protection", "#PF page fault", "?",
		"#MF x87 floating-point", "#AC alignment check", "#MC machine check",
		"#XM SIMD floating-point",
	};
	return v < ARRAY_SIZE(names) ? names[v] : "?";
}

static void usage(FILE *f)
{
	fprintf(f, "usage: maquina run-user [--stats] [--step] [--max-insns N] PROGRAM [ARGS...]\n"
		   "Runs a static x86-64 Linux program on maquina's software CPU.\n"
		   "  --stats        print guest instructions, time and instructions per second\n"
		   "  --step         decode one instruction per block (slow; for debugging)\n"
		   "  --max-insns N  stop after about N instructions\n");
}

int cmd_run_user(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "stats", no_argument, NULL, 's' },
		{ "step", no_argument, NULL, 'S' },
		{ "max-insns", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool stats = false, step = false;
	uint64_t max_insns = UINT64_MAX;
	int c;

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 's': stats = true; break;
		case 'S': step = true; break;
		case 'm':
			if (parse_size(optarg, 1, &max_insns) < 0 || !max_insns) {
				log_error("run-user: --max-insns wants a positive number, not '%s'", optarg);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}

	struct uproc *p = calloc(1, sizeof(*p));
	if (!p)
		return 1;
	p->mmap_next = MMAP_TOP;
	uint64_t entry = 0, phdr = 0;
	unsigned phnum = 0;
	if (load_elf(p, argv[optind], &entry, &phdr, &phnum) < 0)
		return 1;
	struct x86_cpu_config cfg = { .user_mode = true, .max_block_insns = step ? 1 : 0 };
	p->cpu = x86_cpu_new(&uproc_mem_ops, p, &cfg);
	if (!p->cpu) {
		log_error("run-user: out of memory");
		return 1;
	}
	uint64_t sp = setup_stack(p, argc - optind, argv + optind, entry, phdr, phnum);
	if (!sp) {
		log_error("run-user: cannot map the stack");
		return 1;
	}
	struct x86_state st;
	x86_get_state(p->cpu, &st);
	st.rip = entry;
	st.gpr[4] = sp;
	x86_set_state(p->cpu, &st);

	uint64_t t0 = clock_ns();
	int status = 0;
	for (;;) {
		struct x86_exit ex;
		uint64_t left = max_insns - MIN(max_insns, x86_icount(p->cpu));
		if (!left) {
			log_error("run-user: stopped after %llu instructions (--max-insns)",
				  (unsigned long long)x86_icount(p->cpu));
			status = 124;
			break;
		}
		x86_run(p->cpu, MIN(left, 1ull << 40), &ex);
		if (ex.reason == X86_EXIT_SYSCALL) {
			x86_get_state(p->cpu, &st);
			int64_t r = do_syscall(p, &st);
			if (p->exited) {
				status = p->exit_status;
				break;
			}
			st.gpr[0] = (uint64_t)r;
			x86_set_state(p->cpu, &st);
			continue;
		}
		if (ex.reason == X86_EXIT_EXCEPTION) {
			x86_get_state(p->cpu, &st);
			if (ex.vector == 14)
				log_error("run-user: the program faulted: %s at rip 0x%llx (address 0x%llx, error code 0x%x)",
					  vector_name(ex.vector), (unsigned long long)st.rip,
					  (unsigned long long)ex.fault_addr, ex.error_code);
			else
				log_error("run-user: the program faulted: %s at rip 0x%llx (error code 0x%x)",
					  vector_name(ex.vector), (unsigned long long)st.rip, ex.error_code);
			status = 128 + 11;
			break;
		}
		if (ex.reason == X86_EXIT_HLT) {
			log_error("run-user: the program executed HLT at ring 3");
			status = 128 + 11;
			break;
		}
	}
	uint64_t ns = clock_ns() - t0;
	if (stats) {
		uint64_t n = x86_icount(p->cpu);
		fprintf(stderr, "maquina: instructions: %llu time_s: %.3f ips: %.0f\n",
			(unsigned long long)n, ns / 1e9, ns ? n * 1e9 / ns : 0.0);
	}
	x86_cpu_free(p->cpu);
	for (unsigned k = 0; k < p->nregions; k++)
		munmap(p->regions[k].host, p->regions[k].start == p->brk_start ? HEAP_RESERVE : p->regions[k].len);
	free(p);
	return status;
}

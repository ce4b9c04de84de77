/*
 * systest: a multiboot kernel that exercises the system-level CPU and the
 * PC's interrupt hardware, printing "ok N - what" / "not ok N - what" on
 * COM1 and returning the number of failures (0: all passed) through the
 * debug-exit port.  Runs in long mode; see boot.S for the start.
 */
#include <stdint.h>

struct frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error, rip, cs, rflags, rsp, ss;
};

extern char isr_table[];
extern uint64_t gdt[], pml4[], pdpt[], pd[];
extern uint32_t mb_magic, mb_info;
extern uint64_t syscall_rax;
extern uint32_t syscall_count;
void syscall_entry(void);
uint32_t compat_roundtrip(void);

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline void wrmsr(uint32_t msr, uint64_t v) { __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32))); }
static inline uint64_t rdmsr(uint32_t msr) { uint32_t a, d; __asm__ volatile("rdmsr" : "=a"(a), "=d"(d) : "c"(msr)); return ((uint64_t)d << 32) | a; }
static inline uint64_t read_cr2(void) { uint64_t v; __asm__ volatile("mov %%cr2, %0" : "=r"(v)); return v; }
static inline uint64_t read_cr3(void) { uint64_t v; __asm__ volatile("mov %%cr3, %0" : "=r"(v)); return v; }
static inline uint64_t rdtsc(void) { uint32_t a, d; __asm__ volatile("rdtsc" : "=a"(a), "=d"(d)); return ((uint64_t)d << 32) | a; }
static inline void invlpg(void *p) { __asm__ volatile("invlpg (%0)" : : "r"(p) : "memory"); }

static void putc_serial(char c)
{
	while (!(inb(0x3fd) & 0x20))
		;
	outb(0x3f8, (uint8_t)c);
}

static void puts_serial(const char *s)
{
	while (*s) {
		if (*s == '\n')
			putc_serial('\r');
		putc_serial(*s++);
	}
}

static void put_hex(uint64_t v)
{
	char b[19];
	b[0] = '0';
	b[1] = 'x';
	for (int k = 0; k < 16; k++)
		b[2 + k] = "0123456789abcdef"[(v >> (60 - 4 * k)) & 15];
	b[18] = 0;
	puts_serial(b);
}

static void put_dec(unsigned v)
{
	char b[12];
	int n = 0;
	do {
		b[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		putc_serial(b[--n]);
}

static unsigned test_no, failures;

static void check(int cond, const char *what)
{
	test_no++;
	if (!cond) {
		failures++;
		puts_serial("not ");
	}
	puts_serial("ok ");
	put_dec(test_no);
	puts_serial(" - ");
	puts_serial(what);
	puts_serial("\n");
}

/* --- interrupts --------------------------------------------------------- */

static volatile uint64_t last_vector = ~0ull, last_error, last_rip, last_cs, last_cr2;
static volatile uint64_t recover_rip;
static volatile unsigned ticks, apic_ticks, int80_count;
static volatile uint64_t user_done_rip;
static uint64_t saved_ksp;

#define LAPIC ((volatile uint32_t *)0xfee00000ull)

void isr_dispatch(struct frame *f)
{
	if (f->vector < 32 || f->vector == 0x80 || f->vector == 0x81) {
		last_vector = f->vector;
		last_error = f->error;
		last_rip = f->rip;
		last_cs = f->cs;
		if (f->vector == 14)
			last_cr2 = read_cr2();
		if (f->vector == 0x80)
			int80_count++;
		if (f->vector == 0x81) {
			/* back from ring 3: resume the kernel where it asked */
			f->cs = 0x08;
			f->ss = 0x10;
			f->rip = user_done_rip;
			f->rsp = f->rsp; /* keep the kernel stack slot below */
			__asm__ volatile("" ::: "memory");
		}
		if (recover_rip) {
			f->rip = recover_rip;
			recover_rip = 0;
		}
		return;
	}
	if (f->vector >= 32 && f->vector < 48) {
		if (f->vector == 32)
			ticks++;
		if (f->vector >= 40)
			outb(0xa0, 0x20);
		outb(0x20, 0x20);
		return;
	}
	if (f->vector == 0x40) {
		apic_ticks++;
		LAPIC[0xb0 / 4] = 0; /* EOI */
	}
}

static struct idt_entry {
	uint16_t off0, sel;
	uint8_t ist, type;
	uint16_t off1;
	uint32_t off2, zero;
} __attribute__((packed)) idt[256];

static struct {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3, iomap;
} __attribute__((packed)) tss;

static uint8_t ist_stack[4096] __attribute__((aligned(16)));
static uint8_t ring0_stack[4096] __attribute__((aligned(16)));

void idt_setup(void)
{
	for (int v = 0; v < 256; v++) {
		uint64_t a = (uint64_t)(isr_table + v * 16);
		idt[v].off0 = (uint16_t)a;
		idt[v].sel = 0x08;
		idt[v].ist = v == 8 ? 1 : 0; /* #DF on its own stack */
		idt[v].type = v == 0x81 ? 0xee : 0x8e; /* 0x81 callable from ring 3 */
		idt[v].off1 = (uint16_t)(a >> 16);
		idt[v].off2 = (uint32_t)(a >> 32);
		idt[v].zero = 0;
	}
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) idtr = { sizeof(idt) - 1, (uint64_t)idt };
	__asm__ volatile("lidt %0" : : "m"(idtr));

	uint64_t t = (uint64_t)&tss;
	tss.rsp[0] = (uint64_t)(ring0_stack + sizeof(ring0_stack));
	tss.ist[0] = (uint64_t)(ist_stack + sizeof(ist_stack));
	tss.iomap = sizeof(tss);
	gdt[6] = (sizeof(tss) - 1) | ((t & 0xffffff) << 16) | (0x89ull << 40) | ((t >> 24 & 0xff) << 56);
	gdt[7] = t >> 32;
	__asm__ volatile("ltr %w0" : : "r"(0x30));
}

/* Runs the instructions in INSNS with a recovery point after them; the
 * exception handler resumes there.  Returns the vector taken, or ~0. */
#define TRY(INSNS, ...)                                                          \
	({                                                                       \
		last_vector = ~0ull;                                             \
		__asm__ volatile("lea 1f(%%rip), %%rax\n\t"                      \
				 "mov %%rax, %[rec]\n\t" INSNS "\n1:"           \
				 : [rec] "=m"(recover_rip)                      \
				 : __VA_ARGS__                                    \
				 : "rax", "rcx", "rdx", "memory");               \
		recover_rip = 0;                                                 \
		last_vector;                                                     \
	})

/* --- page tables for the tests ------------------------------------------ */

static uint64_t pd2[512] __attribute__((aligned(4096)));
static uint64_t pt[512] __attribute__((aligned(4096)));
static uint8_t pages[4][4096] __attribute__((aligned(4096)));

#define TEST_VA 0x40000000ull /* second GiB: PDPT[1] -> pd2 -> pt */

static void map_test(unsigned idx, void *phys, uint64_t flags)
{
	pt[idx] = (uint64_t)phys | flags;
	invlpg((void *)(TEST_VA + idx * 4096ull));
}

/* --- the tests --------------------------------------------------------- */

static void test_exceptions(void)
{
	uint64_t v;

	v = TRY("xor %%edx, %%edx\n\txor %%ecx, %%ecx\n\tmov $1, %%eax\n\tdiv %%ecx", "i"(0));
	check(v == 0, "#DE on division by zero");

	v = TRY("ud2", "i"(0));
	check(v == 6, "#UD on UD2");

	last_vector = ~0ull;
	__asm__ volatile("int3" ::: "memory");
	check(last_vector == 3, "#BP from INT3 returns after the instruction");

	v = TRY("movabs $0x8000000000000000, %%rcx\n\tmov (%%rcx), %%rax", "i"(0));
	check(v == 13 && last_error == 0, "#GP(0) on a non-canonical address");

	int80_count = 0;
	__asm__ volatile("int $0x80" ::: "memory");
	check(int80_count == 1 && last_vector == 0x80, "INT 0x80 through a ring-0 gate");
}

static void test_paging(void)
{
	uint64_t v;

	pdpt[1] = (uint64_t)pd2 | 7;
	pd2[0] = (uint64_t)pt | 7;
	__asm__ volatile("mov %0, %%cr3" : : "r"(read_cr3()) : "memory");

	v = TRY("mov (%[a]), %%rax", [a] "r"(TEST_VA));
	check(v == 14 && last_cr2 == TEST_VA && last_error == 0, "#PF on a not-present page: CR2 and error code");

	map_test(0, pages[0], 3);
	*(volatile uint32_t *)TEST_VA = 0xfeedface;
	check(*(volatile uint32_t *)pages[0] == 0xfeedface, "a 4 KiB mapping writes through to its frame");
	check((pt[0] & 0x60) == 0x60, "accessed and dirty bits set in the PTE");

	map_test(1, pages[1], 1); /* read-only */
	v = TRY("movl $1, (%[a])", [a] "r"(TEST_VA + 4096));
	check(v == 14 && last_error == 3, "#PF on a write to a read-only page with CR0.WP");

	map_test(2, pages[2], 3 | (1ull << 63)); /* NX */
	pages[2][0] = 0xc3; /* ret */
	v = TRY("jmp *%[a]", [a] "r"(TEST_VA + 2 * 4096));
	check(v == 14 && last_error == 0x11 && last_cr2 == TEST_VA + 2 * 4096,
	      "#PF on a fetch from a no-execute page");

	map_test(3, pages[0], 3);
	check(*(volatile uint32_t *)(TEST_VA + 3 * 4096) == 0xfeedface, "two mappings of one frame");
	pages[3][0] = 0x5a;
	pt[3] = (uint64_t)pages[3] | 3; /* remap without INVLPG, then with */
	invlpg((void *)(TEST_VA + 3 * 4096));
	check(*(volatile uint8_t *)(TEST_VA + 3 * 4096) == 0x5a, "INVLPG drops the old translation");

	/* code written through one mapping and run through another */
	map_test(4, pages[2], 3);
	pages[2][0] = 0xb8; /* mov eax, imm32; ret */
	*(uint32_t *)&pages[2][1] = 41;
	pages[2][5] = 0xc3;
	uint32_t (*fn)(void) = (uint32_t (*)(void))(TEST_VA + 4 * 4096);
	uint32_t a = fn();
	*(volatile uint32_t *)(TEST_VA + 4 * 4096 + 1) = 42; /* modify through the alias */
	uint32_t b = fn();
	check(a == 41 && b == 42, "code modified through an alias mapping runs the new bytes");
}

static void test_user_mode(void)
{
	/* STAR: kernel CS 0x08 (SS 0x10); user base 0x18 -> SS 0x23, CS 0x2b */
	wrmsr(0xc0000081, (0x18ull << 48) | (0x08ull << 32));
	wrmsr(0xc0000082, (uint64_t)syscall_entry);
	wrmsr(0xc0000084, 0x200); /* mask IF */
	static uint8_t ustack[4096] __attribute__((aligned(16)));
	/* user code: mov $42, %eax; syscall; mov (kernel page), %eax -> #PF */
	static const uint8_t ucode[] = {
		0xb8, 42, 0, 0, 0, 0x0f, 0x05, /* mov eax, 42; syscall */
		0xcd, 0x81,                    /* int 0x81: back to the kernel */
	};
	map_test(5, pages[1], 7);
	for (unsigned k = 0; k < sizeof(ucode); k++)
		pages[1][k] = ucode[k];
	syscall_count = 0;
	__asm__ volatile(
		"lea 2f(%%rip), %%rax\n\t"
		"mov %%rax, %[done]\n\t"
		"mov %%rsp, %[ksp]\n\t"
		"pushq $0x23\n\t"
		"pushq %[usp]\n\t"
		"pushq $0x202\n\t"
		"pushq $0x2b\n\t"
		"pushq %[uip]\n\t"
		"iretq\n"
		"2:\n\t"
		"mov %[ksp], %%rsp\n\t"
		: [done] "=m"(user_done_rip), [ksp] "=m"(saved_ksp)
		: [usp] "r"(ustack + sizeof(ustack)), [uip] "r"(TEST_VA + 5 * 4096)
		: "rax", "rcx", "r11", "memory");
	__asm__ volatile("mov $0x10, %%ax; mov %%ax, %%ss" ::: "rax");
	check(syscall_count == 1 && syscall_rax == 42, "ring 3 -> SYSCALL -> SYSRETQ round trip");
	check(last_vector == 0x81 && (last_cs & 3) == 3, "INT from ring 3 through a DPL-3 gate, stack from the TSS");
}

static void test_compat_mode(void)
{
	check(compat_roundtrip() == 0x23456789, "far jump to 32-bit compatibility mode and back");
}

static void test_pit_interrupts(void)
{
	/* PIC: vectors 32-47, only IRQ 0 unmasked */
	outb(0x20, 0x11); outb(0xa0, 0x11);
	outb(0x21, 32); outb(0xa1, 40);
	outb(0x21, 4); outb(0xa1, 2);
	outb(0x21, 1); outb(0xa1, 1);
	outb(0x21, 0xfe); outb(0xa1, 0xff);
	/* PIT channel 0: rate generator at 1 kHz */
	outb(0x43, 0x34);
	outb(0x40, (uint8_t)1193); outb(0x40, (uint8_t)(1193 >> 8));
	uint64_t t0 = rdtsc();
	ticks = 0;
	__asm__ volatile("sti");
	while (ticks < 20)
		__asm__ volatile("hlt");
	__asm__ volatile("cli");
	uint64_t dt = rdtsc() - t0;
	check(ticks >= 20, "PIT IRQ 0 wakes HLT, 20 ticks");
	/* 20 ms at the TSC's 1 GHz, with generous slack for a slow host */
	check(dt >= 15000000ull && dt < 2000000000ull, "TSC and PIT agree on the elapsed time");
	outb(0x21, 0xff);
}

static uint64_t pd3[512] __attribute__((aligned(4096)));

static void test_lapic_timer(void)
{
	/* map the APIC page (3-4 GiB is not identity-mapped by boot.S) */
	pdpt[3] = (uint64_t)pd3 | 3;
	pd3[(0xfee00000ull - 0xc0000000ull) >> 21] = 0xfee00000ull | 0x93; /* P W PS PCD */
	__asm__ volatile("mov %0, %%cr3" : : "r"(read_cr3()) : "memory");
	uint64_t base = rdmsr(0x1b);
	check((base & 0xfffff000) == 0xfee00000 && (base & (1 << 11)), "APIC_BASE MSR: enabled at 0xfee00000");
	LAPIC[0xf0 / 4] = 0x1ff;   /* software enable, spurious vector 0xff */
	LAPIC[0x3e0 / 4] = 0xb;    /* divide by 1 */
	LAPIC[0x320 / 4] = 0x40;   /* one-shot, vector 0x40 */
	apic_ticks = 0;
	LAPIC[0x380 / 4] = 1000000; /* 1 ms at 1 GHz */
	__asm__ volatile("sti");
	for (int k = 0; k < 100000 && !apic_ticks; k++)
		__asm__ volatile("hlt");
	__asm__ volatile("cli");
	check(apic_ticks == 1, "LAPIC one-shot timer interrupt");
}

static void test_misc(void)
{
	uint32_t a, b, c, d;
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0), "c"(0));
	check(b == 0x756e6547 && d == 0x49656e69 && c == 0x6c65746e, "CPUID vendor GenuineIntel");
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000001), "c"(0));
	check((d & (1u << 29)) && (d & (1u << 20)), "CPUID: long mode and NX advertised");
	check((rdmsr(0xc0000080) & 0xd01) == 0xd01, "EFER: SCE LME LMA NXE");
	check(mb_magic == 0x2badb002, "multiboot magic in EAX at entry");
	uint64_t v = TRY("mov $0x12345678, %%ecx\n\trdmsr", "i"(0));
	check(v == 13, "#GP on an unknown MSR");
	static char src[300], dst[300];
	for (int k = 0; k < 300; k++)
		src[k] = (char)k;
	__asm__ volatile("rep movsb" : : "S"(src), "D"(dst), "c"(300) : "memory");
	int same = 1;
	for (int k = 0; k < 300; k++)
		same &= dst[k] == src[k];
	check(same, "REP MOVSB");
}

static void test_double_fault(void)
{
	/* A #PF whose handler cannot run (IDT entry 14 not present) becomes
	 * #DF, delivered on IST 1. */
	struct idt_entry saved = idt[14];
	idt[14].type = 0x0e; /* not present */
	uint64_t v = TRY("mov (%[a]), %%rax", [a] "r"(TEST_VA + 100 * 4096));
	idt[14] = saved;
	check(v == 8 && last_error == 0, "#PF with no handler escalates to #DF (IST stack)");
}

int kmain(void)
{
	puts_serial("systest: starting\n");
	test_misc();
	test_exceptions();
	test_paging();
	test_double_fault();
	test_user_mode();
	test_compat_mode();
	test_pit_interrupts();
	test_lapic_timer();
	puts_serial(failures ? "systest: FAILED\n" : "systest: all passed\n");
	return (int)failures;
}

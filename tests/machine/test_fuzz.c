/*
 * Robustness against untrusted input, with a fixed-seed PRNG so failures
 * reproduce: corrupted kernels through both loaders, and random guest
 * port/MMIO traffic plus time jumps against the whole board.  The checks
 * are "no crash, no sanitizer report, and the board still answers".
 */
#include <errno.h>

#include "machine/machine.h"
#include "test.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void fuzz_loaders(void)
{
	struct mem *mem = mem_new_pc(64ull << 20);
	struct e820_map e820;
	pc_e820(mem, &e820);
	static uint8_t img[3 * 4096];
	unsigned ok = 0, refused = 0;
	for (unsigned iter = 0; iter < 3000; iter++) {
		memset(img, 0, sizeof(img));
		size_t len = 512 + next() % (sizeof(img) - 512);
		if (iter & 1) {
			/* bzImage-ish: valid magic, random header fields */
			for (size_t i = 0x1f1; i < 0x270; i++)
				img[i] = (uint8_t)next();
			img[0x1fe] = 0x55;
			img[0x1ff] = 0xaa;
			memcpy(img + 0x202, "HdrS", 4);
			img[0x207] = 2;
			img[0x206] = (uint8_t)(next() % 0x10 + 6);
			img[0x1f1] = (uint8_t)(next() % 8);
		} else {
			/* multiboot-ish: header plus a random ELF/a.out */
			for (size_t i = 0; i < 256; i++)
				img[i] = (uint8_t)next();
			memcpy(img, "\x7f" "ELF", 4);
			img[4] = (uint8_t)(1 + next() % 2);
			img[5] = 1;
			size_t h = 256 + (next() % 64) * 4;
			uint32_t flags = (uint32_t)(next() & 0x10003);
			put32(img + h, 0x1badb002);
			put32(img + h + 4, flags);
			put32(img + h + 8, (uint32_t)-(0x1badb002u + flags));
			for (size_t i = h + 12; i < h + 32; i++)
				img[i] = (uint8_t)next();
			if (next() & 1) { /* plausible addresses */
				put32(img + h + 12, 0x100000 + (uint32_t)h);
				put32(img + h + 16, 0x100000);
			}
		}
		struct boot_cpu_state cpu;
		struct loader_error err = { "" };
		int r;
		if (iter & 1) {
			struct linux_boot b = { img, len, img, next() % 4096, "console=ttyS0", &e820, 0 };
			r = linux_load(mem, &b, &cpu, NULL, &err);
		} else {
			struct mb_module m = { img, next() % 100, "m" };
			struct multiboot_boot b = { img, len, "k", "x", &m, 1, &e820 };
			r = multiboot_load(mem, &b, &cpu, &err);
		}
		if (r == 0)
			ok++;
		else {
			refused++;
			CHECK(r < 0 && err.msg[0] != 0); /* every refusal says why */
		}
	}
	printf("loaders: %u accepted, %u refused\n", ok, refused);
	CHECK(ok > 0 && refused > 0);
	mem_free(mem);
}

static void fuzz_board(void)
{
	struct machine_config cfg = { .ram_bytes = 16ull << 20, .nr_cpus = 2, .manual_clock = true,
				      .rtc_start = 1700000000 };
	struct machine *m = machine_new(&cfg);
	CHECK(m != NULL);
	if (!m)
		return;
	static const uint16_t ports[] = { 0x20, 0x21, 0xa0, 0xa1, 0x4d0, 0x4d1, 0x40, 0x41, 0x42,
					  0x43, 0x61, 0x70, 0x71, 0x3f8, 0x3f9, 0x3fa, 0x3fb,
					  0x3fc, 0x3fd, 0x3fe, 0x3ff, 0x60, 0x64, 0x80, 0x92,
					  0xcf8, 0xcfc, 0xcfd, 0xcfe, 0x510, 0x511, 0x514, 0x518,
					  0x600, 0x602, 0x604, 0x608 };
	struct hw_clock *clk = machine_clock(m);
	unsigned requests = 0, vectors = 0;
	for (unsigned iter = 0; iter < 200000; iter++) {
		uint64_t r = next();
		unsigned size = 1u << (r % 3);
		uint16_t port = ports[(r >> 8) % (sizeof(ports) / sizeof(ports[0]))];
		uint32_t v = (uint32_t)next();
		switch ((r >> 16) % 8) {
		case 0: case 1: case 2:
			if (port == 0xf4)
				break;
			pio_bus_write(machine_pio(m), port, size, v);
			break;
		case 3: case 4: {
			uint32_t val;
			pio_bus_read(machine_pio(m), port, size, &val);
			break;
		}
		case 5: {
			/* LAPIC and IOAPIC registers */
			struct lapic *l = machine_lapic(m, (unsigned)(r >> 24) & 1);
			uint64_t off = (next() % 0x400) & ~3ull;
			if (r & (1ull << 40))
				lapic_mmio_write(l, off, 4, v);
			else
				lapic_mmio_read(l, off, 4);
			uint64_t val;
			mmio_bus_write(machine_mmio(m), PC_IOAPIC_BASE, 4, next() % 0x40);
			if (r & (1ull << 41))
				mmio_bus_write(machine_mmio(m), PC_IOAPIC_BASE + 0x10, 4, v);
			else
				mmio_bus_read(machine_mmio(m), PC_IOAPIC_BASE + 0x10, 4, &val);
			break;
		}
		case 6:
			machine_irq_line(m, (unsigned)(r >> 24) % 30, r & (1ull << 50));
			break;
		default:
			hw_clock_set_ns(clk, hw_clock_ns(clk) + next() % 5000000);
			hw_clock_run_timers(clk);
			for (unsigned c = 0; c < 2; c++) {
				int vec = machine_cpu_get_interrupt(m, c);
				CHECK(vec >= -1 && vec <= 255);
				if (vec >= 0)
					vectors++;
			}
			break;
		}
		if (machine_take_request(m, NULL) != MACHINE_REQ_NONE)
			requests++;
	}
	printf("board: %u guest requests, %u vectors delivered\n", requests, vectors);
	/* still alive: the PCI host bridge answers */
	uint32_t id;
	CHECK(pio_bus_write(machine_pio(m), 0xcf8, 4, 0x80000000u) == 0);
	CHECK(pio_bus_read(machine_pio(m), 0xcfc, 4, &id) == 0 && id == 0x12378086);
	machine_free(m);
}

int main(void)
{
	fuzz_loaders();
	fuzz_board();
	TEST_MAIN_END();
}

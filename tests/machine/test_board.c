/* The board: e820, MP and ACPI tables, IRQ routing to the CPU, requests. */
#include <errno.h>

#include "machine/machine.h"
#include "test.h"

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static bool sums_to_zero(const uint8_t *p, size_t len)
{
	uint8_t s = 0;
	for (size_t i = 0; i < len; i++)
		s += p[i];
	return s == 0;
}

static void test_e820(void)
{
	struct mem *mem = mem_new_pc(5ull << 30);
	struct e820_map map;
	pc_e820(mem, &map);
	CHECK(map.count == 5);
	CHECK(map.e[0].addr == 0 && map.e[0].size == 0x9fc00 && map.e[0].type == E820_RAM);
	CHECK(map.e[1].type == E820_RESERVED && map.e[2].addr == 0xe0000);
	CHECK(map.e[3].addr == 0x100000 && map.e[3].size == 0xc0000000 - 0x100000);
	CHECK(map.e[4].addr == 0x100000000ull && map.e[4].size == 2ull << 30);
	mem_free(mem);
}

static void test_mptable(unsigned cpus)
{
	struct mem *mem = mem_new_pc(16ull << 20);
	CHECK(pc_write_mptable(mem, 0) == -EINVAL);
	CHECK(pc_write_mptable(mem, cpus) == 0);
	const uint8_t *fp = mem_ram_ptr(mem, PC_MPTABLE, 16);
	CHECK(memcmp(fp, "_MP_", 4) == 0 && sums_to_zero(fp, 16) && fp[9] == 4);
	uint32_t ta = get32(fp + 4);
	const uint8_t *t = mem_ram_ptr(mem, ta, 44);
	CHECK(memcmp(t, "PCMP", 4) == 0);
	unsigned len = t[4] | t[5] << 8, count = t[34] | t[35] << 8;
	t = mem_ram_ptr(mem, ta, len);
	CHECK(t && sums_to_zero(t, len));
	CHECK(get32(t + 36) == 0xfee00000);
	/* walk the entries */
	unsigned off = 44, ncpu = 0, nbus = 0, nioapic = 0, nint = 0, nlocal = 0;
	bool irq0_to_pin2 = false, bsp_ok = false;
	for (unsigned i = 0; i < count && off < len; i++) {
		switch (t[off]) {
		case 0:
			if (t[off + 1] == 0)
				bsp_ok = (t[off + 3] & 3) == 3;
			ncpu++;
			off += 20;
			break;
		case 1: nbus++; off += 8; break;
		case 2: nioapic++; CHECK(get32(t + off + 4) == 0xfec00000); off += 8; break;
		case 3:
			if (t[off + 1] == 0 && t[off + 4] == 1 && t[off + 5] == 0 && t[off + 7] == 2)
				irq0_to_pin2 = true; /* ISA is bus 1 */
			if (t[off + 4] == 0) /* PCI bus 0: level, active low, as the _PRT */
				CHECK(t[off + 2] == 0x0f &&
				      t[off + 7] == pc_pci_slot_gsi(t[off + 5] >> 2, t[off + 5] & 3));
			nint++;
			off += 8;
			break;
		case 4: nlocal++; off += 8; break;
		default: CHECK(!"bad MP entry"); off = len; break;
		}
	}
	CHECK(off == len);
	CHECK(ncpu == cpus && nbus == 2 && nioapic == 1 && nint == 16 + 31 * 4 && nlocal == 2);
	CHECK(irq0_to_pin2 && bsp_ok);
	mem_free(mem);
}

static const uint8_t *acpi_table(struct mem *mem, uint64_t addr, const char *sig)
{
	const uint8_t *h = mem_ram_ptr(mem, addr, 36);
	if (!h || memcmp(h, sig, 4))
		return NULL;
	uint32_t len = get32(h + 4);
	const uint8_t *t = mem_ram_ptr(mem, addr, len);
	CHECK(t && sums_to_zero(t, len));
	return t;
}

static void test_acpi(unsigned cpus)
{
	struct mem *mem = mem_new_pc(16ull << 20);
	uint64_t rsdp_addr = 0;
	CHECK(pc_write_acpi(mem, cpus, &rsdp_addr) == 0);
	CHECK(rsdp_addr >= 0xe0000 && rsdp_addr < 0x100000 && rsdp_addr % 16 == 0);
	const uint8_t *r = mem_ram_ptr(mem, rsdp_addr, 36);
	CHECK(memcmp(r, "RSD PTR ", 8) == 0 && sums_to_zero(r, 20) && sums_to_zero(r, 36));
	CHECK(r[15] == 2);
	const uint8_t *rsdt = acpi_table(mem, get32(r + 16), "RSDT");
	const uint8_t *xsdt = acpi_table(mem, get32(r + 24), "XSDT");
	CHECK(rsdt && xsdt);
	if (!rsdt || !xsdt)
		return;
	const uint8_t *fadt = acpi_table(mem, get32(rsdt + 36), "FACP");
	const uint8_t *madt = acpi_table(mem, get32(rsdt + 40), "APIC");
	CHECK(fadt && madt);
	CHECK(get32(xsdt + 36) == get32(rsdt + 36) && get32(xsdt + 44) == get32(rsdt + 40));
	if (!fadt || !madt)
		return;
	CHECK(get32(fadt + 4) == 276 && fadt[8] == 6);
	CHECK(!(get32(fadt + 112) & (1u << 20))); /* not hardware-reduced */
	CHECK(get32(fadt + 64) == ACPI_PM_BASE + 4 && fadt[46] == 9);
	const uint8_t *dsdt = acpi_table(mem, get32(fadt + 40), "DSDT");
	CHECK(dsdt && memmem(dsdt, get32(dsdt + 4), "_S5_", 4));
	/* the PCI root bridge: PNP0A03 (EisaId 0x030ad041), _CRS, _PRT */
	static const uint8_t pnp0a03[] = { 0x0c, 0x41, 0xd0, 0x0a, 0x03 };
	CHECK(dsdt && memmem(dsdt, get32(dsdt + 4), "PCI0", 4));
	CHECK(dsdt && memmem(dsdt, get32(dsdt + 4), pnp0a03, sizeof(pnp0a03)));
	CHECK(dsdt && memmem(dsdt, get32(dsdt + 4), "_CRS", 4));
	CHECK(dsdt && memmem(dsdt, get32(dsdt + 4), "_PRT", 4));
	CHECK(dsdt && sums_to_zero(dsdt, get32(dsdt + 4)));
	const uint8_t *facs = mem_ram_ptr(mem, get32(fadt + 36), 64);
	CHECK(facs && memcmp(facs, "FACS", 4) == 0 && get32(fadt + 36) % 64 == 0);
	/* MADT: LAPICs, IOAPIC, ISO 0 -> 2 */
	CHECK(get32(madt + 36) == 0xfee00000 && (get32(madt + 40) & 1));
	uint32_t len = get32(madt + 4), off = 44, nl = 0, nio = 0;
	bool iso0 = false, nmi = false;
	while (off + 2 <= len && madt[off + 1] >= 2) {
		const uint8_t *e = madt + off;
		if (e[0] == 0 && (get32(e + 4) & 1)) {
			CHECK(e[3] == nl);
			nl++;
		}
		if (e[0] == 1) {
			nio++;
			CHECK(get32(e + 4) == 0xfec00000 && get32(e + 8) == 0);
		}
		if (e[0] == 2 && e[3] == 0 && get32(e + 4) == 2)
			iso0 = true;
		if (e[0] == 4 && e[5] == 1)
			nmi = true;
		off += e[1];
	}
	CHECK(off == len && nl == cpus && nio == 1 && iso0 && nmi);
	mem_free(mem);
}

/* ---- the whole board ---- */

static unsigned kicks[4];
static void kick(void *opaque, unsigned cpu)
{
	(void)opaque;
	if (cpu < 4)
		kicks[cpu]++;
}

struct outbuf {
	char s[256];
	size_t n;
};
static size_t out_write(void *opaque, const uint8_t *b, size_t len)
{
	struct outbuf *o = opaque;
	for (size_t i = 0; i < len && o->n + 1 < sizeof(o->s); i++)
		o->s[o->n++] = (char)b[i];
	return len;
}
static const struct chardev_ops out_ops = { out_write, NULL };

static void outb(struct machine *m, uint16_t port, uint8_t v)
{
	CHECK(pio_bus_write(machine_pio(m), port, 1, v) == 0);
}
static uint8_t inb(struct machine *m, uint16_t port)
{
	uint32_t v = 0;
	CHECK(pio_bus_read(machine_pio(m), port, 1, &v) == 0);
	return (uint8_t)v;
}

struct chip_rec {
	unsigned isa, gsi;
	bool level;
	uint32_t msi_data;
};
static void chip_isa(void *o, unsigned irq, bool level)
{
	((struct chip_rec *)o)->isa = irq;
	((struct chip_rec *)o)->level = level;
}
static void chip_gsi(void *o, unsigned gsi, bool level)
{
	((struct chip_rec *)o)->gsi = gsi;
	((struct chip_rec *)o)->level = level;
}
static void chip_msi(void *o, uint64_t addr, uint32_t data)
{
	(void)addr;
	((struct chip_rec *)o)->msi_data = data;
}

static void test_board(void)
{
	struct outbuf out = { .n = 0 };
	struct machine_config cfg = {
		.ram_bytes = 64ull << 20, .nr_cpus = 2, .manual_clock = true,
		.rtc_start = 1700000000, .serial = { &out_ops, &out }, .kick = kick,
	};
	struct machine_config bad = cfg;
	bad.nr_cpus = 0;
	errno = 0;
	CHECK(machine_new(&bad) == NULL && errno == EINVAL);
	bad.nr_cpus = 1;
	bad.ram_bytes = 1000;
	CHECK(machine_new(&bad) == NULL && errno == EINVAL);

	struct machine *m = machine_new(&cfg);
	CHECK(m != NULL);
	if (!m)
		return;
	CHECK(machine_nr_cpus(m) == 2 && machine_lapic(m, 1) && !machine_lapic(m, 2));
	CHECK(machine_rsdp(m) == 0xe0000);
	CHECK(machine_e820(m)->count == 4);

	/* serial output reaches the backend */
	outb(m, 0x3f8, 'o');
	outb(m, 0x3f8, 'k');
	CHECK(out.n == 2 && memcmp(out.s, "ok", 2) == 0);

	/* PIC mode (virtual wire through the BSP's LINT0): program the PICs
	 * like Linux, raise COM1's IRQ 4, the CPU gets vector 0x34 */
	static const uint8_t init[][2] = { { 0x20, 0x11 }, { 0x21, 0x30 }, { 0x21, 0x04 },
					   { 0x21, 0x01 }, { 0xa0, 0x11 }, { 0xa1, 0x38 },
					   { 0xa1, 0x02 }, { 0xa1, 0x01 }, { 0x21, 0xe8 },
					   { 0xa1, 0xff } };
	for (unsigned i = 0; i < sizeof(init) / 2; i++)
		outb(m, init[i][0], init[i][1]);
	CHECK(!machine_cpu_has_interrupt(m, 0));
	outb(m, 0x3f9, 0x02); /* THRI */
	outb(m, 0x3fc, 0x08); /* OUT2 */
	CHECK(kicks[0] >= 1);
	CHECK(machine_cpu_has_interrupt(m, 0) && !machine_cpu_has_interrupt(m, 1));
	CHECK(machine_cpu_get_interrupt(m, 0) == 0x34);
	CHECK(!machine_cpu_has_interrupt(m, 0));
	CHECK(machine_cpu_get_interrupt(m, 0) == -1);
	outb(m, 0x3f9, 0x00);
	outb(m, 0x20, 0x20);

	/* IOAPIC mode: route GSI 4 to vector 0x44 on CPU 1, mask LINT0 */
	struct lapic *l0 = machine_lapic(m, 0), *l1 = machine_lapic(m, 1);
	lapic_mmio_write(l0, 0xf0, 4, 0x1ff);
	lapic_mmio_write(l1, 0xf0, 4, 0x1ff);
	lapic_mmio_write(l0, 0x350, 4, 0x10700);
	uint64_t io = PC_IOAPIC_BASE;
	mmio_bus_write(machine_mmio(m), io, 4, 0x10 + 2 * 4);
	mmio_bus_write(machine_mmio(m), io + 0x10, 4, 0x44);
	mmio_bus_write(machine_mmio(m), io, 4, 0x11 + 2 * 4);
	mmio_bus_write(machine_mmio(m), io + 0x10, 4, 1u << 24);
	outb(m, 0x3f9, 0x02);
	CHECK(kicks[1] >= 1);
	CHECK(machine_cpu_get_interrupt(m, 1) == 0x44);
	CHECK(machine_cpu_get_interrupt(m, 0) == -1); /* PIC path masked at LINT0 */
	lapic_mmio_write(l1, 0xb0, 4, 0);
	outb(m, 0x3f9, 0x00);

	/* the PIT's IRQ 0 reaches IOAPIC pin 2 (the override) */
	mmio_bus_write(machine_mmio(m), io, 4, 0x10 + 2 * 2);
	mmio_bus_write(machine_mmio(m), io + 0x10, 4, 0x30);
	outb(m, 0x43, 0x34);
	outb(m, 0x40, 100);
	outb(m, 0x40, 0);
	struct hw_clock *clk = machine_clock(m);
	hw_clock_set_ns(clk, hw_clock_ns(clk) + 200000);
	hw_clock_run_timers(clk);
	CHECK(machine_cpu_get_interrupt(m, 0) == 0x30);
	CHECK(hw_clock_next_deadline(clk) != UINT64_MAX);

	/* CMOS: memory sizes and CPU count */
	outb(m, 0x70, 0x34);
	uint8_t lo = inb(m, 0x71);
	outb(m, 0x70, 0x35);
	CHECK((lo | inb(m, 0x71) << 8) == (48u << 20) >> 16);
	outb(m, 0x70, 0x5f);
	CHECK(inb(m, 0x71) == 1);

	/* fw_cfg: CPU count and the e820 file */
	CHECK(pio_bus_write(machine_pio(m), 0x510, 2, FW_CFG_NB_CPUS) == 0);
	CHECK(inb(m, 0x511) == 2);
	CHECK(machine_fw_cfg_kernel(m, 0x100000, 1234, 0, 0, "console=ttyS0") == 0);
	CHECK(pio_bus_write(machine_pio(m), 0x510, 2, FW_CFG_CMDLINE_DATA) == 0);
	CHECK(inb(m, 0x511) == 'c');

	/* PCI host bridge */
	CHECK(pio_bus_write(machine_pio(m), 0xcf8, 4, 0x80000000u) == 0);
	uint32_t id;
	CHECK(pio_bus_read(machine_pio(m), 0xcfc, 4, &id) == 0 && id == 0x12378086);

	/* requests: debug exit, reset, power-off */
	int status = -1;
	CHECK(machine_take_request(m, &status) == MACHINE_REQ_NONE);
	outb(m, 0xf4, 3);
	CHECK(machine_take_request(m, &status) == MACHINE_REQ_EXIT && status == 7);
	outb(m, 0x64, 0xfe);
	CHECK(machine_take_request(m, NULL) == MACHINE_REQ_RESET);
	CHECK(pio_bus_write(machine_pio(m), 0x604, 2, (5u << 10) | (1u << 13)) == 0);
	CHECK(machine_take_request(m, NULL) == MACHINE_REQ_POWEROFF);
	CHECK(machine_take_request(m, NULL) == MACHINE_REQ_NONE);

	/* an external irqchip (KVM's) takes over every line */
	struct chip_rec rec = { 0 };
	static const struct irqchip_ops chip = { chip_isa, chip_gsi, chip_msi };
	machine_set_irqchip(m, &chip, &rec);
	outb(m, 0x3f9, 0x02); /* COM1 THRI: ISA IRQ 4 */
	CHECK(rec.isa == 4 && rec.level);
	machine_irq_line(m, 10, true);
	CHECK(rec.gsi == 10);
	machine_msi(m, 0xfee00000, 0x41);
	CHECK(rec.msi_data == 0x41);
	CHECK(!machine_cpu_has_interrupt(m, 0)); /* the emulated chips saw nothing */
	machine_set_irqchip(m, NULL, NULL);
	outb(m, 0x3f9, 0x00);

	/* unclaimed ports say so */
	uint32_t v;
	CHECK(pio_bus_read(machine_pio(m), 0x2f8, 1, &v) == -ENODEV);
	machine_free(m);
}

/* machine_add_pci: slots, BARs in the hole, command, interrupt line. */
static void test_add_pci(void)
{
	struct machine_config cfg = { .ram_bytes = 64ull << 20, .nr_cpus = 1, .manual_clock = true };
	struct machine *m = machine_new(&cfg);
	CHECK(m != NULL);
	if (!m)
		return;
	struct pci_device a, b, io;
	pci_device_init(&a, 0x1af4, 0x1044, 0xff00, 1);
	CHECK(pci_device_set_bar(&a, 0, 0x8000, 0x4) == 0); /* 64-bit */
	a.config[0x3d] = 1;
	pci_device_init(&b, 0x1af4, 0x1041, 0x020000, 1);
	CHECK(pci_device_set_bar(&b, 0, 0x1000, 0x0) == 0);  /* 32-bit */
	CHECK(pci_device_set_bar(&b, 2, 0x100000, 0x4) == 0); /* 1 MiB, 64-bit */
	b.config[0x3d] = 1;
	unsigned sa = 0, sb = 0;
	CHECK(machine_add_pci(m, &a, &sa) == 0 && sa == 1);
	CHECK(machine_add_pci(m, &b, &sb) == 0 && sb == 2);
	struct pci_host *h = machine_pci(m);
	CHECK_EQ_U64(pci_config_read(h, 0, PCI_DEVFN(1, 0), 0x10, 4), 0xe0000004);
	CHECK_EQ_U64(pci_config_read(h, 0, PCI_DEVFN(1, 0), 0x14, 4), 0);
	CHECK_EQ_U64(pci_config_read(h, 0, PCI_DEVFN(1, 0), 0x04, 2) & 6, 6);
	CHECK_EQ_U64(pci_config_read(h, 0, PCI_DEVFN(1, 0), 0x3c, 1), pc_pci_slot_gsi(1, 0));
	CHECK_EQ_U64(pci_config_read(h, 0, PCI_DEVFN(2, 0), 0x10, 4), 0xe0008000);
	CHECK_EQ_U64(pci_config_read(h, 0, PCI_DEVFN(2, 0), 0x18, 4), 0xe0100004);
	CHECK_EQ_U64(pci_config_read(h, 0, PCI_DEVFN(2, 0), 0x3c, 1), 18);
	/* an I/O BAR is refused; the slot stays free */
	pci_device_init(&io, 0x8086, 0x1234, 0, 0);
	CHECK(pci_device_set_bar(&io, 0, 0x100, 0x1) == 0);
	CHECK(machine_add_pci(m, &io, NULL) == -EINVAL);
	CHECK_EQ_U64(pci_config_read(h, 0, PCI_DEVFN(3, 0), 0, 2), 0xffff);
	/* GSIs stay off the ISA range */
	for (unsigned s = 1; s < 32; s++)
		for (unsigned p = 0; p < 4; p++)
			CHECK(pc_pci_slot_gsi(s, p) >= 16 && pc_pci_slot_gsi(s, p) < IOAPIC_NUM_PINS);
	machine_free(m);
}

int main(void)
{
	test_add_pci();
	test_e820();
	test_mptable(1);
	test_mptable(4);
	test_mptable(PC_MAX_CPUS);
	test_acpi(1);
	test_acpi(8);
	test_board();
	TEST_MAIN_END();
}

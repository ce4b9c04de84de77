/* i8042 (probe sequence, reset line), debug-exit, port 0x80, port 0x92. */
#include "hw_test.h"

static int exit_status = -1;
static void on_exit_req(void *opaque, int status)
{
	(void)opaque;
	exit_status = status;
}

static bool wait_obf(struct pio_bus *bus)
{
	return inb(bus, 0x64) & 0x01;
}

int main(void)
{
	struct irq_rec rec = { 0 };
	struct pio_bus *bus = pio_bus_new();
	struct i8042 *k = i8042_new(irq_rec_line(&rec, 1), irq_rec_line(&rec, 12),
				    irq_rec_line(&rec, 31));
	CHECK(i8042_map(k, bus) == 0);

	/* Linux's probe: flush, read CTR, self-test, write CTR, port test */
	CHECK(!wait_obf(bus));
	outb(bus, 0x64, 0x20);
	CHECK(wait_obf(bus) && rec.level[1]);
	uint8_t ctr = inb(bus, 0x60);
	CHECK(ctr & 0x01);
	CHECK(!rec.level[1]);
	outb(bus, 0x64, 0xaa);
	CHECK(inb(bus, 0x60) == 0x55);
	CHECK(inb(bus, 0x64) & 0x04); /* system flag */
	outb(bus, 0x64, 0x60);
	outb(bus, 0x60, ctr & ~0x01); /* keyboard IRQ off */
	outb(bus, 0x64, 0x20);
	CHECK(!rec.level[1] && wait_obf(bus));
	CHECK(inb(bus, 0x60) == (ctr & ~0x01));
	outb(bus, 0x64, 0x60);
	outb(bus, 0x60, ctr);
	outb(bus, 0x64, 0xab);
	CHECK(inb(bus, 0x60) == 0x00);

	/* keyboard reset and identify */
	outb(bus, 0x60, 0xff);
	CHECK(inb(bus, 0x60) == 0xfa && inb(bus, 0x60) == 0xaa);
	outb(bus, 0x60, 0xf2);
	CHECK(inb(bus, 0x60) == 0xfa && inb(bus, 0x60) == 0xab && inb(bus, 0x60) == 0x83);
	outb(bus, 0x60, 0xed);
	CHECK(inb(bus, 0x60) == 0xfa);
	outb(bus, 0x60, 0x07);
	CHECK(inb(bus, 0x60) == 0xfa);
	CHECK(!wait_obf(bus));
	/* scan code set: select 2, then ask (translation on: 0x41) */
	outb(bus, 0x60, 0xf0);
	outb(bus, 0x60, 0x02);
	CHECK(inb(bus, 0x60) == 0xfa && inb(bus, 0x60) == 0xfa);
	outb(bus, 0x60, 0xf0);
	outb(bus, 0x60, 0x00);
	CHECK(inb(bus, 0x60) == 0xfa && inb(bus, 0x60) == 0xfa && inb(bus, 0x60) == 0x41);
	CHECK(!wait_obf(bus));

	/* aux loopback (0xd3) comes back as aux data on IRQ 12 */
	outb(bus, 0x64, 0xd3);
	outb(bus, 0x60, 0x5a);
	CHECK((inb(bus, 0x64) & 0x21) == 0x21 && rec.level[12]);
	CHECK(inb(bus, 0x60) == 0x5a && !rec.level[12]);

	/* a scan code from the keyboard raises IRQ 1 */
	unsigned r1 = rec.rises[1];
	i8042_kbd_put(k, 0x1e);
	CHECK(rec.rises[1] == r1 + 1);
	CHECK(inb(bus, 0x60) == 0x1e);

	/* reset: command 0xfe pulses the reset line, so does output port bit 0 */
	CHECK(rec.rises[31] == 0);
	outb(bus, 0x64, 0xfe);
	CHECK(rec.rises[31] == 1 && !rec.level[31]);
	outb(bus, 0x64, 0xd1);
	outb(bus, 0x60, 0x02);
	CHECK(rec.rises[31] == 2);
	outb(bus, 0x64, 0xd1);
	outb(bus, 0x60, 0x03);
	CHECK(rec.rises[31] == 2);
	outb(bus, 0x64, 0xd0);
	CHECK(inb(bus, 0x60) == 0x03);
	i8042_free(k);

	/* debug exit: v -> (v << 1) | 1, any width */
	struct debug_exit *de = debug_exit_new(on_exit_req, NULL);
	CHECK(debug_exit_map(de, bus, 0xf4) == 0);
	outb(bus, 0xf4, 0);
	CHECK(exit_status == 1);
	outl(bus, 0xf4, 0x10);
	CHECK(exit_status == 0x21);
	debug_exit_free(de);

	/* POST port and system control port A */
	struct sysctl *sc = sysctl_new(irq_rec_line(&rec, 30));
	CHECK(sysctl_map(sc, bus) == 0);
	outb(bus, 0x80, 0x42);
	CHECK(inb(bus, 0x80) == 0x42);
	CHECK(sysctl_a20(sc) && inb(bus, 0x92) == 0x02);
	outb(bus, 0x92, 0x00);
	CHECK(!sysctl_a20(sc));
	CHECK(rec.rises[30] == 0);
	outb(bus, 0x92, 0x03);
	CHECK(rec.rises[30] == 1 && sysctl_a20(sc));
	sysctl_free(sc);

	/* ACPI PM: timer at 3.58 MHz, SCI_EN set, S5 powers off */
	struct hw_clock *clk = hw_clock_new_manual(1000000000ull);
	struct acpi_pm *pm = acpi_pm_new(clk, irq_rec_line(&rec, 29));
	CHECK(acpi_pm_map(pm, bus, ACPI_PM_BASE) == 0);
	uint32_t t0 = inl(bus, ACPI_PM_BASE + 8);
	hw_clock_set_ns(clk, hw_clock_ns(clk) + 1000000);
	uint32_t t1 = inl(bus, ACPI_PM_BASE + 8);
	CHECK(t1 - t0 >= 3579 && t1 - t0 <= 3580);
	CHECK(inb(bus, ACPI_PM_BASE + 4) & 1);
	CHECK(pio_bus_write(bus, ACPI_PM_BASE + 4, 2, 5u << 10) == 0); /* SLP_TYP only */
	CHECK(rec.rises[29] == 0);
	CHECK(pio_bus_write(bus, ACPI_PM_BASE + 4, 2, (5u << 10) | (1u << 13)) == 0);
	CHECK(rec.rises[29] == 1);
	CHECK(pio_bus_write(bus, ACPI_PM_BASE + 4, 2, (1u << 10) | (1u << 13)) == 0); /* S1: no */
	CHECK(rec.rises[29] == 1);
	acpi_pm_free(pm);
	hw_clock_free(clk);

	pio_bus_free(bus);
	TEST_MAIN_END();
}

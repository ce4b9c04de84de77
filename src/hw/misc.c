/*
 * Small system devices: the QEMU-compatible debug exit, port 0x80 (POST
 * codes) and port 0x92 (system control port A: A20 gate and fast reset).
 */
#include <stdlib.h>

#include "hw/hw.h"

struct debug_exit {
	hw_exit_fn *fn;
	void *opaque;
};

static uint64_t debug_exit_read(void *opaque, uint64_t off, unsigned size)
{
	(void)opaque;
	(void)off;
	(void)size;
	return 0;
}

static void debug_exit_write(void *opaque, uint64_t off, unsigned size, uint64_t v)
{
	(void)off;
	(void)size;
	struct debug_exit *d = opaque;
	if (d->fn)
		d->fn(d->opaque, (int)(((uint32_t)v << 1) | 1));
}

static const struct bus_dev_ops debug_exit_ops = { debug_exit_read, debug_exit_write };

struct debug_exit *debug_exit_new(hw_exit_fn *fn, void *opaque)
{
	struct debug_exit *d = calloc(1, sizeof(*d));
	if (d) {
		d->fn = fn;
		d->opaque = opaque;
	}
	return d;
}

void debug_exit_free(struct debug_exit *d)
{
	free(d);
}

int debug_exit_map(struct debug_exit *d, struct pio_bus *bus, uint16_t base)
{
	return pio_bus_register(bus, base, 4, &debug_exit_ops, d, "debug-exit");
}

struct sysctl {
	struct irq reset;
	uint8_t post;
	uint8_t port92;
};

static uint64_t post_read(void *opaque, uint64_t off, unsigned size)
{
	(void)off;
	(void)size;
	return ((struct sysctl *)opaque)->post;
}

static void post_write(void *opaque, uint64_t off, unsigned size, uint64_t v)
{
	(void)off;
	(void)size;
	((struct sysctl *)opaque)->post = (uint8_t)v;
}

static uint64_t port92_read(void *opaque, uint64_t off, unsigned size)
{
	(void)off;
	(void)size;
	return ((struct sysctl *)opaque)->port92;
}

static void port92_write(void *opaque, uint64_t off, unsigned size, uint64_t v)
{
	(void)off;
	(void)size;
	struct sysctl *s = opaque;
	bool reset = (v & 1) && !(s->port92 & 1);
	s->port92 = (uint8_t)(v & 0x02); /* bit 0 reads back 0 after the pulse */
	if (reset)
		irq_pulse(&s->reset);
}

static const struct bus_dev_ops post_ops = { post_read, post_write };
static const struct bus_dev_ops port92_ops = { port92_read, port92_write };

struct sysctl *sysctl_new(struct irq reset)
{
	struct sysctl *s = calloc(1, sizeof(*s));
	if (s) {
		s->reset = reset;
		s->port92 = 0x02; /* A20 enabled */
	}
	return s;
}

void sysctl_free(struct sysctl *s)
{
	free(s);
}

int sysctl_map(struct sysctl *s, struct pio_bus *bus)
{
	int ret = pio_bus_register(bus, 0x80, 1, &post_ops, s, "post");
	if (!ret)
		ret = pio_bus_register(bus, 0x92, 1, &port92_ops, s, "port92");
	return ret;
}

bool sysctl_a20(const struct sysctl *s)
{
	return s->port92 & 0x02;
}

struct acpi_pm {
	struct hw_clock *clock;
	struct irq poweroff;
	uint16_t sts, en, cnt;
};

static uint64_t acpi_pm_read(void *opaque, uint64_t off, unsigned size)
{
	struct acpi_pm *pm = opaque;
	uint8_t regs[12];
	uint32_t tmr = (uint32_t)hw_ns_to_ticks(hw_clock_ns(pm->clock), ACPI_PM_TIMER_HZ) & 0xffffff;
	uint16_t cnt = pm->cnt | 1; /* SCI_EN: always in ACPI mode */
	regs[0] = (uint8_t)pm->sts;
	regs[1] = (uint8_t)(pm->sts >> 8);
	regs[2] = (uint8_t)pm->en;
	regs[3] = (uint8_t)(pm->en >> 8);
	regs[4] = (uint8_t)cnt;
	regs[5] = (uint8_t)(cnt >> 8);
	regs[6] = regs[7] = 0;
	for (int i = 0; i < 4; i++)
		regs[8 + i] = (uint8_t)(tmr >> (8 * i));
	uint64_t v = 0;
	for (unsigned i = 0; i < size && off + i < sizeof(regs); i++)
		v |= (uint64_t)regs[off + i] << (8 * i);
	return v;
}

static void acpi_pm_write(void *opaque, uint64_t off, unsigned size, uint64_t v)
{
	struct acpi_pm *pm = opaque;
	for (unsigned i = 0; i < size; i++) {
		unsigned o = (unsigned)off + i;
		uint8_t b = (uint8_t)(v >> (8 * i));
		switch (o) {
		case 0: pm->sts &= (uint16_t)~b; break;	       /* write one to clear */
		case 1: pm->sts &= (uint16_t)~(b << 8); break;
		case 2: pm->en = (pm->en & 0xff00) | b; break;
		case 3: pm->en = (uint16_t)((pm->en & 0xff) | b << 8); break;
		case 4: pm->cnt = (pm->cnt & 0xff00) | b; break;
		case 5: pm->cnt = (uint16_t)((pm->cnt & 0xff) | (b & 0x1f) << 8); /* SLP_EN self-clears */
			if ((b & 0x20) && ((b >> 2) & 7) == ACPI_PM_S5_TYP)
				irq_pulse(&pm->poweroff);
			break;
		default: break;
		}
	}
}

static const struct bus_dev_ops acpi_pm_ops = { acpi_pm_read, acpi_pm_write };

struct acpi_pm *acpi_pm_new(struct hw_clock *clock, struct irq poweroff)
{
	struct acpi_pm *pm = calloc(1, sizeof(*pm));
	if (pm) {
		pm->clock = clock;
		pm->poweroff = poweroff;
	}
	return pm;
}

void acpi_pm_free(struct acpi_pm *pm)
{
	free(pm);
}

int acpi_pm_map(struct acpi_pm *pm, struct pio_bus *bus, uint16_t base)
{
	return pio_bus_register(bus, base, 12, &acpi_pm_ops, pm, "acpi-pm");
}

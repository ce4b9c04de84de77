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

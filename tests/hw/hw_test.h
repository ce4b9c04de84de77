/* Helpers for device tests: an IRQ recorder and port-I/O shorthands. */
#ifndef MAQUINA_TESTS_HW_TEST_H
#define MAQUINA_TESTS_HW_TEST_H

#include "hw/hw.h"
#include "test.h"

/* Records the level and the rising edges of up to 32 lines. */
struct irq_rec {
	bool level[32];
	unsigned rises[32];
	unsigned calls;
};

static inline void irq_rec_set(void *opaque, unsigned line, bool level)
{
	struct irq_rec *r = opaque;
	if (line >= 32)
		return;
	if (level && !r->level[line])
		r->rises[line]++;
	r->level[line] = level;
	r->calls++;
}

static inline struct irq irq_rec_line(struct irq_rec *r, unsigned line)
{
	return irq_make(irq_rec_set, r, line);
}

static inline void outb(struct pio_bus *b, uint16_t port, uint8_t v)
{
	CHECK(pio_bus_write(b, port, 1, v) == 0);
}

static inline uint8_t inb(struct pio_bus *b, uint16_t port)
{
	uint32_t v = 0;
	CHECK(pio_bus_read(b, port, 1, &v) == 0);
	return (uint8_t)v;
}

static inline void outw(struct pio_bus *b, uint16_t port, uint16_t v)
{
	CHECK(pio_bus_write(b, port, 2, v) == 0);
}

static inline void outl(struct pio_bus *b, uint16_t port, uint32_t v)
{
	CHECK(pio_bus_write(b, port, 4, v) == 0);
}

static inline uint32_t inl(struct pio_bus *b, uint16_t port)
{
	uint32_t v = 0;
	CHECK(pio_bus_read(b, port, 4, &v) == 0);
	return v;
}

#endif

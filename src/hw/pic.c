/*
 * The 8259A pair of a PC: master at 0x20, slave at 0xa0 on master IRQ 2,
 * edge/level per the ELCR (0x4d0/0x4d1).  Written from Intel's 8259A data
 * sheet: ICW1-4, OCW1-3, rotation, auto-EOI, special mask, poll.
 */
#include <stdlib.h>

#include "core/core.h"
#include "hw/hw.h"

struct i8259 {
	uint8_t irr, imr, isr;
	uint8_t last_level; /* input levels, for edge detection */
	uint8_t elcr, elcr_mask;
	uint8_t priority_add; /* IRQ with lowest priority is priority_add - 1 */
	uint8_t irq_base;
	uint8_t init_state; /* 0 ready, 1 wait ICW2, 2 wait ICW3, 3 wait ICW4 */
	bool read_isr, poll, special_mask, auto_eoi, rotate_on_auto_eoi;
	bool special_fully_nested, init4, single;
};

struct pic {
	struct i8259 chip[2];
	struct irq intr;
	bool intr_level;
};

/* Priority (0 highest) of the highest set bit in mask, or 8. */
static int chip_priority(const struct i8259 *s, uint8_t mask)
{
	if (!mask)
		return 8;
	int p = 0;
	while (!(mask & (1u << ((p + s->priority_add) & 7))))
		p++;
	return p;
}

/* The IRQ this chip would present, or -1. */
static int chip_get_irq(const struct i8259 *s, bool master)
{
	int prio = chip_priority(s, s->irr & ~s->imr);
	if (prio == 8)
		return -1;
	uint8_t in_service = s->isr;
	if (s->special_mask)
		in_service &= ~s->imr;
	if (s->special_fully_nested && master)
		in_service &= ~(1u << 2);
	int cur = chip_priority(s, in_service);
	return prio < cur ? (prio + s->priority_add) & 7 : -1;
}

static void chip_set_input(struct i8259 *s, unsigned irq, bool level)
{
	uint8_t mask = 1u << irq;
	if (s->elcr & mask) {
		if (level)
			s->irr |= mask;
		else
			s->irr &= ~mask;
	} else if (level && !(s->last_level & mask)) {
		s->irr |= mask;
	}
	if (level)
		s->last_level |= mask;
	else
		s->last_level &= ~mask;
}

static void pic_update(struct pic *p)
{
	/* the slave's INT drives master IR2 as a level: a request withdrawn on
	 * the slave is withdrawn on the master too */
	if (chip_get_irq(&p->chip[1], false) >= 0)
		p->chip[0].irr |= 1u << 2;
	else
		p->chip[0].irr &= ~(1u << 2);
	bool level = chip_get_irq(&p->chip[0], true) >= 0;
	if (level != p->intr_level) {
		p->intr_level = level;
		irq_set(&p->intr, level);
	} else if (level) {
		irq_set(&p->intr, level); /* a new request: let the CPU look again */
	}
}

static void chip_intack(struct i8259 *s, int irq)
{
	if (s->auto_eoi) {
		if (s->rotate_on_auto_eoi)
			s->priority_add = (irq + 1) & 7;
	} else {
		s->isr |= 1u << irq;
	}
	if (!(s->elcr & (1u << irq)))
		s->irr &= ~(1u << irq);
}

void pic_set_irq(struct pic *p, unsigned irq, bool level)
{
	if (irq >= 16)
		return;
	chip_set_input(&p->chip[irq >> 3], irq & 7, level);
	pic_update(p);
}

static void pic_irq_set(void *opaque, unsigned line, bool level)
{
	pic_set_irq(opaque, line, level);
}

struct irq pic_irq(struct pic *p, unsigned irq)
{
	return irq_make(pic_irq_set, p, irq);
}

bool pic_intr_asserted(const struct pic *p)
{
	return chip_get_irq(&p->chip[0], true) >= 0;
}

int pic_get_interrupt(struct pic *p)
{
	int vec, irq = chip_get_irq(&p->chip[0], true);
	if (irq >= 0) {
		chip_intack(&p->chip[0], irq);
		if (irq == 2) {
			int irq2 = chip_get_irq(&p->chip[1], false);
			if (irq2 >= 0)
				chip_intack(&p->chip[1], irq2);
			else
				irq2 = 7; /* spurious on the slave */
			vec = p->chip[1].irq_base + irq2;
		} else {
			vec = p->chip[0].irq_base + irq;
		}
	} else {
		vec = p->chip[0].irq_base + 7; /* spurious */
	}
	pic_update(p);
	return vec;
}

static void chip_reset(struct i8259 *s)
{
	uint8_t elcr = s->elcr, mask = s->elcr_mask;
	*s = (struct i8259){ .elcr = elcr, .elcr_mask = mask };
}

static void chip_write(struct pic *p, struct i8259 *s, unsigned port, uint8_t val)
{
	if (port == 0) {
		if (val & 0x10) { /* ICW1 */
			uint8_t last = s->last_level;
			chip_reset(s);
			s->last_level = last;
			s->init_state = 1;
			s->init4 = val & 1;
			s->single = val & 2;
		} else if (val & 0x08) { /* OCW3 */
			if (val & 0x04)
				s->poll = true;
			if (val & 0x02)
				s->read_isr = val & 1;
			if (val & 0x40)
				s->special_mask = (val >> 5) & 1;
		} else { /* OCW2 */
			unsigned cmd = val >> 5, irq;
			int prio;
			switch (cmd) {
			case 0: /* rotate in auto-EOI mode: clear */
			case 4: /* set */
				s->rotate_on_auto_eoi = cmd >> 2;
				break;
			case 1: /* non-specific EOI */
			case 5: /* rotate on non-specific EOI */
				prio = chip_priority(s, s->isr);
				if (prio != 8) {
					irq = (prio + s->priority_add) & 7;
					s->isr &= ~(1u << irq);
					if (cmd == 5)
						s->priority_add = (irq + 1) & 7;
				}
				break;
			case 3: /* specific EOI */
				s->isr &= ~(1u << (val & 7));
				break;
			case 6: /* set priority */
				s->priority_add = (val + 1) & 7;
				break;
			case 7: /* rotate on specific EOI */
				s->isr &= ~(1u << (val & 7));
				s->priority_add = (val + 1) & 7;
				break;
			default: /* 2: no operation */
				break;
			}
		}
	} else {
		switch (s->init_state) {
		case 0: /* OCW1 */
			s->imr = val;
			break;
		case 1: /* ICW2 */
			s->irq_base = val & 0xf8;
			s->init_state = s->single ? (s->init4 ? 3 : 0) : 2;
			break;
		case 2: /* ICW3: cascade wiring is fixed on a PC */
			s->init_state = s->init4 ? 3 : 0;
			break;
		case 3: /* ICW4 */
			s->special_fully_nested = (val >> 4) & 1;
			s->auto_eoi = (val >> 1) & 1;
			s->init_state = 0;
			break;
		}
	}
	pic_update(p);
}

static uint8_t chip_read(struct pic *p, struct i8259 *s, unsigned port, bool master)
{
	if (s->poll) {
		s->poll = false;
		int irq = chip_get_irq(s, master);
		uint8_t ret = 0;
		if (irq >= 0) {
			chip_intack(s, irq);
			ret = 0x80 | irq;
		}
		pic_update(p);
		return ret;
	}
	if (port == 0)
		return s->read_isr ? s->isr : s->irr;
	return s->imr;
}

static uint64_t pic_master_read(void *opaque, uint64_t off, unsigned size)
{
	(void)size;
	struct pic *p = opaque;
	return chip_read(p, &p->chip[0], off & 1, true);
}

static void pic_master_write(void *opaque, uint64_t off, unsigned size, uint64_t v)
{
	(void)size;
	struct pic *p = opaque;
	chip_write(p, &p->chip[0], off & 1, (uint8_t)v);
}

static uint64_t pic_slave_read(void *opaque, uint64_t off, unsigned size)
{
	(void)size;
	struct pic *p = opaque;
	return chip_read(p, &p->chip[1], off & 1, false);
}

static void pic_slave_write(void *opaque, uint64_t off, unsigned size, uint64_t v)
{
	(void)size;
	struct pic *p = opaque;
	chip_write(p, &p->chip[1], off & 1, (uint8_t)v);
}

static uint64_t elcr_read(void *opaque, uint64_t off, unsigned size)
{
	struct pic *p = opaque;
	uint64_t v = 0;
	for (unsigned i = 0; i < size && off + i < 2; i++)
		v |= (uint64_t)p->chip[off + i].elcr << (8 * i);
	return v;
}

static void elcr_write(void *opaque, uint64_t off, unsigned size, uint64_t v)
{
	struct pic *p = opaque;
	for (unsigned i = 0; i < size && off + i < 2; i++) {
		struct i8259 *s = &p->chip[off + i];
		s->elcr = (uint8_t)(v >> (8 * i)) & s->elcr_mask;
	}
	pic_update(p);
}

static const struct bus_dev_ops master_ops = { pic_master_read, pic_master_write };
static const struct bus_dev_ops slave_ops = { pic_slave_read, pic_slave_write };
static const struct bus_dev_ops elcr_ops = { elcr_read, elcr_write };

struct pic *pic_new(struct irq intr)
{
	struct pic *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->intr = intr;
	p->chip[0].elcr_mask = 0xf8; /* IRQ 0-2 are always edge */
	p->chip[1].elcr_mask = 0xde; /* IRQ 8 and 13 are always edge */
	return p;
}

void pic_free(struct pic *p)
{
	free(p);
}

int pic_map(struct pic *p, struct pio_bus *bus)
{
	int ret = pio_bus_register(bus, 0x20, 2, &master_ops, p, "pic-master");
	if (!ret)
		ret = pio_bus_register(bus, 0xa0, 2, &slave_ops, p, "pic-slave");
	if (!ret)
		ret = pio_bus_register(bus, 0x4d0, 2, &elcr_ops, p, "elcr");
	return ret;
}

/* 8259A pair: initialization, priorities, EOI, masks, ELCR, poll, cascade. */
#include "hw_test.h"

static struct pio_bus *bus;
static struct irq_rec rec;

static void init_pics(void)
{
	/* Linux's init_8259A: ICW1 edge+ICW4, vectors 0x30/0x38, cascade */
	outb(bus, 0x20, 0x11);
	outb(bus, 0x21, 0x30);
	outb(bus, 0x21, 0x04);
	outb(bus, 0x21, 0x01);
	outb(bus, 0xa0, 0x11);
	outb(bus, 0xa1, 0x38);
	outb(bus, 0xa1, 0x02);
	outb(bus, 0xa1, 0x01);
	outb(bus, 0x21, 0x00);
	outb(bus, 0xa1, 0x00);
}

int main(void)
{
	bus = pio_bus_new();
	struct pic *p = pic_new(irq_rec_line(&rec, 0));
	CHECK(pic_map(p, bus) == 0);
	init_pics();
	CHECK(!pic_intr_asserted(p));

	/* an edge on IRQ 3: INTR up, acknowledge gives vector 0x33 */
	pic_set_irq(p, 3, true);
	CHECK(pic_intr_asserted(p) && rec.level[0]);
	CHECK(inb(bus, 0x20) == 0x08); /* IRR */
	CHECK(pic_get_interrupt(p) == 0x33);
	CHECK(!rec.level[0]);
	outb(bus, 0x20, 0x0b); /* OCW3: read ISR */
	CHECK(inb(bus, 0x20) == 0x08);
	/* a higher-priority IRQ preempts; a lower one waits */
	pic_set_irq(p, 5, true);
	CHECK(!pic_intr_asserted(p));
	pic_set_irq(p, 1, true);
	CHECK(pic_intr_asserted(p));
	CHECK(pic_get_interrupt(p) == 0x31);
	outb(bus, 0x20, 0x20); /* non-specific EOI: ends IRQ 1 */
	CHECK(inb(bus, 0x20) == 0x08);
	outb(bus, 0x20, 0x20); /* ends IRQ 3 */
	CHECK(pic_intr_asserted(p));
	CHECK(pic_get_interrupt(p) == 0x35);
	outb(bus, 0x20, 0x65); /* specific EOI for 5 */
	CHECK(inb(bus, 0x20) == 0x00);
	pic_set_irq(p, 1, false);
	pic_set_irq(p, 5, false);

	/* an edge input held high does not retrigger; a new edge does */
	pic_set_irq(p, 3, false);
	pic_set_irq(p, 3, true);
	pic_set_irq(p, 3, true);
	CHECK(pic_get_interrupt(p) == 0x33);
	outb(bus, 0x20, 0x20);
	CHECK(!pic_intr_asserted(p));
	pic_set_irq(p, 3, false);

	/* mask */
	outb(bus, 0x21, 0x10);
	CHECK(inb(bus, 0x21) == 0x10);
	pic_set_irq(p, 4, true);
	CHECK(!pic_intr_asserted(p));
	outb(bus, 0x21, 0x00);
	CHECK(pic_intr_asserted(p));
	CHECK(pic_get_interrupt(p) == 0x34);
	outb(bus, 0x20, 0x20);
	pic_set_irq(p, 4, false);

	/* the slave through the cascade: IRQ 12 = vector 0x3c, both ISRs */
	pic_set_irq(p, 12, true);
	CHECK(pic_intr_asserted(p));
	CHECK(pic_get_interrupt(p) == 0x3c);
	outb(bus, 0xa0, 0x0b);
	CHECK(inb(bus, 0xa0) == 0x10);
	CHECK(inb(bus, 0x20) == 0x04); /* master ISR: IRQ 2 */
	outb(bus, 0xa0, 0x20);
	outb(bus, 0x20, 0x20);
	pic_set_irq(p, 12, false);

	/* level-triggered via the ELCR: stays requested while high */
	outb(bus, 0x4d1, 0x02 | 0x01); /* IRQ 9 level; IRQ 8 cannot be */
	CHECK(inb(bus, 0x4d1) == 0x02);
	outb(bus, 0x4d0, 0x07); /* IRQ 0-2 cannot be level */
	CHECK(inb(bus, 0x4d0) == 0x00);
	pic_set_irq(p, 9, true);
	CHECK(pic_get_interrupt(p) == 0x39);
	outb(bus, 0xa0, 0x20);
	outb(bus, 0x20, 0x20);
	CHECK(pic_intr_asserted(p)); /* still high: requested again */
	pic_set_irq(p, 9, false);
	CHECK(!pic_intr_asserted(p));

	/* poll mode (OCW3 P bit) */
	pic_set_irq(p, 6, true);
	outb(bus, 0x20, 0x0c);
	CHECK(inb(bus, 0x20) == 0x86);
	outb(bus, 0x20, 0x0b);
	CHECK(inb(bus, 0x20) == 0x40);
	outb(bus, 0x20, 0x20);
	pic_set_irq(p, 6, false);
	outb(bus, 0x20, 0x0c);
	CHECK(inb(bus, 0x20) == 0x00);

	/* auto-EOI: nothing stays in service */
	outb(bus, 0x20, 0x11);
	outb(bus, 0x21, 0x08);
	outb(bus, 0x21, 0x04);
	outb(bus, 0x21, 0x03); /* ICW4: 8086 + AEOI */
	pic_set_irq(p, 0, true);
	CHECK(pic_get_interrupt(p) == 0x08);
	outb(bus, 0x20, 0x0b);
	CHECK(inb(bus, 0x20) == 0x00);
	pic_set_irq(p, 0, false);

	/* special mask: a masked in-service IRQ does not block lower ones */
	init_pics();
	pic_set_irq(p, 1, true);
	CHECK(pic_get_interrupt(p) == 0x31);
	pic_set_irq(p, 5, true);
	CHECK(!pic_intr_asserted(p));
	outb(bus, 0x21, 0x02);
	outb(bus, 0x20, 0x68); /* OCW3: set special mask */
	CHECK(pic_intr_asserted(p));
	CHECK(pic_get_interrupt(p) == 0x35);

	/* rotation: after "rotate on non-specific EOI" of 5, 5 is lowest */
	outb(bus, 0x20, 0x48); /* clear special mask */
	outb(bus, 0x21, 0x00);
	outb(bus, 0x20, 0x20);
	outb(bus, 0x20, 0x20);
	outb(bus, 0x20, 0x0b);
	CHECK(inb(bus, 0x20) == 0x00);
	pic_set_irq(p, 5, false);
	pic_set_irq(p, 1, false);
	pic_set_irq(p, 5, true);
	CHECK(pic_get_interrupt(p) == 0x35);
	outb(bus, 0x20, 0xa0);
	pic_set_irq(p, 5, false);
	pic_set_irq(p, 5, true);
	pic_set_irq(p, 7, true);
	CHECK(pic_get_interrupt(p) == 0x37); /* 7 now outranks 5 */
	pic_set_irq(p, 5, false);
	pic_set_irq(p, 7, false);

	/* spurious: acknowledge with nothing pending gives IRQ 7's vector */
	init_pics();
	CHECK(pic_get_interrupt(p) == 0x37);

	pic_free(p);
	pio_bus_free(bus);
	TEST_MAIN_END();
}

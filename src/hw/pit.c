/*
 * The 8254 PIT: three 16-bit counters at 1.193182 MHz, modes 0-5, latch
 * and read-back commands, channel 2's gate and OUT through port 0x61.
 * Counters are computed from the clock (ticks since the count was loaded)
 * rather than stepped; channel 0 arms a timer for the next rising edge of
 * OUT and gives IRQ 0 that edge.  BCD counting is accepted but counts in
 * binary; the gate does not pause modes 0 and 4.
 */
#include <stdlib.h>

#include "core/core.h"
#include "hw/hw.h"

enum { RW_LATCH = 0, RW_LSB = 1, RW_MSB = 2, RW_WORD = 3 };

struct pit_channel {
	struct pit *pit;
	unsigned idx;
	uint32_t count; /* reload value, 1..0x10000 */
	uint64_t load_ns; /* when counting started (0: not started) */
	bool loaded;	  /* a count was written since the control word */
	bool gate;
	uint8_t mode, rw, bcd;
	uint8_t write_state, read_state; /* RW_* or RW_WORD+1 for "MSB next" */
	uint8_t write_lsb;
	bool count_latched;
	uint16_t latched;
	uint8_t latch_state;
	bool status_latched;
	uint8_t status;
	struct hw_timer timer;
};

struct pit {
	struct hw_clock *clock;
	struct irq irq0;
	struct pit_channel ch[3];
	bool speaker_data;
};

static uint64_t ch_ticks(struct pit_channel *c)
{
	uint64_t now = hw_clock_ns(c->pit->clock);
	return now > c->load_ns ? hw_ns_to_ticks(now - c->load_ns, PIT_HZ) : 0;
}

static bool ch_running(const struct pit_channel *c)
{
	if (!c->loaded || !c->load_ns)
		return false;
	/* modes 2 and 3 stop while the gate is low */
	if ((c->mode == 2 || c->mode == 3) && !c->gate)
		return false;
	return true;
}

/* OUT after d ticks of counting. */
static bool out_at(const struct pit_channel *c, uint64_t d)
{
	uint64_t n = c->count;
	switch (c->mode) {
	case 0:
	case 1:
		return d >= n;
	case 2:
		return d % n != n - 1;
	case 3:
		return d % n < (n + 1) / 2;
	default: /* 4, 5 */
		return d != n;
	}
}

/* Ticks (since the load) of the next rising edge of OUT after d, or
 * UINT64_MAX: that edge is what an edge-triggered IRQ 0 sees. */
static uint64_t next_rise(const struct pit_channel *c, uint64_t d)
{
	uint64_t n = c->count;
	switch (c->mode) {
	case 0:
	case 1:
		return d < n ? n : UINT64_MAX;
	case 2:
	case 3:
		return (d / n + 1) * n;
	default:
		return d < n + 1 ? n + 1 : UINT64_MAX;
	}
}

bool pit_out(struct pit *p, unsigned ch)
{
	struct pit_channel *c = &p->ch[ch % 3];
	if (!c->loaded)
		return c->mode != 0; /* mode 0: low after the control word */
	if (!c->load_ns)
		return true; /* modes 1, 5 before the gate trigger */
	if (!ch_running(c))
		return true;
	return out_at(c, ch_ticks(c));
}

static uint16_t ch_counter(struct pit_channel *c)
{
	if (!c->loaded || !c->load_ns)
		return (uint16_t)c->count;
	uint64_t d = ch_ticks(c), n = c->count;
	switch (c->mode) {
	case 2:
		return (uint16_t)(n - d % n);
	case 3:
		return (uint16_t)((n - (2 * d) % n) & 0xfffe);
	default:
		return (uint16_t)(n - d);
	}
}

/* Arms channel 0's timer for the next rising edge of OUT. */
static void ch_arm(struct pit_channel *c)
{
	hw_timer_del(&c->timer);
	if (c->idx != 0 || !ch_running(c))
		return;
	uint64_t next = next_rise(c, ch_ticks(c));
	if (next != UINT64_MAX)
		hw_timer_mod(&c->timer, c->load_ns + hw_ticks_to_ns(next, PIT_HZ));
}

/* After a reprogramming: IRQ 0 follows OUT, and the timer is re-armed. */
static void ch_update_irq(struct pit_channel *c)
{
	if (c->idx != 0)
		return;
	irq_set(&c->pit->irq0, pit_out(c->pit, 0));
	ch_arm(c);
}

/* A rising edge of OUT is due.  Late timers collapse missed periods into
 * one edge, as lost ticks. */
static void ch0_timer(void *opaque)
{
	struct pit_channel *c = opaque;
	struct pit *p = c->pit;
	if (c->mode >= 2)
		irq_lower(&p->irq0); /* the short low phase of OUT */
	irq_raise(&p->irq0);
	ch_arm(c);
}

static void ch_load(struct pit_channel *c, uint32_t value)
{
	if (value == 0)
		value = 0x10000;
	if (c->mode == 2 && value == 1)
		value = 2; /* 1 is illegal in mode 2 */
	c->count = value;
	c->loaded = true;
	/* modes 1 and 5 wait for a gate edge; the others start now */
	if (c->mode == 1 || c->mode == 5)
		c->load_ns = 0;
	else
		c->load_ns = hw_clock_ns(c->pit->clock);
	ch_update_irq(c);
}

void pit_set_gate(struct pit *p, unsigned ch, bool level)
{
	struct pit_channel *c = &p->ch[ch % 3];
	bool rising = level && !c->gate;
	c->gate = level;
	if (rising && c->loaded && c->mode != 0 && c->mode != 4)
		c->load_ns = hw_clock_ns(p->clock); /* (re)trigger */
	ch_update_irq(c);
}

static void ch_latch(struct pit_channel *c)
{
	if (c->count_latched)
		return;
	c->latched = ch_counter(c);
	c->count_latched = true;
	c->latch_state = c->rw;
}

static void pit_control(struct pit *p, uint8_t val)
{
	unsigned sel = val >> 6;
	if (sel == 3) { /* read-back */
		for (unsigned i = 0; i < 3; i++) {
			struct pit_channel *c = &p->ch[i];
			if (!(val & (2u << i)))
				continue;
			if (!(val & 0x20))
				ch_latch(c);
			if (!(val & 0x10) && !c->status_latched) {
				c->status = (uint8_t)(pit_out(p, i) << 7 | (!c->loaded) << 6 |
						      c->rw << 4 | c->mode << 1 | c->bcd);
				c->status_latched = true;
			}
		}
		return;
	}
	struct pit_channel *c = &p->ch[sel];
	unsigned rw = (val >> 4) & 3;
	if (rw == RW_LATCH) {
		ch_latch(c);
		return;
	}
	c->rw = rw;
	c->read_state = c->write_state = rw;
	c->mode = (val >> 1) & 7;
	if (c->mode > 5)
		c->mode -= 4; /* 6, 7 are 2, 3 */
	c->bcd = val & 1;
	c->loaded = false;
	c->count_latched = false;
	ch_update_irq(c);
}

static uint8_t ch_read(struct pit_channel *c)
{
	if (c->status_latched) {
		c->status_latched = false;
		return c->status;
	}
	if (c->count_latched) {
		uint8_t v;
		switch (c->latch_state) {
		case RW_LSB:
			c->count_latched = false;
			return c->latched & 0xff;
		case RW_MSB:
			c->count_latched = false;
			return c->latched >> 8;
		case RW_WORD:
			c->latch_state = RW_WORD + 1;
			return c->latched & 0xff;
		default:
			v = c->latched >> 8;
			c->count_latched = false;
			return v;
		}
	}
	uint16_t cnt = ch_counter(c);
	switch (c->read_state) {
	case RW_LSB:
		return cnt & 0xff;
	case RW_MSB:
		return cnt >> 8;
	case RW_WORD:
		c->read_state = RW_WORD + 1;
		return cnt & 0xff;
	default:
		c->read_state = RW_WORD;
		return cnt >> 8;
	}
}

static void ch_write(struct pit_channel *c, uint8_t val)
{
	switch (c->write_state) {
	case RW_LSB:
		ch_load(c, val);
		break;
	case RW_MSB:
		ch_load(c, (uint32_t)val << 8);
		break;
	case RW_WORD:
		c->write_lsb = val;
		c->write_state = RW_WORD + 1;
		if (c->mode == 0) { /* writing the first byte stops mode 0 */
			c->loaded = false;
			ch_update_irq(c);
		}
		break;
	default:
		ch_load(c, c->write_lsb | (uint32_t)val << 8);
		c->write_state = RW_WORD;
		break;
	}
}

static uint64_t pit_read(void *opaque, uint64_t off, unsigned size)
{
	(void)size;
	struct pit *p = opaque;
	if (off == 3)
		return 0xff; /* the control register is write-only */
	return ch_read(&p->ch[off]);
}

static void pit_write(void *opaque, uint64_t off, unsigned size, uint64_t v)
{
	(void)size;
	struct pit *p = opaque;
	if (off == 3)
		pit_control(p, (uint8_t)v);
	else
		ch_write(&p->ch[off], (uint8_t)v);
}

/* Port 0x61: bit 0 gate 2, bit 1 speaker data, bit 4 refresh toggle
 * (every 15.085 us), bit 5 OUT2. */
static uint64_t port61_read(void *opaque, uint64_t off, unsigned size)
{
	(void)off;
	(void)size;
	struct pit *p = opaque;
	uint64_t now = hw_clock_ns(p->clock);
	return (uint8_t)(p->ch[2].gate | p->speaker_data << 1 | ((now / 15085) & 1) << 4 |
			 pit_out(p, 2) << 5);
}

static void port61_write(void *opaque, uint64_t off, unsigned size, uint64_t v)
{
	(void)off;
	(void)size;
	struct pit *p = opaque;
	p->speaker_data = (v >> 1) & 1;
	pit_set_gate(p, 2, v & 1);
}

static const struct bus_dev_ops pit_ops = { pit_read, pit_write };
static const struct bus_dev_ops port61_ops = { port61_read, port61_write };

struct pit *pit_new(struct hw_clock *clock, struct irq irq0)
{
	struct pit *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->clock = clock;
	p->irq0 = irq0;
	for (unsigned i = 0; i < 3; i++) {
		struct pit_channel *c = &p->ch[i];
		c->pit = p;
		c->idx = i;
		c->gate = i != 2;
		c->count = 0x10000;
		c->mode = 3;
		c->rw = c->read_state = c->write_state = RW_WORD;
		hw_timer_init(&c->timer, clock, ch0_timer, c);
	}
	return p;
}

void pit_free(struct pit *p)
{
	if (!p)
		return;
	for (unsigned i = 0; i < 3; i++)
		hw_timer_del(&p->ch[i].timer);
	free(p);
}

int pit_map(struct pit *p, struct pio_bus *bus)
{
	int ret = pio_bus_register(bus, 0x40, 4, &pit_ops, p, "pit");
	if (!ret)
		ret = pio_bus_register(bus, 0x61, 1, &port61_ops, p, "port61");
	return ret;
}

/* 8254 PIT: modes, latching, read-back, channel 2 gate via port 0x61. */
#include "hw_test.h"

static struct hw_clock *clk;
static struct pio_bus *bus;

static void advance_ticks(uint64_t ticks)
{
	hw_clock_set_ns(clk, hw_clock_ns(clk) + hw_ticks_to_ns(ticks, PIT_HZ));
	hw_clock_run_timers(clk);
}

static uint16_t read_latched(unsigned ch)
{
	outb(bus, 0x43, (uint8_t)(ch << 6)); /* counter latch */
	uint8_t lo = inb(bus, 0x40 + ch);
	return lo | (uint16_t)inb(bus, 0x40 + ch) << 8;
}

int main(void)
{
	struct irq_rec rec = { 0 };
	clk = hw_clock_new_manual(1000000000ull);
	bus = pio_bus_new();
	struct pit *p = pit_new(clk, irq_rec_line(&rec, 0));
	CHECK(pit_map(p, bus) == 0);

	/* mode 2 (rate generator) on channel 0, count 1000: one rising edge
	 * per period, counter counts down and reloads */
	outb(bus, 0x43, 0x34);
	outb(bus, 0x40, 1000 & 0xff);
	outb(bus, 0x40, 1000 >> 8);
	CHECK(rec.level[0]);
	unsigned rises0 = rec.rises[0];
	advance_ticks(100);
	uint16_t c = read_latched(0);
	CHECK(c <= 900 && c >= 899);
	for (int i = 0; i < 10; i++)
		advance_ticks(500);
	CHECK(rec.rises[0] - rises0 == 5); /* 5100 ticks: 5 periods */

	/* the latch freezes the value until both bytes are read */
	outb(bus, 0x43, 0x00);
	advance_ticks(300);
	uint8_t lo = inb(bus, 0x40), hi = inb(bus, 0x40);
	uint16_t latched = lo | (uint16_t)hi << 8;
	CHECK(latched != read_latched(0));

	/* mode 0 (interrupt on terminal count) on channel 0: OUT low, then
	 * high at count */
	outb(bus, 0x43, 0x30);
	CHECK(!pit_out(p, 0));
	outb(bus, 0x40, 0x10);
	outb(bus, 0x40, 0x00); /* count 16 */
	CHECK(!rec.level[0]);
	advance_ticks(15);
	CHECK(!rec.level[0]);
	advance_ticks(1);
	CHECK(rec.level[0]);
	advance_ticks(1000);
	CHECK(rec.level[0]); /* stays high */

	/* mode 4 (software strobe): one low pulse at count */
	outb(bus, 0x43, 0x38);
	outb(bus, 0x40, 50);
	outb(bus, 0x40, 0);
	CHECK(pit_out(p, 0));
	unsigned r = rec.rises[0];
	advance_ticks(50);
	CHECK(!pit_out(p, 0) && rec.rises[0] == r);
	advance_ticks(1);
	CHECK(pit_out(p, 0) && rec.level[0] && rec.rises[0] == r + 1);
	advance_ticks(1000);
	CHECK(rec.rises[0] == r + 1); /* one shot */

	/* mode 3 square wave: OUT high for the first half */
	outb(bus, 0x43, 0x36);
	outb(bus, 0x40, 100);
	outb(bus, 0x40, 0);
	advance_ticks(10);
	CHECK(pit_out(p, 0));
	advance_ticks(45);
	CHECK(!pit_out(p, 0));
	advance_ticks(50);
	CHECK(pit_out(p, 0));

	/* LSB-only access */
	outb(bus, 0x43, 0x10 | 0x04 | 0x40); /* channel 1, LSB only, mode 2 */
	outb(bus, 0x41, 200);
	advance_ticks(50);
	uint8_t v = inb(bus, 0x41);
	CHECK(v == 150);

	/* channel 2 with the gate through port 0x61, as Linux calibrates:
	 * mode 0, count 0xffff, gate high, wait for OUT2 (bit 5) */
	outb(bus, 0x61, 0x00);
	CHECK((inb(bus, 0x61) & 0x01) == 0);
	outb(bus, 0x61, 0x01);
	outb(bus, 0x43, 0xb0);
	outb(bus, 0x42, 0xff);
	outb(bus, 0x42, 0xff);
	CHECK((inb(bus, 0x61) & 0x21) == 0x01);
	advance_ticks(0x8000);
	uint8_t msb;
	inb(bus, 0x42);
	msb = inb(bus, 0x42);
	CHECK(msb == 0x7f);
	advance_ticks(0x8000);
	CHECK(inb(bus, 0x61) & 0x20);

	/* mode 1 on channel 2: counting starts at the gate's rising edge */
	outb(bus, 0x61, 0x00);
	outb(bus, 0x43, 0xb2);
	outb(bus, 0x42, 100);
	outb(bus, 0x42, 0);
	advance_ticks(500);
	CHECK(pit_out(p, 2)); /* waiting for the trigger */
	outb(bus, 0x61, 0x01);
	CHECK(!pit_out(p, 2));
	advance_ticks(100);
	CHECK(pit_out(p, 2));

	/* read-back: status of channel 2 (OUT high, LSB/MSB, mode 1) then
	 * its count */
	outb(bus, 0x43, 0xc8); /* read-back, count + status, channel 2 */
	uint8_t st = inb(bus, 0x42);
	CHECK(st == (0x80 | 0x30 | 0x02));
	lo = inb(bus, 0x42);
	hi = inb(bus, 0x42);
	CHECK((uint16_t)(lo | hi << 8) == 0); /* 100 - 100 */
	/* status only: a fresh control word reports "null count" */
	outb(bus, 0x43, 0xb4);
	outb(bus, 0x43, 0xe8);
	CHECK(inb(bus, 0x42) == (0x80 | 0x40 | 0x30 | 0x04));

	pit_free(p);
	pio_bus_free(bus);
	hw_clock_free(clk);
	TEST_MAIN_END();
}

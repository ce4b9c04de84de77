/* MC146818 RTC/CMOS: time, BCD/binary, 12/24 h, UIP, interrupts, NMI bit. */
#include "hw_test.h"

static struct pio_bus *bus;
static struct hw_clock *clk;

static uint8_t cmos(uint8_t idx)
{
	outb(bus, 0x70, idx);
	return inb(bus, 0x71);
}

static void cmos_w(uint8_t idx, uint8_t v)
{
	outb(bus, 0x70, idx);
	outb(bus, 0x71, v);
}

static void advance_ns(uint64_t ns)
{
	hw_clock_set_ns(clk, hw_clock_ns(clk) + ns);
	hw_clock_run_timers(clk);
}

int main(void)
{
	struct irq_rec rec = { 0 };
	clk = hw_clock_new_manual(1000000000ull);
	bus = pio_bus_new();
	/* 2024-02-29 23:59:58 UTC, a Thursday */
	struct rtc *r = rtc_new(clk, irq_rec_line(&rec, 8), 1709251198);
	CHECK(rtc_map(r, bus) == 0);

	/* BCD, 24 h by default */
	CHECK(cmos(0x00) == 0x58 && cmos(0x02) == 0x59 && cmos(0x04) == 0x23);
	CHECK(cmos(0x07) == 0x29 && cmos(0x08) == 0x02 && cmos(0x09) == 0x24);
	CHECK(cmos(0x32) == 0x20 && cmos(0x06) == 0x05);
	CHECK(cmos(0x0d) == 0x80);
	advance_ns(2000000000ull); /* the clock moves on: 2024-03-01 00:00:00 */
	CHECK(cmos(0x00) == 0x00 && cmos(0x04) == 0x00 && cmos(0x07) == 0x01 &&
	      cmos(0x08) == 0x03);

	/* binary and 12-hour mode */
	cmos_w(0x0b, 0x04); /* binary, 12 h */
	advance_ns(13ull * 3600 * 1000000000ull); /* 13:00:00 -> 1 PM */
	CHECK(cmos(0x04) == (0x80 | 1));
	CHECK(cmos(0x08) == 3);

	/* UIP: high in the last 244 us before a second boundary */
	cmos_w(0x0b, 0x02); /* BCD, 24 h */
	uint64_t now = hw_clock_ns(clk);
	advance_ns(1000000000ull - now % 1000000000ull - 100000); /* 100 us before */
	CHECK(cmos(0x0a) & 0x80);
	advance_ns(200000);
	CHECK(!(cmos(0x0a) & 0x80));

	/* setting the time with SET */
	cmos_w(0x0b, 0x82);
	cmos_w(0x04, 0x10);
	cmos_w(0x02, 0x20);
	cmos_w(0x00, 0x30);
	cmos_w(0x0b, 0x02);
	CHECK(cmos(0x04) == 0x10 && cmos(0x02) == 0x20 && cmos(0x00) == 0x30);
	advance_ns(1000000000ull);
	CHECK(cmos(0x00) == 0x31);

	/* periodic interrupt: rate 6 = 1024 Hz, PF in register C, IRQ 8 */
	CHECK(cmos(0x0c) == 0x00);
	cmos_w(0x0a, 0x26);
	cmos_w(0x0b, 0x42);
	unsigned rises = rec.rises[8];
	advance_ns(1000000); /* about one period */
	CHECK(rec.level[8] && rec.rises[8] == rises + 1);
	CHECK(cmos(0x0c) == 0xc0);
	CHECK(!rec.level[8]); /* reading C lowers the line */
	for (int i = 0; i < 100; i++) {
		advance_ns(976562);
		cmos(0x0c);
	}
	CHECK(rec.rises[8] >= rises + 99 && rec.rises[8] <= rises + 102);
	cmos_w(0x0b, 0x02);
	CHECK(hw_clock_next_deadline(clk) == UINT64_MAX); /* nothing armed */

	/* update-ended interrupt once a second */
	cmos_w(0x0b, 0x12);
	rises = rec.rises[8];
	advance_ns(1000000000ull);
	CHECK(rec.rises[8] == rises + 1 && (cmos(0x0c) & 0x90) == 0x90);

	/* alarm: fires when h:m:s match (0xc0 = don't care) */
	cmos_w(0x0b, 0x22);
	uint8_t sec = cmos(0x00);
	unsigned s = (sec >> 4) * 10 + (sec & 0xf);
	s = (s + 3) % 60;
	cmos_w(0x01, (uint8_t)((s / 10) << 4 | s % 10));
	cmos_w(0x03, 0xc0);
	cmos_w(0x05, 0xc0);
	rises = rec.rises[8];
	advance_ns(1000000000ull);
	advance_ns(1000000000ull);
	CHECK(rec.rises[8] == rises);
	advance_ns(1000000000ull);
	CHECK(rec.rises[8] == rises + 1 && (cmos(0x0c) & 0xa0) == 0xa0);

	/* NMI mask bit of port 0x70; the index still works */
	outb(bus, 0x70, 0x80 | 0x0d);
	CHECK(rtc_nmi_masked(r));
	CHECK(inb(bus, 0x71) == 0x80);
	outb(bus, 0x70, 0x0d);
	CHECK(!rtc_nmi_masked(r));

	/* CMOS RAM and the memory size fields */
	cmos_w(0x40, 0x5a);
	CHECK(cmos(0x40) == 0x5a);
	rtc_set_memory_size(r, 512ull << 20, 1ull << 30);
	CHECK((cmos(0x15) | cmos(0x16) << 8) == 640);
	CHECK((cmos(0x17) | cmos(0x18) << 8) == 0xffff);
	CHECK((cmos(0x34) | cmos(0x35) << 8) == ((512u - 16) << 20) >> 16);
	CHECK((cmos(0x5b) | cmos(0x5c) << 8 | cmos(0x5d) << 16) == (1u << 30) >> 16);

	rtc_free(r);
	pio_bus_free(bus);
	hw_clock_free(clk);
	TEST_MAIN_END();
}

/*
 * MC146818 RTC and the 128 bytes of CMOS behind ports 0x70/0x71.
 *
 * Time is start_time + the clock's elapsed seconds + an offset the guest
 * sets by writing the clock registers (with SET in register B).  UIP is
 * high during the last 244 us before each second boundary.  The periodic
 * interrupt (rate in register A), the update-ended and the alarm interrupt
 * use timers that are armed only while their enable bit is set; register C
 * reports the flags and reading it lowers IRQ 8.
 */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "hw/hw.h"

enum {
	REG_SEC = 0, REG_SEC_ALARM = 1, REG_MIN = 2, REG_MIN_ALARM = 3,
	REG_HOUR = 4, REG_HOUR_ALARM = 5, REG_WDAY = 6, REG_MDAY = 7,
	REG_MONTH = 8, REG_YEAR = 9, REG_A = 10, REG_B = 11, REG_C = 12, REG_D = 13,
	REG_CENTURY = 0x32,
};
#define B_SET 0x80
#define B_PIE 0x40
#define B_AIE 0x20
#define B_UIE 0x10
#define B_DM_BINARY 0x04
#define B_24H 0x02
#define C_IRQF 0x80
#define C_PF 0x40
#define C_AF 0x20
#define C_UF 0x10
#define A_UIP 0x80
#define NS_PER_S 1000000000ull
#define UIP_NS 244000ull

struct rtc {
	struct hw_clock *clock;
	struct irq irq;
	uint8_t cmos[128];
	uint8_t index;
	bool nmi_masked;
	int64_t base_s; /* guest time = base_s + clock seconds */
	struct hw_timer periodic, second;
	uint64_t periodic_next;
};

static int64_t rtc_now_s(struct rtc *r)
{
	return r->base_s + (int64_t)(hw_clock_ns(r->clock) / NS_PER_S);
}

static uint8_t to_reg(const struct rtc *r, unsigned v)
{
	if (r->cmos[REG_B] & B_DM_BINARY)
		return (uint8_t)v;
	return (uint8_t)(((v / 10) << 4) | (v % 10));
}

static unsigned from_reg(const struct rtc *r, uint8_t v)
{
	if (r->cmos[REG_B] & B_DM_BINARY)
		return v;
	return (v >> 4) * 10 + (v & 0xf);
}

static uint8_t hour_to_reg(const struct rtc *r, unsigned hour)
{
	if (r->cmos[REG_B] & B_24H)
		return to_reg(r, hour);
	unsigned h12 = hour % 12 ? hour % 12 : 12;
	return (uint8_t)(to_reg(r, h12) | (hour >= 12 ? 0x80 : 0));
}

static unsigned hour_from_reg(const struct rtc *r, uint8_t v)
{
	if (r->cmos[REG_B] & B_24H)
		return from_reg(r, v);
	unsigned h = from_reg(r, v & 0x7f) % 12;
	return (v & 0x80) ? h + 12 : h;
}

/* Fills the clock registers from the current time. */
static void rtc_fill_time(struct rtc *r)
{
	time_t t = (time_t)rtc_now_s(r);
	struct tm tm;
	gmtime_r(&t, &tm);
	r->cmos[REG_SEC] = to_reg(r, tm.tm_sec);
	r->cmos[REG_MIN] = to_reg(r, tm.tm_min);
	r->cmos[REG_HOUR] = hour_to_reg(r, tm.tm_hour);
	r->cmos[REG_WDAY] = to_reg(r, tm.tm_wday + 1);
	r->cmos[REG_MDAY] = to_reg(r, tm.tm_mday);
	r->cmos[REG_MONTH] = to_reg(r, tm.tm_mon + 1);
	r->cmos[REG_YEAR] = to_reg(r, tm.tm_year % 100);
	r->cmos[REG_CENTURY] = to_reg(r, (tm.tm_year + 1900) / 100);
}

/* The guest wrote the clock registers: make them the current time. */
static void rtc_take_time(struct rtc *r)
{
	struct tm tm = { 0 };
	tm.tm_sec = from_reg(r, r->cmos[REG_SEC]);
	tm.tm_min = from_reg(r, r->cmos[REG_MIN]);
	tm.tm_hour = hour_from_reg(r, r->cmos[REG_HOUR]);
	tm.tm_mday = from_reg(r, r->cmos[REG_MDAY]);
	tm.tm_mon = (int)from_reg(r, r->cmos[REG_MONTH]) - 1;
	int century = from_reg(r, r->cmos[REG_CENTURY]);
	if (century < 19 || century > 99)
		century = 20;
	tm.tm_year = century * 100 + from_reg(r, r->cmos[REG_YEAR]) - 1900;
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return;
	r->base_s = (int64_t)t - (int64_t)(hw_clock_ns(r->clock) / NS_PER_S);
}

static void rtc_update_irq(struct rtc *r)
{
	uint8_t c = r->cmos[REG_C] & (C_PF | C_AF | C_UF);
	uint8_t en = r->cmos[REG_B] & (B_PIE | B_AIE | B_UIE);
	/* the enable bits line up with the flags: PIE/PF, AIE/AF, UIE/UF */
	if (c & en) {
		r->cmos[REG_C] = c | C_IRQF;
		irq_raise(&r->irq);
	} else {
		r->cmos[REG_C] = c;
	}
}

/* Periodic rate in ns from register A, or 0 when off. */
static uint64_t periodic_ns(const struct rtc *r)
{
	unsigned rate = r->cmos[REG_A] & 0xf;
	if (!rate)
		return 0;
	if (rate <= 2)
		rate += 7;
	/* period = 2^(rate-1) cycles of 32.768 kHz */
	return hw_ticks_to_ns(1ull << (rate - 1), 32768);
}

static void rtc_arm(struct rtc *r)
{
	uint64_t now = hw_clock_ns(r->clock), p = periodic_ns(r);
	if ((r->cmos[REG_B] & B_PIE) && p) {
		if (!hw_timer_pending(&r->periodic))
			hw_timer_mod(&r->periodic, (now / p + 1) * p);
	} else {
		hw_timer_del(&r->periodic);
	}
	if ((r->cmos[REG_B] & (B_AIE | B_UIE)) && !(r->cmos[REG_B] & B_SET)) {
		if (!hw_timer_pending(&r->second))
			hw_timer_mod(&r->second, (now / NS_PER_S + 1) * NS_PER_S);
	} else {
		hw_timer_del(&r->second);
	}
}

static void rtc_periodic_cb(void *opaque)
{
	struct rtc *r = opaque;
	r->cmos[REG_C] |= C_PF;
	rtc_update_irq(r);
	rtc_arm(r);
}

static bool alarm_match(uint8_t alarm, uint8_t now)
{
	return (alarm & 0xc0) == 0xc0 || alarm == now;
}

static void rtc_second_cb(void *opaque)
{
	struct rtc *r = opaque;
	r->cmos[REG_C] |= C_UF;
	rtc_fill_time(r);
	if (alarm_match(r->cmos[REG_SEC_ALARM], r->cmos[REG_SEC]) &&
	    alarm_match(r->cmos[REG_MIN_ALARM], r->cmos[REG_MIN]) &&
	    alarm_match(r->cmos[REG_HOUR_ALARM], r->cmos[REG_HOUR]))
		r->cmos[REG_C] |= C_AF;
	rtc_update_irq(r);
	rtc_arm(r);
}

static uint8_t rtc_read_reg(struct rtc *r, unsigned idx)
{
	uint8_t v;
	switch (idx) {
	case REG_SEC: case REG_MIN: case REG_HOUR: case REG_WDAY:
	case REG_MDAY: case REG_MONTH: case REG_YEAR: case REG_CENTURY:
		if (!(r->cmos[REG_B] & B_SET))
			rtc_fill_time(r);
		return r->cmos[idx];
	case REG_A: {
		v = r->cmos[REG_A] & ~A_UIP;
		uint64_t now = hw_clock_ns(r->clock);
		if ((v & 0x70) == 0x20 && !(r->cmos[REG_B] & B_SET) &&
		    now % NS_PER_S >= NS_PER_S - UIP_NS)
			v |= A_UIP;
		return v;
	}
	case REG_C:
		v = r->cmos[REG_C];
		r->cmos[REG_C] = 0;
		irq_lower(&r->irq);
		return v;
	case REG_D:
		return 0x80; /* valid RAM and time */
	default:
		return r->cmos[idx];
	}
}

static void rtc_write_reg(struct rtc *r, unsigned idx, uint8_t v)
{
	switch (idx) {
	case REG_SEC: case REG_MIN: case REG_HOUR: case REG_WDAY:
	case REG_MDAY: case REG_MONTH: case REG_YEAR: case REG_CENTURY:
		if (!(r->cmos[REG_B] & B_SET))
			rtc_fill_time(r); /* the other fields stay current */
		r->cmos[idx] = v;
		if (!(r->cmos[REG_B] & B_SET))
			rtc_take_time(r);
		break;
	case REG_A:
		r->cmos[REG_A] = v & 0x7f;
		hw_timer_del(&r->periodic);
		rtc_arm(r);
		break;
	case REG_B: {
		uint8_t old = r->cmos[REG_B];
		if (old & B_SET)
			rtc_take_time(r); /* the guest's edits, in the old format */
		r->cmos[REG_B] = v;
		if (v & B_SET)
			rtc_fill_time(r); /* frozen, in the new format */
		rtc_update_irq(r);
		rtc_arm(r);
		break;
	}
	case REG_C:
	case REG_D:
		break; /* read-only */
	default:
		r->cmos[idx] = v;
	}
}

static uint64_t rtc_io_read(void *opaque, uint64_t off, unsigned size)
{
	(void)size;
	struct rtc *r = opaque;
	if (off == 0)
		return 0xff; /* the index register is write-only */
	return rtc_read_reg(r, r->index);
}

static void rtc_io_write(void *opaque, uint64_t off, unsigned size, uint64_t v)
{
	(void)size;
	struct rtc *r = opaque;
	if (off == 0) {
		r->index = v & 0x7f;
		r->nmi_masked = v & 0x80;
	} else {
		rtc_write_reg(r, r->index, (uint8_t)v);
	}
}

static const struct bus_dev_ops rtc_ops = { rtc_io_read, rtc_io_write };

struct rtc *rtc_new(struct hw_clock *clock, struct irq irq8, time_t start_time)
{
	struct rtc *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->clock = clock;
	r->irq = irq8;
	r->base_s = (int64_t)start_time - (int64_t)(hw_clock_ns(clock) / NS_PER_S);
	r->cmos[REG_A] = 0x26; /* 32.768 kHz time base, 1024 Hz periodic rate */
	r->cmos[REG_B] = B_24H;
	r->cmos[REG_D] = 0x80;
	hw_timer_init(&r->periodic, clock, rtc_periodic_cb, r);
	hw_timer_init(&r->second, clock, rtc_second_cb, r);
	rtc_fill_time(r);
	return r;
}

void rtc_free(struct rtc *r)
{
	if (!r)
		return;
	hw_timer_del(&r->periodic);
	hw_timer_del(&r->second);
	free(r);
}

int rtc_map(struct rtc *r, struct pio_bus *bus)
{
	return pio_bus_register(bus, 0x70, 2, &rtc_ops, r, "rtc");
}

void rtc_cmos_set(struct rtc *r, unsigned index, uint8_t value)
{
	if (index < 128 && index > REG_D)
		r->cmos[index] = value;
}

uint8_t rtc_cmos_get(struct rtc *r, unsigned index)
{
	return index < 128 ? rtc_read_reg(r, index) : 0xff;
}

void rtc_set_memory_size(struct rtc *r, uint64_t lowmem_end, uint64_t highmem_bytes)
{
	r->cmos[0x15] = 640 & 0xff;
	r->cmos[0x16] = 640 >> 8;
	uint64_t ext_kb = lowmem_end > (1u << 20) ? (lowmem_end - (1u << 20)) / 1024 : 0;
	if (ext_kb > 0xffff)
		ext_kb = 0xffff;
	r->cmos[0x17] = r->cmos[0x30] = ext_kb & 0xff;
	r->cmos[0x18] = r->cmos[0x31] = ext_kb >> 8;
	uint64_t above16 = lowmem_end > (16u << 20) ? (lowmem_end - (16u << 20)) >> 16 : 0;
	if (above16 > 0xffff)
		above16 = 0xffff;
	r->cmos[0x34] = above16 & 0xff;
	r->cmos[0x35] = above16 >> 8;
	uint64_t above4g = highmem_bytes >> 16;
	r->cmos[0x5b] = above4g & 0xff;
	r->cmos[0x5c] = (above4g >> 8) & 0xff;
	r->cmos[0x5d] = (above4g >> 16) & 0xff;
}

bool rtc_nmi_masked(const struct rtc *r)
{
	return r->nmi_masked;
}

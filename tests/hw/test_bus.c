/* Buses (windows, overlaps, splitting) and the clock's timers. */
#include <errno.h>

#include "hw_test.h"

struct scratch {
	uint8_t regs[16];
	uint64_t last_off;
	unsigned last_size, reads, writes;
};

static uint64_t scratch_read(void *opaque, uint64_t off, unsigned size)
{
	struct scratch *s = opaque;
	s->reads++;
	s->last_off = off;
	s->last_size = size;
	uint64_t v = 0;
	for (unsigned i = 0; i < size; i++)
		v |= (uint64_t)s->regs[off + i] << (8 * i);
	return v;
}

static void scratch_write(void *opaque, uint64_t off, unsigned size, uint64_t v)
{
	struct scratch *s = opaque;
	s->writes++;
	s->last_off = off;
	s->last_size = size;
	for (unsigned i = 0; i < size; i++)
		s->regs[off + i] = (uint8_t)(v >> (8 * i));
}

static const struct bus_dev_ops scratch_ops = { scratch_read, scratch_write };

static void test_pio(void)
{
	struct pio_bus *b = pio_bus_new();
	struct scratch a = { 0 }, c = { 0 };
	CHECK(pio_bus_register(b, 0x100, 4, &scratch_ops, &a, "a") == 0);
	CHECK(pio_bus_register(b, 0x104, 4, &scratch_ops, &c, "c") == 0);
	CHECK(pio_bus_register(b, 0x103, 2, &scratch_ops, &c, "overlap") == -EEXIST);
	CHECK(pio_bus_register(b, 0xfffe, 4, &scratch_ops, &c, "past end") == -EINVAL);
	CHECK(pio_bus_register(b, 0x200, 0, &scratch_ops, &c, "empty") == -EINVAL);
	CHECK(strcmp(pio_bus_name_at(b, 0x105), "c") == 0);

	/* the device sees its own offset */
	CHECK(pio_bus_write(b, 0x102, 2, 0xbeef) == 0);
	CHECK(a.last_off == 2 && a.last_size == 2 && a.regs[2] == 0xef && a.regs[3] == 0xbe);
	uint32_t v;
	CHECK(pio_bus_read(b, 0x102, 2, &v) == 0 && v == 0xbeef);

	/* straddling two devices: split into bytes */
	CHECK(pio_bus_write(b, 0x103, 2, 0x1122) == 0);
	CHECK(a.regs[3] == 0x22 && c.regs[0] == 0x11 && c.last_size == 1);
	CHECK(pio_bus_read(b, 0x103, 2, &v) == 0 && v == 0x1122);

	/* nothing there */
	CHECK(pio_bus_read(b, 0x300, 4, &v) == -ENODEV && v == 0xffffffffu);
	CHECK(pio_bus_write(b, 0x300, 1, 0) == -ENODEV);
	/* half there: the missing bytes read as ones */
	CHECK(pio_bus_read(b, 0x107, 2, &v) == 0 && v == 0xff00u);
	CHECK(pio_bus_read(b, 0x100, 3, &v) == -EINVAL);

	CHECK(pio_bus_unregister(b, 0x104) == 0);
	CHECK(pio_bus_unregister(b, 0x104) == -ENOENT);
	CHECK(pio_bus_read(b, 0x104, 1, &v) == -ENODEV);
	pio_bus_free(b);
}

static void test_mmio(void)
{
	struct mmio_bus *b = mmio_bus_new();
	struct scratch a = { 0 };
	CHECK(mmio_bus_register(b, 0xfec00000, 16, &scratch_ops, &a, "a") == 0);
	CHECK(mmio_bus_register(b, 0xfebffff8, 16, &scratch_ops, &a, "x") == -EEXIST);
	CHECK(mmio_bus_write(b, 0xfec00008, 8, 0x0102030405060708ull) == 0);
	CHECK(a.last_off == 8 && a.last_size == 8);
	uint64_t v;
	CHECK(mmio_bus_read(b, 0xfec00008, 8, &v) == 0 && v == 0x0102030405060708ull);
	CHECK(mmio_bus_read(b, 0xfec00010, 4, &v) == -ENODEV && v == 0xffffffffu);
	CHECK(mmio_bus_read(b, UINT64_MAX - 1, 4, &v) == -ENODEV);
	mmio_bus_free(b);
}

static unsigned fired[4];
static struct hw_timer *rearm_timer;
static void timer_cb(void *opaque)
{
	unsigned i = (unsigned)(uintptr_t)opaque;
	fired[i]++;
	if (i == 3 && fired[3] < 3)
		hw_timer_mod(rearm_timer, rearm_timer->deadline_ns + 100);
}

static unsigned notified;
static void notify_cb(void *opaque)
{
	(void)opaque;
	notified++;
}

static void test_clock(void)
{
	struct hw_clock *c = hw_clock_new_manual(2000000000ull);
	CHECK(hw_clock_new_manual(0) == NULL);
	hw_clock_set_notify(c, notify_cb, NULL);
	struct hw_timer t[4];
	for (unsigned i = 0; i < 4; i++)
		hw_timer_init(&t[i], c, timer_cb, (void *)(uintptr_t)i);
	rearm_timer = &t[3];
	CHECK(hw_clock_next_deadline(c) == UINT64_MAX);
	hw_timer_mod(&t[0], 5000);
	hw_timer_mod(&t[1], 1000);
	hw_timer_mod(&t[2], 3000);
	CHECK(notified == 2); /* t0 first, then t1 moved the deadline earlier */
	CHECK(hw_clock_next_deadline(c) == 1000);
	hw_timer_del(&t[1]);
	CHECK(!hw_timer_pending(&t[1]));
	CHECK(hw_clock_next_deadline(c) == 3000);
	hw_clock_set_ns(c, 2999);
	CHECK(hw_clock_run_timers(c) == 0);
	hw_clock_set_ns(c, 5000);
	CHECK(hw_clock_run_timers(c) == 2 && fired[0] == 1 && fired[2] == 1 && fired[1] == 0);
	CHECK(hw_clock_next_deadline(c) == UINT64_MAX);
	hw_clock_set_ns(c, 100); /* time never goes back */
	CHECK(hw_clock_ns(c) == 5000);
	/* TSC at 2 GHz */
	CHECK(hw_clock_tsc(c) == 10000);
	CHECK(hw_clock_tsc_to_ns(c, 10001) == 5001);
	/* a timer that re-arms itself from its callback */
	hw_timer_mod(&t[3], 5100);
	hw_clock_set_ns(c, 6000);
	CHECK(hw_clock_run_timers(c) == 3 && fired[3] == 3);
	hw_clock_free(c);

	/* the host clock moves forward */
	struct hw_clock *h = hw_clock_new_host(1000000000ull);
	uint64_t a = hw_clock_ns(h);
	struct timespec ts = { 0, 2000000 };
	nanosleep(&ts, NULL);
	CHECK(hw_clock_ns(h) >= a + 2000000);
	hw_clock_free(h);
	CHECK(hw_ns_to_ticks(1000000000ull, PIT_HZ) == PIT_HZ);
	CHECK(hw_ticks_to_ns(PIT_HZ, PIT_HZ) == 1000000000ull);
}

int main(void)
{
	test_pio();
	test_mmio();
	test_clock();
	TEST_MAIN_END();
}

/* LAPIC (priorities, EOI, timer modes, IPIs, LINT0/ExtINT) and IOAPIC. */
#include <errno.h>

#include "hw_test.h"

enum { TPR = 0x80, PPR = 0xa0, EOI = 0xb0, LDR = 0xd0, DFR = 0xe0, SVR = 0xf0,
       ISR = 0x100, TMR = 0x180, IRR = 0x200, ESR = 0x280, ICR_LO = 0x300, ICR_HI = 0x310,
       LVT_TIMER = 0x320, LVT_LINT0 = 0x350, TMICT = 0x380, TMCCT = 0x390, TDCR = 0x3e0 };

static struct hw_clock *clk;
static unsigned kicks[4];
static void kick(void *opaque)
{
	kicks[(uintptr_t)opaque]++;
}

static uint32_t rd(struct lapic *l, unsigned reg) { return lapic_mmio_read(l, reg, 4); }
static void wr(struct lapic *l, unsigned reg, uint32_t v) { lapic_mmio_write(l, reg, 4, v); }

static void advance(uint64_t ns)
{
	hw_clock_set_ns(clk, hw_clock_ns(clk) + ns);
	hw_clock_run_timers(clk);
}

/* get + ack, as the CPU does */
static int take(struct lapic *l)
{
	int v = lapic_get_interrupt(l);
	if (v >= 0)
		lapic_ack(l, v);
	return v;
}

static uint8_t eoi_vec;
static unsigned eoi_count;
static struct ioapic *the_ioapic;
static void on_eoi(void *opaque, uint8_t vector)
{
	(void)opaque;
	eoi_vec = vector;
	eoi_count++;
	if (the_ioapic)
		ioapic_eoi(the_ioapic, vector);
}

static void test_lapic_basics(struct apic_bus *bus)
{
	struct lapic *l = lapic_new(bus, clk, 0, true, kick, (void *)0);
	CHECK(lapic_new(bus, clk, 0, false, kick, NULL) == NULL); /* id taken */
	CHECK(lapic_get_base(l) == (0xfee00000ull | LAPIC_BASE_ENABLE | LAPIC_BASE_BSP));
	CHECK(rd(l, 0x20) == 0);
	CHECK((rd(l, 0x30) & 0xff) == 0x14);
	CHECK(rd(l, SVR) == 0xff);
	CHECK(rd(l, LVT_LINT0) == 0x700); /* virtual wire */
	CHECK(rd(l, LVT_TIMER) & (1u << 16));

	wr(l, SVR, 0x1ff);
	/* priorities: the higher class first, TPR blocks its class */
	apic_bus_deliver(bus, 0, false, APIC_DM_FIXED, 0x41, false);
	apic_bus_deliver(bus, 0, false, APIC_DM_FIXED, 0x52, false);
	CHECK(kicks[0] == 2);
	CHECK(rd(l, IRR + 0x20) == ((1u << 1) | (1u << 18)) && rd(l, IRR + 0x30) == 0);
	wr(l, TPR, 0x50);
	CHECK(lapic_get_interrupt(l) == LAPIC_INTR_NONE);
	CHECK(rd(l, PPR) == 0x50);
	wr(l, TPR, 0x00);
	CHECK(take(l) == 0x52);
	CHECK(rd(l, PPR) == 0x50);
	CHECK(lapic_get_interrupt(l) == LAPIC_INTR_NONE); /* 0x41 is below */
	CHECK(rd(l, ISR + 0x20) == (1u << 18)); /* 0x52 = bit 18 of word 2 */
	wr(l, EOI, 0);
	CHECK(rd(l, PPR) == 0x00);
	CHECK(take(l) == 0x41);
	wr(l, EOI, 0);
	CHECK(lapic_get_interrupt(l) == LAPIC_INTR_NONE);
	CHECK(eoi_count == 0); /* edge: no broadcast */
	/* CR8 is TPR[7:4] */
	lapic_set_cr8(l, 3);
	CHECK(rd(l, TPR) == 0x30 && lapic_get_cr8(l) == 3);
	lapic_set_cr8(l, 0);

	/* level-triggered: TMR set, EOI broadcast */
	apic_bus_deliver(bus, 0, false, APIC_DM_FIXED, 0x60, true);
	CHECK(rd(l, TMR + 0x30) == 1);
	CHECK(take(l) == 0x60);
	wr(l, EOI, 0);
	CHECK(eoi_count == 1 && eoi_vec == 0x60);

	/* illegal vector: ESR */
	apic_bus_deliver(bus, 0, false, APIC_DM_FIXED, 0x05, false);
	wr(l, ESR, 0);
	CHECK(rd(l, ESR) == (1u << 6));

	/* ExtINT through LINT0, and with LINT0 masked nothing */
	lapic_set_lint(l, 0, true);
	CHECK(lapic_get_interrupt(l) == LAPIC_INTR_EXTINT);
	wr(l, LVT_LINT0, 0x10700);
	CHECK(lapic_get_interrupt(l) == LAPIC_INTR_NONE);
	/* a hardware-disabled APIC passes INTR straight through */
	CHECK(lapic_set_base(l, 0xfee00000ull) == 0);
	CHECK(!lapic_hw_enabled(l));
	CHECK(lapic_get_interrupt(l) == LAPIC_INTR_EXTINT);
	CHECK(lapic_set_base(l, 0xfee00000ull | LAPIC_BASE_ENABLE | 1) == -EINVAL);
	CHECK(lapic_set_base(l, 0xfee00000ull | LAPIC_BASE_ENABLE) == 0);
	CHECK(lapic_get_base(l) & LAPIC_BASE_BSP);
	lapic_set_lint(l, 0, false);
	CHECK(lapic_get_interrupt(l) == LAPIC_INTR_NONE);
	/* an ExtINT message (IOAPIC pin in ExtINT mode) until acknowledged */
	wr(l, SVR, 0x1ff);
	CHECK(apic_bus_deliver(bus, 0, false, APIC_DM_EXTINT, 0, false) == 1);
	CHECK(lapic_get_interrupt(l) == LAPIC_INTR_EXTINT);
	lapic_ack(l, LAPIC_INTR_EXTINT);
	CHECK(lapic_get_interrupt(l) == LAPIC_INTR_NONE);
	/* LINT1 as NMI */
	wr(l, SVR, 0x1ff);
	wr(l, 0x360, 0x400);
	lapic_set_lint(l, 1, true);
	CHECK(lapic_wants_wakeup(l));
	CHECK(lapic_take_events(l, NULL) == LAPIC_EV_NMI);
	lapic_set_lint(l, 1, false);
	lapic_free(l);
}

static void test_lapic_timer(struct apic_bus *bus)
{
	struct lapic *l = lapic_new(bus, clk, 0, true, kick, (void *)0);
	wr(l, SVR, 0x1ff);
	/* one-shot, divide by 16: 1000 counts = 16 us */
	wr(l, TDCR, 0x3);
	wr(l, LVT_TIMER, 0xec);
	wr(l, TMICT, 1000);
	CHECK(rd(l, TMICT) == 1000);
	advance(8000);
	CHECK(rd(l, TMCCT) == 500);
	CHECK(lapic_get_interrupt(l) == LAPIC_INTR_NONE);
	advance(8000);
	CHECK(rd(l, TMCCT) == 0);
	CHECK(take(l) == 0xec);
	wr(l, EOI, 0);
	advance(100000);
	CHECK(lapic_get_interrupt(l) == LAPIC_INTR_NONE); /* one shot */

	/* periodic, divide by 1: every 10 us */
	wr(l, TDCR, 0xb);
	wr(l, LVT_TIMER, (1u << 17) | 0xed);
	wr(l, TMICT, 10000);
	int fired = 0;
	for (int i = 0; i < 10; i++) {
		advance(5000);
		if (take(l) == 0xed) {
			fired++;
			wr(l, EOI, 0);
		}
	}
	CHECK(fired == 5);
	CHECK(rd(l, TMCCT) <= 10000);
	/* masked: counts but does not interrupt */
	wr(l, LVT_TIMER, (1u << 16) | (1u << 17) | 0xed);
	advance(50000);
	CHECK(lapic_get_interrupt(l) == LAPIC_INTR_NONE);

	/* TSC-deadline (TSC at 1 GHz here): TMICT is ignored */
	wr(l, LVT_TIMER, (2u << 17) | 0xee);
	CHECK(lapic_get_tsc_deadline(l) == 0);
	wr(l, TMICT, 5);
	CHECK(rd(l, TMICT) == 0);
	uint64_t tsc = hw_clock_tsc(clk);
	lapic_set_tsc_deadline(l, tsc + 3000);
	CHECK(hw_clock_next_deadline(clk) == hw_clock_tsc_to_ns(clk, tsc + 3000));
	advance(2000);
	CHECK(lapic_get_interrupt(l) == LAPIC_INTR_NONE);
	advance(1000);
	CHECK(take(l) == 0xee);
	CHECK(lapic_get_tsc_deadline(l) == 0);
	wr(l, EOI, 0);
	lapic_set_tsc_deadline(l, hw_clock_tsc(clk) + 1000);
	lapic_set_tsc_deadline(l, 0); /* disarm */
	advance(5000);
	CHECK(lapic_get_interrupt(l) == LAPIC_INTR_NONE);
	lapic_free(l);
}

static void test_ipis(struct apic_bus *bus)
{
	struct lapic *l[3];
	for (unsigned i = 0; i < 3; i++) {
		l[i] = lapic_new(bus, clk, (uint8_t)i, i == 0, kick, (void *)(uintptr_t)(i + 1));
		wr(l[i], SVR, 0x1ff);
	}
	/* fixed, physical destination 2 */
	wr(l[0], ICR_HI, 2u << 24);
	wr(l[0], ICR_LO, 0x4031);
	CHECK(lapic_get_interrupt(l[2]) == 0x31 && lapic_get_interrupt(l[1]) == LAPIC_INTR_NONE);
	CHECK(!(rd(l[0], ICR_LO) & (1u << 12)));
	take(l[2]);
	wr(l[2], EOI, 0);
	/* all excluding self */
	wr(l[1], ICR_LO, (3u << 18) | 0x4032);
	CHECK(lapic_get_interrupt(l[0]) == 0x32 && lapic_get_interrupt(l[2]) == 0x32 &&
	      lapic_get_interrupt(l[1]) == LAPIC_INTR_NONE);
	take(l[0]);
	take(l[2]);
	wr(l[0], EOI, 0);
	wr(l[2], EOI, 0);
	/* self */
	wr(l[1], ICR_LO, (1u << 18) | 0x33);
	CHECK(take(l[1]) == 0x33);
	wr(l[1], EOI, 0);
	/* logical flat: LDR bits */
	wr(l[1], LDR, 0x02000000);
	wr(l[2], LDR, 0x04000000);
	wr(l[0], ICR_HI, 0x06u << 24);
	wr(l[0], ICR_LO, (1u << 11) | 0x34);
	CHECK(take(l[1]) == 0x34 && take(l[2]) == 0x34);
	wr(l[1], EOI, 0);
	wr(l[2], EOI, 0);
	/* logical cluster */
	wr(l[1], DFR, 0x0fffffff);
	wr(l[1], LDR, 0x21000000);
	CHECK(apic_bus_deliver(bus, 0x21, true, APIC_DM_FIXED, 0x35, false) == 1);
	CHECK(apic_bus_deliver(bus, 0x11, true, APIC_DM_FIXED, 0x35, false) == 0);
	CHECK(take(l[1]) == 0x35);
	wr(l[1], EOI, 0);
	/* lowest priority: the one with the lowest PPR */
	wr(l[1], TPR, 0x40);
	wr(l[2], TPR, 0x20);
	wr(l[1], DFR, 0xffffffff);
	wr(l[1], LDR, 0x02000000);
	CHECK(apic_bus_deliver(bus, 0x06, true, APIC_DM_LOWEST, 0x90, false) == 1);
	CHECK(lapic_get_interrupt(l[2]) == 0x90 && lapic_get_interrupt(l[1]) == LAPIC_INTR_NONE);
	take(l[2]);
	wr(l[2], EOI, 0);
	/* INIT and SIPI reach the target as events */
	wr(l[0], ICR_HI, 1u << 24);
	wr(l[0], ICR_LO, 0x4500);
	wr(l[0], ICR_LO, 0x4608);
	uint8_t sipi = 0;
	CHECK(lapic_take_events(l[1], &sipi) == (LAPIC_EV_INIT | LAPIC_EV_SIPI) && sipi == 0x08);
	/* MSI */
	CHECK(apic_bus_msi(bus, 0xfee02000, 0x4041) == 1);
	CHECK(take(l[2]) == 0x41);
	CHECK(apic_bus_msi(bus, 0xfed00000, 0x41) == 0);
	for (unsigned i = 0; i < 3; i++)
		lapic_free(l[i]);
}

static void test_ioapic(struct apic_bus *bus)
{
	struct mmio_bus *mmio = mmio_bus_new();
	struct ioapic *io = ioapic_new(bus, 0);
	the_ioapic = io;
	CHECK(ioapic_map(io, mmio, IOAPIC_DEFAULT_BASE) == 0);
	struct lapic *l = lapic_new(bus, clk, 0, true, kick, (void *)0);
	wr(l, SVR, 0x1ff);
	uint64_t v;
#define IOSEL(r) mmio_bus_write(mmio, IOAPIC_DEFAULT_BASE, 4, (r))
#define IOWIN_W(x) mmio_bus_write(mmio, IOAPIC_DEFAULT_BASE + 0x10, 4, (x))
	IOSEL(1);
	mmio_bus_read(mmio, IOAPIC_DEFAULT_BASE + 0x10, 4, &v);
	CHECK(v == 0x00170020);
	CHECK(ioapic_redir(io, 5) == (1ull << 16)); /* masked at reset */

	/* edge pin 2 -> vector 0x30 on APIC 0 */
	IOSEL(0x10 + 2 * 2);
	IOWIN_W(0x30);
	IOSEL(0x11 + 2 * 2);
	IOWIN_W(0);
	ioapic_set_irq(io, 2, true);
	CHECK(take(l) == 0x30);
	wr(l, EOI, 0);
	ioapic_set_irq(io, 2, true); /* no new edge */
	CHECK(lapic_get_interrupt(l) == LAPIC_INTR_NONE);
	ioapic_set_irq(io, 2, false);
	ioapic_set_irq(io, 2, true);
	CHECK(take(l) == 0x30);
	wr(l, EOI, 0);

	/* level pin 10 -> 0x50: remote IRR until EOI, then re-delivered
	 * while still asserted */
	IOSEL(0x10 + 2 * 10);
	IOWIN_W((1u << 15) | 0x50);
	ioapic_set_irq(io, 10, true);
	CHECK(ioapic_redir(io, 10) & (1ull << 14));
	CHECK(take(l) == 0x50);
	ioapic_set_irq(io, 10, true);
	CHECK(lapic_get_interrupt(l) == LAPIC_INTR_NONE);
	wr(l, EOI, 0); /* broadcast -> ioapic_eoi -> still high: again */
	CHECK(take(l) == 0x50);
	ioapic_set_irq(io, 10, false);
	wr(l, EOI, 0);
	CHECK(!(ioapic_redir(io, 10) & (1ull << 14)));
	CHECK(lapic_get_interrupt(l) == LAPIC_INTR_NONE);

	/* masked pins do not deliver; unmasking a raised level pin does */
	IOSEL(0x10 + 2 * 11);
	IOWIN_W((1u << 16) | (1u << 15) | 0x51);
	ioapic_set_irq(io, 11, true);
	CHECK(lapic_get_interrupt(l) == LAPIC_INTR_NONE);
	IOWIN_W((1u << 15) | 0x51);
	CHECK(take(l) == 0x51);
	ioapic_set_irq(io, 11, false);
	wr(l, EOI, 0);
	/* the read-only bits stay: writing remote IRR does nothing */
	IOSEL(0x10 + 2 * 12);
	IOWIN_W((1u << 14) | (1u << 12) | 0x52 | (1u << 16));
	CHECK(ioapic_redir(io, 12) == ((1ull << 16) | 0x52));
	lapic_free(l);
	ioapic_free(io);
	mmio_bus_free(mmio);
	the_ioapic = NULL;
}

int main(void)
{
	clk = hw_clock_new_manual(1000000000ull);
	struct apic_bus *bus = apic_bus_new();
	apic_bus_set_eoi(bus, on_eoi, NULL);
	test_lapic_basics(bus);
	test_lapic_timer(bus);
	test_ipis(bus);
	test_ioapic(bus);
	apic_bus_free(bus);
	hw_clock_free(clk);
	TEST_MAIN_END();
}

/*
 * Local APIC (xAPIC, memory-mapped) and the APIC bus that connects the
 * LAPICs of all vCPUs, the IOAPIC and MSIs.  Written from the Intel SDM
 * vol. 3 ch. 10/11: IRR/ISR/TMR, TPR/PPR, EOI (with the EOI broadcast for
 * level-triggered vectors), the LVTs, the timer in one-shot, periodic and
 * TSC-deadline modes (input LAPIC_BUS_HZ before the divider), ICR IPIs
 * with shorthands and physical/logical (flat and cluster) destinations,
 * LINT0/LINT1 and ExtINT.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "hw/hw.h"

#define MAX_LAPICS 256

enum {
	R_ID = 0x02, R_VER = 0x03, R_TPR = 0x08, R_APR = 0x09, R_PPR = 0x0a, R_EOI = 0x0b,
	R_RRD = 0x0c, R_LDR = 0x0d, R_DFR = 0x0e, R_SVR = 0x0f, R_ISR = 0x10, R_TMR = 0x18,
	R_IRR = 0x20, R_ESR = 0x28, R_LVT_CMCI = 0x2f, R_ICR_LO = 0x30, R_ICR_HI = 0x31,
	R_LVT_TIMER = 0x32, R_LVT_THERMAL = 0x33, R_LVT_PERF = 0x34, R_LVT_LINT0 = 0x35,
	R_LVT_LINT1 = 0x36, R_LVT_ERROR = 0x37, R_TMICT = 0x38, R_TMCCT = 0x39,
	R_TDCR = 0x3e,
};
enum { LVT_TIMER, LVT_THERMAL, LVT_PERF, LVT_LINT0, LVT_LINT1, LVT_ERROR, LVT_CMCI, NR_LVT };

#define LVT_MASKED (1u << 16)
#define LVT_LEVEL (1u << 15)
#define LVT_REMOTE_IRR (1u << 14)
#define LVT_TIMER_MODE(v) (((v) >> 17) & 3)
#define TIMER_ONESHOT 0
#define TIMER_PERIODIC 1
#define TIMER_TSC_DEADLINE 2
#define SVR_ENABLE (1u << 8)
#define ESR_RECV_ILLEGAL (1u << 6)
#define ESR_SEND_ILLEGAL (1u << 5)

struct apic_bus {
	struct lapic *lapic[MAX_LAPICS];
	apic_eoi_fn *eoi;
	void *eoi_opaque;
};

struct lapic {
	struct apic_bus *bus;
	struct hw_clock *clock;
	uint8_t id;
	bool bsp;
	uint64_t base_msr;
	uint32_t tpr, ldr, dfr, svr, esr, esr_pending, icr_lo, icr_hi;
	uint32_t lvt[NR_LVT];
	uint32_t irr[8], isr[8], tmr[8];
	uint32_t tmict, tdcr;
	uint64_t timer_start_ns;
	uint64_t tsc_deadline;
	struct hw_timer timer;
	bool lint_level[2];
	bool extint_msg; /* an ExtINT message from the bus, until acknowledged */
	unsigned events;
	uint8_t sipi_vector;
	apic_kick_fn *kick;
	void *kick_opaque;
};

/* ---- bit helpers over the 256-bit registers ---- */

static void bit_set(uint32_t *r, unsigned v) { r[v >> 5] |= 1u << (v & 31); }
static void bit_clear(uint32_t *r, unsigned v) { r[v >> 5] &= ~(1u << (v & 31)); }
static bool bit_test(const uint32_t *r, unsigned v) { return r[v >> 5] >> (v & 31) & 1; }

static int highest_bit(const uint32_t *r)
{
	for (int i = 7; i >= 0; i--)
		if (r[i])
			return i * 32 + 31 - __builtin_clz(r[i]);
	return -1;
}

static bool sw_enabled(const struct lapic *l)
{
	return l->svr & SVR_ENABLE;
}

bool lapic_hw_enabled(const struct lapic *l)
{
	return l->base_msr & LAPIC_BASE_ENABLE;
}

static uint32_t ppr(const struct lapic *l)
{
	int isrv = highest_bit(l->isr);
	uint32_t isr_class = isrv < 0 ? 0 : (uint32_t)isrv & 0xf0;
	return (l->tpr & 0xf0) >= isr_class ? l->tpr & 0xff : isr_class;
}

static void kick(struct lapic *l)
{
	if (l->kick)
		l->kick(l->kick_opaque);
}

/* Accepts an interrupt message into this LAPIC. */
static void accept(struct lapic *l, enum apic_delivery mode, uint8_t vector, bool level)
{
	switch (mode) {
	case APIC_DM_FIXED:
	case APIC_DM_LOWEST:
		if (vector < 16) {
			l->esr_pending |= ESR_RECV_ILLEGAL;
			return;
		}
		if (!lapic_hw_enabled(l))
			return;
		bit_set(l->irr, vector);
		if (level)
			bit_set(l->tmr, vector);
		else
			bit_clear(l->tmr, vector);
		break;
	case APIC_DM_NMI:
		l->events |= LAPIC_EV_NMI;
		break;
	case APIC_DM_SMI:
		l->events |= LAPIC_EV_SMI;
		break;
	case APIC_DM_INIT:
		l->events |= LAPIC_EV_INIT;
		break;
	case APIC_DM_SIPI:
		l->events |= LAPIC_EV_SIPI;
		l->sipi_vector = vector;
		break;
	case APIC_DM_EXTINT:
		/* the PIC supplies the vector (an IOAPIC pin in ExtINT mode) */
		l->extint_msg = true;
		break;
	default:
		return;
	}
	kick(l);
}

/* ---- the bus ---- */

struct apic_bus *apic_bus_new(void)
{
	return calloc(1, sizeof(struct apic_bus));
}

void apic_bus_free(struct apic_bus *bus)
{
	free(bus);
}

void apic_bus_set_eoi(struct apic_bus *bus, apic_eoi_fn *fn, void *opaque)
{
	bus->eoi = fn;
	bus->eoi_opaque = opaque;
}

static bool matches(const struct lapic *l, uint8_t dest, bool logical)
{
	if (!logical)
		return dest == 0xff || dest == l->id;
	uint8_t ldr = l->ldr >> 24;
	if (dest == 0xff)
		return true;
	if ((l->dfr >> 28) == 0xf) /* flat */
		return (ldr & dest) != 0;
	/* cluster: high nibble cluster id, low nibble members */
	return (ldr >> 4) == (dest >> 4) && (ldr & dest & 0x0f);
}

unsigned apic_bus_deliver(struct apic_bus *bus, uint8_t dest, bool logical,
			  enum apic_delivery mode, uint8_t vector, bool level_trig)
{
	if (mode == APIC_DM_LOWEST) {
		struct lapic *best = NULL;
		for (unsigned i = 0; i < MAX_LAPICS; i++) {
			struct lapic *l = bus->lapic[i];
			if (l && lapic_hw_enabled(l) && matches(l, dest, logical) &&
			    (!best || ppr(l) < ppr(best)))
				best = l;
		}
		if (!best)
			return 0;
		accept(best, mode, vector, level_trig);
		return 1;
	}
	unsigned n = 0;
	for (unsigned i = 0; i < MAX_LAPICS; i++) {
		struct lapic *l = bus->lapic[i];
		if (l && matches(l, dest, logical)) {
			accept(l, mode, vector, level_trig);
			n++;
		}
	}
	return n;
}

unsigned apic_bus_msi(struct apic_bus *bus, uint64_t addr, uint32_t data)
{
	if ((addr & 0xfff00000u) != 0xfee00000u)
		return 0;
	uint8_t dest = (addr >> 12) & 0xff;
	bool logical = addr & (1u << 2);
	return apic_bus_deliver(bus, dest, logical, (data >> 8) & 7, data & 0xff,
				data & (1u << 15));
}

/* ---- the timer ---- */

static unsigned timer_divisor(const struct lapic *l)
{
	unsigned v = (l->tdcr & 3) | ((l->tdcr >> 1) & 4);
	return v == 7 ? 1 : 2u << v;
}

static uint64_t timer_period_ns(const struct lapic *l)
{
	return hw_ticks_to_ns((uint64_t)l->tmict * timer_divisor(l), LAPIC_BUS_HZ);
}

static void timer_fire_vector(struct lapic *l)
{
	uint32_t lvt = l->lvt[LVT_TIMER];
	if (!(lvt & LVT_MASKED))
		accept(l, APIC_DM_FIXED, lvt & 0xff, false);
}

static void timer_arm(struct lapic *l)
{
	hw_timer_del(&l->timer);
	unsigned mode = LVT_TIMER_MODE(l->lvt[LVT_TIMER]);
	if (mode == TIMER_TSC_DEADLINE) {
		if (l->tsc_deadline)
			hw_timer_mod(&l->timer, hw_clock_tsc_to_ns(l->clock, l->tsc_deadline));
		return;
	}
	if (!l->tmict)
		return;
	uint64_t now = hw_clock_ns(l->clock), period = timer_period_ns(l);
	if (period == 0)
		period = 1;
	uint64_t elapsed = now - l->timer_start_ns;
	if (mode == TIMER_PERIODIC)
		hw_timer_mod(&l->timer, l->timer_start_ns + (elapsed / period + 1) * period);
	else if (elapsed < period)
		hw_timer_mod(&l->timer, l->timer_start_ns + period);
}

static void timer_cb(void *opaque)
{
	struct lapic *l = opaque;
	unsigned mode = LVT_TIMER_MODE(l->lvt[LVT_TIMER]);
	timer_fire_vector(l);
	if (mode == TIMER_TSC_DEADLINE)
		l->tsc_deadline = 0;
	else if (mode == TIMER_PERIODIC)
		timer_arm(l);
}

static uint32_t timer_current(struct lapic *l)
{
	unsigned mode = LVT_TIMER_MODE(l->lvt[LVT_TIMER]);
	if (mode == TIMER_TSC_DEADLINE || !l->tmict)
		return 0;
	uint64_t ticks = hw_ns_to_ticks(hw_clock_ns(l->clock) - l->timer_start_ns, LAPIC_BUS_HZ) /
			 timer_divisor(l);
	if (mode == TIMER_PERIODIC)
		return l->tmict - (uint32_t)(ticks % l->tmict);
	return ticks >= l->tmict ? 0 : l->tmict - (uint32_t)ticks;
}

void lapic_set_tsc_deadline(struct lapic *l, uint64_t tsc)
{
	if (LVT_TIMER_MODE(l->lvt[LVT_TIMER]) != TIMER_TSC_DEADLINE)
		return;
	l->tsc_deadline = tsc;
	timer_arm(l);
}

uint64_t lapic_get_tsc_deadline(const struct lapic *l)
{
	return LVT_TIMER_MODE(l->lvt[LVT_TIMER]) == TIMER_TSC_DEADLINE ? l->tsc_deadline : 0;
}

/* ---- interrupts to the CPU ---- */

static bool extint_pending(const struct lapic *l)
{
	if (l->extint_msg)
		return true;
	if (!l->lint_level[0])
		return false;
	if (!lapic_hw_enabled(l))
		return true; /* the APIC is out of the path: the PIC talks to the CPU */
	uint32_t lvt = l->lvt[LVT_LINT0];
	return !(lvt & LVT_MASKED) && ((lvt >> 8) & 7) == APIC_DM_EXTINT;
}

int lapic_get_interrupt(struct lapic *l)
{
	if (extint_pending(l))
		return LAPIC_INTR_EXTINT;
	if (!lapic_hw_enabled(l))
		return LAPIC_INTR_NONE;
	int v = highest_bit(l->irr);
	if (v < 0 || ((uint32_t)v & 0xf0) <= (ppr(l) & 0xf0))
		return LAPIC_INTR_NONE;
	return v;
}

void lapic_ack(struct lapic *l, int vector)
{
	if (vector == LAPIC_INTR_EXTINT) {
		l->extint_msg = false;
		return;
	}
	if (vector < 0 || vector > 255 || !bit_test(l->irr, (unsigned)vector))
		return;
	bit_clear(l->irr, (unsigned)vector);
	bit_set(l->isr, (unsigned)vector);
}

bool lapic_wants_wakeup(struct lapic *l)
{
	return l->events || lapic_get_interrupt(l) != LAPIC_INTR_NONE;
}

unsigned lapic_take_events(struct lapic *l, uint8_t *sipi_vector)
{
	unsigned ev = l->events;
	l->events = 0;
	if (sipi_vector)
		*sipi_vector = l->sipi_vector;
	return ev;
}

void lapic_set_lint(struct lapic *l, unsigned pin, bool level)
{
	if (pin > 1)
		return;
	bool rising = level && !l->lint_level[pin];
	l->lint_level[pin] = level;
	uint32_t lvt = l->lvt[pin ? LVT_LINT1 : LVT_LINT0];
	unsigned mode = (lvt >> 8) & 7;
	if (mode == APIC_DM_EXTINT || !lapic_hw_enabled(l)) {
		if (level)
			kick(l); /* the CPU asks again through lapic_get_interrupt */
		return;
	}
	if (lvt & LVT_MASKED)
		return;
	if (mode == APIC_DM_FIXED && (lvt & LVT_LEVEL) ? level : rising)
		accept(l, mode, lvt & 0xff, lvt & LVT_LEVEL);
}

void lapic_set_cr8(struct lapic *l, uint64_t cr8)
{
	l->tpr = (uint32_t)(cr8 & 0xf) << 4;
}

uint64_t lapic_get_cr8(const struct lapic *l)
{
	return (l->tpr >> 4) & 0xf;
}

/* ---- registers ---- */

static void do_eoi(struct lapic *l)
{
	int v = highest_bit(l->isr);
	if (v < 0)
		return;
	bit_clear(l->isr, (unsigned)v);
	if (bit_test(l->tmr, (unsigned)v) && l->bus->eoi)
		l->bus->eoi(l->bus->eoi_opaque, (uint8_t)v);
	if (lapic_get_interrupt(l) != LAPIC_INTR_NONE)
		kick(l);
}

static void send_ipi(struct lapic *l)
{
	uint32_t lo = l->icr_lo;
	uint8_t vector = lo & 0xff;
	enum apic_delivery mode = (lo >> 8) & 7;
	bool logical = lo & (1u << 11), level = lo & (1u << 14), trig = lo & (1u << 15);
	unsigned shorthand = (lo >> 18) & 3;
	if (mode == APIC_DM_INIT && trig && !level)
		return; /* INIT level de-assert: nothing on modern CPUs */
	if ((mode == APIC_DM_FIXED || mode == APIC_DM_LOWEST) && vector < 16) {
		l->esr_pending |= ESR_SEND_ILLEGAL;
		return;
	}
	switch (shorthand) {
	case 1: /* self */
		accept(l, mode, vector, trig);
		break;
	case 2: /* all including self */
	case 3: /* all excluding self */
		for (unsigned i = 0; i < MAX_LAPICS; i++) {
			struct lapic *t = l->bus->lapic[i];
			if (t && (shorthand == 2 || t != l))
				accept(t, mode, vector, trig);
		}
		break;
	default:
		apic_bus_deliver(l->bus, l->icr_hi >> 24, logical, mode, vector, trig);
		break;
	}
}

uint32_t lapic_mmio_read(struct lapic *l, uint64_t offset, unsigned size)
{
	if (size != 4 || (offset & 0xf) || offset >= LAPIC_MMIO_SIZE)
		return 0;
	unsigned r = (unsigned)(offset >> 4);
	switch (r) {
	case R_ID: return (uint32_t)l->id << 24;
	case R_VER: return 0x14 | ((NR_LVT - 1u) << 16); /* 7 LVTs */
	case R_TPR: return l->tpr;
	case R_APR: return 0;
	case R_PPR: return ppr(l);
	case R_LDR: return l->ldr;
	case R_DFR: return l->dfr;
	case R_SVR: return l->svr;
	case R_ESR: return l->esr;
	case R_ICR_LO: return l->icr_lo & ~(1u << 12); /* delivery always done */
	case R_ICR_HI: return l->icr_hi;
	case R_LVT_TIMER: return l->lvt[LVT_TIMER];
	case R_LVT_THERMAL: return l->lvt[LVT_THERMAL];
	case R_LVT_PERF: return l->lvt[LVT_PERF];
	case R_LVT_LINT0: return l->lvt[LVT_LINT0];
	case R_LVT_LINT1: return l->lvt[LVT_LINT1];
	case R_LVT_ERROR: return l->lvt[LVT_ERROR];
	case R_LVT_CMCI: return l->lvt[LVT_CMCI];
	case R_TMICT: return LVT_TIMER_MODE(l->lvt[LVT_TIMER]) == TIMER_TSC_DEADLINE ? 0 : l->tmict;
	case R_TMCCT: return timer_current(l);
	case R_TDCR: return l->tdcr;
	default:
		if (r >= R_ISR && r < R_ISR + 8)
			return l->isr[r - R_ISR];
		if (r >= R_TMR && r < R_TMR + 8)
			return l->tmr[r - R_TMR];
		if (r >= R_IRR && r < R_IRR + 8)
			return l->irr[r - R_IRR];
		return 0;
	}
}

static void write_lvt(struct lapic *l, unsigned idx, uint32_t v)
{
	static const uint32_t masks[NR_LVT] = {
		[LVT_TIMER] = 0x000710ff, [LVT_THERMAL] = 0x000117ff, [LVT_PERF] = 0x000117ff,
		[LVT_LINT0] = 0x0001a7ff, [LVT_LINT1] = 0x0001a7ff, [LVT_ERROR] = 0x000100ff,
		[LVT_CMCI] = 0x000117ff,
	};
	v &= masks[idx];
	if (!sw_enabled(l))
		v |= LVT_MASKED;
	if (idx == LVT_TIMER) {
		if (LVT_TIMER_MODE(v) == 3)
			v &= ~(3u << 17); /* reserved mode: treat as one-shot */
		uint32_t old = l->lvt[idx];
		l->lvt[idx] = v;
		if (LVT_TIMER_MODE(old) != LVT_TIMER_MODE(v)) {
			/* changing mode disarms the timer */
			l->tmict = 0;
			l->tsc_deadline = 0;
			hw_timer_del(&l->timer);
		}
		return;
	}
	l->lvt[idx] = (l->lvt[idx] & LVT_REMOTE_IRR) | v;
	if (idx == LVT_LINT0 && l->lint_level[0] && extint_pending(l))
		kick(l);
}

void lapic_mmio_write(struct lapic *l, uint64_t offset, unsigned size, uint64_t value)
{
	if (size != 4 || (offset & 0xf) || offset >= LAPIC_MMIO_SIZE)
		return;
	uint32_t v = (uint32_t)value;
	switch (offset >> 4) {
	case R_ID:
		break; /* read-only here: IDs are fixed by the board */
	case R_TPR:
		l->tpr = v & 0xff;
		if (lapic_get_interrupt(l) >= 0)
			kick(l);
		break;
	case R_EOI:
		do_eoi(l);
		break;
	case R_LDR:
		l->ldr = v & 0xff000000u;
		break;
	case R_DFR:
		l->dfr = v | 0x0fffffffu;
		break;
	case R_SVR:
		l->svr = v & 0x13ff;
		if (!sw_enabled(l)) {
			for (unsigned i = 0; i < NR_LVT; i++)
				l->lvt[i] |= LVT_MASKED;
		}
		break;
	case R_ESR:
		l->esr = l->esr_pending;
		l->esr_pending = 0;
		break;
	case R_ICR_LO:
		l->icr_lo = v & 0x000ccfff;
		send_ipi(l);
		break;
	case R_ICR_HI:
		l->icr_hi = v & 0xff000000u;
		break;
	case R_LVT_TIMER: write_lvt(l, LVT_TIMER, v); break;
	case R_LVT_THERMAL: write_lvt(l, LVT_THERMAL, v); break;
	case R_LVT_PERF: write_lvt(l, LVT_PERF, v); break;
	case R_LVT_LINT0: write_lvt(l, LVT_LINT0, v); break;
	case R_LVT_LINT1: write_lvt(l, LVT_LINT1, v); break;
	case R_LVT_ERROR: write_lvt(l, LVT_ERROR, v); break;
	case R_LVT_CMCI: write_lvt(l, LVT_CMCI, v); break;
	case R_TMICT:
		if (LVT_TIMER_MODE(l->lvt[LVT_TIMER]) == TIMER_TSC_DEADLINE)
			break;
		l->tmict = v;
		l->timer_start_ns = hw_clock_ns(l->clock);
		timer_arm(l);
		break;
	case R_TDCR: {
		/* keep the current count across a divider change */
		uint32_t cur = timer_current(l);
		l->tdcr = v & 0xb;
		if (l->tmict && cur) {
			uint64_t done = (uint64_t)(l->tmict - cur) * timer_divisor(l);
			uint64_t now = hw_clock_ns(l->clock);
			uint64_t done_ns = hw_ticks_to_ns(done, LAPIC_BUS_HZ);
			l->timer_start_ns = now > done_ns ? now - done_ns : 0;
			timer_arm(l);
		}
		break;
	}
	default:
		break; /* read-only or reserved */
	}
}

/* ---- life cycle ---- */

uint64_t lapic_get_base(const struct lapic *l)
{
	return l->base_msr;
}

uint64_t lapic_base_addr(const struct lapic *l)
{
	return l->base_msr & ~0xfffull;
}

uint8_t lapic_id(const struct lapic *l)
{
	return l->id;
}

int lapic_set_base(struct lapic *l, uint64_t value)
{
	/* bits 0-7, 9, 10 (x2APIC is not offered) and above 51 are reserved */
	if (value & (0x6ffull | ~((1ull << 52) - 1)))
		return -EINVAL;
	bool was = lapic_hw_enabled(l);
	l->base_msr = (value & ~(uint64_t)LAPIC_BASE_BSP) | (l->bsp ? LAPIC_BASE_BSP : 0);
	if (was && !lapic_hw_enabled(l)) {
		/* hardware disable: the APIC state resets, SVR disabled */
		uint64_t base = l->base_msr;
		lapic_reset(l);
		l->base_msr = base;
	}
	return 0;
}

void lapic_reset(struct lapic *l)
{
	hw_timer_del(&l->timer);
	bool lint0 = l->lint_level[0], lint1 = l->lint_level[1];
	l->base_msr = LAPIC_DEFAULT_BASE | LAPIC_BASE_ENABLE | (l->bsp ? LAPIC_BASE_BSP : 0);
	l->tpr = l->ldr = l->esr = l->esr_pending = l->icr_lo = l->icr_hi = 0;
	l->dfr = 0xffffffffu;
	l->svr = 0xff;
	for (unsigned i = 0; i < NR_LVT; i++)
		l->lvt[i] = LVT_MASKED;
	if (l->bsp) {
		/* what a BIOS leaves: virtual-wire mode through LINT0 */
		l->lvt[LVT_LINT0] = APIC_DM_EXTINT << 8;
		l->lvt[LVT_LINT1] = APIC_DM_NMI << 8;
	}
	memset(l->irr, 0, sizeof(l->irr));
	memset(l->isr, 0, sizeof(l->isr));
	memset(l->tmr, 0, sizeof(l->tmr));
	l->tmict = l->tdcr = 0;
	l->tsc_deadline = 0;
	l->events = 0;
	l->extint_msg = false;
	l->lint_level[0] = lint0;
	l->lint_level[1] = lint1;
}

struct lapic *lapic_new(struct apic_bus *bus, struct hw_clock *clock, uint8_t apic_id,
			bool bsp, apic_kick_fn *kick_fn, void *kick_opaque)
{
	if (bus->lapic[apic_id])
		return NULL;
	struct lapic *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->bus = bus;
	l->clock = clock;
	l->id = apic_id;
	l->bsp = bsp;
	l->kick = kick_fn;
	l->kick_opaque = kick_opaque;
	hw_timer_init(&l->timer, clock, timer_cb, l);
	lapic_reset(l);
	bus->lapic[apic_id] = l;
	return l;
}

void lapic_free(struct lapic *l)
{
	if (!l)
		return;
	hw_timer_del(&l->timer);
	if (l->bus->lapic[l->id] == l)
		l->bus->lapic[l->id] = NULL;
	free(l);
}

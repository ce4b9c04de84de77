/*
 * The devices' clock: host-monotonic or manual time in ns, the TSC derived
 * from it, and a sorted list of timers.
 */
#include <stdlib.h>

#include "core/core.h"
#include "hw/hw.h"

struct hw_clock {
	bool manual;
	uint64_t host_base; /* clock_ns() at creation (host clocks) */
	uint64_t now;	    /* manual time; last value returned (host) */
	uint64_t tsc_hz;
	struct hw_timer *timers; /* sorted by deadline */
	hw_clock_notify_fn *notify;
	void *notify_opaque;
};

uint64_t hw_ns_to_ticks(uint64_t ns, uint64_t hz)
{
	return (uint64_t)((unsigned __int128)ns * hz / 1000000000u);
}

uint64_t hw_ticks_to_ns(uint64_t ticks, uint64_t hz)
{
	unsigned __int128 ns = ((unsigned __int128)ticks * 1000000000u + hz - 1) / hz;
	return ns > UINT64_MAX ? UINT64_MAX : (uint64_t)ns;
}

static struct hw_clock *clock_new(uint64_t tsc_hz, bool manual)
{
	if (tsc_hz == 0)
		return NULL;
	struct hw_clock *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->manual = manual;
	c->tsc_hz = tsc_hz;
	/* start at 1 ns so that 0 can mean "never" in device state */
	c->host_base = clock_ns() - 1;
	c->now = 1;
	return c;
}

struct hw_clock *hw_clock_new_host(uint64_t tsc_hz)
{
	return clock_new(tsc_hz, false);
}

struct hw_clock *hw_clock_new_manual(uint64_t tsc_hz)
{
	return clock_new(tsc_hz, true);
}

void hw_clock_free(struct hw_clock *clock)
{
	free(clock);
}

/* Time may be read from any thread (RDTSC on vCPU threads): `now` only
 * moves forward, by compare-and-swap. */
static void clock_advance(struct hw_clock *c, uint64_t t)
{
	uint64_t cur = __atomic_load_n(&c->now, __ATOMIC_RELAXED);
	while (t > cur &&
	       !__atomic_compare_exchange_n(&c->now, &cur, t, true, __ATOMIC_RELAXED,
					    __ATOMIC_RELAXED))
		;
}

uint64_t hw_clock_ns(struct hw_clock *c)
{
	if (!c->manual)
		clock_advance(c, clock_ns() - c->host_base);
	return __atomic_load_n(&c->now, __ATOMIC_RELAXED);
}

void hw_clock_set_ns(struct hw_clock *c, uint64_t ns)
{
	if (c->manual)
		clock_advance(c, ns);
}

uint64_t hw_clock_tsc_hz(const struct hw_clock *c)
{
	return c->tsc_hz;
}

uint64_t hw_clock_tsc(struct hw_clock *c)
{
	return hw_ns_to_ticks(hw_clock_ns(c), c->tsc_hz);
}

uint64_t hw_clock_tsc_to_ns(const struct hw_clock *c, uint64_t tsc)
{
	return hw_ticks_to_ns(tsc, c->tsc_hz);
}

void hw_clock_set_notify(struct hw_clock *c, hw_clock_notify_fn *fn, void *opaque)
{
	c->notify = fn;
	c->notify_opaque = opaque;
}

uint64_t hw_clock_next_deadline(const struct hw_clock *c)
{
	return c->timers ? c->timers->deadline_ns : UINT64_MAX;
}

void hw_timer_init(struct hw_timer *t, struct hw_clock *clock, hw_timer_fn *cb, void *opaque)
{
	*t = (struct hw_timer){ .clock = clock, .cb = cb, .opaque = opaque };
}

void hw_timer_del(struct hw_timer *t)
{
	if (!t->armed)
		return;
	for (struct hw_timer **pp = &t->clock->timers; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	t->armed = false;
	t->next = NULL;
}

void hw_timer_mod(struct hw_timer *t, uint64_t deadline_ns)
{
	struct hw_clock *c = t->clock;
	hw_timer_del(t);
	t->deadline_ns = deadline_ns;
	struct hw_timer **pp = &c->timers;
	while (*pp && (*pp)->deadline_ns <= deadline_ns)
		pp = &(*pp)->next;
	t->next = *pp;
	*pp = t;
	t->armed = true;
	if (c->timers == t && c->notify)
		c->notify(c->notify_opaque);
}

bool hw_timer_pending(const struct hw_timer *t)
{
	return t->armed;
}

unsigned hw_clock_run_timers(struct hw_clock *c)
{
	unsigned n = 0;
	uint64_t now = hw_clock_ns(c);
	/* bounded: a timer re-armed in the past runs at most once per call
	 * round, so a misbehaving device cannot spin here forever */
	for (unsigned budget = 1000; budget && c->timers && c->timers->deadline_ns <= now;
	     budget--) {
		struct hw_timer *t = c->timers;
		c->timers = t->next;
		t->next = NULL;
		t->armed = false;
		t->cb(t->opaque);
		n++;
	}
	return n;
}

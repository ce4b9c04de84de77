/*
 * IOAPIC: 24 redirection entries behind IOREGSEL (0x00) / IOWIN (0x10),
 * version 0x20 with the EOI register at 0x40.  Edge pins deliver on a
 * rising edge; level pins deliver while asserted unless remote IRR is set,
 * and the LAPIC's EOI broadcast (ioapic_eoi) clears remote IRR and
 * re-delivers a pin that is still asserted.
 */
#include <stdlib.h>

#include "core/core.h"
#include "hw/hw.h"

#define RTE_VECTOR(e) ((uint8_t)((e) & 0xff))
#define RTE_DELIVERY(e) ((enum apic_delivery)(((e) >> 8) & 7))
#define RTE_LOGICAL (1ull << 11)
#define RTE_REMOTE_IRR (1ull << 14)
#define RTE_LEVEL (1ull << 15)
#define RTE_MASKED (1ull << 16)
#define RTE_DEST(e) ((uint8_t)((e) >> 56))
#define RTE_RO_BITS ((1ull << 12) | RTE_REMOTE_IRR)
#define RTE_RW_MASK 0xff0000000001afffull

struct ioapic {
	struct apic_bus *bus;
	uint8_t id;
	uint32_t regsel;
	uint64_t rte[IOAPIC_NUM_PINS];
	uint32_t level; /* input levels */
};

static void ioapic_service(struct ioapic *io, unsigned pin)
{
	uint64_t e = io->rte[pin];
	if (e & RTE_MASKED)
		return;
	if (e & RTE_LEVEL) {
		if (!(io->level >> pin & 1) || (e & RTE_REMOTE_IRR))
			return;
		io->rte[pin] |= RTE_REMOTE_IRR;
	}
	apic_bus_deliver(io->bus, RTE_DEST(e), e & RTE_LOGICAL, RTE_DELIVERY(e), RTE_VECTOR(e),
			 e & RTE_LEVEL);
}

void ioapic_set_irq(struct ioapic *io, unsigned pin, bool level)
{
	if (pin >= IOAPIC_NUM_PINS)
		return;
	uint32_t bit = 1u << pin;
	bool old = io->level & bit;
	if (level)
		io->level |= bit;
	else
		io->level &= ~bit;
	if (io->rte[pin] & RTE_LEVEL) {
		if (level)
			ioapic_service(io, pin);
	} else if (level && !old) {
		ioapic_service(io, pin);
	}
}

void ioapic_eoi(struct ioapic *io, uint8_t vector)
{
	for (unsigned pin = 0; pin < IOAPIC_NUM_PINS; pin++) {
		uint64_t e = io->rte[pin];
		if (!(e & RTE_LEVEL) || RTE_VECTOR(e) != vector || !(e & RTE_REMOTE_IRR))
			continue;
		io->rte[pin] &= ~RTE_REMOTE_IRR;
		ioapic_service(io, pin);
	}
}

uint64_t ioapic_redir(const struct ioapic *io, unsigned pin)
{
	return pin < IOAPIC_NUM_PINS ? io->rte[pin] : 0;
}

static uint32_t ioapic_read_reg(struct ioapic *io)
{
	unsigned r = io->regsel & 0xff;
	switch (r) {
	case 0x00:
		return (uint32_t)io->id << 24;
	case 0x01:
		return 0x20 | ((IOAPIC_NUM_PINS - 1u) << 16);
	case 0x02:
		return (uint32_t)io->id << 24;
	default:
		if (r >= 0x10 && r < 0x10 + 2 * IOAPIC_NUM_PINS) {
			uint64_t e = io->rte[(r - 0x10) / 2];
			return (r & 1) ? (uint32_t)(e >> 32) : (uint32_t)e;
		}
		return 0xffffffffu;
	}
}

static void ioapic_write_reg(struct ioapic *io, uint32_t v)
{
	unsigned r = io->regsel & 0xff;
	if (r == 0x00) {
		io->id = (v >> 24) & 0x0f;
		return;
	}
	if (r < 0x10 || r >= 0x10 + 2 * IOAPIC_NUM_PINS)
		return;
	unsigned pin = (r - 0x10) / 2;
	uint64_t e = io->rte[pin], nv;
	if (r & 1)
		nv = (e & 0xffffffffull) | (uint64_t)v << 32;
	else
		nv = (e & 0xffffffff00000000ull) | v;
	nv = (nv & RTE_RW_MASK) | (e & RTE_RO_BITS);
	if (!(nv & RTE_LEVEL))
		nv &= ~RTE_REMOTE_IRR;
	io->rte[pin] = nv;
	/* unmasking an asserted level pin delivers it */
	if ((nv & RTE_LEVEL) && (io->level >> pin & 1))
		ioapic_service(io, pin);
}

static uint64_t ioapic_mmio_read(void *opaque, uint64_t off, unsigned size)
{
	struct ioapic *io = opaque;
	if (off == 0x00)
		return io->regsel;
	if (off == 0x10 && size == 4)
		return ioapic_read_reg(io);
	return 0;
}

static void ioapic_mmio_write(void *opaque, uint64_t off, unsigned size, uint64_t v)
{
	struct ioapic *io = opaque;
	if (off == 0x00)
		io->regsel = (uint32_t)v & 0xff;
	else if (off == 0x10 && size == 4)
		ioapic_write_reg(io, (uint32_t)v);
	else if (off == 0x40 && size == 4)
		ioapic_eoi(io, (uint8_t)v);
}

static const struct bus_dev_ops ioapic_ops = { ioapic_mmio_read, ioapic_mmio_write };

struct ioapic *ioapic_new(struct apic_bus *bus, uint8_t id)
{
	struct ioapic *io = calloc(1, sizeof(*io));
	if (!io)
		return NULL;
	io->bus = bus;
	io->id = id & 0x0f;
	for (unsigned i = 0; i < IOAPIC_NUM_PINS; i++)
		io->rte[i] = RTE_MASKED;
	return io;
}

void ioapic_free(struct ioapic *io)
{
	free(io);
}

int ioapic_map(struct ioapic *io, struct mmio_bus *bus, uint64_t base)
{
	return mmio_bus_register(bus, base, IOAPIC_MMIO_SIZE, &ioapic_ops, io, "ioapic");
}

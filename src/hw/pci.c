/*
 * PCI host with configuration mechanism #1: CONFIG_ADDRESS at 0xcf8
 * (32-bit accesses only; others fall through to nothing, as on i440FX),
 * CONFIG_DATA at 0xcfc-0xcff.  Bus 0 holds up to 256 functions; the host
 * bridge (an i440FX, 8086:1237) sits at 00:00.0.  Each function's config
 * space is 256 bytes with a write mask, which also gives BAR sizing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "hw/hw.h"

struct pci_host {
	uint32_t addr;
	struct pci_device *dev[256];
	struct pci_device bridge;
};

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void pci_device_init(struct pci_device *dev, uint16_t vendor, uint16_t device,
		     uint32_t class_code, uint8_t revision)
{
	memset(dev->config, 0, sizeof(dev->config));
	memset(dev->wmask, 0, sizeof(dev->wmask));
	dev->ops = NULL;
	dev->opaque = NULL;
	put16(&dev->config[0x00], vendor);
	put16(&dev->config[0x02], device);
	dev->config[0x08] = revision;
	dev->config[0x09] = (uint8_t)class_code;
	dev->config[0x0a] = (uint8_t)(class_code >> 8);
	dev->config[0x0b] = (uint8_t)(class_code >> 16);
	put16(&dev->wmask[0x04], 0x0547); /* I/O, memory, master, parity, SERR, INTx disable */
	dev->wmask[0x0c] = 0xff;	  /* cache line size */
	dev->wmask[0x0d] = 0xff;	  /* latency timer */
	dev->wmask[0x3c] = 0xff;	  /* interrupt line */
}

int pci_device_set_bar(struct pci_device *dev, unsigned bar, uint64_t size, uint32_t flags)
{
	bool io = flags & 1, is64 = !io && (flags & 6) == 4;
	if (bar > 5 || (is64 && bar == 5) || size == 0 || (size & (size - 1)) ||
	    size < (io ? 4u : 16u) || (io && size > 0x10000))
		return -EINVAL;
	uint64_t mask = ~(size - 1) & ~(uint64_t)(io ? 3 : 15);
	unsigned off = 0x10 + bar * 4;
	put32(&dev->config[off], flags & (io ? 1 : 15));
	put32(&dev->wmask[off], (uint32_t)mask);
	if (is64) {
		put32(&dev->config[off + 4], 0);
		put32(&dev->wmask[off + 4], (uint32_t)(mask >> 32));
	}
	return 0;
}

int pci_host_add(struct pci_host *host, uint8_t devfn, struct pci_device *dev)
{
	if (!dev)
		return -EINVAL;
	if (host->dev[devfn])
		return -EEXIST;
	dev->devfn = devfn;
	host->dev[devfn] = dev;
	return 0;
}

uint32_t pci_config_read(struct pci_host *host, uint8_t bus, uint8_t devfn, unsigned reg,
			 unsigned size)
{
	struct pci_device *d = bus == 0 ? host->dev[devfn] : NULL;
	if (!d || reg >= 256 || reg + size > 256)
		return size == 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
	if (d->ops && d->ops->config_read)
		d->ops->config_read(d, reg, size);
	uint32_t v = 0;
	for (unsigned i = 0; i < size; i++)
		v |= (uint32_t)d->config[reg + i] << (8 * i);
	return v;
}

void pci_config_write(struct pci_host *host, uint8_t bus, uint8_t devfn, unsigned reg,
		      unsigned size, uint32_t value)
{
	struct pci_device *d = bus == 0 ? host->dev[devfn] : NULL;
	if (!d || reg >= 256 || reg + size > 256)
		return;
	for (unsigned i = 0; i < size; i++) {
		uint8_t m = d->wmask[reg + i], b = (uint8_t)(value >> (8 * i));
		d->config[reg + i] = (d->config[reg + i] & ~m) | (b & m);
	}
	/* the error bits of the status register (0x07) are write-one-to-clear */
	if (reg <= 7 && reg + size > 7)
		d->config[7] &= (uint8_t)~((value >> (8 * (7 - reg))) & 0xf9);
	if (d->ops && d->ops->config_written)
		d->ops->config_written(d, reg, size);
}

static bool addr_enabled(const struct pci_host *h)
{
	return h->addr & 0x80000000u;
}

static uint64_t pci_io_read(void *opaque, uint64_t off, unsigned size)
{
	struct pci_host *h = opaque;
	if (off < 4) {
		if (off == 0 && size == 4)
			return h->addr;
		return 0xffffffffu;
	}
	if (!addr_enabled(h))
		return 0xffffffffu;
	unsigned reg = (h->addr & 0xfc) + (unsigned)(off - 4);
	return pci_config_read(h, (h->addr >> 16) & 0xff, (h->addr >> 8) & 0xff, reg, size);
}

static void pci_io_write(void *opaque, uint64_t off, unsigned size, uint64_t v)
{
	struct pci_host *h = opaque;
	if (off < 4) {
		if (off == 0 && size == 4)
			h->addr = (uint32_t)v & 0x80fffffcu;
		return;
	}
	if (!addr_enabled(h))
		return;
	unsigned reg = (h->addr & 0xfc) + (unsigned)(off - 4);
	pci_config_write(h, (h->addr >> 16) & 0xff, (h->addr >> 8) & 0xff, reg, size,
			 (uint32_t)v);
}

static const struct bus_dev_ops pci_ops = { pci_io_read, pci_io_write };

struct pci_host *pci_host_new(void)
{
	struct pci_host *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	pci_device_init(&h->bridge, 0x8086, 0x1237, 0x060000, 0x02);
	pci_host_add(h, PCI_DEVFN(0, 0), &h->bridge);
	return h;
}

void pci_host_free(struct pci_host *h)
{
	free(h);
}

int pci_host_map(struct pci_host *h, struct pio_bus *bus)
{
	return pio_bus_register(bus, 0xcf8, 8, &pci_ops, h, "pci-host");
}

/*
 * Port-I/O and MMIO buses: a sorted array of windows, binary search on
 * dispatch, overlap refused on registration.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "hw/hw.h"

struct bus_entry {
	uint64_t base, len;
	const struct bus_dev_ops *ops;
	void *opaque;
	const char *name;
};

struct hw_bus {
	struct bus_entry *e;
	size_t n, cap;
	uint64_t limit; /* one past the highest address */
};

struct pio_bus {
	struct hw_bus b;
};
struct mmio_bus {
	struct hw_bus b;
};

static int bus_register(struct hw_bus *b, uint64_t base, uint64_t len,
			const struct bus_dev_ops *ops, void *opaque, const char *name)
{
	if (len == 0 || !ops || base >= b->limit || len > b->limit - base)
		return -EINVAL;
	size_t pos = 0;
	for (size_t i = 0; i < b->n; i++) {
		const struct bus_entry *e = &b->e[i];
		if (base < e->base + e->len && e->base < base + len)
			return -EEXIST;
		if (e->base < base)
			pos = i + 1;
	}
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		struct bus_entry *ne = realloc(b->e, cap * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		b->e = ne;
		b->cap = cap;
	}
	memmove(&b->e[pos + 1], &b->e[pos], (b->n - pos) * sizeof(*b->e));
	b->e[pos] = (struct bus_entry){ base, len, ops, opaque, name };
	b->n++;
	return 0;
}

static int bus_unregister(struct hw_bus *b, uint64_t base)
{
	for (size_t i = 0; i < b->n; i++) {
		if (b->e[i].base == base) {
			memmove(&b->e[i], &b->e[i + 1], (b->n - i - 1) * sizeof(*b->e));
			b->n--;
			return 0;
		}
	}
	return -ENOENT;
}

static const struct bus_entry *bus_find(const struct hw_bus *b, uint64_t addr)
{
	size_t lo = 0, hi = b->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct bus_entry *e = &b->e[mid];
		if (addr < e->base)
			hi = mid;
		else if (addr - e->base >= e->len)
			lo = mid + 1;
		else
			return e;
	}
	return NULL;
}

static uint64_t size_mask(unsigned size)
{
	return size == 8 ? UINT64_MAX : (1ull << (size * 8)) - 1;
}

static int bus_read(struct hw_bus *b, uint64_t addr, unsigned size, uint64_t *value)
{
	const struct bus_entry *e = bus_find(b, addr);
	if (e && addr - e->base + size <= e->len) {
		*value = e->ops->read ? e->ops->read(e->opaque, addr - e->base, size) &
					 size_mask(size)
				      : size_mask(size);
		return 0;
	}
	/* split into bytes */
	uint64_t v = 0;
	bool any = false;
	for (unsigned i = 0; i < size; i++) {
		uint64_t a = addr + i, byte = 0xff;
		if (a < addr || a >= b->limit) {
			v |= byte << (8 * i);
			continue;
		}
		e = bus_find(b, a);
		if (e) {
			any = true;
			if (e->ops->read)
				byte = e->ops->read(e->opaque, a - e->base, 1) & 0xff;
		}
		v |= byte << (8 * i);
	}
	*value = v;
	return any ? 0 : -ENODEV;
}

static int bus_write(struct hw_bus *b, uint64_t addr, unsigned size, uint64_t value)
{
	value &= size_mask(size);
	const struct bus_entry *e = bus_find(b, addr);
	if (e && addr - e->base + size <= e->len) {
		if (e->ops->write)
			e->ops->write(e->opaque, addr - e->base, size, value);
		return 0;
	}
	bool any = false;
	for (unsigned i = 0; i < size; i++) {
		uint64_t a = addr + i;
		if (a < addr || a >= b->limit)
			continue;
		e = bus_find(b, a);
		if (e) {
			any = true;
			if (e->ops->write)
				e->ops->write(e->opaque, a - e->base, 1, (value >> (8 * i)) & 0xff);
		}
	}
	return any ? 0 : -ENODEV;
}

struct pio_bus *pio_bus_new(void)
{
	struct pio_bus *bus = calloc(1, sizeof(*bus));
	if (bus)
		bus->b.limit = 0x10000;
	return bus;
}

struct mmio_bus *mmio_bus_new(void)
{
	struct mmio_bus *bus = calloc(1, sizeof(*bus));
	if (bus)
		bus->b.limit = 1ull << 52;
	return bus;
}

void pio_bus_free(struct pio_bus *bus)
{
	if (bus)
		free(bus->b.e);
	free(bus);
}

void mmio_bus_free(struct mmio_bus *bus)
{
	if (bus)
		free(bus->b.e);
	free(bus);
}

int pio_bus_register(struct pio_bus *bus, uint16_t base, uint32_t len,
		     const struct bus_dev_ops *ops, void *opaque, const char *name)
{
	return bus_register(&bus->b, base, len, ops, opaque, name);
}

int mmio_bus_register(struct mmio_bus *bus, uint64_t base, uint64_t len,
		      const struct bus_dev_ops *ops, void *opaque, const char *name)
{
	return bus_register(&bus->b, base, len, ops, opaque, name);
}

int pio_bus_unregister(struct pio_bus *bus, uint16_t base)
{
	return bus_unregister(&bus->b, base);
}

int mmio_bus_unregister(struct mmio_bus *bus, uint64_t base)
{
	return bus_unregister(&bus->b, base);
}

int pio_bus_read(struct pio_bus *bus, uint16_t port, unsigned size, uint32_t *value)
{
	if (size != 1 && size != 2 && size != 4) {
		*value = UINT32_MAX;
		return -EINVAL;
	}
	uint64_t v;
	int ret = bus_read(&bus->b, port, size, &v);
	*value = (uint32_t)v;
	return ret;
}

int pio_bus_write(struct pio_bus *bus, uint16_t port, unsigned size, uint32_t value)
{
	if (size != 1 && size != 2 && size != 4)
		return -EINVAL;
	return bus_write(&bus->b, port, size, value);
}

int mmio_bus_read(struct mmio_bus *bus, uint64_t gpa, unsigned size, uint64_t *value)
{
	if (size != 1 && size != 2 && size != 4 && size != 8) {
		*value = UINT64_MAX;
		return -EINVAL;
	}
	return bus_read(&bus->b, gpa, size, value);
}

int mmio_bus_write(struct mmio_bus *bus, uint64_t gpa, unsigned size, uint64_t value)
{
	if (size != 1 && size != 2 && size != 4 && size != 8)
		return -EINVAL;
	return bus_write(&bus->b, gpa, size, value);
}

const char *pio_bus_name_at(const struct pio_bus *bus, uint16_t port)
{
	const struct bus_entry *e = bus_find(&bus->b, port);
	return e ? e->name : NULL;
}

const char *mmio_bus_name_at(const struct mmio_bus *bus, uint64_t gpa)
{
	const struct bus_entry *e = bus_find(&bus->b, gpa);
	return e ? e->name : NULL;
}

/*
 * vdriver: see vdriver.h.  Written from the driver's side of virtio 1.2,
 * 4.1 (PCI) and 2.7 (split rings), independently of the device code, so
 * that it checks the transport rather than mirrors it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vdriver.h"

#define Q_MAX 8

struct vdrv_q {
	bool set_up;
	unsigned size;
	uint64_t desc, avail, used;
	uint16_t avail_idx; /* next avail slot to fill */
	uint16_t last_used;
	uint16_t free_head;
	unsigned nr_free;
	uint16_t *next_free; /* free list links */
	uint16_t *chain_len; /* descriptors of the chain at head */
};

struct vdrv {
	struct vbench *b;
	uint8_t devfn;
	uint64_t bar;
	unsigned common, notify, isr, device, device_len;
	uint32_t notify_mult;
	unsigned msix_cap, msix_nvec;
	uint32_t msix_table_off, msix_pba_off;
	struct vdrv_q q[Q_MAX];
};

/* ---- irq recording ---- */

static void rec_msi(void *opaque, uint64_t addr, uint32_t data)
{
	struct vdrv_irq *r = opaque;
	if (r->nr_msi < VDRV_MAX_MSI) {
		r->msi[r->nr_msi].addr = addr;
		r->msi[r->nr_msi].data = data;
	}
	r->nr_msi++;
}

static void rec_intx(void *opaque, bool level)
{
	struct vdrv_irq *r = opaque;
	if (level && !r->intx)
		r->intx_raises++;
	r->intx = level;
}

unsigned vdrv_irq_count(const struct vdrv_irq *irq, unsigned vector)
{
	unsigned n = 0, lim = irq->nr_msi < VDRV_MAX_MSI ? irq->nr_msi : VDRV_MAX_MSI;
	for (unsigned i = 0; i < lim; i++)
		if (irq->msi[i].data == VDRV_MSI_DATA(vector))
			n++;
	return n;
}

/* ---- bench ---- */

int vbench_init(struct vbench *b, uint64_t ram_bytes)
{
	memset(b, 0, sizeof(*b));
	b->mem = mem_new(ram_bytes);
	if (!b->mem)
		return -errno;
	int ret = mem_add_ram(b->mem, 0, ram_bytes, 0, "ram");
	b->mmio = mmio_bus_new();
	b->pci = pci_host_new();
	if (ret || !b->mmio || !b->pci) {
		vbench_fini(b);
		return ret ? ret : -ENOMEM;
	}
	b->env.mem = b->mem;
	b->next_free = 1 << 20;
	b->ram_bytes = ram_bytes;
	return 0;
}

void vbench_fini(struct vbench *b)
{
	for (unsigned i = 0; i < b->nr_funcs; i++) {
		vdrv_close(b->drv[i]);
		virtio_pci_free(b->vp[i]);
	}
	b->nr_funcs = 0;
	pci_host_free(b->pci);
	mmio_bus_free(b->mmio);
	mem_free(b->mem);
	b->pci = NULL;
	b->mmio = NULL;
	b->mem = NULL;
}

uint64_t vbench_alloc(struct vbench *b, uint64_t len, uint64_t align)
{
	uint64_t at = (b->next_free + align - 1) & ~(align - 1);
	if (len == 0 || at + len > b->ram_bytes || at + len < at)
		return 0;
	b->next_free = at + len;
	mem_fill(b->mem, at, 0, len);
	return at;
}

struct vdrv *vbench_attach(struct vbench *b, struct virtio_dev *vd)
{
	if (b->nr_funcs >= 8) {
		virtio_dev_free(vd);
		return NULL;
	}
	struct virtio_pci_irq irq = { rec_msi, rec_intx, &b->irq };
	struct virtio_pci *vp = virtio_pci_new(vd, b->mmio, &irq);
	if (!vp) {
		virtio_dev_free(vd);
		return NULL;
	}
	unsigned slot = b->nr_funcs + 1;
	if (pci_host_add(b->pci, PCI_DEVFN(slot, 0), virtio_pci_device(vp))) {
		virtio_pci_free(vp);
		return NULL;
	}
	struct vdrv *d = vdrv_open(b, PCI_DEVFN(slot, 0), 0xe0000000ull + slot * 0x100000ull);
	b->vp[b->nr_funcs] = vp;
	b->drv[b->nr_funcs] = d;
	b->nr_funcs++;
	return d;
}

struct virtio_pci *vdrv_transport(struct vdrv *d)
{
	for (unsigned i = 0; i < d->b->nr_funcs; i++)
		if (d->b->drv[i] == d)
			return d->b->vp[i];
	return NULL;
}

/* ---- config space ---- */

uint32_t vdrv_pci_read(struct vdrv *d, unsigned reg, unsigned size)
{
	return pci_config_read(d->b->pci, 0, d->devfn, reg, size);
}

void vdrv_pci_write(struct vdrv *d, unsigned reg, unsigned size, uint32_t val)
{
	pci_config_write(d->b->pci, 0, d->devfn, reg, size, val);
}

static uint64_t bar_rd(struct vdrv *d, uint64_t off, unsigned size)
{
	uint64_t v = 0;
	mmio_bus_read(d->b->mmio, d->bar + off, size, &v);
	return v;
}

static void bar_wr(struct vdrv *d, uint64_t off, unsigned size, uint64_t v)
{
	mmio_bus_write(d->b->mmio, d->bar + off, size, v);
}

struct vdrv *vdrv_open(struct vbench *b, uint8_t devfn, uint64_t bar_gpa)
{
	struct vdrv *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->b = b;
	d->devfn = devfn;
	if (vdrv_pci_read(d, 0, 2) != 0x1af4)
		goto fail;
	/* BAR 0 must be a 64-bit memory BAR: size it, then place it */
	vdrv_pci_write(d, 0x04, 2, 0);
	vdrv_pci_write(d, 0x10, 4, 0xffffffffu);
	vdrv_pci_write(d, 0x14, 4, 0xffffffffu);
	uint32_t lo = vdrv_pci_read(d, 0x10, 4), hi = vdrv_pci_read(d, 0x14, 4);
	if ((lo & 0x7) != 0x4)
		goto fail;
	uint64_t size = ~(((uint64_t)hi << 32) | (lo & ~0xfu)) + 1;
	if (!size || (bar_gpa & (size - 1)))
		goto fail;
	vdrv_pci_write(d, 0x10, 4, (uint32_t)bar_gpa);
	vdrv_pci_write(d, 0x14, 4, (uint32_t)(bar_gpa >> 32));
	vdrv_pci_write(d, 0x04, 2, 0x6); /* memory, bus master */
	d->bar = bar_gpa;

	/* the capability list */
	if (!(vdrv_pci_read(d, 0x06, 2) & 0x10))
		goto fail;
	unsigned ptr = vdrv_pci_read(d, 0x34, 1) & 0xfc, guard = 0;
	bool have_common = false, have_notify = false, have_isr = false;
	while (ptr && guard++ < 48) {
		unsigned id = vdrv_pci_read(d, ptr, 1);
		if (id == 0x11) {
			d->msix_cap = ptr;
			d->msix_nvec = (vdrv_pci_read(d, ptr + 2, 2) & 0x7ff) + 1;
			d->msix_table_off = vdrv_pci_read(d, ptr + 4, 4);
			d->msix_pba_off = vdrv_pci_read(d, ptr + 8, 4);
			if ((d->msix_table_off & 7) || (d->msix_pba_off & 7))
				goto fail; /* only BAR 0 is handled here */
		} else if (id == 0x09) {
			unsigned type = vdrv_pci_read(d, ptr + 3, 1);
			unsigned bar = vdrv_pci_read(d, ptr + 4, 1);
			uint32_t off = vdrv_pci_read(d, ptr + 8, 4);
			uint32_t len = vdrv_pci_read(d, ptr + 12, 4);
			if (bar != 0 && type != 5)
				goto fail;
			if (type != 5 && ((uint64_t)off + len > size))
				goto fail;
			switch (type) {
			case 1:
				if (len < 0x38)
					goto fail;
				d->common = off;
				have_common = true;
				break;
			case 2:
				d->notify = off;
				d->notify_mult = vdrv_pci_read(d, ptr + 16, 4);
				have_notify = true;
				break;
			case 3:
				d->isr = off;
				have_isr = true;
				break;
			case 4:
				d->device = off;
				d->device_len = len;
				break;
			default: break;
			}
		}
		ptr = vdrv_pci_read(d, ptr + 1, 1) & 0xfc;
	}
	if (!have_common || !have_notify || !have_isr)
		goto fail;
	vdrv_reset(d);
	return d;
fail:
	free(d);
	return NULL;
}

void vdrv_close(struct vdrv *d)
{
	if (!d)
		return;
	for (unsigned i = 0; i < Q_MAX; i++) {
		free(d->q[i].next_free);
		free(d->q[i].chain_len);
	}
	free(d);
}

uint64_t vdrv_bar(struct vdrv *d) { return d->bar; }
uint64_t vdrv_msix_table(struct vdrv *d) { return d->bar + (d->msix_table_off & ~7u); }

/* ---- registers ---- */

uint64_t vdrv_common_read(struct vdrv *d, unsigned off, unsigned size)
{
	return bar_rd(d, d->common + off, size);
}

void vdrv_common_write(struct vdrv *d, unsigned off, unsigned size, uint64_t val)
{
	bar_wr(d, d->common + off, size, val);
}

uint8_t vdrv_isr_read(struct vdrv *d) { return (uint8_t)bar_rd(d, d->isr, 1); }

uint64_t vdrv_config_read(struct vdrv *d, unsigned off, unsigned size)
{
	return bar_rd(d, d->device + off, size);
}

void vdrv_config_write(struct vdrv *d, unsigned off, unsigned size, uint64_t val)
{
	bar_wr(d, d->device + off, size, val);
}

uint8_t vdrv_status(struct vdrv *d) { return (uint8_t)vdrv_common_read(d, 0x14, 1); }
void vdrv_set_status(struct vdrv *d, uint8_t s) { vdrv_common_write(d, 0x14, 1, s); }

void vdrv_reset(struct vdrv *d)
{
	vdrv_set_status(d, 0);
	for (int i = 0; i < 1000 && vdrv_status(d) != 0; i++)
		;
	for (unsigned i = 0; i < Q_MAX; i++)
		d->q[i].set_up = false;
}

uint64_t vdrv_device_features(struct vdrv *d)
{
	vdrv_common_write(d, 0x00, 4, 0);
	uint64_t lo = vdrv_common_read(d, 0x04, 4);
	vdrv_common_write(d, 0x00, 4, 1);
	uint64_t hi = vdrv_common_read(d, 0x04, 4);
	return lo | hi << 32;
}

int vdrv_negotiate(struct vdrv *d, uint64_t features)
{
	vdrv_reset(d);
	vdrv_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE);
	vdrv_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	vdrv_common_write(d, 0x08, 4, 0);
	vdrv_common_write(d, 0x0c, 4, (uint32_t)features);
	vdrv_common_write(d, 0x08, 4, 1);
	vdrv_common_write(d, 0x0c, 4, (uint32_t)(features >> 32));
	vdrv_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
			       VIRTIO_STATUS_FEATURES_OK);
	return (vdrv_status(d) & VIRTIO_STATUS_FEATURES_OK) ? 0 : -EIO;
}

void vdrv_driver_ok(struct vdrv *d)
{
	vdrv_set_status(d, vdrv_status(d) | VIRTIO_STATUS_DRIVER_OK);
}

/* ---- MSI-X ---- */

void vdrv_msix_enable(struct vdrv *d, bool on)
{
	if (!d->msix_cap)
		return;
	uint16_t ctrl = (uint16_t)vdrv_pci_read(d, d->msix_cap + 2, 2);
	if (on) {
		for (unsigned v = 0; v < d->msix_nvec; v++) {
			uint64_t e = d->msix_table_off + 16ull * v;
			bar_wr(d, e, 4, (uint32_t)VDRV_MSI_ADDR);
			bar_wr(d, e + 4, 4, (uint32_t)(VDRV_MSI_ADDR >> 32));
			bar_wr(d, e + 8, 4, VDRV_MSI_DATA(v));
			bar_wr(d, e + 12, 4, 0);
		}
		ctrl |= 0x8000;
	} else {
		ctrl &= (uint16_t)~0x8000;
	}
	vdrv_pci_write(d, d->msix_cap + 2, 2, ctrl);
}

void vdrv_msix_mask(struct vdrv *d, unsigned vector, bool masked)
{
	bar_wr(d, d->msix_table_off + 16ull * vector + 12, 4, masked ? 1 : 0);
}

void vdrv_msix_function_mask(struct vdrv *d, bool masked)
{
	uint16_t ctrl = (uint16_t)vdrv_pci_read(d, d->msix_cap + 2, 2);
	ctrl = masked ? (ctrl | 0x4000) : (ctrl & (uint16_t)~0x4000);
	vdrv_pci_write(d, d->msix_cap + 2, 2, ctrl);
}

bool vdrv_msix_pending(struct vdrv *d, unsigned vector)
{
	uint64_t w = bar_rd(d, d->msix_pba_off + 8ull * (vector / 64), 8);
	return (w >> (vector % 64)) & 1;
}

/* ---- queues ---- */

static struct mem *M(struct vdrv *d) { return d->b->mem; }

static uint16_t rd16(struct vdrv *d, uint64_t gpa)
{
	uint16_t v = 0;
	mem_read(M(d), gpa, &v, 2);
	return v;
}

static void wr16(struct vdrv *d, uint64_t gpa, uint16_t v)
{
	mem_write(M(d), gpa, &v, 2);
}

int vdrv_queue_setup(struct vdrv *d, unsigned q, unsigned size, uint16_t vector)
{
	if (q >= Q_MAX || !size || (size & (size - 1)) || size > 32768)
		return -EINVAL;
	struct vdrv_q *Q = &d->q[q];
	Q->desc = vbench_alloc(d->b, 16ull * size, 4096);
	Q->avail = vbench_alloc(d->b, 6ull + 2ull * size, 4096);
	Q->used = vbench_alloc(d->b, 6ull + 8ull * size, 4096);
	free(Q->next_free);
	free(Q->chain_len);
	Q->next_free = calloc(size, sizeof(uint16_t));
	Q->chain_len = calloc(size, sizeof(uint16_t));
	if (!Q->desc || !Q->avail || !Q->used || !Q->next_free || !Q->chain_len)
		return -ENOMEM;
	Q->size = size;
	Q->avail_idx = Q->last_used = 0;
	for (unsigned i = 0; i < size; i++)
		Q->next_free[i] = (uint16_t)(i + 1);
	Q->free_head = 0;
	Q->nr_free = size;
	vdrv_common_write(d, 0x16, 2, q);
	vdrv_common_write(d, 0x18, 2, size);
	vdrv_common_write(d, 0x1a, 2, vector);
	vdrv_common_write(d, 0x20, 4, (uint32_t)Q->desc);
	vdrv_common_write(d, 0x24, 4, (uint32_t)(Q->desc >> 32));
	vdrv_common_write(d, 0x28, 8, Q->avail);
	vdrv_common_write(d, 0x30, 8, Q->used);
	vdrv_common_write(d, 0x1c, 2, 1);
	if (vdrv_common_read(d, 0x1c, 2) != 1)
		return -EIO;
	Q->set_up = true;
	return 0;
}

struct vdrv_ring vdrv_queue_ring(struct vdrv *d, unsigned q)
{
	struct vdrv_q *Q = &d->q[q];
	return (struct vdrv_ring){ Q->desc, Q->avail, Q->used, Q->size };
}

void vdrv_write_desc(struct vdrv *d, unsigned q, unsigned i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	struct vdrv_q *Q = &d->q[q];
	uint8_t raw[16];
	memcpy(raw, &addr, 8);
	memcpy(raw + 8, &len, 4);
	memcpy(raw + 12, &flags, 2);
	memcpy(raw + 14, &next, 2);
	mem_write(M(d), Q->desc + 16ull * i, raw, 16);
}

static void write_desc_at(struct vdrv *d, uint64_t gpa, uint64_t addr, uint32_t len,
			  uint16_t flags, uint16_t next)
{
	uint8_t raw[16];
	memcpy(raw, &addr, 8);
	memcpy(raw + 8, &len, 4);
	memcpy(raw + 12, &flags, 2);
	memcpy(raw + 14, &next, 2);
	mem_write(M(d), gpa, raw, 16);
}

void vdrv_add_raw_head(struct vdrv *d, unsigned q, uint16_t head)
{
	struct vdrv_q *Q = &d->q[q];
	wr16(d, Q->avail + 4 + 2ull * (Q->avail_idx % Q->size), head);
	Q->avail_idx++;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	wr16(d, Q->avail + 2, Q->avail_idx);
}

static uint16_t take_desc(struct vdrv_q *Q)
{
	uint16_t i = Q->free_head;
	Q->free_head = Q->next_free[i];
	Q->nr_free--;
	return i;
}

int vdrv_add(struct vdrv *d, unsigned q, const struct vdrv_buf *bufs, unsigned n, bool indirect)
{
	struct vdrv_q *Q = &d->q[q];
	if (!Q->set_up || n == 0)
		return -EINVAL;
	unsigned need = indirect ? 1 : n;
	if (Q->nr_free < need)
		return -ENOSPC;
	uint16_t head;
	if (indirect) {
		uint64_t table = vbench_alloc(d->b, 16ull * n, 16);
		if (!table)
			return -ENOMEM;
		for (unsigned i = 0; i < n; i++)
			write_desc_at(d, table + 16ull * i, bufs[i].gpa, bufs[i].len,
				      (uint16_t)((bufs[i].write ? 2 : 0) | (i + 1 < n ? 1 : 0)),
				      (uint16_t)(i + 1 < n ? i + 1 : 0));
		head = take_desc(Q);
		vdrv_write_desc(d, q, head, table, 16u * n, 4, 0);
		Q->chain_len[head] = 1;
	} else {
		uint16_t idx[n];
		for (unsigned i = 0; i < n; i++)
			idx[i] = take_desc(Q);
		for (unsigned i = 0; i < n; i++)
			vdrv_write_desc(d, q, idx[i], bufs[i].gpa, bufs[i].len,
					(uint16_t)((bufs[i].write ? 2 : 0) | (i + 1 < n ? 1 : 0)),
					i + 1 < n ? idx[i + 1] : 0);
		head = idx[0];
		Q->chain_len[head] = (uint16_t)n;
	}
	vdrv_add_raw_head(d, q, head);
	return head;
}

void vdrv_kick(struct vdrv *d, unsigned q)
{
	vdrv_common_write(d, 0x16, 2, q);
	uint16_t off = (uint16_t)vdrv_common_read(d, 0x1e, 2); /* queue_notify_off */
	bar_wr(d, d->notify + (uint64_t)off * d->notify_mult, 2, q);
}

int vdrv_get_used(struct vdrv *d, unsigned q, uint32_t *len)
{
	struct vdrv_q *Q = &d->q[q];
	if (!Q->set_up)
		return -1;
	uint16_t idx = rd16(d, Q->used + 2);
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	if (idx == Q->last_used)
		return -1;
	uint64_t e = Q->used + 4 + 8ull * (Q->last_used % Q->size);
	uint32_t id = 0, l = 0;
	mem_read(M(d), e, &id, 4);
	mem_read(M(d), e + 4, &l, 4);
	Q->last_used++;
	if (len)
		*len = l;
	if (id < Q->size) {
		/* give the chain's descriptors back (walking our own links) */
		unsigned cnt = Q->chain_len[id] ? Q->chain_len[id] : 1;
		uint16_t i = (uint16_t)id;
		for (unsigned k = 0; k < cnt; k++) {
			uint8_t raw[16];
			mem_read(M(d), Q->desc + 16ull * i, raw, 16);
			uint16_t nx;
			memcpy(&nx, raw + 14, 2);
			Q->next_free[i] = Q->free_head;
			Q->free_head = i;
			Q->nr_free++;
			i = nx % Q->size;
		}
		Q->chain_len[id] = 0;
	}
	return (int)id;
}

void vdrv_set_no_interrupt(struct vdrv *d, unsigned q, bool no_interrupt)
{
	wr16(d, d->q[q].avail, no_interrupt ? 1 : 0);
}

void vdrv_set_used_event(struct vdrv *d, unsigned q, uint16_t idx)
{
	struct vdrv_q *Q = &d->q[q];
	wr16(d, Q->avail + 4 + 2ull * Q->size, idx);
}

bool vdrv_device_no_notify(struct vdrv *d, unsigned q) { return rd16(d, d->q[q].used) & 1; }

uint16_t vdrv_avail_event(struct vdrv *d, unsigned q)
{
	struct vdrv_q *Q = &d->q[q];
	return rd16(d, Q->used + 4 + 8ull * Q->size);
}

uint16_t vdrv_used_idx(struct vdrv *d, unsigned q) { return rd16(d, d->q[q].used + 2); }
uint16_t vdrv_avail_idx(struct vdrv *d, unsigned q) { return d->q[q].avail_idx; }

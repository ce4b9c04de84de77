/*
 * The virtio PCI transport, modern (virtio 1.2, 4.1), non-transitional.
 *
 * One 64-bit memory BAR (BAR 0/1) holds every structure:
 *
 *   0x0000  common configuration (4.1.4.3)
 *   0x1000  ISR status (read clears, lowers INTx)
 *   0x2000  device-specific configuration (if the device has one)
 *   0x3000  notify: queue q's doorbell at q * VP_NOTIFY_MULT
 *   0x4000  MSI-X table (16 bytes per vector)
 *   0x5000  MSI-X pending bit array
 *
 * announced by vendor capabilities (cfg_type 1..5, including the
 * VIRTIO_PCI_CAP_PCI_CFG window) and an MSI-X capability in config space.
 * The BAR's window is (un)registered on the MMIO bus whenever the guest
 * (or the machine) moves the BAR or flips the command register's memory
 * enable bit.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "hw/hw.h"
#include "virtio/virtio_int.h"

#define VP_COMMON_OFF 0x0000u
#define VP_COMMON_LEN 0x3cu
#define VP_ISR_OFF 0x1000u
#define VP_ISR_LEN 4u
#define VP_DEVICE_OFF 0x2000u
#define VP_NOTIFY_OFF 0x3000u
#define VP_NOTIFY_MULT 4u
#define VP_MSIX_TABLE_OFF 0x4000u
#define VP_MSIX_PBA_OFF 0x5000u
#define VP_BAR_SIZE 0x8000u
#define VP_MAX_VECTORS 256u

/* config space layout */
#define CAP_MSIX 0x40
#define CAP_COMMON 0x50
#define CAP_NOTIFY 0x60
#define CAP_ISR 0x74
#define CAP_DEVICE 0x84
#define CAP_PCICFG 0x94
#define PCI_CMD_MEM 0x2
#define PCI_CMD_INTX_DISABLE 0x400
#define PCI_STATUS_INT 0x08
#define PCI_STATUS_CAPLIST 0x10
#define MSIX_CTRL_ENABLE 0x8000
#define MSIX_CTRL_FMASK 0x4000

enum {
	VIRTIO_PCI_CAP_COMMON_CFG = 1,
	VIRTIO_PCI_CAP_NOTIFY_CFG = 2,
	VIRTIO_PCI_CAP_ISR_CFG = 3,
	VIRTIO_PCI_CAP_DEVICE_CFG = 4,
	VIRTIO_PCI_CAP_PCI_CFG = 5,
};

struct virtio_pci {
	struct pci_device pci;
	struct virtio_dev *vd;
	struct mmio_bus *mmio;
	struct virtio_pci_irq irq;
	/* BAR window */
	bool mapped;
	uint64_t mapped_at;
	/* common configuration registers owned by the transport */
	uint32_t dfselect, gfselect;
	uint16_t queue_sel;
	uint16_t msix_config;
	uint8_t isr;
	bool intx_level;
	/* MSI-X */
	unsigned nvec;
	uint8_t msix_table[VP_MAX_VECTORS * 16];
	uint8_t msix_pba[VP_MAX_VECTORS / 8];
};

static uint32_t get_le(const uint8_t *p, unsigned n)
{
	uint32_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static void put_le(uint8_t *p, uint32_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t cmd_reg(const struct virtio_pci *vp)
{
	return (uint16_t)get_le(&vp->pci.config[0x04], 2);
}

static uint16_t msix_ctrl(const struct virtio_pci *vp)
{
	return (uint16_t)get_le(&vp->pci.config[CAP_MSIX + 2], 2);
}

static bool msix_enabled(const struct virtio_pci *vp)
{
	return msix_ctrl(vp) & MSIX_CTRL_ENABLE;
}

/* ---- interrupts ---- */

static void update_intx(struct virtio_pci *vp)
{
	bool level = !msix_enabled(vp) && vp->isr && !(cmd_reg(vp) & PCI_CMD_INTX_DISABLE);
	if (vp->isr)
		vp->pci.config[0x06] |= PCI_STATUS_INT;
	else
		vp->pci.config[0x06] &= (uint8_t)~PCI_STATUS_INT;
	if (level != vp->intx_level) {
		vp->intx_level = level;
		if (vp->irq.intx)
			vp->irq.intx(vp->irq.opaque, level);
	}
}

static bool vector_masked(const struct virtio_pci *vp, unsigned v)
{
	return (msix_ctrl(vp) & MSIX_CTRL_FMASK) || (vp->msix_table[v * 16 + 12] & 1);
}

static void msix_send(struct virtio_pci *vp, unsigned v)
{
	const uint8_t *e = &vp->msix_table[v * 16];
	uint64_t addr = get_le(e, 4) | (uint64_t)get_le(e + 4, 4) << 32;
	uint32_t data = get_le(e + 8, 4);
	if (vp->irq.msi)
		vp->irq.msi(vp->irq.opaque, addr, data);
}

static void signal_vector(struct virtio_pci *vp, uint16_t vector)
{
	if (!msix_enabled(vp)) {
		update_intx(vp);
		return;
	}
	if (vector == VIRTIO_NO_VECTOR || vector >= vp->nvec)
		return;
	if (vector_masked(vp, vector))
		vp->msix_pba[vector / 8] |= (uint8_t)(1u << (vector % 8));
	else
		msix_send(vp, vector);
}

/* Sends what is pending and no longer masked. */
static void msix_flush_pending(struct virtio_pci *vp)
{
	if (!msix_enabled(vp))
		return;
	for (unsigned v = 0; v < vp->nvec; v++) {
		uint8_t bit = (uint8_t)(1u << (v % 8));
		if ((vp->msix_pba[v / 8] & bit) && !vector_masked(vp, v)) {
			vp->msix_pba[v / 8] &= (uint8_t)~bit;
			msix_send(vp, v);
		}
	}
}

static void tr_notify_queue(void *opaque, struct virtq *vq)
{
	struct virtio_pci *vp = opaque;
	vp->isr |= 1;
	signal_vector(vp, vq->msix_vector);
}

static void tr_notify_config(void *opaque)
{
	struct virtio_pci *vp = opaque;
	vp->isr |= 2;
	signal_vector(vp, vp->msix_config);
}

static const struct virtio_transport_ops vp_transport = { tr_notify_queue, tr_notify_config };

/* ---- common configuration ---- */

struct field {
	uint8_t off, width;
};
static const struct field common_fields[] = {
	{ 0x00, 4 }, { 0x04, 4 }, { 0x08, 4 }, { 0x0c, 4 }, { 0x10, 2 }, { 0x12, 2 },
	{ 0x14, 1 }, { 0x15, 1 }, { 0x16, 2 }, { 0x18, 2 }, { 0x1a, 2 }, { 0x1c, 2 },
	{ 0x1e, 2 }, { 0x20, 8 }, { 0x28, 8 }, { 0x30, 8 }, { 0x38, 2 }, { 0x3a, 2 },
};

static struct virtq *sel_queue(struct virtio_pci *vp)
{
	return virtio_dev_queue(vp->vd, vp->queue_sel);
}

static uint64_t common_get(struct virtio_pci *vp, unsigned off)
{
	struct virtio_dev *vd = vp->vd;
	struct virtq *vq = sel_queue(vp);
	switch (off) {
	case 0x00: return vp->dfselect;
	case 0x04:
		return vp->dfselect < 2 ? (uint32_t)(virtio_dev_host_features(vd) >> (32 * vp->dfselect))
					: 0;
	case 0x08: return vp->gfselect;
	case 0x0c: return vp->gfselect < 2 ? (uint32_t)(vd->driver_features >> (32 * vp->gfselect)) : 0;
	case 0x10: return vp->msix_config;
	case 0x12: return vd->nr_queues;
	case 0x14: return vd->status;
	case 0x15: return vd->config_gen;
	case 0x16: return vp->queue_sel;
	case 0x18: return vq ? vq->size : 0;
	case 0x1a: return vq ? vq->msix_vector : VIRTIO_NO_VECTOR;
	case 0x1c: return vq ? vq->ready : 0;
	case 0x1e: return vq ? vp->queue_sel : 0;
	case 0x20: return vq ? vq->desc_gpa : 0;
	case 0x28: return vq ? vq->avail_gpa : 0;
	case 0x30: return vq ? vq->used_gpa : 0;
	case 0x38: return vq ? vp->queue_sel : 0;
	default: return 0; /* queue_reset: not offered */
	}
}

static uint16_t valid_vector(const struct virtio_pci *vp, uint64_t v)
{
	return v < vp->nvec ? (uint16_t)v : VIRTIO_NO_VECTOR;
}

static void transport_reset(struct virtio_pci *vp)
{
	vp->msix_config = VIRTIO_NO_VECTOR;
	vp->isr = 0;
	vp->dfselect = vp->gfselect = 0;
	vp->queue_sel = 0;
	update_intx(vp);
}

static void common_set(struct virtio_pci *vp, unsigned off, uint64_t v)
{
	struct virtio_dev *vd = vp->vd;
	struct virtq *vq = sel_queue(vp);
	/* queue registers are frozen once the queue is enabled */
	bool q_writable = vq && !vq->ready;
	switch (off) {
	case 0x00: vp->dfselect = (uint32_t)v; break;
	case 0x08: vp->gfselect = (uint32_t)v; break;
	case 0x0c:
		if (vp->gfselect < 2 && !(vd->status & VIRTIO_STATUS_FEATURES_OK)) {
			unsigned sh = 32 * vp->gfselect;
			vd->driver_features = (vd->driver_features & ~(0xffffffffull << sh)) |
					      ((v & 0xffffffffull) << sh);
		}
		break;
	case 0x10: vp->msix_config = valid_vector(vp, v); break;
	case 0x14:
		virtio_dev_write_status(vd, (uint8_t)v);
		if ((uint8_t)v == 0)
			transport_reset(vp);
		break;
	case 0x16: vp->queue_sel = (uint16_t)v; break;
	case 0x18:
		if (q_writable)
			vq->size = (uint16_t)v;
		break;
	case 0x1a:
		if (vq)
			vq->msix_vector = valid_vector(vp, v);
		break;
	case 0x1c:
		if (q_writable && (v & 1))
			virtq_enable(vq);
		break;
	case 0x20:
		if (q_writable)
			vq->desc_gpa = v;
		break;
	case 0x28:
		if (q_writable)
			vq->avail_gpa = v;
		break;
	case 0x30:
		if (q_writable)
			vq->used_gpa = v;
		break;
	default: break; /* read-only */
	}
}

static uint64_t common_read(struct virtio_pci *vp, unsigned off, unsigned size)
{
	uint64_t r = 0;
	for (unsigned i = 0; i < size; i++) {
		unsigned b = off + i;
		for (unsigned f = 0; f < ARRAY_SIZE(common_fields); f++) {
			const struct field *fl = &common_fields[f];
			if (b >= fl->off && b < fl->off + fl->width) {
				uint64_t v = common_get(vp, fl->off);
				r |= ((v >> (8 * (b - fl->off))) & 0xff) << (8 * i);
				break;
			}
		}
	}
	return r;
}

static void common_write(struct virtio_pci *vp, unsigned off, unsigned size, uint64_t val)
{
	for (unsigned f = 0; f < ARRAY_SIZE(common_fields); f++) {
		const struct field *fl = &common_fields[f];
		unsigned lo = MAX(off, fl->off), hi = MIN(off + size, (unsigned)fl->off + fl->width);
		if (lo >= hi)
			continue;
		uint64_t v = common_get(vp, fl->off);
		for (unsigned b = lo; b < hi; b++) {
			uint64_t byte = (val >> (8 * (b - off))) & 0xff;
			unsigned sh = 8 * (b - fl->off);
			v = (v & ~(0xffull << sh)) | (byte << sh);
		}
		common_set(vp, fl->off, v);
	}
}

/* ---- the BAR ---- */

static uint64_t bar_read(void *opaque, uint64_t off, unsigned size)
{
	struct virtio_pci *vp = opaque;
	struct virtio_dev *vd = vp->vd;
	if (off < VP_COMMON_OFF + VP_COMMON_LEN)
		return off + size <= VP_COMMON_LEN ? common_read(vp, (unsigned)off, size) : 0;
	if (off >= VP_ISR_OFF && off < VP_ISR_OFF + VP_ISR_LEN) {
		if (off != VP_ISR_OFF)
			return 0;
		uint8_t v = vp->isr;
		vp->isr = 0;
		update_intx(vp);
		return v;
	}
	if (off >= VP_DEVICE_OFF && off < VP_DEVICE_OFF + 0x1000) {
		uint8_t buf[8];
		virtio_dev_config_access(vd, (uint32_t)(off - VP_DEVICE_OFF), buf, size, false);
		uint64_t v = 0;
		memcpy(&v, buf, size);
		return v;
	}
	if (off >= VP_MSIX_TABLE_OFF && off + size <= VP_MSIX_TABLE_OFF + 16ull * vp->nvec) {
		uint64_t v = 0;
		memcpy(&v, &vp->msix_table[off - VP_MSIX_TABLE_OFF], size);
		return v;
	}
	if (off >= VP_MSIX_PBA_OFF && off < VP_MSIX_PBA_OFF + 8 * ((vp->nvec + 63) / 64)) {
		uint64_t v = 0;
		for (unsigned i = 0; i < size; i++) {
			uint64_t b = off - VP_MSIX_PBA_OFF + i;
			if (b < sizeof(vp->msix_pba))
				v |= (uint64_t)vp->msix_pba[b] << (8 * i);
		}
		return v;
	}
	return 0;
}

static void msix_table_write(struct virtio_pci *vp, uint64_t off, unsigned size, uint64_t val)
{
	for (unsigned i = 0; i < size; i++) {
		uint64_t b = off + i;
		uint8_t byte = (uint8_t)(val >> (8 * i));
		if (b % 16 == 12)
			byte &= 1; /* vector control: only the mask bit */
		else if (b % 16 > 12)
			continue; /* reserved */
		else if (b % 16 == 0)
			byte &= 0xfc; /* message address is dword aligned */
		vp->msix_table[b] = byte;
	}
	msix_flush_pending(vp);
}

static void bar_write(void *opaque, uint64_t off, unsigned size, uint64_t val)
{
	struct virtio_pci *vp = opaque;
	struct virtio_dev *vd = vp->vd;
	if (off < VP_COMMON_OFF + VP_COMMON_LEN) {
		if (off + size <= VP_COMMON_LEN)
			common_write(vp, (unsigned)off, size, val);
		return;
	}
	if (off >= VP_DEVICE_OFF && off < VP_DEVICE_OFF + 0x1000) {
		uint8_t buf[8];
		memcpy(buf, &val, size);
		virtio_dev_config_access(vd, (uint32_t)(off - VP_DEVICE_OFF), buf, size, true);
		return;
	}
	if (off >= VP_NOTIFY_OFF && off < VP_NOTIFY_OFF + VP_NOTIFY_MULT * vd->nr_queues) {
		virtio_dev_queue_kick(vd, (unsigned)((off - VP_NOTIFY_OFF) / VP_NOTIFY_MULT));
		return;
	}
	if (off >= VP_MSIX_TABLE_OFF && off + size <= VP_MSIX_TABLE_OFF + 16ull * vp->nvec) {
		msix_table_write(vp, off - VP_MSIX_TABLE_OFF, size, val);
		return;
	}
	/* ISR, PBA and the gaps are read-only */
}

static const struct bus_dev_ops bar_ops = { bar_read, bar_write };

static void remap_bar(struct virtio_pci *vp)
{
	const uint8_t *c = vp->pci.config;
	uint64_t addr = (get_le(&c[0x10], 4) & ~0xfu) | (uint64_t)get_le(&c[0x14], 4) << 32;
	bool want = (cmd_reg(vp) & PCI_CMD_MEM) && addr != 0 && addr + VP_BAR_SIZE > addr;
	if (vp->mapped && (!want || vp->mapped_at != addr)) {
		mmio_bus_unregister(vp->mmio, vp->mapped_at);
		vp->mapped = false;
	}
	if (want && !vp->mapped) {
		int ret = mmio_bus_register(vp->mmio, addr, VP_BAR_SIZE, &bar_ops, vp,
					    virtio_dev_name(vp->vd));
		if (ret == 0) {
			vp->mapped = true;
			vp->mapped_at = addr;
		} else {
			log_debug("%s: BAR 0 at 0x%llx not mapped: %s", virtio_dev_name(vp->vd),
				  (unsigned long long)addr, strerror(-ret));
		}
	}
}

void virtio_pci_bar_moved(struct virtio_pci *vp)
{
	remap_bar(vp);
}

/* ---- config space hooks ---- */

static bool overlaps(unsigned reg, unsigned size, unsigned lo, unsigned len)
{
	return reg < lo + len && lo < reg + size;
}

/* The VIRTIO_PCI_CAP_PCI_CFG window: bar, offset, length in the cap, the
 * data in the 4 bytes after it. */
static bool pcicfg_window(struct virtio_pci *vp, uint64_t *off, unsigned *len)
{
	const uint8_t *c = &vp->pci.config[CAP_PCICFG];
	unsigned bar = c[4];
	uint32_t o = get_le(c + 8, 4), l = get_le(c + 12, 4);
	if (bar != 0 || (l != 1 && l != 2 && l != 4) || o % l || (uint64_t)o + l > VP_BAR_SIZE)
		return false;
	*off = o;
	*len = l;
	return true;
}

static void cfg_written(struct pci_device *dev, unsigned reg, unsigned size)
{
	struct virtio_pci *vp = dev->opaque;
	if (overlaps(reg, size, 0x04, 2) || overlaps(reg, size, 0x10, 8))
		remap_bar(vp);
	if (overlaps(reg, size, 0x04, 2) || overlaps(reg, size, CAP_MSIX + 2, 2)) {
		update_intx(vp);
		msix_flush_pending(vp);
	}
	if (overlaps(reg, size, CAP_PCICFG + 16, 4)) {
		uint64_t off;
		unsigned len;
		if (pcicfg_window(vp, &off, &len))
			bar_write(vp, off, len, get_le(&vp->pci.config[CAP_PCICFG + 16], len));
	}
}

static void cfg_read(struct pci_device *dev, unsigned reg, unsigned size)
{
	struct virtio_pci *vp = dev->opaque;
	if (overlaps(reg, size, CAP_PCICFG + 16, 4)) {
		uint64_t off;
		unsigned len;
		if (pcicfg_window(vp, &off, &len))
			put_le(&vp->pci.config[CAP_PCICFG + 16], (uint32_t)bar_read(vp, off, len), len);
	}
}

static const struct pci_dev_ops vp_pci_ops = { cfg_written, cfg_read };

/* ---- construction ---- */

static uint32_t class_of(uint16_t device_id)
{
	switch (device_id) {
	case VIRTIO_ID_NET: return 0x020000;	 /* ethernet */
	case VIRTIO_ID_BLOCK: return 0x010000;	 /* SCSI storage, as QEMU */
	case VIRTIO_ID_CONSOLE: return 0x078000; /* other communication */
	default: return 0x00ff00;
	}
}

static void add_vendor_cap(uint8_t *c, unsigned at, unsigned next, unsigned len, uint8_t type,
			   uint32_t offset, uint32_t length)
{
	c[at] = 0x09; /* vendor specific */
	c[at + 1] = (uint8_t)next;
	c[at + 2] = (uint8_t)len;
	c[at + 3] = type;
	c[at + 4] = 0; /* BAR 0 */
	put_le(&c[at + 8], offset, 4);
	put_le(&c[at + 12], length, 4);
}

struct virtio_pci *virtio_pci_new(struct virtio_dev *vd, struct mmio_bus *mmio,
				  const struct virtio_pci_irq *irq)
{
	if (!vd || !mmio || vd->tr || vd->nr_queues * VP_NOTIFY_MULT > 0x1000) {
		errno = EINVAL;
		return NULL;
	}
	struct virtio_pci *vp = calloc(1, sizeof(*vp));
	if (!vp)
		return NULL;
	vp->vd = vd;
	vp->mmio = mmio;
	if (irq)
		vp->irq = *irq;
	vp->nvec = MIN(vd->nr_queues + 1, VP_MAX_VECTORS);
	vp->msix_config = VIRTIO_NO_VECTOR;
	for (unsigned v = 0; v < vp->nvec; v++)
		vp->msix_table[v * 16 + 12] = 1; /* masked at reset */

	struct pci_device *d = &vp->pci;
	uint16_t id = vd->ops->device_id;
	pci_device_init(d, 0x1af4, (uint16_t)(0x1040 + id), class_of(id), 1);
	d->ops = &vp_pci_ops;
	d->opaque = vp;
	uint8_t *c = d->config;
	put_le(&c[0x2c], 0x1af4, 2); /* subsystem vendor */
	put_le(&c[0x2e], 0x1100, 2); /* subsystem id: >= 0x40 (4.1.2.1) */
	c[0x06] |= PCI_STATUS_CAPLIST;
	c[0x34] = CAP_MSIX;
	c[0x3d] = 1; /* INTA# */
	pci_device_set_bar(d, 0, VP_BAR_SIZE, 0x4);

	/* MSI-X: table and PBA in BAR 0 */
	c[CAP_MSIX] = 0x11;
	c[CAP_MSIX + 1] = CAP_COMMON;
	put_le(&c[CAP_MSIX + 2], vp->nvec - 1, 2);
	put_le(&c[CAP_MSIX + 4], VP_MSIX_TABLE_OFF, 4);
	put_le(&c[CAP_MSIX + 8], VP_MSIX_PBA_OFF, 4);
	d->wmask[CAP_MSIX + 3] = 0xc0; /* enable, function mask */

	uint32_t cfg_size = vd->ops->config_size;
	add_vendor_cap(c, CAP_COMMON, CAP_NOTIFY, 16, VIRTIO_PCI_CAP_COMMON_CFG, VP_COMMON_OFF,
		       VP_COMMON_LEN);
	add_vendor_cap(c, CAP_NOTIFY, CAP_ISR, 20, VIRTIO_PCI_CAP_NOTIFY_CFG, VP_NOTIFY_OFF,
		       VP_NOTIFY_MULT * vd->nr_queues);
	put_le(&c[CAP_NOTIFY + 16], VP_NOTIFY_MULT, 4);
	add_vendor_cap(c, CAP_ISR, cfg_size ? CAP_DEVICE : CAP_PCICFG, 16, VIRTIO_PCI_CAP_ISR_CFG,
		       VP_ISR_OFF, VP_ISR_LEN);
	if (cfg_size)
		add_vendor_cap(c, CAP_DEVICE, CAP_PCICFG, 16, VIRTIO_PCI_CAP_DEVICE_CFG,
			       VP_DEVICE_OFF, cfg_size);
	add_vendor_cap(c, CAP_PCICFG, 0, 20, VIRTIO_PCI_CAP_PCI_CFG, 0, 0);
	d->wmask[CAP_PCICFG + 4] = 0xff; /* bar */
	memset(&d->wmask[CAP_PCICFG + 8], 0xff, 12); /* offset, length, data */

	virtio_dev_set_transport(vd, &vp_transport, vp);
	return vp;
}

void virtio_pci_free(struct virtio_pci *vp)
{
	if (!vp)
		return;
	if (vp->mapped)
		mmio_bus_unregister(vp->mmio, vp->mapped_at);
	virtio_dev_free(vp->vd);
	free(vp);
}

struct pci_device *virtio_pci_device(struct virtio_pci *vp) { return &vp->pci; }
uint64_t virtio_pci_bar_size(const struct virtio_pci *vp) { (void)vp; return VP_BAR_SIZE; }
struct virtio_dev *virtio_pci_dev(struct virtio_pci *vp) { return vp->vd; }

void virtio_pci_reset(struct virtio_pci *vp)
{
	virtio_dev_reset(vp->vd);
	transport_reset(vp);
	uint16_t ctrl = msix_ctrl(vp) & (uint16_t)~(MSIX_CTRL_ENABLE | MSIX_CTRL_FMASK);
	put_le(&vp->pci.config[CAP_MSIX + 2], ctrl, 2);
	for (unsigned v = 0; v < vp->nvec; v++) {
		memset(&vp->msix_table[v * 16], 0, 16);
		vp->msix_table[v * 16 + 12] = 1;
	}
	memset(vp->msix_pba, 0, sizeof(vp->msix_pba));
	update_intx(vp);
}

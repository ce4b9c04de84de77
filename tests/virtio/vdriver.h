/*
 * vdriver: a tiny virtio-pci *driver* for device tests, with no guest.
 *
 * It plays the guest's part over the real transport: config-space accesses
 * through the PCI host (pci_config_read/write), MMIO accesses to BAR 0
 * through the MMIO bus, and rings in guest RAM (a struct mem).  Typical use:
 *
 *   struct vbench b;
 *   vbench_init(&b, 16 << 20);                  // RAM at [0, 16 MiB)
 *   struct virtio_dev *vd = virtio_rng_new(&b.env);
 *   struct vdrv *d = vbench_attach(&b, vd);     // PCI slot 1, BAR mapped
 *   vdrv_negotiate(d, vdrv_device_features(d)); // ACK, DRIVER, FEATURES_OK
 *   vdrv_msix_enable(d, true);                  // optional (else INTx)
 *   vdrv_queue_setup(d, 0, 64, 0);       // MSI-X vector 0
 *   vdrv_driver_ok(d);
 *   uint64_t buf = vbench_alloc(&b, 512, 16);
 *   struct vdrv_buf in = { buf, 512, true };
 *   int head = vdrv_add(d, 0, &in, 1, false);   // direct chain
 *   vdrv_kick(d, 0);
 *   uint32_t len;
 *   head = vdrv_get_used(d, 0, &len);           // -1: nothing yet
 *   ...
 *   vbench_fini(&b);                            // frees d and the device
 *
 * Interrupts land in b.irq: every MSI message (addr, data) in order, and
 * the INTx level.  MSI-X vector v is programmed with address
 * VDRV_MSI_ADDR and data VDRV_MSI_DATA(v), so tests can tell vectors
 * apart.  Nothing here is thread-safe; tests are single-threaded (a device
 * that completes requests on another thread must do so under a lock the
 * test takes too, as the machine lock would be).
 */
#ifndef MAQUINA_TESTS_VDRIVER_H
#define MAQUINA_TESTS_VDRIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "hw/hw.h"
#include "mem/mem.h"
#include "virtio/virtio.h"

#define VDRV_MSI_ADDR 0xfee00000ull
#define VDRV_MSI_DATA(v) (0x4000u + (v))
#define VDRV_MAX_MSI 4096
#ifndef VIRTIO_NO_VECTOR
#define VIRTIO_NO_VECTOR 0xffff
#endif

/* What the function's interrupts did. */
struct vdrv_irq {
	unsigned nr_msi; /* messages received (the log keeps the first VDRV_MAX_MSI) */
	struct {
		uint64_t addr;
		uint32_t data;
	} msi[VDRV_MAX_MSI];
	bool intx;	       /* INTx level now */
	unsigned intx_raises;  /* low-to-high transitions */
};
/* How many MSIs with data VDRV_MSI_DATA(vector) arrived so far. */
unsigned vdrv_irq_count(const struct vdrv_irq *irq, unsigned vector);

struct vdrv;

/*
 * A test bench: RAM at [0, ram_bytes) (one region), an MMIO bus, a PCI
 * host, an irq recorder and the env a device is made with (no event loop,
 * no dma hook: set env.loop / env.dma_written before making devices if a
 * test needs them).  A bump allocator hands out guest RAM from 1 MiB up.
 */
struct vbench {
	struct mem *mem;
	struct mmio_bus *mmio;
	struct pci_host *pci;
	struct virtio_env env;
	struct vdrv_irq irq;
	uint64_t next_free;
	uint64_t ram_bytes;
	unsigned nr_funcs;
	struct virtio_pci *vp[8];
	struct vdrv *drv[8];
};

/* 0 or -errno. */
int vbench_init(struct vbench *b, uint64_t ram_bytes);
/* Frees the drivers, the PCI functions (and so the devices), buses, RAM. */
void vbench_fini(struct vbench *b);
/* Guest RAM of len bytes at the given alignment (a power of two), zeroed;
 * 0 if RAM is exhausted (the first MiB is never handed out). */
uint64_t vbench_alloc(struct vbench *b, uint64_t len, uint64_t align);
/*
 * Wraps vd in a virtio_pci function at the next slot (1, 2, ...), BAR 0 at
 * 0xe0000000 + slot * 0x100000, and opens a driver on it (vdrv_open).
 * vd is owned by the bench from then on.  NULL on failure.
 */
struct vdrv *vbench_attach(struct vbench *b, struct virtio_dev *vd);
/* The transport of the driver's function. */
struct virtio_pci *vdrv_transport(struct vdrv *d);

/*
 * Opens the function at devfn: programs BAR 0 to bar_gpa, enables memory
 * decoding and bus mastering, walks the capability list for the common,
 * notify, ISR and device structures and MSI-X.  Resets the device.  NULL
 * if a required capability is missing or malformed.
 */
struct vdrv *vdrv_open(struct vbench *b, uint8_t devfn, uint64_t bar_gpa);
void vdrv_close(struct vdrv *d);

/* Raw register access (common config, ISR, device config): offsets are
 * relative to each structure; size 1, 2, 4 (8 for the 64-bit fields). */
uint64_t vdrv_common_read(struct vdrv *d, unsigned off, unsigned size);
void vdrv_common_write(struct vdrv *d, unsigned off, unsigned size, uint64_t val);
uint8_t vdrv_isr_read(struct vdrv *d);
uint64_t vdrv_config_read(struct vdrv *d, unsigned off, unsigned size);
void vdrv_config_write(struct vdrv *d, unsigned off, unsigned size, uint64_t val);
/* Config space of the function. */
uint32_t vdrv_pci_read(struct vdrv *d, unsigned reg, unsigned size);
void vdrv_pci_write(struct vdrv *d, unsigned reg, unsigned size, uint32_t val);
/* Where BAR 0 is now, and the MSI-X table's guest address. */
uint64_t vdrv_bar(struct vdrv *d);
uint64_t vdrv_msix_table(struct vdrv *d);

uint8_t vdrv_status(struct vdrv *d);
void vdrv_set_status(struct vdrv *d, uint8_t status);
/* Writes status 0 and waits (reads back) until the device reads 0. */
void vdrv_reset(struct vdrv *d);
uint64_t vdrv_device_features(struct vdrv *d);
/* Reset, ACKNOWLEDGE, DRIVER, writes features, FEATURES_OK, reads it back:
 * 0, or -EIO if the device refused the features (FEATURES_OK not set). */
int vdrv_negotiate(struct vdrv *d, uint64_t features);
/* Sets DRIVER_OK. */
void vdrv_driver_ok(struct vdrv *d);

/* MSI-X on/off in the capability; on also programs every vector (address
 * VDRV_MSI_ADDR, data VDRV_MSI_DATA(v)) and unmasks it. */
void vdrv_msix_enable(struct vdrv *d, bool on);
/* Masks or unmasks one vector (vector control) or the whole function. */
void vdrv_msix_mask(struct vdrv *d, unsigned vector, bool masked);
void vdrv_msix_function_mask(struct vdrv *d, bool masked);
/* The pending bit of vector (from the PBA). */
bool vdrv_msix_pending(struct vdrv *d, unsigned vector);

/*
 * Sets up queue q (0..7) with size entries (a power of two) in fresh guest RAM,
 * assigns MSI-X vector (VIRTIO_NO_VECTOR = 0xffff for none), and enables
 * it.  event_idx: the driver will use used_event/avail_event (pass the
 * negotiated VIRTIO_F_EVENT_IDX).  0, -EINVAL, -ENOMEM, or -EIO if the
 * device did not take the queue (queue_enable reads 0).
 */
int vdrv_queue_setup(struct vdrv *d, unsigned q, unsigned size, uint16_t vector);
/* Where queue q's rings are (for tests that corrupt them). */
struct vdrv_ring {
	uint64_t desc, avail, used;
	unsigned size;
};
struct vdrv_ring vdrv_queue_ring(struct vdrv *d, unsigned q);

/* One buffer of a chain: guest address, length, device-writable. */
struct vdrv_buf {
	uint64_t gpa;
	uint32_t len;
	bool write;
};
/*
 * Makes a chain of the n buffers (readable ones must come first; the
 * driver does not check) and publishes it in the avail ring (no kick).
 * indirect: the buffers go into a fresh indirect table (taken from
 * vbench_alloc each time: long loops should rewind b->next_free) and the
 * ring descriptor points to it.  Returns the head descriptor index, or
 * -ENOSPC (not enough free descriptors) / -ENOMEM (guest RAM).
 */
int vdrv_add(struct vdrv *d, unsigned q, const struct vdrv_buf *bufs, unsigned n, bool indirect);
/* Publishes a raw head index in the avail ring (for malicious tests). */
void vdrv_add_raw_head(struct vdrv *d, unsigned q, uint16_t head);
/* Writes descriptor i of queue q's table. */
void vdrv_write_desc(struct vdrv *d, unsigned q, unsigned i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next);
/* Rings queue q's doorbell. */
void vdrv_kick(struct vdrv *d, unsigned q);
/* Next used element: its head (the chain's descriptors are freed) and
 * *len, or -1 if the device has not completed another one. */
int vdrv_get_used(struct vdrv *d, unsigned q, uint32_t *len);

/* Driver-side suppression: avail->flags NO_INTERRUPT, and used_event. */
void vdrv_set_no_interrupt(struct vdrv *d, unsigned q, bool no_interrupt);
void vdrv_set_used_event(struct vdrv *d, unsigned q, uint16_t idx);
/* What the device says: used->flags NO_NOTIFY, avail_event, used->idx. */
bool vdrv_device_no_notify(struct vdrv *d, unsigned q);
uint16_t vdrv_avail_event(struct vdrv *d, unsigned q);
uint16_t vdrv_used_idx(struct vdrv *d, unsigned q);
/* The driver's avail index (next to publish). */
uint16_t vdrv_avail_idx(struct vdrv *d, unsigned q);

#endif

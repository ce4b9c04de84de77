/*
 * virtio: split virtqueues, the virtio-over-PCI transport (virtio 1.x,
 * "modern" only) and the devices (blk, net, console, rng).
 *
 * Spec: "Virtual I/O Device (VIRTIO) Version 1.2", sections 2 (basic
 * facilities), 4.1 (PCI transport) and 5 (device types).
 *
 * Shape:
 *
 *   guest driver ──MMIO (BAR0)──► virtio_pci (transport: capabilities,
 *        ▲                        common config, notify, ISR, MSI-X table,
 *        │ MSI-X / INTx           device config window)
 *        │                             │ struct virtio_dev (status,
 *        │                             │ features, queues, config gen.)
 *        └──── virtq_notify() ◄────────┤
 *                                      ▼
 *                        device (blk / net / console / rng):
 *                        virtio_dev_ops callbacks; pops requests with
 *                        virtq_pop(), completes them with virtq_push()
 *
 * Threads and locking: every entry point here (MMIO accesses from vCPUs,
 * device callbacks, event-loop callbacks a device registered) runs with
 * the machine lock held, as for hw/.  Work that blocks (disk I/O, a host
 * socket that is full) never runs under it: a device hands it to the
 * block layer's queues or to non-blocking descriptors watched by the I/O
 * thread's event loop (core's struct ev_loop, whose callbacks also run
 * under the machine lock).
 *
 * Untrusted guest: every ring index, descriptor address, length, flag and
 * chain is checked.  A chain that loops, is longer than the queue (or its
 * indirect table) allows, points outside guest RAM or mixes the directions
 * wrongly makes virtq_pop() fail; the device then puts itself in
 * DEVICE_NEEDS_RESET (virtio_dev_set_broken), answers nothing more on that
 * device until the driver resets it, and the host carries on.
 *
 * DMA and the software CPU: data written into guest RAM by a device goes
 * through virtq_push() (or virtio_dma_written()), which marks the pages
 * dirty (migration) and tells the vCPUs to drop decoded code on them,
 * before the used ring says the buffer is done.
 */
#ifndef MAQUINA_VIRTIO_H
#define MAQUINA_VIRTIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "block/block.h"
#include "hw/hw.h"

struct mem;
struct ev_loop;
struct pci_device;
struct mmio_bus;

/* Device IDs (virtio 1.2, 5) */
#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG 4

/* Device status bits (2.1) */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED 128

/* Transport / ring feature bits (6) */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32
#define VIRTIO_F_ACCESS_PLATFORM 33
#define VIRTIO_F_RING_PACKED 34
#define VIRTIO_F_IN_ORDER 35

#define VIRTQ_MAX_SIZE 1024 /* largest queue size a device may offer */

/* ------------------------------------------------------------------ */
/* Where a device lives                                                */

/*
 * What a device needs from the VMM: guest memory, the I/O thread's event
 * loop, and a way to tell the vCPUs that guest RAM changed under them (the
 * emu backend drops decoded code there; NULL where nothing needs telling,
 * e.g. KVM or tests).
 */
struct virtio_env {
	struct mem *mem;
	struct ev_loop *loop;
	void (*dma_written)(void *opaque, uint64_t gpa, uint64_t len);
	void *dma_opaque;
};

/* ------------------------------------------------------------------ */
/* Split virtqueues (2.7)                                              */

struct virtq;

/*
 * One popped request: the descriptor chain resolved to host pointers into
 * guest RAM (each segment lies inside one RAM region: checked).  The
 * device-readable ("out") segments come first in the chain, then the
 * device-writable ("in") segments; a chain with a readable descriptor after
 * a writable one is refused.  iov[0 .. out_num) are out, iov[out_num ..
 * out_num + in_num) are in; gpa[i] is iov[i]'s guest address.
 */
struct virtq_elem {
	uint16_t head;		/* the chain's first descriptor index */
	unsigned out_num, in_num;
	uint64_t out_bytes, in_bytes; /* sums of the lengths */
	struct iovec *iov;	/* out_num + in_num entries */
	uint64_t *gpa;		/* same count */
	void *dev_data;		/* for the device (e.g. a request struct) */
};

/*
 * Takes the next available chain.  Returns 1 and *out (released by
 * virtq_push() or virtq_elem_free()), 0 if the ring is empty (or the queue
 * is not enabled), -EINVAL if the driver broke the rules (bad index, loop,
 * chain too long, address outside RAM, nested indirect table, ...; the
 * caller should virtio_dev_set_broken()), or -ENOMEM.  At most queue-size
 * chains can be outstanding: a driver that makes more available than that
 * gets -EINVAL.
 */
int virtq_pop(struct virtq *vq, struct virtq_elem **out);

/*
 * Completes elem: written_bytes is how many bytes the device wrote into
 * the in segments (from their start, in order; clamped to in_bytes).
 * Marks those bytes written (dirty log, vCPU code), appends the used
 * element, publishes the used index, frees elem.  Does not interrupt: call
 * virtq_notify() after a batch.
 */
void virtq_push(struct virtq *vq, struct virtq_elem *elem, uint32_t written_bytes);
/* Frees an element without completing it (the device is being reset). */
void virtq_elem_free(struct virtq_elem *elem);
/* Puts the last popped element back (it will be popped again). */
void virtq_unpop(struct virtq *vq, struct virtq_elem *elem);

/* Interrupts the driver if it wants to hear about the completions pushed
 * since the last call (VIRTQ_AVAIL_F_NO_INTERRUPT, or used_event with
 * VIRTIO_F_EVENT_IDX). */
void virtq_notify(struct virtq *vq);

/* Asks the driver not to notify (false) or to notify (true) on new
 * available buffers (VIRTQ_USED_F_NO_NOTIFY, or avail_event with
 * EVENT_IDX).  Re-enabling returns true if buffers arrived meanwhile, so
 * that the device polls once more instead of sleeping. */
bool virtq_set_notification(struct virtq *vq, bool enable);

/* True if the ring has an available chain not yet popped. */
bool virtq_has_avail(struct virtq *vq);
/* The queue's index within its device, its size (0: not set up), and
 * whether the driver enabled it. */
unsigned virtq_index(const struct virtq *vq);
unsigned virtq_size(const struct virtq *vq);
bool virtq_ready(const struct virtq *vq);

/* Copies between a request's segments and a flat buffer, starting offset
 * bytes into the out (readable) or in (writable) part.  Return the number
 * of bytes copied (short at the end of the segments). */
size_t virtq_elem_read(const struct virtq_elem *e, size_t offset, void *buf, size_t len);
size_t virtq_elem_write(struct virtq_elem *e, size_t offset, const void *buf, size_t len);

/* ------------------------------------------------------------------ */
/* A device, independent of the transport                              */

struct virtio_dev;

/*
 * What a device type implements.  All called under the machine lock.
 *   features      device-specific and transport bits the device offers
 *                 (VIRTIO_F_VERSION_1 is added by the core; so are
 *                 INDIRECT_DESC and EVENT_IDX, which the core implements)
 *   config_read/  the device-specific configuration structure (4.1.4.6):
 *   config_write  offset and len already checked against config_size
 *   activate      the driver set DRIVER_OK: negotiated features are in
 *                 virtio_dev_features(); queues are set up.  Return 0, or
 *                 -errno to fail (the device then reports NEEDS_RESET).
 *   reset         the driver wrote status 0 (or the VM resets): drop every
 *                 request in flight (wait for the ones the host is running,
 *                 without writing guest memory afterwards) and forget the
 *                 queues; the core resets the rings' state.
 *   queue_notify  the driver kicked queue q
 *   free          the VM is going away
 */
struct virtio_dev_ops {
	const char *name; /* "virtio-blk", for messages */
	uint16_t device_id;
	unsigned nr_queues;
	uint16_t queue_max_size; /* power of two <= VIRTQ_MAX_SIZE */
	uint32_t config_size;
	uint64_t (*features)(void *opaque);
	void (*config_read)(void *opaque, uint32_t offset, void *buf, uint32_t len);
	void (*config_write)(void *opaque, uint32_t offset, const void *buf, uint32_t len);
	int (*activate)(void *opaque);
	void (*reset)(void *opaque);
	void (*queue_notify)(void *opaque, unsigned q);
	void (*free)(void *opaque);
};

/* Creates the transport-independent part of a device; opaque is passed
 * to the ops.  NULL with errno on failure. */
struct virtio_dev *virtio_dev_new(const struct virtio_env *env, const struct virtio_dev_ops *ops,
				  void *opaque);
/* Calls ops->free, frees the queues and the device. */
void virtio_dev_free(struct virtio_dev *vd);

const struct virtio_env *virtio_dev_env(const struct virtio_dev *vd);
struct virtq *virtio_dev_queue(struct virtio_dev *vd, unsigned q);
uint64_t virtio_dev_features(const struct virtio_dev *vd); /* negotiated */
bool virtio_dev_has_feature(const struct virtio_dev *vd, unsigned bit);
uint8_t virtio_dev_status(const struct virtio_dev *vd);
const char *virtio_dev_name(const struct virtio_dev *vd);
/* The config space changed (e.g. disk resized): bumps config_generation
 * and sends the configuration-change interrupt. */
void virtio_dev_config_changed(struct virtio_dev *vd);
/* The driver broke the rules (why: for the log, once): sets NEEDS_RESET,
 * sends a configuration-change interrupt, stops serving the queues. */
void virtio_dev_set_broken(struct virtio_dev *vd, const char *why);
/* Tells the vCPUs (env->dma_written) and the dirty log that the device
 * wrote [gpa, gpa + len) outside virtq_push (rare). */
void virtio_dma_written(struct virtio_dev *vd, uint64_t gpa, uint64_t len);

/* ------------------------------------------------------------------ */
/* The PCI transport (4.1)                                             */

/*
 * How a PCI function's interrupts leave it: MSI messages (MSI-X) and its
 * INTx line (INTA#, level).  The machine supplies these.
 */
struct virtio_pci_irq {
	void (*msi)(void *opaque, uint64_t addr, uint32_t data);
	void (*intx)(void *opaque, bool level);
	void *opaque;
};

struct virtio_pci;

/*
 * Wraps vd in a PCI function (vendor 0x1af4, device 0x1040 + device id,
 * revision 1, subsystem ids as the spec asks) with one 64-bit memory BAR
 * holding the common configuration, ISR, device configuration and notify
 * structures and the MSI-X table and PBA (one vector per queue plus one
 * for configuration changes), each announced by a vendor capability.  The
 * caller adds virtio_pci_device() to the PCI host and calls
 * virtio_pci_bar_moved() (or relies on the config-write hook) so that the
 * BAR's MMIO window is registered on mmio at the address the guest (or the
 * machine) programs.  NULL with errno on failure.
 */
struct virtio_pci *virtio_pci_new(struct virtio_dev *vd, struct mmio_bus *mmio,
				  const struct virtio_pci_irq *irq);
void virtio_pci_free(struct virtio_pci *vp); /* frees vd too */
struct pci_device *virtio_pci_device(struct virtio_pci *vp);
/* Size of BAR 0 (what the machine reserves when it assigns addresses). */
uint64_t virtio_pci_bar_size(const struct virtio_pci *vp);
/* Re-reads BAR 0 and the command register and (un)registers the BAR's
 * window on the MMIO bus to match (the config-write hook does this for
 * guest writes through the PCI host; call it after writing config[]
 * directly).  A window that would overlap another is left unmapped. */
void virtio_pci_bar_moved(struct virtio_pci *vp);
/* The device inside the transport. */
struct virtio_dev *virtio_pci_dev(struct virtio_pci *vp);
/* A VM reset: resets the device (as status 0 does) and the function's
 * MSI-X state (disabled, every vector masked, nothing pending); the BAR
 * keeps its address. */
void virtio_pci_reset(struct virtio_pci *vp);

/* ------------------------------------------------------------------ */
/* Devices                                                             */

/* virtio-blk (5.2) on the block layer. */
enum virtio_blk_cache { VIRTIO_BLK_CACHE_WRITEBACK = 0, VIRTIO_BLK_CACHE_NONE };
struct virtio_blk_opts {
	const char *path;
	enum blk_format format; /* BLK_FMT_AUTO probes */
	bool read_only;
	enum virtio_blk_cache cache; /* none: O_DIRECT where possible */
	const char *serial;	     /* GET_ID string (<= 20 bytes); NULL: derived */
};
/*
 * Parses a --disk value: "path=FILE[,format=raw|qcow2][,readonly=on|off]
 * [,cache=none|writeback][,serial=STR]" (a bare FILE is path=FILE).
 * Strings point into spec's copy in *buf (free() it).  Returns 0 or
 * -EINVAL with a message in err.
 */
int virtio_blk_parse(const char *spec, struct virtio_blk_opts *o, char **buf, char *err,
		     size_t err_len);
/* Opens the image and makes the device.  NULL with a message in err. */
struct virtio_dev *virtio_blk_new(const struct virtio_env *env, const struct virtio_blk_opts *o,
				  char *err, size_t err_len);

/*
 * virtio-net (5.1) on a host network backend (net/net.h): queues rx 0 and
 * tx 1; features MAC, STATUS, MRG_RXBUF, CSUM, GUEST_CSUM, HOST_TSO4 (done
 * in software: the backend gets MTU-sized frames).  Attaches to be
 * (which stays the caller's, must outlive the device, and is detached when
 * the device is freed: a backend can serve the NICs of successive boots,
 * keeping its TAP interface and its forwarded ports); mac is the address
 * the guest sees.  NULL with a message in err.
 */
struct net_backend;
struct virtio_dev *virtio_net_new(const struct virtio_env *env, struct net_backend *be,
				  const uint8_t mac[6], char *err, size_t err_len);

/*
 * virtio-console (5.3), one port (no MULTIPORT): the guest's hvc0.
 * Output goes to backend.ops->write; backend.ops->rx_ready (optional) is
 * called when the guest posts receive buffers.  *out (may be NULL) gets
 * the handle for input.
 */
struct virtio_console;
struct virtio_dev *virtio_console_new(const struct virtio_env *env, struct chardev backend,
				      struct virtio_console **out);
/* True if the driver is ready and has posted a receive buffer. */
bool virtio_console_can_receive(struct virtio_console *c);
/* Hands host input to the guest, as much as its posted buffers hold.
 * Returns the number of bytes taken (0 while the driver is not ready). */
size_t virtio_console_receive(struct virtio_console *c, const uint8_t *buf, size_t len);

/* virtio-rng (5.4): fills the guest's buffers from getrandom(). */
struct virtio_dev *virtio_rng_new(const struct virtio_env *env);

#endif

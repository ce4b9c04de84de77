/*
 * virtio internals shared by the virtqueue code (virtq.c), the device core
 * (dev.c) and the PCI transport (pci.c).  Devices use virtio.h only.
 */
#ifndef MAQUINA_VIRTIO_INT_H
#define MAQUINA_VIRTIO_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio/virtio.h"

/* Split-ring layout (virtio 1.2, 2.7) */
#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY 1

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};
_Static_assert(sizeof(struct virtq_desc) == 16, "virtq_desc is 16 bytes");

/* The guest-side sizes of the three parts for a queue of n entries (with
 * the event-index words included, as the spec sizes them). */
#define VIRTQ_DESC_BYTES(n) (16ull * (n))
#define VIRTQ_AVAIL_BYTES(n) (6ull + 2ull * (n))
#define VIRTQ_USED_BYTES(n) (6ull + 8ull * (n))

#define VIRTIO_NO_VECTOR 0xffff

/*
 * One split virtqueue.  The driver-visible registers (size, addresses,
 * vector, enable) are set by the transport; the ring pointers are resolved
 * once, when the driver enables the queue (guest RAM never moves).
 */
struct virtq {
	struct virtio_dev *vd;
	unsigned index;
	uint16_t max_size;
	/* transport registers */
	uint16_t size;	      /* as the driver wrote it; checked on enable */
	uint16_t msix_vector;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	bool ready;
	/* resolved rings (valid while ready) */
	uint8_t *desc;	/* struct virtq_desc[size], guest-shared */
	uint8_t *avail; /* flags, idx, ring[size], used_event */
	uint8_t *used;	/* flags, idx, {id, len}[size], avail_event */
	/* device-side state */
	uint16_t last_avail; /* next avail ring entry to pop */
	uint16_t used_idx;   /* shadow of used->idx */
	uint16_t signalled_used;
	bool signalled_valid;
	bool notify_enabled;   /* the device wants kicks */
	unsigned inflight;     /* popped, not yet pushed or freed */
	unsigned pushed;       /* pushed since the last virtq_notify */
	uint32_t gen;	       /* bumped on enable and reset */
	/* scratch for virtq_pop (grown on demand, bounded) */
	struct iovec *scratch_iov;
	uint64_t *scratch_gpa;
	unsigned scratch_cap;
};

/* How the device core reaches its transport (interrupts). */
struct virtio_transport_ops {
	void (*notify_queue)(void *opaque, struct virtq *vq); /* used-buffer notification */
	void (*notify_config)(void *opaque);		      /* configuration change */
};

struct virtio_dev {
	struct virtio_env env;
	const struct virtio_dev_ops *ops;
	void *opaque;
	uint64_t host_features;	  /* offered */
	uint64_t driver_features; /* as the driver wrote them */
	uint64_t features;	  /* negotiated (after FEATURES_OK) */
	uint8_t status;
	uint8_t config_gen;
	bool broken;
	bool active; /* ops->activate succeeded */
	unsigned broken_logged;
	struct virtq *vqs;
	unsigned nr_queues;
	const struct virtio_transport_ops *tr;
	void *tr_opaque;
};

/* The features offered: the device type's plus the core's, minus the
 * transport bits the core does not implement. */
uint64_t virtio_dev_host_features(const struct virtio_dev *vd);

/* Attaches the transport (one per device). */
void virtio_dev_set_transport(struct virtio_dev *vd, const struct virtio_transport_ops *tr,
			      void *opaque);

/*
 * The driver wrote the device status register.  0 resets the device
 * (ops->reset, which waits for requests in flight, then the queues and
 * the negotiated features).  FEATURES_OK is kept only if the driver's
 * features are a subset of the offered ones and include VERSION_1 (the
 * driver reads the status back to see).  DRIVER_OK activates the device;
 * DRIVER_OK without FEATURES_OK, or an activation that fails, sets
 * NEEDS_RESET.
 */
void virtio_dev_write_status(struct virtio_dev *vd, uint8_t status);
/* Full reset (status 0), also for a VM reset. */
void virtio_dev_reset(struct virtio_dev *vd);
/* The driver kicked queue q (ignored unless DRIVER_OK and not broken). */
void virtio_dev_queue_kick(struct virtio_dev *vd, unsigned q);
/* Device configuration access through the transport: out-of-range bytes
 * read as 0 and writes to them are dropped. */
void virtio_dev_config_access(struct virtio_dev *vd, uint32_t offset, void *buf, uint32_t len,
			      bool write);

/* Transport-side queue operations. */
/* Validates the driver's size and ring addresses and maps the rings; on
 * failure the device goes NEEDS_RESET.  0 or -EINVAL. */
int virtq_enable(struct virtq *vq);
/* Back to the power-on state (size = max, not ready, no vector). */
void virtq_reset(struct virtq *vq);
void virtq_init(struct virtq *vq, struct virtio_dev *vd, unsigned index, uint16_t max_size);
void virtq_fini(struct virtq *vq);

#endif

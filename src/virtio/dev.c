/*
 * The transport-independent part of a virtio device: features, the status
 * state machine (virtio 1.2, 2.1 and 3.1), queues, configuration
 * generation, and what happens when the driver breaks the rules.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "mem/mem.h"
#include "virtio/virtio_int.h"

/* Bits the core implements itself, and transport bits it does not
 * implement (refused even if a device type offers them). */
#define CORE_FEATURES                                                                       \
	((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_F_INDIRECT_DESC) |                  \
	 (1ull << VIRTIO_F_EVENT_IDX))
#define UNSUPPORTED_FEATURES                                                                \
	((1ull << VIRTIO_F_RING_PACKED) | (1ull << VIRTIO_F_ACCESS_PLATFORM) | (1ull << 38) | \
	 (1ull << 40))

/* How many "needs reset" warnings one device prints (a guest that breaks
 * and resets its device in a loop must not flood the log). */
#define BROKEN_LOG_MAX 8

struct virtio_dev *virtio_dev_new(const struct virtio_env *env, const struct virtio_dev_ops *ops,
				  void *opaque)
{
	unsigned qmax = ops ? ops->queue_max_size : 0;
	if (!env || !env->mem || !ops || ops->nr_queues == 0 || ops->nr_queues > 1024 || qmax == 0 ||
	    (qmax & (qmax - 1)) || qmax > VIRTQ_MAX_SIZE || ops->config_size > 0x1000) {
		errno = EINVAL;
		return NULL;
	}
	struct virtio_dev *vd = calloc(1, sizeof(*vd));
	if (!vd)
		return NULL;
	vd->vqs = calloc(ops->nr_queues, sizeof(*vd->vqs));
	if (!vd->vqs) {
		free(vd);
		errno = ENOMEM;
		return NULL;
	}
	vd->env = *env;
	vd->ops = ops;
	vd->opaque = opaque;
	vd->nr_queues = ops->nr_queues;
	for (unsigned i = 0; i < vd->nr_queues; i++)
		virtq_init(&vd->vqs[i], vd, i, ops->queue_max_size);
	return vd;
}

void virtio_dev_free(struct virtio_dev *vd)
{
	if (!vd)
		return;
	if (vd->ops->free)
		vd->ops->free(vd->opaque);
	for (unsigned i = 0; i < vd->nr_queues; i++)
		virtq_fini(&vd->vqs[i]);
	free(vd->vqs);
	free(vd);
}

void virtio_dev_set_transport(struct virtio_dev *vd, const struct virtio_transport_ops *tr,
			      void *opaque)
{
	vd->tr = tr;
	vd->tr_opaque = opaque;
}

const struct virtio_env *virtio_dev_env(const struct virtio_dev *vd) { return &vd->env; }
uint64_t virtio_dev_features(const struct virtio_dev *vd) { return vd->features; }
uint8_t virtio_dev_status(const struct virtio_dev *vd) { return vd->status; }
const char *virtio_dev_name(const struct virtio_dev *vd) { return vd->ops->name; }

struct virtq *virtio_dev_queue(struct virtio_dev *vd, unsigned q)
{
	return q < vd->nr_queues ? &vd->vqs[q] : NULL;
}

bool virtio_dev_has_feature(const struct virtio_dev *vd, unsigned bit)
{
	return bit < 64 && (vd->features & (1ull << bit));
}

uint64_t virtio_dev_host_features(const struct virtio_dev *vd)
{
	uint64_t f = vd->ops->features ? vd->ops->features(vd->opaque) : 0;
	return (f | CORE_FEATURES) & ~UNSUPPORTED_FEATURES;
}

void virtio_dev_set_broken(struct virtio_dev *vd, const char *why)
{
	if (vd->broken)
		return;
	vd->broken = true;
	if (vd->broken_logged < BROKEN_LOG_MAX) {
		vd->broken_logged++;
		log_warn("%s: the guest's driver broke the rules (%s); the device stops until the "
			 "driver resets it%s",
			 vd->ops->name, why ? why : "no reason given",
			 vd->broken_logged == BROKEN_LOG_MAX ? " (further messages suppressed)" : "");
	}
	vd->status |= VIRTIO_STATUS_NEEDS_RESET;
	if ((vd->status & VIRTIO_STATUS_DRIVER_OK) && vd->tr)
		vd->tr->notify_config(vd->tr_opaque);
}

void virtio_dev_config_changed(struct virtio_dev *vd)
{
	vd->config_gen++;
	if ((vd->status & VIRTIO_STATUS_DRIVER_OK) && vd->tr)
		vd->tr->notify_config(vd->tr_opaque);
}

void virtio_dma_written(struct virtio_dev *vd, uint64_t gpa, uint64_t len)
{
	if (!len)
		return;
	mem_dirty_mark(vd->env.mem, gpa, len);
	if (vd->env.dma_written)
		vd->env.dma_written(vd->env.dma_opaque, gpa, len);
}

void virtio_dev_reset(struct virtio_dev *vd)
{
	/* the device drops (and waits for) what it has in flight first, so
	 * nothing it still holds can be completed into the new rings */
	if (vd->ops->reset)
		vd->ops->reset(vd->opaque);
	for (unsigned i = 0; i < vd->nr_queues; i++)
		virtq_reset(&vd->vqs[i]);
	vd->status = 0;
	vd->driver_features = 0;
	vd->features = 0;
	vd->broken = false;
	vd->active = false;
}

void virtio_dev_write_status(struct virtio_dev *vd, uint8_t v)
{
	if (v == 0) {
		virtio_dev_reset(vd);
		return;
	}
	uint8_t old = vd->status;
	/* the driver never clears bits (2.1.1): they stay until a reset;
	 * NEEDS_RESET is the device's bit */
	v &= (uint8_t)~VIRTIO_STATUS_NEEDS_RESET;
	if ((v & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK)) {
		uint64_t host = virtio_dev_host_features(vd);
		uint64_t drv = vd->driver_features;
		if ((drv & ~host) || !(drv & (1ull << VIRTIO_F_VERSION_1))) {
			log_debug("%s: refusing FEATURES_OK: driver features 0x%llx, offered 0x%llx",
				  vd->ops->name, (unsigned long long)drv, (unsigned long long)host);
			v &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
		} else {
			vd->features = drv;
		}
	}
	vd->status = old | v;
	if ((v & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK)) {
		if (!(vd->status & VIRTIO_STATUS_FEATURES_OK)) {
			virtio_dev_set_broken(vd, "DRIVER_OK before the features were accepted");
			return;
		}
		if (vd->broken)
			return;
		int ret = vd->ops->activate ? vd->ops->activate(vd->opaque) : 0;
		if (ret) {
			char why[96];
			snprintf(why, sizeof(why), "the device could not start: %s", strerror(-ret));
			virtio_dev_set_broken(vd, why);
			return;
		}
		vd->active = true;
		/* buffers a driver made available (and perhaps kicked) before
		 * DRIVER_OK are looked at now rather than never */
		for (unsigned q = 0; q < vd->nr_queues && !vd->broken; q++)
			if (virtq_has_avail(&vd->vqs[q]) && vd->ops->queue_notify)
				vd->ops->queue_notify(vd->opaque, q);
	}
}

void virtio_dev_queue_kick(struct virtio_dev *vd, unsigned q)
{
	if (q >= vd->nr_queues || vd->broken || !(vd->status & VIRTIO_STATUS_DRIVER_OK) ||
	    !vd->vqs[q].ready || !vd->ops->queue_notify)
		return;
	vd->ops->queue_notify(vd->opaque, q);
}

void virtio_dev_config_access(struct virtio_dev *vd, uint32_t offset, void *buf, uint32_t len,
			      bool write)
{
	uint32_t size = vd->ops->config_size;
	if (offset >= size || len > size - offset) {
		if (!write)
			memset(buf, 0, len);
		return;
	}
	if (write) {
		if (vd->ops->config_write)
			vd->ops->config_write(vd->opaque, offset, buf, len);
	} else {
		memset(buf, 0, len);
		if (vd->ops->config_read)
			vd->ops->config_read(vd->opaque, offset, buf, len);
	}
}

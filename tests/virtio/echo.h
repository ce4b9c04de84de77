/*
 * A trivial virtio device for the core's tests and fuzz target: two
 * queues; each request's readable bytes are copied into its writable
 * bytes (as many as fit) and the request completes with that count.  With
 * hold set, popped requests wait in held[] until echo_complete_held(), so
 * tests can reset a device with requests in flight.  A 16-byte config
 * space: a 32-bit counter the device bumps on config_changed, and 12
 * writable bytes.
 */
#ifndef MAQUINA_TESTS_ECHO_H
#define MAQUINA_TESTS_ECHO_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/virtio.h"

#define ECHO_ID 0x3f /* an unassigned device id */
#define ECHO_MAX_HELD 4096

struct echo {
	struct virtio_dev *vd;
	uint64_t features;
	bool hold;
	bool fail_activate;
	unsigned nr_held;
	struct {
		struct virtq_elem *e;
		unsigned q;
	} held[ECHO_MAX_HELD];
	unsigned activations, resets, notifies, completed, errors;
	uint8_t config[16];
};

static uint64_t echo_features(void *opaque)
{
	return ((struct echo *)opaque)->features;
}

static void echo_config_read(void *opaque, uint32_t off, void *buf, uint32_t len)
{
	memcpy(buf, ((struct echo *)opaque)->config + off, len);
}

static void echo_config_write(void *opaque, uint32_t off, const void *buf, uint32_t len)
{
	struct echo *ec = opaque;
	for (uint32_t i = 0; i < len; i++)
		if (off + i >= 4)
			ec->config[off + i] = ((const uint8_t *)buf)[i];
}

static int echo_activate(void *opaque)
{
	struct echo *ec = opaque;
	ec->activations++;
	return ec->fail_activate ? -EIO : 0;
}

static void echo_reset(void *opaque)
{
	struct echo *ec = opaque;
	ec->resets++;
	for (unsigned i = 0; i < ec->nr_held; i++)
		virtq_elem_free(ec->held[i].e);
	ec->nr_held = 0;
}

static uint32_t echo_do(struct virtq_elem *e)
{
	uint8_t buf[4096];
	size_t off = 0;
	for (;;) {
		size_t n = virtq_elem_read(e, off, buf, sizeof(buf));
		if (!n)
			break;
		size_t w = virtq_elem_write(e, off, buf, n);
		off += w;
		if (w < n)
			break;
	}
	return (uint32_t)off;
}

static void echo_queue_notify(void *opaque, unsigned q)
{
	struct echo *ec = opaque;
	struct virtq *vq = virtio_dev_queue(ec->vd, q);
	struct virtq_elem *e;
	int ret;
	ec->notifies++;
	while ((ret = virtq_pop(vq, &e)) == 1) {
		if (ec->hold && ec->nr_held < ECHO_MAX_HELD) {
			ec->held[ec->nr_held].e = e;
			ec->held[ec->nr_held].q = q;
			ec->nr_held++;
			continue;
		}
		virtq_push(vq, e, echo_do(e));
		ec->completed++;
	}
	if (ret < 0) {
		ec->errors++;
		virtio_dev_set_broken(ec->vd, "echo: bad chain");
	}
	virtq_notify(vq);
}

/* Completes every held request (in order) and notifies. */
static inline void echo_complete_held(struct echo *ec)
{
	for (unsigned i = 0; i < ec->nr_held; i++) {
		struct virtq *vq = virtio_dev_queue(ec->vd, ec->held[i].q);
		virtq_push(vq, ec->held[i].e, echo_do(ec->held[i].e));
		ec->completed++;
	}
	for (unsigned q = 0; q < 2; q++)
		virtq_notify(virtio_dev_queue(ec->vd, q));
	ec->nr_held = 0;
}

static void echo_free(void *opaque)
{
	struct echo *ec = opaque;
	for (unsigned i = 0; i < ec->nr_held; i++)
		virtq_elem_free(ec->held[i].e);
	free(ec);
}

static const struct virtio_dev_ops echo_ops = {
	.name = "virtio-echo",
	.device_id = ECHO_ID,
	.nr_queues = 2,
	.queue_max_size = 256,
	.config_size = 16,
	.features = echo_features,
	.config_read = echo_config_read,
	.config_write = echo_config_write,
	.activate = echo_activate,
	.reset = echo_reset,
	.queue_notify = echo_queue_notify,
	.free = echo_free,
};

static inline struct echo *echo_new(const struct virtio_env *env, uint64_t features)
{
	struct echo *ec = calloc(1, sizeof(*ec));
	if (!ec)
		return NULL;
	ec->features = features;
	ec->vd = virtio_dev_new(env, &echo_ops, ec);
	if (!ec->vd) {
		free(ec);
		return NULL;
	}
	return ec;
}

#endif

/*
 * virtio-console (virtio 1.2, 5.3) without MULTIPORT: one port, receiveq
 * (queue 0: host -> guest) and transmitq (queue 1: guest -> host).  Linux
 * makes it hvc0, usable as the main console (console=hvc0).
 *
 * Output goes straight to the backend (struct chardev: it never blocks for
 * long and drops what it cannot take, like the UART's).  Input is pulled
 * by the VMM (virtio_console_receive) only as far as the guest has posted
 * receive buffers, so host input waits in the VMM instead of being lost.
 * F_EMERG_WRITE is offered: a config write to emerg_wr emits one byte.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "hw/hw.h"
#include "virtio/virtio.h"

#define VIRTIO_CONSOLE_F_SIZE 0
#define VIRTIO_CONSOLE_F_EMERG_WRITE 2

#define Q_RX 0
#define Q_TX 1
#define CONFIG_SIZE 12 /* cols, rows, max_nr_ports, emerg_wr */

struct virtio_console {
	struct virtio_dev *vd;
	struct chardev be;
	uint16_t cols, rows;
};

static uint64_t con_features(void *opaque)
{
	(void)opaque;
	return 1ull << VIRTIO_CONSOLE_F_EMERG_WRITE;
}

static void con_config_read(void *opaque, uint32_t off, void *buf, uint32_t len)
{
	struct virtio_console *c = opaque;
	uint8_t cfg[CONFIG_SIZE] = { 0 };
	cfg[0] = (uint8_t)c->cols;
	cfg[1] = (uint8_t)(c->cols >> 8);
	cfg[2] = (uint8_t)c->rows;
	cfg[3] = (uint8_t)(c->rows >> 8);
	cfg[4] = 1; /* max_nr_ports (only read with MULTIPORT) */
	memcpy(buf, cfg + off, len);
}

static void emit(struct virtio_console *c, const uint8_t *buf, size_t len)
{
	if (c->be.ops && c->be.ops->write && len)
		c->be.ops->write(c->be.opaque, buf, len);
}

static void con_config_write(void *opaque, uint32_t off, const void *buf, uint32_t len)
{
	struct virtio_console *c = opaque;
	/* emerg_wr at offset 8: the low byte is the character */
	if (off == 8 && len >= 1)
		emit(c, buf, 1);
}

static int con_activate(void *opaque)
{
	(void)opaque;
	return 0;
}

static void con_reset(void *opaque)
{
	(void)opaque; /* nothing is ever in flight */
}

static void con_tx(struct virtio_console *c)
{
	struct virtq *vq = virtio_dev_queue(c->vd, Q_TX);
	struct virtq_elem *e;
	int r;
	bool any = false;
	while ((r = virtq_pop(vq, &e)) == 1) {
		for (unsigned i = 0; i < e->out_num; i++)
			emit(c, e->iov[i].iov_base, e->iov[i].iov_len);
		virtq_push(vq, e, 0);
		any = true;
	}
	if (any)
		virtq_notify(vq);
	if (r < 0)
		virtio_dev_set_broken(c->vd, "transmitq: malformed descriptor chain");
}

static void con_queue_notify(void *opaque, unsigned q)
{
	struct virtio_console *c = opaque;
	if (q == Q_TX)
		con_tx(c);
	else if (q == Q_RX && c->be.ops && c->be.ops->rx_ready)
		c->be.ops->rx_ready(c->be.opaque); /* buffers posted: more input fits */
}

static void con_free(void *opaque)
{
	free(opaque);
}

static const struct virtio_dev_ops console_ops = {
	.name = "virtio-console",
	.device_id = VIRTIO_ID_CONSOLE,
	.nr_queues = 2,
	.queue_max_size = 256,
	.config_size = CONFIG_SIZE,
	.features = con_features,
	.config_read = con_config_read,
	.config_write = con_config_write,
	.activate = con_activate,
	.reset = con_reset,
	.queue_notify = con_queue_notify,
	.free = con_free,
};

struct virtio_dev *virtio_console_new(const struct virtio_env *env, struct chardev backend,
				      struct virtio_console **out)
{
	struct virtio_console *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->be = backend;
	c->cols = 80;
	c->rows = 25;
	c->vd = virtio_dev_new(env, &console_ops, c);
	if (!c->vd) {
		int e = errno;
		free(c);
		errno = e;
		return NULL;
	}
	if (out)
		*out = c;
	return c->vd;
}

bool virtio_console_can_receive(struct virtio_console *c)
{
	if (!(virtio_dev_status(c->vd) & VIRTIO_STATUS_DRIVER_OK) ||
	    (virtio_dev_status(c->vd) & VIRTIO_STATUS_NEEDS_RESET))
		return false;
	struct virtq *vq = virtio_dev_queue(c->vd, Q_RX);
	return vq && virtq_ready(vq) && virtq_has_avail(vq);
}

size_t virtio_console_receive(struct virtio_console *c, const uint8_t *buf, size_t len)
{
	size_t done = 0;
	if (!virtio_console_can_receive(c))
		return 0;
	struct virtq *vq = virtio_dev_queue(c->vd, Q_RX);
	while (done < len) {
		struct virtq_elem *e;
		int r = virtq_pop(vq, &e);
		if (r < 0) {
			virtio_dev_set_broken(c->vd, "receiveq: malformed descriptor chain");
			break;
		}
		if (r == 0)
			break;
		size_t n = virtq_elem_write(e, 0, buf + done, len - done);
		virtq_push(vq, e, (uint32_t)n);
		done += n;
		if (n == 0) /* a buffer with no writable bytes: skip it */
			continue;
	}
	if (done)
		virtq_notify(vq);
	return done;
}

/*
 * virtio-net (virtio 1.2, 5.1) on a host network backend (net/net.h).
 *
 * Queues: 0 receive, 1 transmit (no control queue, one pair).
 * Features: MAC, STATUS (link always up), MRG_RXBUF, CSUM (the device
 * finishes the guest's partial checksums on transmit), HOST_TSO4 (the
 * device cuts the guest's TCP/IPv4 frames of up to 64 KiB into segments
 * for the backend), GUEST_CSUM (frames whose checksums the backend knows
 * good are marked DATA_VALID).  Every
 * frame carries the 12-byte struct virtio_net_hdr (VERSION_1).
 *
 * Transmit runs on the driver's doorbell (a vCPU thread, machine lock
 * held) and never blocks: a backend that is full (-EAGAIN) parks the
 * chain until it calls tx_ready.  Receive runs when the backend has a
 * frame (I/O thread, or nested in a transmit for user mode): the frame and
 * its header are copied into as many receive buffers as it needs
 * (MRG_RXBUF) or into one; with no buffers the backend keeps the frame
 * (receive() says -EAGAIN) and the device asks the driver for a doorbell
 * on the next buffers.  Used-buffer interrupts are batched: one per
 * transmit doorbell, one per I/O-thread wake-up.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "net/net.h"
#include "virtio/virtio.h"

/* Feature bits (5.1.3) */
#define VIRTIO_NET_F_CSUM 0
#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_HOST_TSO4 11
#define VIRTIO_NET_F_MRG_RXBUF 15
#define VIRTIO_NET_F_STATUS 16

#define VIRTIO_NET_S_LINK_UP 1

/* struct virtio_net_hdr (5.1.6) */
#define VNET_HDR_LEN 12
#define VNET_HDR_F_NEEDS_CSUM 1
#define VNET_HDR_F_DATA_VALID 2
#define VNET_HDR_GSO_NONE 0
#define VNET_HDR_GSO_TCPV4 1
#define VNET_HDR_GSO_ECN 0x80

#define VNET_RXQ 0
#define VNET_TXQ 1
#define VNET_QUEUE_SIZE 256
#define VNET_TX_BUDGET 256 /* frames per doorbell before the I/O thread goes on */
#define VNET_CONFIG_SIZE 12 /* mac[6], status, max_virtqueue_pairs, mtu */
/* largest transmit frame: a TSO frame of 64 KiB plus headers */
#define VNET_TX_MAX (65536 + 256)
#define VNET_SEG_MAX (NET_FRAME_MAX + 256)

struct virtio_net {
	struct virtio_dev *vd;
	struct net_backend *be;
	uint8_t mac[6];
	bool running;	 /* DRIVER_OK, not reset */
	bool mrg_rxbuf;	 /* negotiated */
	bool csum, guest_csum, host_tso4;
	bool tx_blocked; /* the backend said -EAGAIN: wait for tx_ready */
	bool rx_pending; /* used rx buffers not yet signalled */
	bool flush_armed, tx_armed;
	bool caller_flushes; /* vnet_tx or an rx doorbell runs: it flushes rx interrupts itself */
	struct ev_timer *flush_timer; /* deadline 0: the next loop turn */
	struct ev_timer *tx_timer;
	uint8_t *txbuf;	 /* VNET_TX_MAX */
	uint8_t *segbuf; /* VNET_SEG_MAX: one TSO segment */
	struct virtq_elem *rx_elems[VIRTQ_MAX_SIZE];
	uint64_t rx_frames, rx_dropped, tx_frames, tx_dropped;
};

static struct virtq *rxq(struct virtio_net *n)
{
	return virtio_dev_queue(n->vd, VNET_RXQ);
}

static struct virtq *txq(struct virtio_net *n)
{
	return virtio_dev_queue(n->vd, VNET_TXQ);
}

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* Interrupts for the receive buffers used so far. */
static void vnet_rx_flush(struct virtio_net *n)
{
	if (!n->rx_pending)
		return;
	n->rx_pending = false;
	if (n->running)
		virtq_notify(rxq(n));
}

static void vnet_flush_timer(void *opaque)
{
	struct virtio_net *n = opaque;

	n->flush_armed = false;
	vnet_rx_flush(n);
}

/* ------------------------------------------------------------------ */
/* Receive                                                              */

/* Gives back the first count popped receive buffers, last first. */
static void rx_unpop(struct virtio_net *n, unsigned count)
{
	while (count)
		virtq_unpop(rxq(n), n->rx_elems[--count]);
}

static int vnet_receive(void *opaque, const void *frame, size_t len, unsigned flags)
{
	struct virtio_net *n = opaque;
	struct virtq *vq;
	uint8_t hdr[VNET_HDR_LEN] = { 0 };
	uint64_t need = VNET_HDR_LEN + (uint64_t)len, have = 0;
	unsigned count = 0, max, i;
	size_t done = 0;
	bool retried = false;

	if (!n->running)
		return 0; /* no driver: the frame is lost, as on a wire */
	vq = rxq(n);
	max = n->mrg_rxbuf ? MIN(virtq_size(vq), (unsigned)ARRAY_SIZE(n->rx_elems)) : 1;
	while (have < need && count < max) {
		struct virtq_elem *e;
		int r = virtq_pop(vq, &e);

		if (r < 0) {
			rx_unpop(n, count);
			virtio_dev_set_broken(n->vd, r == -EINVAL
							     ? "receive queue: malformed descriptor chain"
							     : "receive queue: out of memory");
			n->running = false;
			return 0;
		}
		if (r == 0) {
			rx_unpop(n, count);
			count = 0;
			have = 0;
			/* starved: ask for a doorbell on the next buffers; if some
			 * arrived meanwhile, look once more */
			if (!retried && virtq_set_notification(vq, true)) {
				retried = true;
				continue;
			}
			return -EAGAIN;
		}
		if (e->in_bytes == 0) {
			n->rx_elems[count++] = e;
			rx_unpop(n, count);
			virtio_dev_set_broken(n->vd, "receive queue: a buffer with no writable "
						     "descriptor");
			n->running = false;
			return 0;
		}
		n->rx_elems[count++] = e;
		have += e->in_bytes;
	}
	if (have < need) {
		/* the frame cannot fit (one buffer without MRG_RXBUF, or the
		 * whole ring with it): drop it, keep the buffers */
		rx_unpop(n, count);
		n->rx_dropped++;
		return 0;
	}

	if (n->guest_csum && (flags & NET_RX_CSUM_VALID))
		hdr[0] = VNET_HDR_F_DATA_VALID;
	hdr[1] = VNET_HDR_GSO_NONE;
	put_le16(hdr + 10, (uint16_t)count); /* num_buffers */
	for (i = 0; i < count; i++) {
		struct virtq_elem *e = n->rx_elems[i];
		size_t off = 0, room = (size_t)e->in_bytes, chunk;

		if (i == 0) {
			off = virtq_elem_write(e, 0, hdr, VNET_HDR_LEN);
			room -= off;
		}
		chunk = MIN(room, len - done);
		off += virtq_elem_write(e, off, (const uint8_t *)frame + done, chunk);
		done += chunk;
		virtq_push(vq, e, (uint32_t)off);
	}
	n->rx_frames++;
	n->rx_pending = true;
	/* batch the interrupt: after whatever else this loop turn (or this
	 * transmit doorbell) brings */
	if (!n->flush_armed && !n->caller_flushes) {
		n->flush_armed = true;
		ev_timer_mod(n->flush_timer, 0);
		ev_loop_wake(virtio_dev_env(n->vd)->loop);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Transmit                                                             */

static void vnet_tx(struct virtio_net *n);

static void vnet_tx_timer(void *opaque)
{
	struct virtio_net *n = opaque;

	n->tx_armed = false;
	vnet_tx(n);
}

/* One chain: header, then the frame. */
static int vnet_emit(void *opaque, const uint8_t *frame, size_t len)
{
	struct virtio_net *n = opaque;

	return net_backend_send(n->be, frame, len);
}

static int vnet_tx_one(struct virtio_net *n, struct virtq_elem *e)
{
	uint8_t hdr[VNET_HDR_LEN];
	size_t len;

	if (e->out_bytes < VNET_HDR_LEN || e->out_bytes - VNET_HDR_LEN > VNET_TX_MAX)
		return -EINVAL;
	len = (size_t)e->out_bytes - VNET_HDR_LEN;
	virtq_elem_read(e, 0, hdr, VNET_HDR_LEN);
	if (hdr[1] != VNET_HDR_GSO_NONE && !(hdr[1] == VNET_HDR_GSO_TCPV4 && n->host_tso4))
		return -EINVAL; /* a GSO type that was not negotiated (ECN included) */
	if (virtq_elem_read(e, VNET_HDR_LEN, n->txbuf, len) != len)
		return -EINVAL;
	if (hdr[1] == VNET_HDR_GSO_TCPV4)
		/* the backends take MTU-sized frames: segment here, checksums
		 * computed afresh (the partial one is of no use) */
		return net_tso4_segment(n->txbuf, len, get_le16(hdr + 4), n->segbuf, VNET_SEG_MAX,
					vnet_emit, n);
	if ((hdr[0] & VNET_HDR_F_NEEDS_CSUM) && n->csum &&
	    net_csum_complete(n->txbuf, len, get_le16(hdr + 6), get_le16(hdr + 8)))
		return -EINVAL;
	return net_backend_send(n->be, n->txbuf, len);
}

static void vnet_tx(struct virtio_net *n)
{
	struct virtq *vq;
	unsigned sent = 0;
	int r;

	if (!n->running || n->tx_blocked)
		return;
	vq = txq(n);
	n->caller_flushes = true;
	for (;;) {
		struct virtq_elem *e;

		virtq_set_notification(vq, false);
		while ((r = virtq_pop(vq, &e)) == 1) {
			int s = vnet_tx_one(n, e);

			if (s == -EAGAIN) {
				virtq_unpop(vq, e);
				n->tx_blocked = true;
				goto out;
			}
			if (s) /* malformed or lost: a wire drops it */
				n->tx_dropped++;
			else
				n->tx_frames++;
			virtq_push(vq, e, 0);
			if (!n->running) {
				n->caller_flushes = false;
				return; /* a frame the backend answered at once broke rx */
			}
			if (++sent == VNET_TX_BUDGET) {
				/* let the others run; the I/O thread goes on */
				if (!n->tx_armed) {
					n->tx_armed = true;
					ev_timer_mod(n->tx_timer, 0);
					ev_loop_wake(virtio_dev_env(n->vd)->loop);
				}
				goto out;
			}
		}
		if (r < 0) {
			virtio_dev_set_broken(n->vd, r == -EINVAL
							     ? "transmit queue: malformed descriptor chain"
							     : "transmit queue: out of memory");
			n->running = false;
			n->caller_flushes = false;
			return;
		}
		if (!virtq_set_notification(vq, true))
			break;
	}
out:
	n->caller_flushes = false;
	virtq_notify(vq);
	vnet_rx_flush(n);
}

static void vnet_tx_ready(void *opaque)
{
	struct virtio_net *n = opaque;

	n->tx_blocked = false;
	vnet_tx(n);
}

static const struct net_frontend vnet_frontend = {
	.receive = vnet_receive,
	.tx_ready = vnet_tx_ready,
};

/* ------------------------------------------------------------------ */
/* Device ops                                                           */

static uint64_t vnet_features(void *opaque)
{
	(void)opaque;
	return 1ull << VIRTIO_NET_F_CSUM | 1ull << VIRTIO_NET_F_GUEST_CSUM |
	       1ull << VIRTIO_NET_F_MAC | 1ull << VIRTIO_NET_F_MRG_RXBUF |
	       1ull << VIRTIO_NET_F_STATUS | 1ull << VIRTIO_NET_F_HOST_TSO4;
}

static void vnet_config_read(void *opaque, uint32_t offset, void *buf, uint32_t len)
{
	struct virtio_net *n = opaque;
	uint8_t cfg[VNET_CONFIG_SIZE];

	memcpy(cfg, n->mac, 6);
	put_le16(cfg + 6, VIRTIO_NET_S_LINK_UP);
	put_le16(cfg + 8, 1);	 /* max_virtqueue_pairs */
	put_le16(cfg + 10, 1500); /* mtu (without VIRTIO_NET_F_MTU: advisory) */
	if (offset >= sizeof(cfg))
		return;
	memcpy(buf, cfg + offset, MIN(len, (uint32_t)sizeof(cfg) - offset));
}

static void vnet_config_write(void *opaque, uint32_t offset, const void *buf, uint32_t len)
{
	/* every field is read-only for a VERSION_1 driver */
	(void)opaque;
	(void)offset;
	(void)buf;
	(void)len;
}

static int vnet_activate(void *opaque)
{
	struct virtio_net *n = opaque;

	n->mrg_rxbuf = virtio_dev_has_feature(n->vd, VIRTIO_NET_F_MRG_RXBUF);
	n->csum = virtio_dev_has_feature(n->vd, VIRTIO_NET_F_CSUM);
	n->guest_csum = virtio_dev_has_feature(n->vd, VIRTIO_NET_F_GUEST_CSUM);
	n->host_tso4 = virtio_dev_has_feature(n->vd, VIRTIO_NET_F_HOST_TSO4);
	n->tx_blocked = false;
	n->running = true;
	/* frames the backend kept while no driver ran are dropped now, and it
	 * reads again */
	net_backend_rx_resume(n->be);
	return 0;
}

static void vnet_reset(void *opaque)
{
	struct virtio_net *n = opaque;

	n->running = false;
	n->rx_pending = false;
	n->tx_blocked = false;
	n->flush_armed = false;
	n->tx_armed = false;
	ev_timer_mod(n->flush_timer, UINT64_MAX);
	ev_timer_mod(n->tx_timer, UINT64_MAX);
	/* let a paused backend drain (into nothing) rather than hold a stale
	 * frame for the next driver */
	net_backend_rx_resume(n->be);
}

static void vnet_queue_notify(void *opaque, unsigned q)
{
	struct virtio_net *n = opaque;

	if (!n->running)
		return;
	if (q == VNET_RXQ) {
		/* buffers arrived: no more doorbells until we starve again */
		virtq_set_notification(rxq(n), false);
		n->caller_flushes = true;
		net_backend_rx_resume(n->be);
		n->caller_flushes = false;
		vnet_rx_flush(n);
	} else if (q == VNET_TXQ) {
		vnet_tx(n);
	}
}

static void vnet_free(void *opaque)
{
	struct virtio_net *n = opaque;

	if (n->be)
		net_backend_attach(n->be, NULL, NULL);
	if (n->flush_timer)
		ev_timer_free(n->flush_timer);
	if (n->tx_timer)
		ev_timer_free(n->tx_timer);
	free(n->txbuf);
	free(n->segbuf);
	free(n);
}

static const struct virtio_dev_ops virtio_net_ops = {
	.name = "virtio-net",
	.device_id = VIRTIO_ID_NET,
	.nr_queues = 2,
	.queue_max_size = VNET_QUEUE_SIZE,
	.config_size = VNET_CONFIG_SIZE,
	.features = vnet_features,
	.config_read = vnet_config_read,
	.config_write = vnet_config_write,
	.activate = vnet_activate,
	.reset = vnet_reset,
	.queue_notify = vnet_queue_notify,
	.free = vnet_free,
};

struct virtio_dev *virtio_net_new(const struct virtio_env *env, struct net_backend *be,
				  const uint8_t mac[6], char *err, size_t err_len)
{
	struct virtio_net *n = calloc(1, sizeof(*n));

	if (!n)
		goto nomem;
	n->be = be;
	memcpy(n->mac, mac, 6);
	n->txbuf = malloc(VNET_TX_MAX);
	n->segbuf = malloc(VNET_SEG_MAX);
	n->flush_timer = ev_timer_new(env->loop, vnet_flush_timer, n);
	n->tx_timer = ev_timer_new(env->loop, vnet_tx_timer, n);
	if (!n->txbuf || !n->segbuf || !n->flush_timer || !n->tx_timer)
		goto nomem;
	n->vd = virtio_dev_new(env, &virtio_net_ops, n);
	if (!n->vd)
		goto nomem;
	net_backend_attach(be, &vnet_frontend, n);
	return n->vd;
nomem:
	snprintf(err, err_len, "virtio-net: out of memory");
	if (n) {
		n->be = NULL;
		vnet_free(n);
	}
	return NULL;
}

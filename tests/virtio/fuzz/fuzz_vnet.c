/*
 * libFuzzer target: virtio-net with arbitrary guest memory.  The input's
 * first bytes choose the negotiated features (MRG_RXBUF, CSUM,
 * GUEST_CSUM, EVENT_IDX, INDIRECT_DESC, HOST_TSO4), the queue size, how many kicks
 * and frames; the rest is written over both queues' descriptor tables
 * and available rings, then at BUF_GPA (so descriptors point at
 * attacker-chosen buffers and headers hold arbitrary flags, checksum
 * offsets and GSO types).  The transmit
 * queue is kicked, what the backend gets is echoed back as received
 * frames (sizes from the input, up to 64 KiB), and the device must never
 * crash, hang, leak or touch memory outside guest RAM.
 *
 * Built by tests/virtio/fuzz/meson.build with clang.  Longer run:
 *   build-test/tests/virtio/fuzz/fuzz-vnet -max_total_time=3600 \
 *       /tmp/vnet-corpus tests/virtio/fuzz/corpus-vnet
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "net/net.h"
#include "vdriver.h"

#define RAM (4ull << 20)
#define BUF_GPA (3ull << 20) /* above what vdriver allocates for the rings */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct echo_be {
	struct net_backend be;
	uint8_t last[NET_FRAME_MAX];
	size_t last_len;
	bool full;
};

static int ebe_send(struct net_backend *be, const void *frame, size_t len)
{
	struct echo_be *e = (struct echo_be *)be;

	if (e->full)
		return -EAGAIN;
	memcpy(e->last, frame, len);
	e->last_len = len;
	return 0;
}

static void ebe_rx_resume(struct net_backend *be)
{
	(void)be;
}

static void ebe_free(struct net_backend *be)
{
	free(be);
}

static const struct net_backend_ops ebe_ops = { "echo", ebe_send, ebe_rx_resume, ebe_free };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool quiet;
	static uint8_t frame[NET_FRAME_MAX];
	if (!quiet) {
		log_set_level(LOG_ERROR);
		quiet = true;
		for (size_t i = 0; i < sizeof(frame); i++)
			frame[i] = (uint8_t)(i * 31 + 7);
	}
	if (size < 6)
		return 0;
	uint8_t feat_bits = data[0], qlog = data[1] & 7, kicks = (uint8_t)(1 + (data[2] & 7));
	uint8_t misc = data[3];
	uint16_t rx_len = (uint16_t)(data[4] | data[5] << 8);
	unsigned qsize = 1u << qlog;
	data += 6;
	size -= 6;

	struct vbench b;
	struct ev_loop *loop = ev_loop_new();
	if (!loop || vbench_init(&b, RAM)) {
		ev_loop_free(loop);
		return 0;
	}
	b.env.loop = loop;
	struct echo_be *e = calloc(1, sizeof(*e));
	e->be.ops = &ebe_ops;
	char err[128];
	static const uint8_t mac[6] = { 0x52, 0x54, 0, 0x12, 0x34, 0x56 };
	struct virtio_dev *vd = virtio_net_new(&b.env, &e->be, mac, err, sizeof(err));
	struct vdrv *d = vd ? vbench_attach(&b, vd) : NULL;
	if (!d)
		goto out;
	uint64_t feat = 1ull << VIRTIO_F_VERSION_1 | 1ull << 5 | 1ull << 16;
	if (feat_bits & 1)
		feat |= 1ull << 15; /* MRG_RXBUF */
	if (feat_bits & 2)
		feat |= 1ull << 0; /* CSUM */
	if (feat_bits & 4)
		feat |= 1ull << 1; /* GUEST_CSUM */
	if (feat_bits & 8)
		feat |= 1ull << VIRTIO_F_EVENT_IDX;
	if (feat_bits & 16)
		feat |= 1ull << VIRTIO_F_INDIRECT_DESC;
	if (feat_bits & 64)
		feat |= 1ull << 11; /* HOST_TSO4 */
	if (vdrv_negotiate(d, feat))
		goto out;
	vdrv_msix_enable(d, feat_bits & 32);
	if (vdrv_queue_setup(d, 0, qsize, 0) || vdrv_queue_setup(d, 1, qsize, 1))
		goto out;
	vdrv_driver_ok(d);

	/* the input, in order: rx descriptor table and avail ring, tx
	 * descriptor table and avail ring (as far as it goes), then the
	 * bytes at BUF_GPA, where the descriptors may point */
	for (unsigned q = 0; q < 2 && size; q++) {
		struct vdrv_ring r = vdrv_queue_ring(d, q);
		size_t n = MIN(size, 16 * (size_t)qsize);
		mem_write(b.mem, r.desc, data, n);
		data += n;
		size -= n;
		n = MIN(size, 4 + 2 * (size_t)qsize);
		mem_write(b.mem, r.avail, data, n);
		data += n;
		size -= n;
	}
	mem_write(b.mem, BUF_GPA, data, MIN((uint64_t)size, RAM - BUF_GPA));
	e->full = misc & 1;
	for (unsigned k = 0; k < kicks; k++) {
		vdrv_kick(d, 1);
		if (e->last_len)
			net_backend_deliver(&e->be, e->last, e->last_len, misc & 2);
		net_backend_deliver(&e->be, frame, MIN((size_t)rx_len, sizeof(frame)), misc & 4);
		vdrv_kick(d, 0);
		if ((misc & 8) && e->full) {
			e->full = false;
			if (e->be.fe && e->be.fe->tx_ready)
				e->be.fe->tx_ready(e->be.fe_opaque);
		}
		ev_loop_run_once(loop, 0);
		while (vdrv_get_used(d, 0, NULL) >= 0)
			;
		while (vdrv_get_used(d, 1, NULL) >= 0)
			;
	}
	if (misc & 16)
		vdrv_reset(d);
out:
	vbench_fini(&b);
	free(e);
	ev_loop_free(loop);
	return 0;
}

/*
 * libFuzzer target: a virtqueue whose rings and buffers hold arbitrary
 * bytes.  The input's first bytes choose the device (virtio-rng or the
 * test echo device, optionally holding requests), the negotiated ring
 * features, MSI-X or INTx and the queue size; the rest is written over the
 * descriptor table, the available ring, the used ring and the RAM after
 * them, and the driver kicks a few times (the avail index comes from the
 * input too).  Optionally the input first drives the transport's registers
 * (queue size, addresses, status, MSI-X table, ...).  The device pops and pushes through virtq_pop/virtq_push;
 * a bad chain must make it NEEDS_RESET, never crash, hang, leak or touch
 * memory outside guest RAM.
 *
 * Built by tests/virtio/fuzz/meson.build with clang.  Longer run:
 *   build-test/tests/virtio/fuzz/fuzz-virtq -max_total_time=3600 \
 *       /tmp/virtq-corpus tests/virtio/fuzz/corpus
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "echo.h"
#include "vdriver.h"

#define RAM (4ull << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool quiet;
	if (!quiet) {
		log_set_level(LOG_ERROR);
		quiet = true;
	}
	if (size < 4)
		return 0;
	uint8_t mode = data[0], kicks = (uint8_t)(1 + (data[1] & 7)), qlog = data[2] & 7;
	uint8_t step = data[3] & 3, hdr1 = data[1]; /* how far the driver moves avail->idx per kick */
	unsigned qsize = 1u << qlog; /* 1 .. 128 */
	data += 4;
	size -= 4;

	struct vbench b;
	if (vbench_init(&b, RAM))
		return 0;
	struct echo *ec = NULL;
	struct virtio_dev *vd;
	if (mode & 1) {
		vd = virtio_rng_new(&b.env);
	} else {
		ec = echo_new(&b.env, 0);
		vd = ec ? ec->vd : NULL;
		if (ec)
			ec->hold = mode & 2;
	}
	struct vdrv *d = vd ? vbench_attach(&b, vd) : NULL;
	if (!d)
		goto out;
	uint64_t feat = 1ull << VIRTIO_F_VERSION_1;
	if (mode & 4)
		feat |= 1ull << VIRTIO_F_INDIRECT_DESC;
	if (mode & 8)
		feat |= 1ull << VIRTIO_F_EVENT_IDX;
	if (vdrv_negotiate(d, feat))
		goto out;
	vdrv_msix_enable(d, mode & 16);
	if (vdrv_queue_setup(d, 0, qsize, 0))
		goto out;
	vdrv_driver_ok(d);

	/* the input over the rings (desc, avail and used are adjacent pages)
	 * and on into the buffers after them */
	/* with bit 7 of the second byte, the input starts with up to 32
	 * register accesses to BAR 0 (u16 offset, u8 size/direction, u64
	 * value), as a driver that misbehaves at the transport would do */
	if (hdr1 & 0x80) {
		for (unsigned k = 0; k < 32 && size >= 11; k++, data += 11, size -= 11) {
			uint16_t off;
			uint64_t val;
			memcpy(&off, data, 2);
			memcpy(&val, data + 3, 8);
			unsigned sz = 1u << (data[2] & 3);
			uint64_t gpa = vdrv_bar(d) + (off & 0x7fff);
			if (data[2] & 4)
				mmio_bus_write(b.mmio, gpa, sz, val);
			else
				mmio_bus_read(b.mmio, gpa, sz, &val);
		}
	}
	struct vdrv_ring r = vdrv_queue_ring(d, 0);
	uint64_t room = RAM - r.desc;
	mem_write(b.mem, r.desc, data, MIN((uint64_t)size, room));
	struct virtq *vq = virtio_dev_queue(vd, 0);
	for (unsigned k = 0; k < kicks; k++) {
		vdrv_kick(d, 0);
		if (ec && (mode & 32))
			echo_complete_held(ec);
		if (mode & 64)
			virtq_set_notification(vq, k & 1);
		/* the driver moves the avail index on */
		uint16_t idx;
		mem_read(b.mem, r.avail + 2, &idx, 2);
		idx = (uint16_t)(idx + step);
		mem_write(b.mem, r.avail + 2, &idx, 2);
		while (vdrv_get_used(d, 0, NULL) >= 0)
			;
	}
	if (mode & 128)
		vdrv_reset(d);
out:
	vbench_fini(&b);
	return 0;
}

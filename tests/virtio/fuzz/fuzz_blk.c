/*
 * libFuzzer target: virtio-blk requests built from arbitrary bytes, on a
 * raw or qcow2 image held in a memfd.  The input's first two bytes choose
 * the image format, read-only, ring features (indirect, event index),
 * MSI-X, the queue size and whether the driver resets the device with
 * requests in flight; then either
 *   - (structured) up to 32 requests, each described by a few bytes: type
 *     (known or any 32-bit value), sector (0, the last, the end, past it,
 *     or any 64-bit value), data length (any, not only multiples of 512),
 *     how the header and the data are cut into segments, whether the
 *     status byte is missing, shares the data's segment, or the data sits
 *     on the wrong side, and a discard/write-zeroes segment's bytes; or
 *   - (raw) the rest of the input written over the rings and buffers.
 * The device must answer each request with a status or go NEEDS_RESET,
 * and never crash, hang, leak or touch memory outside guest RAM and the
 * image.
 *
 * Built by tests/virtio/fuzz/meson.build with clang.  Longer run:
 *   build-test/tests/virtio/fuzz/fuzz-blk -max_total_time=3600 \
 *       /tmp/blk-corpus tests/virtio/fuzz/corpus-blk
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/core.h"
#include "vdriver.h"

#define RAM (8ull << 20)
#define DISK (1ull << 20)
#define CAP (DISK / 512)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct input {
	const uint8_t *p;
	size_t left;
};

static uint64_t take(struct input *in, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n && in->left; i++, in->left--)
		v |= (uint64_t)*in->p++ << (8 * i);
	return v;
}

/* The image: one memfd for the process, rewritten for every input. */
static int image_fd = -1;
static char image_path[64];

static int image_reset(bool qcow2)
{
	if (image_fd < 0) {
		image_fd = memfd_create("fuzz-blk", MFD_CLOEXEC);
		if (image_fd < 0)
			return -1;
		snprintf(image_path, sizeof(image_path), "/proc/self/fd/%d", image_fd);
	}
	if (ftruncate(image_fd, 0) < 0)
		return -1;
	if (!qcow2)
		return ftruncate(image_fd, (off_t)DISK);
	struct blk_create_opts o;
	blk_create_opts_init(&o);
	o.size_bytes = DISK;
	o.cluster_size = 4096;
	char err[256];
	return blk_create(image_path, &o, err, sizeof(err));
}

static const uint32_t types[] = { 0, 1, 4, 8, 11, 13, 2, 99 };

/* One request from the input; returns false when the input ran out. */
static bool add_request(struct vbench *b, struct vdrv *d, struct input *in, bool indirect)
{
	if (in->left < 6)
		return false;
	uint8_t tsel = (uint8_t)take(in, 1);
	uint32_t type = tsel >= 0xf0 ? (uint32_t)take(in, 4) : types[tsel % 8];
	uint8_t ssel = (uint8_t)take(in, 1);
	uint64_t sector;
	switch (ssel % 8) {
	case 0: sector = 0; break;
	case 1: sector = CAP - 1; break;
	case 2: sector = CAP; break;
	case 3: sector = CAP - 8; break;
	case 4: sector = take(in, 8); break;
	case 5: sector = UINT64_MAX / 512 + (ssel >> 3); break;
	default: sector = (ssel * 37u) % CAP; break;
	}
	uint32_t len = (uint32_t)take(in, 2);
	if (len & 0x8000)
		len = (len & 0x7f) << 9; /* a multiple of 512 more often */
	uint8_t cut = (uint8_t)take(in, 1);
	unsigned hdr_segs = 1 + (cut & 3), data_segs = 1 + ((cut >> 2) & 7);
	uint8_t flags = (uint8_t)take(in, 1);
	bool in_data = type == 0 || type == 8;
	if (flags & 4)
		in_data = !in_data; /* the data on the wrong side */
	unsigned hdr_len = flags & 8 ? (unsigned)(take(in, 1) % 24) : 16;

	uint64_t hdr = vbench_alloc(b, 24, 8);
	uint64_t buf = vbench_alloc(b, (uint64_t)len + 1, 8);
	if (!hdr || !buf)
		return false;
	uint8_t h[24] = { 0 };
	memcpy(h, &type, 4);
	memcpy(h + 8, &sector, 8);
	mem_write(b->mem, hdr, h, sizeof(h));
	if ((type == 11 || type == 13) && len >= 16) {
		uint8_t seg[16] = { 0 };
		for (unsigned i = 0; i < 16 && in->left; i++)
			seg[i] = (uint8_t)take(in, 1);
		mem_write(b->mem, buf, seg, 16);
	}

	struct vdrv_buf bufs[32];
	unsigned n = 0;
	for (unsigned k = 0, off = 0; k < hdr_segs && off < hdr_len; k++) {
		unsigned piece = k + 1 < hdr_segs ? (hdr_len - off + 1) / 2 : hdr_len - off;
		if (!piece)
			break;
		bufs[n++] = (struct vdrv_buf){ hdr + off, piece, false };
		off += piece;
	}
	bool status_merged = flags & 2, no_status = flags & 1;
	/* readable data first, then writable: vdriver does not reorder */
	if (len) {
		for (unsigned k = 0, off = 0; k < data_segs && off < len; k++) {
			uint32_t piece = k + 1 < data_segs ? (len - off + 1) / 2 : len - off;
			bool last = off + piece == len;
			bufs[n++] = (struct vdrv_buf){ buf + off,
						       piece + (last && in_data && status_merged &&
								!no_status),
						       in_data };
			off += piece;
		}
	}
	if (!no_status && !(len && in_data && status_merged))
		bufs[n++] = (struct vdrv_buf){ buf + len, 1, true };
	if (n == 0)
		return true;
	vdrv_add(d, 0, bufs, n, indirect);
	if (flags & 16)
		vdrv_kick(d, 0);
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool quiet;
	if (!quiet) {
		log_set_level(LOG_ERROR);
		quiet = true;
	}
	if (size < 2)
		return 0;
	uint8_t mode = data[0], qlog = 1 + (data[1] & 7); /* queue 2 .. 256 */
	struct input in = { data + 2, size - 2 };
	if (image_reset(mode & 1) < 0)
		return 0;

	struct vbench b;
	if (vbench_init(&b, RAM))
		return 0;
	b.env.loop = ev_loop_new();
	if (!b.env.loop) {
		vbench_fini(&b);
		return 0;
	}
	struct virtio_blk_opts o = { .path = image_path, .read_only = mode & 2 };
	char err[256];
	struct virtio_dev *vd = virtio_blk_new(&b.env, &o, err, sizeof(err));
	struct vdrv *d = vd ? vbench_attach(&b, vd) : NULL;
	if (!d)
		goto out;
	uint64_t feat = vdrv_device_features(d);
	if (!(mode & 4))
		feat &= ~(1ull << VIRTIO_F_INDIRECT_DESC);
	if (!(mode & 8))
		feat &= ~(1ull << VIRTIO_F_EVENT_IDX);
	if (vdrv_negotiate(d, feat))
		goto out;
	vdrv_msix_enable(d, mode & 16);
	if (vdrv_queue_setup(d, 0, 1u << qlog, 0))
		goto out;
	vdrv_driver_ok(d);

	if (mode & 64) {
		/* raw: the input over the rings and the RAM after them */
		struct vdrv_ring r = vdrv_queue_ring(d, 0);
		mem_write(b.mem, r.desc, in.p, MIN((uint64_t)in.left, RAM - r.desc));
		vdrv_kick(d, 0);
	} else {
		for (unsigned i = 0; i < 32; i++)
			if (!add_request(&b, d, &in, mode & 4))
				break;
		vdrv_kick(d, 0);
	}
	if (mode & 32) {
		vdrv_reset(d); /* with requests in flight */
	} else {
		/* let the block layer finish (bounded) */
		for (int k = 0; k < 200; k++) {
			while (vdrv_get_used(d, 0, NULL) >= 0)
				;
			if (vdrv_status(d) & VIRTIO_STATUS_NEEDS_RESET)
				break;
			if (vdrv_used_idx(d, 0) == vdrv_avail_idx(d, 0))
				break;
			ev_loop_run_once(b.env.loop, 5000000);
		}
	}
out:
	vbench_fini(&b);
	ev_loop_free(b.env.loop);
	return 0;
}

/*
 * bench-virtio-blk: the virtio-blk device's throughput on the host, with
 * no guest: vdriver (tests/virtio) plays the driver over the PCI
 * transport and keeps a fixed number of requests in flight; completions
 * come through the event loop as in the VMM.  Compares with the block
 * layer's queue alone (same images, same depth) to show what the device
 * adds.
 *
 * Usage: bench-virtio-blk DIR [SECONDS_PER_TEST]
 * Makes DIR/bench.raw and DIR/bench.qcow2 (256 MiB each, written once).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "vdriver.h"

#define DISK (256ull << 20)
#define QSIZE 256

struct job {
	const char *name;
	uint32_t bs;
	unsigned depth;
	bool write, random;
};

static const struct job jobs[] = {
	{ "seq read 1M qd8", 1 << 20, 8, false, false },
	{ "seq write 1M qd8", 1 << 20, 8, true, false },
	{ "rand read 4K qd32", 4096, 32, false, true },
	{ "rand write 4K qd32", 4096, 32, true, true },
};

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static uint64_t next_off(const struct job *j, uint64_t *seq)
{
	if (j->random)
		return (rnd() % (DISK / j->bs)) * j->bs;
	uint64_t off = *seq;
	*seq = (*seq + j->bs) % DISK;
	return off;
}

/* One request slot of the driver: header, data, status in guest RAM. */
struct slot {
	uint64_t hdr, data, st;
};

static int run_device(const char *path, enum virtio_blk_cache cache, const struct job *j,
		      double secs, double *mbps, double *iops)
{
	struct vbench b;
	if (vbench_init(&b, 128ull << 20))
		return -1;
	b.env.loop = ev_loop_new();
	struct virtio_blk_opts o = { .path = path, .cache = cache };
	char err[256];
	struct virtio_dev *vd = virtio_blk_new(&b.env, &o, err, sizeof(err));
	if (!vd) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	struct vdrv *d = vbench_attach(&b, vd);
	if (!d || vdrv_negotiate(d, vdrv_device_features(d)) < 0)
		return -1;
	vdrv_msix_enable(d, true);
	if (vdrv_queue_setup(d, 0, QSIZE, 0) < 0)
		return -1;
	vdrv_driver_ok(d);
	struct slot *slots = calloc(j->depth, sizeof(*slots));
	int *slot_of_head = calloc(QSIZE, sizeof(int));
	for (unsigned i = 0; i < j->depth; i++) {
		slots[i].hdr = vbench_alloc(&b, 16, 16);
		slots[i].data = vbench_alloc(&b, j->bs, 4096);
		slots[i].st = vbench_alloc(&b, 1, 1);
		if (j->write)
			memset(mem_ram_ptr(b.mem, slots[i].data, j->bs), 0x5a, j->bs);
	}
	uint64_t seq = 0, done = 0;
	uint64_t t0 = clock_ns(), end = t0 + (uint64_t)(secs * 1e9);
	unsigned inflight = 0;
	bool errors = false;
	for (unsigned i = 0; i < j->depth; i++) {
		uint32_t type = j->write ? 1 : 0;
		uint64_t sector = next_off(j, &seq) / 512;
		uint8_t *h = mem_ram_ptr(b.mem, slots[i].hdr, 16);
		memset(h, 0, 16);
		memcpy(h, &type, 4);
		memcpy(h + 8, &sector, 8);
		struct vdrv_buf bufs[3] = { { slots[i].hdr, 16, false },
					    { slots[i].data, j->bs, !j->write },
					    { slots[i].st, 1, true } };
		int head = vdrv_add(d, 0, bufs, 3, false);
		slot_of_head[head] = (int)i;
		inflight++;
	}
	vdrv_kick(d, 0);
	while (inflight) {
		ev_loop_run_once(b.env.loop, 100000000);
		bool added = false;
		int head;
		uint32_t len;
		while ((head = vdrv_get_used(d, 0, &len)) >= 0) {
			unsigned i = (unsigned)slot_of_head[head];
			errors |= *(uint8_t *)mem_ram_ptr(b.mem, slots[i].st, 1) != 0;
			done++;
			inflight--;
			if (clock_ns() >= end)
				continue;
			uint64_t sector = next_off(j, &seq) / 512;
			memcpy((uint8_t *)mem_ram_ptr(b.mem, slots[i].hdr, 16) + 8, &sector, 8);
			struct vdrv_buf bufs[3] = { { slots[i].hdr, 16, false },
						    { slots[i].data, j->bs, !j->write },
						    { slots[i].st, 1, true } };
			int nh = vdrv_add(d, 0, bufs, 3, false);
			slot_of_head[nh] = (int)i;
			inflight++;
			added = true;
		}
		if (added)
			vdrv_kick(d, 0);
	}
	double el = (double)(clock_ns() - t0) / 1e9;
	*iops = (double)done / el;
	*mbps = (double)done * j->bs / el / 1e6;
	free(slots);
	free(slot_of_head);
	vbench_fini(&b);
	ev_loop_free(b.env.loop);
	return errors ? -EIO : 0;
}

struct bq_ctx {
	unsigned inflight;
	uint64_t done;
};

static void bq_done(void *opaque, int ret)
{
	struct bq_ctx *c = opaque;
	(void)ret;
	c->inflight--;
	c->done++;
}

/* The same job on blk_queue alone (no device, no rings). */
static int run_queue(const char *path, unsigned flags, const struct job *j, double secs,
		     double *mbps, double *iops)
{
	struct blk *b;
	char err[256];
	struct blk_open_opts bo = { .flags = BLK_OPEN_RDWR | flags };
	if (blk_open(path, &bo, &b, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	struct blk_queue *q = blk_queue_new(b, 64, 0, 0);
	uint8_t *buf = aligned_alloc(4096, (size_t)j->bs * j->depth);
	memset(buf, 0x5a, (size_t)j->bs * j->depth);
	struct iovec *iov = calloc(j->depth, sizeof(*iov));
	struct bq_ctx c = { 0 };
	uint64_t seq = 0, t0 = clock_ns(), end = t0 + (uint64_t)(secs * 1e9);
	unsigned k = 0;
	for (;;) {
		bool stop = clock_ns() >= end;
		while (!stop && c.inflight < j->depth) {
			unsigned i = k++ % j->depth;
			iov[i] = (struct iovec){ buf + (size_t)i * j->bs, j->bs };
			struct blk_request rq = { .op = j->write ? BLK_OP_WRITE : BLK_OP_READ,
						  .off = next_off(j, &seq), .len = j->bs,
						  .iov = &iov[i], .iovcnt = 1, .done = bq_done,
						  .opaque = &c };
			if (blk_queue_submit(q, &rq) < 0)
				break;
			c.inflight++;
		}
		if (stop && !c.inflight)
			break;
		blk_queue_poll(q, true);
	}
	double el = (double)(clock_ns() - t0) / 1e9;
	*iops = (double)c.done / el;
	*mbps = (double)c.done * j->bs / el / 1e6;
	blk_queue_free(q);
	blk_close(b);
	free(buf);
	free(iov);
	return 0;
}

static int make(const char *path, enum blk_format fmt)
{
	struct blk_create_opts o;
	blk_create_opts_init(&o);
	o.format = fmt;
	o.size_bytes = DISK;
	char err[256];
	if (blk_create(path, &o, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	/* write it all once so that reads find data, not holes */
	struct blk *b;
	struct blk_open_opts bo = { .flags = BLK_OPEN_RDWR };
	if (blk_open(path, &bo, &b, err, sizeof(err)) < 0)
		return -1;
	uint8_t *buf = malloc(1 << 20);
	memset(buf, 0xa5, 1 << 20);
	for (uint64_t off = 0; off < DISK; off += 1 << 20)
		blk_pwrite(b, off, buf, 1 << 20, 0);
	free(buf);
	return blk_close(b);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR [SECONDS_PER_TEST]\n", argv[0]);
		return 2;
	}
	double secs = argc > 2 ? atof(argv[2]) : 2.0;
	mkdir(argv[1], 0755);
	char raw[4096], qcow[4096];
	snprintf(raw, sizeof(raw), "%s/bench.raw", argv[1]);
	snprintf(qcow, sizeof(qcow), "%s/bench.qcow2", argv[1]);
	if (make(raw, BLK_FMT_RAW) < 0 || make(qcow, BLK_FMT_QCOW2) < 0)
		return 1;
	struct {
		const char *label;
		const char *path;
		enum virtio_blk_cache cache;
		unsigned flags;
	} imgs[] = {
		{ "raw, cache=writeback", raw, VIRTIO_BLK_CACHE_WRITEBACK, 0 },
		{ "raw, cache=none", raw, VIRTIO_BLK_CACHE_NONE, BLK_OPEN_DIRECT },
		{ "qcow2, cache=writeback", qcow, VIRTIO_BLK_CACHE_WRITEBACK, 0 },
	};
	printf("%-24s %-20s %12s %10s %12s %10s\n", "image", "job", "virtio MB/s", "IOPS",
	       "blk_queue MB/s", "IOPS");
	int rc = 0;
	for (unsigned i = 0; i < ARRAY_SIZE(imgs); i++) {
		for (unsigned k = 0; k < ARRAY_SIZE(jobs); k++) {
			double vm = 0, vi = 0, qm = 0, qi = 0;
			if (run_device(imgs[i].path, imgs[i].cache, &jobs[k], secs, &vm, &vi) < 0)
				rc = 1;
			if (run_queue(imgs[i].path, imgs[i].flags, &jobs[k], secs, &qm, &qi) < 0)
				rc = 1;
			printf("%-24s %-20s %12.1f %10.0f %12.1f %10.0f\n", imgs[i].label,
			       jobs[k].name, vm, vi, qm, qi);
			fflush(stdout);
		}
	}
	return rc;
}

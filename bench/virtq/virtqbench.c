/*
 * bench/virtq: the cost of the virtio core and the PCI transport per
 * request, with no guest: vdriver (tests/virtio) plays the driver, the
 * echo device copies each request's readable bytes into its writable
 * ones.  Every round trip is: the driver writes descriptors and the avail
 * ring, kicks through the notify window on the MMIO bus, the device pops,
 * copies, pushes and interrupts (an MSI-X message), the driver collects.
 * Also virtio-rng's fill rate (getrandom into guest buffers).
 *
 *   virtqbench [SECONDS_PER_CASE]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "echo.h"
#include "vdriver.h"

#define RAM (64ull << 20)

struct bcase {
	const char *name;
	uint32_t bytes;
	unsigned segs; /* buffers each way */
	bool indirect, event_idx;
	unsigned batch; /* requests per kick */
};

static double run_case(const struct bcase *c, double secs, double *mbps)
{
	struct vbench b;
	if (vbench_init(&b, RAM))
		return -1;
	struct echo *ec = echo_new(&b.env, 0);
	struct vdrv *d = vbench_attach(&b, ec->vd);
	uint64_t f = 1ull << VIRTIO_F_VERSION_1;
	if (c->indirect)
		f |= 1ull << VIRTIO_F_INDIRECT_DESC;
	if (c->event_idx)
		f |= 1ull << VIRTIO_F_EVENT_IDX;
	vdrv_negotiate(d, f);
	vdrv_msix_enable(d, true);
	vdrv_queue_setup(d, 0, 256, 0);
	vdrv_driver_ok(d);
	struct vdrv_buf bufs[64];
	uint32_t seg = c->bytes / c->segs;
	for (unsigned i = 0; i < c->segs; i++) {
		bufs[i] = (struct vdrv_buf){ vbench_alloc(&b, seg, 64), seg, false };
		bufs[c->segs + i] = (struct vdrv_buf){ vbench_alloc(&b, seg, 64), seg, true };
	}
	/* indirect tables are allocated per request by vdriver: make them
	 * once per slot instead by reusing the allocator's position */
	uint64_t mark = b.next_free;
	uint64_t n = 0, t0 = clock_ns(), deadline = t0 + (uint64_t)(secs * 1e9);
	while (clock_ns() < deadline) {
		for (int k = 0; k < 64; k++) {
			b.next_free = mark;
			for (unsigned j = 0; j < c->batch; j++)
				vdrv_add(d, 0, bufs, 2 * c->segs, c->indirect);
			vdrv_kick(d, 0);
			while (vdrv_get_used(d, 0, NULL) >= 0)
				n++;
		}
	}
	double dt = (double)(clock_ns() - t0) / 1e9;
	*mbps = (double)n * c->bytes / dt / 1e6;
	vbench_fini(&b);
	return (double)n / dt;
}

static void rng_case(double secs)
{
	struct vbench b;
	if (vbench_init(&b, RAM))
		return;
	struct vdrv *d = vbench_attach(&b, virtio_rng_new(&b.env));
	vdrv_negotiate(d, 1ull << VIRTIO_F_VERSION_1);
	vdrv_queue_setup(d, 0, 64, VIRTIO_NO_VECTOR);
	vdrv_driver_ok(d);
	struct vdrv_buf w = { vbench_alloc(&b, 64 << 10, 4096), 64 << 10, true };
	uint64_t bytes = 0, t0 = clock_ns(), deadline = t0 + (uint64_t)(secs * 1e9);
	uint32_t len;
	while (clock_ns() < deadline) {
		vdrv_add(d, 0, &w, 1, false);
		vdrv_kick(d, 0);
		while (vdrv_get_used(d, 0, &len) >= 0)
			bytes += len;
	}
	double dt = (double)(clock_ns() - t0) / 1e9;
	printf("%-34s %12s %10.1f MB/s\n", "virtio-rng 64 KiB requests", "", (double)bytes / dt / 1e6);
	vbench_fini(&b);
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 1.0;
	static const struct bcase cases[] = {
		{ "16 B, 1+1 segs, direct", 16, 1, false, false, 1 },
		{ "16 B, 1+1 segs, direct, batch 32", 16, 1, false, false, 32 },
		{ "16 B, 1+1 segs, indirect", 16, 1, true, false, 1 },
		{ "16 B, event idx, batch 32", 16, 1, false, true, 32 },
		{ "4 KiB, 1+1 segs, direct", 4096, 1, false, false, 1 },
		{ "64 KiB, 16+16 segs, indirect", 65536, 16, true, false, 1 },
	};
	log_set_level(LOG_ERROR);
	printf("%-34s %12s %10s\n", "case", "requests/s", "copy MB/s");
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		double mbps = 0, rps = run_case(&cases[i], secs, &mbps);
		printf("%-34s %12.0f %10.1f\n", cases[i].name, rps, mbps);
	}
	rng_case(secs);
	return 0;
}

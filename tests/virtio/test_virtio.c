/*
 * The virtio core over the PCI transport, driven by vdriver (a small
 * driver playing the guest): feature negotiation, the status machine,
 * queue setup, direct and indirect chains, event-index suppression both
 * ways, MSI-X masking and pending bits, INTx and ISR, reset with requests
 * in flight, the BAR's window following the guest, and every way a
 * malicious driver tried to break the rings (the device must go
 * NEEDS_RESET, the host must neither crash nor touch memory out of bounds,
 * and a reset must bring the device back).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "echo.h"
#include "test.h"
#include "vdriver.h"
#include "virtio/virtio.h"

#define RAM (16ull << 20)
#define F(bit) (1ull << (bit))
#define BASE_F (F(VIRTIO_F_VERSION_1))

struct fix {
	struct vbench b;
	struct echo *ec;
	struct vdrv *d;
};

/* A bench with the echo device, negotiated with features, MSI-X on or
 * off, both queues (size qsize) set up and DRIVER_OK. */
static int fix_init(struct fix *f, uint64_t features, bool msix, unsigned qsize)
{
	if (vbench_init(&f->b, RAM))
		return -1;
	f->ec = echo_new(&f->b.env, F(0));
	if (!f->ec)
		return -1;
	f->d = vbench_attach(&f->b, f->ec->vd);
	if (!f->d)
		return -1;
	if (vdrv_negotiate(f->d, features))
		return -2;
	vdrv_msix_enable(f->d, msix);
	if (msix)
		vdrv_common_write(f->d, 0x10, 2, 2); /* config vector 2 */
	if (vdrv_queue_setup(f->d, 0, qsize, msix ? 0 : VIRTIO_NO_VECTOR) ||
	    vdrv_queue_setup(f->d, 1, qsize, msix ? 1 : VIRTIO_NO_VECTOR))
		return -3;
	vdrv_driver_ok(f->d);
	return 0;
}

static void fix_fini(struct fix *f)
{
	vbench_fini(&f->b);
}

static void fill(struct vbench *b, uint64_t gpa, uint32_t len, uint8_t seed)
{
	uint8_t *p = mem_ram_ptr(b->mem, gpa, len);
	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed + i * 7);
}

static bool same(struct vbench *b, uint64_t a, uint64_t c, uint32_t len)
{
	return memcmp(mem_ram_ptr(b->mem, a, len), mem_ram_ptr(b->mem, c, len), len) == 0;
}

/* One echo round trip of len bytes on queue q; returns the used length
 * or -1 if nothing completed. */
static long echo_round(struct fix *f, unsigned q, uint32_t len, bool indirect)
{
	uint64_t src = vbench_alloc(&f->b, len, 16), dst = vbench_alloc(&f->b, len, 16);
	fill(&f->b, src, len, (uint8_t)len);
	struct vdrv_buf bufs[2] = { { src, len, false }, { dst, len, true } };
	int head = vdrv_add(f->d, q, bufs, 2, indirect);
	if (head < 0)
		return -1;
	vdrv_kick(f->d, q);
	uint32_t used_len = 0;
	int got = vdrv_get_used(f->d, q, &used_len);
	if (got != head)
		return -1;
	if (!same(&f->b, src, dst, len))
		return -2;
	return used_len;
}

/* ---- negotiation and status ---- */

static void test_features(void)
{
	struct vbench b;
	CHECK(vbench_init(&b, RAM) == 0);
	struct echo *ec = echo_new(&b.env, F(0) | F(5));
	struct vdrv *d = vbench_attach(&b, ec->vd);
	CHECK(d != NULL);
	CHECK_EQ_U64(vdrv_pci_read(d, 0x00, 2), 0x1af4);
	CHECK_EQ_U64(vdrv_pci_read(d, 0x02, 2), 0x1040 + ECHO_ID);
	CHECK_EQ_U64(vdrv_pci_read(d, 0x08, 1), 1);
	uint64_t host = vdrv_device_features(d);
	CHECK(host & F(VIRTIO_F_VERSION_1));
	CHECK(host & F(VIRTIO_F_INDIRECT_DESC));
	CHECK(host & F(VIRTIO_F_EVENT_IDX));
	CHECK(host & F(0));
	CHECK(host & F(5));
	CHECK(!(host & F(VIRTIO_F_RING_PACKED)));
	/* feature select beyond 1 reads 0 */
	vdrv_common_write(d, 0x00, 4, 2);
	CHECK_EQ_U64(vdrv_common_read(d, 0x04, 4), 0);

	/* without VERSION_1: refused */
	CHECK(vdrv_negotiate(d, F(0)) == -EIO);
	/* a bit that was not offered: refused */
	CHECK(vdrv_negotiate(d, BASE_F | F(3)) == -EIO);
	CHECK(vdrv_negotiate(d, BASE_F | F(VIRTIO_F_RING_PACKED)) == -EIO);
	/* a subset with VERSION_1: accepted, and visible to the device */
	CHECK(vdrv_negotiate(d, BASE_F | F(5)) == 0);
	CHECK(virtio_dev_has_feature(ec->vd, 5));
	CHECK(!virtio_dev_has_feature(ec->vd, 0));
	CHECK(virtio_dev_has_feature(ec->vd, VIRTIO_F_VERSION_1));
	/* after FEATURES_OK, driver feature writes are ignored */
	vdrv_common_write(d, 0x08, 4, 0);
	vdrv_common_write(d, 0x0c, 4, 1);
	CHECK_EQ_U64(vdrv_common_read(d, 0x0c, 4), (uint32_t)F(5));
	CHECK_EQ_U64(virtio_dev_features(ec->vd), BASE_F | F(5));
	/* reset clears everything */
	vdrv_reset(d);
	CHECK_EQ_U64(vdrv_status(d), 0);
	CHECK_EQ_U64(virtio_dev_features(ec->vd), 0);
	CHECK(ec->resets >= 1);
	vbench_fini(&b);
}

static void test_status(void)
{
	struct vbench b;
	CHECK(vbench_init(&b, RAM) == 0);
	struct echo *ec = echo_new(&b.env, 0);
	struct vdrv *d = vbench_attach(&b, ec->vd);
	/* DRIVER_OK without FEATURES_OK breaks the device */
	vdrv_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	vdrv_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
			       VIRTIO_STATUS_DRIVER_OK);
	CHECK(vdrv_status(d) & VIRTIO_STATUS_NEEDS_RESET);
	CHECK_EQ_U64(ec->activations, 0);
	/* the driver cannot set NEEDS_RESET itself nor clear bits */
	vdrv_reset(d);
	vdrv_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_NEEDS_RESET);
	CHECK_EQ_U64(vdrv_status(d), VIRTIO_STATUS_ACKNOWLEDGE);
	vdrv_set_status(d, VIRTIO_STATUS_DRIVER);
	CHECK_EQ_U64(vdrv_status(d), VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	/* a failing activation sets NEEDS_RESET */
	ec->fail_activate = true;
	CHECK(vdrv_negotiate(d, BASE_F) == 0);
	CHECK(vdrv_queue_setup(d, 0, 16, VIRTIO_NO_VECTOR) == 0);
	vdrv_driver_ok(d);
	CHECK(vdrv_status(d) & VIRTIO_STATUS_NEEDS_RESET);
	CHECK_EQ_U64(ec->activations, 1);
	/* and a reset brings it back */
	ec->fail_activate = false;
	CHECK(vdrv_negotiate(d, BASE_F) == 0);
	CHECK(vdrv_queue_setup(d, 0, 16, VIRTIO_NO_VECTOR) == 0);
	vdrv_driver_ok(d);
	CHECK_EQ_U64(vdrv_status(d), VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
					     VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	vbench_fini(&b);
}

/* ---- queues ---- */

static void test_queue_setup(void)
{
	struct vbench b;
	CHECK(vbench_init(&b, RAM) == 0);
	struct echo *ec = echo_new(&b.env, 0);
	struct vdrv *d = vbench_attach(&b, ec->vd);
	CHECK(vdrv_negotiate(d, BASE_F) == 0);
	CHECK_EQ_U64(vdrv_common_read(d, 0x12, 2), 2); /* num_queues */
	vdrv_common_write(d, 0x16, 2, 0);
	CHECK_EQ_U64(vdrv_common_read(d, 0x18, 2), 256); /* max size */
	CHECK_EQ_U64(vdrv_common_read(d, 0x1c, 2), 0);
	CHECK_EQ_U64(vdrv_common_read(d, 0x1a, 2), VIRTIO_NO_VECTOR);
	/* queue 5 does not exist: its registers read 0 and ignore writes */
	vdrv_common_write(d, 0x16, 2, 5);
	CHECK_EQ_U64(vdrv_common_read(d, 0x18, 2), 0);
	vdrv_common_write(d, 0x1c, 2, 1);
	CHECK_EQ_U64(vdrv_common_read(d, 0x1c, 2), 0);
	/* MSI-X vectors beyond the table read back as NO_VECTOR */
	vdrv_common_write(d, 0x16, 2, 0);
	vdrv_common_write(d, 0x1a, 2, 200);
	CHECK_EQ_U64(vdrv_common_read(d, 0x1a, 2), VIRTIO_NO_VECTOR);
	vdrv_common_write(d, 0x1a, 2, 1);
	CHECK_EQ_U64(vdrv_common_read(d, 0x1a, 2), 1);
	/* a smaller power of two is accepted */
	CHECK(vdrv_queue_setup(d, 0, 32, 0) == 0);
	CHECK_EQ_U64(virtq_size(virtio_dev_queue(ec->vd, 0)), 32);
	/* once enabled, the queue's registers are frozen */
	vdrv_common_write(d, 0x16, 2, 0);
	vdrv_common_write(d, 0x18, 2, 64);
	vdrv_common_write(d, 0x20, 8, 0x123450);
	CHECK_EQ_U64(vdrv_common_read(d, 0x18, 2), 32);
	CHECK_EQ_U64(vdrv_common_read(d, 0x20, 8), vdrv_queue_ring(d, 0).desc);
	/* 64-bit fields read as two halves too */
	CHECK_EQ_U64(vdrv_common_read(d, 0x28, 4) | vdrv_common_read(d, 0x2c, 4) << 32,
		     vdrv_queue_ring(d, 0).avail);
	vdrv_driver_ok(d);
	CHECK(!(vdrv_status(d) & VIRTIO_STATUS_NEEDS_RESET));

	/* a size that is not a power of two: refused, device needs reset */
	CHECK(vdrv_negotiate(d, BASE_F) == 0);
	CHECK(vdrv_queue_setup(d, 1, 48, 0) == -EINVAL); /* vdriver refuses to build it */
	vdrv_common_write(d, 0x16, 2, 1);
	vdrv_common_write(d, 0x18, 2, 48);
	vdrv_common_write(d, 0x20, 8, 0x100000);
	vdrv_common_write(d, 0x28, 8, 0x101000);
	vdrv_common_write(d, 0x30, 8, 0x102000);
	vdrv_common_write(d, 0x1c, 2, 1);
	CHECK_EQ_U64(vdrv_common_read(d, 0x1c, 2), 0);
	CHECK(vdrv_status(d) & VIRTIO_STATUS_NEEDS_RESET);
	/* larger than the maximum */
	CHECK(vdrv_negotiate(d, BASE_F) == 0);
	CHECK(vdrv_queue_setup(d, 1, 512, 0) == -EIO);
	CHECK(vdrv_status(d) & VIRTIO_STATUS_NEEDS_RESET);
	/* misaligned descriptor table */
	const uint64_t bad_addr[][3] = {
		{ 0x100008, 0x101000, 0x102000 }, /* desc not 16-aligned */
		{ 0x100000, 0x101001, 0x102000 }, /* avail not 2-aligned */
		{ 0x100000, 0x101000, 0x102002 }, /* used not 4-aligned */
		{ RAM - 0x100, 0x101000, 0x102000 },		/* desc runs past RAM */
		{ 0x100000, 0x101000, RAM - 8 },		/* used runs past RAM */
		{ 0xfffffffffffff000ull, 0x101000, 0x102000 },	/* wraps */
		{ 0x100000, 0x40000000ull, 0x102000 },		/* no RAM there */
	};
	for (unsigned i = 0; i < ARRAY_SIZE(bad_addr); i++) {
		CHECK(vdrv_negotiate(d, BASE_F) == 0);
		vdrv_common_write(d, 0x16, 2, 1);
		vdrv_common_write(d, 0x18, 2, 64);
		vdrv_common_write(d, 0x20, 8, bad_addr[i][0]);
		vdrv_common_write(d, 0x28, 8, bad_addr[i][1]);
		vdrv_common_write(d, 0x30, 8, bad_addr[i][2]);
		vdrv_common_write(d, 0x1c, 2, 1);
		CHECK_EQ_U64(vdrv_common_read(d, 0x1c, 2), 0);
		CHECK(vdrv_status(d) & VIRTIO_STATUS_NEEDS_RESET);
	}
	vbench_fini(&b);
}

static void test_chains(void)
{
	struct fix f;
	CHECK(fix_init(&f, BASE_F | F(VIRTIO_F_INDIRECT_DESC), true, 64) == 0);
	unsigned before = f.b.irq.nr_msi;
	CHECK(echo_round(&f, 0, 100, false) == 100);
	CHECK_EQ_U64(vdrv_irq_count(&f.b.irq, 0), 1);
	CHECK(echo_round(&f, 1, 5000, true) == 5000);
	CHECK_EQ_U64(vdrv_irq_count(&f.b.irq, 1), 1);
	CHECK_EQ_U64(f.b.irq.nr_msi, before + 2);
	CHECK_EQ_U64(f.b.irq.msi[before].addr, VDRV_MSI_ADDR);

	/* many segments each way, direct and indirect */
	for (int ind = 0; ind < 2; ind++) {
		struct vdrv_buf bufs[12];
		uint64_t src[6], dst[6];
		for (int i = 0; i < 6; i++) {
			src[i] = vbench_alloc(&f.b, 100 + i, 1);
			fill(&f.b, src[i], 100 + i, (uint8_t)i);
			bufs[i] = (struct vdrv_buf){ src[i], 100u + i, false };
		}
		for (int i = 0; i < 6; i++) {
			dst[i] = vbench_alloc(&f.b, 100 + i, 1);
			bufs[6 + i] = (struct vdrv_buf){ dst[i], 100u + i, true };
		}
		int head = vdrv_add(f.d, 0, bufs, 12, ind);
		vdrv_kick(f.d, 0);
		uint32_t len = 0;
		CHECK(vdrv_get_used(f.d, 0, &len) == head);
		CHECK_EQ_U64(len, 6 * 100 + 15);
		CHECK(same(&f.b, src[0], dst[0], 100));
		CHECK(same(&f.b, src[5], dst[5], 105));
	}
	/* a request with only writable buffers (nothing to echo) completes
	 * with 0 bytes; one with only readable ones too */
	uint64_t x = vbench_alloc(&f.b, 64, 16);
	struct vdrv_buf w = { x, 64, true }, r = { x, 64, false };
	int h1 = vdrv_add(f.d, 0, &w, 1, false), h2 = vdrv_add(f.d, 0, &r, 1, false);
	vdrv_kick(f.d, 0);
	uint32_t l1 = 9, l2 = 9;
	CHECK(vdrv_get_used(f.d, 0, &l1) == h1);
	CHECK(vdrv_get_used(f.d, 0, &l2) == h2);
	CHECK(l1 == 0 && l2 == 0);
	/* fill the ring completely, several times round */
	for (int round = 0; round < 5; round++) {
		int heads[64];
		for (int i = 0; i < 64; i++) {
			struct vdrv_buf bb[2] = { { x, 8, false }, { x + 8, 8, true } };
			heads[i] = vdrv_add(f.d, 0, bb, (i & 1) ? 2 : 1, (i & 1) != 0);
		}
		CHECK(heads[63] >= 0);
		vdrv_kick(f.d, 0);
		for (int i = 0; i < 64; i++)
			CHECK(vdrv_get_used(f.d, 0, NULL) == heads[i]);
		CHECK(vdrv_get_used(f.d, 0, NULL) == -1);
	}
	CHECK(!(vdrv_status(f.d) & VIRTIO_STATUS_NEEDS_RESET));
	fix_fini(&f);
}

/* ---- notification suppression ---- */

static void test_suppression_no_event_idx(void)
{
	struct fix f;
	CHECK(fix_init(&f, BASE_F, true, 16) == 0);
	/* driver says no interrupts: completions arrive silently */
	vdrv_set_no_interrupt(f.d, 0, true);
	CHECK(echo_round(&f, 0, 10, false) == 10);
	CHECK_EQ_U64(vdrv_irq_count(&f.b.irq, 0), 0);
	vdrv_set_no_interrupt(f.d, 0, false);
	CHECK(echo_round(&f, 0, 10, false) == 10);
	CHECK_EQ_U64(vdrv_irq_count(&f.b.irq, 0), 1);
	/* device says no kicks: used->flags */
	struct virtq *vq = virtio_dev_queue(f.ec->vd, 0);
	CHECK(!vdrv_device_no_notify(f.d, 0));
	CHECK(!virtq_set_notification(vq, false));
	CHECK(vdrv_device_no_notify(f.d, 0));
	/* a buffer made available while notifications were off is reported
	 * when they come back on */
	uint64_t x = vbench_alloc(&f.b, 16, 16);
	struct vdrv_buf w = { x, 16, true };
	vdrv_add(f.d, 0, &w, 1, false);
	CHECK(virtq_set_notification(vq, true));
	CHECK(!vdrv_device_no_notify(f.d, 0));
	CHECK(virtq_has_avail(vq));
	vdrv_kick(f.d, 0);
	CHECK(vdrv_get_used(f.d, 0, NULL) >= 0);
	CHECK(!virtq_has_avail(vq));
	CHECK(!virtq_set_notification(vq, true));
	fix_fini(&f);
}

static void test_suppression_event_idx(void)
{
	struct fix f;
	CHECK(fix_init(&f, BASE_F | F(VIRTIO_F_EVENT_IDX), true, 16) == 0);
	struct virtq *vq = virtio_dev_queue(f.ec->vd, 0);
	/* first completion always interrupts (nothing signalled yet) */
	vdrv_set_used_event(f.d, 0, 100);
	CHECK(echo_round(&f, 0, 10, false) == 10);
	CHECK_EQ_U64(vdrv_irq_count(&f.b.irq, 0), 1);
	/* used_event = 100: the used index going 1 -> 2 does not cross it */
	CHECK(echo_round(&f, 0, 10, false) == 10);
	CHECK_EQ_U64(vdrv_irq_count(&f.b.irq, 0), 1);
	/* used_event = 2: the driver wants to hear when entry 2 is used */
	vdrv_set_used_event(f.d, 0, 2);
	CHECK(echo_round(&f, 0, 10, false) == 10); /* used idx 2 -> 3 */
	CHECK_EQ_U64(vdrv_irq_count(&f.b.irq, 0), 2);
	CHECK(echo_round(&f, 0, 10, false) == 10); /* 3 -> 4: past it */
	CHECK_EQ_U64(vdrv_irq_count(&f.b.irq, 0), 2);
	/* a batch crossing used_event interrupts once */
	vdrv_set_used_event(f.d, 0, 5);
	uint64_t x = vbench_alloc(&f.b, 16, 16);
	struct vdrv_buf w = { x, 16, true };
	for (int i = 0; i < 3; i++)
		vdrv_add(f.d, 0, &w, 1, false);
	vdrv_kick(f.d, 0);
	CHECK_EQ_U64(vdrv_irq_count(&f.b.irq, 0), 3);
	CHECK_EQ_U64(vdrv_used_idx(f.d, 0), 7);
	while (vdrv_get_used(f.d, 0, NULL) >= 0)
		;
	/* the device publishes avail_event = next entry it will look at */
	CHECK_EQ_U64(vdrv_avail_event(f.d, 0), 7);
	/* with notifications "off", avail_event stops moving; back on it
	 * catches up and reports what arrived meanwhile */
	CHECK(!virtq_set_notification(vq, false));
	vdrv_add(f.d, 0, &w, 1, false);
	struct virtq_elem *e;
	CHECK(virtq_pop(vq, &e) == 1);
	CHECK_EQ_U64(vdrv_avail_event(f.d, 0), 7);
	virtq_push(vq, e, 0);
	virtq_notify(vq);
	vdrv_add(f.d, 0, &w, 1, false);
	CHECK(virtq_set_notification(vq, true));
	CHECK_EQ_U64(vdrv_avail_event(f.d, 0), 8);
	CHECK(!(vdrv_status(f.d) & VIRTIO_STATUS_NEEDS_RESET));
	fix_fini(&f);
}

/* ---- interrupts ---- */

static void test_msix_masking(void)
{
	struct fix f;
	CHECK(fix_init(&f, BASE_F, true, 16) == 0);
	/* vector masked: the message waits in the PBA */
	vdrv_msix_mask(f.d, 0, true);
	CHECK(echo_round(&f, 0, 10, false) == 10);
	CHECK_EQ_U64(vdrv_irq_count(&f.b.irq, 0), 0);
	CHECK(vdrv_msix_pending(f.d, 0));
	CHECK(!vdrv_msix_pending(f.d, 1));
	vdrv_msix_mask(f.d, 0, false);
	CHECK_EQ_U64(vdrv_irq_count(&f.b.irq, 0), 1);
	CHECK(!vdrv_msix_pending(f.d, 0));
	/* function mask: everything waits, then goes out */
	vdrv_msix_function_mask(f.d, true);
	CHECK(echo_round(&f, 0, 10, false) == 10);
	CHECK(echo_round(&f, 1, 10, false) == 10);
	CHECK_EQ_U64(vdrv_irq_count(&f.b.irq, 0), 1);
	CHECK_EQ_U64(vdrv_irq_count(&f.b.irq, 1), 0);
	CHECK(vdrv_msix_pending(f.d, 0) && vdrv_msix_pending(f.d, 1));
	vdrv_msix_function_mask(f.d, false);
	CHECK_EQ_U64(vdrv_irq_count(&f.b.irq, 0), 2);
	CHECK_EQ_U64(vdrv_irq_count(&f.b.irq, 1), 1);
	/* the table is readable; vector control keeps only the mask bit */
	uint64_t v = 0;
	mmio_bus_write(f.b.mmio, vdrv_msix_table(f.d) + 16 * 1 + 12, 4, 0xffffffff);
	mmio_bus_read(f.b.mmio, vdrv_msix_table(f.d) + 16 * 1 + 12, 4, &v);
	CHECK_EQ_U64(v, 1);
	mmio_bus_read(f.b.mmio, vdrv_msix_table(f.d) + 16 * 1 + 8, 4, &v);
	CHECK_EQ_U64(v, VDRV_MSI_DATA(1));
	/* no vector assigned: nothing is sent */
	vdrv_msix_mask(f.d, 1, false);
	unsigned n = f.b.irq.nr_msi;
	vdrv_reset(f.d);
	CHECK(vdrv_negotiate(f.d, BASE_F) == 0);
	CHECK(vdrv_queue_setup(f.d, 0, 16, VIRTIO_NO_VECTOR) == 0);
	vdrv_driver_ok(f.d);
	CHECK(echo_round(&f, 0, 10, false) == 10);
	CHECK_EQ_U64(f.b.irq.nr_msi, n);
	/* configuration change: config vector, generation bumps */
	vdrv_common_write(f.d, 0x10, 2, 2);
	uint64_t gen = vdrv_common_read(f.d, 0x15, 1);
	virtio_dev_config_changed(f.ec->vd);
	CHECK_EQ_U64(vdrv_common_read(f.d, 0x15, 1), (gen + 1) & 0xff);
	CHECK_EQ_U64(vdrv_irq_count(&f.b.irq, 2), 1);
	fix_fini(&f);
}

static void test_intx(void)
{
	struct fix f;
	CHECK(fix_init(&f, BASE_F, false, 16) == 0);
	CHECK(!f.b.irq.intx);
	CHECK(echo_round(&f, 0, 10, false) == 10);
	CHECK(f.b.irq.intx);
	CHECK_EQ_U64(f.b.irq.nr_msi, 0);
	CHECK(vdrv_pci_read(f.d, 0x06, 2) & 0x08); /* interrupt status */
	CHECK_EQ_U64(vdrv_isr_read(f.d), 1);
	CHECK(!f.b.irq.intx);
	CHECK(!(vdrv_pci_read(f.d, 0x06, 2) & 0x08));
	CHECK_EQ_U64(vdrv_isr_read(f.d), 0);
	/* configuration change sets bit 1 */
	virtio_dev_config_changed(f.ec->vd);
	CHECK(f.b.irq.intx);
	CHECK_EQ_U64(vdrv_isr_read(f.d), 2);
	CHECK(!f.b.irq.intx);
	/* INTx disable in the command register holds the line low */
	vdrv_pci_write(f.d, 0x04, 2, 0x406);
	CHECK(echo_round(&f, 0, 10, false) == 10);
	CHECK(!f.b.irq.intx);
	vdrv_pci_write(f.d, 0x04, 2, 0x006);
	CHECK(f.b.irq.intx);
	/* enabling MSI-X lowers it too */
	vdrv_msix_enable(f.d, true);
	CHECK(!f.b.irq.intx);
	vdrv_msix_enable(f.d, false);
	CHECK(f.b.irq.intx);
	/* a reset clears the ISR and the line */
	vdrv_reset(f.d);
	CHECK(!f.b.irq.intx);
	CHECK_EQ_U64(f.b.irq.intx_raises, 4);
	fix_fini(&f);
}

/* ---- reset, BAR, config ---- */

static void test_reset_inflight(void)
{
	struct fix f;
	CHECK(fix_init(&f, BASE_F, true, 16) == 0);
	f.ec->hold = true;
	uint64_t x = vbench_alloc(&f.b, 64, 16);
	struct vdrv_buf bb[2] = { { x, 8, false }, { x + 8, 8, true } };
	for (int i = 0; i < 4; i++)
		vdrv_add(f.d, 0, bb, 2, false);
	vdrv_kick(f.d, 0);
	CHECK_EQ_U64(f.ec->nr_held, 4);
	/* steal one element so that the device's reset cannot free it: it
	 * models a request completing after the reset */
	struct virtq_elem *stale = f.ec->held[3].e;
	f.ec->nr_held = 3;
	vdrv_reset(f.d);
	CHECK_EQ_U64(f.ec->nr_held, 0);
	CHECK(f.ec->resets >= 2);
	CHECK(vdrv_negotiate(f.d, BASE_F) == 0);
	vdrv_msix_enable(f.d, true);
	CHECK(vdrv_queue_setup(f.d, 0, 16, 0) == 0);
	vdrv_driver_ok(f.d);
	/* the stale element does not reach the new ring */
	struct virtq *vq = virtio_dev_queue(f.ec->vd, 0);
	virtq_push(vq, stale, 8);
	virtq_notify(vq);
	CHECK_EQ_U64(vdrv_used_idx(f.d, 0), 0);
	f.ec->hold = false;
	CHECK(echo_round(&f, 0, 32, false) == 32);
	CHECK_EQ_U64(vdrv_used_idx(f.d, 0), 1);
	/* the transport-level reset (VM reset) */
	virtio_pci_reset(vdrv_transport(f.d));
	CHECK_EQ_U64(vdrv_status(f.d), 0);
	CHECK(!(vdrv_pci_read(f.d, 0x42, 2) & 0x8000));
	fix_fini(&f);
}

static void test_bar_and_config(void)
{
	struct fix f;
	CHECK(fix_init(&f, BASE_F, true, 16) == 0);
	uint64_t bar = vdrv_bar(f.d), v = 0;
	CHECK(mmio_bus_read(f.b.mmio, bar + 0x12, 2, &v) == 0 && v == 2);
	/* memory decoding off: the window disappears */
	vdrv_pci_write(f.d, 0x04, 2, 0x4);
	CHECK(mmio_bus_read(f.b.mmio, bar + 0x12, 2, &v) == -ENODEV);
	vdrv_pci_write(f.d, 0x04, 2, 0x6);
	CHECK(mmio_bus_read(f.b.mmio, bar + 0x12, 2, &v) == 0 && v == 2);
	/* the guest moves the BAR (64-bit, above 4 GiB) */
	uint64_t nb = 0x800000000ull;
	vdrv_pci_write(f.d, 0x10, 4, (uint32_t)nb);
	vdrv_pci_write(f.d, 0x14, 4, (uint32_t)(nb >> 32));
	CHECK(mmio_bus_read(f.b.mmio, bar + 0x12, 2, &v) == -ENODEV);
	CHECK(mmio_bus_read(f.b.mmio, nb + 0x12, 2, &v) == 0 && v == 2);
	CHECK_EQ_U64(virtio_pci_bar_size(vdrv_transport(f.d)), 0x8000);
	/* BAR sizing reads back the size mask */
	vdrv_pci_write(f.d, 0x04, 2, 0);
	vdrv_pci_write(f.d, 0x10, 4, 0xffffffff);
	CHECK_EQ_U64(vdrv_pci_read(f.d, 0x10, 4), 0xffff8004);
	vdrv_pci_write(f.d, 0x10, 4, (uint32_t)bar);
	vdrv_pci_write(f.d, 0x14, 4, 0);
	vdrv_pci_write(f.d, 0x04, 2, 0x6);
	CHECK(mmio_bus_read(f.b.mmio, bar + 0x12, 2, &v) == 0 && v == 2);

	/* device config: in range, writable part, out of range */
	f.ec->config[0] = 0x11;
	f.ec->config[3] = 0x44;
	CHECK_EQ_U64(vdrv_config_read(f.d, 0, 4), 0x44000011);
	vdrv_config_write(f.d, 0, 4, 0xdeadbeef); /* read-only bytes */
	CHECK_EQ_U64(vdrv_config_read(f.d, 0, 4), 0x44000011);
	vdrv_config_write(f.d, 8, 4, 0xcafef00d);
	CHECK_EQ_U64(vdrv_config_read(f.d, 8, 4), 0xcafef00d);
	CHECK_EQ_U64(vdrv_config_read(f.d, 14, 4), 0); /* straddles the end */
	CHECK_EQ_U64(vdrv_config_read(f.d, 0x800, 4), 0);
	vdrv_config_write(f.d, 0xffc, 4, 1);

	/* the PCI-config access window (VIRTIO_PCI_CAP_PCI_CFG) */
	unsigned cap = vdrv_pci_read(f.d, 0x34, 1), found = 0;
	for (int g = 0; cap && g < 32; g++) {
		if (vdrv_pci_read(f.d, cap, 1) == 9 && vdrv_pci_read(f.d, cap + 3, 1) == 5) {
			found = cap;
			break;
		}
		cap = vdrv_pci_read(f.d, cap + 1, 1);
	}
	CHECK(found != 0);
	if (found) {
		vdrv_pci_write(f.d, found + 4, 1, 0);	  /* bar */
		vdrv_pci_write(f.d, found + 8, 4, 0x12);  /* offset: num_queues */
		vdrv_pci_write(f.d, found + 12, 4, 2);	  /* length */
		CHECK_EQ_U64(vdrv_pci_read(f.d, found + 16, 2), 2);
		vdrv_pci_write(f.d, found + 8, 4, 0x16);  /* queue_select */
		vdrv_pci_write(f.d, found + 16, 2, 1);
		CHECK_EQ_U64(vdrv_common_read(f.d, 0x16, 2), 1);
		vdrv_pci_write(f.d, found + 12, 4, 3);	  /* bad length: ignored */
		CHECK_EQ_U64(vdrv_pci_read(f.d, found + 16, 4), 1);
	}
	/* odd accesses to the common config never crash */
	for (unsigned off = 0; off < 0x40; off++)
		for (unsigned sz = 1; sz <= 8; sz *= 2)
			mmio_bus_read(f.b.mmio, bar + off, sz, &v);
	vdrv_common_write(f.d, 0x3a, 2, 1);
	vdrv_common_write(f.d, 0x38, 2, 1);
	mmio_bus_write(f.b.mmio, bar + 0x1000, 4, 0xff); /* ISR is read-only */
	mmio_bus_write(f.b.mmio, bar + 0x3000 + 4 * 100, 2, 100); /* no queue 100 */
	mmio_bus_write(f.b.mmio, bar + 0x5000, 8, ~0ull);	  /* PBA read-only */
	CHECK(!vdrv_msix_pending(f.d, 0));
	fix_fini(&f);
}

/* ---- a malicious driver ---- */

enum evil {
	EVIL_AVAIL_JUMP, EVIL_HEAD_RANGE, EVIL_NEXT_RANGE, EVIL_LOOP, EVIL_LOOP_INDIRECT,
	EVIL_NESTED_INDIRECT, EVIL_INDIRECT_ZERO, EVIL_INDIRECT_ODD, EVIL_INDIRECT_HUGE,
	EVIL_INDIRECT_NEXT, EVIL_INDIRECT_NOFEATURE, EVIL_INDIRECT_OUTSIDE, EVIL_ADDR_OUTSIDE,
	EVIL_ADDR_WRAP, EVIL_ADDR_STRADDLE, EVIL_READ_AFTER_WRITE, EVIL_TOO_MANY,
	EVIL_INDIRECT_LOOP_NEXT, EVIL_COUNT
};

static void evil_case(enum evil which)
{
	struct fix f;
	uint64_t feat = BASE_F | F(VIRTIO_F_INDIRECT_DESC);
	if (which == EVIL_INDIRECT_NOFEATURE)
		feat = BASE_F;
	CHECK(fix_init(&f, feat, true, 16) == 0);
	struct vdrv *d = f.d;
	uint64_t buf = vbench_alloc(&f.b, 4096, 16);
	uint64_t tbl = vbench_alloc(&f.b, 16 * 1024, 16);
	unsigned cfg_before = vdrv_irq_count(&f.b.irq, 2);
	const uint16_t N = 1, W = 2, I = 4;

	switch (which) {
	case EVIL_AVAIL_JUMP: {
		struct vdrv_ring r = vdrv_queue_ring(d, 0);
		vdrv_write_desc(d, 0, 0, buf, 16, W, 0);
		uint16_t idx = 17; /* 17 new entries in a 16-entry ring */
		mem_write(f.b.mem, r.avail + 2, &idx, 2);
		break;
	}
	case EVIL_HEAD_RANGE:
		vdrv_add_raw_head(d, 0, 16);
		break;
	case EVIL_NEXT_RANGE:
		vdrv_write_desc(d, 0, 0, buf, 16, N, 300);
		vdrv_add_raw_head(d, 0, 0);
		break;
	case EVIL_LOOP:
		vdrv_write_desc(d, 0, 0, buf, 16, N, 1);
		vdrv_write_desc(d, 0, 1, buf, 16, N, 2);
		vdrv_write_desc(d, 0, 2, buf, 16, N, 0);
		vdrv_add_raw_head(d, 0, 0);
		break;
	case EVIL_LOOP_INDIRECT:
	case EVIL_INDIRECT_LOOP_NEXT: {
		/* an indirect table of 4 whose entries chain in a circle (or
		 * point past its end) */
		for (unsigned i = 0; i < 4; i++) {
			uint8_t raw[16];
			uint64_t a = buf;
			uint32_t l = 16;
			uint16_t fl = N,
				 nx = which == EVIL_LOOP_INDIRECT ? (uint16_t)((i + 1) % 4) : 4;
			memcpy(raw, &a, 8);
			memcpy(raw + 8, &l, 4);
			memcpy(raw + 12, &fl, 2);
			memcpy(raw + 14, &nx, 2);
			mem_write(f.b.mem, tbl + 16 * i, raw, 16);
		}
		vdrv_write_desc(d, 0, 0, tbl, 64, I, 0);
		vdrv_add_raw_head(d, 0, 0);
		break;
	}
	case EVIL_NESTED_INDIRECT: {
		uint8_t raw[16] = { 0 };
		uint64_t a = tbl + 512;
		uint32_t l = 16;
		uint16_t fl = I;
		memcpy(raw, &a, 8);
		memcpy(raw + 8, &l, 4);
		memcpy(raw + 12, &fl, 2);
		mem_write(f.b.mem, tbl, raw, 16);
		vdrv_write_desc(d, 0, 0, tbl, 16, I, 0);
		vdrv_add_raw_head(d, 0, 0);
		break;
	}
	case EVIL_INDIRECT_ZERO:
		vdrv_write_desc(d, 0, 0, tbl, 0, I, 0);
		vdrv_add_raw_head(d, 0, 0);
		break;
	case EVIL_INDIRECT_ODD:
		vdrv_write_desc(d, 0, 0, tbl, 24, I, 0);
		vdrv_add_raw_head(d, 0, 0);
		break;
	case EVIL_INDIRECT_HUGE:
		vdrv_write_desc(d, 0, 0, tbl, 16 * 2048, I, 0);
		vdrv_add_raw_head(d, 0, 0);
		break;
	case EVIL_INDIRECT_NEXT:
		vdrv_write_desc(d, 0, 0, tbl, 16, I | N, 1);
		vdrv_write_desc(d, 0, 1, buf, 16, W, 0);
		vdrv_add_raw_head(d, 0, 0);
		break;
	case EVIL_INDIRECT_NOFEATURE: {
		struct vdrv_buf b1 = { buf, 16, true };
		vdrv_add(d, 0, &b1, 1, true);
		break;
	}
	case EVIL_INDIRECT_OUTSIDE:
		vdrv_write_desc(d, 0, 0, RAM - 16, 32, I, 0);
		vdrv_add_raw_head(d, 0, 0);
		break;
	case EVIL_ADDR_OUTSIDE:
		vdrv_write_desc(d, 0, 0, 0x100000000ull, 16, W, 0);
		vdrv_add_raw_head(d, 0, 0);
		break;
	case EVIL_ADDR_WRAP:
		vdrv_write_desc(d, 0, 0, 0xfffffffffffffff0ull, 0x100, W, 0);
		vdrv_add_raw_head(d, 0, 0);
		break;
	case EVIL_ADDR_STRADDLE:
		vdrv_write_desc(d, 0, 0, RAM - 8, 16, W, 0);
		vdrv_add_raw_head(d, 0, 0);
		break;
	case EVIL_READ_AFTER_WRITE:
		vdrv_write_desc(d, 0, 0, buf, 16, W | N, 1);
		vdrv_write_desc(d, 0, 1, buf, 16, 0, 0);
		vdrv_add_raw_head(d, 0, 0);
		break;
	case EVIL_TOO_MANY:
		/* the device holds 16 requests; the driver publishes a 17th
		 * (reusing a head it never got back) */
		f.ec->hold = true;
		vdrv_write_desc(d, 0, 0, buf, 16, W, 0);
		for (int i = 0; i < 16; i++)
			vdrv_add_raw_head(d, 0, 0);
		vdrv_kick(d, 0);
		CHECK_EQ_U64(f.ec->nr_held, 16);
		CHECK(!(vdrv_status(d) & VIRTIO_STATUS_NEEDS_RESET));
		vdrv_add_raw_head(d, 0, 0);
		break;
	default:
		break;
	}
	vdrv_kick(d, 0);
	CHECK(vdrv_status(d) & VIRTIO_STATUS_NEEDS_RESET);
	if (!(vdrv_status(d) & VIRTIO_STATUS_NEEDS_RESET))
		fprintf(stderr, "  (malicious case %d was accepted)\n", which);
	CHECK_EQ_U64(vdrv_irq_count(&f.b.irq, 2), cfg_before + 1);
	CHECK_EQ_U64(vdrv_used_idx(d, 0), 0);
	/* the broken device ignores kicks and answers nothing */
	unsigned notifies = f.ec->notifies;
	vdrv_kick(d, 0);
	CHECK_EQ_U64(f.ec->notifies, notifies);
	/* a reset brings it back */
	f.ec->hold = false;
	CHECK(vdrv_negotiate(d, feat) == 0);
	vdrv_common_write(d, 0x10, 2, 2);
	CHECK(vdrv_queue_setup(d, 0, 16, 0) == 0);
	vdrv_driver_ok(d);
	CHECK(!(vdrv_status(d) & VIRTIO_STATUS_NEEDS_RESET));
	CHECK(echo_round(&f, 0, 64, false) == 64);
	fix_fini(&f);
}

static void test_malicious(void)
{
	for (int i = 0; i < EVIL_COUNT; i++)
		evil_case((enum evil)i);
}

/* A chain as long as the whole ring is fine; the elem API copies right. */
static void test_long_chain(void)
{
	struct fix f;
	CHECK(fix_init(&f, BASE_F | F(VIRTIO_F_INDIRECT_DESC), true, 256) == 0);
	struct vdrv_buf bufs[256];
	uint64_t src = vbench_alloc(&f.b, 128 * 64, 16), dst = vbench_alloc(&f.b, 128 * 64, 16);
	fill(&f.b, src, 128 * 64, 3);
	for (int i = 0; i < 128; i++) {
		bufs[i] = (struct vdrv_buf){ src + 64 * i, 64, false };
		bufs[128 + i] = (struct vdrv_buf){ dst + 64 * i, 64, true };
	}
	for (int ind = 0; ind < 2; ind++) {
		mem_fill(f.b.mem, dst, 0, 128 * 64);
		int head = vdrv_add(f.d, 0, bufs, 256, ind);
		vdrv_kick(f.d, 0);
		uint32_t len = 0;
		CHECK(vdrv_get_used(f.d, 0, &len) == head);
		CHECK_EQ_U64(len, 128 * 64);
		CHECK(same(&f.b, src, dst, 128 * 64));
	}
	CHECK(!(vdrv_status(f.d) & VIRTIO_STATUS_NEEDS_RESET));
	fix_fini(&f);
}

/* Writes are reported to the dirty log and the dma hook. */
struct dma_log {
	unsigned calls;
	uint64_t bytes;
};
static void on_dma(void *opaque, uint64_t gpa, uint64_t len)
{
	(void)gpa;
	struct dma_log *l = opaque;
	l->calls++;
	l->bytes += len;
}

static void test_dma_marking(void)
{
	struct fix f;
	struct dma_log log = { 0, 0 };
	CHECK(vbench_init(&f.b, RAM) == 0);
	f.b.env.dma_written = on_dma;
	f.b.env.dma_opaque = &log;
	CHECK(mem_dirty_log_start(f.b.mem) == 0);
	f.ec = echo_new(&f.b.env, 0);
	f.d = vbench_attach(&f.b, f.ec->vd);
	CHECK(vdrv_negotiate(f.d, BASE_F) == 0);
	CHECK(vdrv_queue_setup(f.d, 0, 16, VIRTIO_NO_VECTOR) == 0);
	vdrv_driver_ok(f.d);
	uint64_t src = vbench_alloc(&f.b, 8192, 4096), dst = vbench_alloc(&f.b, 3 * 4096, 4096);
	uint64_t words[64];
	mem_dirty_collect(f.b.mem, 0, words, ARRAY_SIZE(words));
	struct vdrv_buf bufs[2] = { { src, 5000, false }, { dst + 100, 3 * 4096 - 100, true } };
	vdrv_add(f.d, 0, bufs, 2, false);
	vdrv_kick(f.d, 0);
	uint32_t len = 0;
	CHECK(vdrv_get_used(f.d, 0, &len) >= 0);
	CHECK_EQ_U64(len, 5000);
	CHECK(mem_dirty_test(f.b.mem, dst));
	CHECK(mem_dirty_test(f.b.mem, dst + 4096));
	CHECK(!mem_dirty_test(f.b.mem, dst + 8192)); /* 100 + 5000 < 8192 */
	CHECK(!mem_dirty_test(f.b.mem, src));
	CHECK(mem_dirty_test(f.b.mem, vdrv_queue_ring(f.d, 0).used));
	CHECK(log.bytes >= 5000);
	vbench_fini(&f.b);
}

/* Buffers made available (and kicked) before DRIVER_OK are served once
 * the driver sets it, not lost. */
static void test_avail_before_driver_ok(void)
{
	struct vbench b;
	CHECK(vbench_init(&b, RAM) == 0);
	struct echo *ec = echo_new(&b.env, 0);
	struct vdrv *d = vbench_attach(&b, ec->vd);
	CHECK(vdrv_negotiate(d, BASE_F) == 0);
	CHECK(vdrv_queue_setup(d, 0, 16, VIRTIO_NO_VECTOR) == 0);
	uint64_t x = vbench_alloc(&b, 64, 16);
	struct vdrv_buf bb[2] = { { x, 8, false }, { x + 8, 8, true } };
	int head = vdrv_add(d, 0, bb, 2, false);
	vdrv_kick(d, 0);
	CHECK_EQ_U64(ec->notifies, 0);
	CHECK(vdrv_get_used(d, 0, NULL) == -1);
	vdrv_driver_ok(d);
	uint32_t len = 0;
	CHECK(vdrv_get_used(d, 0, &len) == head);
	CHECK_EQ_U64(len, 8);
	vbench_fini(&b);
}

static void test_rng(void)
{
	struct vbench b;
	CHECK(vbench_init(&b, RAM) == 0);
	struct virtio_dev *vd = virtio_rng_new(&b.env);
	CHECK(vd != NULL);
	struct vdrv *d = vbench_attach(&b, vd);
	CHECK_EQ_U64(vdrv_pci_read(d, 0x02, 2), 0x1044);
	CHECK(vdrv_negotiate(d, BASE_F | F(VIRTIO_F_INDIRECT_DESC)) == 0);
	vdrv_msix_enable(d, true);
	CHECK(vdrv_queue_setup(d, 0, 64, 0) == 0);
	vdrv_driver_ok(d);
	uint64_t x = vbench_alloc(&b, 64, 16);
	struct vdrv_buf w = { x, 64, true };
	int head = vdrv_add(d, 0, &w, 1, false);
	vdrv_kick(d, 0);
	uint32_t len = 0;
	CHECK(vdrv_get_used(d, 0, &len) == head);
	CHECK_EQ_U64(len, 64);
	uint8_t zero[64] = { 0 };
	CHECK(memcmp(mem_ram_ptr(b.mem, x, 64), zero, 64) != 0);
	CHECK_EQ_U64(vdrv_irq_count(&b.irq, 0), 1);
	/* a huge request is capped at 64 KiB; split buffers are all filled */
	uint64_t big = vbench_alloc(&b, 256 << 10, 4096);
	struct vdrv_buf bb[2] = { { big, 1000, true }, { big + 4096, 200 << 10, true } };
	head = vdrv_add(d, 0, bb, 2, true);
	vdrv_kick(d, 0);
	CHECK(vdrv_get_used(d, 0, &len) == head);
	CHECK_EQ_U64(len, 64 << 10);
	/* readable buffers get nothing */
	struct vdrv_buf r = { x, 64, false };
	head = vdrv_add(d, 0, &r, 1, false);
	vdrv_kick(d, 0);
	CHECK(vdrv_get_used(d, 0, &len) == head);
	CHECK_EQ_U64(len, 0);
	/* a bad chain breaks it */
	vdrv_add_raw_head(d, 0, 999);
	vdrv_kick(d, 0);
	CHECK(vdrv_status(d) & VIRTIO_STATUS_NEEDS_RESET);
	vbench_fini(&b);
}

int main(void)
{
	log_set_level(LOG_ERROR); /* the malicious cases warn by design */
	test_features();
	test_status();
	test_queue_setup();
	test_chains();
	test_suppression_no_event_idx();
	test_suppression_event_idx();
	test_msix_masking();
	test_intx();
	test_reset_inflight();
	test_bar_and_config();
	test_malicious();
	test_long_chain();
	test_dma_marking();
	test_avail_before_driver_ok();
	test_rng();
	TEST_MAIN_END();
}

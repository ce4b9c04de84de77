/*
 * virtio-console through vdriver: the guest's output reaches the backend,
 * host input fills only the buffers the guest posted (and waits, untaken,
 * while there are none or the driver is not ready), the posting of
 * buffers tells the backend to send more, emergency writes, config space,
 * and a malformed chain breaks the device without harming the host.
 */
#include <errno.h>
#include <string.h>

#include "core/core.h"
#include "test.h"
#include "vdriver.h"

struct sink {
	uint8_t out[4096];
	size_t len;
	unsigned rx_ready;
};

static size_t sink_write(void *opaque, const uint8_t *buf, size_t len)
{
	struct sink *s = opaque;
	size_t n = MIN(len, sizeof(s->out) - s->len);
	memcpy(s->out + s->len, buf, n);
	s->len += n;
	return len;
}

static void sink_rx_ready(void *opaque)
{
	struct sink *s = opaque;
	s->rx_ready++;
}

static const struct chardev_ops sink_ops = { sink_write, sink_rx_ready };

int main(void)
{
	struct vbench b;
	struct sink s = { .len = 0 };
	CHECK(vbench_init(&b, 16 << 20) == 0);
	struct virtio_console *con = NULL;
	struct virtio_dev *vd = virtio_console_new(&b.env, (struct chardev){ &sink_ops, &s }, &con);
	CHECK(vd && con);
	struct vdrv *d = vbench_attach(&b, vd);
	CHECK(d);
	if (!d)
		TEST_MAIN_END();

	/* the PCI identity of a modern console */
	CHECK_EQ_U64(vdrv_pci_read(d, 0, 2), 0x1af4);
	CHECK_EQ_U64(vdrv_pci_read(d, 2, 2), 0x1043);

	/* input before the driver is ready is not taken */
	CHECK(!virtio_console_can_receive(con));
	CHECK(virtio_console_receive(con, (const uint8_t *)"early", 5) == 0);

	uint64_t feat = vdrv_device_features(d);
	CHECK(feat & (1ull << 2)); /* EMERG_WRITE */
	CHECK(!(feat & (1ull << 1))); /* no MULTIPORT */
	CHECK(vdrv_negotiate(d, feat) == 0);
	vdrv_msix_enable(d, true);
	CHECK(vdrv_queue_setup(d, 0, 16, 0) == 0);
	CHECK(vdrv_queue_setup(d, 1, 16, 1) == 0);
	vdrv_driver_ok(d);
	CHECK_EQ_U64(vdrv_config_read(d, 0, 2), 80);
	CHECK_EQ_U64(vdrv_config_read(d, 2, 2), 25);

	/* output: a two-buffer chain, in order */
	uint64_t t1 = vbench_alloc(&b, 64, 16), t2 = vbench_alloc(&b, 64, 16);
	mem_write(b.mem, t1, "hello, ", 7);
	mem_write(b.mem, t2, "world\n", 6);
	struct vdrv_buf tx[2] = { { t1, 7, false }, { t2, 6, false } };
	CHECK(vdrv_add(d, 1, tx, 2, false) >= 0);
	vdrv_kick(d, 1);
	uint32_t len = 99;
	CHECK(vdrv_get_used(d, 1, &len) >= 0);
	CHECK(len == 0);
	CHECK(s.len == 13 && !memcmp(s.out, "hello, world\n", 13));
	CHECK(vdrv_irq_count(&b.irq, 1) == 1);

	/* emergency write: one byte through the config space */
	vdrv_config_write(d, 8, 4, '!');
	CHECK(s.len == 14 && s.out[13] == '!');

	/* input with no posted buffer: nothing taken */
	CHECK(!virtio_console_can_receive(con));
	CHECK(virtio_console_receive(con, (const uint8_t *)"abc", 3) == 0);
	/* posting buffers tells the backend */
	uint64_t r1 = vbench_alloc(&b, 4, 16), r2 = vbench_alloc(&b, 4, 16);
	struct vdrv_buf rx1 = { r1, 4, true }, rx2 = { r2, 4, true };
	CHECK(vdrv_add(d, 0, &rx1, 1, false) >= 0);
	CHECK(vdrv_add(d, 0, &rx2, 1, false) >= 0);
	unsigned before = s.rx_ready;
	vdrv_kick(d, 0);
	CHECK(s.rx_ready == before + 1);
	CHECK(virtio_console_can_receive(con));
	/* 10 bytes offered, two 4-byte buffers: 8 taken, split in order */
	CHECK(virtio_console_receive(con, (const uint8_t *)"0123456789", 10) == 8);
	CHECK(vdrv_get_used(d, 0, &len) >= 0 && len == 4);
	CHECK(vdrv_get_used(d, 0, &len) >= 0 && len == 4);
	char got[8];
	mem_read(b.mem, r1, got, 4);
	mem_read(b.mem, r2, got + 4, 4);
	CHECK(!memcmp(got, "01234567", 8));
	CHECK(vdrv_irq_count(&b.irq, 0) == 1);
	CHECK(!virtio_console_can_receive(con));

	/* a chain pointing outside RAM: the device breaks, the host goes on */
	struct vdrv_buf bad = { 0x7ff0000000ull, 16, false };
	CHECK(vdrv_add(d, 1, &bad, 1, false) >= 0);
	vdrv_kick(d, 1);
	CHECK(vdrv_status(d) & VIRTIO_STATUS_NEEDS_RESET);
	CHECK(s.len == 14);
	CHECK(virtio_console_receive(con, (const uint8_t *)"x", 1) == 0);
	/* a reset brings it back */
	CHECK(vdrv_negotiate(d, feat) == 0);
	CHECK(vdrv_queue_setup(d, 0, 16, 0) == 0);
	CHECK(vdrv_queue_setup(d, 1, 16, 1) == 0);
	vdrv_driver_ok(d);
	uint64_t t3 = vbench_alloc(&b, 16, 16);
	mem_write(b.mem, t3, "again", 5);
	struct vdrv_buf tx3 = { t3, 5, false };
	CHECK(vdrv_add(d, 1, &tx3, 1, true) >= 0); /* indirect this time */
	vdrv_kick(d, 1);
	CHECK(vdrv_get_used(d, 1, &len) >= 0);
	CHECK(s.len == 19 && !memcmp(s.out + 14, "again", 5));

	vbench_fini(&b);
	TEST_MAIN_END();
}

/*
 * virtio-net over the PCI transport, driven by vdriver (the guest's part)
 * with a fake backend (the host's part): features and config, transmit
 * (header stripped, partial checksums finished, GSO refused, a full
 * backend parks the chain until tx_ready), receive (header, DATA_VALID,
 * num_buffers, frames merged over several buffers, one buffer without
 * MRG_RXBUF, batched interrupts), no receive buffers (-EAGAIN, then the
 * doorbell resumes the backend), a driver that is not running, and
 * malformed chains (NEEDS_RESET, then a reset brings the device back).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "net/net.h"
#include "test.h"
#include "vdriver.h"
#include "virtio/virtio.h"
#include "../net/netpkt.h"

#define RAM (16ull << 20)
#define F(bit) (1ull << (bit))
#define NET_F_CSUM 0
#define NET_F_GUEST_CSUM 1
#define NET_F_MAC 5
#define NET_F_HOST_TSO4 11
#define NET_F_MRG_RXBUF 15
#define NET_F_STATUS 16
#define HDR 12
#define FULL_F                                                                             \
	(F(VIRTIO_F_VERSION_1) | F(VIRTIO_F_EVENT_IDX) | F(VIRTIO_F_INDIRECT_DESC) |        \
	 F(NET_F_CSUM) | F(NET_F_GUEST_CSUM) | F(NET_F_MAC) | F(NET_F_MRG_RXBUF) |          \
	 F(NET_F_STATUS) | F(NET_F_HOST_TSO4))
#define RXQ 0
#define TXQ 1
#define RX_VEC 0
#define TX_VEC 1

/* ------------------------------------------------------------------ */
/* A fake backend: records what the device sends, lets the test deliver */

struct fake {
	struct net_backend be;
	unsigned sent;
	size_t last_len;
	uint8_t last[NET_FRAME_MAX];
	int send_ret; /* what send() answers (after recording) when not 0 */
	uint8_t seg[8][2048]; /* the first 8 frames (up to 2048 bytes each) */
	size_t seg_len[8];
	unsigned resumes;
	bool *freed;
};

static int fake_send(struct net_backend *be, const void *frame, size_t len)
{
	struct fake *fb = (struct fake *)be;

	if (fb->send_ret)
		return fb->send_ret;
	if (fb->sent < 8 && len <= 2048) {
		memcpy(fb->seg[fb->sent], frame, len);
		fb->seg_len[fb->sent] = len;
	}
	fb->sent++;
	fb->last_len = len;
	memcpy(fb->last, frame, len);
	return 0;
}

static void fake_rx_resume(struct net_backend *be)
{
	((struct fake *)be)->resumes++;
}

static void fake_free(struct net_backend *be)
{
	struct fake *fb = (struct fake *)be;

	if (fb->freed)
		*fb->freed = true;
	free(fb);
}

static const struct net_backend_ops fake_ops = {
	.kind = "fake",
	.send = fake_send,
	.rx_resume = fake_rx_resume,
	.free = fake_free,
};

/* ------------------------------------------------------------------ */

static const uint8_t test_mac[6] = { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc };

struct fix {
	struct vbench b;
	struct ev_loop *loop;
	struct fake *fb;
	struct virtio_dev *vd;
	struct vdrv *d;
	bool freed;
};

static int fix_open(struct fix *f)
{
	char err[256];

	memset(f, 0, sizeof(*f));
	if (vbench_init(&f->b, RAM))
		return -1;
	f->loop = ev_loop_new();
	f->b.env.loop = f->loop;
	f->fb = calloc(1, sizeof(*f->fb));
	f->fb->be.ops = &fake_ops;
	f->fb->freed = &f->freed;
	f->vd = virtio_net_new(&f->b.env, &f->fb->be, test_mac, err, sizeof(err));
	if (!f->vd) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	f->d = vbench_attach(&f->b, f->vd);
	return f->d ? 0 : -1;
}

static int fix_start(struct fix *f, uint64_t features, unsigned qsize)
{
	if (vdrv_negotiate(f->d, features))
		return -2;
	vdrv_msix_enable(f->d, true);
	vdrv_common_write(f->d, 0x10, 2, 2); /* config vector 2 */
	if (vdrv_queue_setup(f->d, RXQ, qsize, RX_VEC) || vdrv_queue_setup(f->d, TXQ, qsize, TX_VEC))
		return -3;
	vdrv_driver_ok(f->d);
	return 0;
}

static int fix_init(struct fix *f, uint64_t features, unsigned qsize)
{
	if (fix_open(f))
		return -1;
	return fix_start(f, features, qsize);
}

static void fix_fini(struct fix *f)
{
	struct ev_loop *loop = f->loop;

	vbench_fini(&f->b);
	CHECK(!f->freed);	    /* the backend is the caller's */
	CHECK(f->fb->be.fe == NULL); /* and detached */
	net_backend_free(&f->fb->be);
	CHECK(f->freed);
	ev_loop_free(loop);
}

static void run_loop(struct fix *f)
{
	for (int i = 0; i < 3; i++)
		ev_loop_run_once(f->loop, 0);
}

static uint8_t *ram(struct fix *f, uint64_t gpa, uint64_t len)
{
	return mem_ram_ptr(f->b.mem, gpa, len);
}

/* a test frame of len bytes: to the guest's MAC, a recognisable body */
static void make_frame(uint8_t *fr, size_t len, uint8_t seed)
{
	memcpy(fr, test_mac, 6);
	memcpy(fr + 6, "\x52\x55\x0a\x00\x02\x02", 6);
	fr[12] = 0x88;
	fr[13] = 0xb5; /* local experimental ethertype */
	for (size_t i = 14; i < len; i++)
		fr[i] = (uint8_t)(seed + i * 13);
}

static int post_rx(struct fix *f, uint32_t len)
{
	struct vdrv_buf b = { vbench_alloc(&f->b, len, 16), len, true };

	return vdrv_add(f->d, RXQ, &b, 1, false);
}

/* the gpa of the buffer with head index head (rx buffers are posted one
 * descriptor each: read it back from the table) */
static uint64_t desc_addr(struct fix *f, unsigned q, int head)
{
	struct vdrv_ring r = vdrv_queue_ring(f->d, q);
	uint64_t a;

	memcpy(&a, ram(f, r.desc + 16 * (uint64_t)head, 8), 8);
	return a;
}

/* ------------------------------------------------------------------ */

static void test_features_config(void)
{
	struct fix f;
	uint64_t host;

	CHECK(fix_open(&f) == 0);
	CHECK_EQ_U64(vdrv_pci_read(f.d, 0x02, 2), 0x1041);
	host = vdrv_device_features(f.d);
	CHECK((host & FULL_F) == FULL_F);
	CHECK(!(host & F(17))); /* no control queue */
	for (unsigned i = 0; i < 6; i++)
		CHECK_EQ_U64(vdrv_config_read(f.d, i, 1), test_mac[i]);
	CHECK_EQ_U64(vdrv_config_read(f.d, 6, 2), 1); /* LINK_UP */
	CHECK_EQ_U64(vdrv_config_read(f.d, 8, 2), 1); /* one queue pair */
	/* the driver cannot change the MAC */
	vdrv_config_write(f.d, 0, 1, 0x77);
	CHECK_EQ_U64(vdrv_config_read(f.d, 0, 1), test_mac[0]);
	CHECK(fix_start(&f, FULL_F, 64) == 0);
	CHECK(vdrv_status(f.d) & VIRTIO_STATUS_DRIVER_OK);
	CHECK(f.fb->resumes >= 1); /* activation lets a paused backend go */
	fix_fini(&f);
}

static void test_tx(void)
{
	struct fix f;
	uint8_t fr[1514];
	uint32_t len = 0;
	int head;

	CHECK(fix_init(&f, FULL_F, 64) == 0);
	make_frame(fr, sizeof(fr), 1);
	/* header + first 100 bytes in one buffer, the rest in another */
	{
		uint64_t a = vbench_alloc(&f.b, HDR + 100, 16), b = vbench_alloc(&f.b, 1414, 16);
		struct vdrv_buf bufs[2] = { { a, HDR + 100, false }, { b, 1414, false } };
		unsigned irq0 = vdrv_irq_count(&f.b.irq, TX_VEC);

		memset(ram(&f, a, HDR), 0, HDR);
		memcpy(ram(&f, a + HDR, 100), fr, 100);
		memcpy(ram(&f, b, 1414), fr + 100, 1414);
		head = vdrv_add(f.d, TXQ, bufs, 2, false);
		vdrv_kick(f.d, TXQ);
		CHECK(vdrv_get_used(f.d, TXQ, &len) == head);
		CHECK_EQ_U64(len, 0);
		CHECK_EQ_U64(f.fb->sent, 1);
		CHECK_EQ_U64(f.fb->last_len, sizeof(fr));
		CHECK(!memcmp(f.fb->last, fr, sizeof(fr)));
		CHECK(vdrv_irq_count(&f.b.irq, TX_VEC) == irq0 + 1);
	}
	/* indirect, all in one buffer */
	{
		uint64_t a = vbench_alloc(&f.b, HDR + 60, 16);
		struct vdrv_buf b = { a, HDR + 60, false };

		memset(ram(&f, a, HDR), 0, HDR);
		memcpy(ram(&f, a + HDR, 60), fr, 60);
		head = vdrv_add(f.d, TXQ, &b, 1, true);
		vdrv_kick(f.d, TXQ);
		CHECK(vdrv_get_used(f.d, TXQ, &len) == head);
		CHECK_EQ_U64(f.fb->sent, 2);
		CHECK_EQ_U64(f.fb->last_len, 60);
	}
	/* a batch of 20 in one doorbell: one interrupt (the driver asks for
	 * one as soon as the used index moves: used_event = used idx) */
	{
		unsigned irq0 = vdrv_irq_count(&f.b.irq, TX_VEC);

		vdrv_set_used_event(f.d, TXQ, vdrv_used_idx(f.d, TXQ));

		for (int i = 0; i < 20; i++) {
			uint64_t a = vbench_alloc(&f.b, HDR + 60, 16);
			struct vdrv_buf b = { a, HDR + 60, false };

			memset(ram(&f, a, HDR), 0, HDR);
			memcpy(ram(&f, a + HDR, 60), fr, 60);
			CHECK(vdrv_add(f.d, TXQ, &b, 1, false) >= 0);
		}
		vdrv_kick(f.d, TXQ);
		CHECK_EQ_U64(f.fb->sent, 22);
		CHECK_EQ_U64(vdrv_irq_count(&f.b.irq, TX_VEC), irq0 + 1);
		while (vdrv_get_used(f.d, TXQ, &len) >= 0)
			;
	}
	fix_fini(&f);
}

/* NEEDS_CSUM: the device finishes the UDP checksum; GSO is refused (the
 * frame is dropped, the chain completed) */
static void test_tx_csum_gso(void)
{
	struct fix f;
	uint8_t fr[128];
	size_t flen;
	uint32_t len;
	int head;
	struct pk_info pi;
	uint64_t a;

	CHECK(fix_init(&f, FULL_F, 64) == 0);
	flen = pk_udp(fr, test_mac, test_mac, 0x0a00020f, 1234, 0x0a000202, 80, "partial!", 8);
	/* turn the full checksum into the partial one a driver would leave:
	 * the pseudo-header sum, folded, not complemented */
	{
		uint32_t ps = pk_pseudo(0x0a00020f, 0x0a000202, 17, 16);
		uint16_t v;

		while (ps >> 16)
			ps = (ps & 0xffff) + (ps >> 16);
		v = (uint16_t)ps;
		fr[34 + 6] = (uint8_t)(v >> 8);
		fr[34 + 7] = (uint8_t)v;
	}
	pk_parse(fr, flen, &pi);
	CHECK(!pi.l4_csum_ok);
	a = vbench_alloc(&f.b, HDR + flen, 16);
	{
		uint8_t *h = ram(&f, a, HDR);
		struct vdrv_buf b = { a, (uint32_t)(HDR + flen), false };

		memset(h, 0, HDR);
		h[0] = 1;  /* NEEDS_CSUM */
		h[6] = 34; /* csum_start */
		h[8] = 6;  /* csum_offset */
		memcpy(ram(&f, a + HDR, flen), fr, flen);
		head = vdrv_add(f.d, TXQ, &b, 1, false);
	}
	vdrv_kick(f.d, TXQ);
	CHECK(vdrv_get_used(f.d, TXQ, &len) == head);
	CHECK_EQ_U64(f.fb->sent, 1);
	CHECK(pk_parse(f.fb->last, f.fb->last_len, &pi) && pi.l4_csum_ok);
	CHECK(pi.payload_len == 8 && !memcmp(pi.payload, "partial!", 8));

	/* csum_offset past the frame: dropped, completed */
	ram(&f, a, HDR)[8] = 200;
	{
		struct vdrv_buf b = { a, (uint32_t)(HDR + flen), false };

		head = vdrv_add(f.d, TXQ, &b, 1, false);
	}
	vdrv_kick(f.d, TXQ);
	CHECK(vdrv_get_used(f.d, TXQ, &len) == head);
	CHECK_EQ_U64(f.fb->sent, 1);
	/* GSO TCPv4 without the feature: dropped, completed */
	ram(&f, a, HDR)[0] = 0;
	ram(&f, a, HDR)[1] = 1;
	{
		struct vdrv_buf b = { a, (uint32_t)(HDR + flen), false };

		head = vdrv_add(f.d, TXQ, &b, 1, false);
	}
	vdrv_kick(f.d, TXQ);
	CHECK(vdrv_get_used(f.d, TXQ, &len) == head);
	CHECK_EQ_U64(f.fb->sent, 1);
	/* shorter than the header: dropped, completed, device still fine */
	{
		struct vdrv_buf b = { a, 8, false };

		head = vdrv_add(f.d, TXQ, &b, 1, false);
	}
	vdrv_kick(f.d, TXQ);
	CHECK(vdrv_get_used(f.d, TXQ, &len) == head);
	CHECK(!(vdrv_status(f.d) & VIRTIO_STATUS_NEEDS_RESET));
	fix_fini(&f);
}

/* HOST_TSO4: a 4000-byte TCP payload with gso_size 1448 leaves as three
 * segments with their own lengths, ids, sequence numbers, flags and
 * checksums; without the feature the same frame is dropped */
static void tso_frame(struct fix *f, uint64_t *gpa, uint32_t *len_out, uint8_t gso)
{
	static uint8_t payload[4000];
	uint8_t fr[14 + 20 + 20 + 4000];
	size_t flen;
	uint8_t *h;

	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7 + 1);
	flen = pk_tcp(fr, test_mac, test_mac, 0x0a00020f, 40000, 0x0a000202, 80, 5000, 77,
		      TCPF_ACK | TCPF_PSH | TCPF_FIN, payload, sizeof(payload));
	*gpa = vbench_alloc(&f->b, HDR + flen, 16);
	h = ram(f, *gpa, HDR);
	memset(h, 0, HDR);
	h[0] = 1;			/* NEEDS_CSUM */
	h[1] = gso;			/* GSO_TCPV4 */
	h[2] = 54;			/* hdr_len */
	h[4] = 1448 & 0xff;		/* gso_size */
	h[5] = 1448 >> 8;
	h[6] = 34;			/* csum_start */
	h[8] = 16;			/* csum_offset */
	memcpy(ram(f, *gpa + HDR, flen), fr, flen);
	*len_out = (uint32_t)(HDR + flen);
}

static void test_tx_tso(void)
{
	struct fix f;
	uint64_t a;
	uint32_t blen, len;
	int head;

	CHECK(fix_init(&f, FULL_F, 64) == 0);
	tso_frame(&f, &a, &blen, 1);
	{
		struct vdrv_buf b = { a, blen, false };

		head = vdrv_add(f.d, TXQ, &b, 1, false);
	}
	vdrv_kick(f.d, TXQ);
	CHECK(vdrv_get_used(f.d, TXQ, &len) == head);
	CHECK_EQ_U64(f.fb->sent, 3);
	for (unsigned i = 0; i < 3 && i < f.fb->sent; i++) {
		struct pk_info pi;
		size_t want = i < 2 ? 1448 : 4000 - 2 * 1448;
		const uint8_t *ip = f.fb->seg[i] + 14;

		CHECK(pk_parse(f.fb->seg[i], f.fb->seg_len[i], &pi));
		CHECK_EQ_U64(f.fb->seg_len[i], 54 + want);
		CHECK_EQ_U64(pi.payload_len, want);
		CHECK(pi.l4_csum_ok);
		CHECK(pk_fold(pk_sum(ip, 20, 0)) == 0); /* IP header checksum */
		CHECK_EQ_U64(pk_get16(ip + 2), 40 + want);
		CHECK_EQ_U64(pk_get16(ip + 4), 0x1234 + i);
		CHECK_EQ_U64(pi.seq, 5000 + 1448 * i);
		CHECK_EQ_U64(pi.ack, 77);
		CHECK_EQ_U64(pi.tcp_flags, i < 2 ? TCPF_ACK : (TCPF_ACK | TCPF_PSH | TCPF_FIN));
		CHECK(pi.payload[0] == (uint8_t)(1448 * i * 7 + 1));
	}
	fix_fini(&f);

	/* the feature not negotiated: dropped, completed, nothing broken */
	CHECK(fix_init(&f, FULL_F & ~F(NET_F_HOST_TSO4), 64) == 0);
	tso_frame(&f, &a, &blen, 1);
	{
		struct vdrv_buf b = { a, blen, false };

		head = vdrv_add(f.d, TXQ, &b, 1, false);
	}
	vdrv_kick(f.d, TXQ);
	CHECK(vdrv_get_used(f.d, TXQ, &len) == head);
	CHECK_EQ_U64(f.fb->sent, 0);
	/* ECN bit without HOST_ECN: dropped too */
	fix_fini(&f);
	CHECK(fix_init(&f, FULL_F, 64) == 0);
	tso_frame(&f, &a, &blen, 0x81);
	{
		struct vdrv_buf b = { a, blen, false };

		head = vdrv_add(f.d, TXQ, &b, 1, false);
	}
	vdrv_kick(f.d, TXQ);
	CHECK(vdrv_get_used(f.d, TXQ, &len) == head);
	CHECK_EQ_U64(f.fb->sent, 0);
	/* gso_size 0: dropped */
	tso_frame(&f, &a, &blen, 1);
	ram(&f, a, HDR)[4] = 0;
	ram(&f, a, HDR)[5] = 0;
	{
		struct vdrv_buf b = { a, blen, false };

		head = vdrv_add(f.d, TXQ, &b, 1, false);
	}
	vdrv_kick(f.d, TXQ);
	CHECK(vdrv_get_used(f.d, TXQ, &len) == head);
	CHECK_EQ_U64(f.fb->sent, 0);
	CHECK(!(vdrv_status(f.d) & VIRTIO_STATUS_NEEDS_RESET));
	fix_fini(&f);
}

/* a full backend: the chain waits (not completed) until tx_ready */
static void test_tx_backpressure(void)
{
	struct fix f;
	uint8_t fr[60];
	uint32_t len;
	int h1, h2;

	CHECK(fix_init(&f, FULL_F, 64) == 0);
	make_frame(fr, sizeof(fr), 3);
	f.fb->send_ret = -EAGAIN;
	for (int i = 0; i < 2; i++) {
		uint64_t a = vbench_alloc(&f.b, HDR + 60, 16);
		struct vdrv_buf b = { a, HDR + 60, false };

		memset(ram(&f, a, HDR), 0, HDR);
		memcpy(ram(&f, a + HDR, 60), fr, 60);
		*(i ? &h2 : &h1) = vdrv_add(f.d, TXQ, &b, 1, false);
	}
	vdrv_kick(f.d, TXQ);
	CHECK(vdrv_get_used(f.d, TXQ, &len) == -1);
	CHECK_EQ_U64(f.fb->sent, 0);
	/* another doorbell while blocked changes nothing */
	vdrv_kick(f.d, TXQ);
	CHECK(vdrv_get_used(f.d, TXQ, &len) == -1);
	f.fb->send_ret = 0;
	f.fb->be.fe->tx_ready(f.fb->be.fe_opaque);
	CHECK_EQ_U64(f.fb->sent, 2);
	CHECK(vdrv_get_used(f.d, TXQ, &len) == h1);
	CHECK(vdrv_get_used(f.d, TXQ, &len) == h2);
	fix_fini(&f);
}

static void test_rx(void)
{
	struct fix f;
	uint8_t fr[1514];
	uint32_t len = 0;
	int heads[8], h;
	unsigned irq0;

	CHECK(fix_init(&f, FULL_F, 64) == 0);
	for (int i = 0; i < 8; i++)
		heads[i] = post_rx(&f, 2048);
	vdrv_kick(f.d, RXQ);
	make_frame(fr, sizeof(fr), 9);
	irq0 = vdrv_irq_count(&f.b.irq, RX_VEC);
	CHECK(net_backend_deliver(&f.fb->be, fr, 100, NET_RX_CSUM_VALID) == 0);
	CHECK(net_backend_deliver(&f.fb->be, fr, 1514, 0) == 0);
	CHECK(net_backend_deliver(&f.fb->be, fr, 60, 0) == 0);
	/* the interrupt comes once, from the loop, for the batch */
	CHECK_EQ_U64(vdrv_irq_count(&f.b.irq, RX_VEC), irq0);
	run_loop(&f);
	CHECK_EQ_U64(vdrv_irq_count(&f.b.irq, RX_VEC), irq0 + 1);

	h = vdrv_get_used(f.d, RXQ, &len);
	CHECK(h == heads[0]);
	CHECK_EQ_U64(len, HDR + 100);
	if (h >= 0) {
		uint8_t *p = ram(&f, desc_addr(&f, RXQ, h), HDR + 100);

		CHECK_EQ_U64(p[0], 2); /* DATA_VALID */
		CHECK_EQ_U64(p[1], 0); /* GSO_NONE */
		CHECK_EQ_U64(p[10] | p[11] << 8, 1); /* num_buffers */
		CHECK(!memcmp(p + HDR, fr, 100));
	}
	h = vdrv_get_used(f.d, RXQ, &len);
	CHECK(h == heads[1]);
	CHECK_EQ_U64(len, HDR + 1514);
	if (h >= 0) {
		uint8_t *p = ram(&f, desc_addr(&f, RXQ, h), HDR + 1514);

		CHECK_EQ_U64(p[0], 0);
		CHECK(!memcmp(p + HDR, fr, 1514));
	}
	CHECK(vdrv_get_used(f.d, RXQ, &len) == heads[2]);
	CHECK_EQ_U64(len, HDR + 60);
	fix_fini(&f);
}

/* MRG_RXBUF: a frame spread over three 512-byte buffers */
static void test_rx_mergeable(void)
{
	struct fix f;
	uint8_t fr[1400], got[HDR + 1400];
	uint32_t len;
	int heads[4];
	size_t off = 0;

	CHECK(fix_init(&f, FULL_F, 64) == 0);
	for (int i = 0; i < 4; i++)
		heads[i] = post_rx(&f, 512);
	vdrv_kick(f.d, RXQ);
	make_frame(fr, sizeof(fr), 5);
	CHECK(net_backend_deliver(&f.fb->be, fr, sizeof(fr), 0) == 0);
	for (int i = 0; i < 3; i++) {
		int h = vdrv_get_used(f.d, RXQ, &len);

		CHECK(h == heads[i]);
		CHECK_EQ_U64(len, i < 2 ? 512 : HDR + 1400 - 1024);
		if (h < 0 || off + len > sizeof(got))
			break;
		memcpy(got + off, ram(&f, desc_addr(&f, RXQ, h), len), len);
		off += len;
	}
	CHECK_EQ_U64(off, sizeof(got));
	CHECK_EQ_U64(got[10] | got[11] << 8, 3); /* num_buffers */
	CHECK(!memcmp(got + HDR, fr, sizeof(fr)));
	CHECK(vdrv_get_used(f.d, RXQ, &len) == -1);
	/* a frame that needs more than what is posted (1 buffer left): the
	 * backend keeps it; the buffer stays */
	CHECK(net_backend_deliver(&f.fb->be, fr, sizeof(fr), 0) == -EAGAIN);
	CHECK(vdrv_get_used(f.d, RXQ, &len) == -1);
	/* two more buffers and a doorbell: the device resumes the backend */
	{
		unsigned r0 = f.fb->resumes;

		post_rx(&f, 512);
		post_rx(&f, 512);
		vdrv_kick(f.d, RXQ);
		CHECK_EQ_U64(f.fb->resumes, r0 + 1);
	}
	CHECK(net_backend_deliver(&f.fb->be, fr, sizeof(fr), 0) == 0);
	CHECK(vdrv_get_used(f.d, RXQ, &len) == heads[3]);
	fix_fini(&f);
}

/* without MRG_RXBUF: one buffer per frame; too small -> dropped, the
 * buffer kept; GUEST_CSUM not negotiated -> no DATA_VALID */
static void test_rx_no_mrg(void)
{
	struct fix f;
	uint8_t fr[1000];
	uint32_t len;
	int small, big, h;

	CHECK(fix_init(&f, FULL_F & ~(F(NET_F_MRG_RXBUF) | F(NET_F_GUEST_CSUM)), 64) == 0);
	small = post_rx(&f, 256);
	big = post_rx(&f, 1600);
	vdrv_kick(f.d, RXQ);
	make_frame(fr, sizeof(fr), 7);
	CHECK(net_backend_deliver(&f.fb->be, fr, sizeof(fr), NET_RX_CSUM_VALID) == 0);
	CHECK(vdrv_get_used(f.d, RXQ, &len) == -1); /* dropped */
	CHECK(net_backend_deliver(&f.fb->be, fr, 200, NET_RX_CSUM_VALID) == 0);
	h = vdrv_get_used(f.d, RXQ, &len);
	CHECK(h == small);
	CHECK_EQ_U64(len, HDR + 200);
	if (h >= 0) {
		uint8_t *p = ram(&f, desc_addr(&f, RXQ, h), HDR + 200);

		CHECK_EQ_U64(p[0], 0);
		CHECK_EQ_U64(p[10] | p[11] << 8, 1);
		CHECK(!memcmp(p + HDR, fr, 200));
	}
	CHECK(net_backend_deliver(&f.fb->be, fr, sizeof(fr), 0) == 0);
	CHECK(vdrv_get_used(f.d, RXQ, &len) == big);
	CHECK_EQ_U64(len, HDR + sizeof(fr));
	fix_fini(&f);
}

/* no buffers: -EAGAIN, the device asks for a doorbell; before DRIVER_OK
 * and after a reset, frames are dropped (0) */
static void test_rx_starved(void)
{
	struct fix f;
	uint8_t fr[100];
	uint32_t len;

	CHECK(fix_open(&f) == 0);
	make_frame(fr, sizeof(fr), 2);
	CHECK(net_backend_deliver(&f.fb->be, fr, sizeof(fr), 0) == 0); /* no driver */
	CHECK(fix_start(&f, FULL_F, 16) == 0);
	CHECK(net_backend_deliver(&f.fb->be, fr, sizeof(fr), 0) == -EAGAIN);
	CHECK(!vdrv_device_no_notify(f.d, RXQ));
	CHECK(vdrv_avail_event(f.d, RXQ) == vdrv_avail_idx(f.d, RXQ));
	{
		unsigned r0 = f.fb->resumes;
		int h = post_rx(&f, 256);

		vdrv_kick(f.d, RXQ);
		CHECK_EQ_U64(f.fb->resumes, r0 + 1);
		CHECK(net_backend_deliver(&f.fb->be, fr, sizeof(fr), 0) == 0);
		CHECK(vdrv_get_used(f.d, RXQ, &len) == h);
	}
	/* fill the whole ring, use it up: -EAGAIN again, no stall after */
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 16; i++)
			CHECK(post_rx(&f, 256) >= 0);
		vdrv_kick(f.d, RXQ);
		for (int i = 0; i < 16; i++)
			CHECK(net_backend_deliver(&f.fb->be, fr, sizeof(fr), 0) == 0);
		CHECK(net_backend_deliver(&f.fb->be, fr, sizeof(fr), 0) == -EAGAIN);
		for (int i = 0; i < 16; i++)
			CHECK(vdrv_get_used(f.d, RXQ, &len) >= 0);
	}
	vdrv_reset(f.d);
	CHECK(net_backend_deliver(&f.fb->be, fr, sizeof(fr), 0) == 0);
	fix_fini(&f);
}

/* a receive buffer the device cannot write, a transmit chain that loops:
 * NEEDS_RESET, the host carries on, a reset brings the device back */
static void test_malicious(void)
{
	struct fix f;
	uint8_t fr[100];
	uint32_t len;

	CHECK(fix_init(&f, FULL_F, 16) == 0);
	make_frame(fr, sizeof(fr), 4);
	{
		struct vdrv_buf b = { vbench_alloc(&f.b, 256, 16), 256, false };

		vdrv_add(f.d, RXQ, &b, 1, false);
		vdrv_kick(f.d, RXQ);
	}
	CHECK(net_backend_deliver(&f.fb->be, fr, sizeof(fr), 0) == 0);
	CHECK(vdrv_status(f.d) & VIRTIO_STATUS_NEEDS_RESET);
	CHECK(vdrv_get_used(f.d, RXQ, &len) == -1);
	/* broken: frames are dropped quietly */
	CHECK(net_backend_deliver(&f.fb->be, fr, sizeof(fr), 0) == 0);

	/* back to life */
	CHECK(fix_start(&f, FULL_F, 16) == 0);
	CHECK(!(vdrv_status(f.d) & VIRTIO_STATUS_NEEDS_RESET));
	{
		int h = post_rx(&f, 256);

		vdrv_kick(f.d, RXQ);
		CHECK(net_backend_deliver(&f.fb->be, fr, sizeof(fr), 0) == 0);
		CHECK(vdrv_get_used(f.d, RXQ, &len) == h);
	}
	/* a looping transmit chain */
	{
		uint64_t a = vbench_alloc(&f.b, 256, 16);

		vdrv_write_desc(f.d, TXQ, 0, a, 64, 1, 1);
		vdrv_write_desc(f.d, TXQ, 1, a, 64, 1, 0);
		vdrv_add_raw_head(f.d, TXQ, 0);
		vdrv_kick(f.d, TXQ);
	}
	CHECK(vdrv_status(f.d) & VIRTIO_STATUS_NEEDS_RESET);
	CHECK_EQ_U64(f.fb->sent, 0);
	/* a receive chain pointing outside RAM */
	CHECK(fix_start(&f, FULL_F, 16) == 0);
	{
		struct vdrv_buf b = { RAM - 16, 256, true };

		vdrv_add(f.d, RXQ, &b, 1, false);
		vdrv_kick(f.d, RXQ);
	}
	CHECK(net_backend_deliver(&f.fb->be, fr, sizeof(fr), 0) == 0);
	CHECK(vdrv_status(f.d) & VIRTIO_STATUS_NEEDS_RESET);
	/* a huge transmit length: refused by the ring (outside RAM) or dropped */
	CHECK(fix_start(&f, FULL_F, 16) == 0);
	{
		struct vdrv_buf b = { 1 << 20, 0xffffffffu, false };

		vdrv_add(f.d, TXQ, &b, 1, false);
		vdrv_kick(f.d, TXQ);
	}
	CHECK_EQ_U64(f.fb->sent, 0);
	/* an over-long frame within RAM (longer than a 64 KiB TSO frame and
	 * its headers): dropped, completed */
	CHECK(fix_start(&f, FULL_F, 16) == 0);
	{
		uint64_t a = vbench_alloc(&f.b, HDR + NET_FRAME_MAX + 257, 16);
		struct vdrv_buf b = { a, HDR + NET_FRAME_MAX + 257, false };
		int h = vdrv_add(f.d, TXQ, &b, 1, false);

		vdrv_kick(f.d, TXQ);
		CHECK(vdrv_get_used(f.d, TXQ, &len) == h);
		CHECK_EQ_U64(f.fb->sent, 0);
		CHECK(!(vdrv_status(f.d) & VIRTIO_STATUS_NEEDS_RESET));
	}
	fix_fini(&f);
}

/* the device on the real user-mode backend: an ARP request sent on the
 * transmit queue comes back as a reply in a receive buffer */
static void test_with_slirp(void)
{
	struct vbench b;
	struct ev_loop *loop = ev_loop_new();
	struct net_opts o;
	struct net_backend *be;
	struct virtio_dev *vd;
	struct vdrv *d;
	char err[256];
	uint8_t fr[64];
	size_t flen;
	uint32_t len;
	int rxh, h;

	CHECK(vbench_init(&b, RAM) == 0);
	b.env.loop = loop;
	CHECK(net_parse("user", 0, &o, err, sizeof(err)) == 0);
	be = net_backend_new(loop, &o, err, sizeof(err));
	CHECK(be != NULL);
	vd = virtio_net_new(&b.env, be, o.mac, err, sizeof(err));
	CHECK(vd != NULL);
	d = vbench_attach(&b, vd);
	CHECK(vdrv_negotiate(d, FULL_F) == 0);
	vdrv_msix_enable(d, true);
	CHECK(vdrv_queue_setup(d, RXQ, 64, RX_VEC) == 0);
	CHECK(vdrv_queue_setup(d, TXQ, 64, TX_VEC) == 0);
	vdrv_driver_ok(d);
	{
		struct vdrv_buf rb = { vbench_alloc(&b, 2048, 16), 2048, true };

		rxh = vdrv_add(d, RXQ, &rb, 1, false);
		vdrv_kick(d, RXQ);
	}
	flen = pk_arp_request(fr, o.mac, 0x0a00020f, 0x0a000202);
	{
		uint64_t a = vbench_alloc(&b, HDR + flen, 16);
		struct vdrv_buf tb = { a, (uint32_t)(HDR + flen), false };

		memset(mem_ram_ptr(b.mem, a, HDR), 0, HDR);
		memcpy(mem_ram_ptr(b.mem, a + HDR, flen), fr, flen);
		vdrv_add(d, TXQ, &tb, 1, false);
		vdrv_kick(d, TXQ);
	}
	h = vdrv_get_used(d, RXQ, &len);
	CHECK(h == rxh);
	CHECK(len >= HDR + 42);
	if (h >= 0) {
		struct vdrv_ring r = vdrv_queue_ring(d, RXQ);
		uint64_t ga;
		uint8_t *p;

		memcpy(&ga, mem_ram_ptr(b.mem, r.desc + 16 * (uint64_t)h, 8), 8);
		p = mem_ram_ptr(b.mem, ga, len);
		CHECK(!memcmp(p + HDR, o.mac, 6));
		CHECK(pk_get16(p + HDR + 12) == ETH_P_ARPT);
		CHECK(pk_get16(p + HDR + 14 + 6) == 2);
	}
	vbench_fini(&b);
	net_backend_free(be);
	ev_loop_free(loop);
}

int main(void)
{
	test_features_config();
	test_tx();
	test_tx_csum_gso();
	test_tx_backpressure();
	test_tx_tso();
	test_rx();
	test_rx_mergeable();
	test_rx_no_mrg();
	test_rx_starved();
	test_malicious();
	test_with_slirp();
	TEST_MAIN_END();
}

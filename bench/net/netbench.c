/*
 * bench/net: what the host side of networking costs without a guest.
 *
 *   netbench rx      virtio-net receive path: frames delivered by a fake
 *                    backend into a test driver's buffers (vdriver),
 *                    1514-byte frames, 256 per batch
 *   netbench tx      virtio-net transmit path: 1514-byte frames from the
 *                    test driver to a fake backend
 *   netbench slirp   user-mode TCP both ways (a host port forward in, a
 *                    connection to 10.0.2.2 out) with the host kernel
 *                    playing the guest behind a TAP interface, so that a
 *                    real TCP stack talks to slirp (root only; both
 *                    backends' frame paths are in the numbers)
 *
 * Prints one line per run: frames/s and MB/s.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/core.h"
#include "net/net.h"
#include "vdriver.h"
#include "virtio/virtio.h"
#include "net/netpkt.h"

#define F(b) (1ull << (b))
#define NET_FEATURES                                                                       \
	(F(VIRTIO_F_VERSION_1) | F(VIRTIO_F_EVENT_IDX) | F(0) | F(1) | F(5) | F(15) | F(16))
#define HDR 12

struct fake {
	struct net_backend be;
	uint64_t sent, bytes;
};

static int fake_send(struct net_backend *be, const void *frame, size_t len)
{
	struct fake *f = (struct fake *)be;

	(void)frame;
	f->sent++;
	f->bytes += len;
	return 0;
}

static void fake_rx_resume(struct net_backend *be)
{
	(void)be;
}

static void fake_free(struct net_backend *be)
{
	free(be);
}

static const struct net_backend_ops fake_ops = { "fake", fake_send, fake_rx_resume, fake_free };

static int device_bench(bool rx, unsigned seconds)
{
	struct vbench b;
	struct ev_loop *loop = ev_loop_new();
	struct fake *fb = calloc(1, sizeof(*fb));
	struct virtio_dev *vd;
	struct vdrv *d;
	char err[128];
	uint8_t frame[1514];
	uint64_t bufs[256], frames = 0, t0, t;
	unsigned q = rx ? 0 : 1;
	uint32_t len;

	if (vbench_init(&b, 64ull << 20))
		return 1;
	b.env.loop = loop;
	fb->be.ops = &fake_ops;
	vd = virtio_net_new(&b.env, &fb->be, (const uint8_t *)"\x52\x54\x00\x12\x34\x56", err,
			    sizeof(err));
	d = vd ? vbench_attach(&b, vd) : NULL;
	if (!d || vdrv_negotiate(d, NET_FEATURES) || vdrv_queue_setup(d, 0, 256, 0xffff) ||
	    vdrv_queue_setup(d, 1, 256, 0xffff)) {
		fprintf(stderr, "netbench: device setup failed\n");
		return 1;
	}
	vdrv_driver_ok(d);
	memset(frame, 0x5a, sizeof(frame));
	for (unsigned i = 0; i < 256; i++) {
		bufs[i] = vbench_alloc(&b, 2048, 64);
		if (!rx)
			memset(mem_ram_ptr(b.mem, bufs[i], HDR), 0, HDR);
	}
	t0 = clock_ns();
	do {
		for (unsigned i = 0; i < 256; i++) {
			struct vdrv_buf vb = { bufs[i], rx ? 2048 : HDR + 1514, rx };

			vdrv_add(d, q, &vb, 1, false);
		}
		vdrv_kick(d, q);
		if (rx)
			for (unsigned i = 0; i < 256; i++)
				if (net_backend_deliver(&fb->be, frame, sizeof(frame), 0))
					return 1;
		while (vdrv_get_used(d, q, &len) >= 0)
			frames++;
		ev_loop_run_once(loop, 0);
		t = clock_ns();
	} while (t - t0 < (uint64_t)seconds * 1000000000u);
	printf("virtio-net %s: %.0f frames/s, %.0f MB/s of 1514-byte frames\n", rx ? "rx" : "tx",
	       frames * 1e9 / (double)(t - t0), frames * 1514 * 1e3 / (double)(t - t0));
	vbench_fini(&b);
	free(fb);
	ev_loop_free(loop);
	return 0;
}

/* ------------------------------------------------------------------ */
/* User-mode networking with the host kernel playing the guest: slirp's
 * frames go to a TAP interface (10.0.2.15/24) and back, so a real TCP
 * stack talks to slirp.  Needs root (skipped otherwise). */

static struct net_backend *br_slirp, *br_tap;

static int br_to_tap(void *o, const void *f, size_t l, unsigned fl)
{
	(void)o;
	(void)fl;
	net_backend_send(br_tap, f, l);
	return 0;
}

static int br_to_slirp(void *o, const void *f, size_t l, unsigned fl)
{
	(void)o;
	(void)fl;
	net_backend_send(br_slirp, f, l);
	return 0;
}

static const struct net_frontend br_fe_slirp = { br_to_tap, NULL };
static const struct net_frontend br_fe_tap = { br_to_slirp, NULL };

struct sink {
	int listen_fd;
	volatile uint64_t got;
	volatile bool done;
};

static void *sink_thread(void *arg)
{
	struct sink *sk = arg;
	static char buf[1 << 16];
	int c = accept(sk->listen_fd, NULL, NULL);
	ssize_t n;

	while (c >= 0 && (n = read(c, buf, sizeof(buf))) > 0)
		sk->got += (uint64_t)n;
	if (c >= 0)
		close(c);
	sk->done = true;
	return NULL;
}

struct source {
	uint32_t src_ip; /* 0: any */
	uint16_t port;
	uint64_t total;
	volatile bool done;
};

static void *source_thread(void *arg)
{
	struct source *so = arg;
	static char buf[1 << 16];
	struct sockaddr_in a = { .sin_family = AF_INET };
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	uint64_t w = 0;

	memset(buf, 'x', sizeof(buf));
	if (so->src_ip) {
		a.sin_addr.s_addr = htonl(so->src_ip);
		bind(s, (struct sockaddr *)&a, sizeof(a));
	}
	a.sin_addr.s_addr = htonl(so->src_ip ? 0x0a000202 : INADDR_LOOPBACK);
	a.sin_port = htons(so->port);
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) == 0)
		while (w < so->total) {
			ssize_t n = write(s, buf, (size_t)MIN(so->total - w, sizeof(buf)));

			if (n <= 0)
				break;
			w += (uint64_t)n;
		}
	close(s);
	so->done = true;
	return NULL;
}

static int listen_on(uint32_t ip, uint16_t *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(ip) };
	socklen_t al = sizeof(a);
	int one = 1, s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	a.sin_port = htons(*port);
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) || listen(s, 1) ||
	    getsockname(s, (struct sockaddr *)&a, &al)) {
		close(s);
		return -1;
	}
	*port = ntohs(a.sin_port);
	return s;
}

/* Runs the loop until the sink has everything; MB/s or -1. */
static double pump(struct ev_loop *loop, struct sink *sk, uint64_t total)
{
	uint64_t t0 = clock_ns(), t;

	while (!sk->done && sk->got < total) {
		ev_loop_run_once(loop, 1000000u);
		if (clock_ns() - t0 > 60000000000ull)
			return -1;
	}
	t = clock_ns();
	return sk->got * 1e3 / (double)(t - t0);
}

static int slirp_tap_bench(unsigned mib)
{
	struct ev_loop *loop;
	struct net_opts o;
	char spec[128], cmd[256], err[256], ifname[16];
	uint16_t gport = 0, hport = 0;
	uint64_t total = (uint64_t)mib << 20;
	struct sink sk = { 0 };
	struct source so = { 0 };
	pthread_t ts, tc;
	double down, up;

	if (geteuid() != 0) {
		printf("user-mode TCP: skipped (needs root for the TAP interface that plays the guest)\n");
		return 0;
	}
	loop = ev_loop_new();
	snprintf(ifname, sizeof(ifname), "mqnb%u", (unsigned)getpid() % 100000);
	/* a free host port for the forward */
	{
		int t = listen_on(0x7f000001, &hport);

		close(t);
	}
	snprintf(spec, sizeof(spec), "user,hostfwd=tcp:127.0.0.1:%u-:5001", hport);
	if (net_parse(spec, 0, &o, err, sizeof(err)) ||
	    !(br_slirp = net_backend_new(loop, &o, err, sizeof(err)))) {
		fprintf(stderr, "netbench: %s\n", err);
		return 1;
	}
	snprintf(spec, sizeof(spec), "tap,ifname=%s", ifname);
	if (net_parse(spec, 0, &o, err, sizeof(err)) ||
	    !(br_tap = net_backend_new(loop, &o, err, sizeof(err)))) {
		printf("user-mode TCP: skipped (%s)\n", err);
		net_backend_free(br_slirp);
		return 0;
	}
	net_backend_attach(br_slirp, &br_fe_slirp, NULL);
	net_backend_attach(br_tap, &br_fe_tap, NULL);
	snprintf(cmd, sizeof(cmd),
		 "ip addr add 10.0.2.15/24 dev %s && ip link set %s up && "
		 "sysctl -qw net.ipv6.conf.%s.disable_ipv6=1",
		 ifname, ifname, ifname);
	if (system(cmd)) {
		printf("user-mode TCP: skipped (cannot configure %s)\n", ifname);
		return 0;
	}

	/* host -> guest: a host client writes into the port forward, the
	 * "guest" (kernel socket on 10.0.2.15:5001) reads */
	gport = 5001;
	sk.listen_fd = listen_on(0x0a00020f, &gport);
	so = (struct source){ .src_ip = 0, .port = hport, .total = total };
	pthread_create(&ts, NULL, sink_thread, &sk);
	pthread_create(&tc, NULL, source_thread, &so);
	down = pump(loop, &sk, total);
	pthread_join(tc, NULL);
	close(sk.listen_fd);
	pthread_join(ts, NULL);

	/* guest -> host: the "guest" connects from 10.0.2.15 to 10.0.2.2:P,
	 * which slirp turns into 127.0.0.1:P */
	memset(&sk, 0, sizeof(sk));
	hport = 0;
	sk.listen_fd = listen_on(0x7f000001, &hport);
	so = (struct source){ .src_ip = 0x0a00020f, .port = hport, .total = total };
	pthread_create(&ts, NULL, sink_thread, &sk);
	pthread_create(&tc, NULL, source_thread, &so);
	up = pump(loop, &sk, total);
	pthread_join(tc, NULL);
	close(sk.listen_fd);
	pthread_join(ts, NULL);

	printf("user-mode TCP through slirp, host kernel as the guest (TAP): %u MiB host->guest "
	       "%.0f MB/s, guest->host %.0f MB/s\n",
	       mib, down, up);
	net_backend_free(br_tap);
	net_backend_free(br_slirp);
	ev_loop_free(loop);
	return down < 0 || up < 0;
}

int main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "all";
	int r = 0;

	if (!strcmp(what, "rx") || !strcmp(what, "all"))
		r |= device_bench(true, 2);
	if (!strcmp(what, "tx") || !strcmp(what, "all"))
		r |= device_bench(false, 2);
	if (!strcmp(what, "slirp") || !strcmp(what, "all"))
		r |= slirp_tap_bench(argc > 2 ? (unsigned)atoi(argv[2]) : 256);
	return r;
}

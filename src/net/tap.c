/*
 * net: TAP backend (/dev/net/tun, IFF_TAP | IFF_NO_PI, with IFF_VNET_HDR
 * where the kernel has it).
 *
 * The vnet header (struct virtio_net_hdr, 10 bytes) rides in front of
 * every frame on the descriptor.  No offloads are enabled (TUNSETOFFLOAD
 * is never called), so the kernel sends whole frames with complete
 * checksums and expects the same; the header only carries "checksum
 * valid" hints to the guest today.  It is there so that checksum and
 * segmentation offloads can be switched on later without changing the
 * descriptor's format.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/core.h"
#include "net/net.h"

#define TAP_VNET_HDR_LEN 10
#define TAP_HDR_F_NEEDS_CSUM 1
#define TAP_HDR_F_DATA_VALID 2
#define TAP_RX_BUDGET 64 /* frames per wake-up before others get a turn */

struct net_tap {
	struct net_backend be;
	struct ev_loop *loop;
	int fd;
	size_t hdr_len; /* TAP_VNET_HDR_LEN or 0 */
	bool watching;
	bool rx_blocked; /* the frontend said -EAGAIN: held holds a frame */
	bool tx_blocked; /* a write said EAGAIN: watching POLLOUT */
	size_t held_len;
	unsigned held_flags;
	uint8_t *held;
	uint8_t *buf; /* hdr_len + NET_FRAME_MAX */
	uint64_t rx_errors, tx_errors;
};

static void tap_update_watch(struct net_tap *t)
{
	unsigned ev = (t->rx_blocked ? 0 : POLLIN) | (t->tx_blocked ? POLLOUT : 0);

	ev_loop_mod_fd(t->loop, t->fd, ev);
	/* we may run in a vCPU thread while the I/O thread polls the old set */
	ev_loop_wake(t->loop);
}

/* Hands one frame to the frontend; keeps it if the frontend is full. */
static bool tap_deliver(struct net_tap *t, uint8_t *frame, size_t len, unsigned flags)
{
	if (net_backend_deliver(&t->be, frame, len, flags) != -EAGAIN)
		return true;
	memcpy(t->held, frame, len);
	t->held_len = len;
	t->held_flags = flags;
	t->rx_blocked = true;
	tap_update_watch(t);
	return false;
}

static void tap_read_frames(struct net_tap *t)
{
	for (unsigned n = 0; n < TAP_RX_BUDGET && !t->rx_blocked; n++) {
		ssize_t r = read(t->fd, t->buf, t->hdr_len + NET_FRAME_MAX);
		unsigned flags = 0;
		uint8_t *frame = t->buf + t->hdr_len;
		size_t len;

		if (r < 0) {
			if (errno != EAGAIN && errno != EINTR && !t->rx_errors++)
				log_warn("tap %s: read: %s", t->be.ifname, strerror(errno));
			return;
		}
		if ((size_t)r < t->hdr_len + 14)
			continue;
		len = (size_t)r - t->hdr_len;
		if (t->hdr_len) {
			uint8_t hflags = t->buf[0];
			uint16_t csum_start = (uint16_t)(t->buf[6] | t->buf[7] << 8);
			uint16_t csum_offset = (uint16_t)(t->buf[8] | t->buf[9] << 8);

			if (hflags & TAP_HDR_F_NEEDS_CSUM) {
				/* not asked for (no offloads), but finish it rather
				 * than pass a half checksum on */
				if (net_csum_complete(frame, len, csum_start, csum_offset))
					continue;
				flags |= NET_RX_CSUM_VALID;
			} else if (hflags & TAP_HDR_F_DATA_VALID) {
				flags |= NET_RX_CSUM_VALID;
			}
		}
		if (!tap_deliver(t, frame, len, flags))
			return;
	}
}

static void tap_fd_ready(void *opaque, int fd, unsigned revents)
{
	struct net_tap *t = opaque;

	(void)fd;
	if ((revents & POLLOUT) && t->tx_blocked) {
		t->tx_blocked = false;
		tap_update_watch(t);
		if (t->be.fe && t->be.fe->tx_ready)
			t->be.fe->tx_ready(t->be.fe_opaque);
	}
	if ((revents & (POLLIN | POLLERR | POLLHUP)) && !t->rx_blocked)
		tap_read_frames(t);
}

static void tap_rx_resume(struct net_backend *be)
{
	struct net_tap *t = (struct net_tap *)be;

	if (!t->rx_blocked)
		return;
	if (net_backend_deliver(&t->be, t->held, t->held_len, t->held_flags) == -EAGAIN)
		return;
	t->rx_blocked = false;
	tap_update_watch(t);
}

static int tap_send(struct net_backend *be, const void *frame, size_t len)
{
	struct net_tap *t = (struct net_tap *)be;
	uint8_t hdr[TAP_VNET_HDR_LEN] = { 0 };
	struct iovec iov[2] = {
		{ .iov_base = hdr, .iov_len = t->hdr_len },
		{ .iov_base = (void *)frame, .iov_len = len },
	};
	ssize_t r;

	if (len < 14 || len > NET_FRAME_MAX)
		return 0;
	if (t->tx_blocked)
		return -EAGAIN;
	do {
		r = t->hdr_len ? writev(t->fd, iov, 2) : write(t->fd, frame, len);
	} while (r < 0 && errno == EINTR);
	if (r >= 0)
		return 0;
	if (errno == EAGAIN) {
		t->tx_blocked = true;
		tap_update_watch(t);
		return -EAGAIN;
	}
	/* EIO: the interface is down; like a cable pulled, the frame is lost */
	if (errno != EIO && !t->tx_errors++)
		log_warn("tap %s: write: %s", t->be.ifname, strerror(errno));
	return 0;
}

static void tap_free(struct net_backend *be)
{
	struct net_tap *t = (struct net_tap *)be;

	if (t->watching)
		ev_loop_del_fd(t->loop, t->fd);
	if (t->fd >= 0)
		close(t->fd);
	free(t->buf);
	free(t->held);
	free(t);
}

static const struct net_backend_ops net_tap_ops = {
	.kind = "tap",
	.send = tap_send,
	.rx_resume = tap_rx_resume,
	.free = tap_free,
};

struct net_backend *net_tap_new(struct ev_loop *loop, const struct net_opts *o, char *err,
				size_t err_len)
{
	struct net_tap *t = calloc(1, sizeof(*t));
	const char *name = o->ifname[0] ? o->ifname : "(any)";
	struct ifreq ifr;
	int r;

	if (!t) {
		snprintf(err, err_len, "tap: out of memory");
		return NULL;
	}
	t->be.ops = &net_tap_ops;
	t->loop = loop;
	t->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (t->fd < 0) {
		int e = errno;

		if (e == ENOENT || e == ENODEV || e == ENXIO)
			snprintf(err, err_len,
				 "tap %s: cannot open /dev/net/tun: %s: the kernel's tun module is "
				 "missing (try 'modprobe tun'; in a container, pass the device in)",
				 name, strerror(e));
		else
			snprintf(err, err_len,
				 "tap %s: cannot open /dev/net/tun: %s (run as root or give the user "
				 "read/write access to it)",
				 name, strerror(e));
		goto fail;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", o->ifname);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	r = ioctl(t->fd, TUNSETIFF, &ifr);
	if (r < 0 && errno == EINVAL) {
		/* a kernel or a persistent interface without vnet headers */
		ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
		r = ioctl(t->fd, TUNSETIFF, &ifr);
	} else if (r == 0) {
		t->hdr_len = TAP_VNET_HDR_LEN;
	}
	if (r < 0) {
		int e = errno;

		if (e == EPERM || e == EACCES)
			snprintf(err, err_len,
				 "tap %s: cannot create or attach the interface: %s: run as root, give "
				 "maquina CAP_NET_ADMIN, or create it for your user first with 'ip tuntap "
				 "add dev %s mode tap user $USER'",
				 name, strerror(e), o->ifname[0] ? o->ifname : "tap0");
		else if (e == EBUSY)
			snprintf(err, err_len,
				 "tap %s: the interface is in use by another process (or is not a "
				 "TAP device): pick another ifname",
				 name);
		else if (e == EINVAL)
			snprintf(err, err_len,
				 "tap %s: cannot create the interface: %s: an interface of that name "
				 "exists and is not a TAP device; pick another ifname",
				 name, strerror(e));
		else
			snprintf(err, err_len, "tap %s: cannot create the interface: %s", name,
				 strerror(e));
		goto fail;
	}
	snprintf(t->be.ifname, sizeof(t->be.ifname), "%s", ifr.ifr_name);
	t->buf = malloc(TAP_VNET_HDR_LEN + NET_FRAME_MAX);
	t->held = malloc(NET_FRAME_MAX);
	if (!t->buf || !t->held) {
		snprintf(err, err_len, "tap %s: out of memory", name);
		goto fail;
	}
	r = ev_loop_add_fd(loop, t->fd, POLLIN, tap_fd_ready, t);
	if (r) {
		snprintf(err, err_len, "tap %s: cannot watch the descriptor: %s", name, strerror(-r));
		goto fail;
	}
	t->watching = true;
	return &t->be;
fail:
	tap_free(&t->be);
	return NULL;
}

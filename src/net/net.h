/*
 * net: host network backends for the guest's NICs (virtio-net, later
 * others): user-mode networking on libslirp, and TAP.
 *
 * Shape:
 *
 *   NIC (frontend) ──net_backend_send(frame)──► backend ──► host network
 *        ▲                                          │
 *        └──── fe->receive(frame) ◄─────────────────┘ (from the event loop)
 *
 * Frames are plain Ethernet frames (destination MAC first, no FCS, no
 * virtio-net header).  Everything runs in the I/O thread's ev_loop, or in
 * a vCPU thread on a NIC's doorbell, always under the machine lock; no
 * function here blocks.
 *
 * Flow control, receive side: when the frontend has no buffers it answers
 * receive() with -EAGAIN.  The backend then keeps that frame and stops
 * taking more from the host (TAP: its descriptor watch is paused, the
 * kernel queues; user mode: a bounded queue, frames beyond it are dropped
 * and TCP retransmits) until the frontend calls net_backend_rx_resume().
 * Transmit side: net_backend_send() returns -EAGAIN when the host cannot
 * take the frame now (TAP's queue is full); the backend calls
 * fe->tx_ready() once it can, and the frontend sends the frame again.
 */
#ifndef MAQUINA_NET_H
#define MAQUINA_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ev_loop;

#define NET_FRAME_MAX 65536	/* largest frame a backend passes either way */
#define NET_HOSTFWD_MAX 16	/* port forwards per user-mode backend */
#define NET_IFNAME_MAX 16	/* IFNAMSIZ, with the NUL */

/* receive() flags */
#define NET_RX_CSUM_VALID 1u	/* the frame's L4 checksum is known good */

/* What a NIC gives its backend.  Called under the machine lock. */
struct net_frontend {
	/* A frame for the guest.  0: taken (copied) or dropped for good
	 * (the NIC is not running); -EAGAIN: no room now, the backend keeps
	 * the frame and waits for net_backend_rx_resume(). */
	int (*receive)(void *opaque, const void *frame, size_t len_bytes, unsigned flags);
	/* A send that returned -EAGAIN can be retried (NULL: never asked). */
	void (*tx_ready)(void *opaque);
};

struct net_backend;

/* What a backend type implements (see the net_backend_* wrappers). */
struct net_backend_ops {
	const char *kind; /* "user", "tap": for messages */
	int (*send)(struct net_backend *be, const void *frame, size_t len_bytes);
	void (*rx_resume)(struct net_backend *be);
	void (*free)(struct net_backend *be);
};

/* The common head of every backend (backends embed it first). */
struct net_backend {
	const struct net_backend_ops *ops;
	const struct net_frontend *fe;
	void *fe_opaque;
	char ifname[NET_IFNAME_MAX]; /* TAP: the interface's name */
};

/* ------------------------------------------------------------------ */
/* Options (--net)                                                     */

enum net_kind { NET_USER, NET_TAP };

/* A user-mode port forward: host_addr:host_port on the host reaches
 * guest_addr:guest_port in the guest.  Addresses in host byte order;
 * host_addr 0 is INADDR_ANY, guest_addr 0 the first DHCP address. */
struct net_hostfwd {
	bool udp;
	uint32_t host_addr;
	uint16_t host_port;
	uint32_t guest_addr;
	uint16_t guest_port;
};

struct net_opts {
	enum net_kind kind;
	uint8_t mac[6];
	/* user */
	uint32_t net_addr, net_mask; /* host byte order; default 10.0.2.0/24 */
	bool restricted;	     /* restrict=on: the guest reaches no host socket */
	unsigned nr_hostfwd;
	struct net_hostfwd hostfwd[NET_HOSTFWD_MAX];
	/* tap */
	char ifname[NET_IFNAME_MAX]; /* "" : the kernel picks tapN */
};

/*
 * Parses a --net value:
 *   user[,hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT]...
 *       [,net=A.B.C.D/PREFIX][,restrict=on|off][,mac=XX:XX:XX:XX:XX:XX]
 *   tap[,ifname=NAME][,mac=XX:XX:XX:XX:XX:XX]
 * index is the NIC's position on the command line: the default MAC is
 * 52:54:00:12:34:56 plus index.  In the user network (default
 * 10.0.2.0/24) the gateway/host is .2, DNS .3 and DHCP hands out .15 on.
 * Returns 0, or -EINVAL with a message in err.
 */
int net_parse(const char *spec, unsigned index, struct net_opts *o, char *err, size_t err_len);

/* The addresses of o's user network (host byte order). */
uint32_t net_user_host_addr(const struct net_opts *o);	/* .2 */
uint32_t net_user_dns_addr(const struct net_opts *o);	/* .3 */
uint32_t net_user_dhcp_addr(const struct net_opts *o);	/* .15 */

/* ------------------------------------------------------------------ */
/* Backends                                                            */

/*
 * Makes the backend o describes, watched by loop.  User mode: a slirp
 * stack with o's port forwards bound (a host port in use is an error).
 * TAP: /dev/net/tun opened non-blocking as o->ifname (IFF_TAP, IFF_NO_PI,
 * IFF_VNET_HDR where the kernel has it); the interface is not configured
 * (bring it up, bridge it or address it on the host).  NULL with a
 * message in err.
 */
struct net_backend *net_backend_new(struct ev_loop *loop, const struct net_opts *o, char *err,
				    size_t err_len);

/* Connects the NIC that receives be's frames (fe NULL detaches: frames
 * are then dropped).  fe must outlive the attachment. */
void net_backend_attach(struct net_backend *be, const struct net_frontend *fe, void *opaque);

/* Sends one frame to the host network.  0 (sent, or dropped as a wire
 * would: malformed, too long), -EAGAIN (full: wait for fe->tx_ready), or
 * another -errno (the frame is lost). */
int net_backend_send(struct net_backend *be, const void *frame, size_t len_bytes);

/* The frontend has room again: the backend hands it the frames it kept
 * (until receive() says -EAGAIN again) and resumes reading. */
void net_backend_rx_resume(struct net_backend *be);

/* Closes the backend (its host sockets, its interface).  NULL is a no-op. */
void net_backend_free(struct net_backend *be);

/* The interface name a TAP backend got ("" for other kinds). */
const char *net_backend_ifname(const struct net_backend *be);

/* Backends' constructors (net_backend_new picks one). */
struct net_backend *net_slirp_new(struct ev_loop *loop, const struct net_opts *o, char *err,
				  size_t err_len);
struct net_backend *net_tap_new(struct ev_loop *loop, const struct net_opts *o, char *err,
				size_t err_len);

/*
 * Finishes a partial checksum (virtio's NEEDS_CSUM, Linux's
 * CHECKSUM_PARTIAL): the ones' complement sum of frame[csum_start, len),
 * whose 16-bit field at csum_start + csum_offset holds the pseudo-header
 * sum, is folded, complemented and stored in that field (0 becomes
 * 0xffff).  -EINVAL if the field lies outside the frame.
 */
int net_csum_complete(uint8_t *frame, size_t len_bytes, size_t csum_start, size_t csum_offset);

/*
 * Software TCP segmentation of an Ethernet (optionally one 802.1Q tag) /
 * IPv4 / TCP frame whose payload exceeds mss bytes (a NIC's TSO): calls
 * emit once per segment of at most mss payload bytes, in order, each a
 * complete frame built in seg_buf (which must hold the headers + mss):
 * IPv4 total length, id (+1 per segment) and header checksum, TCP sequence
 * number, flags (FIN and PSH on the last segment only, CWR on the first
 * only) and checksum computed afresh.  A payload of at most mss bytes is
 * one segment (checksums still computed).  Returns 0, -EINVAL if the frame
 * is not such a frame (other protocols, IP fragments, options past the
 * end, mss 0, seg_buf too small), or the first non-zero value emit
 * returned (the segments before it were emitted).
 */
typedef int net_emit_fn(void *opaque, const uint8_t *frame, size_t len_bytes);
int net_tso4_segment(const uint8_t *frame, size_t len_bytes, unsigned mss, uint8_t *seg_buf,
		     size_t seg_buf_len, net_emit_fn *emit, void *opaque);

/* For backends: hands one frame to the attached frontend (0 if none). */
int net_backend_deliver(struct net_backend *be, const void *frame, size_t len_bytes,
			unsigned flags);

#endif

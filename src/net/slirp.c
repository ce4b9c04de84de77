/*
 * net: user-mode networking on libslirp (4.7 API).
 *
 * libslirp is a whole TCP/IP stack that terminates the guest's
 * connections in host sockets.  It asks its application for three things,
 * all provided here on top of the I/O thread's ev_loop:
 *   - which descriptors to watch (slirp_pollfds_fill, after every call
 *     into slirp: "resync" below diffs that list against the loop's
 *     watches), and what happened to them (slirp_pollfds_poll, run from
 *     each ready descriptor's callback with that descriptor's events);
 *   - a timeout for its TCP timers (an ev_timer that runs
 *     slirp_pollfds_poll with no events) and a few timers of its own
 *     (timer_new_opaque -> ev_timer -> slirp_handle_timer);
 *   - a way to hand frames to the guest (send_packet -> the frontend,
 *     with a bounded queue while the frontend has no buffers).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <slirp/libslirp.h>

#include "core/core.h"
#include "net/net.h"

#define SLIRP_RXQ_MAX_FRAMES 256
#define SLIRP_RXQ_MAX_BYTES (1u << 20)

struct slirp_frame {
	struct slirp_frame *next;
	size_t len;
	uint8_t data[];
};

struct slirp_pollent {
	int fd;
	unsigned events; /* poll(2) bits */
};

struct slirp_timer {
	struct net_slirp *ns;
	struct ev_timer *t;
	SlirpTimerId id;
	void *cb_opaque;
};

struct net_slirp {
	struct net_backend be;
	struct ev_loop *loop;
	Slirp *slirp;
	struct ev_timer *poll_timer;
	uint64_t poll_deadline_ns; /* UINT64_MAX: disarmed */

	/* what the last slirp_pollfds_fill asked for (index = slirp's idx) */
	struct slirp_pollent *pfds;
	size_t nr_pfds, cap_pfds;
	/* what is registered with the loop */
	struct slirp_pollent *watches;
	size_t nr_watches, cap_watches;

	/* during slirp_pollfds_poll from a descriptor's callback */
	int cur_fd;
	unsigned cur_revents;
	unsigned depth; /* nested calls into slirp: resync at the outermost */

	/* frames for the guest while the frontend is full */
	struct slirp_frame *q_head, **q_tail;
	unsigned q_frames;
	size_t q_bytes;
	bool rx_blocked;
	uint64_t rx_dropped;
};

static void ns_resync(struct net_slirp *ns);

static unsigned slirp_to_poll(int ev)
{
	unsigned p = 0;

	if (ev & SLIRP_POLL_IN)
		p |= POLLIN;
	if (ev & SLIRP_POLL_OUT)
		p |= POLLOUT;
	if (ev & SLIRP_POLL_PRI)
		p |= POLLPRI;
	return p;
}

static int poll_to_slirp(unsigned p)
{
	int ev = 0;

	if (p & POLLIN)
		ev |= SLIRP_POLL_IN;
	if (p & POLLOUT)
		ev |= SLIRP_POLL_OUT;
	if (p & POLLPRI)
		ev |= SLIRP_POLL_PRI;
	if (p & (POLLERR | POLLNVAL))
		ev |= SLIRP_POLL_ERR;
	if (p & POLLHUP)
		ev |= SLIRP_POLL_HUP;
	return ev;
}

/* ------------------------------------------------------------------ */
/* Frames to the guest                                                  */

static void q_push(struct net_slirp *ns, const void *buf, size_t len)
{
	struct slirp_frame *f;

	if (ns->q_frames >= SLIRP_RXQ_MAX_FRAMES || ns->q_bytes + len > SLIRP_RXQ_MAX_BYTES) {
		ns->rx_dropped++;
		return;
	}
	f = malloc(sizeof(*f) + len);
	if (!f) {
		ns->rx_dropped++;
		return;
	}
	f->next = NULL;
	f->len = len;
	memcpy(f->data, buf, len);
	*ns->q_tail = f;
	ns->q_tail = &f->next;
	ns->q_frames++;
	ns->q_bytes += len;
}

static void q_pop(struct net_slirp *ns)
{
	struct slirp_frame *f = ns->q_head;

	ns->q_head = f->next;
	if (!ns->q_head)
		ns->q_tail = &ns->q_head;
	ns->q_frames--;
	ns->q_bytes -= f->len;
	free(f);
}

static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
	struct net_slirp *ns = opaque;

	if (len > NET_FRAME_MAX)
		return (ssize_t)len;
	if (ns->rx_blocked || ns->q_head) {
		q_push(ns, buf, len);
		return (ssize_t)len;
	}
	/* slirp computes every checksum of the frames it builds */
	if (net_backend_deliver(&ns->be, buf, len, NET_RX_CSUM_VALID) == -EAGAIN) {
		ns->rx_blocked = true;
		q_push(ns, buf, len);
	}
	return (ssize_t)len;
}

static void ns_rx_resume(struct net_backend *be)
{
	struct net_slirp *ns = (struct net_slirp *)be;

	ns->rx_blocked = false;
	while (ns->q_head) {
		if (net_backend_deliver(&ns->be, ns->q_head->data, ns->q_head->len,
					NET_RX_CSUM_VALID) == -EAGAIN) {
			ns->rx_blocked = true;
			return;
		}
		q_pop(ns);
	}
}

/* ------------------------------------------------------------------ */
/* Callbacks from slirp                                                 */

static void cb_guest_error(const char *msg, void *opaque)
{
	(void)opaque;
	log_debug("user network: guest error: %s", msg);
}

static int64_t cb_clock_get_ns(void *opaque)
{
	(void)opaque;
	return (int64_t)clock_ns();
}

static void slirp_timer_fire(void *opaque)
{
	struct slirp_timer *st = opaque;
	struct net_slirp *ns = st->ns;

	ns->depth++;
	slirp_handle_timer(ns->slirp, st->id, st->cb_opaque);
	ns->depth--;
	ns_resync(ns);
}

static void *cb_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
	struct net_slirp *ns = opaque;
	struct slirp_timer *st = calloc(1, sizeof(*st));

	if (!st)
		return NULL;
	st->ns = ns;
	st->id = id;
	st->cb_opaque = cb_opaque;
	st->t = ev_timer_new(ns->loop, slirp_timer_fire, st);
	if (!st->t) {
		free(st);
		return NULL;
	}
	return st;
}

static void cb_timer_free(void *timer, void *opaque)
{
	struct slirp_timer *st = timer;

	(void)opaque;
	if (!st)
		return;
	ev_timer_free(st->t);
	free(st);
}

static void cb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	struct slirp_timer *st = timer;

	(void)opaque;
	if (!st)
		return;
	ev_timer_mod(st->t, expire_ms < 0 ? 0 : (uint64_t)expire_ms * 1000000u);
	ev_loop_wake(st->ns->loop);
}

static void cb_register_poll_fd(int fd, void *opaque)
{
	(void)fd;
	(void)opaque; /* descriptors are found by slirp_pollfds_fill */
}

static void cb_unregister_poll_fd(int fd, void *opaque)
{
	(void)fd;
	(void)opaque;
}

static void cb_notify(void *opaque)
{
	struct net_slirp *ns = opaque;

	ev_loop_wake(ns->loop);
}

static const SlirpCb ns_callbacks = {
	.send_packet = cb_send_packet,
	.guest_error = cb_guest_error,
	.clock_get_ns = cb_clock_get_ns,
	.timer_free = cb_timer_free,
	.timer_mod = cb_timer_mod,
	.register_poll_fd = cb_register_poll_fd,
	.unregister_poll_fd = cb_unregister_poll_fd,
	.notify = cb_notify,
	.timer_new_opaque = cb_timer_new_opaque,
};

/* ------------------------------------------------------------------ */
/* Descriptors and the poll timeout                                     */

static int cb_add_poll(int fd, int events, void *opaque)
{
	struct net_slirp *ns = opaque;

	if (ns->nr_pfds == ns->cap_pfds) {
		size_t cap = ns->cap_pfds ? ns->cap_pfds * 2 : 16;
		struct slirp_pollent *p = realloc(ns->pfds, cap * sizeof(*p));

		if (!p)
			return -1; /* slirp then does not poll this socket */
		ns->pfds = p;
		ns->cap_pfds = cap;
	}
	ns->pfds[ns->nr_pfds].fd = fd;
	ns->pfds[ns->nr_pfds].events = slirp_to_poll(events);
	return (int)ns->nr_pfds++;
}

static int cb_get_revents(int idx, void *opaque)
{
	struct net_slirp *ns = opaque;

	if (idx < 0 || (size_t)idx >= ns->nr_pfds || ns->pfds[idx].fd != ns->cur_fd)
		return 0;
	return poll_to_slirp(ns->cur_revents);
}

static void ns_fd_ready(void *opaque, int fd, unsigned revents)
{
	struct net_slirp *ns = opaque;

	ns->cur_fd = fd;
	ns->cur_revents = revents;
	ns->depth++;
	slirp_pollfds_poll(ns->slirp, 0, cb_get_revents, ns);
	ns->depth--;
	ns->cur_fd = -1;
	ns->cur_revents = 0;
	ns_resync(ns);
}

static void ns_poll_timeout(void *opaque)
{
	struct net_slirp *ns = opaque;

	ns->cur_fd = -1;
	ns->poll_deadline_ns = UINT64_MAX;
	ns->depth++;
	slirp_pollfds_poll(ns->slirp, 0, cb_get_revents, ns);
	ns->depth--;
	ns_resync(ns);
}

static bool watches_add(struct net_slirp *ns, int fd, unsigned events)
{
	if (ns->nr_watches == ns->cap_watches) {
		size_t cap = ns->cap_watches ? ns->cap_watches * 2 : 16;
		struct slirp_pollent *p = realloc(ns->watches, cap * sizeof(*p));

		if (!p)
			return false;
		ns->watches = p;
		ns->cap_watches = cap;
	}
	ns->watches[ns->nr_watches].fd = fd;
	ns->watches[ns->nr_watches].events = events;
	ns->nr_watches++;
	return true;
}

/*
 * Asks slirp which descriptors it wants watched and for how long it may
 * sleep, and makes the loop's watches and poll_timer say the same.  Runs
 * after every call into slirp (at the outermost level).
 */
static void ns_resync(struct net_slirp *ns)
{
	uint32_t timeout_ms = UINT32_MAX;
	uint64_t deadline;
	bool changed = false;
	size_t i, j;

	if (ns->depth)
		return;
	ns->nr_pfds = 0;
	slirp_pollfds_fill(ns->slirp, &timeout_ms, cb_add_poll, ns);
	/* drop or change the watches slirp no longer asks for */
	for (i = 0; i < ns->nr_watches;) {
		unsigned want = 0;
		bool found = false;

		for (j = 0; j < ns->nr_pfds; j++) {
			if (ns->pfds[j].fd == ns->watches[i].fd) {
				want |= ns->pfds[j].events;
				found = true;
			}
		}
		if (!found) {
			ev_loop_del_fd(ns->loop, ns->watches[i].fd);
			ns->watches[i] = ns->watches[--ns->nr_watches];
			changed = true;
			continue;
		}
		if (want != ns->watches[i].events) {
			ev_loop_mod_fd(ns->loop, ns->watches[i].fd, want);
			ns->watches[i].events = want;
			changed = true;
		}
		i++;
	}
	/* add the new ones */
	for (j = 0; j < ns->nr_pfds; j++) {
		bool found = false;

		for (i = 0; i < ns->nr_watches; i++) {
			if (ns->watches[i].fd == ns->pfds[j].fd) {
				found = true;
				break;
			}
		}
		if (found)
			continue;
		if (!watches_add(ns, ns->pfds[j].fd, ns->pfds[j].events))
			continue; /* out of memory: slirp's timers still poll it */
		if (ev_loop_add_fd(ns->loop, ns->pfds[j].fd, ns->pfds[j].events, ns_fd_ready, ns)) {
			ns->nr_watches--;
			continue;
		}
		/* a later duplicate of this fd is merged by the loop above */
		for (i = j + 1; i < ns->nr_pfds; i++)
			if (ns->pfds[i].fd == ns->pfds[j].fd)
				ns->watches[ns->nr_watches - 1].events |= ns->pfds[i].events;
		if (ns->watches[ns->nr_watches - 1].events != ns->pfds[j].events)
			ev_loop_mod_fd(ns->loop, ns->pfds[j].fd,
				       ns->watches[ns->nr_watches - 1].events);
		changed = true;
	}
	deadline = timeout_ms == UINT32_MAX ? UINT64_MAX
					    : clock_ns() + (uint64_t)timeout_ms * 1000000u;
	ev_timer_mod(ns->poll_timer, deadline);
	/* the I/O thread may sleep in poll() on the old set or an older
	 * deadline (we may be in a vCPU thread, sending a frame) */
	if (changed || deadline < ns->poll_deadline_ns)
		ev_loop_wake(ns->loop);
	ns->poll_deadline_ns = deadline;
}

/* ------------------------------------------------------------------ */
/* The backend                                                          */

static int ns_send(struct net_backend *be, const void *frame, size_t len)
{
	struct net_slirp *ns = (struct net_slirp *)be;

	if (len < 14 || len > NET_FRAME_MAX)
		return 0; /* a wire drops it */
	ns->depth++;
	slirp_input(ns->slirp, frame, (int)len);
	ns->depth--;
	ns_resync(ns);
	return 0;
}

static void ns_free(struct net_backend *be)
{
	struct net_slirp *ns = (struct net_slirp *)be;
	size_t i;

	for (i = 0; i < ns->nr_watches; i++)
		ev_loop_del_fd(ns->loop, ns->watches[i].fd);
	if (ns->slirp)
		slirp_cleanup(ns->slirp);
	if (ns->poll_timer)
		ev_timer_free(ns->poll_timer);
	while (ns->q_head)
		q_pop(ns);
	free(ns->pfds);
	free(ns->watches);
	free(ns);
}

static const struct net_backend_ops net_slirp_ops = {
	.kind = "user",
	.send = ns_send,
	.rx_resume = ns_rx_resume,
	.free = ns_free,
};

static struct in_addr in4(uint32_t host_order)
{
	struct in_addr a = { .s_addr = htonl(host_order) };

	return a;
}

struct net_backend *net_slirp_new(struct ev_loop *loop, const struct net_opts *o, char *err,
				  size_t err_len)
{
	struct net_slirp *ns = calloc(1, sizeof(*ns));
	SlirpConfig cfg;
	unsigned i;

	if (!ns) {
		snprintf(err, err_len, "user network: out of memory");
		return NULL;
	}
	ns->be.ops = &net_slirp_ops;
	ns->loop = loop;
	ns->cur_fd = -1;
	ns->q_tail = &ns->q_head;
	ns->poll_deadline_ns = UINT64_MAX;
	ns->poll_timer = ev_timer_new(loop, ns_poll_timeout, ns);
	if (!ns->poll_timer) {
		snprintf(err, err_len, "user network: out of memory");
		goto fail;
	}

	memset(&cfg, 0, sizeof(cfg));
	cfg.version = 4;
	cfg.restricted = o->restricted;
	cfg.in_enabled = true;
	cfg.vnetwork = in4(o->net_addr);
	cfg.vnetmask = in4(o->net_mask);
	cfg.vhost = in4(net_user_host_addr(o));
	cfg.in6_enabled = false;
	cfg.vdhcp_start = in4(net_user_dhcp_addr(o));
	cfg.vnameserver = in4(net_user_dns_addr(o));
	cfg.vhostname = NULL;
	ns->slirp = slirp_new(&cfg, &ns_callbacks, ns);
	if (!ns->slirp) {
		snprintf(err, err_len, "user network: libslirp refused its configuration");
		goto fail;
	}
	for (i = 0; i < o->nr_hostfwd; i++) {
		const struct net_hostfwd *f = &o->hostfwd[i];
		uint32_t g = f->guest_addr ? f->guest_addr : net_user_dhcp_addr(o);

		errno = 0;
		if (slirp_add_hostfwd(ns->slirp, f->udp, in4(f->host_addr), f->host_port, in4(g),
				      f->guest_port) < 0) {
			int e = errno;

			snprintf(err, err_len,
				 "user network: cannot forward host %s port %u.%u.%u.%u:%u to the guest's "
				 "port %u: %s%s",
				 f->udp ? "UDP" : "TCP", f->host_addr >> 24, f->host_addr >> 16 & 0xff,
				 f->host_addr >> 8 & 0xff, f->host_addr & 0xff, f->host_port,
				 f->guest_port, e ? strerror(e) : "the address is in use",
				 e == EADDRNOTAVAIL ? " (no interface of this host has that address)"
				 : e == EACCES	    ? " (ports below 1024 need root or "
						      "CAP_NET_BIND_SERVICE)"
						    : "; pick another host port or stop what listens there");
			goto fail;
		}
	}
	ns_resync(ns);
	return &ns->be;
fail:
	ns_free(&ns->be);
	return NULL;
}

/*
 * net: the user-mode (libslirp) backend driven directly: frames in
 * through net_backend_send, frames out through a recording frontend, the
 * host side through real sockets on 127.0.0.1 and the core event loop.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netpkt.h"
#include "test.h"

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
static const uint8_t slirp_mac[6] = { 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02 };
#define GUEST_IP 0x0a00020f
#define HOST_IP 0x0a000202

static char err[512];

static struct net_backend *make(struct ev_loop *loop, const char *spec, struct rec *r)
{
	struct net_opts o;
	struct net_backend *be;

	if (net_parse(spec, 0, &o, err, sizeof(err))) {
		fprintf(stderr, "parse %s: %s\n", spec, err);
		return NULL;
	}
	be = net_backend_new(loop, &o, err, sizeof(err));
	if (!be) {
		fprintf(stderr, "backend %s: %s\n", spec, err);
		return NULL;
	}
	net_backend_attach(be, &rec_frontend, r);
	return be;
}

/* Runs the loop until r has more than n frames or timeout_ms passes. */
static bool run_until_frames(struct ev_loop *loop, struct rec *r, unsigned n, unsigned timeout_ms)
{
	uint64_t end = clock_ns() + (uint64_t)timeout_ms * 1000000u;

	while (r->n <= n && clock_ns() < end)
		ev_loop_run_once(loop, 10 * 1000000u);
	return r->n > n;
}

/* The first recorded frame from index from that matches pred. */
static int find_frame(struct rec *r, unsigned from, bool (*pred)(const struct pk_info *, void *),
		      void *arg)
{
	for (unsigned i = from; i < r->n; i++) {
		struct pk_info pi;

		if (pk_parse(r->frame[i], r->len[i], &pi) && pred(&pi, arg))
			return (int)i;
	}
	return -1;
}

static void arp_for_host(struct net_backend *be)
{
	uint8_t f[64];
	size_t len = pk_arp_request(f, guest_mac, GUEST_IP, HOST_IP);

	CHECK(net_backend_send(be, f, len) == 0);
}

static void test_arp(struct ev_loop *loop)
{
	struct rec r = { 0 };
	struct net_backend *be = make(loop, "user", &r);
	const uint8_t *a;

	CHECK(be != NULL);
	if (!be)
		return;
	arp_for_host(be);
	/* slirp answers from within slirp_input */
	CHECK(r.n == 1);
	if (r.n >= 1) {
		CHECK(r.len[0] >= 42);
		CHECK(!memcmp(r.frame[0], guest_mac, 6));
		CHECK(pk_get16(r.frame[0] + 12) == ETH_P_ARPT);
		a = r.frame[0] + 14;
		CHECK(pk_get16(a + 6) == 2); /* reply */
		CHECK(!memcmp(a + 8, slirp_mac, 6));
		CHECK(pk_get32(a + 14) == HOST_IP);
		CHECK(!memcmp(a + 18, guest_mac, 6));
		CHECK(pk_get32(a + 24) == GUEST_IP);
	}
	/* the DNS address answers too; a stranger does not */
	{
		uint8_t f[64];

		net_backend_send(be, f, pk_arp_request(f, guest_mac, GUEST_IP, 0x0a000203));
		CHECK(r.n == 2);
		net_backend_send(be, f, pk_arp_request(f, guest_mac, GUEST_IP, 0x0a000263));
		CHECK(r.n == 2);
	}
	/* runts and giants are dropped without a word */
	CHECK(net_backend_send(be, guest_mac, 6) == 0);
	{
		static uint8_t giant[NET_FRAME_MAX + 1];

		CHECK(net_backend_send(be, giant, sizeof(giant)) == 0);
	}
	CHECK(r.n == 2);
	net_backend_free(be);
	rec_clear(&r);
}

static size_t dhcp_frame(uint8_t *f, uint8_t type, uint32_t xid)
{
	uint8_t bootp[548] = { 0 };
	uint8_t *opt = bootp + 236;

	bootp[0] = 1; /* BOOTREQUEST */
	bootp[1] = 1;
	bootp[2] = 6;
	pk_put32(bootp + 4, xid);
	memcpy(bootp + 28, guest_mac, 6);
	pk_put32(opt, 0x63825363);
	opt[4] = 53;
	opt[5] = 1;
	opt[6] = type;
	opt[7] = 255;
	return pk_udp(f, bcast, guest_mac, 0, 68, 0xffffffff, 67, bootp, sizeof(bootp));
}

static bool is_dhcp_reply(const struct pk_info *pi, void *arg)
{
	(void)arg;
	return pi->proto == IPPROTO_UDP_ && pi->sport == 67 && pi->dport == 68 &&
	       pi->payload_len >= 240;
}

/* the DHCP message type option of a reply, 0 if none */
static unsigned dhcp_type(const struct pk_info *pi)
{
	const uint8_t *o = pi->payload + 240, *end = pi->payload + pi->payload_len;

	while (o + 2 <= end && o[0] != 255) {
		if (o[0] == 0) {
			o++;
			continue;
		}
		if (o[0] == 53 && o[1] == 1 && o + 3 <= end)
			return o[2];
		o += 2 + o[1];
	}
	return 0;
}

static void test_dhcp(struct ev_loop *loop)
{
	struct rec r = { 0 };
	struct net_backend *be = make(loop, "user", &r);
	uint8_t f[1024];
	struct pk_info pi;
	int i;

	CHECK(be != NULL);
	if (!be)
		return;
	CHECK(net_backend_send(be, f, dhcp_frame(f, 1, 0xdeadbeef)) == 0);
	run_until_frames(loop, &r, 0, 500);
	i = find_frame(&r, 0, is_dhcp_reply, NULL);
	CHECK(i >= 0);
	if (i >= 0) {
		pk_parse(r.frame[i], r.len[i], &pi);
		CHECK(pi.l4_csum_ok);
		CHECK(r.flags[i] & NET_RX_CSUM_VALID);
		CHECK(pi.saddr == HOST_IP);
		CHECK(pi.payload[0] == 2); /* BOOTREPLY */
		CHECK(pk_get32(pi.payload + 4) == 0xdeadbeef);
		CHECK(pk_get32(pi.payload + 16) == GUEST_IP); /* yiaddr */
		CHECK(dhcp_type(&pi) == 2);		    /* OFFER */
	}
	/* REQUEST -> ACK */
	rec_clear(&r);
	CHECK(net_backend_send(be, f, dhcp_frame(f, 3, 0xdeadbef0)) == 0);
	run_until_frames(loop, &r, 0, 500);
	i = find_frame(&r, 0, is_dhcp_reply, NULL);
	CHECK(i >= 0);
	if (i >= 0) {
		pk_parse(r.frame[i], r.len[i], &pi);
		CHECK(dhcp_type(&pi) == 5); /* ACK */
		CHECK(pk_get32(pi.payload + 16) == GUEST_IP);
	}
	net_backend_free(be);
	rec_clear(&r);
}

static int listen_loopback(uint16_t *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) || listen(s, 4) ||
	    getsockname(s, (struct sockaddr *)&a, &al)) {
		perror("listen");
		return -1;
	}
	*port = ntohs(a.sin_port);
	return s;
}

/* A free loopback port (released; a race with others is unlikely). */
static uint16_t free_port(int type)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int s = socket(AF_INET, type | SOCK_CLOEXEC, 0);
	uint16_t p = 0;

	if (s >= 0 && !bind(s, (struct sockaddr *)&a, sizeof(a)) &&
	    !getsockname(s, (struct sockaddr *)&a, &al))
		p = ntohs(a.sin_port);
	close(s);
	return p;
}

struct tcp_match {
	uint16_t sport, dport;
	uint8_t flags;
};

static bool is_tcp(const struct pk_info *pi, void *arg)
{
	struct tcp_match *m = arg;

	return pi->proto == IPPROTO_TCP_ && pi->sport == m->sport && pi->dport == m->dport &&
	       (pi->tcp_flags & m->flags) == m->flags;
}

static bool is_tcp_data(const struct pk_info *pi, void *arg)
{
	return is_tcp(pi, arg) && pi->payload_len > 0;
}

/* A guest connection to 10.0.2.2:port reaches a host listener on
 * 127.0.0.1:port; data flows both ways. */
static void test_tcp_outbound(struct ev_loop *loop)
{
	struct rec r = { 0 };
	struct net_backend *be = make(loop, "user", &r);
	uint16_t port = 0;
	int ls = listen_loopback(&port), cs = -1, i;
	uint8_t f[256];
	struct tcp_match m;
	struct pk_info pi;
	uint32_t gseq = 1000, hseq = 0;
	char buf[64];
	uint64_t end;

	CHECK(be != NULL && ls >= 0);
	if (!be || ls < 0)
		goto out;
	arp_for_host(be);
	rec_clear(&r);
	CHECK(net_backend_send(be, f, pk_tcp(f, slirp_mac, guest_mac, GUEST_IP, 40000, HOST_IP, port,
					     gseq, 0, TCPF_SYN, NULL, 0)) == 0);
	/* slirp connects (non-blocking) and answers SYN|ACK once the host
	 * accepted: through the loop */
	m = (struct tcp_match){ port, 40000, TCPF_SYN | TCPF_ACK };
	end = clock_ns() + 3000000000ull;
	while ((i = find_frame(&r, 0, is_tcp, &m)) < 0 && clock_ns() < end)
		ev_loop_run_once(loop, 10000000u);
	CHECK(i >= 0);
	if (i < 0)
		goto out;
	pk_parse(r.frame[i], r.len[i], &pi);
	CHECK(pi.ack == gseq + 1);
	CHECK(pi.l4_csum_ok);
	CHECK(pi.saddr == HOST_IP && pi.daddr == GUEST_IP);
	CHECK(!memcmp(r.frame[i], guest_mac, 6));
	hseq = pi.seq + 1;
	gseq++;
	cs = accept(ls, NULL, NULL);
	CHECK(cs >= 0);
	/* guest -> host */
	CHECK(net_backend_send(be, f, pk_tcp(f, slirp_mac, guest_mac, GUEST_IP, 40000, HOST_IP, port,
					     gseq, hseq, TCPF_ACK | TCPF_PSH, "hello", 5)) == 0);
	gseq += 5;
	{
		struct pollfd p = { .fd = cs, .events = POLLIN };
		ssize_t n = 0;

		end = clock_ns() + 3000000000ull;
		while (clock_ns() < end) {
			ev_loop_run_once(loop, 10000000u);
			if (poll(&p, 1, 0) == 1) {
				n = read(cs, buf, sizeof(buf));
				break;
			}
		}
		CHECK(n == 5 && !memcmp(buf, "hello", 5));
	}
	/* host -> guest */
	CHECK(write(cs, "world!", 6) == 6);
	m = (struct tcp_match){ port, 40000, TCPF_ACK };
	end = clock_ns() + 3000000000ull;
	while ((i = find_frame(&r, 0, is_tcp_data, &m)) < 0 && clock_ns() < end)
		ev_loop_run_once(loop, 10000000u);
	CHECK(i >= 0);
	if (i >= 0) {
		pk_parse(r.frame[i], r.len[i], &pi);
		CHECK(pi.payload_len == 6 && !memcmp(pi.payload, "world!", 6));
		CHECK(pi.seq == hseq);
		CHECK(pi.ack == gseq);
		CHECK(pi.l4_csum_ok);
	}
out:
	if (cs >= 0)
		close(cs);
	if (ls >= 0)
		close(ls);
	net_backend_free(be);
	rec_clear(&r);
}

static uint16_t free_port(int type);

/* restrict=on: the same SYN reaches nothing on the host; a port forward
 * into the guest still works. */
static void test_restricted(struct ev_loop *loop)
{
	struct rec r = { 0 };
	uint16_t fport = free_port(SOCK_STREAM);
	char spec[96];
	struct net_backend *be;
	uint16_t port = 0;
	int ls = listen_loopback(&port), cs;
	uint8_t f[256];
	struct tcp_match m;

	snprintf(spec, sizeof(spec), "user,restrict=on,hostfwd=tcp:127.0.0.1:%u-:22", fport);
	be = make(loop, spec, &r);

	CHECK(be != NULL && ls >= 0);
	if (!be || ls < 0)
		goto out;
	arp_for_host(be);
	rec_clear(&r);
	net_backend_send(be, f, pk_tcp(f, slirp_mac, guest_mac, GUEST_IP, 40001, HOST_IP, port, 1,
				       0, TCPF_SYN, NULL, 0));
	run_until_frames(loop, &r, 100, 300);
	m = (struct tcp_match){ port, 40001, TCPF_SYN | TCPF_ACK };
	CHECK(find_frame(&r, 0, is_tcp, &m) < 0);
	fcntl(ls, F_SETFL, O_NONBLOCK);
	cs = accept(ls, NULL, NULL);
	CHECK(cs < 0);
	if (cs >= 0)
		close(cs);
	/* the forward: a SYN to the guest's port 22 */
	{
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
					 .sin_port = htons(fport) };
		int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		uint64_t end = clock_ns() + 3000000000ull;
		int i = -1;

		rec_clear(&r);
		CHECK(connect(c, (struct sockaddr *)&a, sizeof(a)) == 0 || errno == EINPROGRESS);
		m = (struct tcp_match){ 0, 22, TCPF_SYN };
		while (i < 0 && clock_ns() < end) {
			ev_loop_run_once(loop, 10000000u);
			for (unsigned k = 0; k < r.n && i < 0; k++) {
				struct pk_info pi;

				if (pk_parse(r.frame[k], r.len[k], &pi) && pi.proto == IPPROTO_TCP_ &&
				    pi.dport == 22 && (pi.tcp_flags & TCPF_SYN) && pi.daddr == GUEST_IP)
					i = (int)k;
			}
		}
		CHECK(i >= 0);
		close(c);
	}
out:
	if (ls >= 0)
		close(ls);
	net_backend_free(be);
	rec_clear(&r);
}

/* hostfwd: a host connection to 127.0.0.1:P becomes a SYN to the guest's
 * port 22 (TCP), a host datagram to P becomes a datagram to port 53 (UDP);
 * a port in use is a clear error. */
static void test_hostfwd(struct ev_loop *loop)
{
	struct rec r = { 0 };
	uint16_t tport = free_port(SOCK_STREAM), uport = free_port(SOCK_DGRAM);
	char spec[128];
	struct net_backend *be;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int cs = -1, us = -1, i;
	struct tcp_match m;
	struct pk_info pi;
	uint64_t end;

	snprintf(spec, sizeof(spec), "user,hostfwd=tcp:127.0.0.1:%u-:22,hostfwd=udp::%u-:53",
		 tport, uport);
	be = make(loop, spec, &r);
	CHECK(be != NULL);
	if (!be)
		return;
	arp_for_host(be);
	rec_clear(&r);
	cs = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	a.sin_port = htons(tport);
	CHECK(connect(cs, (struct sockaddr *)&a, sizeof(a)) == 0 || errno == EINPROGRESS);
	m = (struct tcp_match){ 0, 22, TCPF_SYN };
	end = clock_ns() + 3000000000ull;
	while (clock_ns() < end) {
		ev_loop_run_once(loop, 10000000u);
		for (i = 0; i < (int)r.n; i++)
			if (pk_parse(r.frame[i], r.len[i], &pi) && pi.proto == IPPROTO_TCP_ &&
			    pi.dport == 22 && (pi.tcp_flags & TCPF_SYN))
				goto got_syn;
	}
	i = -1;
got_syn:
	(void)m;
	CHECK(i >= 0);
	if (i >= 0) {
		CHECK(pi.daddr == GUEST_IP);
		CHECK(pi.saddr == HOST_IP);
		CHECK(!(pi.tcp_flags & TCPF_ACK));
		CHECK(pi.l4_csum_ok);
	}

	/* UDP */
	rec_clear(&r);
	us = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	a.sin_port = htons(uport);
	CHECK(sendto(us, "ping", 4, 0, (struct sockaddr *)&a, sizeof(a)) == 4);
	end = clock_ns() + 3000000000ull;
	i = -1;
	while (i < 0 && clock_ns() < end) {
		ev_loop_run_once(loop, 10000000u);
		for (unsigned k = 0; k < r.n; k++)
			if (pk_parse(r.frame[k], r.len[k], &pi) && pi.proto == IPPROTO_UDP_ &&
			    pi.dport == 53) {
				i = (int)k;
				break;
			}
	}
	CHECK(i >= 0);
	if (i >= 0) {
		CHECK(pi.daddr == GUEST_IP);
		CHECK(pi.payload_len == 4 && !memcmp(pi.payload, "ping", 4));
	}

	/* the same TCP port again: in use */
	{
		struct net_opts o;
		struct net_backend *be2;

		snprintf(spec, sizeof(spec), "user,hostfwd=tcp:127.0.0.1:%u-:22", tport);
		CHECK(net_parse(spec, 0, &o, err, sizeof(err)) == 0);
		err[0] = 0;
		be2 = net_backend_new(loop, &o, err, sizeof(err));
		CHECK(be2 == NULL);
		CHECK(strstr(err, "cannot forward host TCP port 127.0.0.1:") != NULL);
		net_backend_free(be2);
	}
	if (cs >= 0)
		close(cs);
	if (us >= 0)
		close(us);
	net_backend_free(be);
	rec_clear(&r);
}

/* A frontend without buffers: frames wait in a bounded queue, in order,
 * and come out on rx_resume; beyond the bound they are dropped. */
static void test_flow_control(struct ev_loop *loop)
{
	struct rec r = { 0 };
	struct net_backend *be = make(loop, "user", &r);
	uint8_t f[64];
	unsigned i;

	CHECK(be != NULL);
	if (!be)
		return;
	r.refuse = -1;
	for (i = 0; i < 10; i++) {
		/* ARPs from different sender addresses: replies carry them */
		net_backend_send(be, f, pk_arp_request(f, guest_mac, GUEST_IP + i, HOST_IP));
	}
	CHECK(r.n == 0);
	CHECK(r.refused == 1); /* asked once, then queued without asking */
	r.refuse = 2;	       /* still full for two more tries */
	net_backend_rx_resume(be);
	CHECK(r.n == 0);
	net_backend_rx_resume(be);
	CHECK(r.n == 0);
	net_backend_rx_resume(be);
	CHECK(r.n == 10);
	for (i = 0; i < r.n; i++)
		CHECK(pk_get32(r.frame[i] + 14 + 24) == GUEST_IP + i);
	/* nothing kept: the next frame goes straight through */
	net_backend_send(be, f, pk_arp_request(f, guest_mac, GUEST_IP, HOST_IP));
	CHECK(r.n == 11);
	rec_clear(&r);

	/* the bound */
	r.refuse = -1;
	for (i = 0; i < 400; i++)
		net_backend_send(be, f, pk_arp_request(f, guest_mac, GUEST_IP, HOST_IP));
	r.refuse = 0;
	net_backend_rx_resume(be);
	CHECK(r.n == 256);
	net_backend_send(be, f, pk_arp_request(f, guest_mac, GUEST_IP, HOST_IP));
	CHECK(r.n == 257);
	/* detached: frames are dropped, nothing breaks */
	net_backend_attach(be, NULL, NULL);
	net_backend_send(be, f, pk_arp_request(f, guest_mac, GUEST_IP, HOST_IP));
	CHECK(r.n == 257);
	net_backend_free(be);
	rec_clear(&r);
}

/* Two stacks in one process stay apart. */
static void test_two(struct ev_loop *loop)
{
	struct rec r1 = { 0 }, r2 = { 0 };
	struct net_backend *a = make(loop, "user", &r1);
	struct net_backend *b = make(loop, "user,net=192.168.9.0/24", &r2);
	uint8_t f[64];

	CHECK(a && b);
	if (a && b) {
		net_backend_send(b, f, pk_arp_request(f, guest_mac, 0xc0a8090f, 0xc0a80902));
		CHECK(r1.n == 0 && r2.n == 1);
		net_backend_send(a, f, pk_arp_request(f, guest_mac, 0xc0a8090f, 0xc0a80902));
		CHECK(r1.n == 0);
	}
	net_backend_free(a);
	net_backend_free(b);
	rec_clear(&r1);
	rec_clear(&r2);
}

int main(void)
{
	struct ev_loop *loop = ev_loop_new();

	CHECK(loop != NULL);
	if (!loop)
		TEST_MAIN_END();
	test_arp(loop);
	test_dhcp(loop);
	test_tcp_outbound(loop);
	test_restricted(loop);
	test_hostfwd(loop);
	test_flow_control(loop);
	test_two(loop);
	ev_loop_free(loop);
	TEST_MAIN_END();
}

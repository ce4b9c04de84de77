/*
 * net: the TAP backend on a real interface that the test creates
 * (mqtapNNN, 192.168.77.1/24 on the host side, the "guest" is .2).
 * Needs root and /dev/net/tun: skipped (exit 77) otherwise, with a line
 * saying why.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netpkt.h"
#include "test.h"

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x77, 0x00, 0x02 };
#define HOST_IP 0xc0a84d01 /* 192.168.77.1 */
#define GUEST_IP 0xc0a84d02

static char err[512];

static int find_udp(struct rec *r, uint16_t dport, unsigned from)
{
	for (unsigned i = from; i < r->n; i++) {
		struct pk_info pi;

		if (pk_parse(r->frame[i], r->len[i], &pi) && pi.proto == IPPROTO_UDP_ &&
		    pi.dport == dport)
			return (int)i;
	}
	return -1;
}

static unsigned count_udp(struct rec *r, uint16_t dport)
{
	unsigned n = 0;

	for (unsigned i = 0; i < r->n; i++) {
		struct pk_info pi;

		if (pk_parse(r->frame[i], r->len[i], &pi) && pi.proto == IPPROTO_UDP_ &&
		    pi.dport == dport)
			n++;
	}
	return n;
}

static void run_ms(struct ev_loop *loop, unsigned ms)
{
	uint64_t end = clock_ns() + (uint64_t)ms * 1000000u;

	while (clock_ns() < end)
		ev_loop_run_once(loop, 5000000u);
}

int main(void)
{
	struct ev_loop *loop;
	struct net_opts o;
	struct net_backend *be;
	struct rec r = { 0 };
	char ifname[16], cmd[256];
	uint8_t f[256];
	int i, us;
	uint64_t end;
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct pk_info pi;

	if (geteuid() != 0) {
		printf("SKIP: the TAP test needs root (to create an interface)\n");
		return 77;
	}
	if (access("/dev/net/tun", R_OK | W_OK)) {
		printf("SKIP: /dev/net/tun is missing: %s\n", strerror(errno));
		return 77;
	}
	loop = ev_loop_new();
	snprintf(ifname, sizeof(ifname), "mqtap%u", (unsigned)getpid() % 100000);
	snprintf(cmd, sizeof(cmd), "tap,ifname=%s", ifname);
	CHECK(net_parse(cmd, 0, &o, err, sizeof(err)) == 0);
	be = net_backend_new(loop, &o, err, sizeof(err));
	if (!be && strstr(err, "not permitted")) {
		printf("SKIP: cannot create a TAP interface here: %s\n", err);
		return 77;
	}
	CHECK(be != NULL);
	if (!be) {
		fprintf(stderr, "%s\n", err);
		TEST_MAIN_END();
	}
	CHECK(!strcmp(net_backend_ifname(be), ifname));
	net_backend_attach(be, &rec_frontend, &r);
	snprintf(cmd, sizeof(cmd),
		 "ip addr add 192.168.77.1/24 dev %s && ip link set %s up && "
		 "sysctl -qw net.ipv6.conf.%s.disable_ipv6=1",
		 ifname, ifname, ifname);
	if (system(cmd) != 0) {
		printf("SKIP: cannot configure %s with ip(8)\n", ifname);
		net_backend_free(be);
		return 77;
	}

	/* a second open of the same name while we hold it: in use */
	{
		struct net_backend *be2 = net_backend_new(loop, &o, err, sizeof(err));

		CHECK(be2 == NULL);
		CHECK(strstr(err, ifname) != NULL);
		net_backend_free(be2);
	}
	/* an existing interface that is not a TAP */
	{
		struct net_opts lo;

		CHECK(net_parse("tap,ifname=lo", 0, &lo, err, sizeof(err)) == 0);
		CHECK(net_backend_new(loop, &lo, err, sizeof(err)) == NULL);
		CHECK(strstr(err, "tap lo:") != NULL);
	}

	/* guest -> host: an ARP request for the host's address is answered */
	CHECK(net_backend_send(be, f, pk_arp_request(f, guest_mac, GUEST_IP, HOST_IP)) == 0);
	end = clock_ns() + 3000000000ull;
	i = -1;
	while (i < 0 && clock_ns() < end) {
		ev_loop_run_once(loop, 10000000u);
		for (unsigned k = 0; k < r.n; k++)
			if (pk_get16(r.frame[k] + 12) == ETH_P_ARPT &&
			    pk_get16(r.frame[k] + 14 + 6) == 2 &&
			    pk_get32(r.frame[k] + 14 + 14) == HOST_IP) {
				i = (int)k;
				break;
			}
	}
	CHECK(i >= 0);
	if (i >= 0)
		CHECK(!memcmp(r.frame[i], guest_mac, 6));

	/* guest -> host: a UDP datagram to a host socket */
	us = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	a.sin_addr.s_addr = htonl(HOST_IP);
	a.sin_port = 0;
	CHECK(bind(us, (struct sockaddr *)&a, sizeof(a)) == 0);
	{
		socklen_t al = sizeof(a);
		char buf[64] = { 0 };
		struct timeval tv = { .tv_sec = 3 };
		ssize_t n;
		uint8_t host_mac[6];

		getsockname(us, (struct sockaddr *)&a, &al);
		memcpy(host_mac, i >= 0 ? r.frame[i] + 6 : guest_mac, 6);
		CHECK(net_backend_send(be, f, pk_udp(f, host_mac, guest_mac, GUEST_IP, 5000, HOST_IP,
						     ntohs(a.sin_port), "to host", 7)) == 0);
		setsockopt(us, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		n = recv(us, buf, sizeof(buf), 0);
		CHECK(n == 7 && !memcmp(buf, "to host", 7));
	}

	/* host -> guest: datagrams to .2:9999 arrive as frames */
	a.sin_addr.s_addr = htonl(GUEST_IP);
	a.sin_port = htons(9999);
	rec_clear(&r);
	CHECK(sendto(us, "one", 3, 0, (struct sockaddr *)&a, sizeof(a)) == 3);
	end = clock_ns() + 3000000000ull;
	while ((i = find_udp(&r, 9999, 0)) < 0 && clock_ns() < end)
		ev_loop_run_once(loop, 10000000u);
	CHECK(i >= 0);
	if (i >= 0) {
		pk_parse(r.frame[i], r.len[i], &pi);
		CHECK(pi.payload_len == 3 && !memcmp(pi.payload, "one", 3));
		CHECK(pi.l4_csum_ok);
		CHECK(!memcmp(r.frame[i], guest_mac, 6));
	}

	/* flow control: the frontend refuses one frame; the backend holds it
	 * and reads nothing more until rx_resume, then all arrive in order */
	rec_clear(&r);
	r.refuse = 1;
	CHECK(sendto(us, "two", 3, 0, (struct sockaddr *)&a, sizeof(a)) == 3);
	end = clock_ns() + 3000000000ull;
	while (!r.refused && clock_ns() < end)
		ev_loop_run_once(loop, 10000000u);
	CHECK(r.refused == 1);
	CHECK(sendto(us, "three", 5, 0, (struct sockaddr *)&a, sizeof(a)) == 5);
	CHECK(sendto(us, "four", 4, 0, (struct sockaddr *)&a, sizeof(a)) == 4);
	run_ms(loop, 100);
	CHECK(r.n == 0); /* paused: nothing read */
	net_backend_rx_resume(be);
	run_ms(loop, 100);
	CHECK(count_udp(&r, 9999) == 3);
	{
		static const char *want[3] = { "two", "three", "four" };
		unsigned k = 0;

		for (i = find_udp(&r, 9999, 0); i >= 0 && k < 3; i = find_udp(&r, 9999, (unsigned)i + 1), k++) {
			pk_parse(r.frame[i], r.len[i], &pi);
			CHECK(pi.payload_len == strlen(want[k]) &&
			      !memcmp(pi.payload, want[k], pi.payload_len));
		}
		CHECK(k == 3);
	}
	close(us);
	net_backend_free(be);
	rec_clear(&r);
	/* the interface was not persistent: it is gone */
	snprintf(cmd, sizeof(cmd), "ip link show %s >/dev/null 2>&1", ifname);
	CHECK(system(cmd) != 0);
	ev_loop_free(loop);
	TEST_MAIN_END();
}

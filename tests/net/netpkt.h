/*
 * Test helpers: build and pick apart Ethernet/ARP/IPv4/UDP/TCP frames,
 * and a frontend that records what a backend delivers.
 */
#ifndef MAQUINA_TESTS_NETPKT_H
#define MAQUINA_TESTS_NETPKT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "net/net.h"

#define ETH_P_IPV4 0x0800
#define ETH_P_ARPT 0x0806
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_PSH 0x08
#define TCPF_ACK 0x10

static inline void pk_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void pk_put32(uint8_t *p, uint32_t v)
{
	pk_put16(p, (uint16_t)(v >> 16));
	pk_put16(p + 2, (uint16_t)v);
}

static inline uint16_t pk_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t pk_get32(const uint8_t *p)
{
	return (uint32_t)pk_get16(p) << 16 | pk_get16(p + 2);
}

static inline uint32_t pk_sum(const uint8_t *p, size_t len, uint32_t sum)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (i < len)
		sum += (uint32_t)p[i] << 8;
	return sum;
}

static inline uint16_t pk_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static inline size_t pk_eth(uint8_t *f, const uint8_t dst[6], const uint8_t src[6], uint16_t type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	pk_put16(f + 12, type);
	return 14;
}

/* ARP request from (mac, sip) for tip. */
static inline size_t pk_arp_request(uint8_t *f, const uint8_t mac[6], uint32_t sip, uint32_t tip)
{
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	uint8_t *a = f + pk_eth(f, bcast, mac, ETH_P_ARPT);

	pk_put16(a, 1);
	pk_put16(a + 2, ETH_P_IPV4);
	a[4] = 6;
	a[5] = 4;
	pk_put16(a + 6, 1);
	memcpy(a + 8, mac, 6);
	pk_put32(a + 14, sip);
	memset(a + 18, 0, 6);
	pk_put32(a + 24, tip);
	memset(a + 28, 0, 14); /* pad to 60 bytes */
	return 60;
}

/* IPv4 header + payload of len bytes already at f + 34; returns frame length. */
static inline size_t pk_ipv4(uint8_t *f, const uint8_t dst[6], const uint8_t src[6], uint8_t proto,
			     uint32_t saddr, uint32_t daddr, size_t payload_len)
{
	uint8_t *ip = f + pk_eth(f, dst, src, ETH_P_IPV4);

	ip[0] = 0x45;
	ip[1] = 0;
	pk_put16(ip + 2, (uint16_t)(20 + payload_len));
	pk_put16(ip + 4, 0x1234);
	pk_put16(ip + 6, 0x4000); /* DF */
	ip[8] = 64;
	ip[9] = proto;
	pk_put16(ip + 10, 0);
	pk_put32(ip + 12, saddr);
	pk_put32(ip + 16, daddr);
	pk_put16(ip + 10, pk_fold(pk_sum(ip, 20, 0)));
	return 14 + 20 + payload_len;
}

static inline uint32_t pk_pseudo(uint32_t saddr, uint32_t daddr, uint8_t proto, size_t len)
{
	uint8_t ph[12];

	pk_put32(ph, saddr);
	pk_put32(ph + 4, daddr);
	ph[8] = 0;
	ph[9] = proto;
	pk_put16(ph + 10, (uint16_t)len);
	return pk_sum(ph, 12, 0);
}

static inline size_t pk_udp(uint8_t *f, const uint8_t dst[6], const uint8_t src[6], uint32_t saddr,
			    uint16_t sport, uint32_t daddr, uint16_t dport, const void *data,
			    size_t len)
{
	uint8_t *u = f + 34;

	pk_put16(u, sport);
	pk_put16(u + 2, dport);
	pk_put16(u + 4, (uint16_t)(8 + len));
	pk_put16(u + 6, 0);
	memcpy(u + 8, data, len);
	pk_put16(u + 6, pk_fold(pk_sum(u, 8 + len, pk_pseudo(saddr, daddr, IPPROTO_UDP_, 8 + len))));
	return pk_ipv4(f, dst, src, IPPROTO_UDP_, saddr, daddr, 8 + len);
}

static inline size_t pk_tcp(uint8_t *f, const uint8_t dst[6], const uint8_t src[6], uint32_t saddr,
			    uint16_t sport, uint32_t daddr, uint16_t dport, uint32_t seq,
			    uint32_t ack, uint8_t flags, const void *data, size_t len)
{
	uint8_t *t = f + 34;

	pk_put16(t, sport);
	pk_put16(t + 2, dport);
	pk_put32(t + 4, seq);
	pk_put32(t + 8, ack);
	t[12] = 5 << 4;
	t[13] = flags;
	pk_put16(t + 14, 65535); /* window */
	pk_put16(t + 16, 0);
	pk_put16(t + 18, 0);
	if (len)
		memcpy(t + 20, data, len);
	pk_put16(t + 16,
		 pk_fold(pk_sum(t, 20 + len, pk_pseudo(saddr, daddr, IPPROTO_TCP_, 20 + len))));
	return pk_ipv4(f, dst, src, IPPROTO_TCP_, saddr, daddr, 20 + len);
}

/* A parsed IPv4 frame (NULL fields where not that protocol). */
struct pk_info {
	uint16_t ethertype;
	uint8_t proto;
	uint32_t saddr, daddr;
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t tcp_flags;
	const uint8_t *l4;	/* the UDP/TCP header */
	const uint8_t *payload; /* after it */
	size_t payload_len;
	bool l4_csum_ok;
};

static inline bool pk_parse(const uint8_t *f, size_t len, struct pk_info *pi)
{
	const uint8_t *ip;
	size_t ihl, tot;

	memset(pi, 0, sizeof(*pi));
	if (len < 14)
		return false;
	pi->ethertype = pk_get16(f + 12);
	if (pi->ethertype != ETH_P_IPV4 || len < 34)
		return true;
	ip = f + 14;
	ihl = (size_t)(ip[0] & 15) * 4;
	tot = pk_get16(ip + 2);
	if (ihl < 20 || tot < ihl || 14 + tot > len)
		return false;
	pi->proto = ip[9];
	pi->saddr = pk_get32(ip + 12);
	pi->daddr = pk_get32(ip + 16);
	pi->l4 = ip + ihl;
	if (pi->proto == IPPROTO_UDP_ && tot >= ihl + 8) {
		pi->sport = pk_get16(pi->l4);
		pi->dport = pk_get16(pi->l4 + 2);
		pi->payload = pi->l4 + 8;
		pi->payload_len = tot - ihl - 8;
	} else if (pi->proto == IPPROTO_TCP_ && tot >= ihl + 20) {
		size_t doff = (size_t)(pi->l4[12] >> 4) * 4;

		pi->sport = pk_get16(pi->l4);
		pi->dport = pk_get16(pi->l4 + 2);
		pi->seq = pk_get32(pi->l4 + 4);
		pi->ack = pk_get32(pi->l4 + 8);
		pi->tcp_flags = pi->l4[13];
		if (doff < 20 || doff > tot - ihl)
			return false;
		pi->payload = pi->l4 + doff;
		pi->payload_len = tot - ihl - doff;
	}
	if (pi->proto == IPPROTO_UDP_ || pi->proto == IPPROTO_TCP_)
		pi->l4_csum_ok = pk_fold(pk_sum(pi->l4, tot - ihl,
						 pk_pseudo(pi->saddr, pi->daddr, pi->proto, tot - ihl))) == 0;
	return true;
}

/* ------------------------------------------------------------------ */
/* A recording frontend                                                */

#define REC_MAX 512

struct rec {
	unsigned n;		/* frames recorded */
	size_t len[REC_MAX];
	unsigned flags[REC_MAX];
	uint8_t *frame[REC_MAX];
	int refuse;		/* >0: refuse that many more frames with -EAGAIN; <0: all */
	unsigned refused;
	unsigned tx_ready_calls;
};

static inline int rec_receive(void *opaque, const void *frame, size_t len, unsigned flags)
{
	struct rec *r = opaque;

	if (r->refuse) {
		if (r->refuse > 0)
			r->refuse--;
		r->refused++;
		return -EAGAIN;
	}
	if (r->n < REC_MAX) {
		r->frame[r->n] = malloc(len);
		memcpy(r->frame[r->n], frame, len);
		r->len[r->n] = len;
		r->flags[r->n] = flags;
		r->n++;
	}
	return 0;
}

static inline void rec_tx_ready(void *opaque)
{
	((struct rec *)opaque)->tx_ready_calls++;
}

static const struct net_frontend rec_frontend = {
	.receive = rec_receive,
	.tx_ready = rec_tx_ready,
};

static inline void rec_clear(struct rec *r)
{
	for (unsigned i = 0; i < r->n; i++)
		free(r->frame[i]);
	r->n = 0;
}

#endif

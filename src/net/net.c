/*
 * net: the --net parser and the backend-independent wrappers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "net/net.h"

static int fail(char *err, size_t err_len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t err_len, const char *fmt, ...)
{
	va_list ap;

	if (err && err_len) {
		va_start(ap, fmt);
		vsnprintf(err, err_len, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* Parses a dotted IPv4 address into host byte order. */
static bool parse_ipv4(const char *s, uint32_t *out)
{
	struct in_addr a;

	if (inet_pton(AF_INET, s, &a) != 1)
		return false;
	*out = ntohl(a.s_addr);
	return true;
}

/* A decimal port 1..65535, nothing else. */
static bool parse_port(const char *s, uint16_t *out)
{
	unsigned long v = 0;
	size_t i;

	if (!s[0] || strlen(s) > 5)
		return false;
	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return false;
	*out = (uint16_t)v;
	return true;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool parse_mac(const char *s, uint8_t mac[6])
{
	unsigned i;

	if (strlen(s) != 17)
		return false;
	for (i = 0; i < 6; i++) {
		int hi = hexval(s[3 * i]), lo = hexval(s[3 * i + 1]);

		if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != ':'))
			return false;
		mac[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

static bool parse_onoff(const char *s, bool *out)
{
	if (!strcmp(s, "on") || !strcmp(s, "yes") || !strcmp(s, "true")) {
		*out = true;
		return true;
	}
	if (!strcmp(s, "off") || !strcmp(s, "no") || !strcmp(s, "false")) {
		*out = false;
		return true;
	}
	return false;
}

/* [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT; v is modified. */
static int parse_hostfwd(char *v, struct net_hostfwd *f, char *err, size_t err_len)
{
	char *host, *guest, *c;
	const char *usage = "expected hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT, "
			    "e.g. hostfwd=tcp:127.0.0.1:2222-:22";
	char orig[128];

	snprintf(orig, sizeof(orig), "%s", v);
	memset(f, 0, sizeof(*f));
	c = strchr(v, ':');
	if (!c)
		return fail(err, err_len, "hostfwd=%s: %s", orig, usage);
	*c = 0;
	if (!strcmp(v, "udp"))
		f->udp = true;
	else if (strcmp(v, "tcp") && v[0])
		return fail(err, err_len, "hostfwd=%s: protocol '%s' is neither tcp nor udp", orig,
			    v);
	host = c + 1;
	guest = strchr(host, '-');
	if (!guest)
		return fail(err, err_len, "hostfwd=%s: %s", orig, usage);
	*guest++ = 0;
	/* host part: [ADDR]:PORT */
	c = strrchr(host, ':');
	if (!c)
		return fail(err, err_len, "hostfwd=%s: %s", orig, usage);
	*c = 0;
	if (host[0] && !parse_ipv4(host, &f->host_addr))
		return fail(err, err_len, "hostfwd=%s: '%s' is not an IPv4 address", orig, host);
	if (!parse_port(c + 1, &f->host_port))
		return fail(err, err_len, "hostfwd=%s: host port '%s' is not a number in 1-65535",
			    orig, c + 1);
	c = strrchr(guest, ':');
	if (!c)
		return fail(err, err_len, "hostfwd=%s: %s", orig, usage);
	*c = 0;
	if (guest[0] && !parse_ipv4(guest, &f->guest_addr))
		return fail(err, err_len, "hostfwd=%s: '%s' is not an IPv4 address", orig, guest);
	if (!parse_port(c + 1, &f->guest_port))
		return fail(err, err_len, "hostfwd=%s: guest port '%s' is not a number in 1-65535",
			    orig, c + 1);
	return 0;
}

/* net=A.B.C.D/PREFIX (or A.B.C.D alone: /24) */
static int parse_netaddr(char *v, struct net_opts *o, char *err, size_t err_len)
{
	char *slash = strchr(v, '/');
	unsigned long prefix = 24;
	char *end;

	if (slash) {
		*slash = 0;
		errno = 0;
		prefix = strtoul(slash + 1, &end, 10);
		if (!slash[1] || *end || errno || prefix < 1 || prefix > 27)
			return fail(err, err_len,
				    "net=%s/%s: the prefix length must be 1-27 (room for the "
				    "gateway, DNS and 16 DHCP addresses from .15)",
				    v, slash + 1);
	}
	if (!parse_ipv4(v, &o->net_addr))
		return fail(err, err_len, "net=%s: not an IPv4 address", v);
	o->net_mask = (uint32_t)(0xffffffffull << (32 - prefix));
	if (o->net_addr & ~o->net_mask)
		return fail(err, err_len, "net=%s/%lu: the address has host bits set (did you mean %u.%u.%u.%u/%lu?)",
			    v, prefix, (o->net_addr & o->net_mask) >> 24,
			    (o->net_addr & o->net_mask) >> 16 & 0xff,
			    (o->net_addr & o->net_mask) >> 8 & 0xff, (o->net_addr & o->net_mask) & 0xff,
			    prefix);
	return 0;
}

int net_parse(const char *spec, unsigned index, struct net_opts *o, char *err, size_t err_len)
{
	char *buf, *save = NULL, *tok;
	char sub[256];
	int ret = 0;
	bool first = true;
	uint32_t mac_low;

	memset(o, 0, sizeof(*o));
	/* 52:54:00:12:34:56 + index (in the low 24 bits) */
	mac_low = 0x123456u + index;
	o->mac[0] = 0x52;
	o->mac[1] = 0x54;
	o->mac[2] = 0x00;
	o->mac[3] = (uint8_t)(mac_low >> 16);
	o->mac[4] = (uint8_t)(mac_low >> 8);
	o->mac[5] = (uint8_t)mac_low;
	o->net_addr = 0x0a000200u; /* 10.0.2.0/24 */
	o->net_mask = 0xffffff00u;

	if (!spec || !spec[0])
		return fail(err, err_len, "empty --net value: expected 'user[,...]' or 'tap,ifname=NAME'");
	if (strlen(spec) > 4096)
		return fail(err, err_len, "--net value too long");
	buf = strdup(spec);
	if (!buf)
		return -ENOMEM;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		const char *key = tok, *val;

		if (first) {
			first = false;
			if (!strcmp(tok, "user")) {
				o->kind = NET_USER;
			} else if (!strcmp(tok, "tap")) {
				o->kind = NET_TAP;
			} else {
				ret = fail(err, err_len,
					   "--net %s: unknown backend '%s' (expected 'user' or 'tap')",
					   spec, tok);
				goto out;
			}
			continue;
		}
		if (!eq) {
			ret = fail(err, err_len, "--net %s: '%s' is not KEY=VALUE", spec, tok);
			goto out;
		}
		*eq = 0;
		val = eq + 1;
		if (!strcmp(key, "mac")) {
			if (!parse_mac(val, o->mac)) {
				ret = fail(err, err_len,
					   "--net %s: mac=%s is not of the form 52:54:00:12:34:56", spec,
					   val);
				goto out;
			}
			if (o->mac[0] & 1) {
				ret = fail(err, err_len,
					   "--net %s: mac=%s is a multicast address (the low bit of the "
					   "first byte is set); pick e.g. 52:54:00:xx:xx:xx",
					   spec, val);
				goto out;
			}
		} else if (o->kind == NET_USER && !strcmp(key, "hostfwd")) {
			if (o->nr_hostfwd == NET_HOSTFWD_MAX) {
				ret = fail(err, err_len, "--net %s: more than %d hostfwd", spec,
					   NET_HOSTFWD_MAX);
				goto out;
			}
			ret = parse_hostfwd(eq + 1, &o->hostfwd[o->nr_hostfwd], sub, sizeof(sub));
			if (ret) {
				fail(err, err_len, "--net %s: %s", spec, sub);
				goto out;
			}
			o->nr_hostfwd++;
		} else if (o->kind == NET_USER && !strcmp(key, "net")) {
			ret = parse_netaddr(eq + 1, o, sub, sizeof(sub));
			if (ret) {
				fail(err, err_len, "--net %s: %s", spec, sub);
				goto out;
			}
		} else if (o->kind == NET_USER && !strcmp(key, "restrict")) {
			if (!parse_onoff(val, &o->restricted)) {
				ret = fail(err, err_len, "--net %s: restrict=%s: expected on or off",
					   spec, val);
				goto out;
			}
		} else if (o->kind == NET_TAP && !strcmp(key, "ifname")) {
			if (!val[0] || strlen(val) >= NET_IFNAME_MAX || strchr(val, '/') ||
			    strchr(val, ' ')) {
				ret = fail(err, err_len,
					   "--net %s: ifname=%s: an interface name has 1-%d characters "
					   "and no '/' or space",
					   spec, val, NET_IFNAME_MAX - 1);
				goto out;
			}
			snprintf(o->ifname, sizeof(o->ifname), "%s", val);
		} else {
			ret = fail(err, err_len, "--net %s: unknown option '%s' for a %s backend (%s)",
				   spec, key, o->kind == NET_USER ? "user" : "tap",
				   o->kind == NET_USER ? "known: hostfwd, net, restrict, mac"
						       : "known: ifname, mac");
			goto out;
		}
	}
	if (first)
		ret = fail(err, err_len, "empty --net value: expected 'user[,...]' or 'tap,ifname=NAME'");
	/* port forwards must point into the guest network */
	for (unsigned i = 0; !ret && i < o->nr_hostfwd; i++) {
		uint32_t g = o->hostfwd[i].guest_addr;

		if (g && (g & o->net_mask) != o->net_addr)
			ret = fail(err, err_len,
				   "--net %s: hostfwd guest address %u.%u.%u.%u lies outside the guest "
				   "network %u.%u.%u.%u",
				   spec, g >> 24, g >> 16 & 0xff, g >> 8 & 0xff, g & 0xff,
				   o->net_addr >> 24, o->net_addr >> 16 & 0xff, o->net_addr >> 8 & 0xff,
				   o->net_addr & 0xff);
	}
out:
	free(buf);
	return ret;
}

uint32_t net_user_host_addr(const struct net_opts *o)
{
	return o->net_addr | 2;
}

uint32_t net_user_dns_addr(const struct net_opts *o)
{
	return o->net_addr | 3;
}

uint32_t net_user_dhcp_addr(const struct net_opts *o)
{
	return o->net_addr | 15;
}

/* ------------------------------------------------------------------ */

struct net_backend *net_backend_new(struct ev_loop *loop, const struct net_opts *o, char *err,
				    size_t err_len)
{
	switch (o->kind) {
	case NET_USER:
		return net_slirp_new(loop, o, err, err_len);
	case NET_TAP:
		return net_tap_new(loop, o, err, err_len);
	}
	snprintf(err, err_len, "unknown network backend");
	return NULL;
}

void net_backend_attach(struct net_backend *be, const struct net_frontend *fe, void *opaque)
{
	be->fe = fe;
	be->fe_opaque = opaque;
}

int net_backend_send(struct net_backend *be, const void *frame, size_t len_bytes)
{
	return be->ops->send(be, frame, len_bytes);
}

void net_backend_rx_resume(struct net_backend *be)
{
	if (be->ops->rx_resume)
		be->ops->rx_resume(be);
}

void net_backend_free(struct net_backend *be)
{
	if (be)
		be->ops->free(be);
}

const char *net_backend_ifname(const struct net_backend *be)
{
	return be->ifname;
}

int net_backend_deliver(struct net_backend *be, const void *frame, size_t len_bytes,
			unsigned flags)
{
	if (!be->fe || !be->fe->receive)
		return 0;
	return be->fe->receive(be->fe_opaque, frame, len_bytes, flags);
}

int net_csum_complete(uint8_t *frame, size_t len_bytes, size_t csum_start, size_t csum_offset)
{
	uint64_t sum = 0;
	size_t i, field;
	uint16_t c;

	if (csum_start > len_bytes || csum_offset > len_bytes - csum_start ||
	    len_bytes - csum_start - csum_offset < 2)
		return -EINVAL;
	field = csum_start + csum_offset;
	for (i = csum_start; i + 1 < len_bytes; i += 2)
		sum += (uint32_t)frame[i] << 8 | frame[i + 1];
	if (i < len_bytes)
		sum += (uint32_t)frame[i] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	c = (uint16_t)~sum;
	if (!c)
		c = 0xffff;
	frame[field] = (uint8_t)(c >> 8);
	frame[field + 1] = (uint8_t)c;
	return 0;
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint32_t sum16(const uint8_t *p, size_t len, uint32_t sum)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (i < len)
		sum += (uint32_t)p[i] << 8;
	return sum;
}

static uint16_t fold16(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

int net_tso4_segment(const uint8_t *frame, size_t len, unsigned mss, uint8_t *seg_buf,
		     size_t seg_buf_len, net_emit_fn *emit, void *opaque)
{
	size_t l3 = 14, ihl, doff, hdrs, payload, off;
	uint16_t ethertype, ip_id;
	uint32_t seq;
	uint8_t tcp_flags;
	unsigned i;

	if (len < 14 || mss == 0)
		return -EINVAL;
	ethertype = rd16(frame + 12);
	if (ethertype == 0x8100) {
		if (len < 18)
			return -EINVAL;
		ethertype = rd16(frame + 16);
		l3 = 18;
	}
	if (ethertype != 0x0800 || len < l3 + 20)
		return -EINVAL;
	ihl = (size_t)(frame[l3] & 15) * 4;
	if ((frame[l3] >> 4) != 4 || ihl < 20 || len < l3 + ihl + 20 || frame[l3 + 9] != 6)
		return -EINVAL;
	if (rd16(frame + l3 + 6) & 0x3fff) /* MF or a fragment offset */
		return -EINVAL;
	doff = (size_t)(frame[l3 + ihl + 12] >> 4) * 4;
	hdrs = l3 + ihl + doff;
	if (doff < 20 || hdrs > len || hdrs + mss > seg_buf_len)
		return -EINVAL;
	if (ihl + doff + MIN((size_t)mss, len - hdrs) > 0xffff) /* an IPv4 total length */
		return -EINVAL;
	payload = len - hdrs;
	ip_id = rd16(frame + l3 + 4);
	seq = (uint32_t)rd16(frame + l3 + ihl + 4) << 16 | rd16(frame + l3 + ihl + 6);
	tcp_flags = frame[l3 + ihl + 13];
	for (i = 0, off = 0; i == 0 || off < payload; i++) {
		size_t chunk = MIN((size_t)mss, payload - off);
		bool last = off + chunk >= payload;
		uint8_t *ip = seg_buf + l3, *tcp = ip + ihl;
		uint32_t sum;
		uint8_t fl = tcp_flags;
		int r;

		memcpy(seg_buf, frame, hdrs);
		memcpy(seg_buf + hdrs, frame + hdrs + off, chunk);
		wr16(ip + 2, (uint16_t)(ihl + doff + chunk));
		wr16(ip + 4, (uint16_t)(ip_id + i));
		wr16(ip + 10, 0);
		wr16(ip + 10, fold16(sum16(ip, ihl, 0)));
		wr16(tcp + 4, (uint16_t)((seq + off) >> 16));
		wr16(tcp + 6, (uint16_t)(seq + off));
		if (!last)
			fl &= (uint8_t)~0x09; /* FIN, PSH */
		if (i)
			fl &= (uint8_t)~0x80; /* CWR */
		tcp[13] = fl;
		wr16(tcp + 16, 0);
		/* pseudo header: addresses, protocol, TCP length */
		sum = sum16(ip + 12, 8, 0) + 6 + (uint32_t)(doff + chunk);
		sum = sum16(tcp, doff + chunk, sum);
		wr16(tcp + 16, fold16(sum));
		r = emit(opaque, seg_buf, hdrs + chunk);
		if (r)
			return r;
		off += chunk;
	}
	return 0;
}

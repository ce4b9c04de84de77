/*
 * net: the --net parser (no backend is opened) and net_csum_complete.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "net/net.h"
#include "test.h"

static char err[512];

static int parse(const char *spec, unsigned index, struct net_opts *o)
{
	err[0] = 0;
	return net_parse(spec, index, o, err, sizeof(err));
}

/* a bad spec fails with a message that mentions want */
static void bad(const char *spec, const char *want)
{
	struct net_opts o;
	int r = parse(spec, 0, &o);

	CHECK(r == -EINVAL);
	if (r != -EINVAL || !strstr(err, want))
		fprintf(stderr, "spec '%s': r=%d err='%s' (wanted '%s')\n", spec, r, err, want);
	CHECK(strstr(err, want) != NULL);
}

static void test_user_defaults(void)
{
	struct net_opts o;
	static const uint8_t mac0[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
	static const uint8_t mac3[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x59 };

	CHECK(parse("user", 0, &o) == 0);
	CHECK(o.kind == NET_USER);
	CHECK(!memcmp(o.mac, mac0, 6));
	CHECK_EQ_U64(o.net_addr, 0x0a000200);
	CHECK_EQ_U64(o.net_mask, 0xffffff00);
	CHECK_EQ_U64(net_user_host_addr(&o), 0x0a000202);
	CHECK_EQ_U64(net_user_dns_addr(&o), 0x0a000203);
	CHECK_EQ_U64(net_user_dhcp_addr(&o), 0x0a00020f);
	CHECK(!o.restricted);
	CHECK(o.nr_hostfwd == 0);
	/* the index picks the default MAC */
	CHECK(parse("user", 3, &o) == 0);
	CHECK(!memcmp(o.mac, mac3, 6));
	CHECK(parse("user", 0xaa, &o) == 0);
	CHECK(o.mac[4] == 0x35 && o.mac[5] == 0x00); /* carries into the next byte */
}

static void test_user_options(void)
{
	struct net_opts o;
	static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0xab, 0xCD, 0x01 };

	CHECK(parse("user,hostfwd=tcp:127.0.0.1:2222-:22,mac=52:54:00:ab:cd:01,restrict=on", 5,
		    &o) == 0);
	CHECK(!memcmp(o.mac, mac, 6));
	CHECK(o.restricted);
	CHECK(o.nr_hostfwd == 1);
	CHECK(!o.hostfwd[0].udp);
	CHECK_EQ_U64(o.hostfwd[0].host_addr, 0x7f000001);
	CHECK_EQ_U64(o.hostfwd[0].host_port, 2222);
	CHECK_EQ_U64(o.hostfwd[0].guest_addr, 0);
	CHECK_EQ_U64(o.hostfwd[0].guest_port, 22);

	CHECK(parse("user,hostfwd=udp::5555-10.0.2.20:53,hostfwd=:0.0.0.0:8080-:80,"
		    "hostfwd=tcp::1-:65535,restrict=off",
		    0, &o) == 0);
	CHECK(o.nr_hostfwd == 3);
	CHECK(o.hostfwd[0].udp);
	CHECK_EQ_U64(o.hostfwd[0].host_addr, 0);
	CHECK_EQ_U64(o.hostfwd[0].host_port, 5555);
	CHECK_EQ_U64(o.hostfwd[0].guest_addr, 0x0a000214);
	CHECK_EQ_U64(o.hostfwd[0].guest_port, 53);
	CHECK(!o.hostfwd[1].udp);
	CHECK_EQ_U64(o.hostfwd[1].host_port, 8080);
	CHECK_EQ_U64(o.hostfwd[2].host_port, 1);
	CHECK_EQ_U64(o.hostfwd[2].guest_port, 65535);
	CHECK(!o.restricted);

	CHECK(parse("user,net=192.168.76.0/24", 0, &o) == 0);
	CHECK_EQ_U64(o.net_addr, 0xc0a84c00);
	CHECK_EQ_U64(net_user_host_addr(&o), 0xc0a84c02);
	CHECK_EQ_U64(net_user_dhcp_addr(&o), 0xc0a84c0f);
	CHECK(parse("user,net=172.16.0.0/12", 0, &o) == 0);
	CHECK_EQ_U64(o.net_mask, 0xfff00000);
	CHECK(parse("user,net=10.1.2.0", 0, &o) == 0);
	CHECK_EQ_U64(o.net_mask, 0xffffff00);
	/* a forward into the guest network given with net= */
	CHECK(parse("user,net=192.168.76.0/24,hostfwd=tcp::2222-192.168.76.9:22", 0, &o) == 0);
}

static void test_tap(void)
{
	struct net_opts o;

	CHECK(parse("tap,ifname=tap0", 1, &o) == 0);
	CHECK(o.kind == NET_TAP);
	CHECK(!strcmp(o.ifname, "tap0"));
	CHECK(o.mac[5] == 0x57);
	CHECK(parse("tap", 0, &o) == 0);
	CHECK(o.ifname[0] == 0);
	CHECK(parse("tap,mac=02:00:00:00:00:01,ifname=abcdefghijklmno", 0, &o) == 0);
	CHECK(!strcmp(o.ifname, "abcdefghijklmno"));
}

static void test_errors(void)
{
	char huge[6000];

	bad("", "empty");
	bad(",", "empty");
	bad("socket", "unknown backend 'socket'");
	bad("user,hostfwd", "not KEY=VALUE");
	bad("user,foo=bar", "unknown option 'foo'");
	bad("user,ifname=tap0", "unknown option 'ifname'");
	bad("tap,hostfwd=tcp::1-:2", "unknown option 'hostfwd'");
	bad("user,mac=52:54:00:12:34", "mac=52:54:00:12:34 is not");
	bad("user,mac=52:54:00:12:34:5g", "is not of the form");
	bad("user,mac=52-54-00-12-34-56", "is not of the form");
	bad("user,mac=01:00:5e:00:00:01", "multicast");
	bad("user,restrict=maybe", "expected on or off");
	bad("user,hostfwd=tcp:127.0.0.1:2222", "expected hostfwd=");
	bad("user,hostfwd=sctp::1-:2", "neither tcp nor udp");
	bad("user,hostfwd=tcp::0-:22", "host port '0'");
	bad("user,hostfwd=tcp::65536-:22", "host port '65536'");
	bad("user,hostfwd=tcp::22x-:22", "host port");
	bad("user,hostfwd=tcp::-:22", "host port");
	bad("user,hostfwd=tcp::2222-:", "guest port");
	bad("user,hostfwd=tcp::2222-22", "expected hostfwd=");
	bad("user,hostfwd=tcp:1.2.3:2222-:22", "not an IPv4 address");
	bad("user,hostfwd=tcp:localhost:2222-:22", "not an IPv4 address");
	bad("user,hostfwd=tcp::2222-10.0.3.15:22", "outside the guest network");
	bad("user,net=10.0.2.1/24", "host bits set");
	bad("user,net=10.0.2.0/28", "prefix length");
	bad("user,net=10.0.2.0/0", "prefix length");
	bad("user,net=10.0.2.0/", "prefix length");
	bad("user,net=10.0.2.0/24x", "prefix length");
	bad("user,net=ten", "not an IPv4 address");
	bad("tap,ifname=", "interface name");
	bad("tap,ifname=abcdefghijklmnop", "interface name");
	bad("tap,ifname=a/b", "interface name");
	memset(huge, 'a', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = 0;
	bad(huge, "too long");
	{
		char many[2048] = "user";
		struct net_opts o;

		for (int i = 0; i < NET_HOSTFWD_MAX; i++)
			snprintf(many + strlen(many), sizeof(many) - strlen(many),
				 ",hostfwd=tcp::%d-:22", 1000 + i);
		CHECK(parse(many, 0, &o) == 0);
		CHECK(o.nr_hostfwd == NET_HOSTFWD_MAX);
		strcat(many, ",hostfwd=tcp::999-:22");
		bad(many, "more than 16 hostfwd");
	}
}

static void test_csum(void)
{
	/* a UDP datagram 10.0.2.15:1000 -> 10.0.2.2:2000, "abc"; the field
	 * holds the pseudo-header sum as a driver's NEEDS_CSUM leaves it */
	uint8_t f[14 + 20 + 11] = { 0 };
	uint8_t *u = f + 34;
	uint32_t sum;
	uint16_t want;

	u[0] = 0x03, u[1] = 0xe8, u[2] = 0x07, u[3] = 0xd0, u[4] = 0, u[5] = 11;
	memcpy(u + 8, "abc", 3);
	/* the reference: the full sum over pseudo header + datagram */
	sum = 0x0a00 + 0x020f + 0x0a00 + 0x0202 + 17 + 11; /* pseudo header */
	sum += 0x03e8 + 0x07d0 + 11 + 0x6162 + 0x6300;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	want = (uint16_t)~sum;
	/* partial: the pseudo-header sum (not complemented) in the field */
	{
		uint32_t ps = 0x0a00 + 0x020f + 0x0a00 + 0x0202 + 17 + 11;

		while (ps >> 16)
			ps = (ps & 0xffff) + (ps >> 16);
		u[6] = (uint8_t)(ps >> 8);
		u[7] = (uint8_t)ps;
	}
	CHECK(net_csum_complete(f, sizeof(f), 34, 6) == 0);
	CHECK_EQ_U64((uint16_t)(u[6] << 8 | u[7]), want);
	/* out of the frame */
	CHECK(net_csum_complete(f, sizeof(f), 34, 10) == -EINVAL);
	CHECK(net_csum_complete(f, sizeof(f), 44, 0) == -EINVAL);
	CHECK(net_csum_complete(f, sizeof(f), 100, 0) == -EINVAL);
	CHECK(net_csum_complete(f, sizeof(f), 0, (size_t)-1) == -EINVAL);
	CHECK(net_csum_complete(f, sizeof(f), 43, 0) == 0);
}

int main(void)
{
	test_user_defaults();
	test_user_options();
	test_tap();
	test_errors();
	test_csum();
	TEST_MAIN_END();
}

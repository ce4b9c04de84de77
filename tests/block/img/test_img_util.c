/*
 * Unit tests of the 'maquina img' helpers: qemu-img's size parsing and
 * printing, -o lists, and JSON in QEMU's QDict key order.
 */
#include "block/img/img_int.h"
#include "test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_parse_size(void)
{
	uint64_t v = 0;

	CHECK(img_parse_size("0", &v) == 0 && v == 0);
	CHECK(img_parse_size("1000", &v) == 0 && v == 1000);
	CHECK(img_parse_size("64k", &v) == 0 && v == 65536);
	CHECK(img_parse_size("64K", &v) == 0 && v == 65536);
	CHECK(img_parse_size("2M", &v) == 0 && v == 2u << 20);
	CHECK(img_parse_size("1.5M", &v) == 0 && v == 1572864);
	CHECK(img_parse_size("10G", &v) == 0 && v == 10ull << 30);
	CHECK(img_parse_size("512B", &v) == 0 && v == 512);
	CHECK(img_parse_size("0x1000", &v) == 0 && v == 4096);
	CHECK(img_parse_size("7E", &v) == 0 && v == 7ull << 60);
	CHECK(img_parse_size("8E", &v) == -ERANGE);
	CHECK(img_parse_size("10Q", &v) == -EINVAL);
	CHECK(img_parse_size("-1", &v) == -EINVAL);
	CHECK(img_parse_size("", &v) == -EINVAL);
	CHECK(img_parse_size("1.5", &v) == -EINVAL);
	CHECK(img_parse_size("12kk", &v) == -EINVAL);
	CHECK(img_parse_size("abc", &v) == -EINVAL);
	CHECK(img_parse_size("99999999999999999999", &v) == -ERANGE);
}

static void test_size_str(void)
{
	char b[32];

	/* values and strings seen in qemu-img 7.2's output */
	CHECK(!strcmp(img_size_str(67108864, b, sizeof(b)), "64 MiB"));
	CHECK(!strcmp(img_size_str(200704, b, sizeof(b)), "196 KiB"));
	CHECK(!strcmp(img_size_str(1331200, b, sizeof(b)), "1.27 MiB"));
	CHECK(!strcmp(img_size_str(4096, b, sizeof(b)), "4 KiB"));
	CHECK(!strcmp(img_size_str(0, b, sizeof(b)), "0 B"));
	CHECK(!strcmp(img_size_str(9895936, b, sizeof(b)), "9.44 MiB"));
	CHECK(!strcmp(img_size_str(10737418240ull, b, sizeof(b)), "10 GiB"));
	CHECK(!strcmp(img_size_str(1000, b, sizeof(b)), "0.977 KiB"));
}

static void test_kv(void)
{
	struct img_kvlist l = { 0 };
	bool bv;

	CHECK(img_kv_parse(&l, "cluster_size=4k,compat=1.1") == 0);
	CHECK(img_kv_parse(&l, "backing_file=a,,b.qcow2,help") == 0);
	CHECK(l.nb == 4);
	CHECK(!strcmp(l.kv[0].key, "cluster_size") && !strcmp(l.kv[0].val, "4k"));
	CHECK(!strcmp(l.kv[2].key, "backing_file") && !strcmp(l.kv[2].val, "a,b.qcow2"));
	CHECK(l.kv[3].val == NULL);
	CHECK(img_kv_wants_help(&l));
	img_kv_free(&l);
	CHECK(l.nb == 0);
	CHECK(img_parse_bool("on", &bv) == 0 && bv);
	CHECK(img_parse_bool("off", &bv) == 0 && !bv);
	CHECK(img_parse_bool("maybe", &bv) == -EINVAL);
}

/* Renders v into a string. */
static char *render(const struct json *v)
{
	char *s = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&s, &n);

	json_print(f, v, 0);
	fclose(f);
	return s;
}

static void test_json_order(void)
{
	struct json *o = json_obj(), *a = json_arr(), *d = json_obj();
	char *s;

	/* inserted in struct order; printed in qemu-img's order */
	json_add_str(o, "filename", "a.qcow2");
	json_add_str(o, "format", "qcow2");
	json_add_bool(o, "dirty-flag", false);
	json_add_int(o, "actual-size", 200704);
	json_add_int(o, "virtual-size", 67108864);
	json_add_int(o, "cluster-size", 65536);
	json_add_str(d, "x", "q\"/\\");
	json_add(a, NULL, d);
	json_add(o, "snapshots", a);
	s = render(o);
	CHECK(!strcmp(s, "{\n"
			 "    \"snapshots\": [\n"
			 "        {\n"
			 "            \"x\": \"q\\\"/\\\\\"\n"
			 "        }\n"
			 "    ],\n"
			 "    \"virtual-size\": 67108864,\n"
			 "    \"filename\": \"a.qcow2\",\n"
			 "    \"cluster-size\": 65536,\n"
			 "    \"format\": \"qcow2\",\n"
			 "    \"actual-size\": 200704,\n"
			 "    \"dirty-flag\": false\n"
			 "}"));
	free(s);
	json_free(o);

	o = json_obj();
	json_add_int(o, "required", 1);
	json_add_int(o, "fully-allocated", 2);
	json_add_int(o, "bitmaps", 0);
	s = render(o);
	CHECK(!strcmp(s, "{\n    \"bitmaps\": 0,\n    \"required\": 1,\n    \"fully-allocated\": 2\n}"));
	free(s);
	json_free(o);

	o = json_arr();
	s = render(o);
	CHECK(!strcmp(s, "[]"));
	free(s);
	json_free(o);
}

int main(void)
{
	test_parse_size();
	test_size_str();
	test_kv();
	test_json_order();
	TEST_MAIN_END();
}

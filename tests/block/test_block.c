/*
 * Unit tests of the block layer through its public API: raw and qcow2
 * read/write at odd offsets, every refcount width, the refcount table
 * growing, block status, async queues (io_uring and threads), resize,
 * amend, backing files, make_empty, check, and argument errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/block.h"
#include "test.h"

#define ALIGN_UP(x, a) (((x) + (a) - 1) / (a) * (a))

static char dir[256];

static const char *tmp(const char *name)
{
	static char buf[4][512];
	static int k;
	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", dir, name);
	return buf[k];
}

static void fill(uint8_t *p, size_t n, uint64_t off, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed * 31 + (off + i) * 13 + ((off + i) >> 11));
}

static struct blk *open_img(const char *path, unsigned flags)
{
	struct blk_open_opts o = { .flags = flags };
	struct blk *b = NULL;
	char err[512];
	if (blk_open(path, &o, &b, err, sizeof(err)) < 0) {
		fprintf(stderr, "open %s: %s\n", path, err);
		return NULL;
	}
	return b;
}

static int create(const char *path, enum blk_format fmt, uint64_t size,
		  uint32_t cs, unsigned refbits)
{
	struct blk_create_opts o;
	blk_create_opts_init(&o);
	o.format = fmt;
	o.size_bytes = size;
	o.cluster_size = cs;
	o.refcount_bits = refbits;
	char err[512];
	int ret = blk_create(path, &o, err, sizeof(err));
	if (ret < 0)
		fprintf(stderr, "create %s: %s\n", path, err);
	return ret;
}

static bool clean(struct blk *b)
{
	struct blk_check_result r;
	int ret = blk_check(b, BLK_REPAIR_NONE, NULL, NULL, &r);
	if (ret < 0 || r.corruptions || r.leaks || r.check_errors) {
		fprintf(stderr, "check: ret %d corruptions %d leaks %d errors %d\n",
			ret, r.corruptions, r.leaks, r.check_errors);
		return false;
	}
	return true;
}

/* Writes a model and the image with the same random requests, then
 * compares everything. */
static void test_rw(enum blk_format fmt, uint32_t cs, unsigned refbits,
		    uint64_t size)
{
	const char *p = tmp("rw.img");
	CHECK(create(p, fmt, size, cs, refbits) == 0);
	struct blk *b = open_img(p, BLK_OPEN_RDWR);
	CHECK(b != NULL);
	if (!b)
		return;
	CHECK_EQ_U64(blk_size(b), size);
	uint8_t *model = calloc(1, size), *buf = malloc(size);
	unsigned seed = 1;
	srand(cs + refbits);
	for (int i = 0; i < 200; i++) {
		uint64_t off = (uint64_t)rand() % size;
		uint64_t len = 1 + (uint64_t)rand() % (3 * (cs ? cs : 4096));
		if (len > size - off)
			len = size - off;
		fill(model + off, len, off, seed);
		memcpy(buf, model + off, len);
		CHECK(blk_pwrite(b, off, buf, len, 0) == 0);
		seed++;
		if (i % 50 == 0)
			CHECK(blk_flush(b) == 0);
	}
	CHECK(blk_pread(b, 0, buf, size) == 0);
	CHECK(memcmp(buf, model, size) == 0);
	if (fmt == BLK_FMT_QCOW2)
		CHECK(clean(b));
	CHECK(blk_close(b) == 0);
	b = open_img(p, 0);
	CHECK(b != NULL);
	if (b) {
		memset(buf, 0, size);
		CHECK(blk_pread(b, 0, buf, size) == 0);
		CHECK(memcmp(buf, model, size) == 0);
		CHECK(blk_pwrite(b, 0, buf, 1, 0) == -EROFS);
		blk_close(b);
	}
	free(model);
	free(buf);
}

static void test_errors(void)
{
	const char *p = tmp("err.qcow2");
	CHECK(create(p, BLK_FMT_QCOW2, 1 << 20, 0, 0) == 0);
	struct blk *b = open_img(p, BLK_OPEN_RDWR);
	uint8_t buf[16] = { 0 };
	CHECK(blk_pread(b, (1 << 20) - 8, buf, 16) == -EINVAL);
	CHECK(strstr(blk_last_error(b), "past the end") != NULL);
	CHECK(blk_pwrite(b, 1 << 20, buf, 1, 0) == -EINVAL);
	CHECK(blk_pwrite_compressed(b, 100, buf, 16) == -EINVAL);
	CHECK(blk_snapshot_apply(b, "nope") == -ENOENT);
	CHECK(blk_resize(b, 4096, false, BLK_PREALLOC_OFF) == -EINVAL);
	blk_close(b);
	struct blk_create_opts o;
	blk_create_opts_init(&o);
	o.size_bytes = 1 << 20;
	o.cluster_size = 4096;
	o.extended_l2 = true;
	char err[512];
	CHECK(blk_create(p, &o, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "extended_l2") != NULL);
	o.extended_l2 = false;
	o.cluster_size = 3000;
	CHECK(blk_create(p, &o, err, sizeof(err)) == -EINVAL);
	struct blk *x;
	CHECK(blk_open(tmp("does-not-exist"), NULL, &x, err, sizeof(err)) ==
	      -ENOENT);
	CHECK(strstr(err, "does-not-exist") != NULL);
	enum blk_format f;
	CHECK(blk_format_parse("vmdk", &f) == -EINVAL);
	CHECK(blk_format_parse("qcow2", &f) == 0 && f == BLK_FMT_QCOW2);
	enum blk_prealloc pa;
	CHECK(blk_prealloc_parse("falloc", &pa) == 0 && pa == BLK_PREALLOC_FALLOC);
}

/* O_DIRECT: qcow2 drops it (its metadata I/O is unaligned), raw falls back
 * to buffered I/O for unaligned requests. */
static void test_direct(void)
{
	const char *p = tmp("direct.qcow2");
	CHECK(create(p, BLK_FMT_QCOW2, 1 << 20, 0, 0) == 0);
	uint8_t buf[1000], got[1000];
	fill(buf, sizeof(buf), 77, 6);
	for (int k = 0; k < 2; k++) {
		struct blk *b = open_img(p, BLK_OPEN_RDWR | BLK_OPEN_DIRECT);
		CHECK(b != NULL);
		if (!b)
			return;
		CHECK(blk_pwrite(b, 77, buf, sizeof(buf), 0) == 0);
		CHECK(blk_pread(b, 77, got, sizeof(got)) == 0);
		CHECK(!memcmp(got, buf, sizeof(buf)));
		CHECK(blk_close(b) == 0);
		p = tmp("direct.raw");
		CHECK(create(p, BLK_FMT_RAW, 1 << 20, 0, 0) == 0);
	}
}

static void test_raw_status(void)
{
	const char *p = tmp("sparse.raw");
	CHECK(create(p, BLK_FMT_RAW, 8 << 20, 0, 0) == 0);
	struct blk *b = open_img(p, BLK_OPEN_RDWR);
	uint8_t buf[8192];
	fill(buf, sizeof(buf), 0, 3);
	CHECK(blk_pwrite(b, 2 << 20, buf, sizeof(buf), 0) == 0);
	CHECK(blk_flush(b) == 0);
	struct blk_status st;
	CHECK(blk_block_status(b, 0, 8 << 20, true, &st) == 0);
	CHECK(st.flags & BLK_ST_ZERO);
	CHECK_EQ_U64(st.len, 2 << 20);
	CHECK(blk_block_status(b, 2 << 20, 6 << 20, true, &st) == 0);
	CHECK(st.flags & BLK_ST_DATA);
	CHECK(st.len >= sizeof(buf));
	CHECK(blk_write_zeroes(b, 2 << 20, 4096, BLK_ZEROES_MAY_UNMAP) == 0);
	CHECK(blk_pread(b, 2 << 20, buf, 4096) == 0);
	bool zero = true;
	for (int i = 0; i < 4096; i++)
		zero &= buf[i] == 0;
	CHECK(zero);
	blk_close(b);
}

struct qdone {
	int n, errors;
};

static void done_cb(void *opaque, int ret)
{
	struct qdone *d = opaque;
	d->n++;
	if (ret < 0)
		d->errors++;
}

static void test_queue(enum blk_format fmt, bool want_uring)
{
	const char *p = tmp(fmt == BLK_FMT_RAW ? "q.raw" : "q.qcow2");
	uint64_t size = 4 << 20;
	CHECK(create(p, fmt, size, 0, 0) == 0);
	struct blk *b = open_img(p, BLK_OPEN_RDWR);
	struct blk_queue *q = blk_queue_new(b, 16, 3, 0);
	CHECK(q != NULL);
	if (!q)
		return;
	if (fmt == BLK_FMT_QCOW2)
		CHECK(!strcmp(blk_queue_backend(q), "threads"));
	(void)want_uring;
	enum { N = 64, BS = 65536 };
	uint8_t *bufs = malloc((size_t)N * BS);
	struct iovec iov[N];
	struct qdone d = { 0, 0 };
	for (int i = 0; i < N; i++) {
		fill(bufs + (size_t)i * BS, BS, (uint64_t)i * BS, 9);
		iov[i].iov_base = bufs + (size_t)i * BS;
		iov[i].iov_len = BS;
		struct blk_request rq = { .op = BLK_OP_WRITE,
					  .off = (uint64_t)i * BS, .len = BS,
					  .iov = &iov[i], .iovcnt = 1,
					  .done = done_cb, .opaque = &d };
		while (blk_queue_submit(q, &rq) == -EAGAIN)
			blk_queue_poll(q, true);
	}
	while (blk_queue_inflight(q))
		blk_queue_poll(q, true);
	struct blk_request fl = { .op = BLK_OP_FLUSH, .done = done_cb,
				  .opaque = &d };
	CHECK(blk_queue_submit(q, &fl) == 0);
	while (blk_queue_inflight(q))
		blk_queue_poll(q, true);
	CHECK(d.n == N + 1 && d.errors == 0);
	memset(bufs, 0, (size_t)N * BS);
	d.n = 0;
	for (int i = 0; i < N; i++) {
		struct blk_request rq = { .op = BLK_OP_READ,
					  .off = (uint64_t)i * BS, .len = BS,
					  .iov = &iov[i], .iovcnt = 1,
					  .done = done_cb, .opaque = &d };
		while (blk_queue_submit(q, &rq) == -EAGAIN)
			blk_queue_poll(q, true);
	}
	blk_queue_free(q);
	CHECK(d.n == N && d.errors == 0);
	uint8_t *want = malloc(BS);
	bool same = true;
	for (int i = 0; i < N; i++) {
		fill(want, BS, (uint64_t)i * BS, 9);
		same &= !memcmp(want, bufs + (size_t)i * BS, BS);
	}
	CHECK(same);
	free(want);
	free(bufs);
	blk_close(b);
}

/* Many threads writing disjoint ranges of a qcow2 image at once, some into
 * fresh clusters, some in place, with discards between rounds. */
static void test_queue_concurrent(void)
{
	const char *p = tmp("conc.qcow2");
	enum { SLOT = 24576, SLOTS = 256, DEPTH = 32 };
	uint64_t size = (uint64_t)SLOT * SLOTS;
	CHECK(create(p, BLK_FMT_QCOW2, size, 16384, 0) == 0);
	struct blk *b = open_img(p, BLK_OPEN_RDWR);
	struct blk_queue *q = blk_queue_new(b, DEPTH, 4, 0);
	uint8_t *model = calloc(1, size), *bufs = malloc((size_t)DEPTH * SLOT);
	struct iovec iov[DEPTH];
	struct qdone d = { 0, 0 };
	srand(77);
	for (int round = 0; round < 40; round++) {
		bool used[SLOTS] = { false };
		for (int k = 0; k < DEPTH; k++) {
			int sl;
			do
				sl = rand() % SLOTS;
			while (used[sl]);
			used[sl] = true;
			uint64_t off = (uint64_t)sl * SLOT + (uint64_t)(rand() % 4096);
			uint64_t len = 1 + (uint64_t)(rand() % (SLOT - 4096));
			uint8_t *buf = bufs + (size_t)k * SLOT;
			fill(buf, len, off, (unsigned)round);
			memcpy(model + off, buf, len);
			iov[k].iov_base = buf;
			iov[k].iov_len = len;
			struct blk_request rq = { .op = BLK_OP_WRITE, .off = off,
						  .len = len, .iov = &iov[k],
						  .iovcnt = 1, .done = done_cb,
						  .opaque = &d };
			CHECK(blk_queue_submit(q, &rq) == 0);
		}
		while (blk_queue_inflight(q))
			blk_queue_poll(q, true);
		if (round % 8 == 7) {
			uint64_t off = (uint64_t)(rand() % SLOTS) * SLOT;
			CHECK(blk_discard(b, off, 65536) == 0);
			uint64_t a = ALIGN_UP(off, 16384), e = off + 65536;
			e = e > size ? size : e - e % 16384;
			if (e > a)
				memset(model + a, 0, e - a);
		}
	}
	blk_queue_free(q);
	CHECK(d.errors == 0 && d.n == 40 * DEPTH);
	uint8_t *got = malloc(size);
	CHECK(blk_pread(b, 0, got, size) == 0);
	CHECK(!memcmp(got, model, size));
	CHECK(clean(b));
	blk_close(b);
	free(got);
	free(model);
	free(bufs);
}

static void test_resize_amend_backing(void)
{
	const char *base = tmp("base.qcow2"), *top = tmp("top.qcow2");
	CHECK(create(base, BLK_FMT_QCOW2, 2 << 20, 0, 0) == 0);
	struct blk *b = open_img(base, BLK_OPEN_RDWR);
	uint8_t buf[65536], got[65536];
	fill(buf, sizeof(buf), 0, 5);
	CHECK(blk_pwrite(b, 0, buf, sizeof(buf), 0) == 0);
	/* grow, write past the old end, shrink back */
	CHECK(blk_resize(b, 8 << 20, false, BLK_PREALLOC_OFF) == 0);
	CHECK(blk_pwrite(b, 6 << 20, buf, sizeof(buf), 0) == 0);
	CHECK(clean(b));
	CHECK(blk_resize(b, 2 << 20, true, BLK_PREALLOC_OFF) == 0);
	CHECK_EQ_U64(blk_size(b), 2 << 20);
	CHECK(clean(b));
	/* shrink to a size inside a written cluster, grow: the tail is 0 */
	CHECK(blk_resize(b, 1024, true, BLK_PREALLOC_OFF) == 0);
	CHECK(clean(b));
	CHECK(blk_resize(b, 2 << 20, false, BLK_PREALLOC_OFF) == 0);
	CHECK(blk_pread(b, 0, got, sizeof(got)) == 0);
	CHECK(!memcmp(got, buf, 1024));
	bool tail_zero = true;
	for (size_t i = 1024; i < sizeof(got); i++)
		tail_zero &= got[i] == 0;
	CHECK(tail_zero);
	CHECK(blk_pwrite(b, 0, buf, sizeof(buf), 0) == 0);
	CHECK(clean(b));
	CHECK(blk_pread(b, 0, got, sizeof(got)) == 0);
	CHECK(!memcmp(got, buf, sizeof(buf)));
	/* zero clusters, then amend to 0.10 keeps reading zeros */
	CHECK(blk_write_zeroes(b, 0, 65536, 0) == 0);
	struct blk_amend_opts ao;
	blk_amend_opts_init(&ao);
	ao.compat = BLK_COMPAT_0_10;
	CHECK(blk_amend(b, &ao) == 0);
	struct blk_info info;
	CHECK(blk_get_info(b, &info) == 0);
	CHECK(info.qcow2_version == 2);
	CHECK(blk_pread(b, 0, got, sizeof(got)) == 0);
	CHECK(got[0] == 0 && got[65535] == 0);
	ao.compat = BLK_COMPAT_1_1;
	ao.lazy_refcounts = 1;
	CHECK(blk_amend(b, &ao) == 0);
	CHECK(blk_get_info(b, &info) == 0);
	CHECK(info.qcow2_version == 3 && info.lazy_refcounts);
	CHECK(blk_pwrite(b, 65536, buf, sizeof(buf), 0) == 0);
	CHECK(clean(b));
	CHECK(blk_close(b) == 0);
	/* overlay: reads through, writes stay on top, make_empty */
	struct blk_create_opts o;
	blk_create_opts_init(&o);
	o.backing_file = "base.qcow2";
	o.backing_format = "qcow2";
	char err[512];
	CHECK(blk_create(top, &o, err, sizeof(err)) == 0);
	b = open_img(top, BLK_OPEN_RDWR);
	CHECK(b && blk_backing(b) != NULL);
	CHECK_EQ_U64(blk_size(b), 2 << 20);
	CHECK(blk_pread(b, 65536, got, sizeof(got)) == 0);
	CHECK(!memcmp(got, buf, sizeof(got)));
	struct blk_status st;
	CHECK(blk_block_status(b, 65536, 65536, true, &st) == 0);
	CHECK(st.depth == 1 && (st.flags & BLK_ST_DATA));
	memset(buf, 0xab, 100);
	CHECK(blk_pwrite(b, 65536 + 10, buf, 100, 0) == 0);
	CHECK(blk_block_status(b, 65536, 65536, true, &st) == 0);
	CHECK(st.depth == 0);
	CHECK(blk_make_empty(b) == 0);
	CHECK(blk_pread(b, 65536, got, 200) == 0);
	fill(buf, 200, 0, 5); /* base holds the offset-0 pattern there */
	CHECK(!memcmp(got, buf, 200));
	CHECK(blk_change_backing_file(b, NULL, NULL) == 0);
	CHECK(clean(b));
	blk_close(b);
	b = open_img(top, 0);
	CHECK(b && blk_backing(b) == NULL);
	CHECK(blk_get_info(b, &info) == 0 && info.backing_file[0] == 0);
	blk_close(b);
}

static void test_snapshots(void)
{
	const char *p = tmp("snap.qcow2");
	CHECK(create(p, BLK_FMT_QCOW2, 1 << 20, 4096, 0) == 0);
	struct blk *b = open_img(p, BLK_OPEN_RDWR);
	uint8_t a[8192], c[8192];
	fill(a, sizeof(a), 0, 1);
	CHECK(blk_pwrite(b, 0, a, sizeof(a), 0) == 0);
	CHECK(blk_snapshot_create(b, "first") == 0);
	CHECK(blk_snapshot_create(b, "first") == -EEXIST);
	fill(c, sizeof(c), 0, 2);
	CHECK(blk_pwrite(b, 0, c, sizeof(c), 0) == 0);
	CHECK(clean(b));
	struct blk_snapshot_info *sn;
	unsigned nb;
	CHECK(blk_snapshot_list(b, &sn, &nb) == 0 && nb == 1);
	if (nb == 1) {
		CHECK(!strcmp(sn[0].name, "first") && !strcmp(sn[0].id, "1"));
		CHECK_EQ_U64(sn[0].disk_size, 1 << 20);
	}
	free(sn);
	blk_close(b);
	/* read-only view of the snapshot */
	struct blk_open_opts o = { .snapshot = "first" };
	char err[512];
	CHECK(blk_open(p, &o, &b, err, sizeof(err)) == 0);
	uint8_t got[8192];
	CHECK(blk_pread(b, 0, got, sizeof(got)) == 0);
	CHECK(!memcmp(got, a, sizeof(a)));
	blk_close(b);
	b = open_img(p, BLK_OPEN_RDWR);
	CHECK(blk_snapshot_apply(b, "1") == 0);
	CHECK(blk_pread(b, 0, got, sizeof(got)) == 0);
	CHECK(!memcmp(got, a, sizeof(a)));
	CHECK(blk_snapshot_delete(b, "first") == 0);
	CHECK(clean(b));
	blk_close(b);
}

static void test_refcount_overflow(void)
{
	/* 2-bit refcounts hold at most 3: a third snapshot must fail cleanly
	 * and leave an image with at most leaks */
	const char *p = tmp("ovf.qcow2");
	CHECK(create(p, BLK_FMT_QCOW2, 1 << 20, 4096, 2) == 0);
	struct blk *b = open_img(p, BLK_OPEN_RDWR);
	uint8_t buf[4096];
	fill(buf, sizeof(buf), 0, 4);
	CHECK(blk_pwrite(b, 0, buf, sizeof(buf), 0) == 0);
	CHECK(blk_snapshot_create(b, "a") == 0);
	CHECK(blk_snapshot_create(b, "b") == 0);
	CHECK(blk_snapshot_create(b, "c") == -ERANGE);
	CHECK(strstr(blk_last_error(b), "exceed 3") != NULL);
	struct blk_check_result r;
	CHECK(blk_check(b, BLK_REPAIR_NONE, NULL, NULL, &r) == 0);
	CHECK(r.corruptions == 0 && r.check_errors == 0 && r.leaks == 0);
	blk_close(b);
	b = open_img(p, BLK_OPEN_RDWR | BLK_OPEN_CHECK);
	CHECK(blk_check(b, BLK_REPAIR_LEAKS, NULL, NULL, &r) == 0);
	CHECK(r.corruptions == 0 && r.leaks == 0);
	uint8_t got[4096];
	CHECK(blk_pread(b, 0, got, sizeof(got)) == 0);
	CHECK(!memcmp(got, buf, sizeof(buf)));
	blk_close(b);
}

static void test_compressed(void)
{
	const char *p = tmp("comp.qcow2");
	struct blk_create_opts o;
	blk_create_opts_init(&o);
	o.size_bytes = 1 << 20;
	o.compression_type = BLK_COMPRESS_ZSTD;
	char err[512];
	CHECK(blk_create(p, &o, err, sizeof(err)) == 0);
	struct blk *b = open_img(p, BLK_OPEN_RDWR);
	static uint8_t buf[65536], got[65536];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i / 1000);
	CHECK(blk_pwrite_compressed(b, 0, buf, sizeof(buf)) == 0);
	CHECK(blk_pwrite_compressed(b, 65536, buf, sizeof(buf)) == 0);
	struct blk_status st;
	CHECK(blk_block_status(b, 0, 1 << 20, false, &st) == 0);
	CHECK(st.flags & BLK_ST_COMPRESSED);
	CHECK(blk_pread(b, 65536, got, sizeof(got)) == 0);
	CHECK(!memcmp(got, buf, sizeof(buf)));
	struct blk_check_result r;
	CHECK(blk_check(b, BLK_REPAIR_NONE, NULL, NULL, &r) == 0);
	CHECK(r.compressed_clusters == 2 && r.corruptions == 0 && r.leaks == 0);
	/* compressed writes through a queue, compressed in parallel */
	struct blk_queue *q = blk_queue_new(b, 8, 4, 0);
	static uint8_t many[8][65536];
	struct iovec iov[8];
	struct qdone d = { 0, 0 };
	for (int i = 0; i < 8; i++) {
		for (size_t k = 0; k < 65536; k++)
			many[i][k] = (uint8_t)(i + k / 3000);
		iov[i].iov_base = many[i];
		iov[i].iov_len = 65536;
		struct blk_request rq = { .op = BLK_OP_WRITE_COMPRESSED,
					  .off = (uint64_t)(2 + i) * 65536,
					  .len = 65536, .iov = &iov[i],
					  .iovcnt = 1, .done = done_cb,
					  .opaque = &d };
		CHECK(blk_queue_submit(q, &rq) == 0);
	}
	blk_queue_free(q);
	CHECK(d.n == 8 && d.errors == 0);
	bool same = true;
	for (int i = 0; i < 8; i++) {
		CHECK(blk_pread(b, (uint64_t)(2 + i) * 65536, got, 65536) == 0);
		same &= !memcmp(got, many[i], 65536);
	}
	CHECK(same);
	CHECK(blk_check(b, BLK_REPAIR_NONE, NULL, NULL, &r) == 0);
	CHECK(r.compressed_clusters == 10 && r.corruptions == 0 && r.leaks == 0);
	blk_close(b);
}

static void test_reftable_growth(void)
{
	/* 512-byte clusters: one refcount table cluster covers 8 MiB */
	const char *p = tmp("grow.qcow2");
	CHECK(create(p, BLK_FMT_QCOW2, 24 << 20, 512, 0) == 0);
	struct blk *b = open_img(p, BLK_OPEN_RDWR);
	size_t n = 1 << 20;
	uint8_t *buf = malloc(n), *got = malloc(n);
	for (uint64_t off = 0; off < (24 << 20); off += n) {
		fill(buf, n, off, 7);
		CHECK(blk_pwrite(b, off, buf, n, 0) == 0);
	}
	CHECK(clean(b));
	blk_close(b);
	b = open_img(p, 0);
	bool same = true;
	for (uint64_t off = 0; off < (24 << 20); off += n) {
		fill(buf, n, off, 7);
		CHECK(blk_pread(b, off, got, n) == 0);
		same &= !memcmp(buf, got, n);
	}
	CHECK(same);
	blk_close(b);
	free(buf);
	free(got);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/maquina-test-block-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	test_errors();
	test_rw(BLK_FMT_RAW, 0, 0, 3 << 20);
	test_rw(BLK_FMT_QCOW2, 65536, 16, 3 << 20);
	test_rw(BLK_FMT_QCOW2, 512, 16, 1 << 20);
	for (unsigned bits = 1; bits <= 64; bits *= 2)
		test_rw(BLK_FMT_QCOW2, 4096, bits, 1 << 20);
	test_raw_status();
	test_direct();
	test_queue(BLK_FMT_RAW, true);
	test_queue(BLK_FMT_QCOW2, false);
	test_queue_concurrent();
	test_resize_amend_backing();
	test_snapshots();
	test_compressed();
	test_refcount_overflow();
	test_reftable_growth();
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	TEST_MAIN_END();
}

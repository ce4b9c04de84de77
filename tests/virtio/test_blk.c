/*
 * virtio-blk driven like a guest driver would: real raw and qcow2 images,
 * rings and buffers in guest RAM, completions through the event loop.
 *
 * The guest's side is vdriver (a small virtio-pci driver over the MMIO
 * bus and the PCI host), so these also run the transport and the
 * virtqueue code as a guest would meet them.
 *
 * Usage: test-virtio-blk DIR (a scratch folder for the images).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "mem/mem.h"
#include "test.h"
#include "virtio/virtio.h"
#include "vdriver.h"

#define QSIZE 256

#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8
#define T_DISCARD 11
#define T_WRITE_ZEROES 13
#define S_OK 0
#define S_IOERR 1
#define S_UNSUPP 2
#define F_RO 5
#define F_BLK_SIZE 6
#define F_FLUSH 9
#define F_CONFIG_WCE 11
#define F_DISCARD 13
#define F_WRITE_ZEROES 14
#define F_SEG_MAX 2

static const char *dir;

/* ------------------------------------------------------------------ */
/* The guest's side: vdriver over the PCI transport                    */

struct drv {
	struct vbench *b;
	struct vdrv *v;
	struct virtio_dev *vd;
	uint64_t offered;
	bool done[QSIZE];
	uint32_t done_len[QSIZE];
	uint16_t added, completed;
	uint64_t bump, bump_start, bump_end;
	bool indirect; /* chains go into indirect tables */
};

struct seg {
	uint64_t gpa;
	uint32_t len;
	bool write; /* device-writable */
};

static void *gptr(struct drv *d, uint64_t gpa, uint64_t len)
{
	void *p = mem_ram_ptr(d->b->mem, gpa, len);
	if (!p) {
		fprintf(stderr, "test bug: gpa 0x%llx+%llu outside RAM\n", (unsigned long long)gpa,
			(unsigned long long)len);
		abort();
	}
	return p;
}

/* Guest buffers from the driver's window, reused round-robin (callers
 * keep fewer bytes in flight than the window holds). */
static uint64_t galloc(struct drv *d, uint64_t len)
{
	len = ALIGN_UP(len, 16);
	if (d->bump + len > d->bump_end)
		d->bump = d->bump_start;
	uint64_t g = d->bump;
	d->bump += len;
	return g;
}

static uint16_t used_idx(struct drv *d)
{
	return vdrv_used_idx(d->v, 0);
}

/* Reset, features (the offered ones masked by want), MSI-X, the queue,
 * DRIVER_OK.  0 or -1. */
static int drv_init(struct drv *d, uint64_t want)
{
	if (vdrv_negotiate(d->v, d->offered & want) < 0)
		return -1;
	vdrv_msix_enable(d->v, true);
	if (vdrv_queue_setup(d->v, 0, QSIZE, 0) < 0)
		return -1;
	vdrv_driver_ok(d->v);
	uint8_t st = vdrv_status(d->v);
	if (!(st & VIRTIO_STATUS_DRIVER_OK) || (st & VIRTIO_STATUS_NEEDS_RESET))
		return -1;
	memset(d->done, 0, sizeof(d->done));
	d->added = d->completed = 0;
	return 0;
}

/* Makes the device on bench b and opens a driver on it. */
static int drv_open(struct drv *d, struct vbench *b, const struct virtio_blk_opts *o,
		    uint64_t want)
{
	memset(d, 0, sizeof(*d));
	d->b = b;
	char err[512] = "";
	d->vd = virtio_blk_new(&b->env, o, err, sizeof(err));
	if (!d->vd) {
		fprintf(stderr, "virtio_blk_new: %s\n", err);
		return -1;
	}
	d->v = vbench_attach(b, d->vd);
	if (!d->v)
		return -1;
	d->bump_start = d->bump = vbench_alloc(b, 6u << 20, 4096);
	d->bump_end = d->bump_start + (6u << 20);
	if (!d->bump_start)
		return -1;
	d->offered = vdrv_device_features(d->v);
	return drv_init(d, want);
}

static int drv_add(struct drv *d, const struct seg *s, unsigned n)
{
	struct vdrv_buf bufs[80];
	if (n > ARRAY_SIZE(bufs))
		return -1;
	for (unsigned i = 0; i < n; i++)
		bufs[i] = (struct vdrv_buf){ s[i].gpa, s[i].len, s[i].write };
	int head = vdrv_add(d->v, 0, bufs, n, d->indirect);
	if (head >= 0) {
		d->done[head] = false;
		d->added++;
	}
	return head;
}

static void drv_kick(struct drv *d)
{
	vdrv_kick(d->v, 0);
}

static void drv_collect(struct drv *d)
{
	uint32_t len;
	int head;
	while ((head = vdrv_get_used(d->v, 0, &len)) >= 0) {
		if (head >= QSIZE || d->done[head]) {
			fprintf(stderr, "device returned a bad id %d\n", head);
			test_failures++;
			continue;
		}
		d->done[head] = true;
		d->done_len[head] = len;
		d->completed++;
	}
}

/* Runs the event loop until head completes (10 s at most). */
static bool drv_wait(struct drv *d, int head)
{
	uint64_t end = clock_ns() + 10000000000ull;
	for (;;) {
		drv_collect(d);
		if (d->done[head])
			return true;
		if (clock_ns() > end)
			return false;
		ev_loop_run_once(d->b->env.loop, 50000000);
	}
}

/* Runs the loop until every chain made available has come back. */
static bool drv_wait_all(struct drv *d)
{
	uint64_t end = clock_ns() + 20000000000ull;
	for (;;) {
		drv_collect(d);
		if (d->completed == d->added)
			return true;
		if (clock_ns() > end)
			return false;
		ev_loop_run_once(d->b->env.loop, 50000000);
	}
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */

/*
 * One request, synchronously.  buf holds the data (written to the guest
 * for OUT-like types, filled from it for IN/GET_ID).  nsplit cuts the
 * header and the data into that many segments each (1: whole); the status
 * byte gets its own segment unless status_with_data.  Returns the status
 * byte (0xff if the device did not write it, -1 on timeout) and the used
 * length in *used_len.
 */
struct req_opts {
	unsigned nsplit;
	bool status_with_data;
	uint32_t *used_len;
};

static int do_req(struct drv *d, uint32_t type, uint64_t sector, void *buf, uint32_t len,
		  const struct req_opts *ro)
{
	struct req_opts def = { .nsplit = 1 };
	if (!ro)
		ro = &def;
	unsigned ns = ro->nsplit ? ro->nsplit : 1;
	bool in_data = type == T_IN || type == T_GET_ID;
	uint64_t hdr = galloc(d, 16), data = galloc(d, len + 1);
	uint8_t h[16];
	memcpy(h, &type, 4);
	memset(h + 4, 0, 4);
	memcpy(h + 8, &sector, 8);
	memcpy(gptr(d, hdr, 16), h, 16);
	if (len) {
		if (in_data)
			memset(gptr(d, data, len), 0xcc, len);
		else
			memcpy(gptr(d, data, len), buf, len);
	}
	uint64_t st = data + len; /* status byte right after the data */
	*(uint8_t *)gptr(d, st, 1) = 0xff;
	struct seg s[64];
	unsigned n = 0;
	/* the header, cut into ns pieces */
	for (unsigned k = 0, off = 0; k < ns; k++) {
		unsigned piece = k + 1 < ns ? (16 - off) / (ns - k) : 16 - off;
		if (piece == 0)
			continue;
		s[n++] = (struct seg){ hdr + off, piece, false };
		off += piece;
	}
	if (len) {
		for (unsigned k = 0, off = 0; k < ns; k++) {
			unsigned piece = k + 1 < ns ? (len - off) / (ns - k) : len - off;
			if (piece == 0)
				continue;
			bool last = k + 1 == ns;
			s[n++] = (struct seg){ data + off,
					       piece + (last && in_data && ro->status_with_data),
					       in_data };
			off += piece;
		}
	}
	if (!(in_data && len && ro->status_with_data))
		s[n++] = (struct seg){ st, 1, true };
	int head = drv_add(d, s, n);
	if (head < 0)
		return -1;
	drv_kick(d);
	if (!drv_wait(d, head))
		return -1;
	if (ro->used_len)
		*ro->used_len = d->done_len[head];
	if (in_data && len)
		memcpy(buf, gptr(d, data, len), len);
	return *(uint8_t *)gptr(d, st, 1);
}

static int dwz_req(struct drv *d, uint32_t type, uint64_t sector, uint32_t nb, uint32_t flags)
{
	uint8_t seg[16];
	memcpy(seg, &sector, 8);
	memcpy(seg + 8, &nb, 4);
	memcpy(seg + 12, &flags, 4);
	return do_req(d, type, 0, seg, 16, NULL);
}

static void pattern(uint8_t *buf, size_t len, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (uint8_t)x;
	}
}

static uint64_t config_u64(struct drv *d, uint32_t off, uint32_t len)
{
	return vdrv_config_read(d->v, off, len);
}

/* ------------------------------------------------------------------ */
/* Images                                                              */

static char *img_path(const char *name)
{
	static char paths[16][512];
	static unsigned k;
	char *p = paths[k++ % 16];
	snprintf(p, 512, "%s/%s", dir, name);
	return p;
}

static int make_image(const char *path, enum blk_format fmt, uint64_t size)
{
	struct blk_create_opts o;
	blk_create_opts_init(&o);
	o.format = fmt;
	o.size_bytes = size;
	char err[512];
	int ret = blk_create(path, &o, err, sizeof(err));
	if (ret < 0)
		fprintf(stderr, "blk_create %s: %s\n", path, err);
	return ret;
}

/* Reads the image back through the block layer and compares with want. */
static bool image_equals(const char *path, uint64_t off, const uint8_t *want, size_t len)
{
	struct blk *b;
	char err[512];
	if (blk_open(path, NULL, &b, err, sizeof(err)) < 0) {
		fprintf(stderr, "blk_open %s: %s\n", path, err);
		return false;
	}
	uint8_t *got = malloc(len);
	bool ok = got && blk_pread(b, off, got, len) == 0 && !memcmp(got, want, len);
	free(got);
	blk_close(b);
	return ok;
}

static bool have_qemu_img(void)
{
	return system("qemu-img --version >/dev/null 2>&1") == 0;
}

/* qemu-img convert to raw, then compare bytes [off, off+len) with want. */
static bool qemu_img_equals(const char *path, uint64_t off, const uint8_t *want, size_t len)
{
	char raw[600], cmd[1400];
	snprintf(raw, sizeof(raw), "%s.conv.raw", path);
	snprintf(cmd, sizeof(cmd), "qemu-img convert -O raw '%s' '%s'", path, raw);
	if (system(cmd) != 0)
		return false;
	int fd = open(raw, O_RDONLY);
	uint8_t *got = malloc(len);
	bool ok = fd >= 0 && got && pread(fd, got, len, (off_t)off) == (ssize_t)len &&
		  !memcmp(got, want, len);
	if (fd >= 0)
		close(fd);
	free(got);
	unlink(raw);
	return ok;
}

static bool qemu_img_check_clean(const char *path)
{
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "qemu-img check -q '%s' >/dev/null 2>&1", path);
	return system(cmd) == 0;
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */

struct env {
	struct ev_loop *loop;
};

/* A fresh machine's worth of PCI, MMIO and RAM, on the shared loop. */
static void bench_init(struct env *e, struct vbench *b)
{
	if (vbench_init(b, 64u << 20) < 0) {
		fprintf(stderr, "vbench_init failed\n");
		exit(1);
	}
	b->env.loop = e->loop;
}

#define DISK_BYTES (8u << 20)
#define CAP (DISK_BYTES / 512)

static void test_config(struct env *e, const char *path)
{
	struct virtio_blk_opts o = { .path = path, .serial = "cfg" };
	struct drv d;
	struct vbench b;
	bench_init(e, &b);
	CHECK(drv_open(&d, &b, &o, ~0ull) == 0);
	CHECK_EQ_U64(config_u64(&d, 0, 8), CAP);
	CHECK_EQ_U64(config_u64(&d, 12, 4), QSIZE - 2); /* seg_max */
	CHECK_EQ_U64(config_u64(&d, 20, 4), 512);	/* blk_size */
	CHECK_EQ_U64(config_u64(&d, 32, 1), 1);		/* writeback */
	CHECK(config_u64(&d, 36, 4) > 0);		/* max_discard_sectors */
	CHECK_EQ_U64(config_u64(&d, 40, 4), 1);		/* max_discard_seg */
	CHECK(config_u64(&d, 44, 4) >= 1);		/* discard alignment */
	CHECK_EQ_U64(config_u64(&d, 52, 4), 1);		/* max_write_zeroes_seg */
	CHECK_EQ_U64(config_u64(&d, 56, 1), 1);		/* may unmap */
	/* past the end reads as zero */
	CHECK_EQ_U64(config_u64(&d, 60, 4), 0);
	uint64_t f = d.offered;
	CHECK(f & (1ull << F_FLUSH));
	CHECK(f & (1ull << F_BLK_SIZE));
	CHECK(f & (1ull << F_SEG_MAX));
	CHECK(f & (1ull << F_DISCARD));
	CHECK(f & (1ull << F_WRITE_ZEROES));
	CHECK(!(f & (1ull << F_RO)));
	/* writeback is writable with CONFIG_WCE */
	uint8_t zero = 0;
	vdrv_config_write(d.v, 32, 1, zero);
	CHECK_EQ_U64(config_u64(&d, 32, 1), 0);
	/* other fields ignore writes */
	uint64_t junk = 0x1234;
	vdrv_config_write(d.v, 0, 4, junk);
	CHECK_EQ_U64(config_u64(&d, 0, 8), CAP);
	/* writes in write-through mode work */
	uint8_t buf[1024], back[1024];
	pattern(buf, sizeof(buf), 77);
	CHECK_EQ_U64(do_req(&d, T_OUT, 10, buf, sizeof(buf), NULL), S_OK);
	CHECK_EQ_U64(do_req(&d, T_IN, 10, back, sizeof(back), NULL), S_OK);
	CHECK(!memcmp(buf, back, sizeof(buf)));
	/* a reset brings write-back back */
	CHECK(drv_init(&d, ~0ull) == 0);
	CHECK_EQ_U64(config_u64(&d, 32, 1), 1);
	/* without FLUSH negotiated the device is write-through */
	CHECK(drv_init(&d, ~(1ull << F_FLUSH)) == 0);
	CHECK_EQ_U64(config_u64(&d, 32, 1), 0);
	/* GET_ID */
	CHECK(drv_init(&d, ~0ull) == 0);
	char id[20];
	uint32_t ulen = 0;
	struct req_opts ro = { .used_len = &ulen };
	CHECK_EQ_U64(do_req(&d, T_GET_ID, 0, id, 20, &ro), S_OK);
	CHECK(!memcmp(id, "cfg\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 20));
	CHECK_EQ_U64(ulen, 21);
	/* a short buffer gets what fits */
	char id2[2];
	CHECK_EQ_U64(do_req(&d, T_GET_ID, 0, id2, 2, NULL), S_OK);
	CHECK(id2[0] == 'c' && id2[1] == 'f');
	vbench_fini(&b);

	/* default serial: the file's base name */
	struct virtio_blk_opts o2 = { .path = path };
	bench_init(e, &b);
	CHECK(drv_open(&d, &b, &o2, ~0ull) == 0);
	memset(id, 0, sizeof(id));
	CHECK_EQ_U64(do_req(&d, T_GET_ID, 0, id, 20, NULL), S_OK);
	const char *base = strrchr(path, '/') + 1;
	CHECK(!strncmp(id, base, 20));
	vbench_fini(&b);
}

/* Writes, reads back, flushes, and checks the image afterwards through
 * the block layer and qemu-img. */
static void test_rw(struct env *e, const char *path, enum virtio_blk_cache cache)
{
	struct virtio_blk_opts o = { .path = path, .cache = cache };
	struct drv d;
	struct vbench b;
	bench_init(e, &b);
	CHECK(drv_open(&d, &b, &o, ~0ull) == 0);
	CHECK_EQ_U64(config_u64(&d, 0, 8), CAP);
	uint8_t *want = calloc(1, DISK_BYTES);
	uint8_t *buf = malloc(256 << 10), *back = malloc(256 << 10);
	/* several sizes and layouts */
	struct {
		uint64_t sector;
		uint32_t len;
		unsigned nsplit;
	} w[] = {
		{ 0, 512, 1 },	     { 1, 4096, 3 },	   { 100, 65536, 7 },
		{ 129, 1536, 16 },   { CAP - 8, 4096, 2 }, { 2048, 256 << 10, 5 },
		{ CAP - 1, 512, 1 }, { 777, 512, 16 },
	};
	for (unsigned i = 0; i < ARRAY_SIZE(w); i++) {
		pattern(buf, w[i].len, i + 1);
		struct req_opts ro = { .nsplit = w[i].nsplit };
		uint32_t ulen = 0;
		ro.used_len = &ulen;
		CHECK_EQ_U64(do_req(&d, T_OUT, w[i].sector, buf, w[i].len, &ro), S_OK);
		CHECK_EQ_U64(ulen, 1); /* the status byte */
		memcpy(want + w[i].sector * 512, buf, w[i].len);
	}
	for (unsigned i = 0; i < ARRAY_SIZE(w); i++) {
		uint32_t ulen = 0;
		struct req_opts ro = { .nsplit = 4 - i % 4, .status_with_data = i % 2,
				       .used_len = &ulen };
		CHECK_EQ_U64(do_req(&d, T_IN, w[i].sector, back, w[i].len, &ro), S_OK);
		CHECK(!memcmp(back, want + w[i].sector * 512, w[i].len));
		CHECK_EQ_U64(ulen, w[i].len + 1);
	}
	CHECK_EQ_U64(do_req(&d, T_FLUSH, 0, NULL, 0, NULL), S_OK);
	/* an unwritten range reads as zeros */
	CHECK_EQ_U64(do_req(&d, T_IN, 5000, back, 4096, NULL), S_OK);
	CHECK(!memcmp(back, want + 5000 * 512, 4096));

	/* write-zeroes and discard */
	CHECK_EQ_U64(dwz_req(&d, T_WRITE_ZEROES, 100, 64, 0), S_OK);
	memset(want + 100 * 512, 0, 64 * 512);
	CHECK_EQ_U64(dwz_req(&d, T_WRITE_ZEROES, 2048, 512, 1), S_OK); /* UNMAP */
	memset(want + 2048 * 512, 0, 512 * 512);
	CHECK_EQ_U64(do_req(&d, T_IN, 96, back, 80 * 512, NULL), S_OK);
	CHECK(!memcmp(back, want + 96 * 512, 80 * 512));
	/* discard of whole clusters: reads as zeros afterwards (no backing
	 * file; raw punches a hole) */
	pattern(buf, 128 << 10, 99);
	CHECK_EQ_U64(do_req(&d, T_OUT, 4096, buf, 128 << 10, NULL), S_OK);
	CHECK_EQ_U64(dwz_req(&d, T_DISCARD, 4096, 256, 0), S_OK);
	CHECK_EQ_U64(do_req(&d, T_IN, 4096, back, 128 << 10, NULL), S_OK);
	bool zero = true;
	for (unsigned i = 0; i < (128u << 10); i++)
		zero &= back[i] == 0;
	CHECK(zero);
	/* bad segments */
	CHECK_EQ_U64(dwz_req(&d, T_DISCARD, 0, 8, 1), S_UNSUPP);	  /* discard + unmap */
	CHECK_EQ_U64(dwz_req(&d, T_WRITE_ZEROES, 0, 8, 2), S_UNSUPP); /* unknown flag */
	CHECK_EQ_U64(dwz_req(&d, T_DISCARD, CAP - 4, 8, 0), S_IOERR);	  /* past the end */
	CHECK_EQ_U64(dwz_req(&d, T_WRITE_ZEROES, UINT64_MAX - 2, 8, 0), S_IOERR);
	CHECK_EQ_U64(dwz_req(&d, T_DISCARD, 0, UINT32_MAX, 0), S_IOERR);  /* too many */
	uint8_t two[32] = { 0 };
	two[8] = 1;
	two[24] = 1;
	CHECK_EQ_U64(do_req(&d, T_DISCARD, 0, two, 32, NULL), S_UNSUPP); /* 2 segments */
	CHECK_EQ_U64(do_req(&d, T_DISCARD, 0, two, 12, NULL), S_IOERR);  /* not 16 bytes */
	CHECK_EQ_U64(do_req(&d, T_WRITE_ZEROES, 0, NULL, 0, NULL), S_IOERR);

	/* out of range, odd lengths, unknown types */
	CHECK_EQ_U64(do_req(&d, T_IN, CAP, back, 512, NULL), S_IOERR);
	CHECK_EQ_U64(do_req(&d, T_IN, CAP - 1, back, 1024, NULL), S_IOERR);
	CHECK_EQ_U64(do_req(&d, T_OUT, CAP, buf, 512, NULL), S_IOERR);
	CHECK_EQ_U64(do_req(&d, T_IN, UINT64_MAX, back, 512, NULL), S_IOERR);
	CHECK_EQ_U64(do_req(&d, T_OUT, 1ull << 55, buf, 512, NULL), S_IOERR); /* *512 wraps */
	CHECK_EQ_U64(do_req(&d, T_IN, (UINT64_MAX / 512) + 1, back, 512, NULL), S_IOERR);
	CHECK_EQ_U64(do_req(&d, T_IN, 0, back, 100, NULL), S_IOERR);
	CHECK_EQ_U64(do_req(&d, T_OUT, 0, buf, 513, NULL), S_IOERR);
	CHECK_EQ_U64(do_req(&d, T_IN, 0, back, 0, NULL), S_OK);
	CHECK_EQ_U64(do_req(&d, T_IN, CAP, back, 0, NULL), S_OK);
	CHECK_EQ_U64(do_req(&d, 99, 0, NULL, 0, NULL), S_UNSUPP);
	CHECK_EQ_U64(do_req(&d, 2, 0, back, 512, NULL), S_UNSUPP);
	/* the image is unchanged by all of that */
	CHECK_EQ_U64(do_req(&d, T_IN, 0, back, 4096, NULL), S_OK);
	CHECK(!memcmp(back, want, 4096));
	CHECK(!(vdrv_status(d.v) & VIRTIO_STATUS_NEEDS_RESET));
	vbench_fini(&b);

	CHECK(image_equals(path, 0, want, DISK_BYTES));
	if (have_qemu_img()) {
		CHECK(qemu_img_equals(path, 0, want, DISK_BYTES));
		if (strstr(path, ".qcow2"))
			CHECK(qemu_img_check_clean(path));
	} else {
		printf("qemu-img not found: skipping the qemu-img comparisons\n");
	}
	free(want);
	free(buf);
	free(back);
}

static void test_read_only(struct env *e, const char *path)
{
	/* put known data in first */
	uint8_t buf[4096], back[4096];
	pattern(buf, sizeof(buf), 5);
	struct blk *img;
	char err[512];
	struct blk_open_opts bo = { .flags = BLK_OPEN_RDWR };
	CHECK(blk_open(path, &bo, &img, err, sizeof(err)) == 0);
	CHECK(blk_pwrite(img, 0, buf, sizeof(buf), 0) == 0);
	blk_close(img);

	struct virtio_blk_opts o = { .path = path, .read_only = true };
	struct drv d;
	struct vbench b;
	bench_init(e, &b);
	CHECK(drv_open(&d, &b, &o, ~0ull) == 0);
	uint64_t f = d.offered;
	CHECK(f & (1ull << F_RO));
	CHECK(!(f & (1ull << F_DISCARD)));
	CHECK(!(f & (1ull << F_WRITE_ZEROES)));
	CHECK_EQ_U64(do_req(&d, T_IN, 0, back, sizeof(back), NULL), S_OK);
	CHECK(!memcmp(back, buf, sizeof(back)));
	uint8_t other[4096];
	pattern(other, sizeof(other), 6);
	CHECK_EQ_U64(do_req(&d, T_OUT, 0, other, sizeof(other), NULL), S_IOERR);
	CHECK_EQ_U64(dwz_req(&d, T_WRITE_ZEROES, 0, 8, 0), S_UNSUPP);
	CHECK_EQ_U64(dwz_req(&d, T_DISCARD, 0, 8, 0), S_UNSUPP);
	CHECK_EQ_U64(do_req(&d, T_FLUSH, 0, NULL, 0, NULL), S_OK);
	CHECK_EQ_U64(do_req(&d, T_IN, 0, back, sizeof(back), NULL), S_OK);
	CHECK(!memcmp(back, buf, sizeof(back)));
	vbench_fini(&b);
	CHECK(image_equals(path, 0, buf, sizeof(buf)));

	/* a file without write permission needs readonly=on (root ignores
	 * permissions: only check when they apply) */
	if (geteuid() != 0) {
		chmod(path, 0444);
		struct virtio_blk_opts o2 = { .path = path };
		struct vbench b2;
		bench_init(e, &b2);
		char msg[512] = "";
		CHECK(virtio_blk_new(&b2.env, &o2, msg, sizeof(msg)) == NULL);
		vbench_fini(&b2);
		CHECK(strstr(msg, "readonly=on") != NULL);
		chmod(path, 0644);
	}
}

/* The driver breaks the rules: no status byte, a short header. */
static void test_malformed(struct env *e, const char *path)
{
	struct virtio_blk_opts o = { .path = path };
	struct drv d;
	struct vbench b;
	bench_init(e, &b);
	CHECK(drv_open(&d, &b, &o, ~0ull) == 0);
	uint64_t hdr = galloc(&d, 16);
	memset(gptr(&d, hdr, 16), 0, 16);
	struct seg only_out[1] = { { hdr, 16, false } };
	int h = drv_add(&d, only_out, 1);
	CHECK(h >= 0);
	drv_kick(&d);
	CHECK(vdrv_status(d.v) & VIRTIO_STATUS_NEEDS_RESET);
	CHECK(used_idx(&d) == 0);
	/* a reset makes it usable again */
	CHECK(drv_init(&d, ~0ull) == 0);
	uint8_t buf[512];
	CHECK_EQ_U64(do_req(&d, T_IN, 0, buf, 512, NULL), S_OK);
	/* a header of 8 bytes */
	uint64_t st = galloc(&d, 1);
	struct seg shorthdr[2] = { { hdr, 8, false }, { st, 1, true } };
	CHECK(drv_add(&d, shorthdr, 2) >= 0);
	drv_kick(&d);
	CHECK(vdrv_status(d.v) & VIRTIO_STATUS_NEEDS_RESET);
	/* kicks on a broken device do nothing */
	drv_kick(&d);
	CHECK(drv_init(&d, ~0ull) == 0);
	/* a header split byte by byte works */
	uint64_t hb = galloc(&d, 16), data = galloc(&d, 513);
	uint32_t type = T_IN;
	uint64_t sector = 3;
	uint8_t h16[16] = { 0 };
	memcpy(h16, &type, 4);
	memcpy(h16 + 8, &sector, 8);
	memcpy(gptr(&d, hb, 16), h16, 16);
	struct seg s[18];
	for (unsigned i = 0; i < 16; i++)
		s[i] = (struct seg){ hb + i, 1, false };
	s[16] = (struct seg){ data, 200, true };
	s[17] = (struct seg){ data + 200, 313, true };
	*(uint8_t *)gptr(&d, data + 512, 1) = 0xff;
	int head = drv_add(&d, s, 18);
	drv_kick(&d);
	CHECK(drv_wait(&d, head));
	CHECK(*(uint8_t *)gptr(&d, data + 512, 1) == S_OK);
	vbench_fini(&b);
}

/* More requests than the block queue takes at once, and a reset while
 * they run. */
static void test_many(struct env *e, const char *path)
{
	struct virtio_blk_opts o = { .path = path };
	struct drv d;
	struct vbench b;
	bench_init(e, &b);
	/* without EVENT_IDX, so that used->flags shows whether the device
	 * wants kicks */
	CHECK(drv_open(&d, &b, &o, ~(1ull << VIRTIO_F_EVENT_IDX)) == 0);
	enum { N = 120, LEN = 4096 };
	uint64_t data[N], st[N];
	int heads[N];
	/* writes: header+data out in one segment, status in */
	for (unsigned i = 0; i < N; i++) {
		uint64_t g = galloc(&d, 16 + LEN);
		uint32_t type = T_OUT;
		uint64_t sector = (uint64_t)i * 8;
		memcpy(gptr(&d, g, 4), &type, 4);
		memset(gptr(&d, g + 4, 4), 0, 4);
		memcpy(gptr(&d, g + 8, 8), &sector, 8);
		pattern(gptr(&d, g + 16, LEN), LEN, 1000 + i);
		st[i] = galloc(&d, 1);
		*(uint8_t *)gptr(&d, st[i], 1) = 0xff;
		struct seg s[2] = { { g, 16 + LEN, false }, { st[i], 1, true } };
		heads[i] = drv_add(&d, s, 2);
		CHECK(heads[i] >= 0);
	}
	drv_kick(&d);
	/* 64 went to the block queue, the rest wait: no kicks wanted */
	CHECK(vdrv_device_no_notify(d.v, 0));
	CHECK(drv_wait_all(&d));
	CHECK(!vdrv_device_no_notify(d.v, 0));
	bool all_ok = true;
	for (unsigned i = 0; i < N; i++)
		all_ok &= *(uint8_t *)gptr(&d, st[i], 1) == S_OK;
	CHECK(all_ok);
	/* reads: header out, data+status in one segment */
	for (unsigned i = 0; i < N; i++) {
		uint64_t g = galloc(&d, 16);
		uint32_t type = T_IN;
		uint64_t sector = (uint64_t)i * 8;
		memcpy(gptr(&d, g, 4), &type, 4);
		memset(gptr(&d, g + 4, 4), 0, 4);
		memcpy(gptr(&d, g + 8, 8), &sector, 8);
		data[i] = galloc(&d, LEN + 1);
		memset(gptr(&d, data[i], LEN + 1), 0xee, LEN + 1);
		struct seg s[2] = { { g, 16, false }, { data[i], LEN + 1, true } };
		heads[i] = drv_add(&d, s, 2);
	}
	drv_kick(&d);
	CHECK(drv_wait_all(&d));
	uint8_t want[LEN];
	all_ok = true;
	for (unsigned i = 0; i < N; i++) {
		pattern(want, LEN, 1000 + i);
		all_ok &= !memcmp(gptr(&d, data[i], LEN), want, LEN);
		all_ok &= *(uint8_t *)gptr(&d, data[i] + LEN, 1) == S_OK;
		all_ok &= d.done_len[heads[i]] == LEN + 1;
	}
	CHECK(all_ok);
	CHECK(vdrv_irq_count(&b.irq, 0) > 0);

	/* reset with requests in flight: nothing lands in guest memory
	 * afterwards, and the device works again after re-initialisation */
	for (unsigned i = 0; i < N; i++) {
		uint64_t g = galloc(&d, 16);
		uint32_t type = T_IN;
		uint64_t sector = (uint64_t)i * 8;
		memcpy(gptr(&d, g, 4), &type, 4);
		memset(gptr(&d, g + 4, 4), 0, 4);
		memcpy(gptr(&d, g + 8, 8), &sector, 8);
		data[i] = galloc(&d, LEN + 1);
		memset(gptr(&d, data[i], LEN + 1), 0xee, LEN + 1);
		struct seg s[2] = { { g, 16, false }, { data[i], LEN + 1, true } };
		drv_add(&d, s, 2);
	}
	uint16_t used_before = used_idx(&d);
	drv_kick(&d); /* starts them; completions wait for the loop */
	vdrv_reset(d.v);
	CHECK_EQ_U64(vdrv_status(d.v), 0);
	/* the loop runs any leftover completion: none may touch the ring */
	for (int k = 0; k < 5; k++)
		ev_loop_run_once(e->loop, 10000000);
	CHECK_EQ_U64(used_idx(&d), used_before);
	all_ok = true;
	for (unsigned i = 0; i < N; i++)
		all_ok &= *(uint8_t *)gptr(&d, data[i] + LEN, 1) == 0xee; /* no status */
	CHECK(all_ok);
	CHECK(drv_init(&d, ~0ull) == 0);
	uint8_t back[LEN];
	CHECK_EQ_U64(do_req(&d, T_IN, 8 * 7, back, LEN, NULL), S_OK);
	pattern(want, LEN, 1007);
	CHECK(!memcmp(back, want, LEN));
	vbench_fini(&b);
}

/* Two disks on one VM: same memory and loop, separate rings. */
static void test_two_disks(struct env *e, const char *p1, const char *p2)
{
	struct virtio_blk_opts o1 = { .path = p1, .serial = "one" };
	struct virtio_blk_opts o2 = { .path = p2, .serial = "two" };
	struct drv d1, d2;
	struct vbench b;
	bench_init(e, &b);
	CHECK(drv_open(&d1, &b, &o1, ~0ull) == 0);
	CHECK(drv_open(&d2, &b, &o2, ~0ull) == 0);
	uint8_t a[8192], bb[8192], back[8192];
	pattern(a, sizeof(a), 11);
	pattern(bb, sizeof(bb), 22);
	/* interleave: both in flight at once */
	uint64_t ha = galloc(&d1, 16 + sizeof(a)), hb = galloc(&d2, 16 + sizeof(bb));
	uint64_t sa = galloc(&d1, 1), sb = galloc(&d2, 1);
	uint32_t t = T_OUT;
	uint64_t sec = 40;
	memcpy(gptr(&d1, ha, 4), &t, 4);
	memset(gptr(&d1, ha + 4, 4), 0, 4);
	memcpy(gptr(&d1, ha + 8, 8), &sec, 8);
	memcpy(gptr(&d1, ha + 16, sizeof(a)), a, sizeof(a));
	memcpy(gptr(&d2, hb, 16), gptr(&d1, ha, 16), 16);
	memcpy(gptr(&d2, hb + 16, sizeof(bb)), bb, sizeof(bb));
	struct seg s1[2] = { { ha, 16 + sizeof(a), false }, { sa, 1, true } };
	struct seg s2[2] = { { hb, 16 + sizeof(bb), false }, { sb, 1, true } };
	int h1 = drv_add(&d1, s1, 2), h2 = drv_add(&d2, s2, 2);
	drv_kick(&d1);
	drv_kick(&d2);
	CHECK(drv_wait(&d1, h1));
	CHECK(drv_wait(&d2, h2));
	CHECK(*(uint8_t *)gptr(&d1, sa, 1) == S_OK);
	CHECK(*(uint8_t *)gptr(&d2, sb, 1) == S_OK);
	CHECK_EQ_U64(do_req(&d1, T_IN, 40, back, sizeof(back), NULL), S_OK);
	CHECK(!memcmp(back, a, sizeof(a)));
	CHECK_EQ_U64(do_req(&d2, T_IN, 40, back, sizeof(back), NULL), S_OK);
	CHECK(!memcmp(back, bb, sizeof(bb)));
	char id[20];
	CHECK(do_req(&d2, T_GET_ID, 0, id, 20, NULL) == S_OK && !strcmp(id, "two"));
	CHECK(do_req(&d1, T_GET_ID, 0, id, 20, NULL) == S_OK && !strcmp(id, "one"));
	vbench_fini(&b);
	CHECK(image_equals(p1, 40 * 512, a, sizeof(a)));
	CHECK(image_equals(p2, 40 * 512, bb, sizeof(bb)));
}

/* A qcow2 overlay on a raw base: reads fall through, writes stay in the
 * overlay; also chains in indirect tables, and readable bytes after a
 * read's header (ignored). */
static void test_backing(struct env *e)
{
	char *base = img_path("base.raw"), *top = img_path("overlay.qcow2");
	CHECK(make_image(base, BLK_FMT_RAW, DISK_BYTES) == 0);
	uint8_t *want = malloc(DISK_BYTES), *back = malloc(64 << 10);
	pattern(want, DISK_BYTES, 4242);
	struct blk *img;
	char err[512];
	struct blk_open_opts bo = { .flags = BLK_OPEN_RDWR };
	CHECK(blk_open(base, &bo, &img, err, sizeof(err)) == 0);
	CHECK(blk_pwrite(img, 0, want, DISK_BYTES, 0) == 0);
	blk_close(img);
	uint8_t *base_copy = malloc(DISK_BYTES);
	memcpy(base_copy, want, DISK_BYTES);

	struct blk_create_opts co;
	blk_create_opts_init(&co);
	co.format = BLK_FMT_QCOW2;
	co.backing_file = "base.raw"; /* relative to the overlay's folder */
	co.backing_format = "raw";
	CHECK(blk_create(top, &co, err, sizeof(err)) == 0);

	struct virtio_blk_opts o = { .path = top };
	struct drv d;
	struct vbench b;
	bench_init(e, &b);
	CHECK(drv_open(&d, &b, &o, ~0ull) == 0);
	CHECK_EQ_U64(config_u64(&d, 0, 8), CAP);
	d.indirect = true;
	CHECK_EQ_U64(do_req(&d, T_IN, 1000, back, 64 << 10, NULL), S_OK);
	CHECK(!memcmp(back, want + 1000 * 512, 64 << 10));
	uint8_t buf[8192];
	pattern(buf, sizeof(buf), 31337);
	struct req_opts ro = { .nsplit = 3 };
	CHECK_EQ_U64(do_req(&d, T_OUT, 1003, buf, sizeof(buf), &ro), S_OK);
	memcpy(want + 1003 * 512, buf, sizeof(buf));
	d.indirect = false;
	CHECK_EQ_U64(do_req(&d, T_IN, 1000, back, 64 << 10, &ro), S_OK);
	CHECK(!memcmp(back, want + 1000 * 512, 64 << 10));
	/* write-zeroes over part of the base's data */
	CHECK_EQ_U64(dwz_req(&d, T_WRITE_ZEROES, 3000, 300, 0), S_OK);
	memset(want + 3000 * 512, 0, 300 * 512);
	CHECK_EQ_U64(dwz_req(&d, T_WRITE_ZEROES, 4000, 256, 1), S_OK);
	memset(want + 4000 * 512, 0, 256 * 512);

	/* a read whose readable part goes on after the header */
	uint64_t h = galloc(&d, 32), data = galloc(&d, 513);
	uint32_t type = T_IN;
	uint64_t sector = 7;
	memset(gptr(&d, h, 32), 0xab, 32);
	memcpy(gptr(&d, h, 4), &type, 4);
	memcpy(gptr(&d, h + 8, 8), &sector, 8);
	memset(gptr(&d, data, 513), 0xff, 513);
	struct seg s[2] = { { h, 32, false }, { data, 513, true } };
	int head = drv_add(&d, s, 2);
	drv_kick(&d);
	CHECK(drv_wait(&d, head));
	CHECK(*(uint8_t *)gptr(&d, data + 512, 1) == S_OK);
	CHECK(!memcmp(gptr(&d, data, 512), want + 7 * 512, 512));
	/* a write whose data sits in the writable part is a write of 0 bytes:
	 * nothing changes on the disk */
	uint64_t h2 = galloc(&d, 16), data2 = galloc(&d, 513);
	type = T_OUT;
	sector = 9;
	memset(gptr(&d, h2, 16), 0, 16);
	memcpy(gptr(&d, h2, 4), &type, 4);
	memcpy(gptr(&d, h2 + 8, 8), &sector, 8);
	memset(gptr(&d, data2, 513), 0x5a, 513);
	struct seg s2[2] = { { h2, 16, false }, { data2, 513, true } };
	head = drv_add(&d, s2, 2);
	drv_kick(&d);
	CHECK(drv_wait(&d, head));
	CHECK(*(uint8_t *)gptr(&d, data2 + 512, 1) == S_OK);
	CHECK_EQ_U64(do_req(&d, T_IN, 9, back, 512, NULL), S_OK);
	CHECK(!memcmp(back, want + 9 * 512, 512));
	vbench_fini(&b);

	CHECK(image_equals(top, 0, want, DISK_BYTES));
	CHECK(image_equals(base, 0, base_copy, DISK_BYTES));
	if (have_qemu_img()) {
		CHECK(qemu_img_equals(top, 0, want, DISK_BYTES));
		CHECK(qemu_img_check_clean(top));
	}
	free(want);
	free(back);
	free(base_copy);
}

static void test_open_errors(struct env *e)
{
	struct vbench b;
	bench_init(e, &b);
	struct virtio_env env = b.env;
	char msg[512] = "";
	struct virtio_blk_opts o = { .path = img_path("does-not-exist.img") };
	CHECK(virtio_blk_new(&env, &o, msg, sizeof(msg)) == NULL);
	CHECK(strstr(msg, "does-not-exist.img") != NULL);
	/* a raw file forced as qcow2 */
	char *raw = img_path("notqcow.raw");
	CHECK(make_image(raw, BLK_FMT_RAW, 1 << 20) == 0);
	struct virtio_blk_opts o2 = { .path = raw, .format = BLK_FMT_QCOW2 };
	msg[0] = '\0';
	CHECK(virtio_blk_new(&env, &o2, msg, sizeof(msg)) == NULL);
	CHECK(msg[0] != '\0');
	/* a serial that is too long */
	struct virtio_blk_opts o3 = { .path = raw, .serial = "123456789012345678901" };
	CHECK(virtio_blk_new(&env, &o3, msg, sizeof(msg)) == NULL);
	/* no event loop */
	struct virtio_env noloop = { .mem = b.mem };
	struct virtio_blk_opts o4 = { .path = raw };
	CHECK(virtio_blk_new(&noloop, &o4, msg, sizeof(msg)) == NULL);
	vbench_fini(&b);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	dir = argv[1];
	mkdir(dir, 0755);
	struct env e;
	e.loop = ev_loop_new();
	CHECK(e.loop != NULL);
	if (!e.loop)
		TEST_MAIN_END();

	char *raw = img_path("disk.raw"), *qcow = img_path("disk.qcow2");
	CHECK(make_image(raw, BLK_FMT_RAW, DISK_BYTES) == 0);
	CHECK(make_image(qcow, BLK_FMT_QCOW2, DISK_BYTES) == 0);

	char *cfg = img_path("config.raw");
	CHECK(make_image(cfg, BLK_FMT_RAW, DISK_BYTES) == 0);
	test_config(&e, cfg);
	test_rw(&e, raw, VIRTIO_BLK_CACHE_WRITEBACK);
	test_rw(&e, qcow, VIRTIO_BLK_CACHE_WRITEBACK);
	CHECK(make_image(raw, BLK_FMT_RAW, DISK_BYTES) == 0);
	CHECK(make_image(qcow, BLK_FMT_QCOW2, DISK_BYTES) == 0);
	test_rw(&e, raw, VIRTIO_BLK_CACHE_NONE);
	test_rw(&e, qcow, VIRTIO_BLK_CACHE_NONE);
	test_read_only(&e, qcow);
	test_read_only(&e, raw);
	test_malformed(&e, qcow);
	test_many(&e, raw);
	test_many(&e, qcow);
	char *q2 = img_path("second.qcow2");
	CHECK(make_image(q2, BLK_FMT_QCOW2, DISK_BYTES) == 0);
	test_two_disks(&e, qcow, q2);
	test_backing(&e);
	test_open_errors(&e);

	ev_loop_free(e.loop);
	TEST_MAIN_END();
}

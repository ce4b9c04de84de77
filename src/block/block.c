/*
 * block: the generic layer: probing, opening backing chains, argument
 * checks, and dispatch to the drivers.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/block_int.h"
#include "core/core.h"

/* Messages are truncated on purpose where they would not fit. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

static const char qcow2_magic[4] = { 'Q', 'F', 'I', (char)0xfb };

const char *blk_format_name(enum blk_format fmt)
{
	switch (fmt) {
	case BLK_FMT_RAW:
		return "raw";
	case BLK_FMT_QCOW2:
		return "qcow2";
	default:
		return NULL;
	}
}

int blk_format_parse(const char *name, enum blk_format *out)
{
	if (!strcmp(name, "raw"))
		*out = BLK_FMT_RAW;
	else if (!strcmp(name, "qcow2"))
		*out = BLK_FMT_QCOW2;
	else
		return -EINVAL;
	return 0;
}

int blk_probe_format(const char *path, enum blk_format *out)
{
	char buf[4];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = blk_file_pread(fd, buf, sizeof(buf), 0);
	close(fd);
	if (n < 0)
		return (int)n;
	*out = (n == 4 && !memcmp(buf, qcow2_magic, 4)) ? BLK_FMT_QCOW2
							 : BLK_FMT_RAW;
	return 0;
}

const char *blk_prealloc_name(enum blk_prealloc p)
{
	static const char *const names[] = { "off", "metadata", "falloc",
					     "full" };
	return (unsigned)p < ARRAY_SIZE(names) ? names[p] : NULL;
}

int blk_prealloc_parse(const char *name, enum blk_prealloc *out)
{
	for (unsigned i = 0; i <= BLK_PREALLOC_FULL; i++) {
		if (!strcmp(name, blk_prealloc_name(i))) {
			*out = i;
			return 0;
		}
	}
	return -EINVAL;
}

void blk_err_set(char *err, size_t len, const char *fmt, ...)
{
	if (!err || !len)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

int blk_fail(struct blk *b, int ret, const char *fmt, ...)
{
	char msg[BLK_ERR_LEN];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&b->err_lock);
	int n = snprintf(b->err, sizeof(b->err), "%s: %s", b->filename, msg);
	(void)n; /* truncation is fine for a message */
	pthread_mutex_unlock(&b->err_lock);
	return ret;
}

const char *blk_last_error(const struct blk *b)
{
	return b->err;
}

ssize_t blk_file_pread(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done,
				  (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

int blk_file_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done,
				   (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	return 0;
}

int blk_file_sync(struct blk *b)
{
	if (b->unsafe || b->read_only)
		return 0;
	if (fdatasync(b->fd) < 0)
		return -errno;
	return 0;
}

char *blk_resolve_backing(const char *image, const char *name)
{
	if (name[0] == '/' || !strchr(image, '/'))
		return strdup(name);
	char *copy = strdup(image);
	if (!copy)
		return NULL;
	char *dir = dirname(copy);
	size_t len = strlen(dir) + strlen(name) + 2;
	char *out = malloc(len);
	if (out)
		snprintf(out, len, "%s/%s", dir, name);
	free(copy);
	return out;
}

/* Identity of the files of a chain being opened, to refuse loops. */
struct chain_ctx {
	dev_t dev[BLK_MAX_CHAIN + 1];
	ino_t ino[BLK_MAX_CHAIN + 1];
	unsigned n;
};

static int blk_open_depth(const char *path, const struct blk_open_opts *o,
			  struct blk **out, char *err, size_t err_len,
			  struct chain_ctx *chain);

static int blk_open_depth(const char *path, const struct blk_open_opts *o,
			  struct blk **out, char *err, size_t err_len,
			  struct chain_ctx *chain)
{
	struct blk_open_opts def = { 0 };
	if (!o)
		o = &def;
	enum blk_format fmt = o->format;
	int ret;

	if (chain->n > BLK_MAX_CHAIN) {
		blk_err_set(err, err_len,
			    "%s: the backing chain is deeper than %d images "
			    "(a loop?): refusing to open it",
			    path, BLK_MAX_CHAIN);
		return -ELOOP;
	}
	bool rw = o->flags & BLK_OPEN_RDWR;
	int oflags = (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC;
	/* opened buffered: the probe below reads 4 bytes, which O_DIRECT
	 * refuses (a qcow2 image probed as raw would be overwritten); O_DIRECT
	 * is set afterwards, for raw images only */
	int fd = open(path, oflags);
	if (fd < 0) {
		ret = -errno;
		blk_err_set(err, err_len, "%s: could not open: %s", path,
			    strerror(-ret));
		return ret;
	}
	struct stat stt;
	if (fstat(fd, &stt) < 0) {
		ret = -errno;
		close(fd);
		blk_err_set(err, err_len, "%s: %s", path, strerror(-ret));
		return ret;
	}
	for (unsigned i = 0; i < chain->n; i++) {
		if (chain->dev[i] == stt.st_dev && chain->ino[i] == stt.st_ino) {
			close(fd);
			blk_err_set(err, err_len,
				    "%s: the backing chain loops (this file is "
				    "its own backing file, directly or not): "
				    "fix it with 'maquina img rebase -u'",
				    path);
			return -ELOOP;
		}
	}
	chain->dev[chain->n] = stt.st_dev;
	chain->ino[chain->n] = stt.st_ino;
	chain->n++;

	if (fmt == BLK_FMT_AUTO) {
		char magic[4];
		ssize_t n = blk_file_pread(fd, magic, 4, 0);
		fmt = (n == 4 && !memcmp(magic, qcow2_magic, 4)) ? BLK_FMT_QCOW2
								  : BLK_FMT_RAW;
	}
	if ((o->flags & BLK_OPEN_DIRECT) && fmt == BLK_FMT_RAW) {
		int fl = fcntl(fd, F_GETFL);
		if (fl >= 0)
			(void)fcntl(fd, F_SETFL, fl | O_DIRECT); /* else buffered */
	}
	struct blk *b = calloc(1, sizeof(*b));
	if (!b || !(b->filename = strdup(path))) {
		free(b);
		close(fd);
		return -ENOMEM;
	}
	pthread_mutex_init(&b->err_lock, NULL);
	b->fd = fd;
	b->read_only = !rw;
	b->unsafe = o->flags & BLK_OPEN_UNSAFE;
	b->open_flags = o->flags;
	b->depth = chain->n - 1;
	b->drv = fmt == BLK_FMT_QCOW2 ? &blk_driver_qcow2 : &blk_driver_raw;

	b->open_chain = chain;
	ret = b->drv->open(b, o);
	b->open_chain = NULL;
	if (ret < 0) {
		blk_err_set(err, err_len, "%s", b->err);
		b->drv->close(b);
		b->drv = NULL;
		blk_close(b);
		return ret;
	}
	*out = b;
	return 0;
}

int blk_open(const char *path, const struct blk_open_opts *opts,
	     struct blk **out, char *err, size_t err_len)
{
	struct chain_ctx chain = { .n = 0 };
	if (err && err_len)
		err[0] = 0;
	return blk_open_depth(path, opts, out, err, err_len, &chain);
}

int blk_open_backing(struct blk *b, const char *name, const char *fmt,
		     const struct blk_open_opts *o)
{
	struct blk_open_opts bo = { 0 };
	bo.flags = o->flags & (BLK_OPEN_NO_URING | BLK_OPEN_CHECK);
	bo.l2_cache_bytes = o->l2_cache_bytes;
	bo.refcount_cache_bytes = o->refcount_cache_bytes;
	if (fmt && fmt[0]) {
		if (blk_format_parse(fmt, &bo.format) < 0)
			return blk_fail(b, -ENOTSUP,
					"the backing format '%s' is not "
					"supported (raw and qcow2 are)",
					fmt);
	}
	char *path = blk_resolve_backing(b->filename, name);
	if (!path)
		return -ENOMEM;
	char err[BLK_ERR_LEN];
	struct chain_ctx *chain = b->open_chain;
	struct chain_ctx local = { .n = 0 };
	if (!chain)
		chain = &local;
	int ret = blk_open_depth(path, &bo, &b->backing, err, sizeof(err),
				 chain);
	free(path);
	if (ret < 0) {
		pthread_mutex_lock(&b->err_lock);
		int n = snprintf(b->err, sizeof(b->err),
				 "%s: could not open its backing file: %s",
				 b->filename, err);
		(void)n;
		pthread_mutex_unlock(&b->err_lock);
		return ret;
	}
	return 0;
}

int blk_close(struct blk *b)
{
	if (!b)
		return 0;
	int ret = 0;
	if (b->drv) {
		if (!b->read_only)
			ret = blk_flush(b);
		b->drv->close(b);
	}
	if (b->backing) {
		int r = blk_close(b->backing);
		if (!ret)
			ret = r;
	}
	if (b->fd >= 0)
		close(b->fd);
	pthread_mutex_destroy(&b->err_lock);
	free(b->filename);
	free(b);
	return ret;
}

uint64_t blk_size(const struct blk *b) { return b->size; }
enum blk_format blk_format(const struct blk *b)
{
	return b->drv == &blk_driver_qcow2 ? BLK_FMT_QCOW2 : BLK_FMT_RAW;
}
const char *blk_filename(const struct blk *b) { return b->filename; }
struct blk *blk_backing(const struct blk *b) { return b->backing; }
bool blk_is_read_only(const struct blk *b) { return b->read_only; }

uint32_t blk_cluster_size(const struct blk *b)
{
	struct blk_info info;
	if (b->drv != &blk_driver_qcow2)
		return 0;
	if (b->drv->get_info((struct blk *)b, &info) < 0)
		return 0;
	return info.cluster_size;
}

uint32_t blk_request_alignment(const struct blk *b)
{
	uint32_t cs = blk_cluster_size(b);
	return cs ? cs : 4096;
}

static int check_range(struct blk *b, uint64_t off, uint64_t len)
{
	if (off > b->size || len > b->size - off)
		return blk_fail(b, -EINVAL,
				"request at 0x%llx+0x%llx lies past the end of "
				"the disk (0x%llx bytes)",
				(unsigned long long)off, (unsigned long long)len,
				(unsigned long long)b->size);
	return 0;
}

static uint64_t iov_len(const struct iovec *iov, int iovcnt)
{
	uint64_t len = 0;
	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	return len;
}

int blk_preadv(struct blk *b, uint64_t off, const struct iovec *iov, int iovcnt)
{
	uint64_t len = iov_len(iov, iovcnt);
	int ret = check_range(b, off, len);
	if (ret < 0 || !len)
		return ret;
	return b->drv->preadv(b, off, iov, iovcnt, len);
}

int blk_pread(struct blk *b, uint64_t off, void *buf, size_t len)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	return blk_preadv(b, off, &iov, 1);
}

int blk_pwritev(struct blk *b, uint64_t off, const struct iovec *iov,
		int iovcnt, unsigned flags)
{
	if (b->read_only)
		return blk_fail(b, -EROFS, "the image is open read-only");
	uint64_t len = iov_len(iov, iovcnt);
	int ret = check_range(b, off, len);
	if (ret < 0 || !len)
		return ret;
	ret = b->drv->pwritev(b, off, iov, iovcnt, len, flags);
	if (ret >= 0 && (flags & BLK_WRITE_FUA))
		ret = blk_flush(b);
	return ret;
}

int blk_pwrite(struct blk *b, uint64_t off, const void *buf, size_t len,
	       unsigned flags)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	return blk_pwritev(b, off, &iov, 1, flags);
}

int blk_pwrite_compressed(struct blk *b, uint64_t off, const void *buf,
			  size_t len)
{
	if (b->read_only)
		return blk_fail(b, -EROFS, "the image is open read-only");
	if (!b->drv->pwrite_compressed)
		return blk_fail(b, -ENOTSUP,
				"compressed writes need a qcow2 image");
	int ret = check_range(b, off, len);
	if (ret < 0 || !len)
		return ret;
	return b->drv->pwrite_compressed(b, off, buf, len);
}

int blk_flush(struct blk *b)
{
	if (b->read_only)
		return 0;
	return b->drv->flush(b);
}

int blk_discard(struct blk *b, uint64_t off, uint64_t len)
{
	if (b->read_only)
		return blk_fail(b, -EROFS, "the image is open read-only");
	int ret = check_range(b, off, len);
	if (ret < 0 || !len)
		return ret;
	return b->drv->discard(b, off, len);
}

int blk_write_zeroes(struct blk *b, uint64_t off, uint64_t len, unsigned flags)
{
	if (b->read_only)
		return blk_fail(b, -EROFS, "the image is open read-only");
	int ret = check_range(b, off, len);
	if (ret < 0 || !len)
		return ret;
	return b->drv->write_zeroes(b, off, len, flags);
}

int blk_block_status(struct blk *b, uint64_t off, uint64_t len, bool chain,
		     struct blk_status *st)
{
	int ret = check_range(b, off, len);
	if (ret < 0)
		return ret;
	if (!len)
		return blk_fail(b, -EINVAL, "block status of an empty range");
	memset(st, 0, sizeof(*st));
	ret = b->drv->block_status(b, off, len, st);
	if (ret < 0)
		return ret;
	if (st->len > len)
		st->len = len;
	if (st->flags & BLK_ST_ALLOCATED) {
		st->file = b;
		return 0;
	}
	if (!chain || !b->backing) {
		if (!b->backing)
			st->flags |= BLK_ST_ZERO;
		return 0;
	}
	struct blk *bk = b->backing;
	if (off >= bk->size) {
		st->flags = BLK_ST_ZERO | BLK_ST_BACKING_EOF;
		st->file = NULL;
		return 0;
	}
	uint64_t sub = MIN(st->len, bk->size - off);
	struct blk_status bst;
	ret = blk_block_status(bk, off, sub, true, &bst);
	if (ret < 0)
		return ret;
	*st = bst;
	st->depth++;
	if (!st->file)
		st->flags &= ~BLK_ST_ALLOCATED;
	return 0;
}

int blk_read_backing(struct blk *b, uint64_t off, void *buf, size_t len)
{
	struct blk *bk = b->backing;
	size_t n = 0;
	if (bk && off < bk->size) {
		n = (size_t)MIN((uint64_t)len, bk->size - off);
		int ret = blk_pread(bk, off, buf, n);
		if (ret < 0)
			return blk_fail(b, ret, "reading the backing file: %s",
					blk_last_error(bk));
	}
	memset((char *)buf + n, 0, len - n);
	return 0;
}

void blk_create_opts_init(struct blk_create_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->format = BLK_FMT_QCOW2;
	o->cluster_size = 65536;
	o->compat = BLK_COMPAT_1_1;
	o->refcount_bits = 16;
}

int blk_create(const char *path, const struct blk_create_opts *o, char *err,
	       size_t err_len)
{
	if (err && err_len)
		err[0] = 0;
	uint64_t size = o->size_bytes;
	if (o->format == BLK_FMT_RAW) {
		if (o->backing_file) {
			blk_err_set(err, err_len,
				    "%s: raw images cannot have a backing file",
				    path);
			return -EINVAL;
		}
		return raw_create(path, o, err, err_len);
	}
	if (o->backing_file && (!o->backing_unsafe || !size)) {
		if (o->backing_unsafe) {
			blk_err_set(err, err_len,
				    "%s: a size is needed when the backing file "
				    "is not opened",
				    path);
			return -EINVAL;
		}
		struct blk_open_opts bo = { 0 };
		if (o->backing_format &&
		    blk_format_parse(o->backing_format, &bo.format) < 0) {
			blk_err_set(err, err_len,
				    "%s: unknown backing format '%s' (raw and "
				    "qcow2 are known)",
				    path, o->backing_format);
			return -EINVAL;
		}
		char *bpath = blk_resolve_backing(path, o->backing_file);
		if (!bpath)
			return -ENOMEM;
		struct blk *bk;
		char berr[BLK_ERR_LEN];
		int ret = blk_open(bpath, &bo, &bk, berr, sizeof(berr));
		free(bpath);
		if (ret < 0) {
			blk_err_set(err, err_len,
				    "%s: could not open the backing file: %s",
				    path, berr);
			return ret;
		}
		if (!size)
			size = bk->size;
		blk_close(bk);
	}
	size = ALIGN_UP(size, 512);
	return qcow2_create(path, o, size, err, err_len);
}

int blk_measure(const struct blk_create_opts *o, struct blk *src,
		uint64_t *required_bytes, uint64_t *fully_allocated_bytes)
{
	return qcow2_measure(o, src, required_bytes, fully_allocated_bytes);
}

int blk_get_info(struct blk *b, struct blk_info *info)
{
	memset(info, 0, sizeof(*info));
	struct stat st;
	if (fstat(b->fd, &st) < 0)
		return -errno;
	info->virtual_size = b->size;
	info->actual_size = (uint64_t)st.st_blocks * 512;
	info->file_length = (uint64_t)st.st_size;
	info->format = blk_format(b);
	return b->drv->get_info(b, info);
}

#define QCOW2_ONLY(b, what)                                                  \
	do {                                                                 \
		if ((b)->drv != &blk_driver_qcow2)                           \
			return blk_fail(b, -ENOTSUP,                         \
					"%s needs a qcow2 image, this is raw", \
					what);                               \
	} while (0)

#define NEED_RW(b)                                                           \
	do {                                                                 \
		if ((b)->read_only)                                          \
			return blk_fail(b, -EROFS,                           \
					"the image is open read-only");      \
	} while (0)

int blk_snapshot_list(struct blk *b, struct blk_snapshot_info **out,
		      unsigned *nb)
{
	QCOW2_ONLY(b, "listing snapshots");
	return qcow2_snapshot_list(b, out, nb);
}

int blk_snapshot_create(struct blk *b, const char *name)
{
	QCOW2_ONLY(b, "an internal snapshot");
	NEED_RW(b);
	return qcow2_snapshot_create(b, name);
}

int blk_snapshot_apply(struct blk *b, const char *id_or_name)
{
	QCOW2_ONLY(b, "an internal snapshot");
	NEED_RW(b);
	return qcow2_snapshot_apply(b, id_or_name);
}

int blk_snapshot_delete(struct blk *b, const char *id_or_name)
{
	QCOW2_ONLY(b, "an internal snapshot");
	NEED_RW(b);
	return qcow2_snapshot_delete(b, id_or_name);
}

int blk_check(struct blk *b, enum blk_repair repair,
	      blk_check_report_fn *report, void *opaque,
	      struct blk_check_result *res)
{
	memset(res, 0, sizeof(*res));
	if (b->drv != &blk_driver_qcow2)
		return -ENOTSUP;
	if (repair != BLK_REPAIR_NONE)
		NEED_RW(b);
	return qcow2_check(b, repair, report, opaque, res);
}

int blk_resize(struct blk *b, uint64_t new_size_bytes, bool shrink,
	       enum blk_prealloc prealloc)
{
	NEED_RW(b);
	new_size_bytes = ALIGN_UP(new_size_bytes, 512);
	if (new_size_bytes < b->size && !shrink)
		return blk_fail(b, -EINVAL,
				"shrinking the image needs --shrink (data past "
				"the new end is lost)");
	return b->drv->resize(b, new_size_bytes, shrink, prealloc);
}

void blk_amend_opts_init(struct blk_amend_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->lazy_refcounts = -1;
}

int blk_amend(struct blk *b, const struct blk_amend_opts *o)
{
	QCOW2_ONLY(b, "amend");
	NEED_RW(b);
	return qcow2_amend(b, o);
}

int blk_change_backing_file(struct blk *b, const char *backing_file,
			    const char *backing_format)
{
	QCOW2_ONLY(b, "a backing file");
	NEED_RW(b);
	return qcow2_change_backing_file(b, backing_file, backing_format);
}

int blk_make_empty(struct blk *b)
{
	QCOW2_ONLY(b, "emptying an image");
	NEED_RW(b);
	return qcow2_make_empty(b);
}

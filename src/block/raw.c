/*
 * raw: a file or a block device holding the disk byte for byte.  Block
 * status is sparse-aware through SEEK_DATA/SEEK_HOLE.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/block_int.h"
#include "core/core.h"

struct raw_state {
	bool is_bdev;
};

static int raw_open(struct blk *b, const struct blk_open_opts *o)
{
	(void)o;
	struct stat st;
	if (fstat(b->fd, &st) < 0)
		return blk_fail(b, -errno, "%s", strerror(errno));
	struct raw_state *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	b->opaque = s;
	if (S_ISBLK(st.st_mode)) {
		uint64_t sz;
		if (ioctl(b->fd, BLKGETSIZE64, &sz) < 0)
			return blk_fail(b, -errno, "cannot get the device size");
		b->size = sz;
		s->is_bdev = true;
	} else {
		b->size = (uint64_t)st.st_size;
	}
	if (o && o->snapshot)
		return blk_fail(b, -ENOTSUP, "raw images have no snapshots");
	return 0;
}

static void raw_close(struct blk *b)
{
	free(b->opaque);
	b->opaque = NULL;
}

/* O_DIRECT refuses requests that are not aligned to the device's block
 * size: then the file goes on buffered (once, for good). */
static bool direct_fallback(struct blk *b, int err)
{
	if (err != -EINVAL || !(b->open_flags & BLK_OPEN_DIRECT))
		return false;
	int fl = fcntl(b->fd, F_GETFL);
	if (fl < 0 || !(fl & O_DIRECT))
		return false;
	return fcntl(b->fd, F_SETFL, fl & ~O_DIRECT) == 0;
}

static int raw_preadv(struct blk *b, uint64_t off, const struct iovec *iov,
		      int iovcnt, uint64_t len)
{
	(void)len;
	for (int i = 0; i < iovcnt; i++) {
		ssize_t n = blk_file_pread(b->fd, iov[i].iov_base,
					   iov[i].iov_len, off);
		if (n < 0 && direct_fallback(b, (int)n))
			n = blk_file_pread(b->fd, iov[i].iov_base,
					   iov[i].iov_len, off);
		if (n < 0)
			return blk_fail(b, (int)n, "read at 0x%llx failed: %s",
					(unsigned long long)off,
					strerror((int)-n));
		if ((size_t)n < iov[i].iov_len)
			memset((char *)iov[i].iov_base + n, 0,
			       iov[i].iov_len - (size_t)n);
		off += iov[i].iov_len;
	}
	return 0;
}

static int raw_pwritev(struct blk *b, uint64_t off, const struct iovec *iov,
		       int iovcnt, uint64_t len, unsigned flags)
{
	(void)len;
	(void)flags;
	for (int i = 0; i < iovcnt; i++) {
		int ret = blk_file_pwrite(b->fd, iov[i].iov_base,
					  iov[i].iov_len, off);
		if (ret < 0 && direct_fallback(b, ret))
			ret = blk_file_pwrite(b->fd, iov[i].iov_base,
					      iov[i].iov_len, off);
		if (ret < 0)
			return blk_fail(b, ret, "write at 0x%llx failed: %s",
					(unsigned long long)off,
					strerror(-ret));
		off += iov[i].iov_len;
	}
	return 0;
}

static int raw_flush(struct blk *b)
{
	int ret = blk_file_sync(b);
	if (ret < 0)
		return blk_fail(b, ret, "flush failed: %s", strerror(-ret));
	return 0;
}

static int raw_discard(struct blk *b, uint64_t off, uint64_t len)
{
	struct raw_state *s = b->opaque;
	if (s->is_bdev) {
		uint64_t range[2] = { off, len };
		ioctl(b->fd, BLKDISCARD, range);
		return 0;
	}
	fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		  (off_t)off, (off_t)len);
	return 0;
}

static int raw_write_zeroes(struct blk *b, uint64_t off, uint64_t len,
			    unsigned flags)
{
	struct raw_state *s = b->opaque;
	if (!s->is_bdev) {
		if ((flags & BLK_ZEROES_MAY_UNMAP) &&
		    fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)off, (off_t)len) == 0)
			return 0;
		if (fallocate(b->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
			      (off_t)off, (off_t)len) == 0)
			return 0;
	} else {
		uint64_t range[2] = { off, len };
		if (ioctl(b->fd, BLKZEROOUT, range) == 0)
			return 0;
	}
	size_t chunk = (size_t)MIN(len, (uint64_t)1 << 20);
	void *zero = calloc(1, chunk);
	if (!zero)
		return -ENOMEM;
	int ret = 0;
	while (len) {
		size_t n = (size_t)MIN(len, (uint64_t)chunk);
		ret = blk_file_pwrite(b->fd, zero, n, off);
		if (ret < 0) {
			ret = blk_fail(b, ret, "writing zeros at 0x%llx: %s",
				       (unsigned long long)off, strerror(-ret));
			break;
		}
		off += n;
		len -= n;
	}
	free(zero);
	return ret;
}

static int raw_block_status(struct blk *b, uint64_t off, uint64_t len,
			    struct blk_status *st)
{
	struct raw_state *s = b->opaque;
	st->len = len;
	st->flags = BLK_ST_DATA | BLK_ST_ALLOCATED | BLK_ST_OFFSET_VALID;
	st->host_offset = off;
	if (s->is_bdev)
		return 0;
	off_t data = lseek(b->fd, (off_t)off, SEEK_DATA);
	if (data < 0) {
		if (errno == ENXIO) { /* a hole up to the end of the file */
			st->flags = BLK_ST_ZERO | BLK_ST_ALLOCATED;
			return 0;
		}
		return 0; /* no SEEK_DATA: say data */
	}
	if ((uint64_t)data > off) {
		st->flags = BLK_ST_ZERO | BLK_ST_ALLOCATED;
		st->len = MIN(len, (uint64_t)data - off);
		return 0;
	}
	off_t hole = lseek(b->fd, (off_t)off, SEEK_HOLE);
	if (hole > (off_t)off)
		st->len = MIN(len, (uint64_t)hole - off);
	return 0;
}

static int raw_get_info(struct blk *b, struct blk_info *info)
{
	(void)b;
	info->cluster_size = 0;
	return 0;
}

static int raw_resize(struct blk *b, uint64_t size, bool shrink,
		      enum blk_prealloc prealloc)
{
	(void)shrink;
	struct raw_state *s = b->opaque;
	if (s->is_bdev)
		return blk_fail(b, -ENOTSUP, "cannot resize a block device");
	uint64_t old = b->size;
	if (ftruncate(b->fd, (off_t)size) < 0)
		return blk_fail(b, -errno, "resize failed: %s", strerror(errno));
	b->size = size;
	if (size > old && prealloc != BLK_PREALLOC_OFF) {
		if (prealloc == BLK_PREALLOC_FULL) {
			/* write zeros for real */
			return raw_write_zeroes(b, old, size - old, 0);
		}
		if (fallocate(b->fd, 0, (off_t)old, (off_t)(size - old)) < 0)
			return blk_fail(b, -errno, "preallocation failed: %s",
					strerror(errno));
	}
	return 0;
}

int raw_create(const char *path, const struct blk_create_opts *o, char *err,
	       size_t err_len)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		int ret = -errno;
		blk_err_set(err, err_len, "%s: could not create: %s", path,
			    strerror(errno));
		return ret;
	}
	uint64_t size = ALIGN_UP(o->size_bytes, 512);
	int ret = 0;
	if (ftruncate(fd, (off_t)size) < 0)
		ret = -errno;
	if (!ret && size && o->prealloc == BLK_PREALLOC_FALLOC &&
	    fallocate(fd, 0, 0, (off_t)size) < 0)
		ret = -errno;
	if (!ret && size && o->prealloc == BLK_PREALLOC_FULL) {
		size_t chunk = 1 << 20;
		void *zero = calloc(1, chunk);
		if (!zero)
			ret = -ENOMEM;
		for (uint64_t off = 0; !ret && off < size; off += chunk)
			ret = blk_file_pwrite(fd, zero,
					      (size_t)MIN((uint64_t)chunk,
							  size - off),
					      off);
		free(zero);
	}
	close(fd);
	if (ret < 0)
		blk_err_set(err, err_len, "%s: could not create: %s", path,
			    strerror(-ret));
	return ret;
}

const struct blk_driver blk_driver_raw = {
	.name = "raw",
	.open = raw_open,
	.close = raw_close,
	.preadv = raw_preadv,
	.pwritev = raw_pwritev,
	.flush = raw_flush,
	.discard = raw_discard,
	.write_zeroes = raw_write_zeroes,
	.block_status = raw_block_status,
	.get_info = raw_get_info,
	.resize = raw_resize,
};

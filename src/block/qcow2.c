/*
 * qcow2: header, open-time validation, create, and the data path.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "block/qcow2.h"
#include "core/core.h"

#define HOFF(field) offsetof(struct qcow2_header, field)

enum qc_type { QC_UNALLOC, QC_ZERO, QC_ZERO_ALLOC, QC_NORMAL, QC_COMPRESSED };

struct qc_extent {
	enum qc_type type;
	uint64_t host; /* byte offset for off (NORMAL / ZERO_ALLOC) */
	uint64_t len;
	uint64_t l2e;  /* COMPRESSED: the entry */
};

uint64_t qcow2_file_size(struct qcow2 *s)
{
	struct stat st;
	if (fstat(s->b->fd, &st) < 0)
		return 0;
	return (uint64_t)st.st_size;
}

static void lock(struct qcow2 *s) { pthread_mutex_lock(&s->lock); }
static void unlock(struct qcow2 *s) { pthread_mutex_unlock(&s->lock); }

/* ------------------------------------------------------------------ */
/* Header                                                              */

static const char *const feature_names[3][8] = {
	{ "dirty bit", "corrupt bit", "external data file",
	  "compression type", "extended L2 entries" },
	{ "lazy refcounts" },
	{ "bitmaps", "raw external data" },
};

static size_t put_ext(uint8_t *buf, size_t pos, size_t cap, uint32_t type,
		      const void *data, uint32_t len)
{
	size_t need = 8 + ALIGN_UP((size_t)len, 8);
	if (pos + need > cap)
		return 0;
	uint32_t be[2] = { htobe32(type), htobe32(len) };
	memcpy(buf + pos, be, 8);
	memset(buf + pos + 8, 0, ALIGN_UP((size_t)len, 8));
	if (len)
		memcpy(buf + pos + 8, data, len);
	return pos + need;
}

int qcow2_write_header(struct qcow2 *s)
{
	size_t cap = s->cluster_size;
	uint8_t *buf = calloc(1, cap);
	if (!buf)
		return -ENOMEM;
	struct qcow2_header *h = &s->h;
	uint32_t hlen = h->version >= 3 ? MAX(112u, h->header_length) : 72;
	if (h->version >= 3 && hlen > 112 && s->hdr_tail_len + 112 < hlen)
		hlen = 112 + s->hdr_tail_len;
	h->header_length = h->version >= 3 ? hlen : 72;
	struct qcow2_header be = {
		.magic = htobe32(QCOW2_MAGIC),
		.version = htobe32(h->version),
		.cluster_bits = htobe32(h->cluster_bits),
		.size = htobe64(h->size),
		.crypt_method = htobe32(h->crypt_method),
		.l1_size = htobe32(s->l1_size),
		.l1_table_offset = htobe64(s->l1_offset),
		.refcount_table_offset = htobe64(s->reftable_offset),
		.refcount_table_clusters = htobe32(s->reftable_clusters),
		.nb_snapshots = htobe32(s->nb_snaps),
		.snapshots_offset = htobe64(s->snapshots_offset),
		.incompatible_features = htobe64(h->incompatible_features),
		.compatible_features = htobe64(h->compatible_features),
		.autoclear_features = htobe64(h->autoclear_features),
		.refcount_order = htobe32(h->refcount_order),
		.header_length = htobe32(h->header_length),
		.compression_type = h->compression_type,
	};
	memcpy(buf, &be, h->version >= 3 ? 112 : 72);
	if (h->version >= 3 && hlen > 112)
		memcpy(buf + 112, s->hdr_tail, hlen - 112);
	size_t pos = h->version >= 3 ? hlen : 72, np;
	int ret = -ENOSPC;
	if (s->backing_format && s->backing_file) {
		np = put_ext(buf, pos, cap, QCOW2_EXT_BACKING_FMT,
			     s->backing_format,
			     (uint32_t)strlen(s->backing_format));
		if (!np)
			goto out;
		pos = np;
	}
	size_t blen = s->backing_file ? strlen(s->backing_file) : 0;
	/* qemu-img 7.2 writes the feature name table only for clusters of
	 * more than 4 KiB (observed); it is optional */
	if (h->version >= 3 && cap > 4096) {
		uint8_t ft[8 * 48] = { 0 };
		unsigned n = 0;
		for (unsigned t = 0; t < 3; t++)
			for (unsigned bit = 0; bit < 8; bit++)
				if (feature_names[t][bit]) {
					ft[n * 48] = (uint8_t)t;
					ft[n * 48 + 1] = (uint8_t)bit;
					strncpy((char *)ft + n * 48 + 2,
						feature_names[t][bit], 46);
					n++;
				}
		/* optional: left out where cluster 0 is too small */
		np = put_ext(buf, pos, cap, QCOW2_EXT_FEATURES, ft, n * 48);
		if (np)
			pos = np;
	}
	for (unsigned i = 0; i < s->nb_exts; i++) {
		np = put_ext(buf, pos, cap, s->exts[i].type, s->exts[i].data,
			     s->exts[i].len);
		if (!np)
			goto out;
		pos = np;
	}
	if (pos + 8 + blen > cap)
		goto out;
	pos += 8; /* end marker: zeros */
	if (blen) {
		memcpy(buf + pos, s->backing_file, blen);
		uint64_t bo = htobe64(pos);
		uint32_t bs = htobe32((uint32_t)blen);
		memcpy(buf + HOFF(backing_file_offset), &bo, 8);
		memcpy(buf + HOFF(backing_file_size), &bs, 4);
		h->backing_file_offset = pos;
		h->backing_file_size = (uint32_t)blen;
		pos += blen;
	} else {
		h->backing_file_offset = 0;
		h->backing_file_size = 0;
	}
	ret = blk_file_pwrite(s->b->fd, buf, pos, 0);
	if (ret == 0)
		ret = blk_file_sync(s->b);
out:
	free(buf);
	if (ret == -ENOSPC)
		return blk_fail(s->b, ret,
				"the header extensions and backing file name do "
				"not fit in the first cluster (%llu bytes)",
				(unsigned long long)cap);
	if (ret < 0)
		return blk_fail(s->b, ret, "writing the header: %s",
				strerror(-ret));
	return 0;
}

int qcow2_update_header_field(struct qcow2 *s, size_t field_off,
			      const void *be, size_t len)
{
	int ret = blk_file_pwrite(s->b->fd, be, len, field_off);
	if (ret < 0)
		return blk_fail(s->b, ret, "writing the header: %s",
				strerror(-ret));
	return 0;
}

static int write_incompat(struct qcow2 *s)
{
	uint64_t be = htobe64(s->h.incompatible_features);
	int ret = qcow2_update_header_field(s, HOFF(incompatible_features),
					    &be, 8);
	if (!ret)
		ret = blk_file_sync(s->b);
	return ret;
}

int qcow2_mark_corrupt(struct qcow2 *s)
{
	s->corrupt = true;
	if (s->b->read_only || s->h.version < 3)
		return 0;
	s->h.incompatible_features |= QCOW2_INCOMPAT_CORRUPT;
	return write_incompat(s);
}

/* Called before the first change of a session: dirty bit, autoclear. */
static int prepare_write(struct qcow2 *s)
{
	int ret;
	if (s->corrupt && !(s->b->open_flags & BLK_OPEN_CHECK))
		return blk_fail(s->b, -EIO,
				"the image is marked corrupt and may not be "
				"written; try 'maquina img check -r all'");
	if (!s->autoclear_cleared && s->h.version >= 3 &&
	    s->h.autoclear_features) {
		s->h.autoclear_features = 0;
		uint64_t be = 0;
		ret = qcow2_update_header_field(s, HOFF(autoclear_features),
						&be, 8);
		if (ret < 0)
			return ret;
		s->autoclear_cleared = true;
	}
	if (s->lazy && !s->dirty_set) {
		s->h.incompatible_features |= QCOW2_INCOMPAT_DIRTY;
		ret = write_incompat(s);
		if (ret < 0)
			return ret;
		s->dirty_set = true;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Mapping                                                             */

int qcow2_write_l1_entry(struct qcow2 *s, uint64_t idx)
{
	uint64_t be = htobe64(s->l1[idx]);
	int ret = blk_file_pwrite(s->b->fd, &be, 8, s->l1_offset + idx * 8);
	if (ret < 0)
		return blk_fail(s->b, ret, "writing the L1 table: %s",
				strerror(-ret));
	return 0;
}

static int bad_l2_offset(struct qcow2 *s, uint64_t l1i, uint64_t off)
{
	blk_fail(s->b, -EIO,
		 "L2 table at 0x%llx (L1 index %llu) is not aligned to a "
		 "cluster or overlaps the header: the image is corrupt; try "
		 "'maquina img check -r all'",
		 (unsigned long long)off, (unsigned long long)l1i);
	return -EIO;
}

int qcow2_l2_load(struct qcow2 *s, uint64_t l2_off, uint64_t **out)
{
	return qcow2_cache_get(s, &s->l2c, l2_off, false, (void **)out);
}

static uint64_t compressed_host(const struct qcow2 *s, uint64_t e)
{
	unsigned x = 62 - (s->cluster_bits - 8);
	return e & (((uint64_t)1 << x) - 1);
}

static uint64_t compressed_bytes(const struct qcow2 *s, uint64_t e)
{
	unsigned x = 62 - (s->cluster_bits - 8);
	uint64_t nsect = ((e & ~(QCOW_OFLAG_COPIED | QCOW_OFLAG_COMPRESSED)) >>
			  x) + 1;
	return nsect * 512 - (compressed_host(s, e) & 511);
}

/* The longest run from off (at most len, within one L2 table) of one type,
 * with contiguous host clusters for NORMAL. */
static int get_extent(struct qcow2 *s, uint64_t off, uint64_t len,
		      struct qc_extent *ext)
{
	uint64_t gcl = off >> s->cluster_bits;
	uint64_t l1i = gcl >> s->l2_bits;
	uint64_t table_end = ((l1i + 1) << (s->l2_bits + s->cluster_bits));
	len = MIN(len, table_end - off);
	memset(ext, 0, sizeof(*ext));
	uint64_t l2off = l1i < s->l1_size ? s->l1[l1i] & L1E_OFFSET_MASK : 0;
	if (!l2off) {
		ext->type = QC_UNALLOC;
		ext->len = len;
		return 0;
	}
	if ((l2off & (s->cluster_size - 1)) || l2off < s->cluster_size)
		return bad_l2_offset(s, l1i, l2off);
	uint64_t *l2;
	int ret = qcow2_l2_load(s, l2off, &l2);
	if (ret < 0)
		return ret;
	unsigned unit_bits = s->ext_l2 ? s->subcluster_bits : s->cluster_bits;
	uint64_t unit = (uint64_t)1 << unit_bits;
	uint64_t pos = off;
	bool first = true;
	while (pos < off + len) {
		uint64_t c = (pos >> s->cluster_bits) & (s->l2_entries - 1);
		uint64_t e = qcow2_l2_get(s, l2, c);
		uint64_t bm = qcow2_l2_get_bitmap(s, l2, c);
		uint64_t in_cl = pos & (s->cluster_size - 1);
		uint64_t host = e & L2E_OFFSET_MASK;
		enum qc_type t;
		uint64_t run_end; /* end of this unit */
		if (e & QCOW_OFLAG_COMPRESSED) {
			t = QC_COMPRESSED;
			run_end = (pos | (s->cluster_size - 1)) + 1;
		} else if (!s->ext_l2) {
			if (e & QCOW_OFLAG_ZERO && s->h.version >= 3)
				t = host ? QC_ZERO_ALLOC : QC_ZERO;
			else
				t = host ? QC_NORMAL : QC_UNALLOC;
			run_end = (pos | (unit - 1)) + 1;
		} else {
			unsigned sc = (unsigned)(in_cl >> unit_bits);
			bool a = (bm >> sc) & 1, z = (bm >> (32 + sc)) & 1;
			if (a && z)
				return blk_fail(s->b, -EIO,
						"subcluster %u of guest cluster "
						"0x%llx is both allocated and "
						"zero: the image is corrupt",
						sc, (unsigned long long)(pos >> s->cluster_bits));
			if (a && !host)
				return blk_fail(s->b, -EIO,
						"guest cluster 0x%llx has "
						"allocated subclusters but no "
						"host cluster: the image is "
						"corrupt",
						(unsigned long long)(pos >> s->cluster_bits));
			t = a ? QC_NORMAL : z ? QC_ZERO : QC_UNALLOC;
			run_end = (pos | (unit - 1)) + 1;
		}
		if ((t == QC_NORMAL || t == QC_ZERO_ALLOC) &&
		    (host & (s->cluster_size - 1)))
			return blk_fail(s->b, -EIO,
					"data cluster at 0x%llx (L2 table 0x%llx, "
					"index %llu) is not aligned to a cluster: "
					"the image is corrupt; try 'maquina img "
					"check -r all'",
					(unsigned long long)host,
					(unsigned long long)l2off,
					(unsigned long long)c);
		uint64_t hpos = host + in_cl;
		if (first) {
			ext->type = t;
			ext->host = hpos;
			ext->l2e = e;
			first = false;
		} else {
			if (t != ext->type || t == QC_COMPRESSED)
				break;
			if ((t == QC_NORMAL || t == QC_ZERO_ALLOC) &&
			    hpos != ext->host + (pos - off))
				break;
		}
		pos = run_end;
		if (t == QC_COMPRESSED)
			break;
	}
	ext->len = MIN(pos, off + len) - off;
	return 0;
}

int qcow2_decompress(struct qcow2 *s, uint64_t e, uint8_t *out)
{
	uint64_t host = compressed_host(s, e);
	uint64_t bytes = compressed_bytes(s, e);
	uint8_t *in = malloc(bytes);
	if (!in)
		return -ENOMEM;
	ssize_t n = blk_file_pread(s->b->fd, in, bytes, host);
	int ret = 0;
	if (n < 0) {
		ret = blk_fail(s->b, (int)n, "reading a compressed cluster: %s",
			       strerror((int)-n));
		goto out;
	}
	if (s->h.compression_type == BLK_COMPRESS_ZLIB) {
		z_stream z = { 0 };
		if (inflateInit2(&z, -12) != Z_OK) {
			ret = -ENOMEM;
			goto out;
		}
		z.next_in = in;
		z.avail_in = (uInt)n;
		z.next_out = out;
		z.avail_out = (uInt)s->cluster_size;
		int zr = inflate(&z, Z_FINISH);
		bool ok = (zr == Z_STREAM_END || zr == Z_BUF_ERROR ||
			   zr == Z_OK) && z.avail_out == 0;
		inflateEnd(&z);
		if (!ok)
			ret = -EIO;
	} else {
		ZSTD_DCtx *d = ZSTD_createDCtx();
		if (!d) {
			ret = -ENOMEM;
			goto out;
		}
		ZSTD_inBuffer ib = { in, (size_t)n, 0 };
		ZSTD_outBuffer ob = { out, s->cluster_size, 0 };
		while (ob.pos < ob.size) {
			size_t zr = ZSTD_decompressStream(d, &ob, &ib);
			if (ZSTD_isError(zr) || (zr == 0 && ob.pos < ob.size) ||
			    (ib.pos == ib.size && ob.pos < ob.size)) {
				ret = -EIO;
				break;
			}
		}
		ZSTD_freeDCtx(d);
	}
	if (ret == -EIO)
		blk_fail(s->b, ret,
			 "the compressed cluster at 0x%llx does not "
			 "decompress to a whole cluster: the image is corrupt",
			 (unsigned long long)host);
out:
	free(in);
	return ret;
}

/* Reads [off, off+len) of the guest disk (lock held). */
static int qcow2_read_locked(struct qcow2 *s, uint64_t off, uint8_t *buf,
			     uint64_t len)
{
	struct blk *b = s->b;
	while (len) {
		struct qc_extent ext;
		int ret = get_extent(s, off, len, &ext);
		if (ret < 0)
			return ret;
		uint64_t n = ext.len;
		switch (ext.type) {
		case QC_UNALLOC:
			ret = blk_read_backing(b, off, buf, n);
			if (ret < 0)
				return ret;
			break;
		case QC_ZERO:
		case QC_ZERO_ALLOC:
			memset(buf, 0, n);
			break;
		case QC_NORMAL: {
			ssize_t r = blk_file_pread(b->fd, buf, n, ext.host);
			if (r < 0)
				return blk_fail(b, (int)r, "read at 0x%llx: %s",
						(unsigned long long)ext.host,
						strerror((int)-r));
			if ((uint64_t)r < n)
				memset(buf + r, 0, n - (uint64_t)r);
			break;
		}
		case QC_COMPRESSED:
			ret = qcow2_decompress(s, ext.l2e, s->cbuf);
			if (ret < 0)
				return ret;
			memcpy(buf, s->cbuf + (off & (s->cluster_size - 1)), n);
			break;
		}
		off += n;
		buf += n;
		len -= n;
	}
	return 0;
}

static uint8_t *linearize(const struct iovec *iov, int iovcnt, uint64_t len,
			  bool copy)
{
	if (iovcnt == 1)
		return iov[0].iov_base;
	uint8_t *p = malloc(len ? len : 1);
	if (p && copy) {
		uint64_t o = 0;
		for (int i = 0; i < iovcnt; i++) {
			memcpy(p + o, iov[i].iov_base, iov[i].iov_len);
			o += iov[i].iov_len;
		}
	}
	return p;
}

static int qcow2_preadv(struct blk *b, uint64_t off, const struct iovec *iov,
			int iovcnt, uint64_t len)
{
	struct qcow2 *s = b->opaque;
	uint8_t *buf = linearize(iov, iovcnt, len, false);
	if (!buf)
		return -ENOMEM;
	int ret = 0;
	uint8_t *p = buf;
	uint64_t left = len;
	/* Data reads run without the lock so that requests proceed in
	 * parallel; the mapping is looked up under it.  Clusters freed by a
	 * concurrent discard are only reused after a flush (s->pending). */
	while (left && !ret) {
		struct qc_extent ext = { .len = 0 };
		lock(s);
		ret = get_extent(s, off, left, &ext);
		if (!ret && ext.type != QC_NORMAL)
			ret = qcow2_read_locked(s, off, p, ext.len);
		bool unlocked_read = !ret && ext.type == QC_NORMAL;
		if (unlocked_read)
			s->inflight_io++;
		unlock(s);
		if (unlocked_read) {
			ssize_t r = blk_file_pread(b->fd, p, ext.len, ext.host);
			if (r < 0)
				ret = blk_fail(b, (int)r, "read at 0x%llx: %s",
					       (unsigned long long)ext.host,
					       strerror((int)-r));
			else if ((uint64_t)r < ext.len)
				memset(p + r, 0, ext.len - (uint64_t)r);
			lock(s);
			if (!--s->inflight_io)
				pthread_cond_broadcast(&s->idle);
			unlock(s);
		}
		off += ext.len;
		p += ext.len;
		left -= ext.len;
	}
	if (iovcnt > 1) {
		uint64_t o = 0;
		for (int i = 0; i < iovcnt; i++) {
			memcpy(iov[i].iov_base, buf + o, iov[i].iov_len);
			o += iov[i].iov_len;
		}
		free(buf);
	}
	return ret;
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */

/* Returns the L2 table for guest cluster gcl ready to be modified (its
 * refcount is 1), allocating or copying it as needed. */
static int get_l2_for_write(struct qcow2 *s, uint64_t gcl, uint64_t **out)
{
	uint64_t l1i = gcl >> s->l2_bits;
	int ret;
	if (l1i >= s->l1_size) {
		ret = qcow2_grow_l1(s, l1i + 1);
		if (ret < 0)
			return ret;
	}
	uint64_t l1e = s->l1[l1i];
	uint64_t old = l1e & L1E_OFFSET_MASK;
	if (old) {
		if ((old & (s->cluster_size - 1)) || old < s->cluster_size)
			return bad_l2_offset(s, l1i, old);
		if (!(l1e & QCOW_OFLAG_COPIED)) {
			uint64_t rc;
			ret = qcow2_get_refcount(s, old >> s->cluster_bits, &rc);
			if (ret < 0)
				return ret;
			if (rc == 1) {
				s->l1[l1i] |= QCOW_OFLAG_COPIED;
				ret = qcow2_write_l1_entry(s, l1i);
				if (ret < 0)
					return ret;
				l1e = s->l1[l1i];
			}
		}
		if (l1e & QCOW_OFLAG_COPIED)
			return qcow2_l2_load(s, old, out);
	}
	/* allocate a new table (copy of the old shared one, or empty) */
	int64_t noff = qcow2_alloc_clusters(s, 1);
	if (noff < 0)
		return (int)noff;
	uint8_t *tmp = NULL;
	if (old) {
		uint64_t *ot;
		ret = qcow2_l2_load(s, old, &ot);
		if (ret < 0)
			return ret;
		tmp = malloc(s->cluster_size);
		if (!tmp)
			return -ENOMEM;
		memcpy(tmp, ot, s->cluster_size);
	}
	uint64_t *nt;
	ret = qcow2_cache_get(s, &s->l2c, (uint64_t)noff, true, (void **)&nt);
	if (ret < 0) {
		free(tmp);
		return ret;
	}
	if (tmp)
		memcpy(nt, tmp, s->cluster_size);
	free(tmp);
	/* the table and its refcount are stable before L1 points to it */
	ret = qcow2_flush_refcounts(s);
	if (!ret)
		ret = blk_file_pwrite(s->b->fd, nt, s->cluster_size,
				      (uint64_t)noff);
	if (!ret)
		ret = blk_file_sync(s->b);
	if (ret < 0)
		return blk_fail(s->b, ret, "writing an L2 table: %s",
				strerror(-ret));
	s->l1[l1i] = (uint64_t)noff | QCOW_OFLAG_COPIED;
	ret = qcow2_write_l1_entry(s, l1i);
	if (ret < 0)
		return ret;
	if (old) {
		ret = qcow2_free_clusters(s, old, s->cluster_size);
		if (ret < 0)
			return ret;
	}
	*out = nt;
	return 0;
}

/* Is this L2 entry a normal cluster that only this table uses? */
static int entry_writable(struct qcow2 *s, uint64_t *l2, uint64_t i,
			  bool *ok)
{
	uint64_t e = qcow2_l2_get(s, l2, i);
	uint64_t host = e & L2E_OFFSET_MASK;
	*ok = false;
	if (!host || (e & QCOW_OFLAG_COMPRESSED))
		return 0;
	if (host & (s->cluster_size - 1))
		return blk_fail(s->b, -EIO,
				"data cluster at 0x%llx is not aligned to a "
				"cluster: the image is corrupt; try 'maquina "
				"img check -r all'",
				(unsigned long long)host);
	if (!(e & QCOW_OFLAG_COPIED)) {
		uint64_t rc;
		int ret = qcow2_get_refcount(s, host >> s->cluster_bits, &rc);
		if (ret < 0)
			return ret;
		if (rc != 1)
			return 0;
		qcow2_l2_set(s, l2, i, e | QCOW_OFLAG_COPIED,
			     qcow2_l2_get_bitmap(s, l2, i));
		qcow2_cache_mark_dirty(&s->l2c, l2);
	}
	*ok = true;
	return 0;
}

/* Refuses a data write into the image's own fixed metadata. */
static int check_overlap(struct qcow2 *s, uint64_t host, uint64_t len)
{
	uint64_t l1_end = s->l1_offset + (uint64_t)s->l1_size * 8;
	uint64_t rt_end = s->reftable_offset +
			  (uint64_t)s->reftable_clusters * s->cluster_size;
	if (host < s->cluster_size ||
	    (s->l1_size && host < l1_end && host + len > s->l1_offset) ||
	    (host < rt_end && host + len > s->reftable_offset)) {
		qcow2_mark_corrupt(s);
		return blk_fail(s->b, -EIO,
				"a data write to 0x%llx would overwrite the "
				"image's metadata: the image is corrupt and has "
				"been marked so; try 'maquina img check -r all'",
				(unsigned long long)host);
	}
	return 0;
}

static uint64_t full_bitmap(void) { return 0xffffffffull; }

/* Writes one cluster's part [o, o+n) of guest cluster gcl. */
static int write_cluster(struct qcow2 *s, uint64_t gcl, uint64_t o,
			 const uint8_t *data, uint64_t n)
{
	uint64_t *l2;
	int ret = get_l2_for_write(s, gcl, &l2);
	if (ret < 0)
		return ret;
	uint64_t i = gcl & (s->l2_entries - 1);
	bool ok;
	ret = entry_writable(s, l2, i, &ok);
	if (ret < 0)
		return ret;
	uint64_t e = qcow2_l2_get(s, l2, i);
	uint64_t bm = qcow2_l2_get_bitmap(s, l2, i);
	uint64_t host = e & L2E_OFFSET_MASK;
	bool zero_flag = !s->ext_l2 && (e & QCOW_OFLAG_ZERO) &&
			 s->h.version >= 3;
	if (ok && !zero_flag) {
		bool all_alloc = true;
		if (s->ext_l2) {
			unsigned a = (unsigned)(o >> s->subcluster_bits);
			unsigned z = (unsigned)((o + n - 1) >> s->subcluster_bits);
			for (unsigned sc = a; sc <= z; sc++)
				if (!((bm >> sc) & 1))
					all_alloc = false;
		}
		if (all_alloc) {
			ret = check_overlap(s, host + o, n);
			if (!ret)
				ret = blk_file_pwrite(s->b->fd, data, n, host + o);
			if (ret < 0)
				return blk_fail(s->b, ret, "write at 0x%llx: %s",
						(unsigned long long)(host + o),
						strerror(-ret));
			return 0;
		}
	}
	/* build the whole new cluster content */
	uint8_t *cl = malloc(s->cluster_size);
	if (!cl)
		return -ENOMEM;
	uint64_t goff = gcl << s->cluster_bits;
	uint64_t glen = MIN(s->cluster_size, s->b->size - goff);
	/* the old content reads as zeros: a fresh cluster past everything
	 * ever written needs only the new bytes (the rest is a hole) */
	bool old_zero = !ok && !s->ext_l2 && !(e & QCOW_OFLAG_COMPRESSED) &&
			!host && (zero_flag || !s->b->backing);
	if (old_zero) {
		uint64_t prev_end = s->alloc_end;
		int64_t a = qcow2_alloc_clusters(s, 1);
		if (a < 0) {
			ret = (int)a;
			goto out;
		}
		if ((uint64_t)a >= prev_end) {
			ret = get_l2_for_write(s, gcl, &l2);
			if (!ret)
				ret = check_overlap(s, (uint64_t)a, s->cluster_size);
			if (!ret)
				ret = blk_file_pwrite(s->b->fd, data, n,
						      (uint64_t)a + o);
			if (ret < 0) {
				blk_fail(s->b, ret, "write at 0x%llx: %s",
					 (unsigned long long)a, strerror(-ret));
				goto out;
			}
			qcow2_l2_set(s, l2, i, (uint64_t)a | QCOW_OFLAG_COPIED,
				     full_bitmap());
			qcow2_cache_mark_dirty(&s->l2c, l2);
			s->l2_dep_data = true;
			ret = qcow2_free_l2_entry(s, e);
			goto out;
		}
		/* a reused cluster: write it whole */
		memset(cl, 0, s->cluster_size);
		memcpy(cl + o, data, n);
		ret = get_l2_for_write(s, gcl, &l2);
		if (ret < 0)
			goto out;
		ret = check_overlap(s, (uint64_t)a, s->cluster_size);
		if (!ret)
			ret = blk_file_pwrite(s->b->fd, cl, s->cluster_size,
					      (uint64_t)a);
		if (ret < 0) {
			blk_fail(s->b, ret, "write at 0x%llx: %s",
				 (unsigned long long)a, strerror(-ret));
			goto out;
		}
		qcow2_l2_set(s, l2, i, (uint64_t)a | QCOW_OFLAG_COPIED,
			     full_bitmap());
		qcow2_cache_mark_dirty(&s->l2c, l2);
		s->l2_dep_data = true;
		ret = qcow2_free_l2_entry(s, e);
		goto out;
	}
	if (o != 0 || n < glen) {
		ret = qcow2_read_locked(s, goff, cl, glen);
		if (ret < 0)
			goto out;
	}
	memset(cl + glen, 0, s->cluster_size - glen);
	memcpy(cl + o, data, n);
	/* reload: reading may have evicted the table */
	ret = get_l2_for_write(s, gcl, &l2);
	if (ret < 0)
		goto out;
	bool reuse = ok; /* zero-alloc or partly allocated, ours alone */
	uint64_t target = host;
	if (!reuse) {
		int64_t a = qcow2_alloc_clusters(s, 1);
		if (a < 0) {
			ret = (int)a;
			goto out;
		}
		target = (uint64_t)a;
		ret = get_l2_for_write(s, gcl, &l2);
		if (ret < 0)
			goto out;
	}
	ret = check_overlap(s, target, s->cluster_size);
	if (!ret)
		ret = blk_file_pwrite(s->b->fd, cl, s->cluster_size, target);
	if (ret < 0) {
		blk_fail(s->b, ret, "write at 0x%llx: %s",
			 (unsigned long long)target, strerror(-ret));
		goto out;
	}
	qcow2_l2_set(s, l2, i, target | QCOW_OFLAG_COPIED, full_bitmap());
	qcow2_cache_mark_dirty(&s->l2c, l2);
	s->l2_dep_data = true;
	if (!reuse)
		ret = qcow2_free_l2_entry(s, e);
out:
	free(cl);
	return ret;
}

static int qcow2_write_locked(struct qcow2 *s, uint64_t off,
			      const uint8_t *buf, uint64_t len)
{
	int ret = prepare_write(s);
	if (ret < 0)
		return ret;
	while (len) {
		uint64_t gcl = off >> s->cluster_bits;
		uint64_t o = off & (s->cluster_size - 1);
		uint64_t n = MIN(len, s->cluster_size - o);
		if (o == 0 && n == s->cluster_size) {
			/* a run of whole clusters that need allocating */
			uint64_t *l2;
			ret = get_l2_for_write(s, gcl, &l2);
			if (ret < 0)
				return ret;
			uint64_t i = gcl & (s->l2_entries - 1), k = 0;
			uint64_t maxk = MIN(len >> s->cluster_bits,
					    s->l2_entries - i);
			while (k < maxk) {
				bool ok;
				ret = entry_writable(s, l2, i + k, &ok);
				if (ret < 0)
					return ret;
				if (ok)
					break;
				k++;
			}
			if (k > 0) {
				int64_t a = qcow2_alloc_clusters(s, k);
				if (a < 0)
					return (int)a;
				uint64_t bytes = k << s->cluster_bits;
				ret = check_overlap(s, (uint64_t)a, bytes);
				if (!ret)
					ret = blk_file_pwrite(s->b->fd, buf, bytes,
							      (uint64_t)a);
				if (ret < 0)
					return blk_fail(s->b, ret,
							"write at 0x%llx: %s",
							(unsigned long long)a,
							strerror(-ret));
				ret = get_l2_for_write(s, gcl, &l2);
				if (ret < 0)
					return ret;
				for (uint64_t j = 0; j < k; j++) {
					uint64_t old = qcow2_l2_get(s, l2, i + j);
					qcow2_l2_set(s, l2, i + j,
						     ((uint64_t)a +
						      (j << s->cluster_bits)) |
							     QCOW_OFLAG_COPIED,
						     full_bitmap());
					ret = qcow2_free_l2_entry(s, old);
					if (ret < 0)
						return ret;
				}
				qcow2_cache_mark_dirty(&s->l2c, l2);
				s->l2_dep_data = true;
				off += bytes;
				buf += bytes;
				len -= bytes;
				continue;
			}
		}
		ret = write_cluster(s, gcl, o, buf, n);
		if (ret < 0)
			return ret;
		off += n;
		buf += n;
		len -= n;
	}
	return 0;
}

/* The run from off (at most len, within one L2 table) that can be
 * written in place: normal clusters used by this image alone, contiguous
 * on the host, every touched subcluster allocated.  Lock held.  Returns
 * the run's length (0: none) and its host offset. */
static uint64_t in_place_run(struct qcow2 *s, uint64_t off, uint64_t len,
			     uint64_t *host_out)
{
	uint64_t gcl = off >> s->cluster_bits;
	uint64_t l1i = gcl >> s->l2_bits;
	if (l1i >= s->l1_size)
		return 0;
	uint64_t l2off = s->l1[l1i] & L1E_OFFSET_MASK;
	if (!l2off || (l2off & (s->cluster_size - 1)) || l2off < s->cluster_size)
		return 0;
	uint64_t *l2;
	if (qcow2_l2_load(s, l2off, &l2) < 0) {
		s->b->err[0] = 0; /* the slow path reports it */
		return 0;
	}
	uint64_t table_end = (l1i + 1) << (s->l2_bits + s->cluster_bits);
	uint64_t end = MIN(off + len, table_end), pos = off, host0 = 0;
	while (pos < end) {
		uint64_t i = (pos >> s->cluster_bits) & (s->l2_entries - 1);
		uint64_t e = qcow2_l2_get(s, l2, i);
		uint64_t host = e & L2E_OFFSET_MASK;
		uint64_t o = pos & (s->cluster_size - 1);
		uint64_t n = MIN(end - pos, s->cluster_size - o);
		if (!host || (host & (s->cluster_size - 1)) ||
		    !(e & QCOW_OFLAG_COPIED) || (e & QCOW_OFLAG_COMPRESSED) ||
		    (!s->ext_l2 && (e & QCOW_OFLAG_ZERO) && s->h.version >= 3))
			break;
		if (s->ext_l2) {
			uint64_t bm = qcow2_l2_get_bitmap(s, l2, i);
			unsigned a = (unsigned)(o >> s->subcluster_bits);
			unsigned z = (unsigned)((o + n - 1) >> s->subcluster_bits);
			bool all = true;
			for (unsigned sc = a; sc <= z; sc++)
				all &= (bm >> sc) & 1;
			if (!all)
				break;
		}
		if (pos == off)
			host0 = host + o;
		else if (host + o != host0 + (pos - off))
			break;
		pos += n;
	}
	*host_out = host0;
	return pos - off;
}

static int qcow2_pwritev(struct blk *b, uint64_t off, const struct iovec *iov,
			 int iovcnt, uint64_t len, unsigned flags)
{
	(void)flags;
	struct qcow2 *s = b->opaque;
	uint8_t *buf = linearize(iov, iovcnt, len, true);
	if (!buf)
		return -ENOMEM;
	const uint8_t *p = buf;
	lock(s);
	int ret = prepare_write(s);
	/* Writes into clusters this image owns alone run without the lock,
	 * in parallel; everything that changes metadata runs under it. */
	while (!ret && len) {
		uint64_t host;
		uint64_t n = in_place_run(s, off, len, &host);
		if (n) {
			ret = check_overlap(s, host, n);
			if (ret < 0)
				break;
			s->inflight_io++;
			unlock(s);
			ret = blk_file_pwrite(b->fd, p, n, host);
			lock(s);
			if (!--s->inflight_io)
				pthread_cond_broadcast(&s->idle);
			if (ret < 0) {
				blk_fail(b, ret, "write at 0x%llx: %s",
					 (unsigned long long)host, strerror(-ret));
				break;
			}
		} else {
			/* the run of clusters that need the slow path */
			uint64_t o = off & (s->cluster_size - 1);
			n = MIN(len, s->cluster_size - o);
			while (n < len) {
				uint64_t h2, m = in_place_run(s, off + n,
							      len - n, &h2);
				if (m)
					break;
				n += MIN(len - n, s->cluster_size);
			}
			ret = qcow2_write_locked(s, off, p, n);
		}
		off += n;
		p += n;
		len -= n;
	}
	unlock(s);
	if (iovcnt > 1)
		free(buf);
	return ret;
}

static int compress_cluster(struct qcow2 *s, const uint8_t *in, uint8_t *out,
			    size_t cap, size_t *out_len)
{
	if (s->h.compression_type == BLK_COMPRESS_ZLIB) {
		z_stream z = { 0 };
		if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9,
				 Z_DEFAULT_STRATEGY) != Z_OK)
			return -ENOMEM;
		z.next_in = (Bytef *)in;
		z.avail_in = (uInt)s->cluster_size;
		z.next_out = out;
		z.avail_out = (uInt)cap;
		int zr = deflate(&z, Z_FINISH);
		size_t n = cap - z.avail_out;
		deflateEnd(&z);
		if (zr != Z_STREAM_END)
			return -ENOSPC;
		*out_len = n;
		return 0;
	}
	size_t n = ZSTD_compress(out, cap, in, s->cluster_size, 3);
	if (ZSTD_isError(n))
		return -ENOSPC;
	*out_len = n;
	return 0;
}

static int qcow2_pwrite_compressed(struct blk *b, uint64_t off,
				   const void *buf, size_t len)
{
	struct qcow2 *s = b->opaque;
	if (off & (s->cluster_size - 1))
		return blk_fail(b, -EINVAL,
				"compressed writes must start on a cluster");
	uint8_t *in = calloc(1, s->cluster_size);
	uint8_t *out = malloc(s->cluster_size);
	int ret = -ENOMEM;
	if (!in || !out)
		goto out_free;
	ret = 0;
	while (!ret && len) {
		size_t n = MIN(len, (size_t)s->cluster_size);
		memset(in, 0, s->cluster_size);
		memcpy(in, buf, n);
		size_t clen;
		/* compression runs without the lock: parallel callers
		 * compress in parallel */
		bool small = compress_cluster(s, in, out, s->cluster_size - 1,
					      &clen) == 0;
		lock(s);
		ret = prepare_write(s);
		if (ret < 0) {
			unlock(s);
			break;
		}
		if (!small) {
			ret = qcow2_write_locked(s, off, buf, n);
			unlock(s);
			off += n;
			buf = (const uint8_t *)buf + n;
			len -= n;
			continue;
		}
		uint64_t gcl = off >> s->cluster_bits;
		uint64_t *l2;
		ret = get_l2_for_write(s, gcl, &l2);
		int64_t a = 0;
		if (!ret) {
			a = qcow2_alloc_bytes(s, clen);
			if (a < 0)
				ret = (int)a;
		}
		if (!ret)
			ret = check_overlap(s, (uint64_t)a, clen);
		if (!ret) {
			ret = blk_file_pwrite(b->fd, out, clen, (uint64_t)a);
			if (ret < 0)
				blk_fail(b, ret, "write at 0x%llx: %s",
					 (unsigned long long)a, strerror(-ret));
		}
		if (!ret)
			ret = get_l2_for_write(s, gcl, &l2);
		if (!ret) {
			uint64_t i = gcl & (s->l2_entries - 1);
			unsigned x = 62 - (s->cluster_bits - 8);
			uint64_t nsect = (((uint64_t)a + clen - 1) >> 9) -
					 ((uint64_t)a >> 9);
			uint64_t old = qcow2_l2_get(s, l2, i);
			qcow2_l2_set(s, l2, i,
				     QCOW_OFLAG_COMPRESSED | (uint64_t)a |
					     (nsect << x),
				     0);
			qcow2_cache_mark_dirty(&s->l2c, l2);
			s->l2_dep_data = true;
			ret = qcow2_free_l2_entry(s, old);
		}
		unlock(s);
		off += n;
		buf = (const uint8_t *)buf + n;
		len -= n;
	}
out_free:
	free(in);
	free(out);
	return ret;
}

static int qcow2_flush(struct blk *b)
{
	struct qcow2 *s = b->opaque;
	lock(s);
	int ret = qcow2_flush_all(s);
	unlock(s);
	return ret;
}

/* Changes whole clusters [off, off+len) to unallocated (mode 0), zero
 * (mode 1) or zero keeping the allocation (mode 2). */
static int set_clusters(struct qcow2 *s, uint64_t off, uint64_t len, int mode)
{
	while (len) {
		uint64_t gcl = off >> s->cluster_bits;
		uint64_t l1i = gcl >> s->l2_bits;
		uint64_t in_table = (s->l2_entries - (gcl & (s->l2_entries - 1)))
				    << s->cluster_bits;
		uint64_t n = MIN(len, in_table);
		int ret;
		if (mode == 0 && (l1i >= s->l1_size ||
				  !(s->l1[l1i] & L1E_OFFSET_MASK))) {
			off += n;
			len -= n;
			continue;
		}
		uint64_t *l2;
		ret = get_l2_for_write(s, gcl, &l2);
		if (ret < 0)
			return ret;
		for (uint64_t c = 0; c < n >> s->cluster_bits; c++) {
			uint64_t i = (gcl + c) & (s->l2_entries - 1);
			uint64_t e = qcow2_l2_get(s, l2, i);
			uint64_t ne, nbm;
			bool keep = false;
			if (mode == 2) {
				bool ok;
				ret = entry_writable(s, l2, i, &ok);
				if (ret < 0)
					return ret;
				keep = ok;
			}
			if (s->ext_l2) {
				ne = keep ? (e & (L2E_OFFSET_MASK |
						  QCOW_OFLAG_COPIED)) : 0;
				nbm = mode ? 0xffffffff00000000ull : 0;
			} else {
				ne = mode ? QCOW_OFLAG_ZERO : 0;
				if (keep)
					ne |= e & (L2E_OFFSET_MASK |
						   QCOW_OFLAG_COPIED);
				nbm = 0;
			}
			qcow2_l2_set(s, l2, i, ne, nbm);
			if (!keep) {
				ret = qcow2_free_l2_entry(s, e);
				if (ret < 0)
					return ret;
			}
		}
		qcow2_cache_mark_dirty(&s->l2c, l2);
		off += n;
		len -= n;
	}
	return 0;
}

static int write_zeroes_bytes(struct qcow2 *s, uint64_t off, uint64_t len)
{
	uint64_t chunk = MIN(len, (uint64_t)1 << 20);
	uint8_t *z = calloc(1, chunk);
	if (!z)
		return -ENOMEM;
	int ret = 0;
	while (len && !ret) {
		uint64_t n = MIN(len, chunk);
		ret = qcow2_write_locked(s, off, z, n);
		off += n;
		len -= n;
	}
	free(z);
	return ret;
}

static int discard_locked(struct qcow2 *s, uint64_t off, uint64_t len,
			  bool full)
{
	uint64_t start = ALIGN_UP(off, s->cluster_size);
	uint64_t end = off + len;
	if (end != s->b->size)
		end = ALIGN_DOWN(end, s->cluster_size);
	else
		end = ALIGN_UP(end, s->cluster_size);
	if (start >= end)
		return 0;
	int ret = prepare_write(s);
	if (ret < 0)
		return ret;
	int mode = (!full && s->b->backing && s->h.version >= 3) ? 1 : 0;
	if (!full && s->h.version >= 3 && s->h.backing_file_offset && !s->b->backing)
		mode = 1;
	return set_clusters(s, start, end - start, mode);
}

static int qcow2_discard(struct blk *b, uint64_t off, uint64_t len)
{
	struct qcow2 *s = b->opaque;
	lock(s);
	int ret = discard_locked(s, off, len, false);
	unlock(s);
	return ret;
}

static int qcow2_write_zeroes(struct blk *b, uint64_t off, uint64_t len,
			      unsigned flags)
{
	struct qcow2 *s = b->opaque;
	lock(s);
	int ret = prepare_write(s);
	if (ret < 0)
		goto out;
	if (s->h.version < 3) {
		ret = write_zeroes_bytes(s, off, len);
		goto out;
	}
	uint64_t start = ALIGN_UP(off, s->cluster_size);
	uint64_t end = off + len;
	end = end == b->size ? ALIGN_UP(end, s->cluster_size)
			     : ALIGN_DOWN(end, s->cluster_size);
	if (start >= end) {
		ret = write_zeroes_bytes(s, off, len);
		goto out;
	}
	if (off < start)
		ret = write_zeroes_bytes(s, off, start - off);
	if (!ret)
		ret = set_clusters(s, start, end - start,
				   (flags & BLK_ZEROES_MAY_UNMAP) ? 1 : 2);
	if (!ret && off + len > end)
		ret = write_zeroes_bytes(s, end, off + len - end);
out:
	unlock(s);
	return ret;
}

static int qcow2_block_status(struct blk *b, uint64_t off, uint64_t len,
			      struct blk_status *st)
{
	struct qcow2 *s = b->opaque;
	struct qc_extent ext;
	lock(s);
	int ret = get_extent(s, off, len, &ext);
	unlock(s);
	if (ret < 0)
		return ret;
	st->len = ext.len;
	switch (ext.type) {
	case QC_UNALLOC:
		st->flags = 0;
		break;
	case QC_ZERO:
		st->flags = BLK_ST_ZERO | BLK_ST_ALLOCATED;
		break;
	case QC_ZERO_ALLOC:
		st->flags = BLK_ST_ZERO | BLK_ST_ALLOCATED | BLK_ST_OFFSET_VALID;
		st->host_offset = ext.host;
		break;
	case QC_NORMAL:
		st->flags = BLK_ST_DATA | BLK_ST_ALLOCATED | BLK_ST_OFFSET_VALID;
		st->host_offset = ext.host;
		break;
	case QC_COMPRESSED:
		st->flags = BLK_ST_DATA | BLK_ST_ALLOCATED | BLK_ST_COMPRESSED;
		break;
	}
	return 0;
}

static int qcow2_get_info(struct blk *b, struct blk_info *info)
{
	struct qcow2 *s = b->opaque;
	info->cluster_size = (uint32_t)s->cluster_size;
	info->dirty = s->h.incompatible_features & QCOW2_INCOMPAT_DIRTY;
	info->qcow2_version = s->h.version;
	info->lazy_refcounts = s->h.compatible_features & QCOW2_COMPAT_LAZY;
	info->refcount_bits = 1u << s->refcount_order;
	info->corrupt = s->h.incompatible_features & QCOW2_INCOMPAT_CORRUPT;
	info->extended_l2 = s->ext_l2;
	info->compression_type = s->h.compression_type;
	info->incompatible_features = s->h.incompatible_features;
	info->compatible_features = s->h.compatible_features;
	info->autoclear_features = s->h.autoclear_features;
	info->encrypted = s->h.crypt_method != 0;
	for (unsigned i = 0; i < s->nb_exts; i++)
		if (s->exts[i].type == QCOW2_EXT_BITMAPS)
			info->has_bitmaps = true;
	if (s->backing_file) {
		snprintf(info->backing_file, sizeof(info->backing_file), "%s",
			 s->backing_file);
		char *full = blk_resolve_backing(b->filename, s->backing_file);
		if (full) {
			snprintf(info->full_backing_filename,
				 sizeof(info->full_backing_filename), "%s", full);
			free(full);
		}
	}
	if (s->backing_format)
		snprintf(info->backing_format, sizeof(info->backing_format),
			 "%s", s->backing_format);
	info->nb_snapshots = s->nb_snaps;
	return 0;
}

/* ------------------------------------------------------------------ */
/* L1 growth, resize, preallocation                                    */

int qcow2_grow_l1(struct qcow2 *s, uint64_t min_size)
{
	if (min_size <= s->l1_size)
		return 0;
	if (min_size * 8 > QCOW2_MAX_L1_BYTES)
		return blk_fail(s->b, -EFBIG,
				"the L1 table would exceed %u MiB: the disk is "
				"too large for this cluster size",
				QCOW2_MAX_L1_BYTES >> 20);
	uint64_t bytes = ALIGN_UP(min_size * 8, s->cluster_size);
	uint64_t *nt = calloc(1, bytes);
	uint64_t used = min_size * 8; /* written; the rest of the cluster is not */
	if (!nt)
		return -ENOMEM;
	int64_t a = qcow2_alloc_clusters(s, bytes >> s->cluster_bits);
	int ret = a < 0 ? (int)a : 0;
	if (ret < 0)
		goto out;
	for (uint64_t i = 0; i < s->l1_size; i++)
		nt[i] = htobe64(s->l1[i]);
	ret = qcow2_flush_refcounts(s);
	if (!ret)
		ret = blk_file_pwrite(s->b->fd, nt, used, (uint64_t)a);
	if (!ret)
		ret = blk_file_sync(s->b);
	if (ret < 0) {
		blk_fail(s->b, ret, "writing the L1 table: %s", strerror(-ret));
		goto out;
	}
	struct {
		uint32_t size;
		uint64_t off;
	} __attribute__((packed)) hf = { htobe32((uint32_t)min_size),
					 htobe64((uint64_t)a) };
	ret = qcow2_update_header_field(s, HOFF(l1_size), &hf, sizeof(hf));
	if (!ret)
		ret = blk_file_sync(s->b);
	if (ret < 0)
		goto out;
	uint64_t old_off = s->l1_offset, old_bytes = (uint64_t)s->l1_size * 8;
	for (uint64_t i = 0; i < min_size; i++)
		nt[i] = be64toh(nt[i]);
	free(s->l1);
	s->l1 = nt;
	nt = NULL;
	s->l1_size = (uint32_t)min_size;
	s->l1_offset = (uint64_t)a;
	s->h.l1_size = s->l1_size;
	s->h.l1_table_offset = s->l1_offset;
	if (old_bytes)
		ret = qcow2_free_clusters(s, old_off,
					  ALIGN_UP(old_bytes, s->cluster_size));
out:
	free(nt);
	return ret;
}

static uint64_t l1_needed(const struct qcow2 *s, uint64_t size)
{
	uint64_t clusters = qcow2_size_to_clusters(s, size);
	return (clusters + s->l2_entries - 1) >> s->l2_bits;
}

static int preallocate(struct qcow2 *s, uint64_t start, uint64_t end,
		       enum blk_prealloc mode)
{
	uint64_t off = ALIGN_DOWN(start, s->cluster_size);
	uint64_t data_start = 0, data_end = 0;
	while (off < end) {
		uint64_t gcl = off >> s->cluster_bits;
		uint64_t *l2;
		int ret = get_l2_for_write(s, gcl, &l2);
		if (ret < 0)
			return ret;
		uint64_t i = gcl & (s->l2_entries - 1);
		uint64_t k = MIN(s->l2_entries - i,
				 qcow2_size_to_clusters(s, end - off));
		uint64_t n = 0;
		while (n < k && !(qcow2_l2_get(s, l2, i + n) & L2E_OFFSET_MASK))
			n++;
		if (!n) {
			off += s->cluster_size;
			continue;
		}
		int64_t a = qcow2_alloc_clusters(s, n);
		if (a < 0)
			return (int)a;
		ret = get_l2_for_write(s, gcl, &l2);
		if (ret < 0)
			return ret;
		for (uint64_t j = 0; j < n; j++)
			qcow2_l2_set(s, l2, i + j,
				     ((uint64_t)a + (j << s->cluster_bits)) |
					     QCOW_OFLAG_COPIED,
				     full_bitmap());
		qcow2_cache_mark_dirty(&s->l2c, l2);
		if (!data_end || (uint64_t)a < data_start)
			data_start = data_end ? MIN(data_start, (uint64_t)a)
					      : (uint64_t)a;
		data_end = MAX(data_end, (uint64_t)a + (n << s->cluster_bits));
		if (mode == BLK_PREALLOC_FULL) {
			uint64_t bytes = n << s->cluster_bits;
			uint8_t *z = calloc(1, MIN(bytes, (uint64_t)1 << 20));
			if (!z)
				return -ENOMEM;
			for (uint64_t p = 0; p < bytes && !ret; p += 1 << 20)
				ret = blk_file_pwrite(s->b->fd, z,
						      MIN(bytes - p,
							  (uint64_t)1 << 20),
						      (uint64_t)a + p);
			free(z);
			if (ret < 0)
				return blk_fail(s->b, ret, "preallocation: %s",
						strerror(-ret));
		} else if (mode == BLK_PREALLOC_FALLOC) {
			if (fallocate(s->b->fd, 0, a,
				      (off_t)(n << s->cluster_bits)) < 0)
				return blk_fail(s->b, -errno,
						"preallocation: %s",
						strerror(errno));
		}
		off += n << s->cluster_bits;
	}
	if (data_end && qcow2_file_size(s) < data_end &&
	    ftruncate(s->b->fd, (off_t)data_end) < 0)
		return blk_fail(s->b, -errno, "preallocation: %s",
				strerror(errno));
	return qcow2_flush_all(s);
}

static int write_size(struct qcow2 *s, uint64_t size)
{
	uint64_t be = htobe64(size);
	int ret = qcow2_update_header_field(s, HOFF(size), &be, 8);
	if (!ret)
		ret = blk_file_sync(s->b);
	if (!ret) {
		s->h.size = size;
		s->b->size = size;
	}
	return ret;
}

static int qcow2_resize(struct blk *b, uint64_t size, bool shrink,
			enum blk_prealloc prealloc)
{
	struct qcow2 *s = b->opaque;
	(void)shrink;
	lock(s);
	qcow2_drain(s);
	int ret = prepare_write(s);
	if (ret < 0)
		goto out;
	if (size < b->size) {
		if (s->nb_snaps) {
			ret = blk_fail(b, -ENOTSUP,
				       "cannot shrink an image with internal "
				       "snapshots; delete them first");
			goto out;
		}
		uint64_t start = ALIGN_UP(size, s->cluster_size);
		uint64_t old = b->size;
		if (start < old)
			ret = set_clusters(s, start,
					   ALIGN_UP(old, s->cluster_size) - start,
					   0);
		if (!ret)
			ret = qcow2_flush_all(s);
		if (!ret)
			ret = write_size(s, size);
		/* give the file back up to the last cluster still in use,
		 * as qemu-img does */
		uint64_t k = qcow2_size_to_clusters(s, qcow2_file_size(s));
		while (!ret && k > 1) {
			uint64_t rc;
			ret = qcow2_get_refcount(s, k - 1, &rc);
			if (ret < 0 || rc)
				break;
			k--;
		}
		if (!ret && (k << s->cluster_bits) < qcow2_file_size(s)) {
			if (ftruncate(b->fd, (off_t)(k << s->cluster_bits)) < 0)
				ret = blk_fail(b, -errno, "truncating the file: %s",
					       strerror(errno));
			s->alloc_end = k << s->cluster_bits;
			s->free_cluster_index = MIN(s->free_cluster_index, k);
		}
		goto out;
	}
	ret = qcow2_grow_l1(s, l1_needed(s, size));
	if (!ret)
		ret = qcow2_flush_all(s);
	uint64_t old = b->size;
	/* bytes past the old end inside its last cluster may hold data from
	 * before a shrink: they must read as zeros */
	struct qc_extent tail = { .type = QC_UNALLOC };
	uint64_t tail_len = MIN(size, ALIGN_UP(old, s->cluster_size)) - old;
	if (!ret && tail_len)
		ret = get_extent(s, old, tail_len, &tail);
	if (!ret)
		ret = write_size(s, size);
	if (!ret && tail_len &&
	    (tail.type == QC_NORMAL || tail.type == QC_COMPRESSED)) {
		uint8_t *z = calloc(1, tail_len);
		ret = z ? qcow2_write_locked(s, old, z, tail_len) : -ENOMEM;
		free(z);
	}
	if (!ret && prealloc != BLK_PREALLOC_OFF && size > old)
		ret = preallocate(s, old, size, prealloc);
out:
	unlock(s);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Open                                                                */

static int read_extensions(struct qcow2 *s, const uint8_t *c0, uint64_t end)
{
	uint64_t pos = s->h.version >= 3 ? s->h.header_length : 72;
	while (pos + 8 <= end) {
		uint32_t type, len;
		memcpy(&type, c0 + pos, 4);
		memcpy(&len, c0 + pos + 4, 4);
		type = be32toh(type);
		len = be32toh(len);
		pos += 8;
		if (type == QCOW2_EXT_END)
			return 0;
		if (len > end - pos)
			return blk_fail(s->b, -EINVAL,
					"header extension 0x%08x (length %u) runs "
					"past the header cluster: the image is "
					"corrupt",
					type, len);
		const uint8_t *d = c0 + pos;
		if (type == QCOW2_EXT_BACKING_FMT) {
			if (len >= 32)
				return blk_fail(s->b, -EINVAL,
						"the backing format name is too "
						"long (%u bytes)", len);
			free(s->backing_format);
			s->backing_format = strndup((const char *)d, len);
		} else if (type == QCOW2_EXT_FEATURES) {
			free(s->feature_table);
			s->feature_table = malloc(len ? len : 1);
			if (s->feature_table)
				memcpy(s->feature_table, d, len);
			s->feature_table_len = len;
		} else {
			if (s->nb_exts >= 64)
				return blk_fail(s->b, -EINVAL,
						"too many header extensions");
			void *p = realloc(s->exts,
					  (s->nb_exts + 1) * sizeof(*s->exts));
			if (!p)
				return -ENOMEM;
			s->exts = p;
			struct qcow2_ext *x = &s->exts[s->nb_exts++];
			x->type = type;
			x->len = len;
			x->data = malloc(len ? len : 1);
			if (!x->data)
				return -ENOMEM;
			memcpy(x->data, d, len);
		}
		pos += ALIGN_UP((uint64_t)len, 8);
	}
	return 0;
}

static void describe_features(struct qcow2 *s, uint64_t bits, char *out,
			      size_t len)
{
	size_t pos = 0;
	out[0] = 0;
	for (unsigned bit = 0; bit < 64; bit++) {
		if (!(bits & (1ull << bit)))
			continue;
		char name[48];
		snprintf(name, sizeof(name), "bit %u", bit);
		for (uint32_t i = 0; s->feature_table &&
				     i + 48 <= s->feature_table_len;
		     i += 48) {
			if (s->feature_table[i] == 0 &&
			    s->feature_table[i + 1] == bit) {
				snprintf(name, sizeof(name), "%.46s",
					 (const char *)s->feature_table + i + 2);
				break;
			}
		}
		pos += (size_t)snprintf(out + pos, len > pos ? len - pos : 0,
					"%s%s", pos ? ", " : "", name);
		if (pos >= len)
			break;
	}
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b,
			   uint64_t blen)
{
	return alen && blen && a < b + blen && b < a + alen;
}

static int qcow2_open(struct blk *b, const struct blk_open_opts *o)
{
	struct qcow2 *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	b->opaque = s;
	s->b = b;
	/* metadata I/O is not block-aligned: qcow2 images are always read
	 * and written buffered (BLK_OPEN_DIRECT only applies to raw) */
	int fl = fcntl(b->fd, F_GETFL);
	if (fl >= 0 && (fl & O_DIRECT))
		fcntl(b->fd, F_SETFL, fl & ~O_DIRECT);
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->idle, NULL);
	struct qcow2_header h;
	uint64_t fsize = qcow2_file_size(s);
	ssize_t n = blk_file_pread(b->fd, &h, sizeof(h), 0);
	if (n < 0)
		return blk_fail(b, (int)n, "%s", strerror((int)-n));
	if (n < 72)
		return blk_fail(b, -EINVAL,
				"the file is too short for a qcow2 header "
				"(%zd bytes)", n);
	if ((size_t)n < sizeof(h))
		memset((uint8_t *)&h + n, 0, sizeof(h) - (size_t)n);
	struct qcow2_header *H = &s->h;
	H->magic = be32toh(h.magic);
	H->version = be32toh(h.version);
	H->backing_file_offset = be64toh(h.backing_file_offset);
	H->backing_file_size = be32toh(h.backing_file_size);
	H->cluster_bits = be32toh(h.cluster_bits);
	H->size = be64toh(h.size);
	H->crypt_method = be32toh(h.crypt_method);
	H->l1_size = be32toh(h.l1_size);
	H->l1_table_offset = be64toh(h.l1_table_offset);
	H->refcount_table_offset = be64toh(h.refcount_table_offset);
	H->refcount_table_clusters = be32toh(h.refcount_table_clusters);
	H->nb_snapshots = be32toh(h.nb_snapshots);
	H->snapshots_offset = be64toh(h.snapshots_offset);
	if (H->magic != QCOW2_MAGIC)
		return blk_fail(b, -EINVAL, "not a qcow2 image (bad magic)");
	if (H->version != 2 && H->version != 3)
		return blk_fail(b, -ENOTSUP,
				"qcow2 version %u is not supported (2 and 3 are)",
				H->version);
	if (H->version == 2) {
		H->refcount_order = 4;
		H->header_length = 72;
	} else {
		H->incompatible_features = be64toh(h.incompatible_features);
		H->compatible_features = be64toh(h.compatible_features);
		H->autoclear_features = be64toh(h.autoclear_features);
		H->refcount_order = be32toh(h.refcount_order);
		H->header_length = be32toh(h.header_length);
		H->compression_type = H->header_length > 104 ? h.compression_type
							     : 0;
	}
	if (H->cluster_bits < QCOW2_MIN_CLUSTER_BITS ||
	    H->cluster_bits > QCOW2_MAX_CLUSTER_BITS)
		return blk_fail(b, -EINVAL,
				"cluster_bits %u is out of range (9..21): the "
				"image is corrupt",
				H->cluster_bits);
	s->cluster_bits = H->cluster_bits;
	s->cluster_size = 1ull << s->cluster_bits;
	if (H->version == 3 &&
	    (H->header_length < 104 || (H->header_length & 7) ||
	     H->header_length > s->cluster_size))
		return blk_fail(b, -EINVAL,
				"header_length %u is invalid: the image is "
				"corrupt",
				H->header_length);
	if (H->header_length > 112) {
		s->hdr_tail_len = H->header_length - 112;
		s->hdr_tail = calloc(1, s->hdr_tail_len);
		if (!s->hdr_tail)
			return -ENOMEM;
		if (blk_file_pread(b->fd, s->hdr_tail, s->hdr_tail_len, 112) < 0)
			return blk_fail(b, -EIO, "reading the header");
	}
	uint64_t unknown = H->incompatible_features & ~QCOW2_INCOMPAT_KNOWN;
	uint8_t *c0 = calloc(1, s->cluster_size);
	if (!c0)
		return -ENOMEM;
	n = blk_file_pread(b->fd, c0, s->cluster_size, 0);
	uint64_t ext_end = s->cluster_size;
	if (H->backing_file_offset && H->backing_file_offset < ext_end)
		ext_end = H->backing_file_offset;
	int ret = n < 0 ? (int)n : read_extensions(s, c0, ext_end);
	if (ret == 0 && H->backing_file_offset) {
		if (H->backing_file_size > 1023 ||
		    H->backing_file_offset > s->cluster_size ||
		    H->backing_file_size > s->cluster_size - H->backing_file_offset)
			ret = blk_fail(b, -EINVAL,
				       "the backing file name (offset 0x%llx, "
				       "%u bytes) lies outside the header "
				       "cluster or is too long: the image is "
				       "corrupt",
				       (unsigned long long)H->backing_file_offset,
				       H->backing_file_size);
		else if (H->backing_file_size)
			s->backing_file =
				strndup((char *)c0 + H->backing_file_offset,
					H->backing_file_size);
	}
	free(c0);
	if (ret < 0)
		return ret;
	if (unknown) {
		char names[256];
		describe_features(s, unknown, names, sizeof(names));
		return blk_fail(b, -ENOTSUP,
				"the image uses unsupported incompatible "
				"features (%s): it needs a newer program",
				names);
	}
	if (H->incompatible_features & QCOW2_INCOMPAT_DATA_FILE)
		return blk_fail(b, -ENOTSUP,
				"images with an external data file are not "
				"supported");
	if (H->crypt_method)
		return blk_fail(b, -ENOTSUP,
				"encrypted images are not supported "
				"(crypt_method %u)",
				H->crypt_method);
	if (H->refcount_order > 6)
		return blk_fail(b, -EINVAL,
				"refcount_order %u is out of range (0..6): the "
				"image is corrupt",
				H->refcount_order);
	bool comp_bit = H->incompatible_features & QCOW2_INCOMPAT_COMPRESSION;
	if (H->compression_type > 1 || (comp_bit && H->compression_type == 0) ||
	    (!comp_bit && H->compression_type != 0))
		return blk_fail(b, -EINVAL,
				"compression type %u does not match the "
				"compression feature bit: the image is corrupt",
				H->compression_type);
	s->ext_l2 = H->incompatible_features & QCOW2_INCOMPAT_EXTL2;
	if (s->ext_l2 && s->cluster_bits < 14)
		return blk_fail(b, -EINVAL,
				"extended L2 entries need clusters of at least "
				"16 KiB (this image has %llu): the image is "
				"corrupt",
				(unsigned long long)s->cluster_size);
	s->l2_entry_size = s->ext_l2 ? 16 : 8;
	s->l2_entries = s->cluster_size / s->l2_entry_size;
	s->l2_bits = s->cluster_bits - (s->ext_l2 ? 4 : 3);
	s->subcluster_bits = s->cluster_bits - 5;
	s->refcount_order = H->refcount_order;
	s->refcount_max = s->refcount_order == 6
				  ? UINT64_MAX
				  : (1ull << (1u << s->refcount_order)) - 1;
	s->rb_bits = s->cluster_bits + 3 - s->refcount_order;
	s->rb_entries = 1ull << s->rb_bits;
	b->size = H->size;
	/* size limits: the L1 table must map the disk */
	if (H->size > (1ull << 62))
		return blk_fail(b, -EINVAL,
				"the virtual size 0x%llx is absurd: the image is "
				"corrupt",
				(unsigned long long)H->size);
	uint64_t need = l1_needed(s, H->size);
	if ((uint64_t)H->l1_size * 8 > QCOW2_MAX_L1_BYTES)
		return blk_fail(b, -EFBIG,
				"the L1 table is too large (%u entries): the "
				"image is corrupt",
				H->l1_size);
	if (need > H->l1_size)
		return blk_fail(b, -EINVAL,
				"the L1 table (%u entries) is too small for the "
				"virtual size (needs %llu): the image is corrupt",
				H->l1_size, (unsigned long long)need);
	if (H->l1_table_offset & (s->cluster_size - 1) ||
	    H->refcount_table_offset & (s->cluster_size - 1) ||
	    H->snapshots_offset & (s->cluster_size - 1))
		return blk_fail(b, -EINVAL,
				"a table offset in the header is not aligned "
				"to a cluster: the image is corrupt");
	if (!H->refcount_table_clusters || !H->refcount_table_offset ||
	    (uint64_t)H->refcount_table_clusters * s->cluster_size >
		    QCOW2_MAX_REFTABLE_BYTES)
		return blk_fail(b, -EINVAL,
				"the refcount table (%u clusters at 0x%llx) is "
				"missing or too large: the image is corrupt",
				H->refcount_table_clusters,
				(unsigned long long)H->refcount_table_offset);
	uint64_t l1b = (uint64_t)H->l1_size * 8;
	uint64_t rtb = (uint64_t)H->refcount_table_clusters * s->cluster_size;
	if ((H->l1_size && H->l1_table_offset < s->cluster_size) ||
	    H->refcount_table_offset < s->cluster_size ||
	    ranges_overlap(H->l1_table_offset, l1b, H->refcount_table_offset,
			   rtb))
		return blk_fail(b, -EINVAL,
				"the L1 table (0x%llx) and the refcount table "
				"(0x%llx) overlap each other or the header: "
				"the image is corrupt",
				(unsigned long long)H->l1_table_offset,
				(unsigned long long)H->refcount_table_offset);
	if ((H->l1_size && H->l1_table_offset + l1b > fsize) ||
	    H->refcount_table_offset + rtb > fsize)
		return blk_fail(b, -EINVAL,
				"the %s table at 0x%llx lies past the end of "
				"the file (size 0x%llx): the image is corrupt",
				H->refcount_table_offset + rtb > fsize
					? "refcount"
					: "L1",
				(unsigned long long)(H->refcount_table_offset +
								     rtb >
							     fsize
						     ? H->refcount_table_offset
						     : H->l1_table_offset),
				(unsigned long long)fsize);
	s->l1_size = H->l1_size;
	s->l1_offset = H->l1_table_offset;
	s->l1 = calloc(s->l1_size ? s->l1_size : 1, 8);
	if (!s->l1)
		return -ENOMEM;
	if (s->l1_size) {
		n = blk_file_pread(b->fd, s->l1, l1b, s->l1_offset);
		if (n < 0 || (uint64_t)n < l1b)
			return blk_fail(b, -EIO, "reading the L1 table failed");
		for (uint64_t i = 0; i < s->l1_size; i++)
			s->l1[i] = be64toh(s->l1[i]);
	}
	s->reftable_offset = H->refcount_table_offset;
	s->reftable_clusters = H->refcount_table_clusters;
	ret = qcow2_load_reftable(s);
	if (ret < 0)
		return ret;
	for (uint64_t i = 0; i < s->reftable_entries; i++) {
		uint64_t r = s->reftable[i] & REFT_OFFSET_MASK;
		if (r && ((r & (s->cluster_size - 1)) || r < s->cluster_size))
			return blk_fail(b, -EINVAL,
					"refcount block %llu at 0x%llx is not "
					"aligned or overlaps the header: the "
					"image is corrupt; try 'maquina img "
					"check -r all'",
					(unsigned long long)i,
					(unsigned long long)r);
	}
	/* caches */
	uint64_t l2_cache = o && o->l2_cache_bytes ? o->l2_cache_bytes : 0;
	if (!l2_cache)
		l2_cache = MIN((uint64_t)32 << 20,
			       MAX(need, 1) * s->cluster_size);
	unsigned l2n = (unsigned)MAX(2, MIN(l2_cache / s->cluster_size, 65536));
	uint64_t rb_cache = o && o->refcount_cache_bytes
				    ? o->refcount_cache_bytes
				    : 4 * s->cluster_size;
	unsigned rbn = (unsigned)MAX(2, MIN(rb_cache / s->cluster_size, 65536));
	if (qcow2_cache_init(&s->l2c, l2n, (uint32_t)s->cluster_size) < 0 ||
	    qcow2_cache_init(&s->rbc, rbn, (uint32_t)s->cluster_size) < 0)
		return -ENOMEM;
	s->cbuf = malloc(s->cluster_size);
	if (!s->cbuf)
		return -ENOMEM;
	s->nb_snaps = 0;
	s->snapshots_offset = H->snapshots_offset;
	ret = qcow2_load_snapshots(s);
	if (ret < 0)
		return ret;
	s->lazy = H->compatible_features & QCOW2_COMPAT_LAZY;
	s->corrupt = H->incompatible_features & QCOW2_INCOMPAT_CORRUPT;
	s->alloc_end = fsize;
	s->free_cluster_index = 0;
	bool check_mode = o && (o->flags & BLK_OPEN_CHECK);
	if (!b->read_only && s->corrupt && !check_mode)
		return blk_fail(b, -EROFS,
				"the image is marked corrupt and cannot be "
				"opened for writing; try 'maquina img check -r "
				"all' or open it read-only");
	if (!b->read_only && (H->incompatible_features & QCOW2_INCOMPAT_DIRTY) &&
	    !check_mode) {
		ret = qcow2_rebuild_refcounts(s);
		if (ret < 0)
			return ret;
		H->incompatible_features &= ~QCOW2_INCOMPAT_DIRTY;
		ret = write_incompat(s);
		if (ret < 0)
			return ret;
	}
	if (o && o->snapshot) {
		if (!b->read_only)
			return blk_fail(b, -EINVAL,
					"a snapshot can only be opened read-only");
		unsigned i;
		for (i = 0; i < s->nb_snaps; i++)
			if (!strcmp(s->snaps[i].id, o->snapshot))
				break;
		if (i == s->nb_snaps)
			for (i = 0; i < s->nb_snaps; i++)
				if (!strcmp(s->snaps[i].name, o->snapshot))
					break;
		if (i == s->nb_snaps)
			return blk_fail(b, -ENOENT, "no snapshot '%s'",
					o->snapshot);
		struct qcow2_snapshot *sn = &s->snaps[i];
		uint64_t sb = (uint64_t)sn->l1_size * 8;
		uint64_t *nl1 = calloc(MAX(sn->l1_size, need) + 1, 8);
		if (!nl1)
			return -ENOMEM;
		n = blk_file_pread(b->fd, nl1, sb, sn->l1_offset);
		if (n < 0 || (uint64_t)n < sb) {
			free(nl1);
			return blk_fail(b, -EIO,
					"the L1 table of snapshot '%s' lies past "
					"the end of the file: the image is "
					"corrupt",
					sn->name);
		}
		for (uint64_t j = 0; j < sn->l1_size; j++)
			nl1[j] = be64toh(nl1[j]);
		free(s->l1);
		s->l1 = nl1;
		s->l1_size = (uint32_t)MAX(sn->l1_size, need);
	}
	const char *bfile = o && o->backing_file ? o->backing_file
						 : s->backing_file;
	if (bfile && !(o && (o->flags & BLK_OPEN_NO_BACKING))) {
		const char *fmt = s->backing_format;
		if (o && o->backing_file)
			fmt = blk_format_name(o->backing_format);
		ret = blk_open_backing(b, bfile, fmt, o ? o : &(struct blk_open_opts){ 0 });
		if (ret < 0)
			return ret;
	}
	return 0;
}

static void qcow2_close(struct blk *b)
{
	struct qcow2 *s = b->opaque;
	if (!s)
		return;
	if (!b->read_only && s->dirty_set && qcow2_flush_all(s) == 0 &&
	    !b->unsafe) {
		s->h.incompatible_features &= ~QCOW2_INCOMPAT_DIRTY;
		write_incompat(s);
	} else if (!b->read_only && s->dirty_set && b->unsafe) {
		qcow2_flush_all(s);
		s->h.incompatible_features &= ~QCOW2_INCOMPAT_DIRTY;
		write_incompat(s);
	}
	qcow2_cache_destroy(&s->l2c);
	qcow2_cache_destroy(&s->rbc);
	free(s->l1);
	free(s->reftable);
	free(s->hdr_tail);
	free(s->backing_file);
	free(s->backing_format);
	for (unsigned i = 0; i < s->nb_exts; i++)
		free(s->exts[i].data);
	free(s->exts);
	free(s->feature_table);
	qcow2_free_snapshots(s);
	free(s->pending);
	free(s->cbuf);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->idle);
	free(s);
	b->opaque = NULL;
}

/* ------------------------------------------------------------------ */
/* Create                                                              */

int qcow2_create(const char *path, const struct blk_create_opts *o,
		 uint64_t size, char *err, size_t err_len)
{
	uint32_t cs = o->cluster_size ? o->cluster_size : 65536;
	unsigned cb = (unsigned)__builtin_ctz(cs);
	unsigned rbits = o->refcount_bits ? o->refcount_bits : 16;
	bool v3 = o->compat != BLK_COMPAT_0_10;
#define BAD(...)                                                  \
	do {                                                      \
		char m_[256];                                     \
		snprintf(m_, sizeof(m_), __VA_ARGS__);            \
		blk_err_set(err, err_len, "%s: %s", path, m_);    \
		return -EINVAL;                                   \
	} while (0)
	if ((cs & (cs - 1)) || cb < 9 || cb > 21)
		BAD("cluster size must be a power of two between 512 and 2M");
	if (rbits & (rbits - 1) || rbits > 64)
		BAD("refcount_bits must be a power of two up to 64");
	if (!v3 && rbits != 16)
		BAD("refcount_bits other than 16 needs compat=1.1");
	if (!v3 && o->lazy_refcounts)
		BAD("lazy refcounts need compat=1.1");
	if (!v3 && o->compression_type != BLK_COMPRESS_ZLIB)
		BAD("compression_type=zstd needs compat=1.1");
	if (!v3 && o->extended_l2)
		BAD("extended_l2 needs compat=1.1");
	if (o->extended_l2 && cs < 16384)
		BAD("extended_l2 needs a cluster size of at least 16k");
	if (o->backing_file && o->prealloc != BLK_PREALLOC_OFF)
		BAD("preallocation and a backing file cannot be combined");
	if (o->backing_file && strlen(o->backing_file) > 1023)
		BAD("the backing file name is too long");
#undef BAD
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		int ret = -errno;
		blk_err_set(err, err_len, "%s: could not create: %s", path,
			    strerror(errno));
		return ret;
	}
	/* cluster 0 header, 1 refcount table, 2 refcount block */
	unsigned order = (unsigned)__builtin_ctz(rbits);
	uint8_t *buf = calloc(3, cs);
	int ret = -ENOMEM;
	if (!buf)
		goto out;
	struct qcow2_header h = {
		.magic = htobe32(QCOW2_MAGIC),
		.version = htobe32(v3 ? 3 : 2),
		.cluster_bits = htobe32(cb),
		.refcount_table_offset = htobe64(cs),
		.refcount_table_clusters = htobe32(1),
		.refcount_order = htobe32(order),
		.header_length = htobe32(v3 ? 112 : 72),
	};
	memcpy(buf, &h, v3 ? 112 : 72);
	uint64_t rb = htobe64(2ull * cs);
	memcpy(buf + cs, &rb, 8);
	struct qcow2 tmp = { .refcount_order = order };
	for (unsigned i = 0; i < 3; i++)
		qcow2_refblock_set(&tmp, buf + 2 * cs, i, 1);
	ret = blk_file_pwrite(fd, buf, 3ull * cs, 0);
	free(buf);
	if (ret < 0)
		goto out;
	close(fd);
	fd = -1;
	/* finish through the driver: header fields, L1, preallocation */
	struct blk *b;
	struct blk_open_opts oo = { .format = BLK_FMT_QCOW2,
				    .flags = BLK_OPEN_RDWR | BLK_OPEN_NO_BACKING };
	ret = blk_open(path, &oo, &b, err, err_len);
	if (ret < 0)
		return ret;
	struct qcow2 *s = b->opaque;
	if (v3) {
		if (o->lazy_refcounts)
			s->h.compatible_features |= QCOW2_COMPAT_LAZY;
		if (o->compression_type == BLK_COMPRESS_ZSTD) {
			s->h.incompatible_features |= QCOW2_INCOMPAT_COMPRESSION;
			s->h.compression_type = 1;
		}
		if (o->extended_l2)
			s->h.incompatible_features |= QCOW2_INCOMPAT_EXTL2;
	}
	if (o->backing_file) {
		s->backing_file = strdup(o->backing_file);
		if (o->backing_format)
			s->backing_format = strdup(o->backing_format);
		else {
			enum blk_format bf;
			char *bp = blk_resolve_backing(path, o->backing_file);
			if (bp && blk_probe_format(bp, &bf) == 0)
				s->backing_format = strdup(blk_format_name(bf));
			free(bp);
		}
	}
	ret = qcow2_write_header(s);
	blk_close(b);
	if (ret < 0)
		goto fail_msg;
	/* reopen so that the new feature bits take effect */
	ret = blk_open(path, &oo, &b, err, err_len);
	if (ret < 0)
		return ret;
	ret = blk_resize(b, size, false, o->prealloc);
	if (ret == 0 && o->prealloc != BLK_PREALLOC_OFF && size == 0)
		ret = 0;
	if (ret < 0) {
		blk_err_set(err, err_len, "%s", blk_last_error(b));
		blk_close(b);
		return ret;
	}
	s = b->opaque;
	if (o->prealloc != BLK_PREALLOC_OFF && size) {
		lock(s);
		ret = preallocate(s, 0, size, o->prealloc);
		unlock(s);
		if (ret < 0)
			blk_err_set(err, err_len, "%s", blk_last_error(b));
	}
	int r2 = blk_close(b);
	return ret < 0 ? ret : r2;
fail_msg:
	blk_err_set(err, err_len, "%s: could not write the header", path);
	return ret;
out:
	if (fd >= 0)
		close(fd);
	if (ret < 0)
		blk_err_set(err, err_len, "%s: could not create: %s", path,
			    strerror(-ret));
	return ret;
}

/* ------------------------------------------------------------------ */
/* Amend, backing file, make_empty, measure                            */

int qcow2_change_backing_file(struct blk *b, const char *file,
			      const char *fmt)
{
	struct qcow2 *s = b->opaque;
	lock(s);
	qcow2_drain(s);
	int ret = prepare_write(s);
	if (ret == 0) {
		free(s->backing_file);
		free(s->backing_format);
		s->backing_file = file ? strdup(file) : NULL;
		s->backing_format = file && fmt ? strdup(fmt) : NULL;
		ret = qcow2_flush_all(s);
		if (!ret)
			ret = qcow2_write_header(s);
	}
	unlock(s);
	return ret;
}

int qcow2_make_empty(struct blk *b)
{
	struct qcow2 *s = b->opaque;
	lock(s);
	qcow2_drain(s);
	int ret = discard_locked(s, 0, b->size, true);
	if (!ret)
		ret = qcow2_flush_all(s);
	unlock(s);
	return ret;
}

int qcow2_amend(struct blk *b, const struct blk_amend_opts *o)
{
	struct qcow2 *s = b->opaque;
	int ret = 0;
	if (o->refcount_bits && o->refcount_bits != (1u << s->refcount_order))
		return blk_fail(b, -ENOTSUP,
				"changing refcount_bits is not supported; "
				"convert the image instead");
	if (o->size_bytes && o->size_bytes != b->size) {
		ret = blk_resize(b, o->size_bytes, false, BLK_PREALLOC_OFF);
		if (ret < 0)
			return ret;
	}
	if (o->backing_file || o->backing_format) {
		ret = qcow2_change_backing_file(
			b, o->backing_file ? o->backing_file : s->backing_file,
			o->backing_format ? o->backing_format
					  : s->backing_format);
		if (ret < 0)
			return ret;
	}
	lock(s);
	qcow2_drain(s);
	ret = prepare_write(s);
	if (ret < 0)
		goto out;
	if (o->compat == BLK_COMPAT_0_10 && s->h.version == 3) {
		if (s->ext_l2 || s->h.compression_type || s->refcount_order != 4)
			{
			ret = blk_fail(b, -ENOTSUP,
				       "compat=0.10 cannot hold extended L2, "
				       "zstd or refcount_bits other than 16");
			goto out;
		}
		/* zero clusters do not exist in v2: make them real */
		for (uint64_t off = 0; off < b->size;) {
			struct qc_extent ext;
			ret = get_extent(s, off, b->size - off, &ext);
			if (ret < 0)
				goto out;
			if (ext.type == QC_ZERO || ext.type == QC_ZERO_ALLOC) {
				if (ext.type == QC_ZERO && !s->h.backing_file_offset)
					ret = set_clusters(s, off, ALIGN_UP(ext.len, s->cluster_size), 0);
				else
					ret = write_zeroes_bytes(s, off, ext.len);
				if (ret < 0)
					goto out;
			}
			off += ext.len;
		}
		ret = qcow2_flush_all(s);
		if (ret < 0)
			goto out;
		s->h.version = 2;
		s->h.compatible_features = 0;
		s->h.incompatible_features &= QCOW2_INCOMPAT_DIRTY;
		s->h.incompatible_features = 0;
		s->h.autoclear_features = 0;
		s->lazy = false;
		s->dirty_set = false;
		ret = qcow2_write_header(s);
	} else if (o->compat == BLK_COMPAT_1_1 && s->h.version == 2) {
		s->h.version = 3;
		s->h.header_length = 112;
		ret = qcow2_write_header(s);
	}
	if (ret < 0)
		goto out;
	if (o->lazy_refcounts >= 0 && s->h.version == 3) {
		bool on = o->lazy_refcounts;
		ret = qcow2_flush_all(s);
		if (ret < 0)
			goto out;
		if (on)
			s->h.compatible_features |= QCOW2_COMPAT_LAZY;
		else
			s->h.compatible_features &= ~QCOW2_COMPAT_LAZY;
		s->h.incompatible_features &= ~QCOW2_INCOMPAT_DIRTY;
		s->lazy = on;
		s->dirty_set = false;
		ret = qcow2_write_header(s);
	} else if (o->lazy_refcounts == 1 && s->h.version == 2) {
		ret = blk_fail(b, -EINVAL, "lazy refcounts need compat=1.1");
	}
out:
	unlock(s);
	return ret;
}

/* QEMU's formula for the metadata a fully allocated image needs. */
static uint64_t refcount_meta(uint64_t clusters, uint64_t cs, unsigned order,
			      bool generous)
{
	uint64_t per_table = cs / 8, per_block = cs * 8 >> order;
	uint64_t table = 0, blocks = 0, n = 0, last;
	do {
		last = n;
		blocks = (clusters + table + blocks + per_block - 1) / per_block;
		table = (blocks + per_table - 1) / per_table;
		n = clusters + blocks + table;
		if (n == last && generous) {
			clusters += (table + 1) / 2;
			n = 0;
			generous = false;
		}
	} while (n != last);
	return (blocks + table) * cs;
}

static uint64_t prealloc_size(uint64_t size, uint64_t cs, unsigned order,
			      bool ext_l2)
{
	uint64_t meta = cs, l2e = ext_l2 ? 16 : 8;
	uint64_t aligned = ALIGN_UP(size, cs);
	uint64_t nl2e = aligned / cs;
	nl2e = ALIGN_UP(nl2e, cs / l2e);
	meta += nl2e * l2e;
	uint64_t nl1e = nl2e * l2e / cs;
	nl1e = ALIGN_UP(nl1e, cs / 8);
	meta += nl1e * 8;
	meta += refcount_meta((meta + aligned) / cs, cs, order, false);
	return meta + aligned;
}

int qcow2_measure(const struct blk_create_opts *o, struct blk *src,
		  uint64_t *required, uint64_t *full)
{
	uint64_t cs = o->cluster_size ? o->cluster_size : 65536;
	unsigned order = (unsigned)__builtin_ctz(o->refcount_bits ? o->refcount_bits : 16);
	uint64_t size = src ? blk_size(src) : o->size_bytes;
	size = ALIGN_UP(size, 512);
	if (o->format == BLK_FMT_RAW) {
		uint64_t req = size;
		if (src) {
			req = 0;
			for (uint64_t off = 0; off < size;) {
				struct blk_status st;
				int ret = blk_block_status(src, off, size - off,
							   true, &st);
				if (ret < 0)
					return ret;
				if (!(st.flags & BLK_ST_ZERO) || (st.flags & BLK_ST_DATA))
					req += st.len;
				off += st.len;
			}
		}
		*required = req;
		*full = size;
		return 0;
	}
	uint64_t data = 0;
	if (src) {
		for (uint64_t off = 0; off < size;) {
			struct blk_status st;
			int ret = blk_block_status(src, off, size - off, true, &st);
			if (ret < 0)
				return ret;
			if ((st.flags & BLK_ST_DATA) && !(st.flags & BLK_ST_ZERO)) {
				uint64_t a = ALIGN_DOWN(off, cs);
				uint64_t e = ALIGN_UP(off + st.len, cs);
				data += e - a;
			}
			off += st.len;
		}
		data = MIN(data, ALIGN_UP(size, cs));
	}
	uint64_t vs = ALIGN_UP(size, cs);
	*full = prealloc_size(vs, cs, order, o->extended_l2);
	*required = *full - vs + data;
	return 0;
}

const struct blk_driver blk_driver_qcow2 = {
	.name = "qcow2",
	.open = qcow2_open,
	.close = qcow2_close,
	.preadv = qcow2_preadv,
	.pwritev = qcow2_pwritev,
	.pwrite_compressed = qcow2_pwrite_compressed,
	.flush = qcow2_flush,
	.discard = qcow2_discard,
	.write_zeroes = qcow2_write_zeroes,
	.block_status = qcow2_block_status,
	.get_info = qcow2_get_info,
	.resize = qcow2_resize,
};

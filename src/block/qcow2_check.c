/*
 * qcow2: consistency check and repair (qemu-img check), and the refcount
 * rebuild done when a dirty lazy-refcount image is opened for writing.
 *
 * The check counts references to every host cluster from the metadata
 * (header, L1/L2 tables of the active state and of every snapshot, refcount
 * table and blocks, snapshot table) and compares them with the stored
 * refcounts: stored > counted is a leak, stored < counted a corruption.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block/qcow2.h"
#include "core/core.h"

#define MAX_CHECK_CLUSTERS (1ull << 30)

struct check {
	struct qcow2 *s;
	uint64_t *refs;
	uint64_t nb;        /* entries in refs */
	uint64_t file_clusters;
	struct blk_check_result *res;
	blk_check_report_fn *report;
	void *opaque;
	enum blk_repair repair;
	uint64_t next_contig;
	uint8_t *l2buf;
};

static void say(struct check *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void say(struct check *c, const char *fmt, ...)
{
	if (!c->report)
		return;
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	c->report(c->opaque, line);
}

/* Counts a reference to every cluster of [off, off+len). */
static void inc(struct check *c, uint64_t off, uint64_t len)
{
	struct qcow2 *s = c->s;
	if (!len)
		return;
	uint64_t first = off >> s->cluster_bits;
	uint64_t last = (off + len - 1) >> s->cluster_bits;
	for (uint64_t k = first; k <= last; k++) {
		if (k >= c->file_clusters) {
			say(c, "ERROR: counting reference for region exceeding "
			       "the end of the file by one cluster or more: "
			       "offset 0x%llx size 0x%llx",
			    (unsigned long long)off, (unsigned long long)len);
			c->res->corruptions++;
			return;
		}
		if (k >= c->nb) {
			uint64_t nn = MAX(k + 1, c->nb * 2);
			uint64_t *p = realloc(c->refs, nn * 8);
			if (!p) {
				c->res->check_errors++;
				return;
			}
			memset(p + c->nb, 0, (nn - c->nb) * 8);
			c->refs = p;
			c->nb = nn;
		}
		if (c->refs[k] == UINT64_MAX)
			c->res->corruptions++;
		else
			c->refs[k]++;
	}
}

static int check_l2(struct check *c, uint64_t l2off, bool active)
{
	struct qcow2 *s = c->s;
	ssize_t n = blk_file_pread(s->b->fd, c->l2buf, s->cluster_size, l2off);
	if (n < 0 || (uint64_t)n < s->cluster_size) {
		say(c, "ERROR: L2 table at 0x%llx lies past the end of the file",
		    (unsigned long long)l2off);
		c->res->corruptions++;
		return 0;
	}
	uint64_t *l2 = (uint64_t *)c->l2buf;
	c->next_contig = 0; /* contiguity is counted within one table */
	for (uint64_t i = 0; i < s->l2_entries; i++) {
		uint64_t e = qcow2_l2_get(s, l2, i);
		if (e & QCOW_OFLAG_COMPRESSED) {
			unsigned x = 62 - (s->cluster_bits - 8);
			uint64_t h = e & ((1ull << x) - 1);
			uint64_t ns = ((e & ~(3ull << 62)) >> x) + 1;
			uint64_t end = (h & ~511ull) + ns * 512;
			if (e & QCOW_OFLAG_COPIED) {
				say(c, "ERROR: coffset=0x%llx: copied flag must "
				       "never be set for compressed clusters",
				    (unsigned long long)h);
				c->res->corruptions++;
			}
			if (active) {
				c->res->allocated_clusters++;
				c->res->compressed_clusters++;
				c->res->fragmented_clusters++;
			}
			inc(c, h, end - h);
			continue;
		}
		uint64_t h = e & L2E_OFFSET_MASK;
		if (!h)
			continue;
		if (h & (s->cluster_size - 1)) {
			/* counted anyway, over the clusters it touches, as
			 * qemu-img does */
			say(c, "ERROR offset=%llx: Data cluster is not properly "
			       "aligned; L2 entry corrupted.",
			    (unsigned long long)h);
			c->res->corruptions++;
		}
		if (active) {
			c->res->allocated_clusters++;
			if (c->next_contig && h != c->next_contig)
				c->res->fragmented_clusters++;
			c->next_contig = h + s->cluster_size;
		}
		inc(c, h, s->cluster_size);
	}
	return 0;
}

static int check_l1(struct check *c, const uint64_t *l1, uint64_t l1_size,
		    bool active)
{
	struct qcow2 *s = c->s;
	for (uint64_t i = 0; i < l1_size; i++) {
		uint64_t l2off = l1[i] & L1E_OFFSET_MASK;
		if (!l2off)
			continue;
		if ((l2off & (s->cluster_size - 1)) || l2off < s->cluster_size) {
			say(c, "ERROR l2_offset=%llx: Table is not cluster "
			       "aligned; L1 entry corrupted",
			    (unsigned long long)l2off);
			c->res->corruptions++;
			continue;
		}
		inc(c, l2off, s->cluster_size);
		check_l2(c, l2off, active);
	}
	return 0;
}

/* Persistent dirty bitmaps (only when the autoclear bit says they are
 * consistent, as QEMU): the directory, each bitmap table and its data
 * clusters. */
static void count_bitmaps(struct check *c)
{
	struct qcow2 *s = c->s;
	if (!(s->h.autoclear_features & QCOW2_AUTOCLEAR_BITMAPS))
		return;
	const struct qcow2_ext *x = NULL;
	for (unsigned i = 0; i < s->nb_exts; i++)
		if (s->exts[i].type == QCOW2_EXT_BITMAPS && s->exts[i].len >= 24)
			x = &s->exts[i];
	if (!x)
		return;
	uint32_t nb;
	uint64_t dsize, doff;
	memcpy(&nb, x->data, 4);
	memcpy(&dsize, x->data + 8, 8);
	memcpy(&doff, x->data + 16, 8);
	nb = be32toh(nb);
	dsize = be64toh(dsize);
	doff = be64toh(doff);
	if (dsize > (64u << 20) || nb > 65535 || (doff & (s->cluster_size - 1))) {
		say(c, "ERROR: the bitmap directory (0x%llx, %llu bytes) is "
		       "invalid",
		    (unsigned long long)doff, (unsigned long long)dsize);
		c->res->corruptions++;
		return;
	}
	uint8_t *dir = malloc(dsize ? dsize : 1);
	if (!dir || (uint64_t)blk_file_pread(s->b->fd, dir, dsize, doff) != dsize) {
		free(dir);
		c->res->check_errors++;
		return;
	}
	inc(c, doff, dsize);
	uint64_t pos = 0;
	for (uint32_t i = 0; i < nb && pos + 24 <= dsize; i++) {
		uint64_t toff;
		uint32_t tsize, extra;
		uint16_t nlen;
		memcpy(&toff, dir + pos, 8);
		memcpy(&tsize, dir + pos + 8, 4);
		memcpy(&nlen, dir + pos + 18, 2);
		memcpy(&extra, dir + pos + 20, 4);
		toff = be64toh(toff);
		tsize = be32toh(tsize);
		nlen = be16toh(nlen);
		extra = be32toh(extra);
		uint64_t tbytes = (uint64_t)tsize * 8;
		if ((toff & (s->cluster_size - 1)) || tbytes > (64u << 20)) {
			c->res->corruptions++;
			break;
		}
		uint64_t *t = malloc(tbytes ? tbytes : 8);
		if (t && (uint64_t)blk_file_pread(s->b->fd, t, tbytes, toff) ==
				 tbytes) {
			inc(c, toff, tbytes);
			for (uint32_t k = 0; k < tsize; k++) {
				uint64_t e = be64toh(t[k]) & L2E_OFFSET_MASK;
				if (e)
					inc(c, e, s->cluster_size);
			}
		} else {
			c->res->check_errors++;
		}
		free(t);
		pos += ALIGN_UP(24 + (uint64_t)extra + nlen, 8);
	}
	free(dir);
}

static int count_refs(struct check *c)
{
	struct qcow2 *s = c->s;
	c->next_contig = 0;
	inc(c, 0, s->cluster_size);
	inc(c, s->l1_offset, (uint64_t)s->l1_size * 8);
	check_l1(c, s->l1, s->l1_size, true);
	for (unsigned i = 0; i < s->nb_snaps; i++) {
		struct qcow2_snapshot *sn = &s->snaps[i];
		uint64_t sb = (uint64_t)sn->l1_size * 8;
		uint64_t *l1 = malloc(sb ? sb : 8);
		if (!l1)
			return -ENOMEM;
		if ((uint64_t)blk_file_pread(s->b->fd, l1, sb, sn->l1_offset) !=
		    sb) {
			say(c, "ERROR: the L1 table of snapshot %s lies past "
			       "the end of the file",
			    sn->id);
			c->res->corruptions++;
			free(l1);
			continue;
		}
		for (uint64_t j = 0; j < sn->l1_size; j++)
			l1[j] = be64toh(l1[j]);
		inc(c, sn->l1_offset, sb);
		check_l1(c, l1, sn->l1_size, false);
		free(l1);
	}
	inc(c, s->snapshots_offset, s->snapshots_size);
	count_bitmaps(c);
	inc(c, s->reftable_offset, (uint64_t)s->reftable_clusters * s->cluster_size);
	for (uint64_t i = 0; i < s->reftable_entries; i++) {
		uint64_t r = s->reftable[i] & REFT_OFFSET_MASK;
		if (!r)
			continue;
		if (r & (s->cluster_size - 1)) {
			say(c, "ERROR refcount block %llu is not cluster "
			       "aligned; refcount table entry corrupted",
			    (unsigned long long)i);
			c->res->corruptions++;
			continue;
		}
		if ((r >> s->cluster_bits) >= c->file_clusters) {
			say(c, "ERROR refcount block %llu is outside image",
			    (unsigned long long)i);
			c->res->corruptions++;
			continue;
		}
		inc(c, r, s->cluster_size);
	}
	return 0;
}

/* COPIED flags of the active tables must say refcount == 1. */
static int check_copied(struct check *c)
{
	struct qcow2 *s = c->s;
	bool fix = c->repair == BLK_REPAIR_ALL;
	bool l1_dirty = false;
	int ret;
	for (uint64_t i = 0; i < s->l1_size; i++) {
		uint64_t l1e = s->l1[i], l2off = l1e & L1E_OFFSET_MASK;
		if (!l2off || (l2off & (s->cluster_size - 1)))
			continue;
		uint64_t rc;
		ret = qcow2_get_refcount(s, l2off >> s->cluster_bits, &rc);
		if (ret < 0) {
			c->res->check_errors++;
			continue;
		}
		if ((rc == 1) != !!(l1e & QCOW_OFLAG_COPIED)) {
			say(c, "%s OFLAG_COPIED L2 cluster: l1_index=%llu "
			       "l1_entry=%llx refcount=%llu",
			    fix ? "Repairing" : "ERROR", (unsigned long long)i,
			    (unsigned long long)l1e, (unsigned long long)rc);
			if (fix) {
				s->l1[i] = rc == 1 ? l2off | QCOW_OFLAG_COPIED
						   : l2off;
				l1_dirty = true;
				c->res->corruptions_fixed++;
			} else {
				c->res->corruptions++;
			}
		}
		if ((uint64_t)blk_file_pread(s->b->fd, c->l2buf, s->cluster_size,
					     l2off) != s->cluster_size)
			continue;
		uint64_t *l2 = (uint64_t *)c->l2buf;
		bool l2_dirty = false;
		for (uint64_t j = 0; j < s->l2_entries; j++) {
			uint64_t e = qcow2_l2_get(s, l2, j);
			uint64_t h = e & L2E_OFFSET_MASK;
			if ((e & QCOW_OFLAG_COMPRESSED) || !h ||
			    (h & (s->cluster_size - 1)))
				continue;
			ret = qcow2_get_refcount(s, h >> s->cluster_bits, &rc);
			if (ret < 0) {
				c->res->check_errors++;
				continue;
			}
			if ((rc == 1) != !!(e & QCOW_OFLAG_COPIED)) {
				say(c, "%s OFLAG_COPIED data cluster: "
				       "l2_entry=%llx refcount=%llu",
				    fix ? "Repairing" : "ERROR",
				    (unsigned long long)e,
				    (unsigned long long)rc);
				if (fix) {
					qcow2_l2_set(s, l2, j,
						     rc == 1 ? e | QCOW_OFLAG_COPIED
							     : e & ~QCOW_OFLAG_COPIED,
						     qcow2_l2_get_bitmap(s, l2, j));
					l2_dirty = true;
					c->res->corruptions_fixed++;
				} else {
					c->res->corruptions++;
				}
			}
		}
		if (l2_dirty) {
			qcow2_cache_discard(&s->l2c, l2off);
			ret = blk_file_pwrite(s->b->fd, l2, s->cluster_size,
					      l2off);
			if (ret < 0)
				c->res->check_errors++;
		}
	}
	if (l1_dirty)
		for (uint64_t i = 0; i < s->l1_size; i++)
			if (qcow2_write_l1_entry(s, i) < 0)
				c->res->check_errors++;
	return 0;
}

static int check_pass(struct qcow2 *s, enum blk_repair repair,
		      blk_check_report_fn *report, void *opaque,
		      struct blk_check_result *res)
{
	struct check c = { .s = s, .res = res, .report = report,
			   .opaque = opaque, .repair = repair };
	uint64_t fsize = qcow2_file_size(s);
	c.file_clusters = qcow2_size_to_clusters(s, fsize);
	if (c.file_clusters > MAX_CHECK_CLUSTERS) {
		res->check_errors++;
		return blk_fail(s->b, -EFBIG,
				"the image has too many clusters to check");
	}
	c.nb = MAX(c.file_clusters, 1);
	c.refs = calloc(c.nb, 8);
	c.l2buf = malloc(s->cluster_size);
	if (!c.refs || !c.l2buf) {
		free(c.refs);
		free(c.l2buf);
		return -ENOMEM;
	}
	int ret = qcow2_flush_all(s);
	if (ret < 0)
		res->check_errors++;
	ret = count_refs(&c);
	if (ret < 0)
		goto out;
	res->total_clusters = qcow2_size_to_clusters(s, s->h.size);
	/* compare with the stored refcounts */
	uint64_t covered = s->reftable_entries << s->rb_bits;
	uint64_t limit = MAX(c.nb, MIN(covered, c.file_clusters));
	uint64_t highest = 0;
	if (repair)
		s->free_cluster_index = MAX(s->free_cluster_index, c.nb);
	for (uint64_t k = 0; k < limit; k++) {
		uint64_t want = k < c.nb ? c.refs[k] : 0, have;
		ret = qcow2_get_refcount(s, k, &have);
		if (ret < 0) {
			say(c.report ? &c : &c,
			    "Can't get refcount for cluster %llu: %s",
			    (unsigned long long)k, strerror(-ret));
			res->check_errors++;
			s->b->err[0] = 0;
			continue;
		}
		if (want || have)
			highest = k;
		if (want == have)
			continue;
		bool leak = have > want;
		bool fix = (leak && repair != BLK_REPAIR_NONE) ||
			   (!leak && repair == BLK_REPAIR_ALL);
		say(&c, "%s cluster %llu refcount=%llu reference=%llu",
		    fix ? "Repairing" : leak ? "Leaked" : "ERROR",
		    (unsigned long long)k, (unsigned long long)have,
		    (unsigned long long)want);
		if (fix) {
			ret = qcow2_update_refcount(s, k << s->cluster_bits, 1,
						    (int64_t)(want - have));
			if (ret < 0) {
				res->check_errors++;
				continue;
			}
			if (leak)
				res->leaks_fixed++;
			else
				res->corruptions_fixed++;
		} else if (leak) {
			res->leaks++;
		} else {
			res->corruptions++;
		}
	}
	res->image_end_offset = (highest + 1) << s->cluster_bits;
	if (repair) {
		ret = qcow2_flush_all(s);
		if (ret < 0)
			res->check_errors++;
	}
	check_copied(&c);
	if (repair) {
		ret = qcow2_flush_all(s);
		if (ret < 0)
			res->check_errors++;
	}
	ret = 0;
out:
	free(c.refs);
	free(c.l2buf);
	return ret;
}

int qcow2_check(struct blk *b, enum blk_repair repair,
		blk_check_report_fn *report, void *opaque,
		struct blk_check_result *res)
{
	struct qcow2 *s = b->opaque;
	pthread_mutex_lock(&s->lock);
	qcow2_drain(s);
	int ret = check_pass(s, repair, report, opaque, res);
	if (ret == 0 && repair != BLK_REPAIR_NONE &&
	    (res->leaks_fixed || res->corruptions_fixed || res->corruptions ||
	     (s->h.incompatible_features &
	      (QCOW2_INCOMPAT_CORRUPT | QCOW2_INCOMPAT_DIRTY)))) {
		struct blk_check_result r2 = { 0 };
		ret = check_pass(s, BLK_REPAIR_NONE, NULL, NULL, &r2);
		r2.leaks_fixed = res->leaks_fixed;
		r2.corruptions_fixed = res->corruptions_fixed;
		*res = r2;
		if (ret == 0 && !r2.corruptions && !r2.check_errors &&
		    repair == BLK_REPAIR_ALL &&
		    (s->h.incompatible_features &
		     (QCOW2_INCOMPAT_CORRUPT | QCOW2_INCOMPAT_DIRTY))) {
			s->h.incompatible_features &=
				~(QCOW2_INCOMPAT_CORRUPT | QCOW2_INCOMPAT_DIRTY);
			s->corrupt = false;
			s->dirty_set = false;
			uint64_t be = htobe64(s->h.incompatible_features);
			ret = qcow2_update_header_field(
				s, offsetof(struct qcow2_header,
					    incompatible_features),
				&be, 8);
			if (!ret)
				ret = blk_file_sync(b);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int qcow2_rebuild_refcounts(struct qcow2 *s)
{
	struct blk_check_result res = { 0 };
	int ret = check_pass(s, BLK_REPAIR_ALL, NULL, NULL, &res);
	if (ret < 0)
		return ret;
	if (res.check_errors || res.corruptions)
		return blk_fail(s->b, -EIO,
				"the refcounts of this dirty image could not be "
				"rebuilt (%d errors): try 'maquina img check -r "
				"all'",
				res.check_errors + res.corruptions);
	return 0;
}

/*
 * qcow2: table caches, reference counts and cluster allocation.
 *
 * Ordering (crash safety): a cluster's refcount is raised, and written out,
 * before any table that points to it is written; a table entry that stops
 * pointing to a cluster is written out (and synced) before the cluster's
 * refcount is lowered.  Frees are therefore queued (s->pending) and applied
 * by qcow2_flush_all() after the L2 tables are stable.  A crash at any
 * point leaves refcounts that are too high (leaks), never too low.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/qcow2.h"
#include "core/core.h"

int qcow2_cache_init(struct qcow2_cache *c, unsigned n, uint32_t table_size)
{
	memset(c, 0, sizeof(*c));
	c->n = n;
	c->table_size = table_size;
	c->offs = calloc(n, sizeof(*c->offs));
	c->lru = calloc(n, sizeof(*c->lru));
	c->dirty = calloc(n, sizeof(*c->dirty));
	c->data = aligned_alloc(4096, ALIGN_UP((size_t)n * table_size, 4096));
	if (!c->offs || !c->lru || !c->dirty || !c->data)
		return -ENOMEM;
	return 0;
}

void qcow2_cache_destroy(struct qcow2_cache *c)
{
	free(c->offs);
	free(c->lru);
	free(c->dirty);
	free(c->data);
	memset(c, 0, sizeof(*c));
}

static int cache_write(struct qcow2 *s, struct qcow2_cache *c, unsigned i)
{
	int ret;
	if (!c->dirty[i])
		return 0;
	if (c == &s->l2c && (s->l2_dep_refcounts || s->l2_dep_data)) {
		if (s->l2_dep_refcounts) {
			ret = qcow2_flush_refcounts(s);
			if (ret < 0)
				return ret;
		}
		ret = blk_file_sync(s->b);
		if (ret < 0)
			return blk_fail(s->b, ret, "sync failed: %s",
					strerror(-ret));
		s->l2_dep_refcounts = false;
		s->l2_dep_data = false;
	}
	ret = blk_file_pwrite(s->b->fd, c->data + (size_t)i * c->table_size,
			      c->table_size, c->offs[i]);
	if (ret < 0)
		return blk_fail(s->b, ret, "writing metadata at 0x%llx: %s",
				(unsigned long long)c->offs[i], strerror(-ret));
	c->dirty[i] = false;
	return 0;
}

int qcow2_cache_get(struct qcow2 *s, struct qcow2_cache *c, uint64_t off,
		    bool fresh, void **out)
{
	unsigned i;
	if (c->offs[c->last] == off && off) {
		i = c->last;
		goto hit;
	}
	for (i = 0; i < c->n; i++)
		if (c->offs[i] == off)
			goto hit;
	/* miss: take the least recently used slot */
	unsigned victim = 0;
	for (i = 0; i < c->n; i++) {
		if (!c->offs[i]) {
			victim = i;
			break;
		}
		if (c->lru[i] < c->lru[victim])
			victim = i;
	}
	int ret = cache_write(s, c, victim);
	if (ret < 0)
		return ret;
	uint8_t *t = c->data + (size_t)victim * c->table_size;
	c->offs[victim] = 0;
	if (fresh) {
		memset(t, 0, c->table_size);
	} else {
		ssize_t n = blk_file_pread(s->b->fd, t, c->table_size, off);
		if (n < 0)
			return blk_fail(s->b, (int)n,
					"reading metadata at 0x%llx: %s",
					(unsigned long long)off,
					strerror((int)-n));
		if ((size_t)n < c->table_size)
			return blk_fail(s->b, -EIO,
					"%s at 0x%llx lies past the end of the "
					"file (size 0x%llx): the image is "
					"corrupt; try 'maquina img check -r all'",
					c == &s->l2c ? "L2 table"
						     : "refcount block",
					(unsigned long long)off,
					(unsigned long long)qcow2_file_size(s));
	}
	c->offs[victim] = off;
	c->dirty[victim] = false;
	i = victim;
hit:
	c->lru[i] = ++c->tick;
	c->last = i;
	*out = c->data + (size_t)i * c->table_size;
	return 0;
}

void qcow2_cache_mark_dirty(struct qcow2_cache *c, const void *table)
{
	size_t i = (size_t)((const uint8_t *)table - c->data) / c->table_size;
	c->dirty[i] = true;
}

void qcow2_cache_discard(struct qcow2_cache *c, uint64_t off)
{
	for (unsigned i = 0; i < c->n; i++) {
		if (c->offs[i] == off) {
			c->offs[i] = 0;
			c->dirty[i] = false;
			c->lru[i] = 0;
		}
	}
}

static int cache_flush(struct qcow2 *s, struct qcow2_cache *c)
{
	for (unsigned i = 0; i < c->n; i++) {
		if (c->offs[i] && c->dirty[i]) {
			int ret = cache_write(s, c, i);
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

int qcow2_flush_refcounts(struct qcow2 *s)
{
	return cache_flush(s, &s->rbc);
}

int qcow2_flush_l2(struct qcow2 *s)
{
	return cache_flush(s, &s->l2c);
}

static int apply_pending(struct qcow2 *s)
{
	/* The L2 tables no longer pointing to these clusters are stable. */
	unsigned n = s->nb_pending;
	s->nb_pending = 0;
	for (unsigned i = 0; i < n; i++) {
		int ret = qcow2_update_refcount(s, s->pending[i].off,
						s->pending[i].len, -1);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int qcow2_flush_all(struct qcow2 *s)
{
	int ret = qcow2_flush_refcounts(s);
	if (!ret)
		ret = qcow2_flush_l2(s);
	if (!ret && s->nb_pending && !s->inflight_io) {
		ret = blk_file_sync(s->b);
		if (!ret)
			ret = apply_pending(s);
		if (!ret)
			ret = qcow2_flush_refcounts(s);
	}
	if (!ret)
		ret = blk_file_sync(s->b);
	if (ret < 0 && !s->b->err[0])
		blk_fail(s->b, ret, "flush failed: %s", strerror(-ret));
	return ret;
}

uint64_t qcow2_refblock_get(const struct qcow2 *s, const void *rb, uint64_t i)
{
	const uint8_t *p = rb;
	switch (s->refcount_order) {
	case 0:
	case 1:
	case 2: {
		unsigned bits = 1u << s->refcount_order;
		uint64_t bit = i * bits;
		return (p[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
	}
	case 3:
		return p[i];
	case 4:
		return be16toh(((const uint16_t *)rb)[i]);
	case 5:
		return be32toh(((const uint32_t *)rb)[i]);
	default:
		return be64toh(((const uint64_t *)rb)[i]);
	}
}

void qcow2_refblock_set(const struct qcow2 *s, void *rb, uint64_t i,
			uint64_t v)
{
	uint8_t *p = rb;
	switch (s->refcount_order) {
	case 0:
	case 1:
	case 2: {
		unsigned bits = 1u << s->refcount_order;
		uint64_t bit = i * bits;
		uint8_t mask = (uint8_t)(((1u << bits) - 1) << (bit % 8));
		p[bit / 8] = (uint8_t)((p[bit / 8] & ~mask) |
				       ((v << (bit % 8)) & mask));
		break;
	}
	case 3:
		p[i] = (uint8_t)v;
		break;
	case 4:
		((uint16_t *)rb)[i] = htobe16((uint16_t)v);
		break;
	case 5:
		((uint32_t *)rb)[i] = htobe32((uint32_t)v);
		break;
	default:
		((uint64_t *)rb)[i] = htobe64(v);
		break;
	}
}

static int check_refblock_offset(struct qcow2 *s, uint64_t ti, uint64_t off)
{
	if (off & (s->cluster_size - 1))
		return blk_fail(s->b, -EIO,
				"refcount block %llu at 0x%llx is not aligned to "
				"a cluster: the image is corrupt; try 'maquina "
				"img check -r all'",
				(unsigned long long)ti, (unsigned long long)off);
	if (off < s->cluster_size)
		return blk_fail(s->b, -EIO,
				"refcount block %llu overlaps the header: the "
				"image is corrupt; try 'maquina img check -r all'",
				(unsigned long long)ti);
	return 0;
}

int qcow2_get_refcount(struct qcow2 *s, uint64_t cluster, uint64_t *out)
{
	uint64_t ti = cluster >> s->rb_bits;
	*out = 0;
	if (ti >= s->reftable_entries)
		return 0;
	uint64_t rb_off = s->reftable[ti] & REFT_OFFSET_MASK;
	if (!rb_off)
		return 0;
	int ret = check_refblock_offset(s, ti, rb_off);
	if (ret < 0)
		return ret;
	void *rb;
	ret = qcow2_cache_get(s, &s->rbc, rb_off, false, &rb);
	if (ret < 0)
		return ret;
	*out = qcow2_refblock_get(s, rb, cluster & (s->rb_entries - 1));
	return 0;
}

/* First run of n clusters with refcount 0 at or after free_cluster_index. */
static int64_t find_free(struct qcow2 *s, uint64_t n)
{
	uint64_t start = s->free_cluster_index, run = 0;
	uint64_t limit = ((uint64_t)1 << 56) >> s->cluster_bits;
	for (uint64_t c = start; c < limit; c++) {
		uint64_t rc;
		/* fast path: clusters past every refcount block are free */
		if ((c >> s->rb_bits) >= s->reftable_entries ||
		    !(s->reftable[c >> s->rb_bits] & REFT_OFFSET_MASK)) {
			rc = 0;
		} else {
			int ret = qcow2_get_refcount(s, c, &rc);
			if (ret < 0)
				return ret;
		}
		if (rc) {
			run = 0;
			start = c + 1;
			continue;
		}
		if (++run == n)
			return (int64_t)start;
	}
	return blk_fail(s->b, -ENOSPC, "the image is full (no free cluster)");
}

static void note_alloc_end(struct qcow2 *s, uint64_t end)
{
	if (end > s->alloc_end)
		s->alloc_end = end;
}

static int grow_reftable(struct qcow2 *s, uint64_t min_entries);

/* Makes sure refcount block ti exists (allocating it if needed). */
static int ensure_refblock(struct qcow2 *s, uint64_t ti)
{
	int ret;
	if (ti >= s->reftable_entries) {
		ret = grow_reftable(s, ti + 1);
		if (ret < 0)
			return ret;
	}
	if (s->reftable[ti] & REFT_OFFSET_MASK)
		return 0;
	for (;;) {
		int64_t c = find_free(s, 1);
		if (c < 0)
			return (int)c;
		uint64_t ti_c = (uint64_t)c >> s->rb_bits;
		if (ti_c != ti && ti_c < s->reftable_entries &&
		    !(s->reftable[ti_c] & REFT_OFFSET_MASK)) {
			ret = ensure_refblock(s, ti_c);
			if (ret < 0)
				return ret;
			if (s->reftable[ti] & REFT_OFFSET_MASK)
				return 0;
			continue;
		}
		if (ti_c >= s->reftable_entries) {
			ret = grow_reftable(s, ti_c + 1);
			if (ret < 0)
				return ret;
			continue;
		}
		uint64_t off = (uint64_t)c << s->cluster_bits;
		void *rb;
		ret = qcow2_cache_get(s, &s->rbc, off, true, &rb);
		if (ret < 0)
			return ret;
		if (ti_c == ti) {
			qcow2_refblock_set(s, rb, (uint64_t)c & (s->rb_entries - 1),
					   1);
		}
		/* the block goes to disk before the table points to it */
		ret = blk_file_pwrite(s->b->fd, rb, s->cluster_size, off);
		if (ret < 0) {
			qcow2_cache_discard(&s->rbc, off);
			return blk_fail(s->b, ret, "writing a refcount block: %s",
					strerror(-ret));
		}
		note_alloc_end(s, off + s->cluster_size);
		if (ti_c != ti) {
			ret = qcow2_update_refcount(s, off, 1, 1);
			if (ret < 0)
				return ret;
			ret = qcow2_flush_refcounts(s);
			if (ret < 0)
				return ret;
		}
		ret = blk_file_sync(s->b);
		if (ret < 0)
			return ret;
		uint64_t be = htobe64(off);
		ret = blk_file_pwrite(s->b->fd, &be, 8,
				      s->reftable_offset + ti * 8);
		if (ret < 0)
			return blk_fail(s->b, ret,
					"writing the refcount table: %s",
					strerror(-ret));
		s->reftable[ti] = off;
		s->l2_dep_refcounts = true;
		return 0;
	}
}

static int grow_reftable(struct qcow2 *s, uint64_t min_entries)
{
	uint64_t per_cluster = s->cluster_size / 8;
	uint64_t want = MAX(min_entries, s->reftable_entries * 2);
	uint64_t nclusters = (want + per_cluster - 1) / per_cluster;
	if (nclusters * s->cluster_size > QCOW2_MAX_REFTABLE_BYTES)
		return blk_fail(s->b, -EFBIG,
				"the refcount table would exceed %u MiB: the "
				"image cannot grow further",
				QCOW2_MAX_REFTABLE_BYTES >> 20);
	uint64_t new_entries = nclusters * per_cluster;
	int ret = qcow2_flush_refcounts(s);
	if (ret < 0)
		return ret;
	uint64_t end = MAX(qcow2_file_size(s), s->alloc_end);
	uint64_t T = qcow2_size_to_clusters(s, end);
	/* new refcount blocks needed to cover the new table and themselves */
	uint64_t m = 0;
	for (;;) {
		uint64_t range_end = T + nclusters + m, cnt = 0;
		for (uint64_t ti = T >> s->rb_bits;
		     ti <= (range_end - 1) >> s->rb_bits; ti++)
			if (ti >= s->reftable_entries ||
			    !(s->reftable[ti] & REFT_OFFSET_MASK))
				cnt++;
		if (cnt == m)
			break;
		m = cnt;
	}
	uint64_t range_end = T + nclusters + m;
	if (((range_end - 1) >> s->rb_bits) >= new_entries)
		return blk_fail(s->b, -EFBIG, "cannot grow the refcount table");
	uint64_t *nt = calloc(new_entries, 8);
	uint8_t *blocks = calloc(m ? m : 1, s->cluster_size);
	if (!nt || !blocks) {
		free(nt);
		free(blocks);
		return -ENOMEM;
	}
	memcpy(nt, s->reftable, s->reftable_entries * 8);
	uint64_t bi = 0;
	for (uint64_t ti = T >> s->rb_bits; ti <= (range_end - 1) >> s->rb_bits;
	     ti++)
		if (ti >= s->reftable_entries ||
		    !(s->reftable[ti] & REFT_OFFSET_MASK))
			nt[ti] = (T + nclusters + bi++) << s->cluster_bits;
	/* refcounts of the new clusters */
	for (uint64_t c = T; c < range_end; c++) {
		uint64_t ti = c >> s->rb_bits;
		if (ti < s->reftable_entries &&
		    (s->reftable[ti] & REFT_OFFSET_MASK)) {
			ret = qcow2_update_refcount(s, c << s->cluster_bits, 1,
						    1);
			if (ret < 0)
				goto out;
		} else {
			uint64_t k = ((nt[ti] >> s->cluster_bits) - T - nclusters);
			qcow2_refblock_set(s, blocks + k * s->cluster_size,
					   c & (s->rb_entries - 1), 1);
		}
	}
	ret = qcow2_flush_refcounts(s);
	if (!ret && m)
		ret = blk_file_pwrite(s->b->fd, blocks, m * s->cluster_size,
				      (T + nclusters) << s->cluster_bits);
	for (uint64_t i = 0; i < new_entries; i++)
		nt[i] = htobe64(nt[i]);
	if (!ret)
		ret = blk_file_pwrite(s->b->fd, nt, nclusters * s->cluster_size,
				      T << s->cluster_bits);
	for (uint64_t i = 0; i < new_entries; i++)
		nt[i] = be64toh(nt[i]);
	if (!ret)
		ret = blk_file_sync(s->b);
	if (ret < 0) {
		blk_fail(s->b, ret, "growing the refcount table: %s",
			 strerror(-ret));
		goto out;
	}
	struct {
		uint64_t off;
		uint32_t clusters;
	} __attribute__((packed)) hf = { htobe64(T << s->cluster_bits),
					 htobe32((uint32_t)nclusters) };
	ret = qcow2_update_header_field(s, 48, &hf, sizeof(hf));
	if (!ret)
		ret = blk_file_sync(s->b);
	if (ret < 0)
		goto out;
	note_alloc_end(s, range_end << s->cluster_bits);
	uint64_t old_off = s->reftable_offset, old_clusters = s->reftable_clusters;
	free(s->reftable);
	s->reftable = nt;
	nt = NULL;
	s->reftable_entries = new_entries;
	s->reftable_offset = T << s->cluster_bits;
	s->reftable_clusters = (uint32_t)nclusters;
	s->h.refcount_table_offset = s->reftable_offset;
	s->h.refcount_table_clusters = (uint32_t)nclusters;
	ret = qcow2_update_refcount(s, old_off, old_clusters * s->cluster_size,
				    -1);
out:
	free(nt);
	free(blocks);
	return ret;
}

int qcow2_update_refcount(struct qcow2 *s, uint64_t off, uint64_t len,
			  int64_t delta)
{
	if (!len)
		return 0;
	uint64_t first = off >> s->cluster_bits;
	uint64_t last = (off + len - 1) >> s->cluster_bits;
	for (uint64_t c = first; c <= last; c++) {
		uint64_t ti = c >> s->rb_bits;
		int ret;
		if (ti >= s->reftable_entries ||
		    !(s->reftable[ti] & REFT_OFFSET_MASK)) {
			if (delta < 0)
				return blk_fail(s->b, -EIO,
						"cluster 0x%llx is freed but has "
						"no refcount block: the image is "
						"corrupt; try 'maquina img check "
						"-r all'",
						(unsigned long long)c);
			ret = ensure_refblock(s, ti);
			if (ret < 0)
				return ret;
		}
		uint64_t rb_off = s->reftable[ti] & REFT_OFFSET_MASK;
		ret = check_refblock_offset(s, ti, rb_off);
		if (ret < 0)
			return ret;
		void *rb;
		ret = qcow2_cache_get(s, &s->rbc, rb_off, false, &rb);
		if (ret < 0)
			return ret;
		uint64_t i = c & (s->rb_entries - 1);
		uint64_t old = qcow2_refblock_get(s, rb, i), nv;
		if (delta < 0 && old < (uint64_t)-delta)
			return blk_fail(s->b, -EIO,
					"the refcount of cluster 0x%llx would "
					"drop below zero: the image is corrupt; "
					"try 'maquina img check -r all'",
					(unsigned long long)c);
		nv = old + (uint64_t)delta;
		if (delta > 0 && (nv > s->refcount_max || nv < old))
			return blk_fail(s->b, -ERANGE,
					"the refcount of cluster 0x%llx would "
					"exceed %llu (refcount_bits=%u)",
					(unsigned long long)c,
					(unsigned long long)s->refcount_max,
					1u << s->refcount_order);
		qcow2_refblock_set(s, rb, i, nv);
		qcow2_cache_mark_dirty(&s->rbc, rb);
		if (nv == 0) {
			if (c < s->free_cluster_index)
				s->free_cluster_index = c;
			/* never append compressed data to a cluster that may
			 * be handed out whole from now on */
			if ((s->free_byte_offset >> s->cluster_bits) == c)
				s->free_byte_offset = 0;
			qcow2_cache_discard(&s->l2c, c << s->cluster_bits);
		}
	}
	if (delta > 0)
		s->l2_dep_refcounts = true;
	return 0;
}

int64_t qcow2_alloc_clusters(struct qcow2 *s, uint64_t n)
{
	for (;;) {
		int64_t c = find_free(s, n);
		if (c < 0)
			return c;
		uint64_t first_ti = (uint64_t)c >> s->rb_bits;
		uint64_t last_ti = ((uint64_t)c + n - 1) >> s->rb_bits;
		bool missing = false;
		for (uint64_t ti = first_ti; ti <= last_ti; ti++) {
			if (ti >= s->reftable_entries ||
			    !(s->reftable[ti] & REFT_OFFSET_MASK)) {
				int ret = ensure_refblock(s, ti);
				if (ret < 0)
					return ret;
				missing = true;
			}
		}
		if (missing)
			continue; /* the new blocks may have taken clusters */
		uint64_t off = (uint64_t)c << s->cluster_bits;
		int ret = qcow2_update_refcount(s, off, n << s->cluster_bits, 1);
		if (ret < 0)
			return ret;
		s->free_cluster_index = (uint64_t)c + n;
		note_alloc_end(s, off + (n << s->cluster_bits));
		return (int64_t)off;
	}
}

int64_t qcow2_alloc_bytes(struct qcow2 *s, uint64_t size)
{
	uint64_t fbo = s->free_byte_offset;
	uint64_t rc = 0;
	if (fbo && (fbo & (s->cluster_size - 1)) &&
	    size <= s->cluster_size - (fbo & (s->cluster_size - 1)) &&
	    qcow2_get_refcount(s, fbo >> s->cluster_bits, &rc) == 0 &&
	    rc < s->refcount_max) {
		int ret = qcow2_update_refcount(s, fbo, 1, 1);
		if (ret < 0)
			return ret;
		s->free_byte_offset = fbo + size;
		return (int64_t)fbo;
	}
	uint64_t n = (size + s->cluster_size - 1) >> s->cluster_bits;
	int64_t off = qcow2_alloc_clusters(s, n);
	if (off < 0)
		return off;
	s->free_byte_offset = (uint64_t)off + size;
	if (!(s->free_byte_offset & (s->cluster_size - 1)))
		s->free_byte_offset = 0;
	return off;
}

int qcow2_free_clusters(struct qcow2 *s, uint64_t off, uint64_t len)
{
	if (s->nb_pending == s->cap_pending) {
		unsigned cap = s->cap_pending ? s->cap_pending * 2 : 64;
		void *p = realloc(s->pending, cap * sizeof(*s->pending));
		if (!p)
			return -ENOMEM;
		s->pending = p;
		s->cap_pending = cap;
	}
	s->pending[s->nb_pending].off = off;
	s->pending[s->nb_pending].len = len;
	s->nb_pending++;
	if (s->nb_pending >= 4096)
		return qcow2_flush_all(s);
	return 0;
}

/* Frees what an L2 entry points to (normal, zero-alloc or compressed). */
int qcow2_free_l2_entry(struct qcow2 *s, uint64_t e)
{
	if (e & QCOW_OFLAG_COMPRESSED) {
		unsigned x = 62 - (s->cluster_bits - 8);
		uint64_t off = e & (((uint64_t)1 << x) - 1);
		uint64_t nsect = ((e & ~QCOW_OFLAG_COPIED) >> x) &
				 ((1ull << (s->cluster_bits - 8)) - 1);
		uint64_t bytes = (nsect + 1) * 512 - (off & 511);
		return qcow2_free_clusters(s, off & ~511ull, bytes + (off & 511));
	}
	uint64_t host = e & L2E_OFFSET_MASK;
	if (!host)
		return 0;
	return qcow2_free_clusters(s, host, s->cluster_size);
}

int qcow2_load_reftable(struct qcow2 *s)
{
	uint64_t bytes = (uint64_t)s->reftable_clusters * s->cluster_size;
	s->reftable_entries = bytes / 8;
	s->reftable = malloc(bytes ? bytes : 8);
	if (!s->reftable)
		return -ENOMEM;
	ssize_t n = blk_file_pread(s->b->fd, s->reftable, bytes,
				   s->reftable_offset);
	if (n < 0)
		return blk_fail(s->b, (int)n, "reading the refcount table: %s",
				strerror((int)-n));
	if ((uint64_t)n < bytes)
		return blk_fail(s->b, -EINVAL,
				"the refcount table at 0x%llx lies past the end "
				"of the file (size 0x%llx): the image is corrupt",
				(unsigned long long)s->reftable_offset,
				(unsigned long long)qcow2_file_size(s));
	for (uint64_t i = 0; i < s->reftable_entries; i++)
		s->reftable[i] = be64toh(s->reftable[i]);
	return 0;
}

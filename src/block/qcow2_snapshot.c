/*
 * qcow2: internal snapshots.  A snapshot is a copy of the L1 table plus a
 * reference on every L2 table and data cluster it reaches; writes to shared
 * clusters copy them first (refcount > 1, no COPIED flag).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "block/qcow2.h"
#include "core/core.h"

void qcow2_free_snapshots(struct qcow2 *s)
{
	for (unsigned i = 0; i < s->nb_snaps; i++) {
		free(s->snaps[i].id);
		free(s->snaps[i].name);
		free(s->snaps[i].extra);
	}
	free(s->snaps);
	s->snaps = NULL;
	s->nb_snaps = 0;
}

int qcow2_load_snapshots(struct qcow2 *s)
{
	uint32_t nb = s->h.nb_snapshots;
	if (!nb)
		return 0;
	if (nb > QCOW2_MAX_SNAPSHOTS)
		return blk_fail(s->b, -EINVAL,
				"the image claims %u snapshots (at most %u are "
				"allowed): the image is corrupt",
				nb, QCOW2_MAX_SNAPSHOTS);
	uint64_t fsize = qcow2_file_size(s);
	uint64_t off = s->snapshots_offset;
	if (!off || off >= fsize)
		return blk_fail(s->b, -EINVAL,
				"the snapshot table at 0x%llx lies past the end "
				"of the file (size 0x%llx): the image is corrupt",
				(unsigned long long)off,
				(unsigned long long)fsize);
	s->snaps = calloc(nb, sizeof(*s->snaps));
	if (!s->snaps)
		return -ENOMEM;
	uint64_t pos = off;
	for (uint32_t i = 0; i < nb; i++) {
		uint8_t f[40];
		if (pos - off > QCOW2_MAX_SNAPSHOT_TABLE_BYTES ||
		    blk_file_pread(s->b->fd, f, 40, pos) != 40)
			goto trunc;
		struct qcow2_snapshot *sn = &s->snaps[i];
		s->nb_snaps = i + 1;
		uint64_t v64;
		uint32_t v32;
		uint16_t idl, nl;
		memcpy(&v64, f, 8);
		sn->l1_offset = be64toh(v64);
		memcpy(&v32, f + 8, 4);
		sn->l1_size = be32toh(v32);
		memcpy(&idl, f + 12, 2);
		memcpy(&nl, f + 14, 2);
		idl = be16toh(idl);
		nl = be16toh(nl);
		memcpy(&v32, f + 16, 4);
		sn->date_sec = be32toh(v32);
		memcpy(&v32, f + 20, 4);
		sn->date_nsec = be32toh(v32);
		memcpy(&v64, f + 24, 8);
		sn->vm_clock_nsec = be64toh(v64);
		memcpy(&v32, f + 32, 4);
		sn->vm_state_size32 = be32toh(v32);
		memcpy(&v32, f + 36, 4);
		sn->extra_size = be32toh(v32);
		if (sn->extra_size > 1024)
			return blk_fail(s->b, -EINVAL,
					"snapshot %u has %u bytes of extra data "
					"(at most 1024): the image is corrupt",
					i, sn->extra_size);
		uint64_t var = (uint64_t)sn->extra_size + idl + nl;
		uint8_t *v = malloc(var + 1);
		if (!v)
			return -ENOMEM;
		if ((uint64_t)blk_file_pread(s->b->fd, v, var, pos + 40) != var) {
			free(v);
			goto trunc;
		}
		sn->extra = malloc(sn->extra_size + 1);
		sn->id = strndup((char *)v + sn->extra_size, idl);
		sn->name = strndup((char *)v + sn->extra_size + idl, nl);
		if (!sn->extra || !sn->id || !sn->name) {
			free(v);
			return -ENOMEM;
		}
		memcpy(sn->extra, v, sn->extra_size);
		free(v);
		sn->disk_size = s->h.size;
		if (sn->extra_size >= 16) {
			memcpy(&v64, sn->extra + 8, 8);
			sn->disk_size = be64toh(v64);
		}
		if (sn->l1_offset & (s->cluster_size - 1) ||
		    (uint64_t)sn->l1_size * 8 > QCOW2_MAX_L1_BYTES ||
		    (sn->l1_size && (sn->l1_offset < s->cluster_size ||
				     sn->l1_offset + (uint64_t)sn->l1_size * 8 >
					     fsize)))
			return blk_fail(s->b, -EINVAL,
					"the L1 table of snapshot '%s' (0x%llx, "
					"%u entries) is misaligned, too large or "
					"past the end of the file: the image is "
					"corrupt",
					sn->name,
					(unsigned long long)sn->l1_offset,
					sn->l1_size);
		pos += ALIGN_UP(40 + var, 8);
	}
	s->snapshots_size = pos - off;
	return 0;
trunc:
	return blk_fail(s->b, -EINVAL,
			"the snapshot table at 0x%llx is truncated or too "
			"large: the image is corrupt",
			(unsigned long long)off);
}

int qcow2_snapshot_list(struct blk *b, struct blk_snapshot_info **out,
			unsigned *nb)
{
	struct qcow2 *s = b->opaque;
	*out = NULL;
	*nb = 0;
	if (!s->nb_snaps)
		return 0;
	struct blk_snapshot_info *v = calloc(s->nb_snaps, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (unsigned i = 0; i < s->nb_snaps; i++) {
		struct qcow2_snapshot *sn = &s->snaps[i];
		snprintf(v[i].id, sizeof(v[i].id), "%s", sn->id);
		snprintf(v[i].name, sizeof(v[i].name), "%s", sn->name);
		v[i].vm_state_size = sn->vm_state_size32;
		if (sn->extra_size >= 8) {
			uint64_t x;
			memcpy(&x, sn->extra, 8);
			v[i].vm_state_size = be64toh(x);
		}
		v[i].date_sec = sn->date_sec;
		v[i].date_nsec = sn->date_nsec;
		v[i].vm_clock_nsec = sn->vm_clock_nsec;
		v[i].disk_size = sn->disk_size;
		v[i].icount = UINT64_MAX;
		if (sn->extra_size >= 24) {
			uint64_t x;
			memcpy(&x, sn->extra + 16, 8);
			v[i].icount = be64toh(x);
		}
	}
	*out = v;
	*nb = s->nb_snaps;
	return 0;
}

/* Adds delta to the refcount of every L2 table and cluster l1 reaches,
 * stopping after *budget updates when budget is not NULL; *done counts the
 * updates made. */
static int l1_refs_walk(struct qcow2 *s, const uint64_t *l1, uint64_t l1_size,
			int64_t delta, const uint64_t *budget, uint64_t *done)
{
	uint64_t *tmp = malloc(s->cluster_size);
	if (!tmp)
		return -ENOMEM;
	int ret = 0;
#define STEP(expr)                                           \
	do {                                                 \
		if (budget && *done >= *budget)              \
			goto out;                            \
		ret = (expr);                                \
		if (ret < 0)                                 \
			goto out;                            \
		(*done)++;                                   \
	} while (0)
	for (uint64_t i = 0; i < l1_size; i++) {
		uint64_t l2off = l1[i] & L1E_OFFSET_MASK;
		if (!l2off)
			continue;
		uint64_t *l2;
		ret = qcow2_l2_load(s, l2off, &l2);
		if (ret < 0)
			goto out;
		memcpy(tmp, l2, s->cluster_size);
		for (uint64_t j = 0; j < s->l2_entries; j++) {
			uint64_t e = qcow2_l2_get(s, tmp, j);
			if (e & QCOW_OFLAG_COMPRESSED) {
				unsigned x = 62 - (s->cluster_bits - 8);
				uint64_t h = e & ((1ull << x) - 1);
				uint64_t ns = ((e & ~(3ull << 62)) >> x) + 1;
				uint64_t end = (h & ~511ull) + ns * 512;
				STEP(qcow2_update_refcount(s, h, end - h, delta));
			} else if (e & L2E_OFFSET_MASK) {
				STEP(qcow2_update_refcount(
					s, e & L2E_OFFSET_MASK, s->cluster_size,
					delta));
			}
		}
		STEP(qcow2_update_refcount(s, l2off, s->cluster_size, delta));
	}
#undef STEP
out:
	free(tmp);
	return ret;
}

/* Adds delta to the refcount of every L2 table and cluster l1 reaches.  If
 * an update fails (a refcount would overflow), the ones already made are
 * undone, so that the image stays as it was. */
int qcow2_l1_refs(struct qcow2 *s, const uint64_t *l1, uint64_t l1_size,
		  int64_t delta)
{
	uint64_t done = 0;
	int ret = l1_refs_walk(s, l1, l1_size, delta, NULL, &done);
	if (ret < 0 && done) {
		uint64_t undone = 0;
		l1_refs_walk(s, l1, l1_size, -delta, &done, &undone);
	}
	return ret;
}

/* Sets COPIED on the active tables exactly where the refcount is 1. */
int qcow2_rebuild_copied(struct qcow2 *s)
{
	bool l1_changed = false;
	for (uint64_t i = 0; i < s->l1_size; i++) {
		uint64_t l2off = s->l1[i] & L1E_OFFSET_MASK;
		if (!l2off)
			continue;
		uint64_t rc;
		int ret = qcow2_get_refcount(s, l2off >> s->cluster_bits, &rc);
		if (ret < 0)
			return ret;
		uint64_t ne = rc == 1 ? (l2off | QCOW_OFLAG_COPIED) : l2off;
		if (ne != s->l1[i]) {
			s->l1[i] = ne;
			l1_changed = true;
		}
		uint64_t *l2;
		ret = qcow2_l2_load(s, l2off, &l2);
		if (ret < 0)
			return ret;
		bool dirty = false;
		for (uint64_t j = 0; j < s->l2_entries; j++) {
			uint64_t e = qcow2_l2_get(s, l2, j);
			uint64_t h = e & L2E_OFFSET_MASK;
			if ((e & QCOW_OFLAG_COMPRESSED) || !h)
				continue;
			ret = qcow2_get_refcount(s, h >> s->cluster_bits, &rc);
			if (ret < 0)
				return ret;
			/* the table may have been evicted: reload */
			ret = qcow2_l2_load(s, l2off, &l2);
			if (ret < 0)
				return ret;
			uint64_t n = rc == 1 ? e | QCOW_OFLAG_COPIED
					     : e & ~QCOW_OFLAG_COPIED;
			if (n != e) {
				qcow2_l2_set(s, l2, j, n,
					     qcow2_l2_get_bitmap(s, l2, j));
				qcow2_cache_mark_dirty(&s->l2c, l2);
				dirty = true;
			}
		}
		(void)dirty;
	}
	if (l1_changed) {
		for (uint64_t i = 0; i < s->l1_size; i++) {
			int ret = qcow2_write_l1_entry(s, i);
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

static int write_table(struct qcow2 *s, struct qcow2_snapshot *snaps,
		       unsigned nb)
{
	uint64_t size = 0;
	for (unsigned i = 0; i < nb; i++)
		size += ALIGN_UP(40 + (uint64_t)snaps[i].extra_size +
					 strlen(snaps[i].id) +
					 strlen(snaps[i].name),
				 8);
	uint8_t *buf = calloc(1, size ? size : 1);
	if (!buf)
		return -ENOMEM;
	uint64_t pos = 0;
	for (unsigned i = 0; i < nb; i++) {
		struct qcow2_snapshot *sn = &snaps[i];
		uint64_t v64 = htobe64(sn->l1_offset);
		uint32_t v32 = htobe32(sn->l1_size);
		uint16_t idl = htobe16((uint16_t)strlen(sn->id));
		uint16_t nl = htobe16((uint16_t)strlen(sn->name));
		memcpy(buf + pos, &v64, 8);
		memcpy(buf + pos + 8, &v32, 4);
		memcpy(buf + pos + 12, &idl, 2);
		memcpy(buf + pos + 14, &nl, 2);
		v32 = htobe32(sn->date_sec);
		memcpy(buf + pos + 16, &v32, 4);
		v32 = htobe32(sn->date_nsec);
		memcpy(buf + pos + 20, &v32, 4);
		v64 = htobe64(sn->vm_clock_nsec);
		memcpy(buf + pos + 24, &v64, 8);
		v32 = htobe32(sn->vm_state_size32);
		memcpy(buf + pos + 32, &v32, 4);
		v32 = htobe32(sn->extra_size);
		memcpy(buf + pos + 36, &v32, 4);
		memcpy(buf + pos + 40, sn->extra, sn->extra_size);
		uint64_t p = pos + 40 + sn->extra_size;
		memcpy(buf + p, sn->id, strlen(sn->id));
		p += strlen(sn->id);
		memcpy(buf + p, sn->name, strlen(sn->name));
		pos += ALIGN_UP(40 + (uint64_t)sn->extra_size +
					strlen(sn->id) + strlen(sn->name),
				8);
	}
	int64_t a = 0;
	int ret = 0;
	if (size) {
		a = qcow2_alloc_clusters(s, (size + s->cluster_size - 1) >>
						    s->cluster_bits);
		if (a < 0) {
			free(buf);
			return (int)a;
		}
		ret = qcow2_flush_refcounts(s);
		if (!ret)
			ret = blk_file_pwrite(s->b->fd, buf, size, (uint64_t)a);
		if (!ret)
			ret = blk_file_sync(s->b);
	}
	free(buf);
	if (ret < 0)
		return blk_fail(s->b, ret, "writing the snapshot table: %s",
				strerror(-ret));
	struct {
		uint32_t nb;
		uint64_t off;
	} __attribute__((packed)) hf = { htobe32(nb), htobe64((uint64_t)a) };
	ret = qcow2_update_header_field(s, offsetof(struct qcow2_header,
						    nb_snapshots),
					&hf, sizeof(hf));
	if (!ret)
		ret = blk_file_sync(s->b);
	if (ret < 0)
		return ret;
	uint64_t old = s->snapshots_offset, old_size = s->snapshots_size;
	s->snapshots_offset = (uint64_t)a;
	s->snapshots_size = size;
	s->h.nb_snapshots = nb;
	s->h.snapshots_offset = (uint64_t)a;
	if (old && old_size)
		ret = qcow2_update_refcount(s, old, old_size, -1);
	return ret;
}

static int find_snapshot(struct qcow2 *s, const char *key)
{
	for (unsigned i = 0; i < s->nb_snaps; i++)
		if (!strcmp(s->snaps[i].id, key))
			return (int)i;
	for (unsigned i = 0; i < s->nb_snaps; i++)
		if (!strcmp(s->snaps[i].name, key))
			return (int)i;
	return -1;
}

int qcow2_snapshot_create(struct blk *b, const char *name)
{
	struct qcow2 *s = b->opaque;
	if (s->refcount_order == 0)
		return blk_fail(b, -ENOTSUP,
				"snapshots need refcount_bits of at least 2");
	if (strlen(name) > 65535)
		return blk_fail(b, -EINVAL, "the snapshot name is too long");
	if (s->corrupt)
		return blk_fail(b, -EIO,
				"the image is marked corrupt; try 'maquina img "
				"check -r all'");
	pthread_mutex_lock(&s->lock);
	qcow2_drain(s);
	int ret = 0;
	for (unsigned i = 0; i < s->nb_snaps; i++)
		if (!strcmp(s->snaps[i].name, name)) {
			ret = blk_fail(b, -EEXIST,
				       "a snapshot named '%s' already exists",
				       name);
			goto out;
		}
	if (s->nb_snaps >= QCOW2_MAX_SNAPSHOTS) {
		ret = blk_fail(b, -ENOSPC, "too many snapshots");
		goto out;
	}
	ret = qcow2_flush_all(s);
	if (ret < 0)
		goto out;
	/* copy of the active L1 */
	uint64_t l1b = (uint64_t)s->l1_size * 8;
	int64_t l1a = 0;
	if (l1b) {
		l1a = qcow2_alloc_clusters(s, (l1b + s->cluster_size - 1) >>
						      s->cluster_bits);
		if (l1a < 0) {
			ret = (int)l1a;
			goto out;
		}
	}
	ret = qcow2_l1_refs(s, s->l1, s->l1_size, 1);
	if (ret < 0) {
		if (l1b) /* nothing points to the copy yet */
			qcow2_update_refcount(s, (uint64_t)l1a,
					      ALIGN_UP(l1b, s->cluster_size), -1);
		goto out;
	}
	uint64_t *be = calloc(1, ALIGN_UP(l1b ? l1b : 8, s->cluster_size));
	if (!be) {
		ret = -ENOMEM;
		goto out;
	}
	for (uint64_t i = 0; i < s->l1_size; i++)
		be[i] = htobe64(s->l1[i] & ~QCOW_OFLAG_COPIED);
	ret = qcow2_flush_refcounts(s);
	if (!ret && l1b)
		ret = blk_file_pwrite(b->fd, be, l1b, (uint64_t)l1a);
	free(be);
	if (!ret)
		ret = blk_file_sync(b);
	if (ret < 0)
		goto out;
	/* the new entry */
	unsigned max_id = 0;
	for (unsigned i = 0; i < s->nb_snaps; i++) {
		unsigned v = (unsigned)strtoul(s->snaps[i].id, NULL, 10);
		max_id = MAX(max_id, v);
	}
	struct qcow2_snapshot *ns = realloc(s->snaps,
					    (s->nb_snaps + 1) * sizeof(*ns));
	if (!ns) {
		ret = -ENOMEM;
		goto out;
	}
	s->snaps = ns;
	struct qcow2_snapshot *sn = &s->snaps[s->nb_snaps];
	memset(sn, 0, sizeof(*sn));
	char idbuf[16];
	snprintf(idbuf, sizeof(idbuf), "%u", max_id + 1);
	sn->id = strdup(idbuf);
	sn->name = strdup(name);
	sn->extra_size = s->h.version >= 3 ? 24 : 16;
	sn->extra = calloc(1, 24);
	if (!sn->id || !sn->name || !sn->extra) {
		free(sn->id);
		free(sn->name);
		free(sn->extra);
		ret = -ENOMEM;
		goto out;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	sn->date_sec = (uint32_t)ts.tv_sec;
	sn->date_nsec = (uint32_t)ts.tv_nsec;
	sn->l1_offset = (uint64_t)l1a;
	sn->l1_size = s->l1_size;
	sn->disk_size = b->size;
	uint64_t ds = htobe64(b->size), ic = htobe64(UINT64_MAX);
	memcpy(sn->extra + 8, &ds, 8);
	if (sn->extra_size >= 24)
		memcpy(sn->extra + 16, &ic, 8);
	ret = write_table(s, s->snaps, s->nb_snaps + 1);
	if (ret < 0) {
		free(sn->id);
		free(sn->name);
		free(sn->extra);
		goto out;
	}
	s->nb_snaps++;
	ret = qcow2_rebuild_copied(s);
	if (!ret)
		ret = qcow2_flush_all(s);
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int qcow2_snapshot_apply(struct blk *b, const char *id_or_name)
{
	struct qcow2 *s = b->opaque;
	if (s->corrupt)
		return blk_fail(b, -EIO,
				"the image is marked corrupt; try 'maquina img "
				"check -r all'");
	pthread_mutex_lock(&s->lock);
	qcow2_drain(s);
	int idx = find_snapshot(s, id_or_name);
	int ret;
	uint64_t *snl1 = NULL, *old = NULL;
	if (idx < 0) {
		ret = blk_fail(b, -ENOENT, "no snapshot '%s'", id_or_name);
		goto out;
	}
	struct qcow2_snapshot *sn = &s->snaps[idx];
	ret = qcow2_flush_all(s);
	if (ret < 0)
		goto out;
	if (sn->l1_size > s->l1_size) {
		ret = qcow2_grow_l1(s, sn->l1_size);
		if (ret < 0)
			goto out;
	}
	uint64_t sb = (uint64_t)sn->l1_size * 8;
	snl1 = calloc(s->l1_size + 1, 8);
	old = malloc((uint64_t)s->l1_size * 8 + 8);
	if (!snl1 || !old) {
		ret = -ENOMEM;
		goto out;
	}
	if (sb && (uint64_t)blk_file_pread(b->fd, snl1, sb, sn->l1_offset) != sb) {
		ret = blk_fail(b, -EIO, "reading the snapshot's L1 table");
		goto out;
	}
	for (uint64_t i = 0; i < sn->l1_size; i++)
		snl1[i] = be64toh(snl1[i]) & ~QCOW_OFLAG_COPIED;
	ret = qcow2_l1_refs(s, snl1, sn->l1_size, 1);
	if (!ret)
		ret = qcow2_flush_refcounts(s);
	if (!ret)
		ret = blk_file_sync(b);
	if (ret < 0)
		goto out;
	memcpy(old, s->l1, (uint64_t)s->l1_size * 8);
	memcpy(s->l1, snl1, (uint64_t)s->l1_size * 8);
	for (uint64_t i = 0; i < s->l1_size; i++) {
		ret = qcow2_write_l1_entry(s, i);
		if (ret < 0)
			goto out;
	}
	ret = blk_file_sync(b);
	if (!ret)
		ret = qcow2_l1_refs(s, old, s->l1_size, -1);
	if (!ret)
		ret = qcow2_rebuild_copied(s);
	if (!ret && sn->disk_size != b->size) {
		uint64_t be = htobe64(sn->disk_size);
		ret = qcow2_update_header_field(
			s, offsetof(struct qcow2_header, size), &be, 8);
		if (!ret) {
			b->size = sn->disk_size;
			s->h.size = sn->disk_size;
		}
	}
	if (!ret)
		ret = qcow2_flush_all(s);
out:
	free(snl1);
	free(old);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int qcow2_snapshot_delete(struct blk *b, const char *id_or_name)
{
	struct qcow2 *s = b->opaque;
	if (s->corrupt)
		return blk_fail(b, -EIO,
				"the image is marked corrupt; try 'maquina img "
				"check -r all'");
	pthread_mutex_lock(&s->lock);
	qcow2_drain(s);
	int idx = find_snapshot(s, id_or_name);
	int ret;
	uint64_t *snl1 = NULL;
	if (idx < 0) {
		ret = blk_fail(b, -ENOENT, "no snapshot '%s'", id_or_name);
		goto out;
	}
	struct qcow2_snapshot sn = s->snaps[idx];
	ret = qcow2_flush_all(s);
	if (ret < 0)
		goto out;
	uint64_t sb = (uint64_t)sn.l1_size * 8;
	snl1 = calloc(sn.l1_size + 1, 8);
	if (!snl1) {
		ret = -ENOMEM;
		goto out;
	}
	if (sb && (uint64_t)blk_file_pread(b->fd, snl1, sb, sn.l1_offset) != sb) {
		ret = blk_fail(b, -EIO, "reading the snapshot's L1 table");
		goto out;
	}
	for (uint64_t i = 0; i < sn.l1_size; i++)
		snl1[i] = be64toh(snl1[i]);
	memmove(&s->snaps[idx], &s->snaps[idx + 1],
		(s->nb_snaps - (unsigned)idx - 1) * sizeof(*s->snaps));
	s->nb_snaps--;
	ret = write_table(s, s->snaps, s->nb_snaps);
	if (ret < 0) {
		/* put it back in memory: the file still has it */
		memmove(&s->snaps[idx + 1], &s->snaps[idx],
			(s->nb_snaps - (unsigned)idx) * sizeof(*s->snaps));
		s->snaps[idx] = sn;
		s->nb_snaps++;
		goto out;
	}
	free(sn.id);
	free(sn.name);
	free(sn.extra);
	ret = qcow2_l1_refs(s, snl1, sn.l1_size, -1);
	if (!ret && sb)
		ret = qcow2_update_refcount(s, sn.l1_offset,
					    ALIGN_UP(sb, s->cluster_size), -1);
	if (!ret)
		ret = qcow2_rebuild_copied(s);
	if (!ret)
		ret = qcow2_flush_all(s);
out:
	free(snl1);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

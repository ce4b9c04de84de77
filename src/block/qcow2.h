/*
 * qcow2: private declarations of the qcow2 driver (qcow2.c: header, open,
 * create, I/O; qcow2_refcount.c: caches, refcounts, allocation, check;
 * qcow2_snapshot.c: internal snapshots).
 */
#ifndef MAQUINA_QCOW2_H
#define MAQUINA_QCOW2_H

#include <endian.h>
#include <pthread.h>

#include "block/block_int.h"

#define QCOW2_MAGIC 0x514649fbu
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_MAX_L1_BYTES (32u << 20)
#define QCOW2_MAX_REFTABLE_BYTES (8u << 20)
#define QCOW2_MAX_SNAPSHOTS 65536
#define QCOW2_MAX_SNAPSHOT_TABLE_BYTES (64u << 20)

/* feature bits */
#define QCOW2_INCOMPAT_DIRTY (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2 (1ull << 4)
#define QCOW2_INCOMPAT_KNOWN 0x1full
#define QCOW2_COMPAT_LAZY (1ull << 0)
#define QCOW2_AUTOCLEAR_BITMAPS (1ull << 0)
#define QCOW2_AUTOCLEAR_DATA_RAW (1ull << 1)

/* header extensions */
#define QCOW2_EXT_END 0x00000000u
#define QCOW2_EXT_BACKING_FMT 0xe2792acau
#define QCOW2_EXT_FEATURES 0x6803f857u
#define QCOW2_EXT_BITMAPS 0x23852875u
#define QCOW2_EXT_CRYPTO 0x0537be77u
#define QCOW2_EXT_DATA_FILE 0x44415441u

/* table entries */
#define L1E_OFFSET_MASK 0x00fffffffffffe00ull
#define L2E_OFFSET_MASK 0x00fffffffffffe00ull
#define QCOW_OFLAG_COPIED (1ull << 63)
#define QCOW_OFLAG_COMPRESSED (1ull << 62)
#define QCOW_OFLAG_ZERO (1ull << 0)
#define REFT_OFFSET_MASK 0xfffffffffffffe00ull

struct qcow2_header {
	uint32_t magic;
	uint32_t version;
	uint64_t backing_file_offset;
	uint32_t backing_file_size;
	uint32_t cluster_bits;
	uint64_t size;
	uint32_t crypt_method;
	uint32_t l1_size;
	uint64_t l1_table_offset;
	uint64_t refcount_table_offset;
	uint32_t refcount_table_clusters;
	uint32_t nb_snapshots;
	uint64_t snapshots_offset;
	uint64_t incompatible_features;
	uint64_t compatible_features;
	uint64_t autoclear_features;
	uint32_t refcount_order;
	uint32_t header_length;
	uint8_t compression_type;
	uint8_t pad[7];
} __attribute__((packed));
_Static_assert(sizeof(struct qcow2_header) == 112, "qcow2 header size");

struct qcow2_ext {
	uint32_t type;
	uint32_t len;
	uint8_t *data;
};

struct qcow2_snapshot {
	uint64_t l1_offset;
	uint32_t l1_size;
	char *id;
	char *name;
	uint32_t date_sec, date_nsec;
	uint64_t vm_clock_nsec;
	uint32_t vm_state_size32;
	uint32_t extra_size;
	uint8_t *extra; /* extra_size bytes, kept as read */
	uint64_t disk_size;
};

/* A cache of cluster-sized tables (L2 tables or refcount blocks). */
struct qcow2_cache {
	unsigned n;
	uint32_t table_size;
	uint64_t *offs; /* 0: empty slot */
	uint64_t *lru;
	bool *dirty;
	uint8_t *data;
	uint64_t tick;
	unsigned last;
};

struct qcow2 {
	struct blk *b;
	struct qcow2_header h;  /* host-endian copy */
	uint8_t *hdr_tail;      /* header bytes past 112 up to header_length */
	uint32_t hdr_tail_len;
	unsigned cluster_bits;
	uint64_t cluster_size;
	unsigned l2_bits;       /* log2 of entries per L2 table */
	uint64_t l2_entries;
	unsigned l2_entry_size; /* 8, or 16 with extended L2 */
	bool ext_l2;
	unsigned subcluster_bits; /* log2 subcluster size */
	uint64_t *l1;           /* host-endian, l1_size entries */
	uint32_t l1_size;
	uint64_t l1_offset;
	uint64_t *reftable;     /* host-endian */
	uint64_t reftable_entries;
	uint64_t reftable_offset;
	uint32_t reftable_clusters;
	unsigned refcount_order;
	uint64_t refcount_max;
	uint64_t rb_entries;    /* refcounts per block */
	unsigned rb_bits;       /* log2 rb_entries */
	struct qcow2_cache l2c;
	struct qcow2_cache rbc;
	bool l2_dep_refcounts;  /* flush refcount blocks + sync first */
	bool l2_dep_data;       /* sync data first */
	uint64_t free_cluster_index;
	uint64_t alloc_end;     /* bytes: end of the highest cluster in use
				 * (file end or allocated since) */
	struct { uint64_t off, len; } *pending; /* frees waiting for the
						 * L2 tables to be stable */
	unsigned nb_pending, cap_pending;
	unsigned inflight_io;   /* data reads/writes running without the
				 * lock: queued frees wait for them */
	pthread_cond_t idle;    /* signalled when inflight_io drops to 0 */
	uint64_t free_byte_offset; /* for compressed clusters; 0: none */
	char *backing_file;
	char *backing_format;
	struct qcow2_ext *exts; /* unknown extensions, preserved */
	unsigned nb_exts;
	uint8_t *feature_table; /* as read (for info); may be NULL */
	uint32_t feature_table_len;
	struct qcow2_snapshot *snaps;
	unsigned nb_snaps;
	uint64_t snapshots_offset;
	uint64_t snapshots_size; /* bytes of the snapshot table */
	bool lazy;
	bool dirty_set;         /* we set the dirty bit this session */
	bool autoclear_cleared;
	bool corrupt;           /* validated bad: never write */
	pthread_mutex_t lock;
	uint8_t *cbuf;          /* cluster scratch (compressed) */
};

static inline uint64_t qcow2_size_to_clusters(const struct qcow2 *s,
					      uint64_t size)
{
	return (size + s->cluster_size - 1) >> s->cluster_bits;
}

/* Waits (lock held) until no data I/O runs outside the lock. */
static inline void qcow2_drain(struct qcow2 *s)
{
	while (s->inflight_io)
		pthread_cond_wait(&s->idle, &s->lock);
}

/* qcow2.c */
int qcow2_write_header(struct qcow2 *s);
int qcow2_update_header_field(struct qcow2 *s, size_t field_off,
			      const void *be, size_t len);
int qcow2_mark_corrupt(struct qcow2 *s);
int qcow2_l2_load(struct qcow2 *s, uint64_t l2_off, uint64_t **out);
int qcow2_write_l1_entry(struct qcow2 *s, uint64_t idx);
int qcow2_read_cluster_raw(struct qcow2 *s, uint64_t host, void *buf,
			   size_t len);
uint64_t qcow2_file_size(struct qcow2 *s);
int qcow2_decompress(struct qcow2 *s, uint64_t l2e, uint8_t *out);
int qcow2_load_snapshots(struct qcow2 *s);
void qcow2_free_snapshots(struct qcow2 *s);
int qcow2_grow_l1(struct qcow2 *s, uint64_t min_size);
int qcow2_rebuild_copied(struct qcow2 *s);
int qcow2_l1_refs(struct qcow2 *s, const uint64_t *l1, uint64_t l1_size,
		  int64_t delta);

/* L2 entry helpers */
static inline uint64_t qcow2_l2_get(const struct qcow2 *s, const uint64_t *l2,
				    uint64_t i)
{
	return be64toh(l2[i * (s->l2_entry_size / 8)]);
}
static inline uint64_t qcow2_l2_get_bitmap(const struct qcow2 *s,
					   const uint64_t *l2, uint64_t i)
{
	return s->ext_l2 ? be64toh(l2[i * 2 + 1]) : 0;
}
static inline void qcow2_l2_set(const struct qcow2 *s, uint64_t *l2,
				uint64_t i, uint64_t e, uint64_t bitmap)
{
	l2[i * (s->l2_entry_size / 8)] = htobe64(e);
	if (s->ext_l2)
		l2[i * 2 + 1] = htobe64(bitmap);
}

/* qcow2_refcount.c */
int qcow2_cache_init(struct qcow2_cache *c, unsigned n, uint32_t table_size);
void qcow2_cache_destroy(struct qcow2_cache *c);
int qcow2_cache_get(struct qcow2 *s, struct qcow2_cache *c, uint64_t off,
		    bool fresh, void **out);
void qcow2_cache_mark_dirty(struct qcow2_cache *c, const void *table);
void qcow2_cache_discard(struct qcow2_cache *c, uint64_t off);
int qcow2_flush_l2(struct qcow2 *s);
int qcow2_flush_refcounts(struct qcow2 *s);
int qcow2_flush_all(struct qcow2 *s);
int qcow2_get_refcount(struct qcow2 *s, uint64_t cluster, uint64_t *out);
int qcow2_update_refcount(struct qcow2 *s, uint64_t off, uint64_t len,
			  int64_t delta);
int64_t qcow2_alloc_clusters(struct qcow2 *s, uint64_t n);
int64_t qcow2_alloc_bytes(struct qcow2 *s, uint64_t size);
int qcow2_free_clusters(struct qcow2 *s, uint64_t off, uint64_t len);
int qcow2_free_l2_entry(struct qcow2 *s, uint64_t l2e);
int qcow2_load_reftable(struct qcow2 *s);
int qcow2_rebuild_refcounts(struct qcow2 *s);
uint64_t qcow2_refblock_get(const struct qcow2 *s, const void *rb,
			    uint64_t i);
void qcow2_refblock_set(const struct qcow2 *s, void *rb, uint64_t i,
			uint64_t v);

#endif

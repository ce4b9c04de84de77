/*
 * block: block drivers (raw, qcow2), backing chains, asynchronous I/O, and
 * the engine of 'maquina img'.
 *
 * An open image is a struct blk.  It has a driver (raw or qcow2), a virtual
 * size in bytes and, for qcow2, an optional backing image (itself a struct
 * blk, opened read-only, any depth, qcow2 or raw).  Every operation takes
 * guest byte offsets; reads of unallocated qcow2 ranges fall through to the
 * backing chain and read as zeros past its end.
 *
 * Errors: every int-returning function returns 0 (or a documented
 * non-negative value) on success and a negative errno on failure.  Functions
 * that can fail because of the image's content (open, create, I/O on a
 * corrupt image, check, snapshots, resize, amend) also leave a message for a
 * person: blk_open() and blk_create() write it into the caller's buffer,
 * everything else keeps it in the handle (blk_last_error()).  The message
 * starts with the image's file name and says what is wrong and what to do,
 * e.g. "disk.qcow2: L2 table at 0x7f000 lies past the end of the file (size
 * 0x40000): the image is corrupt; try 'maquina img check -r all'".  The
 * caller reports it once: log_error("%s", msg).  The layer itself never logs
 * errors.
 *
 * Untrusted images: every header field and table entry is checked before use;
 * an image that fails validation is never written to (a write-mode open of
 * it fails; read-mode opens refuse only what cannot be read safely).
 *
 * Threads: one struct blk may be used from several threads; the drivers
 * serialise metadata updates internally.  Two handles on the same file in
 * one process must not both write.
 */
#ifndef MAQUINA_BLOCK_H
#define MAQUINA_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* 'maquina img ...': argv[0] is "img".  Returns the exit status, with
 * qemu-img's conventions.  (Implemented in src/block/img/.) */
int img_main(int argc, char **argv);

struct blk;

/* ------------------------------------------------------------------ */
/* Formats                                                             */

enum blk_format {
	BLK_FMT_AUTO = 0, /* probe: qcow2 magic -> qcow2, anything else raw */
	BLK_FMT_RAW,
	BLK_FMT_QCOW2,
};

/* "raw" / "qcow2" (NULL for AUTO or an unknown value). */
const char *blk_format_name(enum blk_format fmt);
/* Parses "raw" or "qcow2".  Returns 0, or -EINVAL for any other name. */
int blk_format_parse(const char *name, enum blk_format *out);
/* Reads the start of the file at path and says which format it holds
 * (qcow2 if it starts with the qcow2 magic, raw otherwise).  Returns 0 or
 * -errno from open/read. */
int blk_probe_format(const char *path, enum blk_format *out);

enum blk_compression {
	BLK_COMPRESS_ZLIB = 0, /* raw deflate, window 4 KiB, as QEMU */
	BLK_COMPRESS_ZSTD = 1,
};

/* ------------------------------------------------------------------ */
/* Opening and closing                                                 */

#define BLK_OPEN_RDWR (1u << 0)       /* read-write; default read-only */
#define BLK_OPEN_NO_BACKING (1u << 1) /* do not open the backing file:
				       * unallocated ranges read as zeros
				       * (qemu-img's -u / info without chain) */
#define BLK_OPEN_CHECK (1u << 2)      /* for check/repair: open an image
				       * with the corrupt or dirty bit as it
				       * is (no repair on open) and allow a
				       * read-write open of a corrupt image;
				       * only blk_check() may write then */
#define BLK_OPEN_UNSAFE (1u << 3)     /* cache=unsafe: blk_flush() and the
				       * ordering flushes become no-ops
				       * (qemu-img convert's target default);
				       * a crash may corrupt the image */
#define BLK_OPEN_DIRECT (1u << 4)     /* O_DIRECT on a raw image file (-t
				       * none); unaligned requests switch it
				       * to buffered I/O; qcow2 images are
				       * always buffered */
#define BLK_OPEN_NO_URING (1u << 5)   /* queues use the thread pool even
				       * where io_uring works */

struct blk_open_opts {
	enum blk_format format;        /* BLK_FMT_AUTO probes */
	unsigned flags;                /* BLK_OPEN_* */
	uint64_t l2_cache_bytes;       /* qcow2 L2 table cache; 0: default
					* (enough tables to map the whole disk,
					* at most 32 MiB, as QEMU 7.2) */
	uint64_t refcount_cache_bytes; /* qcow2 refcount block cache; 0:
					* default (4 clusters, as QEMU) */
	const char *snapshot;          /* read-only view of the internal
					* snapshot with this id or name
					* (convert -l); NULL for the active
					* state; needs read-only */
	const char *backing_file;      /* override the header's backing
					* file name (NULL: use the header) */
	enum blk_format backing_format; /* with backing_file; AUTO probes */
};

/*
 * Opens the image at path.  opts may be NULL (probe, read-only, defaults).
 * The backing chain is opened read-only, each relative backing name resolved
 * against the directory of the image that names it; a chain that loops or is
 * deeper than 64 images is refused (-ELOOP).  A qcow2 image with the dirty
 * bit opened read-write has its refcounts rebuilt first (as QEMU does); one
 * with the corrupt bit or an unknown incompatible feature bit is refused
 * read-write (-EROFS / -ENOTSUP) unless BLK_OPEN_CHECK.  Unknown autoclear
 * bits are cleared on the first write.  On failure returns -errno and writes
 * a message naming the image into err (err_len bytes, may be 0).
 */
int blk_open(const char *path, const struct blk_open_opts *opts,
	     struct blk **out, char *err, size_t err_len);

/* Flushes (unless read-only or BLK_OPEN_UNSAFE), clears the dirty bit of a
 * lazy-refcount qcow2 image, closes the whole chain and frees the handle.
 * Returns 0 or the first error met (the handle is freed anyway).  NULL is a
 * no-op. */
int blk_close(struct blk *b);

/* The message of the last failed operation on this handle ("" if none).
 * Valid until the next operation on the handle. */
const char *blk_last_error(const struct blk *b);

/* Accessors.  blk_backing() is NULL at the end of the chain or with
 * BLK_OPEN_NO_BACKING; the backing handle belongs to b. */
uint64_t blk_size(const struct blk *b);          /* virtual size, bytes */
enum blk_format blk_format(const struct blk *b);
const char *blk_filename(const struct blk *b);   /* as given to open */
struct blk *blk_backing(const struct blk *b);
bool blk_is_read_only(const struct blk *b);
uint32_t blk_cluster_size(const struct blk *b);  /* qcow2 cluster size; 0 raw */
/* Preferred alignment of requests for efficiency (bytes, power of two). */
uint32_t blk_request_alignment(const struct blk *b);

/* ------------------------------------------------------------------ */
/* Synchronous I/O (the helpers tools use).  Offsets and lengths are in  */
/* bytes, need no alignment, and must lie within blk_size() (-EINVAL     */
/* otherwise).                                                           */

/* Reads len bytes at off into buf (from the chain where unallocated). */
int blk_pread(struct blk *b, uint64_t off, void *buf, size_t len);
int blk_preadv(struct blk *b, uint64_t off, const struct iovec *iov, int iovcnt);

#define BLK_WRITE_FUA (1u << 0) /* data (and its metadata) are stable on
				 * return, as if followed by blk_flush() */

/* Writes len bytes at off.  qcow2 allocates clusters (copying the rest of a
 * partly written cluster from the backing chain), breaks sharing with
 * snapshots (copy on write) and turns compressed clusters into normal ones.
 * -EROFS on a read-only handle. */
int blk_pwrite(struct blk *b, uint64_t off, const void *buf, size_t len,
	       unsigned flags);
int blk_pwritev(struct blk *b, uint64_t off, const struct iovec *iov,
		int iovcnt, unsigned flags);

/* Writes one compressed cluster: off must be cluster-aligned and len the
 * cluster size (or the rest of the disk for the last one); the target
 * cluster must be unallocated in this image (as qemu-img convert -c writes
 * a fresh image).  Uses the image's compression type; data that does not
 * shrink is written uncompressed, as QEMU does.  -ENOTSUP for raw. */
int blk_pwrite_compressed(struct blk *b, uint64_t off, const void *buf,
			  size_t len);

/* Makes everything written so far stable (fdatasync of the image, after
 * writing out cached metadata in a crash-safe order).  A no-op with
 * BLK_OPEN_UNSAFE or read-only. */
int blk_flush(struct blk *b);

/* Tells the image that a range is no longer needed.  qcow2: whole clusters
 * inside the range become unallocated (reading from the backing chain
 * afterwards, or zero with no backing; with a backing file on v3 they
 * become zero clusters so that the old backing data does not reappear) and
 * their host clusters are freed and punched; partial clusters are left as
 * they are.  raw: punches a hole (fallocate PUNCH_HOLE|KEEP_SIZE), reads
 * as zeros after.  Discard is advisory: 0 even where nothing was freed. */
int blk_discard(struct blk *b, uint64_t off, uint64_t len);

#define BLK_ZEROES_MAY_UNMAP (1u << 0) /* host space may be freed */

/* Makes a range read as zeros.  qcow2 v3: whole clusters become zero
 * clusters (with MAY_UNMAP their host clusters are freed; without, they
 * keep their allocation as zero-alloc clusters); partial clusters get
 * written zeros.  qcow2 v2 and raw write zeros (raw uses fallocate
 * ZERO_RANGE / PUNCH_HOLE where the file system allows). */
int blk_write_zeroes(struct blk *b, uint64_t off, uint64_t len,
		     unsigned flags);

/* Block status flags. */
#define BLK_ST_DATA (1u << 0)      /* has data in a file (maybe a backing) */
#define BLK_ST_ZERO (1u << 1)      /* reads as zeros */
#define BLK_ST_ALLOCATED (1u << 2) /* decided by this image (not from the
				    * backing chain): qemu-img map's
				    * "present" when depth counts */
#define BLK_ST_OFFSET_VALID (1u << 3) /* host_offset is the byte offset of
				       * the data in the file named by
				       * st->file (not for compressed) */
#define BLK_ST_COMPRESSED (1u << 4)
#define BLK_ST_BACKING_EOF (1u << 5) /* past the end of the backing chain:
				      * zeros, nothing allocated */

struct blk_status {
	uint64_t len;         /* bytes from off with the same status (> 0) */
	unsigned flags;       /* BLK_ST_* */
	uint64_t host_offset; /* with BLK_ST_OFFSET_VALID */
	unsigned depth;       /* 0: this image; n: the n-th backing image
			       * that decided the range (with chain) */
	const struct blk *file; /* the image that decided it (NULL if no
				 * image in the chain did: unallocated all
				 * the way, reads as zeros) */
};

/*
 * Describes the range starting at off (at most len bytes, within the disk)
 * with the longest run of one status.  With chain=false only this image is
 * asked: an unallocated range reports flags 0 (neither ALLOCATED nor ZERO
 * unless there is no backing file, where it reports ZERO).  With chain=true
 * unallocated ranges are looked up down the backing chain and depth says
 * where they were found (qemu-img map).  raw uses SEEK_DATA/SEEK_HOLE: holes
 * are ZERO|ALLOCATED, data is DATA|ALLOCATED|OFFSET_VALID.
 * Returns 0 and fills *st, or -errno.
 */
int blk_block_status(struct blk *b, uint64_t off, uint64_t len, bool chain,
		     struct blk_status *st);

/* ------------------------------------------------------------------ */
/* Asynchronous I/O                                                    */

/*
 * A queue submits requests against one struct blk and delivers their
 * completions in the thread that polls it.  For raw images the queue uses
 * io_uring (liburing) for read, write and flush where the kernel allows;
 * otherwise, and for qcow2, a small pool of worker threads runs the
 * synchronous operations above.  A queue is used by one thread at a time.
 */
struct blk_queue;

enum blk_op {
	BLK_OP_READ,
	BLK_OP_WRITE,
	BLK_OP_FLUSH,
	BLK_OP_DISCARD,
	BLK_OP_WRITE_ZEROES,
	BLK_OP_WRITE_COMPRESSED, /* as blk_pwrite_compressed(); iov is one
				  * buffer; compression runs in the pool's
				  * threads in parallel */
};

/* Called from blk_queue_poll() with the operation's result (0 or -errno). */
typedef void blk_done_fn(void *opaque, int ret);

struct blk_request {
	enum blk_op op;
	uint64_t off;            /* bytes */
	uint64_t len;            /* bytes; for READ/WRITE the sum of iov */
	const struct iovec *iov; /* READ/WRITE; must stay valid until done */
	int iovcnt;
	unsigned flags;          /* BLK_WRITE_FUA, BLK_ZEROES_MAY_UNMAP */
	blk_done_fn *done;
	void *opaque;
};

/* Makes a queue for up to depth requests in flight (1..1024), with
 * nb_threads workers for the thread pool (0: 4).  Returns NULL on failure
 * (errno set). */
struct blk_queue *blk_queue_new(struct blk *b, unsigned depth,
				unsigned nb_threads, unsigned flags);
/* Waits for every request in flight, then frees the queue. */
void blk_queue_free(struct blk_queue *q);
/* Submits one request (copied; iov is not).  -EAGAIN when depth requests
 * are in flight: poll and retry. */
int blk_queue_submit(struct blk_queue *q, const struct blk_request *rq);
/* Runs the completions that are ready; with wait, blocks until at least
 * one is (unless none is in flight).  Returns how many ran, or -errno. */
int blk_queue_poll(struct blk_queue *q, bool wait);
/* Requests submitted and not yet completed. */
unsigned blk_queue_inflight(const struct blk_queue *q);
/* An fd that becomes readable when completions are ready (for an event
 * loop); call blk_queue_poll(q, false) then. */
int blk_queue_fd(const struct blk_queue *q);
/* "io_uring" or "threads". */
const char *blk_queue_backend(const struct blk_queue *q);

/* ------------------------------------------------------------------ */
/* Creating images                                                     */

enum blk_prealloc {
	BLK_PREALLOC_OFF = 0,
	BLK_PREALLOC_METADATA, /* qcow2: every L2 table and cluster mapped */
	BLK_PREALLOC_FALLOC,   /* metadata + fallocate of the data */
	BLK_PREALLOC_FULL,     /* metadata + zeros written */
};
/* "off", "metadata", "falloc", "full" <-> enum; parse returns -EINVAL. */
const char *blk_prealloc_name(enum blk_prealloc p);
int blk_prealloc_parse(const char *name, enum blk_prealloc *out);

enum blk_compat {
	BLK_COMPAT_DEFAULT = 0, /* 1.1 */
	BLK_COMPAT_0_10,        /* qcow2 version 2 */
	BLK_COMPAT_1_1,         /* qcow2 version 3 */
};

struct blk_create_opts {
	enum blk_format format;     /* RAW or QCOW2 (AUTO means qcow2) */
	uint64_t size_bytes;        /* rounded up to 512; 0 with a backing
				     * file: the backing image's size */
	/* qcow2 only: */
	uint32_t cluster_size;      /* 512 .. 2 MiB, power of two; 0: 64 KiB */
	enum blk_compat compat;
	bool lazy_refcounts;        /* needs 1.1 */
	enum blk_compression compression_type; /* zstd needs 1.1 */
	bool extended_l2;           /* needs 1.1 and cluster_size >= 16 KiB */
	unsigned refcount_bits;     /* 1,2,4,..,64; 0: 16; v2 needs 16 */
	enum blk_prealloc prealloc; /* raw: off, falloc, full */
	const char *backing_file;   /* as stored in the header (relative
				     * names are relative to the new image's
				     * directory); NULL: none */
	const char *backing_format; /* "qcow2"/"raw"; NULL: probe it now */
	bool backing_unsafe;        /* do not open the backing file (then
				     * size_bytes must be given) */
};

/* Fills *o with qemu-img's defaults (qcow2, 64 KiB, 1.1, zlib, 16 bits). */
void blk_create_opts_init(struct blk_create_opts *o);

/*
 * Creates (or truncates) the image at path.  Refuses invalid combinations
 * with -EINVAL and a message (e.g. extended_l2 with 4 KiB clusters, zstd
 * with compat 0.10, a backing file that does not open).
 */
int blk_create(const char *path, const struct blk_create_opts *o, char *err,
	       size_t err_len);

/*
 * qemu-img measure: the file size a new image with options o needs to hold
 * the content of src (NULL: an empty image of o->size_bytes), required, and
 * the size it would have fully allocated, fully_allocated.  With src the
 * allocated ranges of src (through its chain) count.  Returns 0 or -errno.
 */
int blk_measure(const struct blk_create_opts *o, struct blk *src,
		uint64_t *required_bytes, uint64_t *fully_allocated_bytes);

/* ------------------------------------------------------------------ */
/* Information                                                         */

struct blk_snapshot_info {
	char id[128];           /* "1", "2", ... */
	char name[256];
	uint64_t vm_state_size; /* bytes */
	uint32_t date_sec;
	uint32_t date_nsec;
	uint64_t vm_clock_nsec;
	uint64_t disk_size;     /* virtual size when taken, bytes */
	uint64_t icount;        /* -1 if unknown */
};

struct blk_info {
	enum blk_format format;
	uint64_t virtual_size;  /* bytes */
	uint64_t actual_size;   /* bytes the file occupies (st_blocks * 512) */
	uint64_t file_length;   /* bytes (st_size) */
	uint32_t cluster_size;  /* 0 for raw */
	bool dirty;             /* qcow2 dirty bit (lazy refcounts) */
	/* qcow2 format-specific */
	unsigned qcow2_version; /* 2 ("0.10") or 3 ("1.1") */
	bool lazy_refcounts;
	unsigned refcount_bits;
	bool corrupt;
	bool extended_l2;
	enum blk_compression compression_type;
	uint64_t incompatible_features, compatible_features,
		autoclear_features;
	bool encrypted;         /* crypt_method != 0 (refused for I/O) */
	bool has_bitmaps;       /* bitmaps extension present */
	char data_file[1024];   /* external data file name ("" none) */
	/* backing */
	char backing_file[1024];        /* as stored ("" none) */
	char backing_format[32];        /* "" if not recorded */
	char full_backing_filename[4096]; /* resolved ("" none) */
	unsigned nb_snapshots;
};

/* Fills *info.  Returns 0 or -errno. */
int blk_get_info(struct blk *b, struct blk_info *info);

/* Returns the internal snapshots (malloc'd array, caller frees; NULL and 0
 * when there are none) in table order.  -ENOTSUP for raw. */
int blk_snapshot_list(struct blk *b, struct blk_snapshot_info **out,
		      unsigned *nb);

/* ------------------------------------------------------------------ */
/* Check and repair                                                    */

enum blk_repair {
	BLK_REPAIR_NONE = 0,
	BLK_REPAIR_LEAKS = 1, /* -r leaks */
	BLK_REPAIR_ALL = 3,   /* -r all: leaks and corruptions */
};

/* One line of check output, as qemu-img prints it (e.g. "Leaked cluster 5
 * refcount=1 reference=0", "ERROR cluster 3 refcount=0 reference=1",
 * "Repairing cluster 5 refcount=1 reference=0"), without a newline. */
typedef void blk_check_report_fn(void *opaque, const char *line);

struct blk_check_result {
	/* state after the check (after repair and a second check when
	 * repairing), the counts qemu-img check prints */
	int corruptions;
	int leaks;
	int check_errors;      /* the check itself failed somewhere */
	int corruptions_fixed;
	int leaks_fixed;
	uint64_t image_end_offset; /* bytes: end of the last used cluster */
	uint64_t total_clusters;   /* guest clusters of the virtual disk */
	uint64_t allocated_clusters;
	uint64_t fragmented_clusters;
	uint64_t compressed_clusters;
};

/*
 * Checks a qcow2 image's metadata: rebuilds the reference counts from the
 * header, L1/L2 tables, refcount structures and snapshots, compares them with
 * the stored ones, and checks the tables' bounds, alignment and overlap.
 * repair needs a handle opened read-write with BLK_OPEN_CHECK; after repair
 * the image is checked again and the result describes the second pass (plus
 * the *_fixed counts); repairing corruptions clears the corrupt bit.
 * report may be NULL.  Returns 0 when the check ran (the result says what
 * it found), -ENOTSUP for raw (qemu-img's exit code 63), or -errno when it
 * could not complete.
 */
int blk_check(struct blk *b, enum blk_repair repair,
	      blk_check_report_fn *report, void *opaque,
	      struct blk_check_result *res);

/* ------------------------------------------------------------------ */
/* Internal snapshots (qcow2; -ENOTSUP for raw).  id_or_name matches the */
/* id first, then the name.  All need a read-write handle.              */

/* Creates a snapshot of the current state named name (a fresh id is
 * chosen).  -EEXIST if name is taken. */
int blk_snapshot_create(struct blk *b, const char *name);
/* Reverts the disk to the snapshot (the snapshot stays). -ENOENT. */
int blk_snapshot_apply(struct blk *b, const char *id_or_name);
/* Deletes the snapshot and frees the clusters only it used. -ENOENT. */
int blk_snapshot_delete(struct blk *b, const char *id_or_name);

/* ------------------------------------------------------------------ */
/* Changing an image                                                   */

/*
 * Changes the virtual size to new_size_bytes (rounded up to 512).  Growing
 * needs nothing else (prealloc applies to the new part); shrinking needs
 * shrink=true (qemu-img's --shrink) and frees the clusters past the new end.
 * qcow2 with internal snapshots can grow but not shrink (-ENOTSUP).
 */
int blk_resize(struct blk *b, uint64_t new_size_bytes, bool shrink,
	       enum blk_prealloc prealloc);

/* qemu-img amend: each field set to its "keep" value leaves that option. */
struct blk_amend_opts {
	enum blk_compat compat;   /* DEFAULT: keep */
	int lazy_refcounts;       /* -1 keep, 0 off, 1 on */
	unsigned refcount_bits;   /* 0 keep */
	uint64_t size_bytes;      /* 0 keep (grow only) */
	const char *backing_file; /* NULL keep */
	const char *backing_format; /* NULL keep */
};
void blk_amend_opts_init(struct blk_amend_opts *o);
/* Applies o to a read-write qcow2 image.  Changing compat from 1.1 to 0.10
 * turns zero clusters into written zeros first and fails with -ENOTSUP
 * where v2 cannot express the image (extended L2, zstd, refcount width other
 * than 16).  -ENOTSUP for raw. */
int blk_amend(struct blk *b, const struct blk_amend_opts *o);

/*
 * Rewrites the backing file name and format recorded in the header
 * (qemu-img rebase -u, and commit's follow-up).  backing_file NULL removes
 * the backing file; backing_format may be NULL (no format recorded).
 * Does not reopen or check the new backing file.  Needs read-write qcow2.
 */
int blk_change_backing_file(struct blk *b, const char *backing_file,
			    const char *backing_format);

/* Empties the image: every cluster becomes unallocated (as after qemu-img
 * commit, which makes the top image read through to its backing file).
 * raw: -ENOTSUP. */
int blk_make_empty(struct blk *b);

#endif

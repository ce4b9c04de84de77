/*
 * block: private declarations shared by the generic layer and the drivers.
 */
#ifndef MAQUINA_BLOCK_INT_H
#define MAQUINA_BLOCK_INT_H

#include <pthread.h>
#include <stdarg.h>

#include "block/block.h"

#define BLK_ERR_LEN 512
#define BLK_MAX_CHAIN 64

struct blk_driver {
	const char *name;
	int (*open)(struct blk *b, const struct blk_open_opts *o);
	void (*close)(struct blk *b);
	int (*preadv)(struct blk *b, uint64_t off, const struct iovec *iov,
		      int iovcnt, uint64_t len);
	int (*pwritev)(struct blk *b, uint64_t off, const struct iovec *iov,
		       int iovcnt, uint64_t len, unsigned flags);
	int (*pwrite_compressed)(struct blk *b, uint64_t off, const void *buf,
				 size_t len);
	int (*flush)(struct blk *b);
	int (*discard)(struct blk *b, uint64_t off, uint64_t len);
	int (*write_zeroes)(struct blk *b, uint64_t off, uint64_t len,
			    unsigned flags);
	int (*block_status)(struct blk *b, uint64_t off, uint64_t len,
			    struct blk_status *st);
	int (*get_info)(struct blk *b, struct blk_info *info);
	int (*resize)(struct blk *b, uint64_t size, bool shrink,
		      enum blk_prealloc prealloc);
};

struct blk {
	const struct blk_driver *drv;
	char *filename;
	int fd;
	bool read_only;
	bool unsafe;
	unsigned open_flags;
	uint64_t size;       /* virtual size, bytes */
	struct blk *backing; /* owned */
	unsigned depth;      /* 0 for the top image */
	void *opaque;        /* driver state */
	void *open_chain;    /* during open: the chain's loop detector */
	pthread_mutex_t err_lock;
	char err[BLK_ERR_LEN];
};

extern const struct blk_driver blk_driver_raw;
extern const struct blk_driver blk_driver_qcow2;

/* Records the message of a failure on b (prefixed with b's file name) and
 * returns ret (a negative errno). */
int blk_fail(struct blk *b, int ret, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* snprintf into an error buffer of len bytes (tolerates NULL/0). */
void blk_err_set(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Full pread/pwrite: loop over short transfers; pread returns the bytes read
 * (short only at end of file), pwrite 0; both -errno. */
ssize_t blk_file_pread(int fd, void *buf, size_t len, uint64_t off);
int blk_file_pwrite(int fd, const void *buf, size_t len, uint64_t off);
int blk_file_sync(struct blk *b);

/* Reads from b's backing chain for an unallocated range of b: the part past
 * the backing image's end (or everything, with no backing) reads as zeros. */
int blk_read_backing(struct blk *b, uint64_t off, void *buf, size_t len);

/* Opens the backing image of b (called by the qcow2 driver's open). */
int blk_open_backing(struct blk *b, const char *name, const char *fmt,
		     const struct blk_open_opts *o);

/* Resolves a backing name against the directory of the image naming it.
 * Returns a malloc'd path or NULL. */
char *blk_resolve_backing(const char *image, const char *name);

/* Drivers' create functions. */
int raw_create(const char *path, const struct blk_create_opts *o, char *err,
	       size_t err_len);
int qcow2_create(const char *path, const struct blk_create_opts *o,
		 uint64_t size, char *err, size_t err_len);

/* qcow2-only entry points behind the public API. */
int qcow2_snapshot_list(struct blk *b, struct blk_snapshot_info **out,
			unsigned *nb);
int qcow2_snapshot_create(struct blk *b, const char *name);
int qcow2_snapshot_apply(struct blk *b, const char *id_or_name);
int qcow2_snapshot_delete(struct blk *b, const char *id_or_name);
int qcow2_check(struct blk *b, enum blk_repair repair,
		blk_check_report_fn *report, void *opaque,
		struct blk_check_result *res);
int qcow2_amend(struct blk *b, const struct blk_amend_opts *o);
int qcow2_change_backing_file(struct blk *b, const char *file,
			      const char *fmt);
int qcow2_make_empty(struct blk *b);
int qcow2_measure(const struct blk_create_opts *o, struct blk *src,
		  uint64_t *required, uint64_t *full);

#endif

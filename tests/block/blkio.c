/*
 * blkio: a small driver of the block layer for the test scripts.
 *
 *   blkio create PATH SIZE [fmt=qcow2,cluster_size=N,compat=0.10|1.1,
 *                lazy_refcounts=on,compression_type=zstd,extended_l2=on,
 *                refcount_bits=N,preallocation=MODE,backing_file=F,
 *                backing_fmt=FMT]
 *   blkio measure - SIZE [OPTS [SRC]]   prints required and fully
 *                allocated bytes (qemu-img measure)
 *   blkio [-r] PATH OP...   runs the operations in order on PATH
 *                           (read-write unless -r):
 *     w OFF LEN SEED     write a pattern derived from SEED
 *     c OFF LEN SEED     compressed write (cluster-aligned)
 *     z OFF LEN          write zeroes (may unmap)   Z: keeping allocation
 *     d OFF LEN          discard
 *     f                  flush
 *     snap NAME | apply NAME | del NAME
 *     resize SIZE | shrink SIZE
 *     dump FILE          read the whole disk into FILE (raw)
 *     check | check-leaks | check-all   print qemu-img-like lines; the
 *                        exit status is qemu-img check's
 *     info | map | backing FILE FMT | empty
 *     sleep MS | mark N (prints "mark N" at once)
 * Sizes take k/M/G suffixes.  Exits 1 with the block layer's message on
 * failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "block/block.h"
#include "core/core.h"

static uint64_t num(const char *s)
{
	uint64_t v;
	if (parse_size(s, 1, &v) < 0) {
		fprintf(stderr, "blkio: bad number '%s'\n", s);
		exit(2);
	}
	return v;
}

/* The pattern shared with the Python model: byte i of a write with seed S
 * at offset O is (S * 131 + (O + i) * 7 + ((O + i) >> 9)) & 0xff, except
 * that seed 0 writes zeros. */
static void pattern(uint8_t *buf, uint64_t off, uint64_t len, uint64_t seed)
{
	for (uint64_t i = 0; i < len; i++) {
		uint64_t p = off + i;
		buf[i] = seed ? (uint8_t)(seed * 131 + p * 7 + (p >> 9)) : 0;
	}
}

static void report(void *opaque, const char *line)
{
	(void)opaque;
	printf("%s\n", line);
}

static int do_create(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	struct blk_create_opts o;
	blk_create_opts_init(&o);
	o.size_bytes = num(argv[3]);
	char *opts = argc > 4 ? strdup(argv[4]) : NULL, *save = NULL;
	for (char *kv = opts ? strtok_r(opts, ",", &save) : NULL; kv;
	     kv = strtok_r(NULL, ",", &save)) {
		char *v = strchr(kv, '=');
		if (!v)
			return 2;
		*v++ = 0;
		if (!strcmp(kv, "fmt"))
			blk_format_parse(v, &o.format);
		else if (!strcmp(kv, "cluster_size"))
			o.cluster_size = (uint32_t)num(v);
		else if (!strcmp(kv, "compat"))
			o.compat = !strcmp(v, "0.10") ? BLK_COMPAT_0_10
						      : BLK_COMPAT_1_1;
		else if (!strcmp(kv, "lazy_refcounts"))
			o.lazy_refcounts = !strcmp(v, "on");
		else if (!strcmp(kv, "compression_type"))
			o.compression_type = !strcmp(v, "zstd")
						     ? BLK_COMPRESS_ZSTD
						     : BLK_COMPRESS_ZLIB;
		else if (!strcmp(kv, "extended_l2"))
			o.extended_l2 = !strcmp(v, "on");
		else if (!strcmp(kv, "refcount_bits"))
			o.refcount_bits = (unsigned)num(v);
		else if (!strcmp(kv, "preallocation"))
			blk_prealloc_parse(v, &o.prealloc);
		else if (!strcmp(kv, "backing_file"))
			o.backing_file = v;
		else if (!strcmp(kv, "backing_fmt"))
			o.backing_format = v;
		else
			return 2;
	}
	char err[512];
	if (!strcmp(argv[1], "measure")) {
		struct blk *src = NULL;
		if (argc > 5 && blk_open(argv[5], NULL, &src, err, sizeof(err)) < 0) {
			fprintf(stderr, "blkio: %s\n", err);
			return 1;
		}
		uint64_t req, full;
		int r = blk_measure(&o, src, &req, &full);
		blk_close(src);
		free(opts);
		if (r < 0)
			return 1;
		printf("%llu %llu\n", (unsigned long long)req,
		       (unsigned long long)full);
		return 0;
	}
	int ret = blk_create(argv[2], &o, err, sizeof(err));
	free(opts);
	if (ret < 0) {
		fprintf(stderr, "blkio: %s\n", err);
		return 1;
	}
	return 0;
}

static int do_check(struct blk *b, enum blk_repair r)
{
	struct blk_check_result res;
	int ret = blk_check(b, r, report, NULL, &res);
	if (ret == -ENOTSUP)
		return 63;
	if (ret < 0) {
		fprintf(stderr, "blkio: check: %s\n", blk_last_error(b));
		return 1;
	}
	printf("corruptions=%d leaks=%d check_errors=%d fixed=%d/%d "
	       "end=%llu allocated=%llu total=%llu fragmented=%llu "
	       "compressed=%llu\n",
	       res.corruptions, res.leaks, res.check_errors,
	       res.corruptions_fixed, res.leaks_fixed,
	       (unsigned long long)res.image_end_offset,
	       (unsigned long long)res.allocated_clusters,
	       (unsigned long long)res.total_clusters,
	       (unsigned long long)res.fragmented_clusters,
	       (unsigned long long)res.compressed_clusters);
	if (res.check_errors)
		return 1;
	if (res.corruptions)
		return 2;
	if (res.leaks)
		return 3;
	return 0;
}

int main(int argc, char **argv)
{
	log_set_progname("blkio");
	if (argc >= 2 && (!strcmp(argv[1], "create") ||
			  !strcmp(argv[1], "measure")))
		return do_create(argc, argv);
	int i = 1;
	bool ro = false;
	unsigned flags = 0;
	if (i < argc && !strcmp(argv[i], "-r")) {
		ro = true;
		i++;
	}
	bool wants_check = false;
	for (int k = i; k < argc; k++)
		if (!strncmp(argv[k], "check", 5))
			wants_check = true;
	if (i >= argc)
		return 2;
	const char *path = argv[i++];
	struct blk_open_opts oo = { 0 };
	oo.flags = (ro ? 0 : BLK_OPEN_RDWR) | flags |
		   (wants_check ? BLK_OPEN_CHECK : 0);
	struct blk *b;
	char err[512];
	if (blk_open(path, &oo, &b, err, sizeof(err)) < 0) {
		fprintf(stderr, "blkio: %s\n", err);
		return 1;
	}
	int rc = 0;
	uint8_t *buf = NULL;
	while (i < argc && rc == 0) {
		const char *op = argv[i++];
		int ret = 0;
#define ARG() (i < argc ? argv[i++] : "0")
		if (!strcmp(op, "w") || !strcmp(op, "c")) {
			uint64_t off = num(ARG()), len = num(ARG()),
				 seed = num(ARG());
			buf = realloc(buf, len ? len : 1);
			pattern(buf, off, len, seed);
			ret = op[0] == 'w' ? blk_pwrite(b, off, buf, len, 0)
					   : blk_pwrite_compressed(b, off, buf, len);
		} else if (!strcmp(op, "z") || !strcmp(op, "Z")) {
			uint64_t off = num(ARG()), len = num(ARG());
			ret = blk_write_zeroes(b, off, len,
					       op[0] == 'z' ? BLK_ZEROES_MAY_UNMAP
							    : 0);
		} else if (!strcmp(op, "d")) {
			uint64_t off = num(ARG()), len = num(ARG());
			ret = blk_discard(b, off, len);
		} else if (!strcmp(op, "f")) {
			ret = blk_flush(b);
		} else if (!strcmp(op, "snap")) {
			ret = blk_snapshot_create(b, ARG());
		} else if (!strcmp(op, "apply")) {
			ret = blk_snapshot_apply(b, ARG());
		} else if (!strcmp(op, "del")) {
			ret = blk_snapshot_delete(b, ARG());
		} else if (!strcmp(op, "resize") || !strcmp(op, "shrink")) {
			ret = blk_resize(b, num(ARG()), op[0] == 's',
					 BLK_PREALLOC_OFF);
		} else if (!strcmp(op, "backing")) {
			const char *f = ARG(), *fmt = ARG();
			ret = blk_change_backing_file(b, *f ? f : NULL,
						      *fmt ? fmt : NULL);
		} else if (!strcmp(op, "empty")) {
			ret = blk_make_empty(b);
		} else if (!strcmp(op, "mark")) {
			printf("mark %s\n", ARG());
			fflush(stdout);
		} else if (!strcmp(op, "sleep")) {
			struct timespec ts = { 0, (long)num(ARG()) * 1000000 };
			nanosleep(&ts, NULL);
		} else if (!strcmp(op, "dump")) {
			const char *out = ARG();
			int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
			if (fd < 0)
				return 1;
			size_t chunk = 1 << 20;
			buf = realloc(buf, chunk);
			for (uint64_t off = 0; off < blk_size(b) && !ret;
			     off += chunk) {
				size_t n = (size_t)MIN((uint64_t)chunk,
						       blk_size(b) - off);
				ret = blk_pread(b, off, buf, n);
				if (!ret && write(fd, buf, n) != (ssize_t)n)
					ret = -EIO;
			}
			close(fd);
		} else if (!strncmp(op, "check", 5)) {
			enum blk_repair r = !strcmp(op, "check-all")
						    ? BLK_REPAIR_ALL
					    : !strcmp(op, "check-leaks")
						    ? BLK_REPAIR_LEAKS
						    : BLK_REPAIR_NONE;
			rc = do_check(b, r);
			continue;
		} else if (!strcmp(op, "info")) {
			struct blk_info in;
			ret = blk_get_info(b, &in);
			if (!ret)
				printf("size=%llu cluster=%u version=%u "
				       "lazy=%d refbits=%u corrupt=%d extl2=%d "
				       "ctype=%d dirty=%d backing=%s bfmt=%s "
				       "snaps=%u\n",
				       (unsigned long long)in.virtual_size,
				       in.cluster_size, in.qcow2_version,
				       in.lazy_refcounts, in.refcount_bits,
				       in.corrupt, in.extended_l2,
				       in.compression_type, in.dirty,
				       in.backing_file, in.backing_format,
				       in.nb_snapshots);
		} else if (!strcmp(op, "map")) {
			for (uint64_t off = 0; off < blk_size(b) && !ret;) {
				struct blk_status st;
				ret = blk_block_status(b, off, blk_size(b) - off,
						       true, &st);
				if (ret)
					break;
				printf("%llu %llu flags=%x depth=%u off=%llu\n",
				       (unsigned long long)off,
				       (unsigned long long)st.len, st.flags,
				       st.depth,
				       (unsigned long long)st.host_offset);
				off += st.len;
			}
		} else {
			fprintf(stderr, "blkio: unknown op '%s'\n", op);
			rc = 2;
			break;
		}
		if (ret < 0) {
			fprintf(stderr, "blkio: %s: %s (%s)\n", op,
				blk_last_error(b), strerror(-ret));
			rc = 1;
		}
	}
	free(buf);
	int ret = blk_close(b);
	if (ret < 0 && !rc) {
		fprintf(stderr, "blkio: close failed: %s\n", strerror(-ret));
		rc = 1;
	}
	return rc;
}

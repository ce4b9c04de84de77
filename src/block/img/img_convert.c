/*
 * convert and dd: copying images.
 *
 * convert splits the (concatenated) sources into chunks that a few worker
 * threads process: each asks the block status of its chunk, reads the data
 * ranges, finds zero runs of at least the sparse size, then writes data,
 * writes zeroes or skips.  Without -W the writes happen in chunk order (the
 * reads and compression run in parallel), so the target's clusters are laid
 * out in guest order, as qemu-img does; with -W (or -c, where clusters are
 * compressed independently) they are written as soon as they are ready.
 */
#include "block/img/img_int.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CV_CHUNK_BYTES (2u << 20)
#define CV_MAX_WORKERS 16

enum cv_kind { CV_SKIP, CV_ZERO, CV_DATA };

struct cv_seg {
	uint64_t off, len; /* in the target */
	enum cv_kind kind;
};

struct cv {
	struct blk **src;
	uint64_t *src_start; /* offset of each source in the target */
	unsigned nb_src;
	uint64_t total;
	struct blk *dst;
	bool compress, target_has_backing, zero_init, in_order;
	uint64_t min_sparse;   /* 0: write everything */
	uint32_t chunk;
	uint32_t cluster;      /* target cluster size (compression unit) */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t next_off, next_seq, write_seq, done_bytes;
	int error;
	char errmsg[1024];
	struct img_progress *progress;
};

static void cv_fail(struct cv *s, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void cv_fail(struct cv *s, int err, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&s->lock);
	if (!s->error) {
		s->error = err;
		va_start(ap, fmt);
		vsnprintf(s->errmsg, sizeof(s->errmsg), fmt, ap);
		va_end(ap);
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* Which source holds target offset off; *soff gets the offset in it. */
static unsigned cv_src_of(const struct cv *s, uint64_t off, uint64_t *soff)
{
	unsigned i = s->nb_src - 1;

	while (i > 0 && s->src_start[i] > off)
		i--;
	*soff = off - s->src_start[i];
	return i;
}

static int cv_read(struct cv *s, uint64_t off, void *buf, uint64_t len)
{
	while (len) {
		uint64_t soff, n;
		unsigned i = cv_src_of(s, off, &soff);
		int r;

		n = MIN(len, blk_size(s->src[i]) - soff);
		r = blk_pread(s->src[i], soff, buf, n);
		if (r < 0) {
			cv_fail(s, r, "error while reading at byte %" PRIu64 ": %s", off,
				blk_last_error(s->src[i])[0] ? blk_last_error(s->src[i]) : strerror(-r));
			return r;
		}
		off += n;
		buf = (char *)buf + n;
		len -= n;
	}
	return 0;
}

struct cv_worker {
	struct cv *s;
	uint64_t st_off, st_len; /* the last block status this worker saw */
	enum cv_kind st_kind;
	uint8_t *buf;
	struct cv_seg *segs;
	unsigned nb_segs, cap_segs;
	pthread_t tid;
};

/* The kind of the range at off (clipped to one source), and its length. */
static int cv_status(struct cv_worker *w, uint64_t off, uint64_t len,
		     enum cv_kind *kind, uint64_t *n)
{
	struct cv *s = w->s;
	struct blk_status st;
	uint64_t soff, q;
	unsigned i;
	int r;

	/* the status of a long run is asked once, not once per cluster
	 * (SEEK_DATA/SEEK_HOLE on a raw source is not free) */
	if (off >= w->st_off && off < w->st_off + w->st_len) {
		*kind = w->st_kind;
		*n = MIN(len, w->st_off + w->st_len - off);
		return 0;
	}
	i = cv_src_of(s, off, &soff);
	q = MIN(blk_size(s->src[i]) - soff, 1ull << 30);
	len = MIN(len, blk_size(s->src[i]) - soff);
	r = blk_block_status(s->src[i], soff, MAX(q, len), !s->target_has_backing, &st);
	if (r < 0) {
		cv_fail(s, r, "error while reading block status at offset %" PRIu64 ": %s",
			off, strerror(-r));
		return r;
	}
	if (st.flags & BLK_ST_ZERO)
		*kind = CV_ZERO;
	else if (st.flags & BLK_ST_DATA)
		*kind = CV_DATA;
	else
		*kind = s->target_has_backing ? CV_SKIP : CV_DATA;
	w->st_off = off;
	w->st_len = MIN(MAX(st.len, 1), MAX(q, len));
	w->st_kind = *kind;
	*n = MIN(w->st_len, len);
	return 0;
}

static int cv_add_seg(struct cv_worker *w, uint64_t off, uint64_t len,
		      enum cv_kind kind)
{
	if (w->nb_segs && w->segs[w->nb_segs - 1].kind == kind &&
	    w->segs[w->nb_segs - 1].off + w->segs[w->nb_segs - 1].len == off) {
		w->segs[w->nb_segs - 1].len += len;
		return 0;
	}
	if (w->nb_segs == w->cap_segs) {
		unsigned cap = w->cap_segs ? w->cap_segs * 2 : 64;
		struct cv_seg *n = realloc(w->segs, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		w->segs = n;
		w->cap_segs = cap;
	}
	w->segs[w->nb_segs++] = (struct cv_seg){ off, len, kind };
	return 0;
}

/* Read phase of a chunk: status, data, zero detection. */
static int cv_read_chunk(struct cv_worker *w, uint64_t start, uint64_t len)
{
	struct cv *s = w->s;
	uint64_t off = start;

	w->nb_segs = 0;
	while (off < start + len) {
		enum cv_kind kind;
		uint64_t n;
		int r = cv_status(w, off, start + len - off, &kind, &n);

		if (r < 0)
			return r;
		if (kind == CV_ZERO && !s->min_sparse)
			kind = CV_DATA; /* -S 0: fully allocate */
		if (kind == CV_DATA) {
			uint8_t *p = w->buf + (off - start);
			r = cv_read(s, off, p, n);
			if (r < 0)
				return r;
			if (s->min_sparse) {
				/* zero runs of min_sparse aligned blocks */
				uint64_t o = off, end = off + n;
				while (o < end) {
					uint64_t blk_end = MIN(ALIGN_DOWN(o, s->min_sparse) + s->min_sparse, end);
					bool z = img_buf_is_zero(w->buf + (o - start), blk_end - o);
					if (cv_add_seg(w, o, blk_end - o, z ? CV_ZERO : CV_DATA))
						return -ENOMEM;
					o = blk_end;
				}
			} else if (cv_add_seg(w, off, n, CV_DATA)) {
				return -ENOMEM;
			}
		} else if (cv_add_seg(w, off, n, kind)) {
			return -ENOMEM;
		}
		off += n;
	}
	return 0;
}

static int cv_write_chunk(struct cv_worker *w, uint64_t start)
{
	struct cv *s = w->s;

	for (unsigned i = 0; i < w->nb_segs; i++) {
		const struct cv_seg *g = &w->segs[i];
		int r = 0;

		if (g->kind == CV_SKIP)
			continue;
		if (g->kind == CV_ZERO) {
			if (s->zero_init)
				continue;
			r = blk_write_zeroes(s->dst, g->off, g->len, BLK_ZEROES_MAY_UNMAP);
		} else {
			r = blk_pwrite(s->dst, g->off, w->buf + (g->off - start), g->len, 0);
		}
		if (r < 0) {
			cv_fail(s, r, "error while writing at byte %" PRIu64 ": %s", g->off,
				blk_last_error(s->dst)[0] ? blk_last_error(s->dst) : strerror(-r));
			return r;
		}
	}
	return 0;
}

/* Compressed chunk: cluster by cluster. */
static int cv_compress_chunk(struct cv_worker *w, uint64_t start, uint64_t len)
{
	struct cv *s = w->s;

	for (uint64_t off = start; off < start + len; off += s->cluster) {
		uint64_t n = MIN((uint64_t)s->cluster, s->total - off), sn;
		enum cv_kind kind = CV_DATA;
		int r;

		/* a cluster wholly zero (or unallocated over a target backing)
		 * by block status needs no read */
		r = cv_status(w, off, n, &kind, &sn);
		if (r < 0)
			return r;
		if (sn < n)
			kind = CV_DATA;
		if (kind == CV_SKIP)
			continue;
		if (kind == CV_DATA) {
			r = cv_read(s, off, w->buf, n);
			if (r < 0)
				return r;
			if (img_buf_is_zero(w->buf, n))
				kind = CV_ZERO;
		}
		if (kind == CV_ZERO) {
			if (s->zero_init)
				continue;
			r = blk_write_zeroes(s->dst, off, n, BLK_ZEROES_MAY_UNMAP);
		} else {
			r = blk_pwrite_compressed(s->dst, off, w->buf, n);
		}
		if (r < 0) {
			cv_fail(s, r, "error while compressing cluster at byte %" PRIu64 ": %s",
				off, blk_last_error(s->dst)[0] ? blk_last_error(s->dst) : strerror(-r));
			return r;
		}
	}
	return 0;
}

static void *cv_worker_main(void *opaque)
{
	struct cv_worker *w = opaque;
	struct cv *s = w->s;

	for (;;) {
		uint64_t off, len, seq;
		int r;

		pthread_mutex_lock(&s->lock);
		if (s->error || s->next_off >= s->total) {
			pthread_mutex_unlock(&s->lock);
			break;
		}
		off = s->next_off;
		len = MIN((uint64_t)s->chunk, s->total - off);
		s->next_off += len;
		seq = s->next_seq++;
		pthread_mutex_unlock(&s->lock);

		if (s->compress) {
			r = cv_compress_chunk(w, off, len);
		} else {
			r = cv_read_chunk(w, off, len);
			if (r == -ENOMEM)
				cv_fail(s, r, "out of memory");
			if (!r && s->in_order) {
				pthread_mutex_lock(&s->lock);
				while (s->write_seq != seq && !s->error)
					pthread_cond_wait(&s->cond, &s->lock);
				r = s->error;
				pthread_mutex_unlock(&s->lock);
			}
			if (!r)
				r = cv_write_chunk(w, off);
		}
		pthread_mutex_lock(&s->lock);
		if (s->in_order && !s->compress) {
			s->write_seq++;
			pthread_cond_broadcast(&s->cond);
		}
		s->done_bytes += len;
		if (s->progress && s->total)
			img_progress_set(s->progress, (float)((double)s->done_bytes * 100.0 / (double)s->total));
		pthread_mutex_unlock(&s->lock);
		if (r)
			break;
	}
	return NULL;
}

/* Runs the copy with nb_workers threads.  Returns 0 or -errno (message in
 * s->errmsg). */
static int cv_run(struct cv *s, unsigned nb_workers)
{
	struct cv_worker w[CV_MAX_WORKERS];
	unsigned started = 0;

	memset(w, 0, sizeof(w));
	if (nb_workers > CV_MAX_WORKERS)
		nb_workers = CV_MAX_WORKERS;
	if (!nb_workers)
		nb_workers = 1;
	for (unsigned i = 0; i < nb_workers; i++) {
		w[i].s = s;
		w[i].buf = img_alloc_aligned(s->chunk);
		if (!w[i].buf) {
			cv_fail(s, -ENOMEM, "out of memory");
			break;
		}
		if (pthread_create(&w[i].tid, NULL, cv_worker_main, &w[i])) {
			free(w[i].buf);
			w[i].buf = NULL;
			cv_fail(s, -EAGAIN, "could not start a worker thread");
			break;
		}
		started++;
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(w[i].tid, NULL);
	for (unsigned i = 0; i < nb_workers; i++) {
		free(w[i].buf);
		free(w[i].segs);
	}
	return s->error;
}

static unsigned img_cache_flags(const char *mode, bool *ok)
{
	*ok = true;
	if (!strcmp(mode, "none") || !strcmp(mode, "directsync"))
		return BLK_OPEN_DIRECT;
	if (!strcmp(mode, "unsafe"))
		return BLK_OPEN_UNSAFE;
	if (!strcmp(mode, "writeback") || !strcmp(mode, "writethrough"))
		return 0;
	*ok = false;
	return 0;
}

int img_cmd_convert(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "object", required_argument, NULL, 'O' + 256 },
		{ "image-opts", no_argument, NULL, 'I' + 256 },
		{ "target-image-opts", no_argument, NULL, 'J' + 256 },
		{ "salvage", no_argument, NULL, 's' + 256 },
		{ "target-is-zero", no_argument, NULL, 'z' + 256 },
		{ "bitmaps", no_argument, NULL, 'b' + 256 },
		{ "skip-broken-bitmaps", no_argument, NULL, 'k' + 256 },
		{ "force-share", no_argument, NULL, 'U' },
		{ NULL, 0, NULL, 0 },
	};
	const char *fmt = NULL, *out_fmt = "raw", *out_base = NULL, *base_fmt = NULL,
		   *snap = NULL, *cache = "unsafe", *src_cache = "writeback", *out_name = "";
	struct img_kvlist kv = { 0 };
	struct img_copts c = { 0 };
	struct img_progress prog;
	struct cv s;
	enum blk_format of;
	bool quiet = false, progress = false, skip_create = false, target_is_zero = false,
	     ooo = false, ok;
	uint64_t min_sparse = 4096;
	unsigned nb_workers = 8, src_flags, dst_flags;
	int opt, ret = 1, nb_names;

	memset(&s, 0, sizeof(s));
	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.cond, NULL);
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, IMG_GETOPT_PREFIX "hf:O:B:CcF:o:l:S:pt:T:qnm:WUr:",
				  longopts, NULL)) != -1) {
		switch (opt) {
		case 'f': fmt = optarg; break;
		case 'O': out_fmt = optarg; break;
		case 'B': out_base = optarg; break;
		case 'F': base_fmt = optarg; break;
		case 'C': break; /* copy offloading: plain copies here */
		case 'c': s.compress = true; break;
		case 'o':
			if (img_kv_parse(&kv, optarg))
				goto out;
			break;
		case 'l':
			snap = optarg;
			if (!strncmp(snap, "snapshot.name=", 14))
				snap += 14;
			else if (!strncmp(snap, "snapshot.id=", 12))
				snap += 12;
			break;
		case 'S': {
			uint64_t v;
			if (img_parse_size(optarg, &v) || (v % 512) || v > (16u << 20)) {
				log_error("Invalid buffer size for sparse output specified. Valid sizes are multiples of 512 up to 16777216. Select 0 to disable sparse detection (fully allocates output).");
				goto out;
			}
			min_sparse = v;
			break;
		}
		case 'p': progress = true; break;
		case 't': cache = optarg; break;
		case 'T': src_cache = optarg; break;
		case 'q': quiet = true; break;
		case 'n': skip_create = true; break;
		case 'm': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > 16) {
				log_error("Invalid number of coroutines. Allowed number of coroutines is between 1 and 16");
				goto out;
			}
			nb_workers = (unsigned)v;
			break;
		}
		case 'W': ooo = true; break;
		case 'U': case 'r': break;
		case 'z' + 256: target_is_zero = true; break;
		case 's' + 256: break;
		case 'h': printf("usage: maquina img convert [-c] [-p] [-q] [-n] [-f fmt] [-t cache] [-T src_cache] [-O output_fmt] [-B backing_file [-F backing_fmt]] [-o options] [-l snapshot_param] [-S sparse_size] [-m num_coroutines] [-W] filename [filename2 [...]] output_filename\n"); ret = 0; goto out;
		case 'b' + 256: case 'k' + 256:
			log_error("persistent bitmaps are not supported by maquina img");
			goto out;
		case 'O' + 256: case 'I' + 256: case 'J' + 256:
			log_error("this option is not supported by maquina img");
			goto out;
		default: ret = img_bad_option(argv, opt); goto out;
		}
	}
	if (quiet)
		progress = false;
	if (blk_format_parse(out_fmt, &of)) {
		log_error("Unknown file format '%s'", out_fmt);
		goto out;
	}
	if (img_kv_wants_help(&kv)) {
		const char *a[] = { "create", "-f", out_fmt, "-o", "help", NULL };
		ret = img_cmd_create(5, (char **)a);
		goto out;
	}
	nb_names = argc - optind;
	if (nb_names < 2) {
		log_error("Must specify image file name");
		goto out;
	}
	out_name = argv[argc - 1];
	if (skip_create && kv.nb) {
		log_error("-o cannot be used together with -n");
		goto out;
	}
	if (img_copts_parse(&c, &kv, of, out_name))
		goto out;
	if (out_base) {
		if (of == BLK_FMT_RAW) {
			log_error("%s: Backing file not supported for file format 'raw'", out_name);
			goto out;
		}
		c.backing_file = out_base;
	}
	if (base_fmt)
		c.backing_fmt = base_fmt;
	if (c.backing_file && !c.backing_fmt) {
		log_error("Use of backing file requires explicit backing format");
		goto out;
	}
	if (skip_create && c.backing_file) {
		log_error("Specifying backing image makes no sense when not creating the target image.");
		goto out;
	}
	if (s.compress && of != BLK_FMT_QCOW2) {
		log_error("Compression not supported for this file format");
		goto out;
	}
	if (snap && nb_names > 2) {
		log_error("No support for concatenating multiple snapshot");
		goto out;
	}
	src_flags = img_cache_flags(src_cache, &ok) & BLK_OPEN_DIRECT;
	if (!ok) {
		log_error("Invalid source cache option: %s", src_cache);
		goto out;
	}
	dst_flags = img_cache_flags(cache, &ok);
	if (!ok) {
		log_error("Invalid cache option: %s", cache);
		goto out;
	}

	s.nb_src = (unsigned)nb_names - 1;
	s.src = calloc(s.nb_src, sizeof(*s.src));
	s.src_start = calloc(s.nb_src, sizeof(*s.src_start));
	if (!s.src || !s.src_start)
		goto out;
	for (unsigned i = 0; i < s.nb_src; i++) {
		struct blk_open_opts o = { 0 };
		char err[1024] = "";
		const char *name = argv[optind + i];

		if (fmt && blk_format_parse(fmt, &o.format)) {
			log_error("Could not open '%s': Unknown driver '%s'", name, fmt);
			goto out;
		}
		o.flags = src_flags;
		o.snapshot = snap;
		if (img_open_errno(name, false))
			goto out;
		if (blk_open(name, &o, &s.src[i], err, sizeof(err)) < 0) {
			if (snap && strstr(err, "snapshot"))
				log_error("Failed to load snapshot: %s", err);
			else
				log_error("Could not open '%s': %s", name, err);
			goto out;
		}
		s.src_start[i] = s.total;
		s.total += blk_size(s.src[i]);
	}

	if (!skip_create) {
		struct blk_create_opts o;
		char err[1024] = "";

		if (img_copts_to_create(&c, of, out_name, &o))
			goto out;
		if (c.has_size && c.size < s.total) {
			log_error("%s: the size option (%" PRIu64 " bytes) is smaller than the source (%" PRIu64 " bytes)",
				  out_name, c.size, s.total);
			goto out;
		}
		o.size_bytes = c.has_size ? c.size : s.total;
		o.backing_file = c.backing_file;
		o.backing_format = c.backing_fmt;
		o.backing_unsafe = true;
		if (blk_create(out_name, &o, err, sizeof(err)) < 0) {
			log_error("%s", err[0] ? err : "could not create the target");
			goto out;
		}
		s.zero_init = !c.backing_file && o.prealloc != BLK_PREALLOC_FULL &&
			      o.prealloc != BLK_PREALLOC_FALLOC;
		if (o.prealloc == BLK_PREALLOC_FULL || o.prealloc == BLK_PREALLOC_FALLOC)
			s.zero_init = !c.backing_file; /* preallocated space reads as zeros */
	}
	s.target_has_backing = c.backing_file != NULL;
	if (target_is_zero)
		s.zero_init = true;
	if (!min_sparse)
		s.zero_init = false;
	{
		struct blk_open_opts o = { 0 };
		char err[1024] = "";

		o.format = of;
		/* with a backing file the target needs it for copy-on-write
		 * of partly written clusters */
		o.flags = BLK_OPEN_RDWR | dst_flags |
			  (s.target_has_backing ? 0 : BLK_OPEN_NO_BACKING);
		if (img_open_errno(out_name, true))
			goto out;
		if (blk_open(out_name, &o, &s.dst, err, sizeof(err)) < 0) {
			log_error("Could not open '%s': %s", out_name, err);
			goto out;
		}
	}
	if (blk_size(s.dst) < s.total) {
		log_error("Output image is too small (%" PRIu64 " bytes, the input needs %" PRIu64 ")",
			  blk_size(s.dst), s.total);
		goto out;
	}
	s.min_sparse = min_sparse;
	s.in_order = !ooo;
	s.cluster = blk_cluster_size(s.dst) ? blk_cluster_size(s.dst) : 65536;
	s.chunk = s.compress ? MAX(s.cluster, MIN(CV_CHUNK_BYTES, s.cluster * 4u)) : CV_CHUNK_BYTES;
	if (s.chunk % s.cluster)
		s.chunk = s.cluster;
	/* compressed clusters are compressed in parallel by the workers, as
	 * qemu-img compresses in up to -m (8) requests in flight */
	img_progress_init(&prog, progress);
	s.progress = &prog;
	if (cv_run(&s, nb_workers) < 0) {
		img_progress_end(&prog);
		log_error("%s", s.errmsg);
		goto out;
	}
	img_progress_set(&prog, 100);
	img_progress_end(&prog);
	ret = 0;
out:
	if (s.dst && blk_close(s.dst) < 0 && !ret) {
		log_error("%s: could not flush the image", out_name);
		ret = 1;
	}
	for (unsigned i = 0; s.src && i < s.nb_src; i++)
		blk_close(s.src[i]);
	free(s.src);
	free(s.src_start);
	img_kv_free(&kv);
	pthread_mutex_destroy(&s.lock);
	pthread_cond_destroy(&s.cond);
	return ret;
}

/* ------------------------------------------------------------------ */
/* dd                                                                  */

int img_cmd_dd(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "object", required_argument, NULL, 'O' + 256 },
		{ "image-opts", no_argument, NULL, 'I' + 256 },
		{ "force-share", no_argument, NULL, 'U' },
		{ NULL, 0, NULL, 0 },
	};
	const char *fmt = NULL, *out_fmt = "raw", *in_name = NULL, *out_name = NULL;
	uint64_t bs = 512, count = 0, skip = 0, size, in_pos, out_pos;
	bool has_count = false, has_skip = false;
	struct blk *in = NULL, *out = NULL;
	struct blk_create_opts o;
	enum blk_format of;
	char err[1024] = "";
	uint8_t *buf = NULL;
	int opt, ret = 1;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, IMG_GETOPT_PREFIX "hf:O:U", longopts, NULL)) != -1) {
		switch (opt) {
		case 'f': fmt = optarg; break;
		case 'O': out_fmt = optarg; break;
		case 'U': break;
		case 'h': printf("usage: maquina img dd [-U] [-f fmt] [-O output_fmt] [bs=block_size] [count=blocks] [skip=blocks] if=input of=output\n"); return 0;
		case 'O' + 256: case 'I' + 256: log_error("this option is not supported by maquina img"); return 1;
		default: return img_bad_option(argv, opt);
		}
	}
	for (int i = optind; i < argc; i++) {
		char *arg = argv[i], *eq = strchr(arg, '=');
		size_t klen = eq ? (size_t)(eq - arg) : strlen(arg);
		const char *v = eq ? eq + 1 : NULL;

		if (!eq) {
			log_error("unrecognized operand %s", arg);
			return 1;
		}
		if (klen == 2 && !strncmp(arg, "bs", 2)) {
			int r = img_parse_size(v, &bs);
			if (!r && (!bs || bs > INT32_MAX))
				r = -ERANGE;
			if (r == -ERANGE) {
				log_error("Invalid bs specified. Must be between 1 and 2147483647.");
				return 1;
			}
			if (r) {
				log_error("Invalid bs specified. You may use k, M, G, T, P or E suffixes for");
				log_error("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
				return 1;
			}
		} else if ((klen == 5 && !strncmp(arg, "count", 5)) ||
			   (klen == 4 && !strncmp(arg, "skip", 4))) {
			bool is_count = klen == 5;
			int r = img_parse_size(v, is_count ? &count : &skip);
			if (r) {
				const char *what = is_count ? "count" : "skip";
				if (r == -ERANGE) {
					log_error("Invalid %s specified. Must be between 0 and 9223372036854775807.", what);
				} else {
					log_error("Invalid %s specified. You may use k, M, G, T, P or E suffixes for", what);
					log_error("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
				}
				return 1;
			}
			if (is_count)
				has_count = true;
			else
				has_skip = true;
		} else if (klen == 2 && !strncmp(arg, "if", 2)) {
			in_name = v;
		} else if (klen == 2 && !strncmp(arg, "of", 2)) {
			out_name = v;
		} else {
			log_error("unrecognized operand %.*s", (int)klen, arg);
			return 1;
		}
	}
	if (!in_name || !out_name) {
		log_error("Must specify both input and output files");
		return 1;
	}
	if (blk_format_parse(out_fmt, &of)) {
		log_error("Unknown file format '%s'", out_fmt);
		return 1;
	}
	in = img_open(in_name, fmt, 0, false);
	if (!in)
		return 1;
	size = blk_size(in);
	if (has_count && count <= UINT64_MAX / bs && count * bs < size)
		size = count * bs;
	in_pos = 0;
	if (has_skip) {
		if (skip > UINT64_MAX / bs || size < skip * bs)
			in_pos = size;
		else
			in_pos = skip * bs;
	}
	blk_create_opts_init(&o);
	o.format = of;
	o.size_bytes = size - in_pos;
	if (blk_create(out_name, &o, err, sizeof(err)) < 0) {
		log_error("%s: error while creating output image: %s", out_name, err);
		goto out;
	}
	out = img_open(out_name, out_fmt, BLK_OPEN_RDWR | BLK_OPEN_UNSAFE, false);
	if (!out)
		goto out;
	/* copy in blocks of bs bytes (batched for speed; the result is the
	 * same bytes) */
	{
		uint64_t step = bs;
		if (step < (1u << 20))
			step = ((1u << 20) / bs) * bs;
		buf = img_alloc_aligned(step);
		if (!buf)
			goto out;
		for (out_pos = 0; in_pos < size;) {
			uint64_t n = MIN(step, size - in_pos);
			int r = blk_pread(in, in_pos, buf, n);
			if (r < 0) {
				log_error("error while reading from input image file: %s", strerror(-r));
				goto out;
			}
			r = blk_pwrite(out, out_pos, buf, n, 0);
			if (r < 0) {
				log_error("error while writing to output image file: %s", strerror(-r));
				goto out;
			}
			in_pos += n;
			out_pos += n;
		}
	}
	ret = 0;
out:
	free(buf);
	blk_close(in);
	if (out && blk_close(out) < 0 && !ret)
		ret = 1;
	return ret;
}

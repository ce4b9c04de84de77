/*
 * commit, rebase, resize, compare: the subcommands that work on backing
 * chains or change an image's size, and the comparison of two images.
 */
#include "block/img/img_int.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHAIN_BUF_BYTES (2u << 20)

/* ------------------------------------------------------------------ */
/* commit                                                              */

int img_cmd_commit(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "object", required_argument, NULL, 'O' + 256 },
		{ "image-opts", no_argument, NULL, 'I' + 256 },
		{ NULL, 0, NULL, 0 },
	};
	const char *fmt = NULL, *base_name = NULL, *filename;
	struct blk *top = NULL, *base_ro, *base = NULL, *b;
	struct img_progress prog;
	bool quiet = false, progress = false, drop = false;
	unsigned base_depth = 0;
	uint8_t *buf = NULL;
	uint64_t size, off;
	int opt, ret = 1;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, IMG_GETOPT_PREFIX "f:ht:b:dpqr:", longopts, NULL)) != -1) {
		switch (opt) {
		case 'f': fmt = optarg; break;
		case 't': case 'r': break;
		case 'b': base_name = optarg; drop = true; break; /* -b implies -d */
		case 'd': drop = true; break;
		case 'p': progress = true; break;
		case 'q': quiet = true; break;
		case 'h': printf("usage: maquina img commit [-q] [-f fmt] [-t cache] [-b base] [-r rate_limit] [-d] [-p] filename\n"); return 0;
		case 'O' + 256: case 'I' + 256: log_error("this option is not supported by maquina img"); return 1;
		default: return img_bad_option(argv, opt);
		}
	}
	if (quiet)
		progress = false;
	if (optind != argc - 1)
		return img_usage("Expecting one image file name");
	filename = argv[optind];
	top = img_open(filename, fmt, 0, quiet);
	if (!top)
		return 1;
	base_ro = blk_backing(top);
	if (!base_ro) {
		log_error("Image does not have a backing file");
		goto out;
	}
	base_depth = 1;
	if (base_name) {
		char real_want[PATH_MAX], real_have[PATH_MAX];
		bool found = false;

		for (b = base_ro; b; b = blk_backing(b), base_depth++) {
			if (!strcmp(blk_filename(b), base_name) ||
			    (realpath(base_name, real_want) && realpath(blk_filename(b), real_have) &&
			     !strcmp(real_want, real_have))) {
				found = true;
				base_ro = b;
				break;
			}
		}
		if (!found) {
			log_error("Did not find '%s' in the backing chain of '%s'", base_name, filename);
			goto out;
		}
	}
	/* the base keeps its own backing file for copy-on-write */
	base = img_open(blk_filename(base_ro), blk_format_name(blk_format(base_ro)),
			BLK_OPEN_RDWR, quiet);
	if (!base)
		goto out;
	size = blk_size(top);
	if (blk_size(base) < size && blk_resize(base, size, false, BLK_PREALLOC_OFF) < 0) {
		log_error("Could not grow the base image '%s': %s", blk_filename(base_ro),
			  blk_last_error(base));
		goto out;
	}
	buf = img_alloc_aligned(CHAIN_BUF_BYTES);
	if (!buf)
		goto out;
	img_progress_init(&prog, progress);
	for (off = 0; off < size;) {
		struct blk_status st;
		uint64_t n;
		int r = blk_block_status(top, off, MIN(size - off, CHAIN_BUF_BYTES), true, &st);

		if (r < 0) {
			log_error("Could not read file metadata: %s", strerror(-r));
			goto out;
		}
		n = MIN(st.len ? st.len : 512, size - off);
		n = MIN(n, CHAIN_BUF_BYTES);
		/* ranges decided above the base are copied down */
		if ((st.flags & BLK_ST_ALLOCATED) && st.depth < base_depth) {
			if ((st.flags & BLK_ST_ZERO) && !(st.flags & BLK_ST_DATA))
				r = blk_write_zeroes(base, off, n, 0);
			else if (!(r = blk_pread(top, off, buf, n)))
				r = blk_pwrite(base, off, buf, n, 0);
			if (r < 0) {
				log_error("Block job failed: %s", blk_last_error(base)[0] ?
					  blk_last_error(base) : strerror(-r));
				goto out;
			}
		}
		off += n;
		img_progress_set(&prog, (float)((double)off * 100.0 / (double)size));
	}
	img_progress_set(&prog, 100);
	img_progress_end(&prog);
	if (blk_close(base) < 0) {
		base = NULL;
		log_error("Could not flush the base image");
		goto out;
	}
	base = NULL;
	blk_close(top);
	top = NULL;
	if (!drop) {
		top = img_open(filename, fmt, BLK_OPEN_RDWR | BLK_OPEN_NO_BACKING, quiet);
		if (!top)
			goto out;
		if (blk_make_empty(top) < 0) {
			log_error("Could not empty %s: %s", filename, blk_last_error(top));
			goto out;
		}
	}
	if (!quiet)
		printf("Image committed.\n");
	ret = 0;
out:
	free(buf);
	blk_close(base);
	blk_close(top);
	return ret;
}

/* ------------------------------------------------------------------ */
/* rebase                                                              */

int img_cmd_rebase(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "object", required_argument, NULL, 'O' + 256 },
		{ "image-opts", no_argument, NULL, 'I' + 256 },
		{ "force-share", no_argument, NULL, 'U' },
		{ NULL, 0, NULL, 0 },
	};
	const char *fmt = NULL, *out_base = NULL, *out_fmt = NULL, *filename;
	struct blk *img = NULL, *nb = NULL;
	struct img_progress prog;
	bool quiet = false, progress = false, unsafe = false;
	uint8_t *b1 = NULL, *b2 = NULL;
	int opt, ret = 1;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, IMG_GETOPT_PREFIX "hf:F:b:upt:T:qU", longopts, NULL)) != -1) {
		switch (opt) {
		case 'f': fmt = optarg; break;
		case 'F': out_fmt = optarg; break;
		case 'b': out_base = optarg; break;
		case 'u': unsafe = true; break;
		case 'p': progress = true; break;
		case 'q': quiet = true; break;
		case 't': case 'T': case 'U': break;
		case 'h': printf("usage: maquina img rebase [-U] [-q] [-f fmt] [-t cache] [-T src_cache] [-p] [-u] -b backing_file [-F backing_fmt] filename\n"); return 0;
		case 'O' + 256: case 'I' + 256: log_error("this option is not supported by maquina img"); return 1;
		default: return img_bad_option(argv, opt);
		}
	}
	if (quiet)
		progress = false;
	if (optind != argc - 1)
		return img_usage("Expecting one image file name");
	if (!unsafe && !out_base)
		return img_usage("Must specify backing file (-b) or use unsafe mode (-u)");
	filename = argv[optind];
	if (out_base && !out_base[0])
		out_base = NULL; /* -b "": no backing file */
	if (out_base && !out_fmt) {
		log_error("Could not change the backing file to '%s': backing format must be specified",
			  out_base);
		return 1;
	}
	if (out_fmt && img_check_format(out_fmt, NULL))
		return 1;
	img = img_open(filename, fmt, BLK_OPEN_RDWR | (unsafe ? BLK_OPEN_NO_BACKING : 0), quiet);
	if (!img)
		return 1;
	if (blk_format(img) != BLK_FMT_QCOW2) {
		log_error("Could not change the backing file to '%s': Operation not supported",
			  out_base ? out_base : "");
		goto out;
	}
	if (!unsafe) {
		uint64_t size = blk_size(img), nb_size = 0, off;

		if (out_base) {
			char path[4096];
			struct blk_open_opts o = { 0 };
			char err[1024] = "";

			img_path_relative_to(filename, out_base, path, sizeof(path));
			blk_format_parse(out_fmt, &o.format);
			if (access(path, R_OK) < 0) {
				log_error("Could not open new backing file '%s': Could not open '%s': %s",
					  path, path, strerror(errno));
				goto out;
			}
			if (blk_open(path, &o, &nb, err, sizeof(err)) < 0) {
				log_error("Could not open new backing file '%s': %s", path, err);
				goto out;
			}
			nb_size = blk_size(nb);
		}
		b1 = img_alloc_aligned(CHAIN_BUF_BYTES);
		b2 = img_alloc_aligned(CHAIN_BUF_BYTES);
		if (!b1 || !b2)
			goto out;
		img_progress_init(&prog, progress);
		for (off = 0; off < size;) {
			struct blk_status st;
			uint64_t n;
			int r = blk_block_status(img, off, MIN(size - off, CHAIN_BUF_BYTES), false, &st);

			if (r < 0) {
				log_error("error while reading image metadata: %s", strerror(-r));
				goto out;
			}
			n = MIN(MIN(st.len ? st.len : 512, size - off), CHAIN_BUF_BYTES);
			if (!(st.flags & BLK_ST_ALLOCATED)) {
				/* falls through to the old backing: keep its content if
				 * the new backing differs */
				r = blk_pread(img, off, b1, n);
				if (r < 0) {
					log_error("error while reading from old backing file");
					goto out;
				}
				memset(b2, 0, n);
				if (nb && off < nb_size) {
					r = blk_pread(nb, off, b2, MIN(n, nb_size - off));
					if (r < 0) {
						log_error("error while reading from new backing file");
						goto out;
					}
				}
				/* write only the 512-byte sectors that differ */
				for (uint64_t p = 0; p < n;) {
					uint64_t q = p;
					while (q < n && memcmp(b1 + q, b2 + q, MIN(512, n - q)))
						q += MIN(512, n - q);
					if (q > p) {
						r = blk_pwrite(img, off + p, b1 + p, q - p, 0);
						if (r < 0) {
							log_error("error while writing to COW image: %s",
								  blk_last_error(img));
							goto out;
						}
					}
					p = q + (q < n ? MIN(512, n - q) : 0);
				}
			}
			off += n;
			img_progress_set(&prog, (float)((double)off * 100.0 / (double)size));
		}
		img_progress_set(&prog, 100);
		img_progress_end(&prog);
	}
	if (blk_change_backing_file(img, out_base, out_base ? out_fmt : NULL) < 0) {
		log_error("Could not change the backing file to '%s': %s", out_base ? out_base : "",
			  blk_last_error(img));
		goto out;
	}
	ret = 0;
out:
	free(b1);
	free(b2);
	blk_close(nb);
	if (img && blk_close(img) < 0 && !ret) {
		log_error("%s: could not write the image", filename);
		ret = 1;
	}
	return ret;
}

/* ------------------------------------------------------------------ */
/* resize                                                              */

int img_cmd_resize(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "object", required_argument, NULL, 'O' + 256 },
		{ "image-opts", no_argument, NULL, 'I' + 256 },
		{ "preallocation", required_argument, NULL, 'P' + 256 },
		{ "shrink", no_argument, NULL, 'S' + 256 },
		{ NULL, 0, NULL, 0 },
	};
	const char *fmt = NULL, *size_arg, *filename, *p;
	enum blk_prealloc prealloc = BLK_PREALLOC_OFF;
	bool quiet = false, shrink = false;
	int relative = 0, opt, ret = 1;
	uint64_t n, cur, total;
	struct blk *b;

	/* the size is the last argument and may start with '-' */
	if (argc < 3)
		return img_usage("Not enough arguments");
	size_arg = argv[--argc];
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, IMG_GETOPT_PREFIX "f:hq", longopts, NULL)) != -1) {
		switch (opt) {
		case 'f': fmt = optarg; break;
		case 'q': quiet = true; break;
		case 'S' + 256: shrink = true; break;
		case 'P' + 256:
			if (blk_prealloc_parse(optarg, &prealloc)) {
				log_error("Invalid preallocation mode '%s'", optarg);
				return 1;
			}
			break;
		case 'h': printf("usage: maquina img resize [-f fmt] [--preallocation=prealloc] [-q] [--shrink] filename [+ | -]size\n"); return 0;
		case 'O' + 256: case 'I' + 256: log_error("this option is not supported by maquina img"); return 1;
		default: return img_bad_option(argv, opt);
		}
	}
	if (optind != argc - 1)
		return img_usage("Expecting image file name and size");
	filename = argv[optind];
	p = size_arg;
	if (*p == '+' || *p == '-') {
		relative = *p == '+' ? 1 : -1;
		p++;
	}
	if (img_parse_size(p, &n)) {
		log_error("Parameter 'size' expects a non-negative number below 2^64");
		fprintf(stderr, "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\n"
				"and exabytes, respectively.\n");
		return 1;
	}
	b = img_open(filename, fmt, BLK_OPEN_RDWR | BLK_OPEN_NO_BACKING, quiet);
	if (!b)
		return 1;
	cur = blk_size(b);
	if (relative > 0)
		total = cur + n;
	else if (relative < 0) {
		if (n > cur) {
			log_error("New image size must be positive");
			goto out;
		}
		total = cur - n;
	} else {
		total = n;
	}
	if (total > (uint64_t)INT64_MAX) {
		log_error("New image size is too large");
		goto out;
	}
	if (total < cur && !shrink) {
		log_error("Use the --shrink option to perform a shrink operation.");
		log_warn("Shrinking an image will delete all data beyond the shrunken image's end. Before performing such an operation, make sure there is no important data there.");
		goto out;
	}
	if (total < cur && prealloc != BLK_PREALLOC_OFF) {
		log_error("Preallocation can only be used for growing images");
		goto out;
	}
	if (blk_resize(b, total, shrink, prealloc) < 0) {
		log_error("%s", blk_last_error(b)[0] ? blk_last_error(b) : "Error resizing image");
		goto out;
	}
	if (!quiet)
		printf("Image resized.\n");
	ret = 0;
out:
	if (blk_close(b) < 0 && !ret) {
		log_error("%s: could not write the image", filename);
		ret = 1;
	}
	return ret;
}

/* ------------------------------------------------------------------ */
/* compare                                                             */

/* Offset of the first 512-byte sector that differs, or len if none. */
static uint64_t cmp_first_diff(const uint8_t *a, const uint8_t *b, uint64_t len)
{
	for (uint64_t p = 0; p < len; p += 512)
		if (memcmp(a + p, b + p, MIN(512, len - p)))
			return p;
	return len;
}

static uint64_t cmp_first_nonzero(const uint8_t *a, uint64_t len)
{
	for (uint64_t p = 0; p < len; p += 512)
		if (!img_buf_is_zero(a + p, MIN(512, len - p)))
			return p;
	return len;
}

/* True if the whole range reads as zeros by block status (no read). */
static bool cmp_is_zero(struct blk *b, uint64_t off, uint64_t len)
{
	while (len) {
		struct blk_status st;
		if (blk_block_status(b, off, len, true, &st) < 0 || !st.len ||
		    !(st.flags & BLK_ST_ZERO))
			return false;
		st.len = MIN(st.len, len);
		off += st.len;
		len -= st.len;
	}
	return true;
}

int img_cmd_compare(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "object", required_argument, NULL, 'O' + 256 },
		{ "image-opts", no_argument, NULL, 'I' + 256 },
		{ "force-share", no_argument, NULL, 'U' },
		{ NULL, 0, NULL, 0 },
	};
	const char *fmt1 = NULL, *fmt2 = NULL, *f1, *f2;
	struct blk *b1 = NULL, *b2 = NULL;
	struct img_progress prog;
	bool quiet = false, progress = false, strict = false;
	uint8_t *buf1 = NULL, *buf2 = NULL;
	uint64_t s1, s2, common, off, total;
	int opt, ret = 2;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, IMG_GETOPT_PREFIX "hf:F:T:pqsU", longopts, NULL)) != -1) {
		switch (opt) {
		case 'f': fmt1 = optarg; break;
		case 'F': fmt2 = optarg; break;
		case 'p': progress = true; break;
		case 'q': quiet = true; break;
		case 's': strict = true; break;
		case 'T': case 'U': break;
		case 'h': printf("usage: maquina img compare [-f fmt] [-F fmt] [-T src_cache] [-p] [-q] [-s] [-U] filename1 filename2\n"); return 0;
		case 'O' + 256: case 'I' + 256: log_error("this option is not supported by maquina img"); return 2;
		default: img_bad_option(argv, opt); return 2;
		}
	}
	if (quiet)
		progress = false;
	if (optind != argc - 2) {
		img_usage("Expecting two image file names");
		return 2;
	}
	f1 = argv[optind];
	f2 = argv[optind + 1];
	b1 = img_open(f1, fmt1, 0, quiet);
	if (!b1)
		goto out;
	b2 = img_open(f2, fmt2 ? fmt2 : fmt1, 0, quiet);
	if (!b2)
		goto out;
	buf1 = img_alloc_aligned(CHAIN_BUF_BYTES);
	buf2 = img_alloc_aligned(CHAIN_BUF_BYTES);
	if (!buf1 || !buf2)
		goto out;
	s1 = blk_size(b1);
	s2 = blk_size(b2);
	common = MIN(s1, s2);
	total = MAX(s1, s2);
	if (strict && s1 != s2) {
		if (!quiet)
			printf("Strict mode: Image size mismatch!\n");
		ret = 1;
		goto out;
	}
	img_progress_init(&prog, progress);
	for (off = 0; off < common;) {
		uint64_t n = MIN(common - off, CHAIN_BUF_BYTES), d;
		struct blk_status st1, st2;

		if (blk_block_status(b1, off, n, true, &st1) < 0 ||
		    blk_block_status(b2, off, n, true, &st2) < 0) {
			log_error("Error while reading the images' metadata");
			goto out;
		}
		n = MIN(n, MIN(MAX(st1.len, 512), MAX(st2.len, 512)));
		n = MIN(n, common - off);
		if (strict && (st1.flags & BLK_ST_ALLOCATED) != (st2.flags & BLK_ST_ALLOCATED)) {
			if (!quiet)
				printf("Strict mode: Offset %" PRIu64 " block status mismatch!\n", off);
			ret = 1;
			goto out_prog;
		}
		if (!((st1.flags & BLK_ST_ZERO) && (st2.flags & BLK_ST_ZERO))) {
			if (blk_pread(b1, off, buf1, n) < 0) {
				log_error("Error while reading offset %" PRIu64 " of %s: %s", off, f1,
					  blk_last_error(b1));
				goto out_prog;
			}
			if (blk_pread(b2, off, buf2, n) < 0) {
				log_error("Error while reading offset %" PRIu64 " of %s: %s", off, f2,
					  blk_last_error(b2));
				goto out_prog;
			}
			d = cmp_first_diff(buf1, buf2, n);
			if (d < n) {
				img_progress_end(&prog);
				if (!quiet)
					printf("Content mismatch at offset %" PRIu64 "!\n", off + d);
				ret = 1;
				goto out;
			}
		}
		off += n;
		img_progress_set(&prog, (float)((double)off * 100.0 / (double)total));
	}
	if (s1 != s2) {
		struct blk *big = s1 > s2 ? b1 : b2;
		const char *bname = s1 > s2 ? f1 : f2;

		if (!quiet)
			printf("Warning: Image size mismatch!\n");
		for (off = common; off < total;) {
			uint64_t n = MIN(total - off, CHAIN_BUF_BYTES), d;

			if (!cmp_is_zero(big, off, n)) {
				if (blk_pread(big, off, buf1, n) < 0) {
					log_error("Error while reading offset %" PRIu64 " of %s: %s", off,
						  bname, blk_last_error(big));
					goto out_prog;
				}
				d = cmp_first_nonzero(buf1, n);
				if (d < n) {
					img_progress_end(&prog);
					if (!quiet)
						printf("Content mismatch at offset %" PRIu64 "!\n", off + d);
					ret = 1;
					goto out;
				}
			}
			off += n;
			img_progress_set(&prog, (float)((double)off * 100.0 / (double)total));
		}
	}
	img_progress_set(&prog, 100);
	img_progress_end(&prog);
	if (!quiet)
		printf("Images are identical.\n");
	ret = 0;
	goto out;
out_prog:
	img_progress_end(&prog);
out:
	free(buf1);
	free(buf2);
	blk_close(b1);
	blk_close(b2);
	return ret;
}

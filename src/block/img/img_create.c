/*
 * create, amend, measure: the subcommands that take creation options (-o).
 */
#include "block/img/img_int.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char *const qcow2_help =
	"Supported qcow2 options:\n"
	"  backing_file=<str>     - File name of a base image\n"
	"  backing_fmt=<str>      - Image format of the base image\n"
	"  cluster_size=<size>    - qcow2 cluster size\n"
	"  compat=<str>           - Compatibility level (v2 [0.10] or v3 [1.1])\n"
	"  compression_type=<str> - Compression method used for image cluster compression\n"
	"  extended_l2=<bool (on/off)> - Extended L2 tables\n"
	"  lazy_refcounts=<bool (on/off)> - Postpone refcount updates\n"
	"  preallocation=<str>    - Preallocation mode (allowed values: off, metadata, falloc, full)\n"
	"  refcount_bits=<num>    - Width of a reference count entry in bits\n"
	"  size=<size>            - Virtual disk size\n";

static const char *const raw_help =
	"Supported raw options:\n"
	"  preallocation=<str>    - Preallocation mode (allowed values: off, falloc, full)\n"
	"  size=<size>            - Virtual disk size\n";

static void img_size_error(const char *prefix, const char *param)
{
	if (prefix)
		log_error("%s: Parameter '%s' expects a non-negative number below 2^64", prefix, param);
	else
		log_error("Parameter '%s' expects a non-negative number below 2^64", param);
	fprintf(stderr, "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\n"
			"and exabytes, respectively.\n");
}

/*
 * Reads the -o list into c, checking names and the types qemu checks while
 * parsing (sizes, numbers, booleans).  Errors are printed prefixed with
 * prefix ("filename: ").  Returns 0 or -EINVAL.
 */
int img_copts_parse(struct img_copts *c, const struct img_kvlist *l,
			   enum blk_format fmt, const char *prefix)
{
	for (unsigned i = 0; i < l->nb; i++) {
		const char *k = l->kv[i].key, *v = l->kv[i].val;
		bool bval;

		if (!v)
			v = "on"; /* QemuOpts: a bare key means on */
		if (!strcmp(k, "size")) {
			if (img_parse_size(v, &c->size)) {
				img_size_error(prefix, k);
				return -EINVAL;
			}
			c->has_size = true;
			continue;
		}
		if (!strcmp(k, "preallocation")) {
			c->prealloc = v;
			continue;
		}
		if (fmt == BLK_FMT_RAW)
			goto invalid;
		if (!strcmp(k, "cluster_size")) {
			if (img_parse_size(v, &c->cluster_size)) {
				img_size_error(prefix, k);
				return -EINVAL;
			}
			c->has_cluster_size = true;
		} else if (!strcmp(k, "refcount_bits")) {
			char *end;
			errno = 0;
			c->refcount_bits = strtoull(v, &end, 0);
			if (errno || *end || !*v || *v == '-') {
				log_error("%s: Parameter '%s' expects a number", prefix, k);
				return -EINVAL;
			}
			c->has_refcount_bits = true;
		} else if (!strcmp(k, "compat")) {
			c->compat = v;
		} else if (!strcmp(k, "compression_type")) {
			c->compression_type = v;
		} else if (!strcmp(k, "extended_l2") || !strcmp(k, "lazy_refcounts") ||
			   !strcmp(k, "data_file_raw")) {
			if (img_parse_bool(v, &bval)) {
				log_error("%s: Parameter '%s' expects 'on' or 'off'", prefix, k);
				return -EINVAL;
			}
			if (k[0] == 'e')
				c->extended_l2 = v;
			else if (k[0] == 'l')
				c->lazy_refcounts = v;
			else
				c->data_file_raw = v;
		} else if (!strcmp(k, "backing_file")) {
			c->backing_file = v;
		} else if (!strcmp(k, "backing_fmt")) {
			c->backing_fmt = v;
		} else if (!strcmp(k, "data_file")) {
			c->data_file = v;
		} else {
			goto invalid;
		}
		continue;
invalid:
		log_error("%s: Invalid parameter '%s'", prefix, k);
		return -EINVAL;
	}
	return 0;
}

/* Prints qemu-img's "Formatting ..." line. */
static void img_copts_print(const struct img_copts *c, const char *filename,
			    enum blk_format fmt, uint64_t size)
{
	printf("Formatting '%s', fmt=%s ", filename, blk_format_name(fmt));
	if (fmt == BLK_FMT_RAW) {
		printf("size=%" PRIu64, size);
		if (c->prealloc)
			printf(" preallocation=%s", c->prealloc);
		printf("\n");
		return;
	}
	printf("cluster_size=%" PRIu64, c->has_cluster_size ? c->cluster_size : 65536);
	printf(" extended_l2=%s", c->extended_l2 ? c->extended_l2 : "off");
	if (c->prealloc)
		printf(" preallocation=%s", c->prealloc);
	printf(" compression_type=%s", c->compression_type ? c->compression_type : "zlib");
	printf(" size=%" PRIu64, size);
	if (c->compat)
		printf(" compat=%s", c->compat);
	if (c->backing_file)
		printf(" backing_file=%s", c->backing_file);
	if (c->backing_fmt)
		printf(" backing_fmt=%s", c->backing_fmt);
	if (c->data_file)
		printf(" data_file=%s", c->data_file);
	if (c->data_file_raw)
		printf(" data_file_raw=%s", c->data_file_raw);
	printf(" lazy_refcounts=%s", c->lazy_refcounts ? c->lazy_refcounts : "off");
	printf(" refcount_bits=%" PRIu64 "\n", c->has_refcount_bits ? c->refcount_bits : 16);
}

static int img_parse_compat(const char *s, enum blk_compat *out)
{
	if (!strcmp(s, "0.10") || !strcmp(s, "v2")) {
		*out = BLK_COMPAT_0_10;
		return 0;
	}
	if (!strcmp(s, "1.1") || !strcmp(s, "v3")) {
		*out = BLK_COMPAT_1_1;
		return 0;
	}
	return -EINVAL;
}

/*
 * The driver's checks of the option values, worded as qemu's qcow2 and raw
 * drivers word them; fills o.  Returns 0 or prints "prefix: why" and
 * returns -EINVAL.
 */
int img_copts_to_create(const struct img_copts *c, enum blk_format fmt,
			       const char *prefix, struct blk_create_opts *o)
{
	bool b;

	blk_create_opts_init(o);
	o->format = fmt;
	if (c->prealloc && blk_prealloc_parse(c->prealloc, &o->prealloc)) {
		log_error("%s: Parameter 'preallocation' does not accept value '%s'",
			  prefix, c->prealloc);
		return -EINVAL;
	}
	if (fmt == BLK_FMT_RAW) {
		if (o->prealloc == BLK_PREALLOC_METADATA) {
			log_error("%s: Unsupported preallocation mode: metadata", prefix);
			return -EINVAL;
		}
		return 0;
	}
	if (c->compat && img_parse_compat(c->compat, &o->compat)) {
		log_error("%s: Parameter 'version' does not accept value '%s'", prefix,
			  c->compat);
		return -EINVAL;
	}
	if (c->compression_type) {
		if (!strcmp(c->compression_type, "zlib"))
			o->compression_type = BLK_COMPRESS_ZLIB;
		else if (!strcmp(c->compression_type, "zstd"))
			o->compression_type = BLK_COMPRESS_ZSTD;
		else {
			log_error("%s: Parameter 'compression-type' does not accept value '%s'",
				  prefix, c->compression_type);
			return -EINVAL;
		}
	}
	if (c->has_cluster_size) {
		uint64_t cs = c->cluster_size;
		if (cs < 512 || cs > (2u << 20) || (cs & (cs - 1))) {
			log_error("%s: Cluster size must be a power of two between 512 and 2048k",
				  prefix);
			return -EINVAL;
		}
		o->cluster_size = (uint32_t)cs;
	}
	if (c->extended_l2 && !img_parse_bool(c->extended_l2, &b))
		o->extended_l2 = b;
	if (c->lazy_refcounts && !img_parse_bool(c->lazy_refcounts, &b))
		o->lazy_refcounts = b;
	if (c->has_refcount_bits) {
		uint64_t rb = c->refcount_bits;
		if (!rb || rb > 64 || (rb & (rb - 1))) {
			log_error("%s: Refcount width must be a power of two and may not exceed 64 bits",
				  prefix);
			return -EINVAL;
		}
		o->refcount_bits = (unsigned)rb;
	}
	if (o->compat == BLK_COMPAT_0_10) {
		if (o->refcount_bits && o->refcount_bits != 16) {
			log_error("%s: Different refcount widths than 16 bits require compatibility level 1.1 or above (use version=v3 or greater)",
				  prefix);
			return -EINVAL;
		}
		if (o->lazy_refcounts) {
			log_error("%s: Lazy refcounts only supported with compatibility level 1.1 and above (use version=v3 or greater)",
				  prefix);
			return -EINVAL;
		}
		if (o->extended_l2) {
			log_error("%s: Extended L2 entries are only supported with compatibility level 1.1 and above (use version=v3 or greater)",
				  prefix);
			return -EINVAL;
		}
		if (o->compression_type != BLK_COMPRESS_ZLIB) {
			log_error("%s: Non-zlib compression type is only supported with compatibility level 1.1 and above (use version=v3 or greater)",
				  prefix);
			return -EINVAL;
		}
	}
	if (o->extended_l2 && (o->cluster_size ? o->cluster_size : 65536) < 16384) {
		log_error("%s: Extended L2 entries are only supported with cluster sizes of at least 16384 bytes",
			  prefix);
		return -EINVAL;
	}
	if (c->data_file || c->data_file_raw) {
		log_error("%s: External data files are not supported by maquina", prefix);
		return -ENOTSUP;
	}
	if (c->backing_fmt && !c->backing_file) {
		log_error("%s: Backing format cannot be used without backing file", prefix);
		return -EINVAL;
	}
	if (c->backing_file && o->prealloc != BLK_PREALLOC_OFF && !o->extended_l2) {
		log_error("%s: Backing file and preallocation can only be used at the same time if extended_l2 is on",
			  prefix);
		return -EINVAL;
	}
	return 0;
}

static int img_parse_cmdline_size(const char *s, uint64_t *out)
{
	int ret = img_parse_size(s, out);

	if (ret == -ERANGE) {
		log_error("Invalid image size specified. Must be between 0 and 9223372036854775807.");
		return ret;
	}
	if (ret) {
		log_error("Invalid image size specified. You may use k, M, G, T, P or E suffixes for");
		log_error("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
	}
	return ret;
}

int img_cmd_create(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "object", required_argument, NULL, 'O' + 256 },
		{ NULL, 0, NULL, 0 },
	};
	const char *fmt = "raw", *base = NULL, *base_fmt = NULL, *filename;
	struct img_kvlist kv = { 0 };
	struct img_copts c = { 0 };
	struct blk_create_opts o;
	enum blk_format f;
	bool quiet = false, unsafe = false, has_size = false;
	uint64_t size = 0;
	char err[1024] = "";
	int opt, ret = 1;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, IMG_GETOPT_PREFIX "F:b:f:ho:qu", longopts, NULL)) != -1) {
		switch (opt) {
		case 'F': base_fmt = optarg; break;
		case 'b': base = optarg; break;
		case 'f': fmt = optarg; break;
		case 'q': quiet = true; break;
		case 'u': unsafe = true; break;
		case 'o':
			if (img_kv_parse(&kv, optarg)) {
				log_error("out of memory");
				goto out;
			}
			break;
		case 'h': printf("usage: maquina img create [-q] [-f fmt] [-b backing_file [-F backing_fmt]] [-u] [-o options] filename [size]\n"); ret = 0; goto out;
		case 'O' + 256: log_error("--object is not supported by maquina img"); goto out;
		default: ret = img_bad_option(argv, opt); goto out;
		}
	}
	if (blk_format_parse(fmt, &f)) {
		if (optind < argc)
			log_error("%s: Unknown file format '%s'", argv[optind], fmt);
		else
			log_error("Unknown file format '%s'", fmt);
		goto out;
	}
	if (img_kv_wants_help(&kv)) {
		fputs(f == BLK_FMT_RAW ? raw_help : qcow2_help, stdout);
		printf("\nThe protocol level may support further options.\n"
		       "Specify the target filename to include those options.\n");
		ret = 0;
		goto out;
	}
	if (optind >= argc) {
		ret = img_usage("Expecting image file name");
		goto out;
	}
	filename = argv[optind++];
	if (optind < argc) {
		if (img_parse_cmdline_size(argv[optind++], &size))
			goto out;
		has_size = true;
	}
	if (optind != argc) {
		ret = img_usage("Unexpected argument: %s", argv[optind]);
		goto out;
	}
	if (img_copts_parse(&c, &kv, f, filename))
		goto out;
	if (c.has_size) {
		if (has_size) {
			log_error("%s: The image size must be specified only once", filename);
			goto out;
		}
		size = c.size;
		has_size = true;
	}
	if (base) {
		if (c.backing_file && strcmp(c.backing_file, base)) {
			log_error("%s: Option 'backing_file' was specified twice", filename);
			goto out;
		}
		c.backing_file = base;
	}
	if (base_fmt)
		c.backing_fmt = base_fmt;
	if (c.backing_file && f == BLK_FMT_RAW) {
		log_error("%s: Backing file not supported for file format 'raw'", filename);
		goto out;
	}
	if (c.backing_file && !c.backing_fmt) {
		/* qemu-img probes the backing file first and says what it saw */
		char path[4096];
		enum blk_format pf;

		img_path_relative_to(filename, c.backing_file, path, sizeof(path));
		log_error("%s: Backing file specified without backing format", filename);
		if (!unsafe && !blk_probe_format(path, &pf))
			fprintf(stderr, "Detected format of %s.", blk_format_name(pf));
		goto out;
	}
	if (c.backing_file && !unsafe) {
		/* qemu-img opens the backing file to check it and take its size */
		char path[4096];
		struct blk_open_opts bo = { 0 };
		struct blk *bb = NULL;
		char berr[1024] = "";

		img_path_relative_to(filename, c.backing_file, path, sizeof(path));
		if (blk_format_parse(c.backing_fmt, &bo.format)) {
			log_error("%s: Unknown driver '%s'", filename, c.backing_fmt);
			fprintf(stderr, "Could not open backing image.\n");
			goto out;
		}
		ret = blk_open(path, &bo, &bb, berr, sizeof(berr));
		if (ret < 0) {
			if (ret == -ENOENT)
				log_error("%s: Could not open '%s': No such file or directory",
					  filename, c.backing_file);
			else
				log_error("%s: %s", filename, berr[0] ? berr : strerror(-ret));
			fprintf(stderr, "Could not open backing image.\n");
			ret = 1;
			goto out;
		}
		if (!has_size) {
			size = blk_size(bb);
			has_size = true;
		}
		blk_close(bb);
		ret = 1;
	}
	if (!has_size) {
		log_error("%s: Image creation needs a size parameter", filename);
		goto out;
	}
	if (!quiet)
		img_copts_print(&c, filename, f, size);
	if (img_copts_to_create(&c, f, filename, &o))
		goto out;
	o.size_bytes = size;
	o.backing_file = c.backing_file;
	o.backing_format = c.backing_fmt;
	o.backing_unsafe = true; /* checked above (or -u) */
	if (blk_create(filename, &o, err, sizeof(err)) < 0) {
		log_error("%s", err[0] ? err : "image creation failed");
		goto out;
	}
	ret = 0;
out:
	img_kv_free(&kv);
	return ret;
}

/* ------------------------------------------------------------------ */
/* amend                                                               */

static const char *const amend_help =
	"Amend options for 'qcow2':\n"
	"  backing_file=<str>     - File name of a base image\n"
	"  backing_fmt=<str>      - Image format of the base image\n"
	"  compat=<str>           - Compatibility level (v2 [0.10] or v3 [1.1])\n"
	"  lazy_refcounts=<bool (on/off)> - Postpone refcount updates\n"
	"  refcount_bits=<num>    - Width of a reference count entry in bits\n"
	"  size=<size>            - Virtual disk size\n";

int img_cmd_amend(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "force", no_argument, NULL, 'F' + 256 },
		{ "object", required_argument, NULL, 'O' + 256 },
		{ "image-opts", no_argument, NULL, 'I' + 256 },
		{ NULL, 0, NULL, 0 },
	};
	const char *fmt = NULL, *filename;
	struct img_kvlist kv = { 0 };
	struct blk_amend_opts ao;
	struct blk *b = NULL;
	bool quiet = false, progress = false, has_opts = false;
	int opt, ret = 1;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, IMG_GETOPT_PREFIX "ho:f:t:pq", longopts, NULL)) != -1) {
		switch (opt) {
		case 'o':
			has_opts = true;
			if (img_kv_parse(&kv, optarg))
				goto out;
			break;
		case 'f': fmt = optarg; break;
		case 't': break;
		case 'p': progress = true; break;
		case 'q': quiet = true; break;
		case 'F' + 256: break;
		case 'h': printf("usage: maquina img amend [-p] [-q] [-f fmt] [-t cache] [--force] -o options filename\n"); ret = 0; goto out;
		case 'O' + 256: case 'I' + 256: log_error("this option is not supported by maquina img"); goto out;
		default: ret = img_bad_option(argv, opt); goto out;
		}
	}
	if (!has_opts) {
		ret = img_usage("Must specify options (-o)");
		goto out;
	}
	if (quiet)
		progress = false;
	if (optind != argc - 1) {
		ret = img_usage("Expecting one image file name");
		goto out;
	}
	filename = argv[optind];
	if (img_kv_wants_help(&kv) && (!fmt || !strcmp(fmt, "qcow2"))) {
		/* qemu-img needs the image to know the format; so do we */
		if (!fmt) {
			b = img_open(filename, NULL, 0, quiet);
			if (!b)
				goto out;
			if (blk_format(b) != BLK_FMT_QCOW2) {
				log_error("Format driver '%s' does not support option amendment",
					  blk_format_name(blk_format(b)));
				goto out;
			}
		}
		fputs(amend_help, stdout);
		ret = 0;
		goto out;
	}
	b = img_open(filename, fmt, BLK_OPEN_RDWR, quiet);
	if (!b)
		goto out;
	if (blk_format(b) != BLK_FMT_QCOW2) {
		log_error("Format driver '%s' does not support option amendment",
			  blk_format_name(blk_format(b)));
		goto out;
	}
	blk_amend_opts_init(&ao);
	for (unsigned i = 0; i < kv.nb; i++) {
		const char *k = kv.kv[i].key, *v = kv.kv[i].val ? kv.kv[i].val : "on";
		bool bv;

		if (!strcmp(k, "compat")) {
			if (img_parse_compat(v, &ao.compat)) {
				log_error("Invalid compatibility level: '%s'", v);
				goto out;
			}
		} else if (!strcmp(k, "lazy_refcounts")) {
			if (img_parse_bool(v, &bv)) {
				log_error("Parameter 'lazy_refcounts' expects 'on' or 'off'");
				goto out;
			}
			ao.lazy_refcounts = bv;
		} else if (!strcmp(k, "refcount_bits")) {
			char *end;
			unsigned long long rb = strtoull(v, &end, 0);
			if (*end || !rb || rb > 64 || (rb & (rb - 1))) {
				log_error("Refcount width must be a power of two and may not exceed 64 bits");
				goto out;
			}
			ao.refcount_bits = (unsigned)rb;
		} else if (!strcmp(k, "size")) {
			if (img_parse_size(v, &ao.size_bytes)) {
				img_size_error(NULL, "size");
				goto out;
			}
		} else if (!strcmp(k, "backing_file")) {
			ao.backing_file = v;
		} else if (!strcmp(k, "backing_fmt")) {
			ao.backing_format = v;
		} else if (!strcmp(k, "cluster_size") || !strcmp(k, "extended_l2") ||
			   !strcmp(k, "preallocation") || !strcmp(k, "compression_type") ||
			   !strcmp(k, "encryption")) {
			log_error("Invalid parameter '%s'", k);
			fprintf(stderr, "This option is only supported for image creation\n");
			goto out;
		} else {
			log_error("Invalid parameter '%s'", k);
			goto out;
		}
	}
	if (progress) {
		printf("    (%3.2f/100%%)\r", 0.0);
		fflush(stdout);
	}
	if (blk_amend(b, &ao) < 0) {
		log_error("Error while amending options: %s", blk_last_error(b));
		goto out;
	}
	if (progress)
		printf("    (%3.2f/100%%)\r\n", 100.0);
	ret = 0;
out:
	if (b && blk_close(b) < 0 && !ret) {
		log_error("%s: could not write the image: %s", filename, blk_last_error(b));
		ret = 1;
	}
	img_kv_free(&kv);
	return ret;
}

/* ------------------------------------------------------------------ */
/* measure                                                             */

int img_cmd_measure(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "output", required_argument, NULL, 'o' + 256 },
		{ "size", required_argument, NULL, 's' + 256 },
		{ "object", required_argument, NULL, 'O' + 256 },
		{ "image-opts", no_argument, NULL, 'I' + 256 },
		{ "force-share", no_argument, NULL, 'U' },
		{ NULL, 0, NULL, 0 },
	};
	const char *fmt = NULL, *out_fmt = "raw", *snap = NULL, *filename = NULL;
	struct img_kvlist kv = { 0 };
	struct img_copts c = { 0 };
	struct blk_create_opts o;
	enum img_output output = IMG_OUT_HUMAN;
	enum blk_format of;
	struct blk *src = NULL;
	uint64_t size = 0, required, full;
	bool has_size = false, has_bitmaps = false;
	int opt, ret = 1;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, IMG_GETOPT_PREFIX "hf:O:o:l:U", longopts, NULL)) != -1) {
		switch (opt) {
		case 'f': fmt = optarg; break;
		case 'O': out_fmt = optarg; break;
		case 'o':
			if (img_kv_parse(&kv, optarg))
				goto out;
			break;
		case 'l': snap = optarg; break;
		case 'U': break;
		case 'o' + 256:
			if (img_parse_output(optarg, &output))
				goto out;
			break;
		case 's' + 256:
			if (img_parse_size(optarg, &size)) {
				img_size_error(NULL, "size");
				goto out;
			}
			has_size = true;
			break;
		case 'h': printf("usage: maquina img measure [--output=ofmt] [-O output_fmt] [-o options] [--size N | [-f fmt] [-l snapshot_param] filename]\n"); ret = 0; goto out;
		case 'O' + 256: case 'I' + 256: log_error("this option is not supported by maquina img"); goto out;
		default: ret = img_bad_option(argv, opt); goto out;
		}
	}
	if (optind < argc)
		filename = argv[optind++];
	if (optind < argc) {
		ret = img_usage("Expecting one image file name");
		goto out;
	}
	if (blk_format_parse(out_fmt, &of)) {
		log_error("Unknown file format '%s'", out_fmt);
		goto out;
	}
	if (img_kv_wants_help(&kv)) {
		fputs(of == BLK_FMT_RAW ? raw_help : qcow2_help, stdout);
		ret = 0;
		goto out;
	}
	if (filename && has_size) {
		log_error("--size N cannot be used together with a filename.");
		goto out;
	}
	if (!filename && !has_size) {
		log_error("Either --size N or one filename must be specified.");
		goto out;
	}
	if (img_copts_parse(&c, &kv, of, "measure") ||
	    img_copts_to_create(&c, of, "measure", &o))
		goto out;
	if (filename) {
		struct blk_open_opts bo = { 0 };
		char err[1024] = "";
		struct blk_info info;

		if (fmt && blk_format_parse(fmt, &bo.format)) {
			log_error("Could not open '%s': Unknown driver '%s'", filename, fmt);
			goto out;
		}
		bo.snapshot = snap;
		if (blk_open(filename, &bo, &src, err, sizeof(err)) < 0) {
			log_error("Could not open '%s': %s", filename, err);
			goto out;
		}
		size = blk_size(src);
		if (!blk_get_info(src, &info) && info.format == BLK_FMT_QCOW2 &&
		    info.qcow2_version >= 3 && of == BLK_FMT_QCOW2 &&
		    o.compat != BLK_COMPAT_0_10)
			has_bitmaps = true;
	}
	if (c.has_size && !has_size)
		size = c.size;
	o.size_bytes = size;
	o.backing_file = c.backing_file;
	o.backing_format = c.backing_fmt;
	o.backing_unsafe = true;
	if (blk_measure(&o, src, &required, &full) < 0) {
		log_error("Error measuring the image");
		goto out;
	}
	/* as qemu: a raw target needs its whole size; a preallocated qcow2
	 * needs everything it would have fully allocated */
	if (of == BLK_FMT_RAW)
		required = full = ALIGN_UP(size, 512);
	else if (o.prealloc == BLK_PREALLOC_FULL || o.prealloc == BLK_PREALLOC_FALLOC)
		required = full;
	if (output == IMG_OUT_JSON) {
		struct json *j = json_obj();
		json_add_int(j, "required", (int64_t)required);
		json_add_int(j, "fully-allocated", (int64_t)full);
		if (has_bitmaps)
			json_add_int(j, "bitmaps", 0);
		json_print(stdout, j, 0);
		printf("\n");
		json_free(j);
	} else {
		printf("required size: %" PRIu64 "\n", required);
		printf("fully allocated size: %" PRIu64 "\n", full);
		if (has_bitmaps)
			printf("bitmaps size: %d\n", 0);
	}
	ret = 0;
out:
	blk_close(src);
	img_kv_free(&kv);
	return ret;
}

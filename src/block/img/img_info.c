/*
 * info, check, snapshot, map: the subcommands that describe an image.
 */
#include "block/img/img_int.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* info                                                                */

/* The "data" of qcow2's format-specific information. */
static struct json *img_info_specific(const struct blk_info *in)
{
	struct json *d = json_obj();

	json_add_str(d, "compat", in->qcow2_version >= 3 ? "1.1" : "0.10");
	json_add_str(d, "compression-type",
		     in->compression_type == BLK_COMPRESS_ZSTD ? "zstd" : "zlib");
	if (in->qcow2_version >= 3)
		json_add_bool(d, "lazy-refcounts", in->lazy_refcounts);
	json_add_int(d, "refcount-bits", in->refcount_bits);
	if (in->qcow2_version >= 3) {
		json_add_bool(d, "corrupt", in->corrupt);
		json_add_bool(d, "extended-l2", in->extended_l2);
	}
	return d;
}

/* One image's info as QEMU's ImageInfo QDict. */
static struct json *img_info_json(struct blk *b, const char *filename,
				  const struct blk_info *in)
{
	struct json *o = json_obj();
	struct blk_snapshot_info *sn = NULL;
	unsigned nb = 0;

	json_add_str(o, "filename", filename);
	json_add_str(o, "format", blk_format_name(in->format));
	json_add_int(o, "virtual-size", (int64_t)in->virtual_size);
	json_add_int(o, "actual-size", (int64_t)in->actual_size);
	if (in->format == BLK_FMT_QCOW2)
		json_add_int(o, "cluster-size", in->cluster_size);
	json_add_bool(o, "dirty-flag", in->dirty);
	if (in->backing_file[0]) {
		json_add_str(o, "backing-filename", in->backing_file);
		if (in->full_backing_filename[0])
			json_add_str(o, "full-backing-filename", in->full_backing_filename);
		if (in->backing_format[0])
			json_add_str(o, "backing-filename-format", in->backing_format);
	}
	if (in->format == BLK_FMT_QCOW2 && !blk_snapshot_list(b, &sn, &nb) && nb) {
		struct json *a = json_arr();
		for (unsigned i = 0; i < nb; i++)
			json_add(a, NULL, img_snapshot_json(&sn[i]));
		json_add(o, "snapshots", a);
	}
	free(sn);
	if (in->format == BLK_FMT_QCOW2) {
		struct json *fs = json_obj();

		json_add_str(fs, "type", "qcow2");
		json_add(fs, "data", img_info_specific(in));
		json_add(o, "format-specific", fs);
	}
	return o;
}

static void img_info_human(struct blk *b, const char *filename,
			   const struct blk_info *in)
{
	struct blk_snapshot_info *sn = NULL;
	unsigned nb = 0;
	char s1[32], s2[32];

	printf("image: %s\nfile format: %s\nvirtual size: %s (%" PRIu64 " bytes)\ndisk size: %s\n",
	       filename, blk_format_name(in->format),
	       img_size_str(in->virtual_size, s1, sizeof(s1)), in->virtual_size,
	       img_size_str(in->actual_size, s2, sizeof(s2)));
	if (in->format == BLK_FMT_QCOW2)
		printf("cluster_size: %u\n", in->cluster_size);
	if (in->dirty)
		printf("cleanly shut down: no\n");
	if (in->backing_file[0]) {
		printf("backing file: %s", in->backing_file);
		if (!in->full_backing_filename[0])
			printf(" (cannot determine actual path)");
		else if (strcmp(in->backing_file, in->full_backing_filename))
			printf(" (actual path: %s)", in->full_backing_filename);
		printf("\n");
		if (in->backing_format[0])
			printf("backing file format: %s\n", in->backing_format);
	}
	if (in->format == BLK_FMT_QCOW2 && !blk_snapshot_list(b, &sn, &nb) && nb) {
		printf("Snapshot list:\n");
		img_snapshot_dump(stdout, NULL);
		printf("\n");
		for (unsigned i = 0; i < nb; i++) {
			img_snapshot_dump(stdout, &sn[i]);
			printf("\n");
		}
	}
	free(sn);
	if (in->format == BLK_FMT_QCOW2) {
		struct json *d = img_info_specific(in);

		printf("Format specific information:\n");
		json_dump_human(stdout, d, 1);
		json_free(d);
	}
}

int img_cmd_info(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "format", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' + 256 },
		{ "backing-chain", no_argument, NULL, 'b' + 256 },
		{ "object", required_argument, NULL, 'O' + 256 },
		{ "image-opts", no_argument, NULL, 'I' + 256 },
		{ "force-share", no_argument, NULL, 'U' },
		{ NULL, 0, NULL, 0 },
	};
	enum img_output output = IMG_OUT_HUMAN;
	const char *fmt = NULL;
	bool chain = false;
	struct json *list = NULL;
	char *seen[65] = { 0 };
	unsigned nb_seen = 0;
	char cur[4096], cur_fmt[32];
	int opt, ret = 1;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, IMG_GETOPT_PREFIX "f:hU", longopts, NULL)) != -1) {
		switch (opt) {
		case 'f': fmt = optarg; break;
		case 'U': break;
		case 'o' + 256:
			if (img_parse_output(optarg, &output))
				return 1;
			break;
		case 'b' + 256: chain = true; break;
		case 'h': printf("usage: maquina img info [-f fmt] [--output=ofmt] [--backing-chain] [-U] filename\n"); return 0;
		case 'O' + 256: case 'I' + 256: log_error("this option is not supported by maquina img"); return 1;
		default: return img_bad_option(argv, opt);
		}
	}
	if (optind != argc - 1)
		return img_usage("Expecting one image file name");
	snprintf(cur, sizeof(cur), "%s", argv[optind]);
	snprintf(cur_fmt, sizeof(cur_fmt), "%s", fmt ? fmt : "");
	if (chain && output == IMG_OUT_JSON)
		list = json_arr();
	for (;;) {
		struct blk_info in;
		struct blk *b;

		for (unsigned i = 0; i < nb_seen; i++)
			if (!strcmp(seen[i], cur)) {
				log_error("Backing file '%s' creates an infinite loop.", cur);
				goto out;
			}
		if (nb_seen == ARRAY_SIZE(seen)) {
			log_error("%s: the backing chain is deeper than %zu images", argv[optind],
				  ARRAY_SIZE(seen) - 1);
			goto out;
		}
		seen[nb_seen++] = strdup(cur);
		b = img_open(cur, cur_fmt[0] ? cur_fmt : NULL, BLK_OPEN_NO_BACKING, false);
		if (!b)
			goto out;
		if (blk_get_info(b, &in) < 0) {
			log_error("%s: could not read the image information: %s", cur,
				  blk_last_error(b));
			blk_close(b);
			goto out;
		}
		if (output == IMG_OUT_JSON) {
			struct json *o = img_info_json(b, cur, &in);
			if (list) {
				json_add(list, NULL, o);
			} else {
				json_print(stdout, o, 0);
				printf("\n");
				json_free(o);
			}
		} else {
			if (nb_seen > 1)
				printf("\n");
			img_info_human(b, cur, &in);
		}
		blk_close(b);
		if (!chain || !in.backing_file[0])
			break;
		snprintf(cur, sizeof(cur), "%s", in.full_backing_filename[0] ?
			 in.full_backing_filename : in.backing_file);
		snprintf(cur_fmt, sizeof(cur_fmt), "%s", in.backing_format);
	}
	if (list) {
		json_print(stdout, list, 0);
		printf("\n");
	}
	ret = 0;
out:
	json_free(list);
	for (unsigned i = 0; i < nb_seen; i++)
		free(seen[i]);
	return ret;
}

/* ------------------------------------------------------------------ */
/* check                                                               */

static void img_check_report(void *opaque, const char *line)
{
	(void)opaque;
	fprintf(stderr, "%s\n", line);
}

int img_cmd_check(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "format", required_argument, NULL, 'f' },
		{ "repair", required_argument, NULL, 'r' },
		{ "output", required_argument, NULL, 'o' + 256 },
		{ "object", required_argument, NULL, 'O' + 256 },
		{ "image-opts", no_argument, NULL, 'I' + 256 },
		{ "force-share", no_argument, NULL, 'U' },
		{ NULL, 0, NULL, 0 },
	};
	enum img_output output = IMG_OUT_HUMAN;
	enum blk_repair repair = BLK_REPAIR_NONE;
	const char *fmt = NULL, *filename;
	struct blk_check_result r = { 0 };
	struct blk *b;
	bool quiet = false;
	int opt, ret;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, IMG_GETOPT_PREFIX "hf:r:T:qU", longopts, NULL)) != -1) {
		switch (opt) {
		case 'f': fmt = optarg; break;
		case 'r':
			if (!strcmp(optarg, "leaks"))
				repair = BLK_REPAIR_LEAKS;
			else if (!strcmp(optarg, "all"))
				repair = BLK_REPAIR_ALL;
			else
				return img_usage("Unknown option value for -r (expecting 'leaks' or 'all'): %s", optarg);
			break;
		case 'T': case 'U': break;
		case 'q': quiet = true; break;
		case 'o' + 256:
			if (img_parse_output(optarg, &output))
				return 1;
			break;
		case 'h': printf("usage: maquina img check [-q] [-f fmt] [--output=ofmt] [-r [leaks | all]] [-T src_cache] [-U] filename\n"); return 0;
		case 'O' + 256: case 'I' + 256: log_error("this option is not supported by maquina img"); return 1;
		default: return img_bad_option(argv, opt);
		}
	}
	if (optind != argc - 1)
		return img_usage("Expecting one image file name");
	filename = argv[optind];
	b = img_open(filename, fmt, BLK_OPEN_CHECK | BLK_OPEN_NO_BACKING |
		     (repair ? BLK_OPEN_RDWR : 0), quiet);
	if (!b)
		return 1;
	ret = blk_check(b, repair, img_check_report, NULL, &r);
	if (ret == -ENOTSUP) {
		log_error("This image format does not support checks");
		blk_close(b);
		return 63;
	}
	if (ret < 0) {
		log_error("Check failed: %s", strerror(-ret));
		blk_close(b);
		return 1;
	}
	if (output == IMG_OUT_HUMAN && !quiet) {
		if (r.corruptions_fixed || r.leaks_fixed)
			printf("The following inconsistencies were found and repaired:\n\n"
			       "    %d leaked clusters\n    %d corruptions\n\n"
			       "Double checking the fixed image now...\n",
			       r.leaks_fixed, r.corruptions_fixed);
		if (!(r.corruptions || r.leaks || r.check_errors)) {
			printf("No errors were found on the image.\n");
		} else {
			if (r.corruptions)
				printf("\n%d errors were found on the image.\n"
				       "Data may be corrupted, or further writes to the image may corrupt it.\n",
				       r.corruptions);
			if (r.leaks)
				printf("\n%d leaked clusters were found on the image.\n"
				       "This means waste of disk space, but no harm to data.\n",
				       r.leaks);
			if (r.check_errors)
				printf("\n%d internal errors have occurred during the check.\n",
				       r.check_errors);
		}
		if (r.total_clusters && r.allocated_clusters)
			printf("%" PRIu64 "/%" PRIu64 " = %0.2f%% allocated, %0.2f%% fragmented, %0.2f%% compressed clusters\n",
			       r.allocated_clusters, r.total_clusters,
			       (double)r.allocated_clusters * 100.0 / (double)r.total_clusters,
			       (double)r.fragmented_clusters * 100.0 / (double)r.allocated_clusters,
			       (double)r.compressed_clusters * 100.0 / (double)r.allocated_clusters);
		if (r.image_end_offset)
			printf("Image end offset: %" PRIu64 "\n", r.image_end_offset);
	} else if (output == IMG_OUT_JSON) {
		struct json *o = json_obj();
		json_add_str(o, "filename", filename);
		json_add_str(o, "format", blk_format_name(blk_format(b)));
		json_add_int(o, "check-errors", r.check_errors);
		if (r.corruptions)
			json_add_int(o, "corruptions", r.corruptions);
		if (r.leaks)
			json_add_int(o, "leaks", r.leaks);
		if (r.corruptions_fixed)
			json_add_int(o, "corruptions-fixed", r.corruptions_fixed);
		if (r.leaks_fixed)
			json_add_int(o, "leaks-fixed", r.leaks_fixed);
		if (r.image_end_offset)
			json_add_int(o, "image-end-offset", (int64_t)r.image_end_offset);
		if (r.total_clusters)
			json_add_int(o, "total-clusters", (int64_t)r.total_clusters);
		if (r.allocated_clusters)
			json_add_int(o, "allocated-clusters", (int64_t)r.allocated_clusters);
		if (r.fragmented_clusters)
			json_add_int(o, "fragmented-clusters", (int64_t)r.fragmented_clusters);
		if (r.compressed_clusters)
			json_add_int(o, "compressed-clusters", (int64_t)r.compressed_clusters);
		json_print(stdout, o, 0);
		printf("\n");
		json_free(o);
	}
	if (blk_close(b) < 0 && repair) {
		log_error("%s: could not write the repaired image", filename);
		return 1;
	}
	if (r.check_errors) {
		log_error("Check failed");
		return 1;
	}
	if (r.corruptions)
		return 2;
	if (r.leaks)
		return 3;
	return 0;
}

/* ------------------------------------------------------------------ */
/* snapshot                                                            */

int img_cmd_snapshot(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "object", required_argument, NULL, 'O' + 256 },
		{ "image-opts", no_argument, NULL, 'I' + 256 },
		{ "force-share", no_argument, NULL, 'U' },
		{ NULL, 0, NULL, 0 },
	};
	enum { SN_LIST = 1, SN_APPLY, SN_CREATE, SN_DELETE } action = 0;
	const char *name = NULL, *filename;
	struct blk *b;
	bool quiet = false;
	int opt, ret = 1, r;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, IMG_GETOPT_PREFIX "la:c:d:hqU", longopts, NULL)) != -1) {
		int a = 0;
		switch (opt) {
		case 'l': a = SN_LIST; break;
		case 'a': a = SN_APPLY; break;
		case 'c': a = SN_CREATE; break;
		case 'd': a = SN_DELETE; break;
		case 'q': quiet = true; continue;
		case 'U': continue;
		case 'h': printf("usage: maquina img snapshot [-U] [-q] [-l | -a snapshot | -c snapshot | -d snapshot] filename\n"); return 0;
		case 'O' + 256: case 'I' + 256: log_error("this option is not supported by maquina img"); return 1;
		default: return img_bad_option(argv, opt);
		}
		if (action)
			return img_usage("Cannot mix '-l', '-a', '-c', '-d'");
		action = a;
		name = optarg;
	}
	if (optind != argc - 1)
		return img_usage("Expecting one image file name");
	filename = argv[optind];
	if (!action)
		action = SN_LIST;
	b = img_open(filename, NULL, action == SN_LIST ? BLK_OPEN_NO_BACKING : BLK_OPEN_RDWR,
		     quiet);
	if (!b)
		return 1;
	switch (action) {
	case SN_LIST: {
		struct blk_snapshot_info *sn = NULL;
		unsigned nb = 0;
		r = blk_snapshot_list(b, &sn, &nb);
		if (r < 0 && r != -ENOTSUP) {
			log_error("%s: could not list the snapshots: %s", filename,
				  blk_last_error(b));
			goto out;
		}
		if (nb) {
			printf("Snapshot list:\n");
			img_snapshot_dump(stdout, NULL);
			printf("\n");
			for (unsigned i = 0; i < nb; i++) {
				img_snapshot_dump(stdout, &sn[i]);
				printf("\n");
			}
		}
		free(sn);
		break;
	}
	case SN_CREATE:
		r = blk_snapshot_create(b, name);
		if (r < 0) {
			log_error("Could not create snapshot '%s': %d (%s)", name, r, strerror(-r));
			goto out;
		}
		break;
	case SN_APPLY:
		r = blk_snapshot_apply(b, name);
		if (r < 0) {
			log_error("Could not apply snapshot '%s': Failed to load snapshot: %s",
				  name, r == -ENOENT ? strerror(ENOENT) : blk_last_error(b));
			goto out;
		}
		break;
	case SN_DELETE: {
		/* qemu-img deletes by name only; delete that one by its id */
		struct blk_snapshot_info *sn = NULL;
		unsigned nb = 0;
		char id[sizeof(sn->id)] = "";

		if (!blk_snapshot_list(b, &sn, &nb))
			for (unsigned i = 0; i < nb; i++)
				if (!strcmp(sn[i].name, name)) {
					snprintf(id, sizeof(id), "%s", sn[i].id);
					break;
				}
		free(sn);
		r = id[0] ? blk_snapshot_delete(b, id) : -ENOENT;
		if (r < 0) {
			log_error("Could not delete snapshot '%s': %s", name,
				  r == -ENOENT ? "snapshot not found" : blk_last_error(b));
			goto out;
		}
		break;
	}
	}
	ret = 0;
out:
	if (blk_close(b) < 0 && !ret) {
		log_error("%s: could not write the image", filename);
		ret = 1;
	}
	return ret;
}

/* ------------------------------------------------------------------ */
/* map                                                                 */

struct img_map_entry {
	uint64_t start, length, offset;
	unsigned depth;
	bool data, zero, present, has_offset;
	const char *filename;
};

static bool img_map_mergeable(const struct img_map_entry *a,
			      const struct img_map_entry *b)
{
	if (a->start + a->length != b->start || a->depth != b->depth ||
	    a->present != b->present || a->zero != b->zero || a->data != b->data ||
	    a->has_offset != b->has_offset)
		return false;
	if (a->has_offset && a->offset + a->length != b->offset)
		return false;
	if (!a->filename != !b->filename)
		return false;
	if (a->filename && strcmp(a->filename, b->filename))
		return false;
	return true;
}

static int img_map_dump(enum img_output out, const struct img_map_entry *e,
			struct img_map_entry *next)
{
	if (out == IMG_OUT_HUMAN) {
		if (e->data && !e->has_offset) {
			log_error("File contains external, encrypted or compressed clusters.");
			return -1;
		}
		if (e->data && !e->zero)
			printf("%#-16" PRIx64 "%#-16" PRIx64 "%#-16" PRIx64 "%s\n",
			       e->start, e->length, e->has_offset ? e->offset : 0,
			       e->filename ? e->filename : "");
		if (next && (!next->data || next->zero)) {
			next->data = false;
			next->zero = true;
		}
		return 0;
	}
	printf("{ \"start\": %" PRId64 ", \"length\": %" PRId64 ", \"depth\": %u,"
	       " \"present\": %s, \"zero\": %s, \"data\": %s",
	       e->start, e->length, e->depth, e->present ? "true" : "false",
	       e->zero ? "true" : "false", e->data ? "true" : "false");
	if (e->has_offset)
		printf(", \"offset\": %" PRId64, e->offset);
	putchar('}');
	if (next)
		puts(",");
	return 0;
}

int img_cmd_map(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "format", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' + 256 },
		{ "start-offset", required_argument, NULL, 's' },
		{ "max-length", required_argument, NULL, 'l' },
		{ "object", required_argument, NULL, 'O' + 256 },
		{ "image-opts", no_argument, NULL, 'I' + 256 },
		{ "force-share", no_argument, NULL, 'U' },
		{ NULL, 0, NULL, 0 },
	};
	enum img_output output = IMG_OUT_HUMAN;
	const char *fmt = NULL;
	uint64_t start = 0, max_len = UINT64_MAX, length;
	struct img_map_entry curr = { 0 }, next;
	struct blk *b;
	int opt, ret = 1;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, IMG_GETOPT_PREFIX "f:hU", longopts, NULL)) != -1) {
		switch (opt) {
		case 'f': fmt = optarg; break;
		case 'U': break;
		case 's':
			if (img_parse_size(optarg, &start)) {
				log_error("Invalid start offset specified! You may use k, M, G, T, P or E suffixes for ");
				log_error("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
				return 1;
			}
			break;
		case 'l':
			if (img_parse_size(optarg, &max_len)) {
				log_error("Invalid length specified! You may use k, M, G, T, P or E suffixes for ");
				log_error("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
				return 1;
			}
			break;
		case 'o' + 256:
			if (img_parse_output(optarg, &output))
				return 1;
			break;
		case 'h': printf("usage: maquina img map [-f fmt] [--start-offset=offset] [--max-length=len] [--output=ofmt] [-U] filename\n"); return 0;
		case 'O' + 256: case 'I' + 256: log_error("this option is not supported by maquina img"); return 1;
		default: return img_bad_option(argv, opt);
		}
	}
	if (optind != argc - 1)
		return img_usage("Expecting one image file name");
	b = img_open(argv[optind], fmt, 0, false);
	if (!b)
		return 1;
	length = blk_size(b);
	if (max_len != UINT64_MAX && start + max_len < length)
		length = start + max_len;
	if (start > length)
		start = length;
	if (output == IMG_OUT_HUMAN)
		printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");
	else
		printf("[");
	curr.start = start;
	while (curr.start + curr.length < length) {
		uint64_t off = curr.start + curr.length;
		struct blk_status st;
		int r = blk_block_status(b, off, MIN(1ull << 30, length - off), true, &st);

		if (r < 0 || !st.len) {
			log_error("Could not read file metadata: %s", strerror(r < 0 ? -r : EIO));
			goto out;
		}
		next = (struct img_map_entry){
			.start = off,
			.length = MIN(st.len, length - off),
			.data = st.flags & BLK_ST_DATA,
			.zero = st.flags & BLK_ST_ZERO,
			.present = st.flags & BLK_ST_ALLOCATED,
			.has_offset = st.flags & BLK_ST_OFFSET_VALID,
			.offset = st.host_offset,
			.depth = st.depth,
			.filename = (st.flags & BLK_ST_OFFSET_VALID) && st.file ?
				    blk_filename(st.file) : NULL,
		};
		/* raw maps every byte to the same offset in its file, holes
		 * included, and qemu-img says so */
		if (st.file && blk_format(st.file) == BLK_FMT_RAW &&
		    (st.flags & (BLK_ST_DATA | BLK_ST_ZERO)) && !next.has_offset) {
			next.has_offset = true;
			next.offset = off;
			next.filename = blk_filename(st.file);
		}
		if (img_map_mergeable(&curr, &next)) {
			curr.length += next.length;
			continue;
		}
		if (curr.length > 0 && img_map_dump(output, &curr, &next) < 0)
			goto out;
		curr = next;
	}
	if (img_map_dump(output, &curr, NULL) < 0)
		goto out;
	if (output == IMG_OUT_JSON)
		puts("]");
	ret = 0;
out:
	blk_close(b);
	return ret;
}

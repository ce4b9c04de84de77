/*
 * The private header of 'maquina img': helpers shared by the subcommands
 * (option parsing as qemu-img does it, size parsing and printing, JSON in
 * QEMU's key order, the progress bar, opening images with qemu-img's
 * messages).  Each subcommand lives in its own file and has the signature
 * img_cmd_fn: argv[0] is the subcommand's name, the return value is the
 * process exit status.
 */
#ifndef MAQUINA_BLOCK_IMG_INT_H
#define MAQUINA_BLOCK_IMG_INT_H

#include "block/block.h"
#include "core/core.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef int img_cmd_fn(int argc, char **argv);

img_cmd_fn img_cmd_create, img_cmd_info, img_cmd_check, img_cmd_convert,
	img_cmd_snapshot, img_cmd_resize, img_cmd_map, img_cmd_commit,
	img_cmd_rebase, img_cmd_compare, img_cmd_measure, img_cmd_amend,
	img_cmd_bench, img_cmd_dd;

/* ---- messages ---- */

/* log_error(msg) then "Try 'maquina img --help' for more information" on
 * stderr (qemu-img's error_exit); returns 1 for 'return img_usage(...)'. */
int img_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The getopt error for argv[optind - 1] / optopt, as qemu-img words it. */
int img_bad_option(char **argv, int opt);
/* getopt_long optstring prefix: leading ':' so that we word the errors. */
#define IMG_GETOPT_PREFIX ":"

/* ---- sizes ---- */

/*
 * Parses a size as qemu-img does (qemu_strtosz): decimal or 0x hex, an
 * optional fraction with a suffix, an optional suffix B/K/M/G/T/P/E (any
 * case; binary multiples).  Returns 0, -EINVAL for garbage or -ERANGE for
 * more than INT64_MAX.
 */
int img_parse_size(const char *s, uint64_t *out_bytes);
/* "64 MiB", "1.27 MiB", "196 KiB": QEMU's size_to_str, into buf. */
const char *img_size_str(uint64_t bytes, char *buf, size_t len);

/* ---- -o options ---- */

struct img_kv {
	char *key;
	char *val; /* NULL for a bare key */
};
struct img_kvlist {
	struct img_kv *kv;
	unsigned nb;
};
/* Splits "a=1,b=2" (",," is a literal comma) and appends to l.  Returns 0
 * or -ENOMEM. */
int img_kv_parse(struct img_kvlist *l, const char *s);
void img_kv_free(struct img_kvlist *l);
/* True if the list asks for help ("help" or "?"). */
bool img_kv_wants_help(const struct img_kvlist *l);
/* Parses a boolean option value as QEMU does ("on"/"off", ...). */
int img_parse_bool(const char *s, bool *out);

/* ---- creation options (-o), shared by create, convert, measure ---- */

/* Creation options as given, kept as strings where qemu-img echoes them. */
struct img_copts {
	bool has_size, has_cluster_size, has_refcount_bits;
	uint64_t size, cluster_size, refcount_bits;
	const char *compat, *prealloc, *compression_type, *extended_l2,
		*lazy_refcounts, *backing_file, *backing_fmt, *data_file,
		*data_file_raw;
};
/* Reads a -o list for format fmt, checking names and value types; errors
 * are printed as "prefix: why".  Returns 0 or -EINVAL. */
int img_copts_parse(struct img_copts *c, const struct img_kvlist *l,
		    enum blk_format fmt, const char *prefix);
/* Checks the values as the drivers do and fills o (size and backing are
 * left to the caller).  Returns 0 or prints "prefix: why" and -EINVAL. */
int img_copts_to_create(const struct img_copts *c, enum blk_format fmt,
			const char *prefix, struct blk_create_opts *o);

/* ---- opening ---- */

/*
 * Opens path with format fmt_name (NULL probes) and the given BLK_OPEN_*
 * flags.  On failure prints qemu-img's "Could not open 'path': why" and
 * returns NULL.  A probed raw image opened read-write gets qemu-img's
 * warning about probing.
 */
struct blk *img_open(const char *path, const char *fmt_name, unsigned flags,
		     bool quiet);
/* Opens and closes path as a plain file first, so that a missing or
 * unreadable file gets qemu-img's message ("Could not open 'x': Could not
 * open 'x': No such file or directory").  Returns 0 or -errno (printed). */
int img_open_errno(const char *path, bool rdwr);
/* Checks a -f/-O argument: 0, or prints "Unknown file format 'x'" (with
 * an optional "prefix: ") and returns -EINVAL. */
int img_check_format(const char *name, const char *prefix);

/* ---- output ---- */

enum img_output { IMG_OUT_HUMAN, IMG_OUT_JSON };
/* Parses --output's argument; prints qemu-img's error and returns -EINVAL. */
int img_parse_output(const char *s, enum img_output *out);

/* A JSON value tree, printed as QEMU prints QObjects: objects in QDict
 * order (QEMU hashes the keys into 512 buckets), 4-space indentation. */
struct json;
struct json *json_obj(void);
struct json *json_arr(void);
/* Adds to an object (key) or an array (key NULL).  The value is owned by
 * the container afterwards.  Allocation failure aborts (tiny trees). */
void json_add(struct json *c, const char *key, struct json *v);
void json_add_str(struct json *c, const char *key, const char *s);
void json_add_int(struct json *c, const char *key, int64_t v);
void json_add_bool(struct json *c, const char *key, bool v);
/* Pretty-prints v (no trailing newline). */
void json_print(FILE *f, const struct json *v, int indent);
/* Human dump of an object as QEMU's dump_qdict (keys with '-' -> ' '). */
void json_dump_human(FILE *f, const struct json *obj, int indent);
void json_free(struct json *v);

/* ---- progress ---- */

struct img_progress {
	bool enabled;
	float last_print;
	float current;
};
/* qemu-img -p: prints "    (x.xx/100%)\r" when the value moves by 1% or
 * more, and at 100%. */
void img_progress_init(struct img_progress *p, bool enabled);
void img_progress_set(struct img_progress *p, float percent);
void img_progress_end(struct img_progress *p);

/* ---- misc ---- */

/* True if len bytes at buf are all zero. */
bool img_buf_is_zero(const void *buf, size_t len);
/* malloc of len bytes aligned to 4096 (for O_DIRECT); NULL on failure. */
void *img_alloc_aligned(size_t len);
/* Joins the directory of image with name, unless name is absolute; out
 * gets the result (truncated if too long). */
void img_path_relative_to(const char *image, const char *name, char *out,
			  size_t out_len);
/* Snapshot table: header (sn NULL) or one row, as qemu-img prints it. */
void img_snapshot_dump(FILE *f, const struct blk_snapshot_info *sn);
/* The JSON object for one snapshot. */
struct json *img_snapshot_json(const struct blk_snapshot_info *sn);

#endif

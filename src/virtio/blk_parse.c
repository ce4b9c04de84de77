/*
 * The --disk option's syntax (virtio_blk_parse, contract in virtio.h),
 * apart from the device so that the CLI and its tests link it alone.
 *
 *   path=FILE[,format=raw|qcow2][,readonly=on|off][,cache=none|writeback]
 *   [,serial=STR]
 *
 * A first element without '=' is the path.  A comma inside a value is
 * written twice (",,"), as in QEMU's option strings.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/virtio.h"

#define VBLK_SERIAL_MAX 20 /* VIRTIO_BLK_ID_BYTES */

static int parse_err(char *err, size_t err_len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int parse_err(char *err, size_t err_len, const char *fmt, ...)
{
	if (err && err_len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, err_len, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* on/off and the usual synonyms; -EINVAL for anything else. */
static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "on", "yes", "true", "1" };
	static const char *const no[] = { "off", "no", "false", "0" };
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!strcmp(s, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcmp(s, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/*
 * Cuts the next element off *pos (in place): un-doubles ",,", ends the
 * element at the first single ',' and advances *pos past it (NULL at the
 * end).  Returns the element.
 */
static char *next_elem(char **pos)
{
	char *start = *pos, *r = start, *w = start;
	for (;;) {
		if (*r == '\0') {
			*w = '\0';
			*pos = NULL;
			return start;
		}
		if (*r == ',') {
			if (r[1] == ',') {
				*w++ = ',';
				r += 2;
				continue;
			}
			*w = '\0';
			*pos = r + 1;
			return start;
		}
		*w++ = *r++;
	}
}

int virtio_blk_parse(const char *spec, struct virtio_blk_opts *o, char **buf, char *err,
		     size_t err_len)
{
	memset(o, 0, sizeof(*o));
	*buf = NULL;
	if (!spec || !*spec)
		return parse_err(err, err_len,
				 "--disk needs a value: --disk path=FILE[,format=raw|qcow2]"
				 "[,readonly=on|off][,cache=none|writeback][,serial=STR]");
	char *copy = strdup(spec);
	if (!copy)
		return parse_err(err, err_len, "--disk: out of memory");
	unsigned seen = 0; /* bit per key, to refuse repeats */
	char *pos = copy;
	bool first = true;
	while (pos) {
		char *el = next_elem(&pos);
		char *eq = strchr(el, '=');
		const char *key, *val;
		if (!eq) {
			if (!first) {
				parse_err(err, err_len,
					  "--disk '%s': '%s' is not KEY=VALUE (only the first "
					  "element may be a bare file name; a comma in a file name "
					  "is written ',,')",
					  spec, el);
				goto fail;
			}
			key = "path";
			val = el;
		} else {
			*eq = '\0';
			key = el;
			val = eq + 1;
		}
		first = false;
		unsigned bit;
		if (!strcmp(key, "path")) {
			bit = 1;
			o->path = val;
		} else if (!strcmp(key, "format")) {
			bit = 2;
			if (blk_format_parse(val, &o->format) < 0) {
				parse_err(err, err_len,
					  "--disk '%s': unknown format '%s': use format=raw or "
					  "format=qcow2 (or leave it out to probe the file)",
					  spec, val);
				goto fail;
			}
		} else if (!strcmp(key, "readonly")) {
			bit = 4;
			if (parse_bool(val, &o->read_only) < 0) {
				parse_err(err, err_len,
					  "--disk '%s': readonly='%s' is not a boolean: use "
					  "readonly=on or readonly=off",
					  spec, val);
				goto fail;
			}
		} else if (!strcmp(key, "cache")) {
			bit = 8;
			if (!strcmp(val, "none")) {
				o->cache = VIRTIO_BLK_CACHE_NONE;
			} else if (!strcmp(val, "writeback")) {
				o->cache = VIRTIO_BLK_CACHE_WRITEBACK;
			} else {
				parse_err(err, err_len,
					  "--disk '%s': unknown cache mode '%s': use cache=none "
					  "(O_DIRECT) or cache=writeback",
					  spec, val);
				goto fail;
			}
		} else if (!strcmp(key, "serial")) {
			bit = 16;
			if (strlen(val) > VBLK_SERIAL_MAX) {
				parse_err(err, err_len,
					  "--disk '%s': serial '%s' is %zu bytes long; virtio-blk "
					  "serials hold at most %d",
					  spec, val, strlen(val), VBLK_SERIAL_MAX);
				goto fail;
			}
			o->serial = val;
		} else {
			parse_err(err, err_len,
				  "--disk '%s': unknown key '%s'; the keys are path, format, "
				  "readonly, cache and serial",
				  spec, key);
			goto fail;
		}
		if (seen & bit) {
			parse_err(err, err_len, "--disk '%s': '%s' is given twice", spec, key);
			goto fail;
		}
		seen |= bit;
	}
	if (!o->path || !*o->path) {
		parse_err(err, err_len, "--disk '%s': no file: give path=FILE", spec);
		goto fail;
	}
	*buf = copy;
	return 0;
fail:
	free(copy);
	memset(o, 0, sizeof(*o));
	return -EINVAL;
}

/*
 * Helpers shared by the 'maquina img' subcommands.
 */
#include "block/img/img_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Messages                                                            */

int img_usage(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_ERROR, fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try 'maquina img --help' for more information\n");
	return 1;
}

int img_bad_option(char **argv, int opt)
{
	extern int optind, optopt;

	if (opt == ':') {
		if (optopt)
			return img_usage("missing argument for option '-%c'", optopt);
		return img_usage("missing argument for option '%s'", argv[optind - 1]);
	}
	return img_usage("unrecognized option '%s'", argv[optind - 1]);
}

/* ------------------------------------------------------------------ */
/* Sizes                                                               */

int img_parse_size(const char *s, uint64_t *out_bytes)
{
	const char *p = s;
	uint64_t val, unit = 1;
	double frac = 0;
	char *end;

	if (!s)
		return -EINVAL;
	while (isspace((unsigned char)*p))
		p++;
	if (*p == '-' || !*p)
		return -EINVAL;
	errno = 0;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		if (!isxdigit((unsigned char)p[2]))
			return -EINVAL;
		val = strtoull(p, &end, 16);
	} else {
		if (!isdigit((unsigned char)*p) && *p != '.')
			return -EINVAL;
		val = strtoull(p, &end, 10);
		if (*end == '.') {
			char *fend;
			frac = strtod(end, &fend);
			if (fend == end + 1 && !isdigit((unsigned char)end[1]))
				frac = 0;
			end = fend;
		}
	}
	if (errno == ERANGE)
		return -ERANGE;
	if (*end) {
		switch (toupper((unsigned char)*end)) {
		case 'B': unit = 1; break;
		case 'K': unit = 1ull << 10; break;
		case 'M': unit = 1ull << 20; break;
		case 'G': unit = 1ull << 30; break;
		case 'T': unit = 1ull << 40; break;
		case 'P': unit = 1ull << 50; break;
		case 'E': unit = 1ull << 60; break;
		default: return -EINVAL;
		}
		end++;
		if (*end)
			return -EINVAL;
	} else if (frac != 0) {
		return -EINVAL; /* QEMU refuses a fraction of a byte */
	}
	if (val > (uint64_t)INT64_MAX / unit)
		return -ERANGE;
	val *= unit;
	if (frac != 0) {
		double extra = frac * (double)unit;
		if ((double)val + extra > (double)INT64_MAX)
			return -ERANGE;
		val += (uint64_t)extra;
	}
	if (val > (uint64_t)INT64_MAX)
		return -ERANGE;
	*out_bytes = val;
	return 0;
}

const char *img_size_str(uint64_t bytes, char *buf, size_t len)
{
	static const char *const suffixes[] = { "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei" };
	int e;

	/* QEMU's size_to_str: switch to the next unit at 1000 of this one */
	frexp((double)bytes / (1000.0 / 1024.0), &e);
	e = (e - 1) / 10;
	if (e < 0)
		e = 0;
	if (e > 6)
		e = 6;
	snprintf(buf, len, "%0.3g %sB", (double)bytes / (double)(1ull << (e * 10)),
		 suffixes[e]);
	return buf;
}

/* ------------------------------------------------------------------ */
/* -o key=value lists                                                  */

int img_kv_parse(struct img_kvlist *l, const char *s)
{
	size_t n = strlen(s);
	char *tok = malloc(n + 1);

	if (!tok)
		return -ENOMEM;
	while (*s) {
		size_t t = 0;
		struct img_kv *nkv;
		char *eq;

		while (*s) {
			if (*s == ',') {
				if (s[1] == ',') {
					tok[t++] = ',';
					s += 2;
					continue;
				}
				s++;
				break;
			}
			tok[t++] = *s++;
		}
		tok[t] = 0;
		if (!t)
			continue;
		nkv = realloc(l->kv, (l->nb + 1) * sizeof(*nkv));
		if (!nkv) {
			free(tok);
			return -ENOMEM;
		}
		l->kv = nkv;
		eq = strchr(tok, '=');
		if (eq)
			*eq = 0;
		l->kv[l->nb].key = strdup(tok);
		l->kv[l->nb].val = eq ? strdup(eq + 1) : NULL;
		if (!l->kv[l->nb].key || (eq && !l->kv[l->nb].val)) {
			free(tok);
			return -ENOMEM;
		}
		l->nb++;
	}
	free(tok);
	return 0;
}

void img_kv_free(struct img_kvlist *l)
{
	for (unsigned i = 0; i < l->nb; i++) {
		free(l->kv[i].key);
		free(l->kv[i].val);
	}
	free(l->kv);
	l->kv = NULL;
	l->nb = 0;
}

bool img_kv_wants_help(const struct img_kvlist *l)
{
	for (unsigned i = 0; i < l->nb; i++)
		if (!l->kv[i].val && (!strcmp(l->kv[i].key, "help") ||
				      !strcmp(l->kv[i].key, "?")))
			return true;
	return false;
}

int img_parse_bool(const char *s, bool *out)
{
	if (!s)
		return -EINVAL;
	if (!strcmp(s, "on") || !strcmp(s, "yes") || !strcmp(s, "true") ||
	    !strcmp(s, "y")) {
		*out = true;
		return 0;
	}
	if (!strcmp(s, "off") || !strcmp(s, "no") || !strcmp(s, "false") ||
	    !strcmp(s, "n")) {
		*out = false;
		return 0;
	}
	return -EINVAL;
}

/* ------------------------------------------------------------------ */
/* Opening                                                             */

int img_check_format(const char *name, const char *prefix)
{
	enum blk_format f;

	if (!name || !blk_format_parse(name, &f))
		return 0;
	if (prefix)
		log_error("%s: Unknown file format '%s'", prefix, name);
	else
		log_error("Unknown file format '%s'", name);
	return -EINVAL;
}

int img_open_errno(const char *path, bool rdwr)
{
	int fd = open(path, (rdwr ? O_RDWR : O_RDONLY) | O_CLOEXEC);

	if (fd < 0 && rdwr && errno == EACCES)
		fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		log_error("Could not open '%s': Could not open '%s': %s", path, path, strerror(e));
		return -e;
	}
	close(fd);
	return 0;
}

struct blk *img_open(const char *path, const char *fmt_name, unsigned flags,
		     bool quiet)
{
	struct blk_open_opts o = { 0 };
	struct blk *b = NULL;
	char err[1024] = "";
	int ret;

	(void)quiet;
	if (img_open_errno(path, flags & BLK_OPEN_RDWR))
		return NULL;
	o.flags = flags;
	if (fmt_name) {
		if (blk_format_parse(fmt_name, &o.format)) {
			log_error("Could not open '%s': Unknown driver '%s'", path,
				  fmt_name);
			return NULL;
		}
	} else if (flags & BLK_OPEN_RDWR) {
		enum blk_format probed;
		if (!blk_probe_format(path, &probed) && probed == BLK_FMT_RAW)
			fprintf(stderr,
				"WARNING: Image format was not specified for '%s' and probing guessed raw.\n"
				"         Automatically detecting the format is dangerous for raw images, write operations on block 0 will be restricted.\n"
				"         Specify the 'raw' format explicitly to remove the restrictions.\n",
				path);
	}
	ret = blk_open(path, &o, &b, err, sizeof(err));
	if (ret < 0) {
		if (!err[0])
			snprintf(err, sizeof(err), "%s", strerror(-ret));
		log_error("Could not open '%s': %s", path, err);
		return NULL;
	}
	return b;
}

/* ------------------------------------------------------------------ */
/* Output formats                                                      */

int img_parse_output(const char *s, enum img_output *out)
{
	if (!strcmp(s, "human")) {
		*out = IMG_OUT_HUMAN;
		return 0;
	}
	if (!strcmp(s, "json")) {
		*out = IMG_OUT_JSON;
		return 0;
	}
	log_error("--output must be used with human or json as argument.");
	return -EINVAL;
}

/* ------------------------------------------------------------------ */
/* JSON                                                                */

enum json_type { JSON_OBJ, JSON_ARR, JSON_STR, JSON_INT, JSON_BOOL };

struct json {
	enum json_type type;
	char *key;     /* member name inside an object */
	char *str;
	int64_t num;
	bool b;
	struct json **kids;
	unsigned nb_kids;
};

static void *json_xalloc(size_t n)
{
	void *p = calloc(1, n);

	if (!p) {
		log_error("out of memory");
		abort();
	}
	return p;
}

static struct json *json_new(enum json_type t)
{
	struct json *j = json_xalloc(sizeof(*j));

	j->type = t;
	return j;
}

struct json *json_obj(void) { return json_new(JSON_OBJ); }
struct json *json_arr(void) { return json_new(JSON_ARR); }

static char *json_strdup(const char *s)
{
	char *d = json_xalloc(strlen(s) + 1);

	memcpy(d, s, strlen(s) + 1);
	return d;
}

void json_add(struct json *c, const char *key, struct json *v)
{
	struct json **k = realloc(c->kids, (c->nb_kids + 1) * sizeof(*k));

	if (!k) {
		log_error("out of memory");
		abort();
	}
	c->kids = k;
	if (key)
		v->key = json_strdup(key);
	c->kids[c->nb_kids++] = v;
}

void json_add_str(struct json *c, const char *key, const char *s)
{
	struct json *v = json_new(JSON_STR);

	v->str = json_strdup(s);
	json_add(c, key, v);
}

void json_add_int(struct json *c, const char *key, int64_t n)
{
	struct json *v = json_new(JSON_INT);

	v->num = n;
	json_add(c, key, v);
}

void json_add_bool(struct json *c, const char *key, bool b)
{
	struct json *v = json_new(JSON_BOOL);

	v->b = b;
	json_add(c, key, v);
}

void json_free(struct json *v)
{
	if (!v)
		return;
	for (unsigned i = 0; i < v->nb_kids; i++)
		json_free(v->kids[i]);
	free(v->kids);
	free(v->key);
	free(v->str);
	free(v);
}

/* QEMU's QDict bucket of a key (tdb_hash modulo 512). */
static unsigned qdict_bucket(const char *name)
{
	uint32_t value = 0x238F13AFu * (uint32_t)strlen(name);

	for (unsigned i = 0; name[i]; i++)
		value = value + ((uint32_t)(unsigned char)name[i] << (i * 5 % 24));
	return (1103515243u * value + 12345u) % 512;
}

/* Members in QDict iteration order: ascending bucket; within a bucket the
 * most recently inserted first. */
static struct json **json_sorted(const struct json *o)
{
	struct json **v = json_xalloc((o->nb_kids + 1) * sizeof(*v));
	unsigned n = 0;

	for (unsigned bucket = 0; bucket < 512; bucket++)
		for (unsigned i = o->nb_kids; i-- > 0;)
			if (qdict_bucket(o->kids[i]->key) == bucket)
				v[n++] = o->kids[i];
	return v;
}

static void json_print_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\b': fputs("\\b", f); break;
		case '\f': fputs("\\f", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				fprintf(f, "\\u%04x", *p);
			else
				fputc(*p, f);
		}
	}
	fputc('"', f);
}

void json_print(FILE *f, const struct json *v, int indent)
{
	struct json **kids;

	switch (v->type) {
	case JSON_STR: json_print_str(f, v->str); return;
	case JSON_INT: fprintf(f, "%" PRId64, v->num); return;
	case JSON_BOOL: fputs(v->b ? "true" : "false", f); return;
	case JSON_OBJ:
	case JSON_ARR:
		break;
	}
	if (!v->nb_kids) {
		fputs(v->type == JSON_OBJ ? "{}" : "[]", f);
		return;
	}
	kids = v->type == JSON_OBJ ? json_sorted(v) : v->kids;
	fputs(v->type == JSON_OBJ ? "{\n" : "[\n", f);
	for (unsigned i = 0; i < v->nb_kids; i++) {
		fprintf(f, "%*s", (indent + 1) * 4, "");
		if (v->type == JSON_OBJ) {
			json_print_str(f, kids[i]->key);
			fputs(": ", f);
		}
		json_print(f, kids[i], indent + 1);
		fputs(i + 1 < v->nb_kids ? ",\n" : "\n", f);
	}
	fprintf(f, "%*s%c", indent * 4, "", v->type == JSON_OBJ ? '}' : ']');
	if (kids != v->kids)
		free(kids);
}

static void json_dump_value(FILE *f, const struct json *v, int indent);

void json_dump_human(FILE *f, const struct json *obj, int indent)
{
	struct json **kids = json_sorted(obj);

	for (unsigned i = 0; i < obj->nb_kids; i++) {
		const struct json *k = kids[i];
		bool composite = k->type == JSON_OBJ || k->type == JSON_ARR;

		fprintf(f, "%*s", indent * 4, "");
		for (const char *p = k->key; *p; p++)
			fputc(*p == '-' ? ' ' : *p, f);
		fputs(composite ? ":\n" : ": ", f);
		json_dump_value(f, k, indent + 1);
		if (!composite)
			fputc('\n', f);
	}
	free(kids);
}

static void json_dump_value(FILE *f, const struct json *v, int indent)
{
	switch (v->type) {
	case JSON_STR: fputs(v->str, f); break;
	case JSON_INT: fprintf(f, "%" PRId64, v->num); break;
	case JSON_BOOL: fputs(v->b ? "true" : "false", f); break;
	case JSON_OBJ: json_dump_human(f, v, indent); break;
	case JSON_ARR:
		for (unsigned i = 0; i < v->nb_kids; i++) {
			fprintf(f, "%*s[%u]:\n", indent * 4, "", i);
			json_dump_value(f, v->kids[i], indent + 1);
		}
		break;
	}
}

/* ------------------------------------------------------------------ */
/* Progress                                                            */

void img_progress_init(struct img_progress *p, bool enabled)
{
	p->enabled = enabled;
	p->last_print = 0;
	p->current = 0;
	if (enabled) {
		printf("    (%3.2f/100%%)\r", 0.0);
		fflush(stdout);
	}
}

void img_progress_set(struct img_progress *p, float percent)
{
	if (!p->enabled)
		return;
	if (percent > 100)
		percent = 100;
	p->current = percent;
	if (percent >= p->last_print + 1.0f || percent == 100.0f) {
		p->last_print = percent;
		printf("    (%3.2f/100%%)\r", percent);
		fflush(stdout);
	}
}

void img_progress_end(struct img_progress *p)
{
	if (!p->enabled)
		return;
	printf("\n");
	fflush(stdout);
}

/* ------------------------------------------------------------------ */
/* Misc                                                                */

bool img_buf_is_zero(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	size_t i = 0;

	/* word at a time, then the tail */
	for (; i < len && ((uintptr_t)(p + i) & 7); i++)
		if (p[i])
			return false;
	for (; i + 64 <= len; i += 64) {
		const uint64_t *w = (const uint64_t *)(const void *)(p + i);
		if (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7])
			return false;
	}
	for (; i < len; i++)
		if (p[i])
			return false;
	return true;
}

void *img_alloc_aligned(size_t len)
{
	void *p = NULL;

	if (posix_memalign(&p, 4096, len ? len : 4096))
		return NULL;
	return p;
}

void img_path_relative_to(const char *image, const char *name, char *out,
			  size_t out_len)
{
	const char *slash = strrchr(image, '/');

	if (name[0] == '/' || !slash) {
		snprintf(out, out_len, "%s", name);
		return;
	}
	snprintf(out, out_len, "%.*s/%s", (int)(slash - image), image, name);
}

void img_snapshot_dump(FILE *f, const struct blk_snapshot_info *sn)
{
	char clock_buf[64], size_buf[32], date_buf[64], icount_buf[32] = "";
	time_t t;
	struct tm tm;
	uint64_t secs;

	if (!sn) {
		fprintf(f, "%-10s%-17s%8s%20s%13s%11s", "ID", "TAG", "VM SIZE",
			"DATE", "VM CLOCK", "ICOUNT");
		return;
	}
	t = (time_t)sn->date_sec;
	localtime_r(&t, &tm);
	strftime(date_buf, sizeof(date_buf), "%Y-%m-%d %H:%M:%S", &tm);
	secs = sn->vm_clock_nsec / 1000000000ull;
	snprintf(clock_buf, sizeof(clock_buf), "%02d:%02d:%02d.%03d",
		 (int)(secs / 3600), (int)((secs / 60) % 60), (int)(secs % 60),
		 (int)((sn->vm_clock_nsec / 1000000) % 1000));
	if (sn->icount != UINT64_MAX)
		snprintf(icount_buf, sizeof(icount_buf), "%" PRId64, (int64_t)sn->icount);
	fprintf(f, "%-9s %-16s %8s%20s%13s%11s", sn->id, sn->name,
		img_size_str(sn->vm_state_size, size_buf, sizeof(size_buf)),
		date_buf, clock_buf, icount_buf);
}

struct json *img_snapshot_json(const struct blk_snapshot_info *sn)
{
	struct json *o = json_obj();

	json_add_str(o, "id", sn->id);
	json_add_str(o, "name", sn->name);
	json_add_int(o, "vm-state-size", (int64_t)sn->vm_state_size);
	json_add_int(o, "date-sec", sn->date_sec);
	json_add_int(o, "date-nsec", sn->date_nsec);
	json_add_int(o, "vm-clock-sec", (int64_t)(sn->vm_clock_nsec / 1000000000ull));
	json_add_int(o, "vm-clock-nsec", (int64_t)(sn->vm_clock_nsec % 1000000000ull));
	if (sn->icount != UINT64_MAX)
		json_add_int(o, "icount", (int64_t)sn->icount);
	return o;
}

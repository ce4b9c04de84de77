#include "core/core.h"

#include <stdio.h>

static const char *log_progname = "maquina";
static enum log_level log_level_max = LOG_WARN;

void log_set_progname(const char *name) { log_progname = name; }
void log_set_level(enum log_level level) { log_level_max = level; }
enum log_level log_get_level(void) { return log_level_max; }

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	static const char *const prefix[] = {
		[LOG_ERROR] = "", [LOG_WARN] = "warning: ",
		[LOG_INFO] = "", [LOG_DEBUG] = "debug: ",
	};

	if (level > log_level_max)
		return;
	fprintf(stderr, "%s: %s", log_progname, prefix[level]);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

#define DEFINE_LOG_FN(name, level)                  \
	void name(const char *fmt, ...)             \
	{                                           \
		va_list ap;                         \
		va_start(ap, fmt);                  \
		log_vmsg(level, fmt, ap);           \
		va_end(ap);                         \
	}

DEFINE_LOG_FN(log_error, LOG_ERROR)
DEFINE_LOG_FN(log_warn, LOG_WARN)
DEFINE_LOG_FN(log_info, LOG_INFO)
DEFINE_LOG_FN(log_debug, LOG_DEBUG)

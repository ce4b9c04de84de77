/*
 * core: logging, error conventions and small helpers shared by every layer.
 *
 * Error convention (all of maquina): functions return 0 or a negative errno;
 * functions returning pointers return NULL; bool is for predicates only.
 * The callee detects an error, the caller that knows the context reports it
 * with log_error(), once, in words a person can act on.
 */
#ifndef MAQUINA_CORE_H
#define MAQUINA_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((__typeof__(x))(a) - 1))
#define ALIGN_DOWN(x, a) ((x) & ~((__typeof__(x))(a) - 1))

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Sets the program name that prefixes every message ("maquina"). */
void log_set_progname(const char *name);
/* Messages at a level above this one are dropped; default LOG_WARN. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Prints "progname: message\n" to stderr.  The message should say what was
 * wrong and, where there is one, what to do about it. */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap);

/*
 * Parses a size with an optional binary suffix, as qemu does: "512" (bytes
 * unless default_unit says otherwise), "64k", "512M", "2G", "1T", "1P", "1E".
 * A "B" suffix means bytes.  Rejects negative numbers, garbage and overflow.
 * Returns 0 and stores the size, or -EINVAL / -ERANGE.
 */
int parse_size(const char *s, uint64_t default_unit, uint64_t *out_bytes);

/* Monotonic clock in nanoseconds. */
uint64_t clock_ns(void);

#endif
